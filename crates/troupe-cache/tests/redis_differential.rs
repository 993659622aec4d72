//! The same commands against a real `redis-server` and against troupe's cache: the replies
//! must be the same, byte for byte once decoded (order aside where Redis promises none).
//!
//! This is the test of "behaves as Redis documents": every command the cache serves, its
//! edge cases, its error texts and `WRONGTYPE` across types, checked against Redis itself
//! rather than against our reading of its documentation. Expiry that needs time to pass is
//! tested in the units with a driven clock; here times are far ahead or already past.
//!
//! Needs `redis-server` (Debian's `redis-server` package; `.ci/run` installs it). Without
//! it, the test prints why and passes without checking.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use troupe_cache::resp::{Frame, Limits};
use troupe_cache::{CacheSpec, RespServerMsg};
use troupe_runtime::{Mesh, Node, NodeConfig, SupervisorSpec};
use troupe_testkit::eventually;

const T: Duration = Duration::from_secs(10);

/// How two replies are compared.
#[derive(Clone, Copy, Debug)]
enum Compare {
    /// Equal
    Exact,
    /// Equal as multisets (the items of an array reply in no set order)
    Unordered,
    /// Equal as multisets of pairs (`HGETALL`: field, value, field, value ...)
    UnorderedPairs,
    /// Integers within this much of each other (time left, times), else equal
    Near(i64),
}

/// One step of a script: a command and how its replies compare, or a whole `SCAN`.
enum Step {
    Command(Vec<String>, Compare),
    /// `SCAN` to the end with these options: the keys seen, as a set
    ScanAll(Vec<String>),
}

/// Parses a script: one command per line, words split on spaces; a leading `~` compares
/// unordered, `%` unordered pairs, `tN ` integers within N, `scan-all` runs a whole SCAN.
/// `{now+S}` / `{nowms+MS}` stand for a Unix time S seconds / MS milliseconds ahead, `''`
/// for an empty argument.
fn script(text: &str) -> Vec<Step> {
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (compare, rest) = match line.split_once(' ') {
                Some(("~", rest)) => (Compare::Unordered, rest),
                Some(("%", rest)) => (Compare::UnorderedPairs, rest),
                Some((t, rest)) if t.starts_with('t') && t[1..].parse::<i64>().is_ok() => {
                    (Compare::Near(t[1..].parse().unwrap_or(0)), rest)
                }
                _ => (Compare::Exact, line),
            };
            let words: Vec<String> = rest
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(|w| expand(w, unix_ms))
                .collect();
            if words[0] == "scan-all" {
                Step::ScanAll(words[1..].to_vec())
            } else {
                Step::Command(words, compare)
            }
        })
        .collect()
}

fn expand(word: &str, unix_ms: i64) -> String {
    if word == "''" {
        return String::new();
    }
    if let Some(n) = word.strip_prefix("{now+").and_then(|w| w.strip_suffix('}')) {
        return (unix_ms / 1000 + n.parse::<i64>().unwrap_or(0)).to_string();
    }
    if let Some(n) = word
        .strip_prefix("{nowms+")
        .and_then(|w| w.strip_suffix('}'))
    {
        return (unix_ms + n.parse::<i64>().unwrap_or(0)).to_string();
    }
    word.to_string()
}

/// A RESP connection that sends one command and reads its one reply.
struct Conn<S> {
    stream: S,
    buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(stream: S) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
        }
    }

    async fn call(&mut self, words: &[String]) -> Frame {
        let request = Frame::Array(
            words
                .iter()
                .map(|w| Frame::Bulk(Bytes::copy_from_slice(w.as_bytes())))
                .collect(),
        );
        let mut out = BytesMut::new();
        request.encode(&mut out);
        self.stream.write_all(&out).await.expect("write");
        loop {
            if let Some(frame) =
                Frame::decode_from(&mut self.buf, &Limits::default()).expect("valid reply")
            {
                return frame;
            }
            let read = tokio::time::timeout(T, self.stream.read_buf(&mut self.buf))
                .await
                .expect("a reply in time")
                .expect("read");
            assert!(read > 0, "the server closed the connection after {words:?}");
        }
    }
}

/// A `redis-server` of our own on a Unix socket in a fresh directory, killed on drop.
struct RedisServer {
    child: Child,
    socket: std::path::PathBuf,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed on drop.
    pub(super) struct Dir(pub(super) std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_server() -> Option<&'static str> {
    ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

async fn start_redis(binary: &str) -> RedisServer {
    let dir = std::env::temp_dir().join(format!(
        "troupe-redis-diff-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let socket = dir.join("redis.sock");
    let child = Command::new(binary)
        .args(["--port", "0", "--save", "", "--appendonly", "no"])
        .arg("--unixsocket")
        .arg(&socket)
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    let server = RedisServer {
        child,
        socket,
        _dir: tempdir::Dir(dir),
    };
    eventually("redis-server listening", T, async || {
        UnixStream::connect(&server.socket).await.map(|_| ())
    })
    .await;
    server
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(7);
    h.finish()
}

async fn start_troupe(shards: usize) -> (Node, SocketAddr) {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).expect("node");
    let spec = CacheSpec::lru(100_000)
        .shards(shards)
        .max_bytes(256 << 20)
        .resp("127.0.0.1:0");
    let (children, _client) = spec.children(&node, "cache").expect("names free");
    node.start(SupervisorSpec::one_for_one(), children)
        .await
        .expect("started");
    let resp = node.addr::<RespServerMsg>("n", "cache.resp");
    let addr = eventually("the RESP server bound", T, async || {
        resp.call(RespServerMsg::LocalAddr, T)
            .await
            .ok()
            .flatten()
            .ok_or("not yet")
    })
    .await;
    (node, addr)
}

fn sorted(items: Vec<Frame>) -> Vec<String> {
    let mut items: Vec<String> = items.iter().map(|f| format!("{f:?}")).collect();
    items.sort();
    items
}

fn same(compare: Compare, redis: &Frame, ours: &Frame) -> bool {
    match (compare, redis, ours) {
        (Compare::Unordered, Frame::Array(a), Frame::Array(b)) => {
            sorted(a.clone()) == sorted(b.clone())
        }
        (Compare::UnorderedPairs, Frame::Array(a), Frame::Array(b)) => {
            let pairs = |items: &[Frame]| {
                let mut pairs: Vec<String> =
                    items.chunks(2).map(|pair| format!("{pair:?}")).collect();
                pairs.sort();
                pairs
            };
            pairs(a) == pairs(b)
        }
        (Compare::Near(slack), Frame::Integer(a), Frame::Integer(b)) => (a - b).abs() <= slack,
        _ => redis == ours,
    }
}

/// Runs `steps` on both servers, flushed first; every difference, described.
async fn differences(
    steps: &[Step],
    redis: &mut Conn<UnixStream>,
    ours: &mut Conn<TcpStream>,
) -> Vec<String> {
    let flush = ["FLUSHALL".to_string()];
    redis.call(&flush).await;
    ours.call(&flush).await;
    let mut found = Vec::new();
    for step in steps {
        match step {
            Step::Command(words, compare) => {
                let (a, b) = (redis.call(words).await, ours.call(words).await);
                if !same(*compare, &a, &b) {
                    found.push(format!(
                        "{}\n    redis:  {a:?}\n    troupe: {b:?}",
                        words.join(" ")
                    ));
                }
            }
            Step::ScanAll(options) => {
                let (a, b) = (
                    scan_all(redis, options).await,
                    scan_all(ours, options).await,
                );
                if a != b {
                    found.push(format!(
                        "SCAN to the end {options:?}\n    redis:  {a:?}\n    troupe: {b:?}"
                    ));
                }
            }
        }
    }
    found
}

/// Every key a whole `SCAN` returns, sorted, and whether one came back twice.
async fn scan_all<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    options: &[String],
) -> (Vec<Bytes>, bool) {
    let mut cursor = "0".to_string();
    let mut keys = Vec::new();
    for _ in 0..10_000 {
        let mut words = vec!["SCAN".to_string(), cursor.clone()];
        words.extend(options.iter().cloned());
        let Frame::Array(reply) = conn.call(&words).await else {
            panic!("SCAN answered something else");
        };
        let [Frame::Bulk(next), Frame::Array(page)] = reply.as_slice() else {
            panic!("SCAN answered {reply:?}");
        };
        keys.extend(page.iter().filter_map(|f| match f {
            Frame::Bulk(key) => Some(key.clone()),
            _ => None,
        }));
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            break;
        }
    }
    keys.sort();
    let before = keys.len();
    keys.dedup();
    (keys.clone(), keys.len() != before)
}

const STRINGS: &str = "
    GET s
    SET s hello
    GET s
    SET s world NX
    SET s world XX GET
    SET n1 v NX GET
    SET s v EX 0
    SET s v PX -5
    SET s v EX notanumber
    SET s v EX 10 PX 10
    SET s v KEEPTTL EX 10
    SET s v BOGUS
    SET s
    t1 SET s v EX 100
    t1 TTL s
    SET s w KEEPTTL
    t1 TTL s
    SET s v EXAT {now+100}
    t1 TTL s
    SET s v PXAT {nowms+50000}
    t100 PTTL s
    SET s v PXAT 1
    EXISTS s
    SETNX s a
    SETNX s b
    GET s
    SETEX e 100 v
    t1 TTL e
    SETEX e 0 v
    SETEX e -1 v
    PSETEX e 0 v
    PSETEX e 5000 v
    t100 PTTL e
    GETSET s c
    GETSET fresh c
    t1 TTL fresh
    GETDEL s
    GETDEL s
    SET g v
    GETEX g
    GETEX g EX 100
    t1 TTL g
    GETEX g PERSIST
    TTL g
    GETEX g PX 100 EX 100
    GETEX g EX 0
    GETEX g EXAT 1
    EXISTS g
    GETEX missing EX 10
    APPEND a Hello
    APPEND a World
    GET a
    STRLEN a
    STRLEN missing
    GETRANGE a 0 4
    GETRANGE a -5 -1
    GETRANGE a 5 1
    GETRANGE a -1 -5
    GETRANGE a 0 -100
    GETRANGE a -100 3
    GETRANGE a 100 200
    GETRANGE missing 0 -1
    GETRANGE a x 1
    SUBSTR a 0 2
    SETRANGE a 6 Redis
    GET a
    SETRANGE pad 5 x
    GET pad
    SETRANGE pad 0 ''
    SETRANGE none 3 ''
    EXISTS none
    SETRANGE a -1 x
    SETRANGE a 536870911 xx
    INCR i
    INCRBY i 41
    DECR i
    DECRBY i 50
    INCRBY i notanumber
    DECRBY i -9223372036854775808
    SET i 9223372036854775807
    INCR i
    SET i -9223372036854775808
    DECR i
    SET i ' 1'
    INCR i
    SET i 01
    INCR i
    SET i 1.5
    INCR i
    SET f 10.50
    INCRBYFLOAT f 0.1
    INCRBYFLOAT f -5
    SET f 5.0e3
    INCRBYFLOAT f 2.0e2
    INCRBYFLOAT fnew 3
    INCRBYFLOAT fnew -3
    INCRBYFLOAT f x
    INCRBYFLOAT f nan
    SET f abc
    INCRBYFLOAT f 1
    # past f64's range Redis's long double still counts: see incrbyfloat.rs
    MSET m1 a m2 b
    MGET m1 m2 nope
    MSETNX m1 x m3 y
    EXISTS m3
    MSETNX m3 y m4 z
    MGET m3 m4
    MSET m1
    MSET m1 a m2
    MGET
    GET
    GET a b
    INCR
    SETNX a
    GETSET a
    APPEND a
";

const KEYSPACE: &str = "
    SET a 1
    SET b 2
    RPUSH l x
    SADD z m
    HSET h f v
    EXISTS a b l z h nope a
    TYPE a
    TYPE l
    TYPE z
    TYPE h
    TYPE nope
    DEL a nope b
    DEL a
    UNLINK l nope
    TOUCH z h nope
    DBSIZE
    ~ KEYS *
    SET user:1 a
    SET user:2 b
    SET other c
    ~ KEYS user:*
    ~ KEYS ?ser:[12]
    ~ KEYS *:[^1]
    KEYS nothing*
    scan-all
    scan-all MATCH user:*
    scan-all TYPE hash
    scan-all TYPE set COUNT 1
    scan-all TYPE nosuchtype
    SCAN x
    SCAN 0 COUNT 0
    SCAN 0 COUNT
    SCAN 0 BOGUS 1
    RENAME nope x
    RENAMENX nope x
    RENAME user:1 renamed
    GET renamed
    EXISTS user:1
    RENAME renamed renamed
    RENAMENX renamed user:2
    RENAMENX renamed renamed
    RENAMENX renamed fresh
    GET fresh
    SET t v EX 100
    RENAME t t2
    t1 TTL t2
    EXPIRE nope 10
    EXPIRE other 100
    t1 TTL other
    t100 PTTL other
    EXPIRE other 100 NX
    EXPIRE other 200 XX
    EXPIRE other 100 GT
    EXPIRE other 300 GT
    EXPIRE other 500 LT
    EXPIRE other 50 LT
    t1 TTL other
    EXPIRE other 10 NX XX
    EXPIRE other 10 GT LT
    EXPIRE other 10 bogus
    EXPIRE other 9223372036854775807
    EXPIRE other notanumber
    PEXPIRE other 100000
    t100 PTTL other
    EXPIREAT other {now+200}
    t1 TTL other
    t1 EXPIRETIME other
    PEXPIREAT other {nowms+300000}
    t1000 PEXPIRETIME other
    t1 TTL other
    PERSIST other
    PERSIST other
    TTL other
    EXPIRETIME other
    PEXPIRETIME nope
    TTL nope
    PTTL nope
    SET gt v
    EXPIRE gt 100 GT
    EXPIRE gt 100 LT
    EXPIRE gt -1
    EXISTS gt
    SET past v
    EXPIREAT past 100
    EXISTS past
    SET zero v
    PEXPIRE zero 0
    EXISTS zero
    FLUSHDB
    DBSIZE
    FLUSHDB NOW
    FLUSHALL ASYNC
    DEL
    EXISTS
    TYPE
    RENAME a
    EXPIRE a
    TTL
    KEYS
    SCAN
";

const WRONGTYPE: &str = "
    SET s v
    HSET h f v
    RPUSH l a b
    SADD z m
    GET h
    GET l
    GET z
    SET z v GET
    GETSET h x
    GETDEL l
    GETEX z
    APPEND h x
    STRLEN l
    GETRANGE z 0 1
    SETRANGE h 0 x
    INCR l
    INCRBYFLOAT z 1
    MGET s h l z
    HSET s f v
    HGET l f
    HMGET z f
    HDEL s f
    HGETALL l
    HEXISTS z f
    HINCRBY s f 1
    HKEYS l
    HVALS z
    HLEN s
    HSETNX l f v
    LPUSH s x
    RPUSH h x
    LPOP z
    RPOP s
    LRANGE h 0 -1
    LLEN z
    SADD s m
    SREM h m
    SMEMBERS l
    SISMEMBER s m
    SCARD h
    TYPE s
    TYPE h
    TYPE l
    TYPE z
    SET h replaced
    GET h
";

const HASHES: &str = "
    HSET h a 1 b 2
    HSET h a 9 c 3
    HGET h a
    HGET h nope
    HGET nope a
    HMSET h d 4
    HMGET h a nope d
    HMGET nope a b
    % HGETALL h
    HGETALL nope
    ~ HKEYS h
    ~ HVALS h
    HKEYS nope
    HLEN h
    HLEN nope
    HEXISTS h a
    HEXISTS h nope
    HEXISTS nope a
    HSETNX h a x
    HSETNX h e 5
    HGET h e
    HINCRBY h n 5
    HINCRBY h n -10
    HINCRBY h a 1
    HSET h s text
    HINCRBY h s 1
    HINCRBY h n x
    HSET h big 9223372036854775807
    HINCRBY h big 1
    HINCRBY fresh f 3
    HDEL h a nope b
    HDEL h nope
    HDEL nope a
    HLEN h
    HDEL h c d e n s big
    EXISTS h
    HSET h a
    HSET h
    HMSET h a 1 b
    HGET h
    HMGET h
    HDEL h
    HGETALL
    HINCRBY h f
    HSETNX h f
";

const LISTS: &str = "
    RPUSH l a b c
    LPUSH l z y
    LLEN l
    LRANGE l 0 -1
    LRANGE l 1 2
    LRANGE l -2 -1
    LRANGE l -100 100
    LRANGE l 5 10
    LRANGE l 3 1
    LRANGE l x 1
    LRANGE nope 0 -1
    LPOP l
    RPOP l
    LPOP l 2
    LPOP l 0
    RPOP l 10
    EXISTS l
    LPOP l
    LPOP l 2
    RPOP nope 3
    RPUSH l a
    LPOP l -1
    LPOP l x
    LPOP l 1 2
    LLEN nope
    LPUSH l
    RPUSH
    LRANGE l 0
    LLEN
";

const SETS: &str = "
    SADD z a b a c
    SADD z b d
    SCARD z
    SCARD nope
    ~ SMEMBERS z
    SMEMBERS nope
    SISMEMBER z a
    SISMEMBER z nope
    SISMEMBER nope a
    SREM z a nope b
    SREM z nope
    SREM nope a
    SREM z c d
    EXISTS z
    SADD z
    SREM z
    SMEMBERS
    SISMEMBER z
    SCARD
";

/// Multi-key commands whose keys spread over shards, on a four-shard cache: split per key,
/// answered as Redis answers them.
const SPREAD: &str = "
    SET k1 1
    SET k2 2
    SET k3 3
    HSET k4 f v
    MGET k1 k2 k3 k4 k5 k1
    EXISTS k1 k2 k3 k4 k5 k1
    TOUCH k1 k2 k5
    DEL k1 k2 k5
    UNLINK k3 k4
    DBSIZE
    MSET {tag}a 1 {tag}b 2
    MGET {tag}a {tag}b
    RENAME {tag}a {tag}c
    MSETNX {tag}c 9 {tag}d 9
    ~ KEYS *
    scan-all
";

async fn check_against_redis(shards: usize, scripts: &[(&str, &str)]) {
    let Some(binary) = redis_server() else {
        println!("SKIPPED: no redis-server here (apt-get install redis-server)");
        return;
    };
    let redis_server = start_redis(binary).await;
    let mut redis = Conn::new(
        UnixStream::connect(&redis_server.socket)
            .await
            .expect("redis socket"),
    );
    let (node, addr) = start_troupe(shards).await;
    let mut ours = Conn::new(TcpStream::connect(addr).await.expect("our server"));
    let mut report = Vec::new();
    for (name, text) in scripts {
        for difference in differences(&script(text), &mut redis, &mut ours).await {
            report.push(format!("[{name}] {difference}"));
        }
    }
    node.shutdown().await;
    assert!(
        report.is_empty(),
        "{} replies differ from redis-server's:\n{}",
        report.len(),
        report.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_answers_as_redis_server_does() {
    check_against_redis(
        1,
        &[
            ("strings", STRINGS),
            ("keyspace", KEYSPACE),
            ("wrongtype", WRONGTYPE),
            ("hashes", HASHES),
            ("lists", LISTS),
            ("sets", SETS),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_key_commands_across_shards_answer_as_redis_server_does() {
    check_against_redis(4, &[("spread", SPREAD)]).await;
}
