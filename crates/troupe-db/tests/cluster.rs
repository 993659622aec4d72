//! Three replicas on three in-process nodes over real QUIC on loopback (mutual TLS from a dev
//! CA), plus a client node: replication, reads from followers, read-your-writes, follower
//! restart and catch-up (by log and by snapshot), leader loss with automatic and manual
//! promotion, the old leader rejoining as a follower, and each acknowledgement mode.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use troupe_db::msg::ReadAt;
use troupe_db::{
    AckMode, DbError, DbFailure, DbMsg, DbPeerMsg, DbSpec, Promoted, ReadPolicy, Role, WriteOutcome,
};
use troupe_runtime::{CallError, Reach};
use troupe_testkit::eventually;

mod harness;

use harness::{Cluster, T, key, value};

/// The followers the leaders' `follower caught up by snapshot` lines (at `info`) name, whatever
/// `RUST_LOG` shows.
static CAUGHT_UP_BY_SNAPSHOT: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

/// Starts a cluster of `spec` (see `harness`), logging as `RUST_LOG` says and collecting
/// [`CAUGHT_UP_BY_SNAPSHOT`].
async fn start(spec: DbSpec) -> Cluster {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_test_writer()
                .with_filter(tracing_subscriber::EnvFilter::from_default_env()),
        )
        .with(SnapshotProgress)
        .try_init();
    Cluster::start(spec).await
}

/// Collects [`CAUGHT_UP_BY_SNAPSHOT`].
struct SnapshotProgress;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SnapshotProgress {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        #[derive(Default)]
        struct Fields(String, Option<u64>);
        impl tracing::field::Visit for Fields {
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                if field.name() == "follower" {
                    self.1 = Some(value);
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if fields.0 == "follower caught up by snapshot"
            && *event.metadata().level() == tracing::Level::INFO
            && let (Some(follower), Ok(mut seen)) = (fields.1, CAUGHT_UP_BY_SNAPSHOT.lock())
        {
            seen.push(follower);
        }
    }
}

fn spec(dir: &Path, mode: AckMode) -> DbSpec {
    DbSpec::new("db", dir)
        .reachable_from(Reach::cluster())
        .replica("r0")
        .replica("r1")
        .replica("r2")
        .ack(mode)
        .promote_after(Some(Duration::from_millis(300)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_replicate_and_followers_serve_reads() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(spec(dir.path(), AckMode::Majority)).await;
    let client = &cluster.client;
    let mut last = 0;
    for i in 0..40 {
        let written = client.put(key(i), value(i, 0)).await.unwrap();
        assert!(written.index > last, "log indexes increase");
        last = written.index;
        assert_eq!(written.outcome, WriteOutcome::Put { previous: None });
    }
    // The leader sees every acknowledged write at once.
    for i in 0..40 {
        assert_eq!(client.get(key(i)).await.unwrap(), Some(value(i, 0)));
    }
    // Every follower applies them, and serves them.
    for replica in 0..3 {
        cluster.wait_applied(replica, last).await;
    }
    let any = client.with_read_policy(ReadPolicy::AnyReplica);
    for i in 0..40 {
        let read = any.get_with(key(i), ReadPolicy::AnyReplica).await.unwrap();
        assert_eq!(read.value, Some(value(i, 0)));
    }
    let scanned = client.scan("key-001", 100).await.unwrap();
    assert_eq!(scanned.len(), 10);
    assert_eq!(scanned[0], (key(10), value(10, 0)));

    // Compare-and-set, delete, and limits.
    let swapped = client
        .cas(key(1), Some(value(1, 0)), Some(value(1, 1)))
        .await
        .unwrap();
    assert_eq!(swapped.outcome, WriteOutcome::Swapped);
    let failed = client.cas(key(1), None, Some(value(1, 2))).await.unwrap();
    assert_eq!(
        failed.outcome,
        WriteOutcome::CasFailed {
            actual: Some(value(1, 1))
        }
    );
    let deleted = client.delete(key(2)).await.unwrap();
    assert_eq!(
        deleted.outcome,
        WriteOutcome::Deleted {
            previous: Some(value(2, 0))
        }
    );
    assert_eq!(client.get(key(2)).await.unwrap(), None);
    let huge_key = Bytes::from(vec![b'k'; 2000]);
    let err = client.put(huge_key, "v").await.unwrap_err();
    assert!(
        matches!(err, DbError::Refused(DbFailure::TooLarge(_))),
        "{err:?}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_your_writes_on_followers_never_sees_an_older_value() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(spec(dir.path(), AckMode::Majority)).await;
    let ryw = cluster.client.with_read_policy(ReadPolicy::ReadYourWrites);
    for round in 0..60 {
        let written = ryw.put("counter", value(0, round)).await.unwrap();
        let read = ryw
            .get_with("counter", ReadPolicy::ReadYourWrites)
            .await
            .unwrap();
        assert_eq!(read.value, Some(value(0, round)), "round {round}");
        assert!(read.index >= written.index);
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_follower_catches_up_by_log_and_by_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), AckMode::Majority).log_retain(5);
    let mut cluster = start(spec).await;
    let leader = cluster.wait_for_leader().await;
    let follower = (leader + 1) % 3;
    for i in 0..5 {
        cluster.client.put(key(i), value(i, 0)).await.unwrap();
    }

    // A crash of the follower actor: its supervisor restarts it from its file and the
    // leader's log brings it up to date.
    let node = cluster.replicas[follower].as_ref().unwrap();
    assert!(node.node.kill(&cluster.spec.replica_name(follower)));
    let mut last = 0;
    for i in 5..10 {
        last = cluster.client.put(key(i), value(i, 0)).await.unwrap().index;
    }
    cluster.wait_applied(follower, last).await;

    // Its whole node goes away while 40 writes land (majority: the other two acknowledge),
    // far past what the log keeps: it comes back through a snapshot.
    cluster.stop_replica(follower).await;
    for i in 10..50 {
        last = cluster.client.put(key(i), value(i, 1)).await.unwrap().index;
    }
    let leader_status = cluster.wait_applied(leader, last).await;
    assert!(
        leader_status.base_index > 10,
        "the leader compacted its log: {leader_status:?}"
    );
    cluster.restart_replica(follower).await;
    let status = cluster.wait_applied(follower, last).await;
    assert!(
        status.base_index > 10,
        "caught up by a snapshot: {status:?}"
    );
    // and the leader said so, at the default level
    eventually("the catch-up reported", T, async || {
        let seen = CAUGHT_UP_BY_SNAPSHOT
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        seen.contains(&(follower as u64)).then_some(()).ok_or(seen)
    })
    .await;
    assert_eq!(status.role, Role::Follower);
    // Read from that very follower.
    let direct = cluster.app.node.addr::<DbMsg>(
        &format!("r{follower}"),
        &cluster.spec.replica_name(follower),
    );
    for i in 0..50 {
        let round = usize::from(i >= 10);
        let get = |reply| DbMsg::Get {
            key: key(i),
            read: ReadAt::Replica {
                min_index: last,
                wait_ms: 1000,
            },
            reply,
        };
        // The node has just rejoined: a call that went out on a connection closed as the
        // duplicate of a crossing one is lost (at most once) and fails as unreachable; a
        // caller asks again, as the database client does.
        let read = eventually(
            &format!("key {i} read from r{follower}"),
            T,
            async || match direct.call(get, T).await {
                Err(CallError::Unreachable { .. }) => Err("unreachable"),
                answered => Ok(answered),
            },
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(read.value, Some(value(i, round)), "key {i}");
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_loss_promotes_a_follower_and_the_client_follows() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start(spec(dir.path(), AckMode::Majority)).await;
    let old = cluster.wait_for_leader().await;
    let mut acked = Vec::new();
    for i in 0..30 {
        cluster.client.put(key(i), value(i, 0)).await.unwrap();
        acked.push(i);
    }
    cluster.stop_replica(old).await;
    // The same client keeps writing: the first writes wait out detection and promotion.
    for i in 30..40 {
        cluster.client.put(key(i), value(i, 0)).await.unwrap();
        acked.push(i);
    }
    let new = cluster.wait_for_leader().await;
    assert_ne!(new, old);
    assert_eq!(cluster.client.leader(), new);
    // Majority mode: no acknowledged write was lost.
    for &i in &acked {
        assert_eq!(cluster.client.get(key(i)).await.unwrap(), Some(value(i, 0)));
    }
    // The old leader comes back: it sees the newer epoch, follows, and catches up.
    cluster.restart_replica(old).await;
    let last = cluster.client.put("after", "rejoin").await.unwrap().index;
    let status = cluster.wait_applied(old, last).await;
    assert_eq!(status.role, Role::Follower);
    assert_eq!(cluster.wait_for_leader().await, new);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_promotion_without_automatic_failover() {
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), AckMode::All).promote_after(None);
    let mut cluster = start(spec).await;
    let old = cluster.wait_for_leader().await;
    for i in 0..10 {
        cluster.client.put(key(i), value(i, 0)).await.unwrap();
    }
    cluster.stop_replica(old).await;
    // Nothing promotes on its own; a write fails within its deadline.
    let short = cluster.client.with_timeout(Duration::from_millis(1500));
    assert_eq!(
        cluster.client.timeout(),
        T,
        "with_timeout leaves the original as it was"
    );
    let err = short.put("x", "y").await.unwrap_err();
    assert!(
        matches!(err, DbError::Unavailable { last: Some(_) }),
        "{err:?}"
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "the last attempt's failure is the source"
    );
    // The client's node may read and write, not fail the database over: by default only the
    // replicas' nodes may send operators' requests
    let refused = cluster.client.promote().await.unwrap_err();
    assert!(
        matches!(refused, DbError::Call(CallError::Forbidden { .. })),
        "{refused:?}"
    );
    let refused = cluster.client.add_replica(1).await.unwrap_err();
    assert!(
        matches!(refused, DbError::Call(CallError::Forbidden { .. })),
        "{refused:?}"
    );
    let survivor = (0..3).find(|&i| i != old).expect("another replica");
    let operator = cluster
        .spec
        .client(&cluster.replicas[survivor].as_ref().expect("running").node)
        .with_timeout(T);
    let Promoted { leader: new, epoch } = operator.promote().await.unwrap();
    let new = new as usize;
    assert_ne!(new, old);
    assert!(epoch > 1);
    // All mode with one replica gone: writes need every replica, so they wait; the old
    // leader's return lets them through.
    cluster.restart_replica(old).await;
    cluster.client.put("x", "y").await.unwrap();
    for i in 0..10 {
        assert_eq!(cluster.client.get(key(i)).await.unwrap(), Some(value(i, 0)));
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_only_mode_acknowledges_without_followers() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = start(spec(dir.path(), AckMode::LeaderOnly)).await;
    let leader = cluster.wait_for_leader().await;
    for other in (0..3).filter(|&i| i != leader) {
        cluster.stop_replica(other).await;
    }
    // Both followers gone, writes still acknowledged: the leader's copy is enough.
    let written = cluster.client.put("solo", "yes").await.unwrap();
    assert!(written.index > 0);
    assert_eq!(
        cluster.client.get("solo").await.unwrap(),
        Some(Bytes::from("yes"))
    );
    cluster.stop().await;
}

/// A node of the cluster that holds no replica (`app`, with a valid certificate) tries the
/// peer protocol: fencing every replica at a far epoch, telling a follower to lead, appending
/// to a follower. Every attempt is refused typed, the replicas count it, and the database
/// carries on under the same leader and epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_protocol_is_refused_from_a_node_without_a_replica() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(spec(dir.path(), AckMode::Majority)).await;
    let leader = cluster.wait_for_leader().await;
    let before = cluster.statuses().await[leader].clone().unwrap();
    cluster.client.put("k", "v1").await.unwrap();
    let peer = |i: usize| {
        cluster
            .app
            .node
            .addr::<DbPeerMsg>(&format!("r{i}"), &cluster.spec.peer_name(i))
    };
    let forbidden = |answer: Result<_, CallError>| {
        assert!(
            matches!(answer, Err(CallError::Forbidden { .. })),
            "{answer:?}"
        );
    };
    for i in 0..3 {
        forbidden(
            peer(i)
                .call(
                    |reply| DbPeerMsg::Fence {
                        epoch: 1_000,
                        by: 0,
                        reply,
                    },
                    T,
                )
                .await
                .map(|_| ()),
        );
        forbidden(
            peer(i)
                .call(
                    |reply| DbPeerMsg::BecomeLeader {
                        epoch: 1_000,
                        reply,
                    },
                    T,
                )
                .await
                .map(|_| ()),
        );
        forbidden(peer(i).call(DbPeerMsg::Status, T).await.map(|_| ()));
    }
    // the peer variant of the client protocol cannot even be encoded
    let client_name = cluster
        .app
        .node
        .addr::<DbMsg>(&format!("r{leader}"), &cluster.spec.replica_name(leader));
    assert!(matches!(
        client_name.cast(DbMsg::Peer(
            DbPeerMsg::Status(troupe_runtime::Reply::none())
        )),
        Err(CallError::Decode(_))
    ));
    let refused: u64 = cluster
        .replicas
        .iter()
        .flatten()
        .map(|n| n.net.refused_messages())
        .sum();
    assert_eq!(refused, 9);
    // nothing changed: same leader, same epoch, writes acknowledged and read back
    let written = cluster.client.put("k", "v2").await.unwrap();
    let after = cluster.statuses().await[leader].clone().unwrap();
    assert_eq!((after.role, after.epoch), (Role::Leader, before.epoch));
    assert!(written.index > 0);
    assert_eq!(
        cluster.client.get("k").await.unwrap().as_deref(),
        Some(&b"v2"[..])
    );
    cluster.stop().await;
}
