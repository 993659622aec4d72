//! The memcached front end over real sockets: every command's bytes as memcached answers
//! them, pipelining and `noreply`, keys spread over shards, values shared with RESP, a real
//! memcached client crate (`async-memcached`), bad input and the limits, and a read-through
//! cache.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use troupe_cache::memcache::Limits;
use troupe_cache::{
    Backing, BackingError, CacheClient, CacheSpec, MemcacheServer, MemcacheServerMsg,
    RespServerMsg, Versioned,
};
use troupe_runtime::{Mesh, Node, NodeConfig, SupervisorSpec};
use troupe_testkit::eventually;

const T: Duration = Duration::from_secs(10);

/// A node with a cache served over memcached and RESP.
struct Cache {
    node: Node,
    client: CacheClient,
    memcached: SocketAddr,
    resp: SocketAddr,
}

async fn start(spec: CacheSpec) -> Cache {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).expect("node");
    let (children, client) = spec.children(&node, "cache").expect("names free");
    node.start(SupervisorSpec::one_for_one(), children)
        .await
        .expect("started");
    let memcached = node.addr::<MemcacheServerMsg>("n", "cache.memcached");
    let memcached = eventually("the memcached server bound", T, async || {
        memcached
            .call(MemcacheServerMsg::LocalAddr, T)
            .await
            .ok()
            .flatten()
    })
    .await;
    let resp = node.addr::<RespServerMsg>("n", "cache.resp");
    let resp = eventually("the RESP server bound", T, async || {
        resp.call(RespServerMsg::LocalAddr, T).await.ok().flatten()
    })
    .await;
    Cache {
        node,
        client,
        memcached,
        resp,
    }
}

fn plain(shards: usize, server: MemcacheServer) -> CacheSpec {
    CacheSpec::lru(10_000)
        .shards(shards)
        .max_bytes(64 << 20)
        .resp("127.0.0.1:0")
        .memcached(server)
}

/// A raw connection: what is sent, and exactly the bytes that come back.
struct Raw(TcpStream);

impl Raw {
    async fn connect(addr: SocketAddr) -> Self {
        Self(TcpStream::connect(addr).await.expect("connect"))
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.0.write_all(bytes).await.expect("write");
    }

    /// Reads exactly `want.len()` bytes and checks they are `want`.
    async fn expect(&mut self, want: &str) {
        let mut got = vec![0; want.len()];
        tokio::time::timeout(T, self.0.read_exact(&mut got))
            .await
            .expect("a reply in time")
            .expect("read");
        assert_eq!(
            String::from_utf8_lossy(&got),
            want,
            "the server answered otherwise"
        );
    }

    async fn roundtrip(&mut self, send: &str, want: &str) {
        self.send(send.as_bytes()).await;
        self.expect(want).await;
    }

    /// Reads until `end` ends what was read.
    async fn read_until(&mut self, end: &str) -> String {
        let mut got = Vec::new();
        while !got.ends_with(end.as_bytes()) {
            let mut buf = [0; 4096];
            let n = tokio::time::timeout(T, self.0.read(&mut buf))
                .await
                .expect("a reply in time")
                .expect("read");
            assert!(
                n > 0,
                "closed before {end:?}: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    /// Waits for the server to close the connection, discarding what it still sends.
    async fn closed(&mut self) {
        let mut buf = [0; 4096];
        loop {
            match tokio::time::timeout(T, self.0.read(&mut buf))
                .await
                .expect("closed in time")
            {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

/// The CAS unique `gets` reports for `key`.
async fn cas_of(conn: &mut Raw, key: &str) -> u64 {
    conn.send(format!("gets {key}\r\n").as_bytes()).await;
    let reply = conn.read_until("END\r\n").await;
    let header = reply.lines().next().expect("a VALUE line");
    header
        .rsplit(' ')
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no CAS in {reply:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answers_in_memcached_bytes() {
    let cache = start(plain(1, MemcacheServer::new("127.0.0.1:0"))).await;
    let mut c = Raw::connect(cache.memcached).await;
    c.roundtrip("get k\r\n", "END\r\n").await;
    c.roundtrip("set k 42 0 5\r\nhello\r\n", "STORED\r\n").await;
    c.roundtrip("get k\r\n", "VALUE k 42 5\r\nhello\r\nEND\r\n")
        .await;
    let cas = cas_of(&mut c, "k").await;
    c.roundtrip("add k 0 0 1\r\nx\r\n", "NOT_STORED\r\n").await;
    c.roundtrip("replace nope 0 0 1\r\nx\r\n", "NOT_STORED\r\n")
        .await;
    c.roundtrip("append k 7 0 1\r\n!\r\n", "STORED\r\n").await;
    c.roundtrip("prepend k 7 0 1\r\n>\r\n", "STORED\r\n").await;
    c.roundtrip("get k\r\n", "VALUE k 42 7\r\n>hello!\r\nEND\r\n")
        .await;
    c.roundtrip(&format!("cas k 1 0 1 {cas}\r\nx\r\n"), "EXISTS\r\n")
        .await;
    let cas = cas_of(&mut c, "k").await;
    c.roundtrip(&format!("cas k 1 0 1 {cas}\r\nx\r\n"), "STORED\r\n")
        .await;
    c.roundtrip("cas gone 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n")
        .await;
    c.send(b"gets k\r\n").await;
    let reply = c.read_until("END\r\n").await;
    assert!(
        reply.starts_with("VALUE k 1 1 ") && reply.ends_with("\r\nx\r\nEND\r\n"),
        "{reply:?}"
    );
    assert_ne!(cas_of(&mut c, "k").await, cas, "a write takes a new CAS");
    c.roundtrip("set n 0 0 2\r\n10\r\n", "STORED\r\n").await;
    c.roundtrip("incr n 5\r\n", "15\r\n").await;
    c.roundtrip("decr n 100\r\n", "0\r\n").await;
    c.roundtrip("get n\r\n", "VALUE n 0 2\r\n0 \r\nEND\r\n")
        .await;
    c.roundtrip(
        "incr k 1\r\n",
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    )
    .await;
    c.roundtrip("incr nope 1\r\n", "NOT_FOUND\r\n").await;
    c.roundtrip("touch k 100\r\n", "TOUCHED\r\n").await;
    c.roundtrip("touch nope 100\r\n", "NOT_FOUND\r\n").await;
    c.roundtrip("gat 100 k nope\r\n", "VALUE k 1 1\r\nx\r\nEND\r\n")
        .await;
    c.roundtrip("delete k\r\n", "DELETED\r\n").await;
    c.roundtrip("delete k\r\n", "NOT_FOUND\r\n").await;
    // noreply: nothing comes back, errors included; the next reply is the next command's
    c.send(b"set q 0 0 1 noreply\r\na\r\nincr q 1 noreply\r\ndelete zz noreply\r\n")
        .await;
    c.roundtrip("get q\r\n", "VALUE q 0 1\r\na\r\nEND\r\n")
        .await;
    c.roundtrip("verbosity 1\r\n", "OK\r\n").await;
    c.roundtrip("version\r\n", "VERSION 1.6.0-troupe\r\n").await;
    c.roundtrip("bogus\r\n", "ERROR\r\n").await;
    c.roundtrip("set k 0 0\r\n", "ERROR\r\n").await;
    c.roundtrip(
        "set k x 0 1\r\n",
        "CLIENT_ERROR bad command line format\r\n",
    )
    .await;
    // bad data is consumed; what follows its announced length is read as a line
    c.roundtrip(
        "set k 0 0 1\r\nabc\r\n",
        "CLIENT_ERROR bad data chunk\r\nERROR\r\n",
    )
    .await;
    let stats = {
        c.send(b"stats\r\n").await;
        c.read_until("END\r\n").await
    };
    for stat in [
        "STAT pid ",
        "STAT uptime ",
        "STAT time ",
        "STAT version 1.6.0-troupe\r\n",
        "STAT curr_connections 1\r\n",
        "STAT total_connections ",
        "STAT cmd_get ",
        "STAT cmd_set ",
        "STAT get_hits ",
        "STAT get_misses ",
        "STAT curr_items 2\r\n",
        "STAT bytes ",
        "STAT evictions 0\r\n",
        "STAT limit_maxbytes 67108864\r\n",
    ] {
        assert!(stats.contains(stat), "no {stat:?} in {stats}");
    }
    c.roundtrip("stats reset\r\n", "RESET\r\n").await;
    c.roundtrip("flush_all\r\n", "OK\r\n").await;
    c.roundtrip("get q n\r\n", "END\r\n").await;
    c.send(b"quit\r\n").await;
    c.closed().await;
    cache.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_gets_span_shards_and_values_are_shared_with_resp() {
    let cache = start(plain(4, MemcacheServer::new("127.0.0.1:0"))).await;
    let mut c = Raw::connect(cache.memcached).await;
    // one write, holding 50 storage commands and a 50-key retrieval
    let mut pipeline = String::new();
    for i in 0..50 {
        pipeline.push_str(&format!(
            "set key{i} {i} 0 {}\r\nvalue{i}\r\n",
            format!("value{i}").len()
        ));
    }
    let keys: Vec<String> = (0..50).map(|i| format!("key{i}")).collect();
    pipeline.push_str(&format!("get {} missing\r\n", keys.join(" ")));
    let mut want = "STORED\r\n".repeat(50);
    for i in 0..50 {
        want.push_str(&format!(
            "VALUE key{i} {i} {}\r\nvalue{i}\r\n",
            format!("value{i}").len()
        ));
    }
    want.push_str("END\r\n");
    c.roundtrip(&pipeline, &want).await;

    // RESP sees memcached's values as strings, memcached RESP's with flags 0
    let mut resp = redis::Client::open(format!("redis://{}/", cache.resp))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let got: String = redis::cmd("GET")
        .arg("key7")
        .query_async(&mut resp)
        .await
        .unwrap();
    assert_eq!(got, "value7");
    let _: () = redis::cmd("SET")
        .arg("r")
        .arg("from resp")
        .query_async(&mut resp)
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg("h")
        .arg("f")
        .arg("v")
        .query_async(&mut resp)
        .await
        .unwrap();
    c.roundtrip("get r h\r\n", "VALUE r 0 9\r\nfrom resp\r\nEND\r\n")
        .await;
    // a hash is no item to memcached: touch misses, set replaces it
    c.roundtrip("touch h 10\r\n", "NOT_FOUND\r\n").await;
    c.roundtrip("set h 3 0 1\r\nv\r\n", "STORED\r\n").await;
    let kind: String = redis::cmd("TYPE")
        .arg("h")
        .query_async(&mut resp)
        .await
        .unwrap();
    assert_eq!(kind, "string");
    assert_eq!(
        cache.client.get("key49").await.unwrap(),
        Some(Bytes::from("value49"))
    );
    cache.node.shutdown().await;
}

/// A batch whose replies pass the point where a connection writes its output (1 MiB) keeps
/// every reply in order: values past it are written out after the batch, not dropped or
/// reordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_past_the_write_threshold_keep_their_order() {
    let cache = start(plain(2, MemcacheServer::new("127.0.0.1:0"))).await;
    let mut c = Raw::connect(cache.memcached).await;
    let value = |name: char| name.to_string().repeat(600 << 10);
    for name in ['a', 'b', 'c'] {
        let v = value(name);
        c.roundtrip(
            &format!("set {name} 7 0 {}\r\n{v}\r\n", v.len()),
            "STORED\r\n",
        )
        .await;
    }
    // one write: retrievals and a storage command whose replies together pass 3 MiB
    let send = "get a\r\nget b\r\nset x 1 0 1\r\nz\r\nget c missing\r\nget x\r\nget a b c\r\n";
    let hit = |name: char| format!("VALUE {name} 7 {}\r\n{}\r\n", 600 << 10, value(name));
    let mut want = String::new();
    want.push_str(&format!("{}END\r\n{}END\r\nSTORED\r\n", hit('a'), hit('b')));
    want.push_str(&format!("{}END\r\nVALUE x 1 1\r\nz\r\nEND\r\n", hit('c')));
    want.push_str(&format!("{}{}{}END\r\n", hit('a'), hit('b'), hit('c')));
    c.roundtrip(send, &want).await;
    cache.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memcached_client_crate_works_against_it() {
    use async_memcached::{AsciiProtocol, Client};
    let cache = start(plain(2, MemcacheServer::new("127.0.0.1:0"))).await;
    let mut client = Client::new(format!("tcp://{}", cache.memcached))
        .await
        .expect("connects");
    assert_eq!(client.version().await.unwrap().trim_end(), "1.6.0-troupe");
    client
        .set("greeting", "hello", None, Some(7))
        .await
        .unwrap();
    let value = client.get("greeting").await.unwrap().expect("a hit");
    assert_eq!(value.data.as_deref(), Some(&b"hello"[..]));
    assert_eq!(value.flags, Some(7));
    assert!(client.get("nothing").await.unwrap().is_none());
    assert!(client.add("greeting", "again", None, None).await.is_err());
    client.add("fresh", "1", None, None).await.unwrap();
    assert_eq!(client.increment("fresh", 41).await.unwrap(), 42);
    assert_eq!(client.decrement("fresh", 50).await.unwrap(), 0);
    let values: Vec<String> = (0..20).map(|i| format!("v{i}")).collect();
    let pairs: Vec<(String, &String)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("m{i}"), v))
        .collect();
    let stored = client.set_multi(&pairs, Some(100), None).await.unwrap();
    assert!(stored.values().all(Result::is_ok), "{stored:?}");
    let keys: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    let values = client.get_multi(&keys).await.unwrap();
    assert_eq!(values.len(), 20);
    for value in &values {
        let key = String::from_utf8_lossy(&value.key);
        let want = key.replace('m', "v");
        assert_eq!(value.data.as_deref(), Some(want.as_bytes()));
    }
    client.delete("greeting").await.unwrap();
    assert!(client.get("greeting").await.unwrap().is_none());
    let stats = client.stats().await.unwrap();
    assert_eq!(stats.get("curr_items").map(String::as_str), Some("21"));
    client.flush_all().await.unwrap();
    assert!(client.get("fresh").await.unwrap().is_none());
    cache.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_flush_all_empties_the_cache_when_due() {
    let cache = start(plain(2, MemcacheServer::new("127.0.0.1:0"))).await;
    let mut c = Raw::connect(cache.memcached).await;
    c.roundtrip("set a 0 0 1\r\n1\r\n", "STORED\r\n").await;
    c.roundtrip("flush_all 1\r\n", "OK\r\n").await;
    c.roundtrip("set b 0 0 1\r\n2\r\n", "STORED\r\n").await;
    c.roundtrip("get a\r\n", "VALUE a 0 1\r\n1\r\nEND\r\n")
        .await;
    // written before the deadline: gone with the rest
    eventually("the delayed flush", T, async || {
        cache.client.dbsize().await.ok() == Some(0)
    })
    .await;
    c.roundtrip("set c 0 0 1\r\n3\r\n", "STORED\r\n").await;
    c.roundtrip("get a b c\r\n", "VALUE c 0 1\r\n3\r\nEND\r\n")
        .await;
    cache.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_closes_only_its_own_connection() {
    let limits = Limits {
        max_item_size: 1000,
        ..Limits::default()
    };
    let cache = start(plain(2, MemcacheServer::new("127.0.0.1:0").limits(limits))).await;
    let mut good = Raw::connect(cache.memcached).await;
    good.roundtrip("set keep 0 0 4\r\nsafe\r\n", "STORED\r\n")
        .await;

    // over the item size: answered, the data read past, the old item of a set dropped
    let mut c = Raw::connect(cache.memcached).await;
    c.roundtrip("set big 0 0 1\r\nx\r\n", "STORED\r\n").await;
    let mut wire = b"set big 0 0 5000\r\n".to_vec();
    wire.extend(std::iter::repeat_n(b'z', 5000));
    wire.extend_from_slice(b"\r\nget big keep\r\n");
    c.send(&wire).await;
    c.expect("SERVER_ERROR object too large for cache\r\nVALUE keep 0 4\r\nsafe\r\nEND\r\n")
        .await;
    // a key with a NUL (which memcached would read as the line's end), or too long; other
    // control characters are taken, as memcached takes them
    c.roundtrip("get a\0b\r\n", "CLIENT_ERROR bad command line format\r\n")
        .await;
    c.roundtrip("set \x10\x01k 0 0 1\r\nv\r\n", "STORED\r\n")
        .await;
    c.roundtrip("get \x10\x01k\r\n", "VALUE \x10\x01k 0 1\r\nv\r\nEND\r\n")
        .await;
    let long = "k".repeat(251);
    c.roundtrip(
        &format!("delete {long}\r\n"),
        "CLIENT_ERROR bad command line format\r\n",
    )
    .await;

    // a line with no end closes the connection once past memcached's 2,048 bytes
    let mut endless = Raw::connect(cache.memcached).await;
    endless.send(&vec![b'x'; 4096]).await;
    endless.closed().await;

    // random bytes: answered or closed, never a panic
    for seed in 0..20u64 {
        let mut noise = Raw::connect(cache.memcached).await;
        let bytes: Vec<u8> = (0..2000u64)
            .map(|i| ((i.wrapping_mul(seed + 7) ^ (i >> 3)) % 251) as u8)
            .collect();
        noise.send(&bytes).await;
        noise.send(b"\r\nquit\r\n").await;
        noise.closed().await;
    }
    good.roundtrip("get keep\r\n", "VALUE keep 0 4\r\nsafe\r\nEND\r\n")
        .await;
    cache.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_connection_limits_hold() {
    let server = MemcacheServer::new("127.0.0.1:0")
        .idle_timeout(Duration::from_millis(300))
        .max_connections(2);
    let cache = start(plain(1, server)).await;
    let mut first = Raw::connect(cache.memcached).await;
    first
        .roundtrip("version\r\n", "VERSION 1.6.0-troupe\r\n")
        .await;
    let mut second = Raw::connect(cache.memcached).await;
    second
        .roundtrip("version\r\n", "VERSION 1.6.0-troupe\r\n")
        .await;
    let mut third = Raw::connect(cache.memcached).await;
    third.expect("ERROR Too many open connections\r\n").await;
    third.closed().await;
    // silent for the idle timeout: closed
    first.closed().await;
    second.closed().await;
    cache.node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off_and_others_are_served() {
    let server = MemcacheServer::new("127.0.0.1:0").send_timeout(Duration::from_millis(500));
    let cache = start(plain(2, server)).await;
    let value = "v".repeat(100_000);
    let mut c = Raw::connect(cache.memcached).await;
    c.roundtrip(
        &format!("set big 0 0 {}\r\n{value}\r\n", value.len()),
        "STORED\r\n",
    )
    .await;
    // 2,000 reads of 100 kB each, never read back: the server writes what it can, then
    // gives up on the client rather than buffer 200 MB
    let gets = "get big\r\n".repeat(2000);
    let (mut read, mut write) = c.0.into_split();
    let writer = tokio::spawn(async move {
        let _ = write.write_all(gets.as_bytes()).await;
        write
    });
    let mut other = Raw::connect(cache.memcached).await;
    other
        .roundtrip("set small 0 0 1\r\n1\r\n", "STORED\r\n")
        .await;
    // served while the other one stalls, until the server cuts the stalled one off
    eventually("the client that never reads cut off", T, async || {
        other
            .roundtrip("get small\r\n", "VALUE small 0 1\r\n1\r\nEND\r\n")
            .await;
        other.send(b"stats\r\n").await;
        other
            .read_until("END\r\n")
            .await
            .contains("STAT curr_connections 1\r\n")
    })
    .await;
    // what it had sent before giving up, then the end
    let mut sink = vec![0; 1 << 20];
    let mut total = 0usize;
    loop {
        match tokio::time::timeout(T, read.read(&mut sink))
            .await
            .expect("ends in time")
        {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    assert!(
        total < 2000 * 100_000,
        "the server gave up before writing it all ({total} bytes)"
    );
    let _ = writer.await;
    cache.node.shutdown().await;
}

/// A backing store without an actor: a map with a version.
#[derive(Clone, Default)]
struct MapBacking(Arc<Mutex<(HashMap<Bytes, Bytes>, u64)>>);

impl MapBacking {
    fn get(&self, key: &str) -> Option<Bytes> {
        self.0.lock().unwrap().0.get(key.as_bytes()).cloned()
    }
}

impl Backing for MapBacking {
    async fn get(&self, key: Bytes, _timeout: Duration) -> Result<Versioned, BackingError> {
        let map = self.0.lock().unwrap();
        Ok(Versioned {
            value: map.0.get(&key).cloned(),
            version: map.1,
        })
    }

    async fn put(
        &self,
        key: Bytes,
        value: Option<Bytes>,
        _timeout: Duration,
    ) -> Result<u64, BackingError> {
        let mut map = self.0.lock().unwrap();
        map.1 += 1;
        match value {
            Some(v) => map.0.insert(key, v),
            None => map.0.remove(&key),
        };
        Ok(map.1)
    }
}

/// On a read-through cache: `get`/`gets` read through (CAS 0), a plain `set` writes through,
/// `delete` deletes through; every other command is refused and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_through_cache_reads_writes_and_deletes_through_and_refuses_the_rest() {
    let backing = MapBacking::default();
    backing
        .put(Bytes::from("db"), Some(Bytes::from("from the db")), T)
        .await
        .unwrap();
    let spec = CacheSpec::lru(1000)
        .shards(2)
        .read_through(backing.clone())
        .resp("127.0.0.1:0")
        .memcached("127.0.0.1:0");
    let cache = start(spec).await;
    let mut c = Raw::connect(cache.memcached).await;
    c.roundtrip("get db nope\r\n", "VALUE db 0 11\r\nfrom the db\r\nEND\r\n")
        .await;
    c.roundtrip("gets db\r\n", "VALUE db 0 11 0\r\nfrom the db\r\nEND\r\n")
        .await;
    c.roundtrip("set k 0 0 1\r\nv\r\n", "STORED\r\n").await;
    assert_eq!(backing.get("k"), Some(Bytes::from("v")));
    c.roundtrip("get k\r\n", "VALUE k 0 1\r\nv\r\nEND\r\n")
        .await;
    c.roundtrip("delete k\r\n", "DELETED\r\n").await;
    assert_eq!(backing.get("k"), None);
    c.roundtrip("get k\r\n", "END\r\n").await;
    c.roundtrip("set n 0 0 1\r\n5\r\n", "STORED\r\n").await;
    for (command, name) in [
        ("set n 1 0 1\r\n6\r\n", "set with flags or an exptime"),
        ("set n 0 10 1\r\n6\r\n", "set with flags or an exptime"),
        ("add x 0 0 1\r\n6\r\n", "add"),
        ("replace n 0 0 1\r\n6\r\n", "replace"),
        ("cas n 0 0 1 1\r\n6\r\n", "cas"),
        ("append n 0 0 1\r\n6\r\n", "append"),
        ("prepend n 0 0 1\r\n6\r\n", "prepend"),
        ("incr n 1\r\n", "incr"),
        ("decr n 1\r\n", "decr"),
        ("touch n 10\r\n", "touch"),
        ("gat 10 n\r\n", "gat"),
        ("flush_all\r\n", "flush_all"),
    ] {
        let want = format!("SERVER_ERROR {name} is not supported on a read-through cache\r\n");
        c.roundtrip(command, &want).await;
    }
    assert_eq!(backing.get("n"), Some(Bytes::from("5")));
    assert_eq!(backing.get("x"), None);
    c.roundtrip("get n\r\n", "VALUE n 0 1\r\n5\r\nEND\r\n")
        .await;
    cache.node.shutdown().await;
}

/// The peak resident memory of this process, in KiB (`VmHWM`), where /proc tells it.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A retrieval of more keys than a batch takes is answered in full, `END` once, and the server
/// never copies all its values out at once: 300 hits of a 1 MiB value (300 MiB of reply) leave
/// the process's peak memory far below what copying them all would take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retrieval_of_many_keys_is_answered_a_batch_at_a_time_in_bounded_memory() {
    let cache = start(plain(2, MemcacheServer::new("127.0.0.1:0"))).await;
    let mut conn = Raw::connect(cache.memcached).await;
    for key in ["a", "b", "c"] {
        conn.roundtrip(&format!("set {key} 5 0 1\r\n{key}\r\n"), "STORED\r\n")
            .await;
    }
    // 5,000 keys: three of every four hit
    let keys: Vec<&str> = ["a", "b", "c", "nope"]
        .iter()
        .cycle()
        .take(5000)
        .copied()
        .collect();
    conn.send(format!("get {}\r\n", keys.join(" ")).as_bytes())
        .await;
    let reply = conn.read_until("END\r\n").await;
    assert_eq!(reply.matches("VALUE ").count(), 3750);
    assert_eq!(reply.matches("END\r\n").count(), 1);
    assert!(
        reply.starts_with("VALUE a 5 1\r\na\r\nVALUE b 5 1\r\nb\r\n"),
        "in order"
    );

    let big = "x".repeat(1 << 20);
    conn.roundtrip(
        &format!("set big 0 0 {}\r\n{big}\r\n", big.len()),
        "STORED\r\n",
    )
    .await;
    let before = peak_rss_kib();
    conn.send(format!("get {}\r\n", vec!["big"; 300].join(" ")).as_bytes())
        .await;
    let mut total = 0usize;
    let mut tail = Vec::new();
    let mut buf = vec![0; 1 << 16];
    while !tail.ends_with(b"END\r\n") {
        let n = tokio::time::timeout(T, conn.0.read(&mut buf))
            .await
            .expect("a reply in time")
            .expect("read");
        assert!(n > 0, "closed after {total} bytes");
        total += n;
        tail.extend_from_slice(&buf[..n]);
        let keep = tail.len().saturating_sub(16);
        tail.drain(..keep);
    }
    assert_eq!(
        total,
        300 * ("VALUE big 0 1048576\r\n".len() + (1 << 20) + 2) + 5
    );
    if let (Some(before), Some(after)) = (before, peak_rss_kib()) {
        let grew_mib = after.saturating_sub(before) / 1024;
        assert!(
            grew_mib < 150,
            "peak memory grew by {grew_mib} MiB for a 300 MiB reply"
        );
    }
    cache.node.shutdown().await;
}
