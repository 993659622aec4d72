//! The Raft mode over real QUIC on loopback: three replicas on three in-process nodes and a
//! client node (see `harness`). A leader elected by vote, writes acknowledged by a majority,
//! linearizable reads, a new leader when the leader's node goes, the old one rejoining as a
//! follower, and a follower brought back by a snapshot larger than one 8 MiB frame, in chunks.

mod harness;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use harness::{Cluster, T, key, value};
use troupe_db::msg::ReadAt;
use troupe_db::{DbAdminMsg, DbMsg, DbSpec, ReadPolicy, Role, WriteOutcome};
use troupe_runtime::Reach;
use troupe_testkit::eventually;

/// Clients and operators anywhere in the test cluster (the tests promote and change members
/// from the client's node).
fn spec(dir: &Path) -> DbSpec {
    DbSpec::new("db", dir)
        .reachable_from(Reach::cluster())
        .administered_from(Reach::cluster())
        .replica("r0")
        .replica("r1")
        .replica("r2")
        .raft()
}

/// Starts a cluster of `spec` (see `harness`), logging as `RUST_LOG` says and collecting
/// [`LEADERSHIPS`].
async fn start(spec: DbSpec) -> Cluster {
    init_tracing();
    Cluster::start(spec).await
}

/// `key` as replica `replica` holds it once it has applied `min_index`
async fn read_at(cluster: &Cluster, replica: usize, key: Bytes, min_index: u64) -> Option<Bytes> {
    let direct = cluster
        .app
        .node
        .addr::<DbMsg>(&format!("r{replica}"), &cluster.spec.replica_name(replica));
    let read = |reply| DbMsg::Get {
        key: key.clone(),
        read: ReadAt::Replica {
            min_index,
            wait_ms: 1000,
        },
        reply,
    };
    direct.call(read, T).await.unwrap().unwrap().value
}

fn init_tracing() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(tracing_subscriber::EnvFilter::from_default_env()),
        )
        .with(LeadershipLog)
        .try_init();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raft_group_elects_a_leader_and_serves_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(spec(dir.path())).await;
    let client = &cluster.client;
    let mut last = 0;
    for i in 0..20 {
        let written = client.put(key(i), value(i, 0)).await.unwrap();
        assert!(written.index > last, "log indexes increase");
        last = written.index;
        assert_eq!(written.outcome, WriteOutcome::Put { previous: None });
    }
    // linearizable reads (the default policy): every acknowledged write is seen
    for i in 0..20 {
        assert_eq!(client.get(key(i)).await.unwrap(), Some(value(i, 0)));
    }
    let replaced = client.put(key(0), value(0, 1)).await.unwrap();
    assert_eq!(
        replaced.outcome,
        WriteOutcome::Put {
            previous: Some(value(0, 0))
        }
    );
    let swapped = client.cas(key(1), Some(value(1, 0)), Some(value(1, 1)));
    assert_eq!(swapped.await.unwrap().outcome, WriteOutcome::Swapped);
    let refused = client.cas(key(1), Some(value(1, 0)), None).await.unwrap();
    assert_eq!(
        refused.outcome,
        WriteOutcome::CasFailed {
            actual: Some(value(1, 1))
        }
    );
    client.delete(key(2)).await.unwrap();
    assert_eq!(client.get(key(2)).await.unwrap(), None);
    let scanned = client.scan("key-001", 100).await.unwrap();
    assert_eq!(scanned.len(), 10);
    assert_eq!(scanned[0], (key(10), value(10, 0)));
    // every replica applies them; any may serve a read
    let last = client.put(key(99), value(99, 0)).await.unwrap().index;
    for replica in 0..3 {
        cluster.wait_applied(replica, last).await;
    }
    let any = client.with_read_policy(ReadPolicy::AnyReplica);
    for i in 10..20 {
        let read = any.get_with(key(i), ReadPolicy::AnyReplica).await.unwrap();
        assert_eq!(read.value, Some(value(i, 0)));
    }
    // one leader, and the others follow it in its term
    let statuses = cluster.statuses().await;
    let leaders: Vec<_> = statuses
        .iter()
        .flatten()
        .filter(|s| s.role == Role::Leader)
        .collect();
    assert_eq!(leaders.len(), 1, "{statuses:?}");
    let term = leaders[0].epoch;
    assert!(
        statuses
            .iter()
            .flatten()
            .all(|s| s.epoch == term && s.leader == Some(leaders[0].id)),
        "{statuses:?}"
    );
    cluster.stop().await;
}

/// Writes sent together are gathered into shared log entries (one proposal per entry), and
/// each still gets its own outcome: a cas among them sees exactly the writes ordered before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_log_entries_and_keep_their_own_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(spec(dir.path())).await;
    let client = &cluster.client;
    client.put(key(0), value(0, 0)).await.unwrap();
    const WRITES: usize = 400;
    let writes = (1..=WRITES).map(|i| client.put(key(i), value(i, 0)));
    let written = futures::future::join_all(writes).await;
    let mut indexes = std::collections::BTreeSet::new();
    for (i, w) in (1..).zip(written) {
        let w = w.unwrap();
        assert_eq!(w.outcome, WriteOutcome::Put { previous: None }, "key {i}");
        indexes.insert(w.index);
    }
    assert!(
        indexes.len() < WRITES / 2,
        "{WRITES} concurrent writes took {} log entries",
        indexes.len()
    );
    // a chain of compare-and-sets on one key, sent at once: each sees the value it expects
    // exactly once, so every step succeeds in some order only if outcomes are per write
    let casts =
        (0..50).map(|step| client.cas(key(0), Some(value(0, step)), Some(value(0, step + 1))));
    let outcomes = futures::future::join_all(casts).await;
    let swapped = outcomes
        .iter()
        .filter(|o| o.as_ref().is_ok_and(|w| w.outcome == WriteOutcome::Swapped))
        .count();
    let final_value = client.get(key(0)).await.unwrap();
    assert_eq!(final_value, Some(value(0, swapped)), "{outcomes:?}");
    for i in 1..=WRITES {
        assert_eq!(client.get(key(i)).await.unwrap(), Some(value(i, 0)));
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaders_node_lost_a_new_leader_is_elected_and_the_old_one_follows() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start(spec(dir.path())).await;
    for i in 0..10 {
        cluster.client.put(key(i), value(i, 0)).await.unwrap();
    }
    let (old, old_term) = cluster.leader_and_term().await;
    cluster.stop_replica(old).await;
    // the two left elect one of themselves, in a newer term, and writes resume
    let new = cluster.wait_for_leader().await;
    assert_ne!(new, old);
    let status = cluster.statuses().await[new].clone().unwrap();
    assert!(status.epoch > old_term, "{status:?} after term {old_term}");
    let mut last = 0;
    for i in 10..20 {
        last = cluster.client.put(key(i), value(i, 0)).await.unwrap().index;
    }
    for i in 0..20 {
        assert_eq!(cluster.client.get(key(i)).await.unwrap(), Some(value(i, 0)));
    }
    // the old leader comes back from its file as a follower and catches up
    cluster.restart_replica(old).await;
    let back = cluster.wait_applied(old, last).await;
    assert_eq!(back.role, Role::Follower);
    assert_eq!(back.leader, Some(new as u64));
    cluster.stop().await;
}

/// A follower behind by more log than one message may carry (20 values of 1 MiB, the log kept
/// whole) catches up by log: the leader sends the append in parts within the frame limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_by_more_log_than_a_message_catches_up_by_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start(spec(dir.path())).await;
    let leader = cluster.wait_for_leader().await;
    let behind = (leader + 1) % 3;
    cluster.stop_replica(behind).await;
    let big = |i: usize| Bytes::from(vec![b'a' + (i % 26) as u8; 1024 * 1024]);
    let mut last = 0;
    for i in 0..20 {
        last = cluster.client.put(key(i), big(i)).await.unwrap().index;
    }
    cluster.restart_replica(behind).await;
    let status = cluster.wait_applied(behind, last).await;
    assert_eq!(status.base_index, 0, "caught up by log: {status:?}");
    let read = read_at(&cluster, behind, key(19), last).await;
    assert_eq!(read, Some(big(19)));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_far_behind_comes_back_by_a_snapshot_larger_than_a_frame() {
    let dir = tempfile::tempdir().unwrap();
    // a snapshot after every 20 entries, the log cut behind it
    let mut cluster = start(spec(dir.path()).log_retain(20)).await;
    let leader = cluster.wait_for_leader().await;
    let behind = (leader + 1) % 3;
    cluster.stop_replica(behind).await;
    // 160 values of 64 KiB: 10 MiB, more than one 8 MiB frame could carry
    let big = |i: usize| Bytes::from(vec![b'a' + (i % 26) as u8; 64 * 1024]);
    let mut last = 0;
    for i in 0..160 {
        last = cluster.client.put(key(i), big(i)).await.unwrap().index;
    }
    cluster.wait_applied(leader, last).await;
    cluster.restart_replica(behind).await;
    let status = cluster.wait_applied(behind, last).await;
    assert!(
        status.base_index > 20,
        "caught up from a snapshot: {status:?}"
    );
    // read from that very replica
    for i in [0, 79, 159] {
        let read = read_at(&cluster, behind, key(i), last).await;
        assert_eq!(read, Some(big(i)), "key {i} on replica {behind}");
    }
    // the snapshot is a file of its own beside the replica's
    let snapshot = cluster.spec.snapshot_dir(behind).join("current.snap");
    let size = std::fs::metadata(&snapshot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 8 * 1024 * 1024,
        "{} is {size} bytes",
        snapshot.display()
    );
    eventually(
        "nothing left to receive",
        Duration::from_secs(1),
        async || {
            std::fs::read_dir(cluster.spec.snapshot_dir(behind))
                .map(|d| {
                    d.flatten()
                        .all(|e| !e.file_name().to_string_lossy().starts_with("receiving-"))
                })
                .unwrap_or(false)
        },
    )
    .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_promotion_hands_the_lead_to_a_follower() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(spec(dir.path())).await;
    for i in 0..5 {
        cluster.client.put(key(i), value(i, 0)).await.unwrap();
    }
    let (old, term) = cluster.leader_and_term().await;
    let promoted = cluster.client.promote().await.unwrap();
    assert_ne!(promoted.leader as usize, old);
    assert!(promoted.epoch > term, "{promoted:?} after term {term}");
    assert_eq!(cluster.wait_for_leader().await, promoted.leader as usize);
    // nothing acknowledged is lost, and writes go on
    for i in 0..5 {
        assert_eq!(cluster.client.get(key(i)).await.unwrap(), Some(value(i, 0)));
    }
    cluster.client.put(key(5), value(5, 0)).await.unwrap();
    cluster.stop().await;
}

/// A group of five placed replicas, three of them voters, grows to five and shrinks back to
/// three (the first leader among those removed) while a writer keeps writing: every
/// acknowledged write is there at the end, on the remaining voters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_grows_three_to_five_and_back_to_three_under_writes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let names = ["r0", "r1", "r2", "r3", "r4"];
    let mut spec = DbSpec::new("db", dir.path())
        .reachable_from(Reach::cluster())
        .administered_from(Reach::cluster());
    for name in names {
        spec = spec.replica(name);
    }
    let spec = spec.voters(3);
    let ca = troupe_testkit::Cluster::new("raft-members");
    let first = harness::TestNode::start(&ca, "r0", &[]).await;
    let seed = [first.net.local_addr()];
    let mut nodes = vec![first];
    for name in &names[1..] {
        nodes.push(harness::TestNode::start(&ca, name, &seed).await);
    }
    let app = harness::TestNode::start(&ca, "app", &seed).await;
    let nets: Vec<_> = nodes.iter().chain([&app]).map(|n| &n.net).collect();
    troupe_testkit::fully_connected(&nets, T).await;
    for (i, node) in nodes.iter().enumerate() {
        node.spawn_replica(&spec, i).await;
    }
    let client = spec.client(&app.node).with_timeout(T);
    let voters = |client: &troupe_db::DbClient| {
        let client = client.clone();
        async move {
            client
                .statuses()
                .await
                .into_iter()
                .flatten()
                .find(|s| s.role == Role::Leader)
                .map(|s| s.voters)
        }
    };
    assert_eq!(
        eventually("a leader of three", T, async || voters(&client).await).await,
        vec![0, 1, 2]
    );

    // a writer, all along
    let stop = Arc::new(AtomicBool::new(false));
    let acked_count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let (client, stop, count) = (client.clone(), stop.clone(), acked_count.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 100_000 {
                if client.put(key(i), value(i, 0)).await.is_ok() {
                    acked.push(i);
                    count.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
            acked
        })
    };
    let progress = async |what: &str| {
        let target = acked_count.load(Ordering::Relaxed) + 5;
        eventually(what, T, async || {
            acked_count.load(Ordering::Relaxed) >= target
        })
        .await;
    };
    // enough log that a replica added with none of it is far behind
    eventually("200 writes before the changes", T, async || {
        acked_count.load(Ordering::Relaxed) >= 200
    })
    .await;
    let before = eventually("the leader's log", T, async || {
        let statuses = client.statuses().await;
        let leader = statuses
            .into_iter()
            .flatten()
            .find(|s| s.role == Role::Leader);
        leader.map(|s| s.last_index)
    })
    .await;
    assert_eq!(client.add_replica(3).await.unwrap(), vec![0, 1, 2, 3]);
    // a voter only once it holds the log, within one append
    let joined = client.statuses().await.swap_remove(3).unwrap();
    assert!(
        joined.last_index + 64 >= before,
        "replica 3 became a voter holding {} of {before} entries",
        joined.last_index
    );
    assert_eq!(client.add_replica(4).await.unwrap(), vec![0, 1, 2, 3, 4]);
    progress("writes with five voters").await;
    let leader = eventually("a leader", T, async || {
        client
            .statuses()
            .await
            .into_iter()
            .flatten()
            .find(|s| s.role == Role::Leader)
            .map(|s| s.id)
    })
    .await;
    // the leader and one other leave
    let other = if leader == 0 { 1 } else { 0 };
    let left = client.remove_replica(leader).await.unwrap();
    assert!(!left.contains(&leader), "{left:?}");
    let left = client.remove_replica(other).await.unwrap();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(!left.contains(&other), "{left:?}");
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.unwrap();
    assert!(
        acked.len() > 10,
        "the writer wrote throughout: {}",
        acked.len()
    );
    for i in acked {
        assert_eq!(
            client.get(key(i)).await.unwrap(),
            Some(value(i, 0)),
            "key {i}"
        );
    }
    for node in nodes.into_iter().chain([app]) {
        node.stop().await;
    }
}

/// Every `leading` line (database, replica, term) the replicas log, whatever `RUST_LOG` shows.
static LEADERSHIPS: std::sync::Mutex<Vec<(String, u64, u64)>> = std::sync::Mutex::new(Vec::new());

/// Collects [`LEADERSHIPS`].
struct LeadershipLog;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LeadershipLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        #[derive(Default)]
        struct Fields(bool, Option<u64>, Option<u64>, String);
        impl tracing::field::Visit for Fields {
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                match field.name() {
                    "replica" => self.1 = Some(value),
                    "epoch" => self.2 = Some(value),
                    _ => {}
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                match field.name() {
                    "message" => self.0 = format!("{value:?}") == "leading",
                    "db" => self.3 = format!("{value:?}"),
                    _ => {}
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let (true, Some(replica), Some(term), Ok(mut seen)) =
            (fields.0, fields.1, fields.2, LEADERSHIPS.lock())
        {
            seen.push((fields.3, replica, term));
        }
    }
}

/// The race that elects two leaders in one term where a term may have one per candidate
/// (openraft's default): both followers stand for election at the same moment, again and
/// again. Every term that has a leader has exactly one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_standing_at_once_never_both_lead_one_term() {
    let dir = tempfile::tempdir().unwrap();
    // a name of its own: the other tests' groups count their terms too
    let mut race = DbSpec::new("race", dir.path())
        .reachable_from(Reach::cluster())
        .administered_from(Reach::cluster())
        .raft();
    for name in ["r0", "r1", "r2"] {
        race = race.replica(name);
    }
    let cluster = start(race).await;
    for round in 0..6 {
        let leader = cluster.wait_for_leader().await;
        let [a, b] = [(leader + 1) % 3, (leader + 2) % 3];
        let promote = |i: usize| {
            let replica = &cluster.client.replicas()[i];
            let admin = replica.sibling::<DbAdminMsg>(&format!("{}.admin", replica.name()));
            async move { admin.call(DbAdminMsg::Promote, T).await }
        };
        // answers do not matter: at most one of them can win each term
        let _ = tokio::join!(promote(a), promote(b));
        cluster
            .client
            .put(key(round), value(round, 0))
            .await
            .unwrap();
    }
    let seen: Vec<(u64, u64)> = LEADERSHIPS
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(db, _, _)| db == "race")
        .map(|(_, replica, term)| (replica, term))
        .collect();
    let mut by_term = std::collections::BTreeMap::new();
    for (replica, term) in &seen {
        let first = by_term.entry(*term).or_insert(*replica);
        assert_eq!(first, replica, "two leaders in term {term}: {seen:?}");
    }
    assert!(by_term.len() >= 4, "elections took place: {seen:?}");
    cluster.stop().await;
}
