//! The database as the store behind troupe-cache's read-through shards: writes through the
//! cache land in the database (at increasing log indexes as versions), misses fill from the
//! leader, and a write through the database is seen by the cache once it is invalidated.

use std::num::NonZeroUsize;
use std::time::Duration;

use bytes::Bytes;
use troupe::cache::{BackingMsg, CacheClient, CacheShard, SetTtl};
use troupe::db::{DbBacking, DbSpec};
use troupe::runtime::{ChildOptions, Mesh, Node, NodeConfig, SupervisorSpec};

const T: Duration = Duration::from_secs(10);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_through_cache_in_front_of_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    // One replica: it leads at once (a majority of one).
    let spec = DbSpec::new("db", dir.path()).replica("n");
    let db = spec.client(&node).with_timeout(T);
    let (replica_spec, _) = node
        .child(
            &spec.replica_name(0),
            ChildOptions::permanent(),
            spec.factory(0),
        )
        .unwrap();
    let for_backing = db.clone();
    let (backing_spec, backing) = node
        .child("db-backing", ChildOptions::permanent(), move || {
            DbBacking::new(for_backing.clone())
        })
        .unwrap();
    let entries = NonZeroUsize::new(100).unwrap();
    let for_shards = SharedBacking::new(backing.clone());
    let (pool_spec, pool) = node
        .pool_child("cache", 2, ChildOptions::permanent(), move |_| {
            CacheShard::with_backing(entries, 1 << 20, for_shards.clone())
        })
        .unwrap();
    node.start(
        SupervisorSpec::one_for_one(),
        vec![replica_spec, backing_spec, pool_spec],
    )
    .await
    .unwrap();
    let cache = CacheClient::from_pool(&pool);

    // Versions are log indexes: every write gets a higher one.
    let mut last = 0;
    for round in 0..3 {
        let version = backing
            .call(
                |reply| BackingMsg::Put {
                    key: b("k"),
                    value: Some(Bytes::from(format!("v{round}"))),
                    reply,
                },
                T,
            )
            .await
            .unwrap();
        assert!(version > last);
        last = version;
    }
    let read = backing
        .call(|reply| BackingMsg::Get { key: b("k"), reply }, T)
        .await
        .unwrap();
    assert_eq!(read.value, Some(b("v2")));
    assert!(read.version >= last);

    // A miss fills from the database; a write through the cache lands in it.
    assert_eq!(cache.get(b("k")).await.unwrap(), Some(b("v2")));
    cache.set("k", "through").await.unwrap();
    assert_eq!(db.get("k").await.unwrap(), Some(b("through")));
    assert_eq!(cache.get(b("k")).await.unwrap(), Some(b("through")));
    assert_eq!(cache.del(vec![b("k")]).await.unwrap(), 1);
    assert_eq!(db.get("k").await.unwrap(), None);
    assert_eq!(cache.get(b("absent")).await.unwrap(), None);
    node.shutdown().await;
}
