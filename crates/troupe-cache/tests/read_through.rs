//! Read-through shards in front of a real backing actor: a versioned
//! in-memory map with an optional delay on `Get` answers, to force the race
//! between a slow fill and a write.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use troupe_cache::{BackingMsg, CacheClient, CacheShard, SetTtl, Versioned};
use troupe_runtime::{
    Actor, ActorError, Addr, ChildOptions, Ctx, Mesh, Node, NodeConfig, ReplyTo, SupervisorSpec,
};
use troupe_testkit::eventually;

const T: Duration = Duration::from_secs(5);

/// A versioned map: one global version, bumped by every write. A `Get` reads
/// the map when it is handled and answers after `get_delay_ms`, without
/// holding up later messages; the delay applies to one `Get` (it is reset to
/// 0 when taken, which tells the test that `Get` was handled).
struct MapBacking {
    map: HashMap<Vec<u8>, Vec<u8>>,
    version: u64,
    get_delay_ms: Arc<AtomicU64>,
}

impl Actor for MapBacking {
    type Msg = BackingMsg;

    async fn handle(
        &mut self,
        msg: BackingMsg,
        reply: ReplyTo<Versioned>,
        _ctx: &Ctx<BackingMsg>,
    ) -> Result<(), ActorError> {
        match msg {
            BackingMsg::Get { key } => {
                let answer = Versioned {
                    value: self.map.get(&key).cloned(),
                    version: self.version,
                };
                let delay = Duration::from_millis(self.get_delay_ms.swap(0, Ordering::SeqCst));
                if delay.is_zero() {
                    reply.send(answer);
                } else {
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        reply.send(answer);
                    });
                }
            }
            BackingMsg::Put { key, value } => {
                self.version += 1;
                match &value {
                    Some(v) => self.map.insert(key, v.clone()),
                    None => self.map.remove(&key),
                };
                reply.send(Versioned {
                    value,
                    version: self.version,
                });
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
}

async fn setup(shards: usize) -> Setup {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let get_delay_ms = Arc::new(AtomicU64::new(0));
    let delay = get_delay_ms.clone();
    let (backing_spec, backing) = node
        .child("db", ChildOptions::permanent(), move || MapBacking {
            map: HashMap::new(),
            version: 0,
            get_delay_ms: delay.clone(),
        })
        .unwrap();
    let entries = NonZeroUsize::new(1000).unwrap();
    let for_shards = backing.clone();
    let (pool_spec, pool) = node
        .pool_child("cache", shards, ChildOptions::permanent(), move |_| {
            CacheShard::with_backing(entries, 1 << 20, for_shards.clone())
        })
        .unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![backing_spec, pool_spec])
        .await
        .unwrap();
    Setup {
        _node: node,
        client: CacheClient::from_pool(&pool),
        backing,
        get_delay_ms,
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn backing_get(backing: &Addr<BackingMsg>, key: &str) -> Option<Vec<u8>> {
    let key = key.as_bytes().to_vec();
    backing
        .call(BackingMsg::Get { key }, T)
        .await
        .unwrap()
        .value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miss_fills_from_the_backing_store() {
    let s = setup(2).await;
    let put = BackingMsg::Put {
        key: b"k".to_vec(),
        value: Some(b"v".to_vec()),
    };
    assert_eq!(s.backing.call(put, T).await.unwrap().version, 1);
    assert_eq!(s.client.get(b("k")).await.unwrap(), Some(b("v")));
    assert_eq!(s.client.get(b("absent")).await.unwrap(), None);
    // The fill is cast after the answer: wait (bounded) for a hit.
    eventually("the miss filled (a hit)", T, async || {
        let before = s.client.stats().await.unwrap().hits;
        assert_eq!(s.client.get(b("k")).await.unwrap(), Some(b("v")));
        s.client.stats().await.unwrap().hits > before
    })
    .await;
    assert_eq!(s.client.dbsize().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_through_and_are_visible_on_the_next_read() {
    let s = setup(2).await;
    for round in 0..5 {
        let value = b(&format!("v{round}"));
        let out = s
            .client
            .set(b("k"), value.clone(), SetTtl::Clear, None)
            .await
            .unwrap();
        assert!(out.written);
        assert_eq!(backing_get(&s.backing, "k").await, Some(value.to_vec()));
        // Read twice: once filling, once (probably) hitting.
        assert_eq!(s.client.get(b("k")).await.unwrap(), Some(value.clone()));
        assert_eq!(s.client.get(b("k")).await.unwrap(), Some(value));
    }
    s.client
        .mset(vec![(b("a"), b("1")), (b("b"), b("2"))])
        .await
        .unwrap();
    assert_eq!(
        s.client.mget(vec![b("a"), b("b"), b("k")]).await.unwrap(),
        vec![Some(b("1")), Some(b("2")), Some(b("v4"))]
    );
    assert_eq!(s.client.del(vec![b("k"), b("a")]).await.unwrap(), 2);
    assert_eq!(backing_get(&s.backing, "k").await, None);
    assert_eq!(s.client.get(b("k")).await.unwrap(), None);
    assert_eq!(s.client.get(b("a")).await.unwrap(), None);
    assert_eq!(s.client.get(b("b")).await.unwrap(), Some(b("2")));
    // Options needing the authoritative value or a backing-side expiry are
    // refused, not silently weakened.
    let refused = s
        .client
        .set(b("k"), b("x"), SetTtl::After(Duration::from_secs(1)), None)
        .await;
    assert!(refused.is_err());
    assert!(s.client.incr_by(b("n"), 1).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_fill_never_resurrects_an_acknowledged_write() {
    let s = setup(1).await;
    for round in 0..4 {
        let old = b(&format!("old{round}"));
        let new = b(&format!("new{round}"));
        s.client
            .set(b("k"), old.clone(), SetTtl::Clear, None)
            .await
            .unwrap();
        // A slow read-through GET: it reads `old` now and fills much later.
        s.get_delay_ms.store(300, Ordering::SeqCst);
        let slow = tokio::spawn({
            let client = s.client.clone();
            async move { client.get(b("k")).await }
        });
        eventually("the slow GET read by the backing", T, async || {
            s.get_delay_ms.load(Ordering::SeqCst) == 0
        })
        .await;
        // The write is acknowledged while the slow read is still in flight.
        s.client
            .set(b("k"), new.clone(), SetTtl::Clear, None)
            .await
            .unwrap();
        assert!(!slow.is_finished(), "the race was not forced");
        // No read may return `old` from now on. In odd rounds, read while
        // the slow read is in flight (the fresh fill then guards the key);
        // in even rounds, leave the key uncached so only the invalidation
        // fence can refuse the slow fill.
        if round % 2 == 1 {
            // (bounded: the slow read ends within its 300 ms delay, or fails at its timeout)
            while !slow.is_finished() {
                assert_eq!(s.client.get(b("k")).await.unwrap(), Some(new.clone()));
            }
        }
        // The slow read itself began before the write: it saw `old`. Its
        // fill was cast before it answered, so the shard handles that fill
        // before any of the reads below.
        assert_eq!(slow.await.unwrap().unwrap(), Some(old));
        for _ in 0..30 {
            assert_eq!(s.client.get(b("k")).await.unwrap(), Some(new.clone()));
        }
        assert_eq!(s.client.get(b("k")).await.unwrap(), Some(new));
    }
}
