//! The database as the store behind a read-through cache, both declared in one topology: writes
//! through the cache land in the database (at increasing log indexes as versions), misses fill
//! from the leader, and a write through the database is seen by the cache once invalidated.

use std::time::Duration;

use bytes::Bytes;
use troupe::cache::Backing;
use troupe::db::DbBacking;
use troupe::prelude::*;

const T: Duration = Duration::from_secs(10);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_through_cache_in_front_of_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Topology::new("read-through");
    let n = t.node("n");
    // One replica: it leads at once (a majority of one).
    let db = t
        .add(n, "db", DbSpec::in_dir(dir.path()).replicas(1))
        .with_timeout(T);
    let backing = DbBacking::new(db.clone());
    let cache = t.add(
        n,
        "cache",
        CacheSpec::lru(100)
            .shards(2)
            .read_through(backing.clone())
            .call_timeout(T),
    );
    let running = t.start().await.unwrap();

    // Versions are log indexes: every write gets a higher one.
    let mut last = 0;
    for round in 0..3 {
        let version = backing
            .put(b("k"), Some(Bytes::from(format!("v{round}"))), T)
            .await
            .unwrap();
        assert!(version > last);
        last = version;
    }
    let read = backing.get(b("k"), T).await.unwrap();
    assert_eq!(read.value, Some(b("v2")));
    assert!(read.version >= last);

    // A miss fills from the database; a write through the cache lands in it.
    assert_eq!(cache.get("k").await.unwrap(), Some(b("v2")));
    cache.set("k", "through").await.unwrap();
    assert_eq!(db.get("k").await.unwrap(), Some(b("through")));
    assert_eq!(cache.get("k").await.unwrap(), Some(b("through")));
    assert_eq!(cache.del(["k"]).await.unwrap(), 1);
    assert_eq!(db.get("k").await.unwrap(), None);
    assert_eq!(cache.get("absent").await.unwrap(), None);
    running.shutdown().await;
}
