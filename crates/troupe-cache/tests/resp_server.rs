//! The RESP2 front end against a real Redis client (`redis` crate) and raw
//! TCP: every command, pipelining, Redis's error texts, protocol errors,
//! the connection limit, and a shard crashed under supervision.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{RedisError, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use troupe_cache::resp::Limits;
use troupe_cache::{CacheClient, CacheShard, RespServer, RespServerMsg, ShardMsg};
use troupe_runtime::{ChildOptions, Mesh, Node, NodeConfig, SupervisorSpec};
use troupe_testkit::eventually;

const T: Duration = Duration::from_secs(5);

struct Setup {
    node: Node,
    addr: SocketAddr,
    client: CacheClient,
}

async fn setup(shards: usize, configure: impl FnOnce(RespServer) -> RespServer) -> Setup {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let entries = NonZeroUsize::new(10_000).unwrap();
    let (pool_spec, pool) = node
        .pool_child("cache", shards, ChildOptions::permanent(), move |_| {
            CacheShard::new(entries, 16 << 20)
        })
        .unwrap();
    let client = CacheClient::from_pool(&pool);
    let server = configure(RespServer::new("127.0.0.1:0"));
    let (server_spec, server_addr) = node
        .child(
            "resp",
            ChildOptions::permanent(),
            server.factory(client.clone()),
        )
        .unwrap();
    node.start(
        SupervisorSpec::one_for_one().intensity(20, Duration::from_secs(10)),
        vec![pool_spec, server_spec],
    )
    .await
    .unwrap();
    let addr = server_addr
        .call(RespServerMsg::LocalAddr, T)
        .await
        .unwrap()
        .expect("bound");
    Setup { node, addr, client }
}

async fn connect(addr: SocketAddr) -> MultiplexedConnection {
    redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Run one command given as words.
async fn run<T: redis::FromRedisValue>(
    con: &mut MultiplexedConnection,
    words: &[&str],
) -> Result<T, RedisError> {
    let mut cmd = redis::cmd(words[0]);
    for w in &words[1..] {
        cmd.arg(*w);
    }
    cmd.query_async(con).await
}

/// The error code and detail of a failed command.
async fn run_err(con: &mut MultiplexedConnection, words: &[&str]) -> (String, String) {
    let err = run::<Value>(con, words).await.expect_err("should fail");
    (
        err.code().unwrap_or_default().to_string(),
        err.detail().unwrap_or_default().to_string(),
    )
}

/// Send `input` on a fresh connection and read until `want` bytes arrived
/// (or the peer closed); also says whether the peer closed right after.
async fn raw(addr: SocketAddr, input: &[u8], want: usize) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(input).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < want {
        let n = tokio::time::timeout(T, stream.read(&mut buf))
            .await
            .expect("reply in time")
            .unwrap();
        if n == 0 {
            return (out, true);
        }
        out.extend_from_slice(&buf[..n]);
    }
    let closed = matches!(
        tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await,
        Ok(Ok(0))
    );
    (out, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_through_a_redis_client() {
    let s = setup(4, |r| r).await;
    let mut con = connect(s.addr).await;
    let c = &mut con;

    assert_eq!(run::<String>(c, &["PING"]).await.unwrap(), "PONG");
    assert_eq!(run::<String>(c, &["PING", "hi"]).await.unwrap(), "hi");
    assert_eq!(run::<String>(c, &["ECHO", "hello"]).await.unwrap(), "hello");

    // GET / SET and its options
    assert_eq!(run::<Option<String>>(c, &["GET", "k"]).await.unwrap(), None);
    assert_eq!(run::<String>(c, &["SET", "k", "v1"]).await.unwrap(), "OK");
    assert_eq!(
        run::<Option<String>>(c, &["GET", "k"]).await.unwrap(),
        Some("v1".into())
    );
    assert_eq!(
        run::<Option<String>>(c, &["SET", "k", "x", "NX"])
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        run::<Option<String>>(c, &["SET", "new", "x", "XX"])
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        run::<Option<String>>(c, &["SET", "k", "v2", "XX", "GET"])
            .await
            .unwrap(),
        Some("v1".into())
    );
    assert_eq!(
        run::<Option<String>>(c, &["SET", "fresh", "1", "NX", "GET"])
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        run::<Option<String>>(c, &["GET", "fresh"]).await.unwrap(),
        Some("1".into())
    );

    // expiry: EX, PX, SETEX, EXPIRE, PEXPIRE, TTL, PTTL, PERSIST
    run::<String>(c, &["SET", "e", "v", "EX", "100"])
        .await
        .unwrap();
    assert_eq!(run::<i64>(c, &["TTL", "e"]).await.unwrap(), 100);
    let pttl = run::<i64>(c, &["PTTL", "e"]).await.unwrap();
    assert!((99_000..=100_000).contains(&pttl), "{pttl}");
    run::<String>(c, &["SET", "e", "v", "KEEPTTL"])
        .await
        .unwrap();
    assert_eq!(run::<i64>(c, &["TTL", "e"]).await.unwrap(), 100);
    assert_eq!(run::<i64>(c, &["PERSIST", "e"]).await.unwrap(), 1);
    assert_eq!(run::<i64>(c, &["PERSIST", "e"]).await.unwrap(), 0);
    assert_eq!(run::<i64>(c, &["TTL", "e"]).await.unwrap(), -1);
    assert_eq!(run::<i64>(c, &["TTL", "missing"]).await.unwrap(), -2);
    assert_eq!(run::<i64>(c, &["PTTL", "missing"]).await.unwrap(), -2);
    assert_eq!(run::<i64>(c, &["EXPIRE", "e", "50"]).await.unwrap(), 1);
    assert_eq!(run::<i64>(c, &["TTL", "e"]).await.unwrap(), 50);
    assert_eq!(
        run::<i64>(c, &["EXPIRE", "e", "10", "GT"]).await.unwrap(),
        0
    );
    assert_eq!(run::<i64>(c, &["PEXPIRE", "e", "20000"]).await.unwrap(), 1);
    assert_eq!(run::<i64>(c, &["TTL", "e"]).await.unwrap(), 20);
    assert_eq!(run::<i64>(c, &["EXPIRE", "missing", "5"]).await.unwrap(), 0);
    assert_eq!(
        run::<String>(c, &["SETEX", "s", "30", "v"]).await.unwrap(),
        "OK"
    );
    assert_eq!(run::<i64>(c, &["TTL", "s"]).await.unwrap(), 30);
    run::<String>(c, &["SET", "short", "v", "PX", "100"])
        .await
        .unwrap();
    // gone once its 100 ms are out
    eventually("short expired", Duration::from_secs(1), async || {
        run::<Option<String>>(c, &["GET", "short"])
            .await
            .unwrap()
            .map_or(Ok(()), Err)
    })
    .await;
    assert_eq!(run::<i64>(c, &["EXPIRE", "s", "0"]).await.unwrap(), 1);
    assert_eq!(run::<i64>(c, &["EXISTS", "s"]).await.unwrap(), 0);

    // counters
    assert_eq!(run::<i64>(c, &["INCR", "n"]).await.unwrap(), 1);
    assert_eq!(run::<i64>(c, &["INCRBY", "n", "41"]).await.unwrap(), 42);
    assert_eq!(run::<i64>(c, &["DECR", "n"]).await.unwrap(), 41);
    assert_eq!(run::<i64>(c, &["DECRBY", "n", "50"]).await.unwrap(), -9);
    assert_eq!(
        run::<String>(c, &["GET", "n"]).await.unwrap(),
        "-9".to_string()
    );
    run::<String>(c, &["SET", "big", &i64::MAX.to_string()])
        .await
        .unwrap();
    assert_eq!(
        run_err(c, &["INCR", "big"]).await,
        ("ERR".into(), "increment or decrement would overflow".into())
    );

    // multi-key commands spread over shards, answers in order
    let keys: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    let values: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    // MSET is atomic in Redis: across shards it is refused, as Redis Cluster refuses it
    let mut mset = vec!["MSET"];
    for (k, v) in keys.iter().zip(&values) {
        mset.push(k);
        mset.push(v);
        run::<String>(c, &["SET", k, v]).await.unwrap();
    }
    assert_eq!(
        run_err(c, &mset).await,
        (
            "CROSSSLOT".into(),
            "Keys in request don't hash to the same slot".into()
        )
    );
    // keys sharing a hash tag share a shard, so MSET takes them
    assert_eq!(
        run::<String>(c, &["MSET", "{t}a", "1", "{t}b", "2"])
            .await
            .unwrap(),
        "OK"
    );
    assert_eq!(run::<i64>(c, &["DEL", "{t}a", "{t}b"]).await.unwrap(), 2);
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(String::as_str));
    mget.insert(5, "nope");
    let got: Vec<Option<String>> = run(c, &mget).await.unwrap();
    let mut want: Vec<Option<String>> = values.iter().cloned().map(Some).collect();
    want.insert(4, None);
    assert_eq!(got, want);
    let shards: std::collections::HashSet<usize> = keys
        .iter()
        .map(|k| s.client.shard_of(k.as_bytes()))
        .collect();
    assert!(shards.len() > 1, "keys spread over shards");
    assert_eq!(
        run::<i64>(c, &["EXISTS", "m0", "m1", "m0", "nope"])
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        run::<i64>(c, &["DEL", "m0", "m1", "m2", "nope"])
            .await
            .unwrap(),
        3
    );
    // k, fresh, e, n, big, m3..m19
    assert_eq!(run::<i64>(c, &["DBSIZE"]).await.unwrap(), 22);

    // INFO
    let info: String = run(c, &["INFO"]).await.unwrap();
    assert!(
        info.starts_with("# Server\r\nredis_version:7.0.0\r\n"),
        "{info}"
    );
    assert!(info.contains("db0:keys=22,"), "{info}");
    assert!(info.contains("keyspace_hits:"), "{info}");

    assert_eq!(run::<String>(c, &["FLUSHALL"]).await.unwrap(), "OK");
    assert_eq!(run::<i64>(c, &["DBSIZE"]).await.unwrap(), 0);

    // handshake commands
    assert_eq!(run::<String>(c, &["SELECT", "0"]).await.unwrap(), "OK");
    assert_eq!(
        run_err(c, &["SELECT", "1"]).await,
        ("ERR".into(), "DB index is out of range".into())
    );
    assert_eq!(
        run::<String>(c, &["CLIENT", "SETNAME", "tests"])
            .await
            .unwrap(),
        "OK"
    );
    assert_eq!(
        run::<String>(c, &["CLIENT", "SETINFO", "LIB-NAME", "x"])
            .await
            .unwrap(),
        "OK"
    );
    let hello = run_err(c, &["HELLO", "3"]).await;
    assert_eq!(hello.0, "NOPROTO");
    assert_eq!(
        run::<Vec<String>>(c, &["CONFIG", "GET", "maxmemory-policy"])
            .await
            .unwrap(),
        ["maxmemory-policy", "allkeys-lru"]
    );
    assert_eq!(
        run::<Vec<String>>(c, &["COMMAND", "DOCS"]).await.unwrap(),
        Vec::<String>::new()
    );
    assert!(run::<i64>(c, &["COMMAND", "COUNT"]).await.unwrap() > 0);
    s.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_client_sees_redis_error_texts() {
    let s = setup(2, |r| r).await;
    let mut con = connect(s.addr).await;
    assert_eq!(
        run_err(&mut con, &["GET"]).await,
        (
            "ERR".into(),
            "wrong number of arguments for 'get' command".into()
        )
    );
    run::<String>(&mut con, &["SET", "word", "abc"])
        .await
        .unwrap();
    assert_eq!(
        run_err(&mut con, &["INCR", "word"]).await,
        (
            "ERR".into(),
            "value is not an integer or out of range".into()
        )
    );
    assert_eq!(
        run_err(&mut con, &["FOO", "a"]).await,
        (
            "ERR".into(),
            "unknown command 'FOO', with args beginning with: 'a' ".into()
        )
    );
    // The exact bytes on the wire.
    let want = "-ERR wrong number of arguments for 'get' command\r\n\
                -ERR value is not an integer or out of range\r\n";
    let (out, closed) = raw(
        s.addr,
        b"*1\r\n$3\r\nGET\r\n*2\r\n$4\r\nINCR\r\n$4\r\nword\r\n",
        want.len(),
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out), want);
    assert!(!closed, "a command error keeps the connection");
    s.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_are_answered_in_order() {
    let s = setup(4, |r| r).await;
    let mut con = connect(s.addr).await;
    let mut pipe = redis::pipe();
    for i in 0..500 {
        pipe.cmd("SET").arg(format!("key{i}")).arg(i).ignore();
    }
    for i in 0..500 {
        pipe.cmd("GET").arg(format!("key{i}"));
    }
    pipe.cmd("INCRBY").arg("key7").arg(3);
    let got: Vec<Value> = pipe.query_async(&mut con).await.unwrap();
    assert_eq!(got.len(), 501);
    for (i, value) in got[..500].iter().enumerate() {
        assert_eq!(value, &Value::BulkString(i.to_string().into_bytes()), "{i}");
    }
    assert_eq!(got[500], Value::Int(10));

    // Raw: many commands in one write, mixed with an inline one.
    let (out, _) = raw(
        s.addr,
        b"*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$3\r\nGET\r\n$4\r\nkey1\r\n*0\r\nPING\r\n",
        b"+PONG\r\n$2\r\nhi\r\n$1\r\n1\r\n+PONG\r\n".len(),
    )
    .await;
    assert_eq!(out, b"+PONG\r\n$2\r\nhi\r\n$1\r\n1\r\n+PONG\r\n");
    s.node.shutdown().await;
}

/// Single-key commands of a pipeline go to their shards together; one key's commands must
/// still apply in order, and multi-key commands in between wait for everything before them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_sees_its_own_writes_in_order() {
    let s = setup(4, |r| r).await;
    let mut con = connect(s.addr).await;
    for round in 0..20 {
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg("k").arg(1);
        pipe.cmd("GET").arg("k");
        pipe.cmd("SET").arg("k").arg(2);
        pipe.cmd("GET").arg("k");
        pipe.cmd("INCRBY").arg("k").arg(5);
        pipe.cmd("MGET").arg("k").arg("other");
        pipe.cmd("DEL").arg("k");
        pipe.cmd("GET").arg("k");
        pipe.cmd("SET").arg("k").arg(round);
        pipe.cmd("GET").arg("k");
        let got: Vec<Value> = pipe.query_async(&mut con).await.unwrap();
        let bulk = |v: &str| Value::BulkString(v.as_bytes().to_vec());
        assert_eq!(got[0], Value::Okay, "round {round}");
        assert_eq!(got[1], bulk("1"), "round {round}");
        assert_eq!(got[3], bulk("2"), "round {round}");
        assert_eq!(got[4], Value::Int(7), "round {round}");
        assert_eq!(
            got[5],
            Value::Array(vec![bulk("7"), Value::Nil]),
            "round {round}"
        );
        assert_eq!(got[6], Value::Int(1), "round {round}");
        assert_eq!(got[7], Value::Nil, "round {round}");
        assert_eq!(got[9], bulk(&round.to_string()), "round {round}");
    }
    s.node.shutdown().await;
}

/// Each command of a batched pipeline gets its own answer, as one by one: an error stays at
/// its position, `SET` options (`NX`, `GET`, `EX`) and `SETEX` answer as Redis does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_commands_keep_their_own_answers_and_errors() {
    let s = setup(4, |r| r).await;
    let mut con = connect(s.addr).await;
    let mut pipe = redis::pipe();
    pipe.cmd("SET").arg("text").arg("abc");
    pipe.cmd("INCRBY").arg("text").arg(1);
    pipe.cmd("GET").arg("text");
    pipe.cmd("SET").arg("n").arg(1).arg("NX");
    pipe.cmd("SET").arg("n").arg(2).arg("NX");
    pipe.cmd("SET").arg("n").arg(3).arg("GET");
    pipe.cmd("SET").arg("gone").arg(1).arg("XX");
    pipe.cmd("SETEX").arg("e").arg(100).arg("v");
    pipe.cmd("SET").arg("p").arg("x").arg("EX").arg(50);
    pipe.cmd("INCRBY").arg("count").arg(2);
    pipe.cmd("INCRBY").arg("count").arg(3);
    pipe.cmd("GET").arg("n");
    pipe.cmd("TTL").arg("e");
    let got: Vec<Value> = pipe.ignore_errors().query_async(&mut con).await.unwrap();
    let bulk = |v: &str| Value::BulkString(v.as_bytes().to_vec());
    assert_eq!(got[0], Value::Okay);
    assert!(
        matches!(&got[1], Value::ServerError(e) if e.details().is_some_and(|d| d.contains("not an integer"))),
        "{:?}",
        got[1]
    );
    assert_eq!(got[2], bulk("abc"));
    assert_eq!(got[3], Value::Okay);
    assert_eq!(got[4], Value::Nil);
    assert_eq!(got[5], bulk("1"));
    assert_eq!(got[6], Value::Nil);
    assert_eq!(got[7], Value::Okay);
    assert_eq!(got[8], Value::Okay);
    assert_eq!(got[9], Value::Int(2));
    assert_eq!(got[10], Value::Int(5));
    assert_eq!(got[11], bulk("3"));
    assert!(matches!(got[12], Value::Int(99 | 100)), "{:?}", got[12]);
    s.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_close_only_that_connection() {
    let s = setup(2, |r| {
        r.limits(Limits {
            max_bulk_len: 16,
            ..Limits::default()
        })
    })
    .await;
    let mut con = connect(s.addr).await;
    let want = b"-ERR Protocol error: invalid multibulk length\r\n";
    let (out, closed) = raw(s.addr, b"*abc\r\n", want.len()).await;
    assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want));
    assert!(closed, "the connection is closed after a protocol error");

    // Over the bulk limit: refused from the header, before the payload.
    let want = b"-ERR Protocol error: invalid bulk length\r\n";
    let (out, closed) = raw(s.addr, b"*2\r\n$3\r\nGET\r\n$17\r\n", want.len()).await;
    assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want));
    assert!(closed);

    // Replies before the bad frame are still sent.
    let (out, closed) = raw(s.addr, b"PING\r\n*1\r\n%\r\n", 7 + 10).await;
    assert!(out.starts_with(b"+PONG\r\n-ERR Protocol error"), "{out:?}");
    assert!(closed);

    // Inline commands as telnet sends them.
    let (out, _) = raw(s.addr, b"PING\r\n", 7).await;
    assert_eq!(out, b"+PONG\r\n");

    // QUIT: +OK, then closed.
    let (out, closed) = raw(s.addr, b"QUIT\r\nPING\r\n", 5).await;
    assert_eq!(out, b"+OK\r\n");
    assert!(closed);

    // The other connection is unaffected.
    assert_eq!(run::<String>(&mut con, &["PING"]).await.unwrap(), "PONG");
    s.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused() {
    let s = setup(1, |r| r.max_connections(1)).await;
    let mut con = connect(s.addr).await;
    assert_eq!(run::<String>(&mut con, &["PING"]).await.unwrap(), "PONG");
    let want = b"-ERR max number of clients reached\r\n";
    let (out, closed) = raw(s.addr, b"PING\r\n", want.len()).await;
    assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want));
    assert!(closed);
    drop(con);
    // The place comes back once the first connection is gone.
    eventually("a place free after a disconnect", T, async || {
        let (out, _) = raw(s.addr, b"PING\r\n", 7).await;
        if out == b"+PONG\r\n" {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out).into_owned())
        }
    })
    .await;
    s.node.shutdown().await;
}

/// A connection to `to` from the loopback address `from` (all of 127.0.0.0/8 is loopback, so
/// 127.0.0.2 is a second client address).
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    tokio::time::timeout(T, socket.connect(to))
        .await
        .unwrap()
        .unwrap()
}

/// Writes `input` on `stream` and reads `want` bytes back.
async fn exchange(stream: &mut TcpStream, input: &[u8], want: usize) -> Vec<u8> {
    stream.write_all(input).await.unwrap();
    let mut out = vec![0u8; want];
    tokio::time::timeout(T, stream.read_exact(&mut out))
        .await
        .expect("reply in time")
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_per_address_limit_is_refused_while_another_address_is_served() {
    let s = setup(1, |r| r.max_connections_per_address(2)).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = connect_from("127.0.0.1", s.addr).await;
        assert_eq!(exchange(&mut c, b"PING\r\n", 7).await, b"+PONG\r\n");
        held.push(c);
    }
    // the third from 127.0.0.1 gets Redis's maxclients error and the close
    let mut third = connect_from("127.0.0.1", s.addr).await;
    third.write_all(b"PING\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(T, third.read_to_end(&mut out))
        .await
        .expect("refused at once")
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out),
        "-ERR max number of clients reached\r\n"
    );
    // another address is served, and so are the held connections
    let mut other = connect_from("127.0.0.2", s.addr).await;
    assert_eq!(exchange(&mut other, b"PING\r\n", 7).await, b"+PONG\r\n");
    for c in &mut held {
        assert_eq!(exchange(c, b"PING\r\n", 7).await, b"+PONG\r\n");
    }
    s.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_an_idle_connection_without_waiting_out_the_drain() {
    let s = setup(1, |r| r.drain_timeout(Duration::from_secs(5))).await;
    let mut c = connect_from("127.0.0.1", s.addr).await;
    assert_eq!(exchange(&mut c, b"SET k v\r\n", 5).await, b"+OK\r\n");
    let started = std::time::Instant::now();
    let shutdown = tokio::spawn(async move { s.node.shutdown().await });
    let mut out = Vec::new();
    tokio::time::timeout(T, c.read_to_end(&mut out))
        .await
        .expect("closed on drain")
        .unwrap();
    assert!(out.is_empty(), "nothing was asked: {out:?}");
    tokio::time::timeout(T, shutdown).await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "an idle connection does not hold the drain to its timeout"
    );
}

/// Messages the cache's shards have handled so far.
fn shard_messages(node: &Node) -> u64 {
    node.actor_stats()
        .iter()
        .filter(|a| a.name.starts_with("cache."))
        .map(|a| a.messages_handled)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_run_on_the_shards_tables_in_place_without_a_message() {
    let s = setup(2, |r| r).await;
    let mut con = connect(s.addr).await;
    // once both shards have shared their tables, a command is one message at most
    run::<String>(&mut con, &["SET", "warm", "up"])
        .await
        .unwrap();
    let before = shard_messages(&s.node);
    for i in 0..200 {
        let key = format!("key{i}");
        run::<String>(&mut con, &["SET", &key, "v"]).await.unwrap();
        let got: Option<String> = run(&mut con, &["GET", &key]).await.unwrap();
        assert_eq!(got.as_deref(), Some("v"));
    }
    let handled = shard_messages(&s.node) - before;
    // 400 commands, one at a time: as messages they would be 400; what is handled is the
    // shards' own sweeps (one each per 100 ms)
    assert!(handled < 100, "{handled} shard messages for 400 commands");
    // what runs in place is counted as the shard counts it
    let stats = s.client.stats().await.unwrap();
    assert_eq!((stats.keys, stats.hits), (201, 200));
    s.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_shard_comes_back_empty_and_serving() {
    let s = setup(3, |r| r).await;
    let mut con = connect(s.addr).await;
    let keys: Vec<String> = (0..30).map(|i| format!("key{i}")).collect();
    for k in &keys {
        run::<String>(&mut con, &["SET", k, "v"]).await.unwrap();
    }
    let on_0: Vec<&String> = keys
        .iter()
        .filter(|k| s.client.shard_of(k.as_bytes()) == 0)
        .collect();
    assert!(!on_0.is_empty() && on_0.len() < keys.len());

    assert!(s.node.kill("cache.0"));
    // Serving again once restarted: the first calls may fail meanwhile.
    eventually("shard 0 serves again", T, async || {
        match s.client.shards()[0].call(ShardMsg::DbSize, T).await {
            Ok(n) => {
                assert_eq!(n, 0, "the restarted shard starts empty");
                Ok(())
            }
            other => Err(other),
        }
    })
    .await;
    let mut got = 0;
    for k in &keys {
        let v: Option<String> = run(&mut con, &["GET", k]).await.unwrap();
        if s.client.shard_of(k.as_bytes()) == 0 {
            assert_eq!(v, None, "{k} was on the crashed shard");
        } else {
            assert_eq!(v.as_deref(), Some("v"), "{k} was on a healthy shard");
            got += 1;
        }
    }
    assert_eq!(got, keys.len() - on_0.len());
    run::<String>(&mut con, &["SET", on_0[0], "again"])
        .await
        .unwrap();
    assert_eq!(
        run::<Option<String>>(&mut con, &["GET", on_0[0]])
            .await
            .unwrap(),
        Some("again".into())
    );
    s.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_server_comes_back_on_the_same_port() {
    let s = setup(2, |r| r).await;
    let mut con = connect(s.addr).await;
    run::<String>(&mut con, &["SET", "k", "v"]).await.unwrap();
    assert!(s.node.kill("resp"));
    eventually(
        "the restarted server on the same address, shards kept",
        T,
        async || {
            let (out, _) = raw_or_empty(s.addr, b"GET k\r\n", 7).await;
            if out == b"$1\r\nv\r\n" {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&out).into_owned())
            }
        },
    )
    .await;
    s.node.shutdown().await;
}

/// As [`raw`], but a refused or reset connection gives no bytes.
async fn raw_or_empty(addr: SocketAddr, input: &[u8], want: usize) -> (Vec<u8>, bool) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return (Vec::new(), true);
    };
    if stream.write_all(input).await.is_err() {
        return (Vec::new(), true);
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < want {
        match tokio::time::timeout(T, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => return (out, true),
        }
    }
    (out, false)
}

/// With `requirepass`, nothing runs before `AUTH` (`-NOAUTH`, nothing written, pipelined or
/// not); a wrong password is `-WRONGPASS`; the right one, by `AUTH`, `AUTH default`, the
/// client's URL or `HELLO 2 AUTH`, opens the connection, also within one pipeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_is_required_before_any_command() {
    let s = setup(2, |r| r.requirepass("s3cret")).await;
    assert!(!format!("{:?}", RespServer::new("x:1").requirepass("s3cret")).contains("s3cret"));
    let mut con = connect(s.addr).await;
    for words in [
        &["SET", "k", "1"][..],
        &["GET", "k"],
        &["PING"],
        &["DBSIZE"],
    ] {
        let (code, _) = run_err(&mut con, words).await;
        assert_eq!(code, "NOAUTH", "{words:?}");
    }
    // a pipeline before AUTH: every command refused, none applied
    let mut pipe = redis::pipe();
    pipe.cmd("SET").arg("k").arg("2");
    pipe.cmd("SET").arg("j").arg("2");
    pipe.cmd("GET").arg("k");
    let refused: Vec<Value> = pipe.ignore_errors().query_async(&mut con).await.unwrap();
    assert!(
        refused
            .iter()
            .all(|v| matches!(v, Value::ServerError(e) if e.code() == "NOAUTH")),
        "{refused:?}"
    );
    let (code, _) = run_err(&mut con, &["AUTH", "nope"]).await;
    assert_eq!(code, "WRONGPASS");
    let (code, _) = run_err(&mut con, &["AUTH", "someone", "s3cret"]).await;
    assert_eq!(code, "WRONGPASS");
    let (code, _) = run_err(&mut con, &["HELLO", "2"]).await;
    assert_eq!(code, "NOAUTH");
    let ok: String = run(&mut con, &["AUTH", "s3cret"]).await.unwrap();
    assert_eq!(ok, "OK");
    assert_eq!(
        run::<Option<String>>(&mut con, &["GET", "k"])
            .await
            .unwrap(),
        None
    );
    let _: () = run(&mut con, &["SET", "k", "3"]).await.unwrap();

    // AUTH first in a pipeline opens the rest of it
    let mut fresh = connect(s.addr).await;
    let mut pipe = redis::pipe();
    pipe.cmd("AUTH").arg("default").arg("s3cret");
    pipe.cmd("SET").arg("a").arg("1");
    pipe.cmd("GET").arg("a");
    pipe.cmd("GET").arg("k");
    let got: Vec<Value> = pipe.query_async(&mut fresh).await.unwrap();
    assert_eq!(
        got,
        vec![
            Value::Okay,
            Value::Okay,
            Value::BulkString(b"1".to_vec()),
            Value::BulkString(b"3".to_vec())
        ]
    );

    // the password in the client's URL
    let mut by_url = redis::Client::open(format!("redis://:s3cret@{}/", s.addr))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert_eq!(
        run::<String>(&mut by_url, &["GET", "a"]).await.unwrap(),
        "1"
    );

    // HELLO 2 AUTH, as clients that negotiate the protocol send it
    let mut hello = connect(s.addr).await;
    let answer: Vec<Value> = run(&mut hello, &["HELLO", "2", "AUTH", "default", "s3cret"])
        .await
        .unwrap();
    assert_eq!(answer[0], Value::BulkString(b"server".to_vec()));
    assert_eq!(answer[5], Value::Int(2));
    assert_eq!(run::<String>(&mut hello, &["GET", "a"]).await.unwrap(), "1");
    let (code, _) = run_err(&mut hello, &["HELLO", "3"]).await;
    assert_eq!(code, "NOPROTO");
    s.node.shutdown().await;
}

/// Without `requirepass`, `AUTH password` is an error as in Redis, and nothing is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_without_a_password_configured_is_an_error() {
    let s = setup(1, |r| r).await;
    let mut con = connect(s.addr).await;
    let (code, detail) = run_err(&mut con, &["AUTH", "x"]).await;
    assert_eq!(code, "ERR");
    assert!(
        detail.contains("without any password configured"),
        "{detail}"
    );
    let ok: String = run(&mut con, &["AUTH", "default", "anything"])
        .await
        .unwrap();
    assert_eq!(ok, "OK");
    s.node.shutdown().await;
}

/// With an idle timeout (Redis's `timeout`), a client that sends nothing for that long is
/// closed; one that keeps talking is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_after_the_idle_timeout() {
    let s = setup(1, |r| r.idle_timeout(Duration::from_millis(300))).await;
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    let mut talking = TcpStream::connect(s.addr).await.unwrap();
    assert_eq!(exchange(&mut silent, b"PING\r\n", 7).await, b"+PONG\r\n");
    // the talking client pings every 100 ms while the silent one waits to be closed
    let mut every = tokio::time::interval(Duration::from_millis(100));
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(T, async {
        loop {
            tokio::select! {
                read = silent.read(&mut byte) => break read,
                _ = every.tick() => {
                    assert_eq!(exchange(&mut talking, b"PING\r\n", 7).await, b"+PONG\r\n");
                }
            }
        }
    })
    .await
    .expect("the silent client closed in time");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    assert_eq!(exchange(&mut talking, b"PING\r\n", 7).await, b"+PONG\r\n");
    s.node.shutdown().await;
}

/// A client that pipelines 10,000 reads of a 100 KB value (1 GB of replies) and reads none of
/// them gets at most a few batches' worth run and buffered for it: the server writes its
/// replies as they pile up and serves the rest only as the client reads. What it does read is
/// right; when it goes away, the rest is never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_a_client_does_not_read_stay_bounded() {
    let s = setup(1, |r| r).await;
    let value = "v".repeat(100_000);
    s.client.set("big", value.clone()).await.unwrap();
    let hits = async || s.client.stats().await.unwrap().hits;
    let before = hits().await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(&b"GET big\r\n".repeat(10_000))
        .await
        .unwrap();
    eventually("the server started answering", T, async || {
        hits().await - before >= 10
    })
    .await;
    // observed over a while: it runs no more than a few batches ahead of the client
    for _ in 0..5 {
        let ran = hits().await - before;
        assert!(ran <= 256, "{ran} reads run for a client that read nothing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reply = format!("${}\r\n{value}\r\n", value.len());
    let mut got = vec![0u8; reply.len() * 500];
    tokio::time::timeout(T, stream.read_exact(&mut got))
        .await
        .expect("the first replies in time")
        .unwrap();
    assert!(got.chunks(reply.len()).all(|c| c == reply.as_bytes()));
    drop(stream);
    eventually("the reader gone", T, async || {
        connected_clients(s.addr).await == 1
    })
    .await;
    let ran = hits().await - before;
    assert!(
        ran < 2_000,
        "{ran} of 10,000 reads run for a client that read 500"
    );
    s.node.shutdown().await;
}

/// `connected_clients` from `INFO clients`, asked on a connection of its own (counted too).
async fn connected_clients(addr: SocketAddr) -> u64 {
    let mut con = connect(addr).await;
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(&mut con)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("connected_clients in INFO")
}

/// A `*1048576` array sent a few elements at a time: the server keeps what it has checked
/// (the parser resumes rather than walking the array again at every read; its cost is
/// `resp::frame::tests::a_trickled_array_is_examined_once_not_once_per_read`) and cuts the
/// client off with Redis's error once its buffered request passes the query buffer limit,
/// while it serves everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_huge_array_is_cut_off_at_the_query_buffer_limit() {
    let limit = 1 << 20;
    let s = setup(1, |r| r.query_buffer_limit(limit)).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(b"*1048576\r\n").await.unwrap();
    let chunk = b"$1\r\nx\r\n".repeat(1_000);
    let mut sent = 0;
    // bounded: 4 MiB at most, far past the limit
    while sent < 4 * limit {
        if stream.write_all(&chunk).await.is_err() {
            break;
        }
        sent += chunk.len();
        let mut probe = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_millis(1), stream.peek(&mut probe)).await;
        if matches!(closed, Ok(Ok(_)) | Ok(Err(_))) {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(T, stream.read_to_end(&mut answer)).await;
    assert_eq!(
        String::from_utf8_lossy(&answer),
        "-ERR Protocol error: client query buffer limit exceeded\r\n"
    );
    let mut con = connect(s.addr).await;
    let pong: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
    assert_eq!(pong, "PONG");
    s.node.shutdown().await;
}

/// A client that pipelines reads and never reads a reply is closed once its replies have
/// waited unread for the send timeout; the server holds no more for it meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_after_the_send_timeout() {
    let s = setup(1, |r| r.send_timeout(Duration::from_millis(300))).await;
    s.client.set("big", "v".repeat(100_000)).await.unwrap();
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    // served once, so the server counts it before it goes silent
    stream.write_all(b"PING\r\n").await.unwrap();
    let mut pong = [0u8; 7];
    stream.read_exact(&mut pong).await.unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    stream
        .write_all(&b"GET big\r\n".repeat(3_000))
        .await
        .unwrap();
    eventually("the silent reader cut off", T, async || {
        connected_clients(s.addr).await == 1
    })
    .await;
    // what reaches it is what the socket buffers held, then the end
    let mut got = Vec::new();
    let read = tokio::time::timeout(T, stream.read_to_end(&mut got)).await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "the connection ended"
    );
    assert!(got.len() < 3_000 * 100_000, "{} bytes", got.len());
    s.node.shutdown().await;
}

/// `CONFIG GET` reports the client limits by Redis's names, matching patterns as Redis does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_get_reports_the_client_limits_by_their_redis_names() {
    let s = setup(1, |r| {
        r.max_connections(77)
            .idle_timeout(Duration::from_secs(30))
            .query_buffer_limit(4 << 20)
    })
    .await;
    let mut con = connect(s.addr).await;
    let all: Vec<String> = run(&mut con, &["CONFIG", "GET", "*"]).await.unwrap();
    assert_eq!(
        all,
        [
            "maxmemory",
            "16777216",
            "maxmemory-policy",
            "allkeys-lru",
            "maxclients",
            "77",
            "timeout",
            "30",
            "client-query-buffer-limit",
            "4194304",
            "proto-max-bulk-len",
            "536870912",
            "save",
            "",
            "appendonly",
            "no"
        ]
    );
    // what redis-benchmark reads before it starts, as a server without persistence answers
    let save: Vec<String> = run(&mut con, &["CONFIG", "GET", "save"]).await.unwrap();
    assert_eq!(save, ["save", ""]);
    let refused = run::<String>(&mut con, &["CONFIG", "SET", "appendonly", "yes"]).await;
    assert!(
        refused.is_err_and(|e| e.to_string().contains("keeps nothing on disk")),
        "appendonly yes is refused"
    );
    let some: Vec<String> = run(&mut con, &["CONFIG", "GET", "MAX*", "time?ut", "nothing"])
        .await
        .unwrap();
    assert_eq!(
        some,
        [
            "maxmemory",
            "16777216",
            "maxmemory-policy",
            "allkeys-lru",
            "maxclients",
            "77",
            "timeout",
            "30"
        ]
    );
    s.node.shutdown().await;
}

/// `CONFIG SET` changes the memory bound and policy on every shard and the client limits,
/// checks every pair before applying any, and answers Redis's errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_set_changes_memory_policy_and_client_limits() {
    let s = setup(2, |r| r).await;
    let mut con = connect(s.addr).await;
    let c = &mut con;
    let get = async |c: &mut MultiplexedConnection, name: &str| -> String {
        let pair: Vec<String> = run(c, &["CONFIG", "GET", name]).await.unwrap();
        pair[1].clone()
    };
    // fill well past a small bound, then lower the bound: the LRU keys go at once
    let value = "x".repeat(1000);
    for i in 0..200 {
        run::<String>(c, &["SET", &format!("k{i}"), &value])
            .await
            .unwrap();
    }
    assert_eq!(run::<i64>(c, &["DBSIZE"]).await.unwrap(), 200);
    let ok: String = run(c, &["CONFIG", "SET", "maxmemory", "100kb", "timeout", "7"])
        .await
        .unwrap();
    assert_eq!(ok, "OK");
    assert_eq!(get(c, "maxmemory").await, "102400");
    assert_eq!(get(c, "timeout").await, "7");
    // the shards' shares add up to what was set, odd or not
    let ok: String = run(c, &["CONFIG", "SET", "maxmemory", "102401"])
        .await
        .unwrap();
    assert_eq!(ok, "OK");
    assert_eq!(get(c, "maxmemory").await, "102401");
    let left = run::<i64>(c, &["DBSIZE"]).await.unwrap();
    assert!((90..=102).contains(&left), "{left} keys left in 100 KiB");
    assert_eq!(
        run::<Option<String>>(c, &["GET", "k199"]).await.unwrap(),
        Some(value.clone())
    );
    assert_eq!(
        run::<Option<String>>(c, &["GET", "k0"]).await.unwrap(),
        None
    );

    // noeviction: a write that does not fit is refused, reads and deletes go on
    let ok: String = run(c, &["CONFIG", "SET", "maxmemory-policy", "noeviction"])
        .await
        .unwrap();
    assert_eq!(ok, "OK");
    assert_eq!(get(c, "maxmemory-policy").await, "noeviction");
    let mut refused = 0;
    for i in 200..260 {
        if run::<String>(c, &["SET", &format!("k{i}"), &value])
            .await
            .is_err()
        {
            refused += 1;
        }
    }
    assert!(refused > 0, "a full cache under noeviction refuses writes");
    assert_eq!(
        run_err(c, &["SET", "k999", &value]).await,
        (
            "OOM".into(),
            "command not allowed when used memory > 'maxmemory'.".into()
        )
    );
    assert_eq!(
        run::<Option<String>>(c, &["GET", "k199"]).await.unwrap(),
        Some(value.clone())
    );
    assert!(
        run::<i64>(c, &["DEL", "k199", "k198", "k197"])
            .await
            .unwrap()
            > 0
    );

    // volatile-lru evicts only keys with an expiry
    let ok: String = run(c, &["CONFIG", "SET", "maxmemory-policy", "volatile-lru"])
        .await
        .unwrap();
    assert_eq!(ok, "OK");
    run::<String>(c, &["FLUSHALL"]).await.unwrap();
    for i in 0..50 {
        run::<String>(c, &["SET", &format!("p{i}"), &value])
            .await
            .unwrap();
    }
    for i in 0..100 {
        let _ = run::<String>(c, &["SET", &format!("v{i}"), &value, "EX", "1000"]).await;
    }
    assert_eq!(
        run::<i64>(c, &["EXISTS", "p0", "p10", "p20", "p30", "p40", "p49"])
            .await
            .unwrap(),
        6,
        "keys without an expiry are never evicted under volatile-lru"
    );

    // errors, and nothing applied when one pair is bad
    assert_eq!(
        run_err(
            c,
            &[
                "CONFIG",
                "SET",
                "timeout",
                "9",
                "maxmemory-policy",
                "allkeys-lfu"
            ]
        )
        .await,
        (
            "ERR".into(),
            "CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) \
             must be one of the following: allkeys-lru, volatile-lru, noeviction"
                .into()
        )
    );
    assert_eq!(get(c, "timeout").await, "7");
    assert_eq!(
        run_err(c, &["CONFIG", "SET", "maxmemory", "lots"]).await.1,
        "CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a \
         memory value"
    );
    assert_eq!(
        run_err(c, &["CONFIG", "SET", "nonsense", "1"]).await.1,
        "Unknown option or number of arguments for CONFIG SET - 'nonsense'"
    );
    // maxclients applies to new connections at once
    let ok: String = run(c, &["CONFIG", "SET", "maxclients", "1"]).await.unwrap();
    assert_eq!(ok, "OK");
    let (refusal, _) = raw(s.addr, b"PING\r\n", 1).await;
    assert!(
        refusal.starts_with(b"-ERR max number of clients reached"),
        "{}",
        String::from_utf8_lossy(&refusal)
    );
    s.node.shutdown().await;
}

/// A request trickled in a few bytes at a time, blank lines before it and another command
/// right behind it in the same write, is answered once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_request_and_the_one_behind_it_are_answered_in_order() {
    let s = setup(1, |r| r).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let wire =
        b"\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n";
    let (trickled, rest) = wire.split_at(30);
    for piece in trickled.chunks(2) {
        stream.write_all(piece).await.unwrap();
        stream.flush().await.unwrap();
        tokio::task::yield_now().await;
    }
    stream.write_all(rest).await.unwrap();
    let expected = b"+OK\r\n$5\r\nvalue\r\n+PONG\r\n";
    let mut got = vec![0u8; expected.len()];
    tokio::time::timeout(T, stream.read_exact(&mut got))
        .await
        .expect("the answers in time")
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
    s.node.shutdown().await;
}
