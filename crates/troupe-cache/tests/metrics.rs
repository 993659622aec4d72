//! The shards' hit, miss, eviction and expiry counters reach the `metrics` facade.
//! (Its own test binary: the recorder is process-global.)

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use bytes::Bytes;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use troupe_cache::{CacheShard, SetTtl, ShardMsg};
use troupe_runtime::{ChildOptions, Mesh, Node, NodeConfig, SupervisorSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_misses_evictions_and_expirations_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("first recorder in this process");

    let node = Node::new("m", &Mesh::new(), NodeConfig::default()).unwrap();
    let entries = NonZeroUsize::new(2).unwrap();
    let (spec, pool) = node
        .pool_child("cache", 1, ChildOptions::permanent(), move |_| {
            CacheShard::new(entries, 1 << 20)
        })
        .unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![spec])
        .await
        .unwrap();
    let shard = pool.member(0).unwrap().clone();
    let t = Duration::from_secs(5);
    let key = |k: &str| Bytes::copy_from_slice(k.as_bytes());
    let set = |k: &str, ttl: SetTtl| {
        let key = key(k);
        move |reply| ShardMsg::Set {
            key,
            value: Bytes::from_static(b"v"),
            ttl,
            condition: None,
            reply,
        }
    };
    let get = |k: &str| {
        let key = key(k);
        move |reply| ShardMsg::Get { key, reply }
    };
    shard
        .call(set("a", SetTtl::Clear), t)
        .await
        .unwrap()
        .unwrap();
    shard.call(get("a"), t).await.unwrap().unwrap(); // a hit
    shard.call(get("zz"), t).await.unwrap().unwrap(); // a miss
    shard
        .call(set("b", SetTtl::Clear), t)
        .await
        .unwrap()
        .unwrap();
    shard
        .call(set("c", SetTtl::Clear), t)
        .await
        .unwrap()
        .unwrap(); // 2 entries at most: an eviction
    shard
        .call(set("d", SetTtl::After(Duration::from_millis(1))), t)
        .await
        .unwrap()
        .unwrap();
    // expired after 1 ms: reading it is the expiry
    troupe_testkit::eventually("d expired", t, async || {
        match shard.call(get("d"), t).await.unwrap() {
            Ok(None) => Ok(()),
            other => Err(other),
        }
    })
    .await;
    shard.call(ShardMsg::DbSize, t).await.unwrap(); // one more message: export
    let mut seen: HashMap<String, u64> = HashMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if let DebugValue::Counter(n) = value {
            *seen.entry(key.key().name().to_string()).or_default() += n;
        }
    }
    for name in [
        "troupe_cache_hits_total",
        "troupe_cache_misses_total",
        "troupe_cache_evictions_total",
        "troupe_cache_expirations_total",
    ] {
        assert!(
            seen.get(name).copied().unwrap_or(0) >= 1,
            "{name}: {seen:?}"
        );
    }
}
