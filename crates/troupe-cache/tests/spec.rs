//! A whole cache from one `CacheSpec`: its shards under their names, its
//! bounds split over the shards, its RESP front end, and its client.

use std::time::Duration;

use bytes::Bytes;
use troupe_cache::{CacheSpec, RespServer, RespServerMsg, ShardMsg};
use troupe_runtime::{
    ChildOptions, ChildSpec, Mesh, Node, NodeConfig, RegistryError, SupervisorSpec,
};

const T: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_declaration_places_shards_resp_and_client() {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let spec = CacheSpec::lru(8)
        .shards(2)
        .resp("127.0.0.1:0")
        .call_timeout(Duration::from_secs(2));
    let (children, cache) = spec.children(&node, "cache").unwrap();
    assert_eq!(children.len(), 2, "the shards' supervisor and the server");
    node.start(SupervisorSpec::one_for_one(), children)
        .await
        .unwrap();
    for name in ["cache.0", "cache.1", "cache.resp"] {
        assert!(node.is_registered(name), "{name}");
    }
    assert_eq!(cache.shards().len(), 2);
    assert_eq!(cache.call_timeout(), Duration::from_secs(2));
    let shorter = cache.with_timeout(Duration::from_millis(500));
    assert_eq!(shorter.call_timeout(), Duration::from_millis(500));
    assert_eq!(cache.call_timeout(), Duration::from_secs(2), "a copy");

    // 8 entries over two shards: 4 each, so never more than 8 in all, and
    // each shard evicts on its own.
    for i in 0..40 {
        cache.set(format!("k{i}"), vec![b'v'; 3]).await.unwrap();
    }
    assert_eq!(cache.dbsize().await.unwrap(), 8);
    for shard in cache.shards() {
        assert_eq!(shard.call(ShardMsg::DbSize, T).await.unwrap(), 4);
    }
    assert!(cache.stats().await.unwrap().evictions >= 32);

    // The RESP front end serves the same shards.
    let server = node.lookup::<RespServerMsg>("cache.resp").unwrap();
    let addr = server
        .call(RespServerMsg::LocalAddr, T)
        .await
        .unwrap()
        .expect("bound");
    let mut con = redis::Client::open(format!("redis://{addr}/"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("from-resp")
        .arg("1")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        cache.get("from-resp").await.unwrap(),
        Some(Bytes::from("1"))
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_name_leaves_nothing_registered() {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let (first, client) = CacheSpec::lru(10).children(&node, "first").unwrap();
    let server = RespServer::new("127.0.0.1:0").factory(client);
    let (taken, _) = node
        .child("other.resp", ChildOptions::permanent(), server)
        .unwrap();
    // A cache "other" with a RESP server cannot be placed now, and its
    // shards are released again.
    let spec = CacheSpec::lru(10).shards(2).resp("127.0.0.1:0");
    assert!(matches!(
        spec.children(&node, "other"),
        Err(RegistryError::AlreadyRegistered { .. })
    ));
    for name in ["other", "other.0", "other.1"] {
        assert!(!node.is_registered(name), "{name} stays free");
    }
    first.into_iter().for_each(ChildSpec::discard);
    taken.discard();
}

/// `CONFIG SET maxmemory` and `maxmemory-policy` reach every shard and outlive a shard's
/// crash: the restarted shard starts empty, with the settings its predecessor was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_settings_outlive_a_shard_restart() {
    use troupe_cache::{EvictionPolicy, ShardConfig};
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let spec = CacheSpec::lru(1000).shards(2).max_bytes(1 << 20);
    let (children, cache) = spec.children(&node, "cache").unwrap();
    node.start(SupervisorSpec::one_for_one(), children)
        .await
        .unwrap();
    let before = cache.configure(None, None).await.unwrap();
    assert_eq!(before[0].max_bytes, 1 << 19);
    let after = cache
        .configure(Some(200_000), Some(EvictionPolicy::NoEviction))
        .await
        .unwrap();
    let want = ShardConfig {
        max_bytes: 100_000,
        policy: EvictionPolicy::NoEviction,
    };
    assert_eq!(after, vec![want; 2]);
    cache.set("k", "v").await.unwrap();
    assert_eq!(cache.dbsize().await.unwrap(), 1);
    assert!(node.kill("cache.0") && node.kill("cache.1"));
    troupe_testkit::eventually("both shards restarted empty", T, async || {
        match cache.dbsize().await {
            Ok(0) => Ok(()),
            other => Err(other),
        }
    })
    .await;
    assert_eq!(cache.configure(None, None).await.unwrap(), vec![want; 2]);
    node.shutdown().await;
}

/// Whether a cache reads through is known from any shard that answers: one unreachable
/// shard does not keep a front end from learning it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_through_mode_is_known_from_the_first_shard_to_answer() {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let spec = CacheSpec::lru(100).shards(1);
    let (children, cache) = spec.children(&node, "cache").unwrap();
    node.start(SupervisorSpec::one_for_one(), children)
        .await
        .unwrap();
    // a client over the live shard and a name nothing answers to
    let gone = node.addr::<ShardMsg>("n", "cache.gone");
    let client = troupe_cache::CacheClient::new([gone, cache.shards()[0].clone()])
        .with_timeout(Duration::from_millis(500));
    assert!(
        client.stats().await.is_err(),
        "every shard's stats needs every shard"
    );
    assert_eq!(client.reads_through().await.ok(), Some(false));
    node.shutdown().await;
}
