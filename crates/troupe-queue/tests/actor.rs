//! The queue actor under a supervisor, driven through its [`QueueClient`]: FIFO, nack, lease
//! expiry, dead letters (list, replay, drop), node down, typed errors, deadlines, and a
//! durable queue that keeps its contents across a crash of the actor

use std::time::{Duration, Instant};

use troupe_queue::actor::{QueueFailure, QueueMsg, QueueSpec};
use troupe_queue::core::QueueConfig;
use troupe_queue::{Consumer, ItemId, QueueClient, QueueError, StatsInfo};
use troupe_runtime::{CallError, ChildOptions, Mesh, Node, NodeConfig, SupervisorSpec};
use troupe_testkit::eventually;

async fn start(spec: QueueSpec) -> (Node, QueueClient) {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let (child, addr) = node
        .child("queue", ChildOptions::permanent(), spec.factory())
        .unwrap();
    node.start(
        SupervisorSpec::one_for_one().intensity(20, Duration::from_secs(10)),
        vec![child],
    )
    .await
    .unwrap();
    (node, QueueClient::new(addr))
}

fn config() -> QueueConfig {
    QueueConfig {
        capacity: 100,
        max_attempts: 3,
        lease: Duration::from_secs(30),
        max_item_bytes: 64,
        dlq_capacity: 10,
    }
}

fn worker(id: u64) -> Consumer {
    Consumer::new("worker-node", id)
}

/// Polls `stats` until `done` holds, for at most `within`
async fn stats_until(
    q: &QueueClient,
    within: Duration,
    what: &str,
    done: impl Fn(&StatsInfo) -> bool,
) -> StatsInfo {
    eventually(what, within, async || match q.stats().await {
        Ok(stats) if done(&stats) => Ok(stats),
        other => Err(other),
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_take_ack_is_fifo() {
    let (node, q) = start(QueueSpec::in_memory().config(config())).await;
    let ids = [
        q.enqueue("a").await.unwrap(),
        q.enqueue(String::from("b")).await.unwrap(),
        q.enqueue(vec![b'c']).await.unwrap(),
    ];
    assert!(ids[0] < ids[1] && ids[1] < ids[2]);
    for (id, payload) in ids.iter().zip(["a", "b", "c"]) {
        let lease = q.take(&worker(1)).await.unwrap().unwrap();
        assert_eq!(
            (lease.item, &lease.payload[..], lease.attempt),
            (*id, payload.as_bytes(), 1)
        );
        assert_eq!(lease.lease, Duration::from_secs(30));
        q.ack(&worker(1), lease.item).await.unwrap();
    }
    assert!(q.take(&worker(1)).await.unwrap().is_none());
    assert_eq!(
        q.ack(&worker(1), ids[0]).await,
        Err(QueueError::Refused(QueueFailure::NotLeased {
            item: ids[0],
            consumer: worker(1).id()
        }))
    );
    assert_eq!(
        q.enqueue(vec![0; 65]).await,
        Err(QueueError::Refused(QueueFailure::TooLarge {
            len: 65,
            max: 64
        }))
    );
    let stats = q.stats().await.unwrap();
    assert_eq!(
        (stats.ready, stats.leased, stats.enqueued, stats.acked),
        (0, 0, 3, 3)
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_refuses() {
    let (node, q) = start(QueueSpec::in_memory().config(config()).capacity(2)).await;
    q.enqueue("a").await.unwrap();
    q.enqueue("b").await.unwrap();
    let err = q.enqueue("c").await.unwrap_err();
    assert_eq!(err, QueueError::Refused(QueueFailure::Full { capacity: 2 }));
    assert_eq!(err.to_string(), "queue full: 2 items ready or leased");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacked_item_is_redelivered_first_to_another_consumer() {
    let (node, q) = start(QueueSpec::in_memory().config(config())).await;
    let a = q.enqueue("a").await.unwrap();
    let b = q.enqueue("b").await.unwrap();
    assert_eq!(q.take(&worker(1)).await.unwrap().unwrap().item, a);
    // Another consumer cannot settle what it does not hold.
    assert!(matches!(
        q.nack(&worker(2), a).await,
        Err(QueueError::Refused(QueueFailure::NotLeased { .. }))
    ));
    q.nack(&worker(1), a).await.unwrap();
    let again = q.take(&worker(2)).await.unwrap().unwrap();
    assert_eq!((again.item, again.attempt), (a, 2));
    assert_eq!(q.take(&worker(2)).await.unwrap().unwrap().item, b);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_lease_is_redelivered_by_the_tick() {
    let (node, q) = start(QueueSpec::in_memory().config(config())).await;
    let a = q.enqueue("a").await.unwrap();
    let b = q.enqueue("b").await.unwrap();
    let lease = q
        .take_with_lease(&worker(1), Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((lease.item, lease.lease), (a, Duration::from_millis(100)));
    // Only the tick can expire the lease: the stats do not expire anything.
    let stats = stats_until(&q, Duration::from_secs(5), "the lease expires", |s| {
        s.leased == 0
    })
    .await;
    assert_eq!(stats.ready, 2);
    let again = q.take(&worker(2)).await.unwrap().unwrap();
    assert_eq!((again.item, again.attempt), (a, 2));
    assert_eq!(q.take(&worker(2)).await.unwrap().unwrap().item, b);
    // The first consumer's lease is gone: its late ack is refused.
    assert!(matches!(
        q.ack(&worker(1), a).await,
        Err(QueueError::Refused(QueueFailure::NotLeased { .. }))
    ));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_replayed_and_dropped() {
    let (node, q) = start(QueueSpec::in_memory().config(config())).await;
    let a = q.enqueue("a").await.unwrap();
    let b = q.enqueue("b").await.unwrap();
    for attempt in 1..=3 {
        let lease = q.take(&worker(1)).await.unwrap().unwrap();
        assert_eq!((lease.item, lease.attempt), (a, attempt));
        q.nack_with_error(&worker(1), a, "boom").await.unwrap();
    }
    for attempt in 1..=3 {
        let lease = q.take(&worker(1)).await.unwrap().unwrap();
        assert_eq!((lease.item, lease.attempt), (b, attempt));
        q.nack(&worker(1), b).await.unwrap();
    }
    assert!(q.take(&worker(1)).await.unwrap().is_none());
    let dead = q.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!((dead[0].item, dead[0].attempts), (a, 3));
    assert_eq!(dead[0].reason, "nacked: boom");
    assert_eq!((dead[1].item, &dead[1].reason[..]), (b, "nacked"));
    assert_eq!(q.stats().await.unwrap().dead, 2);

    q.replay(a).await.unwrap();
    let lease = q.take(&worker(1)).await.unwrap().unwrap();
    assert_eq!((lease.item, lease.attempt), (a, 1));
    assert_eq!(
        q.replay(a).await,
        Err(QueueError::Refused(QueueFailure::NotDead { item: a }))
    );

    let dropped = q.drop_dead_letter(b).await.unwrap();
    assert_eq!((dropped.item, &dropped.payload[..]), (b, &b"b"[..]));
    assert!(q.dead_letters().await.unwrap().is_empty());
    assert_eq!(
        q.drop_dead_letter(b).await,
        Err(QueueError::Refused(QueueFailure::NotDead { item: b }))
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_node_down_releases_its_leases() {
    let (node, q) = start(QueueSpec::in_memory().config(config())).await;
    let a = q.enqueue("a").await.unwrap();
    let b = q.enqueue("b").await.unwrap();
    assert_eq!(q.take(&worker(7)).await.unwrap().unwrap().item, a);
    let elsewhere = Consumer::new("other-node", 9);
    assert_eq!(q.take(&elsewhere).await.unwrap().unwrap().item, b);
    // What the actor's watcher sends itself when the node is reported down.
    q.addr()
        .cast(QueueMsg::NodeDown {
            node: "worker-node".into(),
        })
        .unwrap();
    let stats = stats_until(&q, Duration::from_secs(5), "the lease is released", |s| {
        s.ready == 1
    })
    .await;
    assert_eq!(stats.leased, 1, "the other node's lease stays");
    let again = q.take(&worker(8)).await.unwrap().unwrap();
    assert_eq!((again.item, again.attempt), (a, 2));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_queue_is_a_typed_call_error_within_the_deadline() {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    let q = QueueClient::new(node.addr::<QueueMsg>("n", "no-queue"))
        .with_timeout(Duration::from_millis(200));
    assert_eq!(q.timeout(), Duration::from_millis(200));
    let started = Instant::now();
    let err = q.enqueue("a").await.unwrap_err();
    assert!(
        matches!(
            err,
            QueueError::Call(CallError::NotFound { .. } | CallError::Timeout { .. })
        ),
        "{err:?}"
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "the call error is the source"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_timeout_returns_a_copy_and_clones_share_the_queue() {
    let (node, q) = start(QueueSpec::in_memory().config(config())).await;
    let quick = q.with_timeout(Duration::from_millis(750));
    assert_eq!(q.timeout(), troupe_queue::client::DEFAULT_TIMEOUT);
    assert_eq!(quick.timeout(), Duration::from_millis(750));
    let id = quick.enqueue("a").await.unwrap();
    let lease = q.clone().take(&worker(1)).await.unwrap().unwrap();
    assert_eq!(lease.item, id);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_queue_keeps_its_contents_across_an_actor_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.redb");
    let (node, q) = start(QueueSpec::durable(&path).config(config())).await;
    let mut ids: Vec<ItemId> = Vec::new();
    for n in 0..6 {
        ids.push(q.enqueue(format!("item {n}")).await.unwrap());
    }
    // Ack the first, lease the second (the lease does not survive the crash), and make the
    // last one a dead letter.
    assert_eq!(q.take(&worker(1)).await.unwrap().unwrap().item, ids[0]);
    q.ack(&worker(1), ids[0]).await.unwrap();
    assert_eq!(q.take(&worker(1)).await.unwrap().unwrap().item, ids[1]);

    assert!(node.kill("queue"));
    // Serving again once restarted: calls may fail meanwhile.
    let stats = stats_until(&q, Duration::from_secs(10), "the queue serves again", |s| {
        s.ready == 5
    })
    .await;
    assert_eq!((stats.ready, stats.leased, stats.dead), (5, 0, 0));
    let again = q.take(&worker(2)).await.unwrap().unwrap();
    assert_eq!(
        (again.item, again.attempt),
        (ids[1], 2),
        "released lease first"
    );
    for (n, id) in ids.iter().enumerate().skip(2) {
        let lease = q.take(&worker(2)).await.unwrap().unwrap();
        assert_eq!(
            (lease.item, &lease.payload[..]),
            (*id, format!("item {n}").as_bytes())
        );
        if n < 5 {
            q.ack(&worker(2), *id).await.unwrap();
        }
    }
    assert!(
        q.take(&worker(2)).await.unwrap().is_none(),
        "the acked item never comes back"
    );
    // The last item fails its remaining attempts and becomes a dead letter on disk.
    q.nack_with_error(&worker(2), ids[5], "bad input")
        .await
        .unwrap();
    for attempt in 2..=3 {
        let lease = q.take(&worker(2)).await.unwrap().unwrap();
        assert_eq!((lease.item, lease.attempt), (ids[5], attempt));
        q.nack_with_error(&worker(2), ids[5], "bad input")
            .await
            .unwrap();
    }

    assert!(node.kill("queue"));
    // A fresh instance counts from zero: nothing acked yet.
    let stats = stats_until(&q, Duration::from_secs(10), "the queue serves again", |s| {
        s.acked == 0 && s.dead == 1
    })
    .await;
    assert_eq!(
        (stats.ready, stats.leased),
        (1, 0),
        "ids[1]'s lease released again"
    );
    let dead = q.dead_letters().await.unwrap();
    assert_eq!(
        (dead[0].item, &dead[0].reason[..]),
        (ids[5], "nacked: bad input")
    );
    q.drop_dead_letter(ids[5]).await.unwrap();
    assert!(q.dead_letters().await.unwrap().is_empty());
    node.shutdown().await;
}
