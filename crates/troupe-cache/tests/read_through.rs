//! Read-through caches, each declared in one `CacheSpec`, in front of a real
//! backing actor (a versioned in-memory map with an optional delay on `Get`
//! answers, to force the race between a slow fill and a write) and in front
//! of a `Backing` implemented directly (no actor).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use troupe_cache::{
    Backing, BackingError, BackingMsg, CacheClient, CacheError, CacheSpec, SetTtl, ShardError,
    Versioned,
};
use troupe_runtime::{
    Actor, ActorError, Addr, ChildOptions, Ctx, Mesh, Node, NodeConfig, SupervisorSpec,
};
use troupe_testkit::eventually;

const T: Duration = Duration::from_secs(5);

/// A versioned map: one global version, bumped by every write. A `Get` reads
/// the map when it is handled and answers after `get_delay_ms`, without
/// holding up later messages; `gets` counts the `Get`s handled.
struct MapBacking {
    map: HashMap<Bytes, Bytes>,
    version: u64,
    get_delay_ms: Arc<AtomicU64>,
    gets: Arc<AtomicU64>,
}

impl Actor for MapBacking {
    type Msg = BackingMsg;

    async fn handle(
        &mut self,
        msg: BackingMsg,
        ctx: &mut Ctx<BackingMsg>,
    ) -> Result<(), ActorError> {
        match msg {
            BackingMsg::Get { key, reply } => {
                let answer = Versioned {
                    value: self.map.get(&key).cloned(),
                    version: self.version,
                };
                self.gets.fetch_add(1, Ordering::SeqCst);
                let delay = Duration::from_millis(self.get_delay_ms.load(Ordering::SeqCst));
                if delay.is_zero() {
                    reply.send(answer);
                } else {
                    ctx.spawn(async move {
                        tokio::time::sleep(delay).await;
                        reply.send(answer);
                        Ok(())
                    });
                }
            }
            BackingMsg::Put { key, value, reply } => {
                self.version += 1;
                match value {
                    Some(v) => self.map.insert(key, v),
                    None => self.map.remove(&key),
                };
                reply.send(self.version);
            }
        }
        Ok(())
    }
}

struct Setup {
    _node: Node,
    client: CacheClient,
    backing: Addr<BackingMsg>,
    get_delay_ms: Arc<AtomicU64>,
    gets: Arc<AtomicU64>,
}

async fn setup(shards: usize) -> Setup {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let get_delay_ms = Arc::new(AtomicU64::new(0));
    let gets = Arc::new(AtomicU64::new(0));
    let (delay, count) = (get_delay_ms.clone(), gets.clone());
    let (backing_spec, backing) = node
        .child("db", ChildOptions::permanent(), move || MapBacking {
            map: HashMap::new(),
            version: 0,
            get_delay_ms: delay.clone(),
            gets: count.clone(),
        })
        .unwrap();
    let spec = CacheSpec::lru(1000)
        .shards(shards)
        .read_through(backing.clone());
    let (mut children, client) = spec.children(&node, "cache").unwrap();
    children.insert(0, backing_spec);
    node.start(SupervisorSpec::one_for_one(), children)
        .await
        .unwrap();
    Setup {
        _node: node,
        client,
        backing,
        get_delay_ms,
        gets,
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn backing_get(backing: &Addr<BackingMsg>, key: &str) -> Option<Bytes> {
    let key = b(key);
    backing.get(key, T).await.unwrap().value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miss_fills_from_the_backing_store() {
    let s = setup(2).await;
    assert_eq!(s.backing.put(b("k"), Some(b("v")), T).await.unwrap(), 1);
    assert_eq!(s.client.get("k").await.unwrap(), Some(b("v")));
    assert_eq!(s.client.get("absent").await.unwrap(), None);
    // The fill is cast before the answer, so the next read of the key hits.
    let before = s.client.stats().await.unwrap().hits;
    assert_eq!(s.client.get("k").await.unwrap(), Some(b("v")));
    assert_eq!(s.client.stats().await.unwrap().hits, before + 1);
    assert_eq!(s.client.dbsize().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_are_answered_in_place_and_misses_by_the_shard() {
    let s = setup(1).await;
    assert_eq!(s.backing.put(b("k"), Some(b("v")), T).await.unwrap(), 1);
    let shard_messages = || {
        s._node
            .actor_stats()
            .iter()
            .filter(|a| a.name.starts_with("cache."))
            .map(|a| a.messages_handled)
            .sum::<u64>()
    };
    // the miss is the shard's: it reads the backing store and fills
    assert_eq!(s.client.get("k").await.unwrap(), Some(b("v")));
    assert_eq!(s.gets.load(Ordering::SeqCst), 1);
    eventually("the fill is applied", T, async || {
        s.client.stats().await.is_ok_and(|st| st.keys == 1)
    })
    .await;
    let before = shard_messages();
    for _ in 0..100 {
        assert_eq!(s.client.get("k").await.unwrap(), Some(b("v")));
    }
    // the shard's own sweeps only (one per 100 ms), not a message per hit
    let handled = shard_messages() - before;
    assert!(handled < 20, "{handled} shard messages for 100 hits");
    assert_eq!(
        s.gets.load(Ordering::SeqCst),
        1,
        "no read through for a hit"
    );
    // a write through invalidates: the next read misses and reads through again
    s.client.set("k", "w").await.unwrap();
    assert_eq!(s.client.get("k").await.unwrap(), Some(b("w")));
    assert_eq!(s.gets.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_through_and_are_visible_on_the_next_read() {
    let s = setup(2).await;
    for round in 0..5 {
        let value = b(&format!("v{round}"));
        s.client.set("k", value.clone()).await.unwrap();
        assert_eq!(backing_get(&s.backing, "k").await, Some(value.clone()));
        // Read twice: once filling, once hitting.
        assert_eq!(s.client.get("k").await.unwrap(), Some(value.clone()));
        assert_eq!(s.client.get("k").await.unwrap(), Some(value));
    }
    let out = s
        .client
        .set_with("k", "v5", SetTtl::Clear, None)
        .await
        .unwrap();
    assert!(out.written);
    assert_eq!(out.old, Some(b("v4")), "the cached copy it replaced");
    s.client.mset([("a", "1"), ("b", "2")]).await.unwrap();
    assert_eq!(
        s.client.mget(["a", "b", "k"]).await.unwrap(),
        vec![Some(b("1")), Some(b("2")), Some(b("v5"))]
    );
    assert_eq!(s.client.del(["k", "a"]).await.unwrap(), 2);
    assert_eq!(backing_get(&s.backing, "k").await, None);
    assert_eq!(s.client.get("k").await.unwrap(), None);
    assert_eq!(s.client.get("a").await.unwrap(), None);
    assert_eq!(s.client.get("b").await.unwrap(), Some(b("2")));
    // Options needing the authoritative value or a backing-side expiry are
    // refused, not silently weakened.
    let ttl = SetTtl::After(Duration::from_secs(1));
    assert!(matches!(
        s.client.set_with("k", "x", ttl, None).await,
        Err(CacheError::Refused(ShardError::ReadThroughUnsupported(_)))
    ));
    assert!(matches!(
        s.client.incr_by("n", 1).await,
        Err(CacheError::Refused(ShardError::ReadThroughUnsupported(_)))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_fill_never_resurrects_an_acknowledged_write() {
    let s = setup(1).await;
    for round in 0..4 {
        let old = b(&format!("old{round}"));
        let new = b(&format!("new{round}"));
        s.client.set("k", old.clone()).await.unwrap();
        // A slow read-through GET: it reads `old` now and fills much later.
        s.get_delay_ms.store(300, Ordering::SeqCst);
        let gets = s.gets.load(Ordering::SeqCst);
        let slow = tokio::spawn({
            let client = s.client.clone();
            async move { client.get("k").await }
        });
        eventually("the slow read reached the backing store", T, async || {
            s.gets.load(Ordering::SeqCst) > gets
        })
        .await;
        s.get_delay_ms.store(0, Ordering::SeqCst);
        // The write is acknowledged while the slow read is still in flight.
        s.client.set("k", new.clone()).await.unwrap();
        assert!(!slow.is_finished(), "the race was not forced");
        // No read may return `old` from now on. In odd rounds, read while
        // the slow read is in flight (the fresh fill then guards the key);
        // in even rounds, leave the key uncached so only the invalidation
        // fence can refuse the slow fill.
        if round % 2 == 1 {
            for _ in 0..10 {
                assert_eq!(s.client.get("k").await.unwrap(), Some(new.clone()));
            }
        }
        // The slow read itself began before the write: it saw `old`. Its
        // fill was cast before it answered, so the shard handles that fill
        // before any of the reads below.
        assert_eq!(slow.await.unwrap().unwrap(), Some(old));
        for _ in 0..30 {
            assert_eq!(s.client.get("k").await.unwrap(), Some(new.clone()));
        }
    }
}

/// A backing store implemented directly: a map behind a mutex, which can be
/// made to fail. Clones share it.
#[derive(Clone, Default)]
struct SharedMap(Arc<MapState>);

#[derive(Default)]
struct MapState {
    map: Mutex<(HashMap<Bytes, Bytes>, u64)>,
    down: AtomicBool,
}

impl std::ops::Deref for SharedMap {
    type Target = MapState;

    fn deref(&self) -> &MapState {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the map is down")]
struct Down;

impl Backing for SharedMap {
    async fn get(&self, key: Bytes, _timeout: Duration) -> Result<Versioned, BackingError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(BackingError::store(Down));
        }
        let map = self.map.lock().unwrap();
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
        if self.down.load(Ordering::SeqCst) {
            return Err(BackingError::store(Down));
        }
        let mut map = self.map.lock().unwrap();
        map.1 += 1;
        match value {
            Some(v) => map.0.insert(key, v),
            None => map.0.remove(&key),
        };
        Ok(map.1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backing_without_an_actor_and_its_failures() {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let store = SharedMap::default();
    let spec = CacheSpec::lru(100).shards(2).read_through(store.clone());
    let (children, cache) = spec.children(&node, "cache").unwrap();
    node.start(SupervisorSpec::one_for_one(), children)
        .await
        .unwrap();

    cache.set("k", "v").await.unwrap();
    assert_eq!(store.map.lock().unwrap().0.get(&b("k")), Some(&b("v")));
    assert_eq!(cache.get("k").await.unwrap(), Some(b("v")));

    // A failing backing store: a miss and a write fail with its reason, and
    // the write drops the cached copy (it may have landed).
    store.down.store(true, Ordering::SeqCst);
    match cache.get("other").await {
        Err(CacheError::Refused(ShardError::Backing(reason))) => {
            assert!(reason.contains("the map is down"), "{reason}");
        }
        other => panic!("expected a backing failure, got {other:?}"),
    }
    assert!(matches!(
        cache.set("k", "w").await,
        Err(CacheError::Refused(ShardError::Backing(_)))
    ));
    assert!(matches!(
        cache.get("k").await,
        Err(CacheError::Refused(ShardError::Backing(_)))
    ));
    store.down.store(false, Ordering::SeqCst);
    assert_eq!(cache.get("k").await.unwrap(), Some(b("v")));
    node.shutdown().await;
}

/// A backing store that never answers (and counts the reads it got): a
/// shard waits on at most its limit of them and refuses the rest at once.
struct Stuck(Arc<AtomicU64>);

impl Backing for Stuck {
    async fn get(&self, _key: Bytes, _timeout: Duration) -> Result<Versioned, BackingError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }

    async fn put(
        &self,
        _key: Bytes,
        _value: Option<Bytes>,
        _timeout: Duration,
    ) -> Result<u64, BackingError> {
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backing_operations_in_flight_are_bounded() {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let started = Arc::new(AtomicU64::new(0));
    let spec = CacheSpec::lru(100)
        .read_through(Stuck(started.clone()))
        .max_backing_in_flight(2)
        .backing_timeout(Duration::from_millis(300));
    let (children, cache) = spec.children(&node, "cache").unwrap();
    node.start(SupervisorSpec::one_for_one(), children)
        .await
        .unwrap();
    let waiting: Vec<_> = (0..2)
        .map(|i| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get(format!("k{i}")).await })
        })
        .collect();
    eventually("both reads wait on the backing store", T, async || {
        started.load(Ordering::SeqCst) == 2
    })
    .await;
    assert!(matches!(
        cache.get("third").await,
        Err(CacheError::Refused(ShardError::BackingBusy { limit: 2 }))
    ));
    assert!(matches!(
        cache.set("third", "v").await,
        Err(CacheError::Refused(ShardError::BackingBusy { limit: 2 }))
    ));
    // The waiting reads end at the backing timeout, with an error.
    for read in waiting {
        assert!(matches!(
            read.await.unwrap(),
            Err(CacheError::Refused(ShardError::Backing(_)))
        ));
    }
    node.shutdown().await;
}

/// A read-through cache of `shards` shards on node `n`, with a RESP front end on a free port,
/// in front of an in-memory backing actor: the node, the backing actor and the client.
async fn read_through_cache(
    shards: usize,
) -> (
    Node,
    troupe_runtime::Addr<troupe_cache::BackingMsg>,
    troupe_cache::CacheClient,
) {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let (backing_spec, backing) = node
        .child("db", ChildOptions::permanent(), move || MapBacking {
            map: HashMap::new(),
            version: 0,
            get_delay_ms: Arc::new(AtomicU64::new(0)),
            gets: Arc::new(AtomicU64::new(0)),
        })
        .unwrap();
    let spec = CacheSpec::lru(1000)
        .shards(shards)
        .read_through(backing.clone())
        .resp("127.0.0.1:0");
    let (mut children, client) = spec.children(&node, "cache").unwrap();
    children.insert(0, backing_spec);
    node.start(SupervisorSpec::one_for_one(), children)
        .await
        .unwrap();
    (node, backing, client)
}

/// Pipelined commands against a read-through cache: its shards refuse batches (nothing is
/// applied), so the RESP front end answers them one by one, each through the backing store,
/// in order, exactly as without a pipeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_to_a_read_through_cache_goes_through_one_by_one() {
    use troupe_cache::RespServerMsg;
    use troupe_cache::cmd::strings::{Get, Set};
    let (node, backing, client) = read_through_cache(2).await;

    // the shards refuse a batch whole, applying none of it
    let refused = client
        .run(vec![
            Set::plain(b("a"), b("1")).into(),
            Get { key: b("a") }.into(),
        ])
        .await;
    assert!(
        refused.iter().all(|r| matches!(
            r,
            Err(CacheError::Refused(ShardError::ReadThroughUnsupported(_)))
        )),
        "{refused:?}"
    );
    assert_eq!(backing_get(&backing, "a").await, None);

    let resp = node.addr::<RespServerMsg>("n", "cache.resp");
    let addr = eventually("the RESP server bound", T, async || {
        resp.call(RespServerMsg::LocalAddr, T).await.ok().flatten()
    })
    .await;
    let mut con = redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for round in 0..3 {
        let mut pipe = redis::pipe();
        for i in 0..10 {
            pipe.cmd("SET").arg(format!("k{i}")).arg(round * 100 + i);
        }
        for i in 0..10 {
            pipe.cmd("GET").arg(format!("k{i}"));
        }
        let got: Vec<redis::Value> = pipe.query_async(&mut con).await.unwrap();
        for i in 0..10 {
            assert_eq!(got[i], redis::Value::Okay, "round {round}");
            let want = (round * 100 + i).to_string().into_bytes();
            assert_eq!(got[10 + i], redis::Value::BulkString(want), "round {round}");
        }
    }
    assert_eq!(backing_get(&backing, "k9").await, Some(b("209")));
    node.shutdown().await;
}

/// Every write command keeps the read-through guarantee: the ones the backing store takes
/// (`SET` without options, `DEL`, `UNLINK`) go through it, every other write, and every read
/// a miss would answer wrongly, and any change of a cached copy's expiry (the fill TTL's), is
/// refused with a typed error and changes nothing; reads of the cached copies (`TTL`,
/// `EXISTS`, `TYPE`, `TOUCH`) still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_command_goes_through_or_is_refused_on_a_read_through_cache() {
    let (node, backing, _client) = read_through_cache(1).await;
    let resp = node.addr::<troupe_cache::RespServerMsg>("n", "cache.resp");
    let addr = eventually("the RESP server bound", T, async || {
        resp.call(troupe_cache::RespServerMsg::LocalAddr, T)
            .await
            .ok()
            .flatten()
    })
    .await;
    let mut con = redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let run = async |con: &mut redis::aio::MultiplexedConnection, words: &[&str]| {
        let mut cmd = redis::cmd(words[0]);
        for w in &words[1..] {
            cmd.arg(*w);
        }
        cmd.query_async::<redis::Value>(con).await
    };
    // a first command on the cached copies says nothing about whether the shards are plain
    assert_eq!(
        run(&mut con, &["EXISTS", "k"]).await.unwrap(),
        redis::Value::Int(0)
    );
    // through the backing store
    assert_eq!(
        run(&mut con, &["SET", "k", "v1"]).await.unwrap(),
        redis::Value::Okay
    );
    assert_eq!(backing_get(&backing, "k").await, Some(b("v1")));
    assert_eq!(
        run(&mut con, &["GET", "k"]).await.unwrap(),
        redis::Value::BulkString(b"v1".to_vec())
    );
    // on the cached copy
    assert_eq!(
        run(&mut con, &["TYPE", "k"]).await.unwrap(),
        redis::Value::SimpleString("string".into())
    );
    assert_eq!(
        run(&mut con, &["TTL", "k"]).await.unwrap(),
        redis::Value::Int(-1)
    );
    assert_eq!(
        run(&mut con, &["TOUCH", "k"]).await.unwrap(),
        redis::Value::Int(1)
    );
    // every other write is refused, the backing store and the cached copy untouched
    for words in [
        &["APPEND", "k", "x"][..],
        &["SETRANGE", "k", "0", "x"],
        &["INCR", "k"],
        &["INCRBYFLOAT", "k", "1"],
        &["GETSET", "k", "x"],
        &["GETDEL", "k"],
        &["GETEX", "k", "EX", "5"],
        &["SETNX", "k2", "x"],
        &["SET", "k", "x", "NX"],
        &["SET", "k", "x", "EXAT", "99999999999"],
        &["MSETNX", "k2", "x"],
        // an expiry there is the fill TTL's, which bounds staleness: not the client's
        &["EXPIRE", "k", "100"],
        &["PEXPIREAT", "k", "99999999999999"],
        &["PERSIST", "k"],
        &["RENAME", "k", "k2"],
        &["HSET", "h", "f", "v"],
        &["RPUSH", "l", "x"],
        &["SADD", "z", "m"],
        &["STRLEN", "k"],
        &["GETRANGE", "k", "0", "1"],
    ] {
        let err = run(&mut con, words).await.expect_err("refused");
        assert!(
            err.to_string()
                .contains("not supported on a read-through cache"),
            "{words:?}: {err}"
        );
    }
    assert_eq!(backing_get(&backing, "k").await, Some(b("v1")));
    assert_eq!(backing_get(&backing, "k2").await, None);
    assert_eq!(
        run(&mut con, &["GET", "k"]).await.unwrap(),
        redis::Value::BulkString(b"v1".to_vec())
    );
    assert_eq!(
        run(&mut con, &["DEL", "k"]).await.unwrap(),
        redis::Value::Int(1)
    );
    assert_eq!(backing_get(&backing, "k").await, None);
    node.shutdown().await;
}
