//! The queue actor under a supervisor: FIFO, nack, lease expiry, dead letters, node down, and
//! a durable queue that keeps its contents across a crash of the actor

use std::time::Duration;

use bytes::Bytes;
use troupe_queue::actor::{LeaseInfo, QueueFailure, QueueMsg, QueueReply, QueueSpec};
use troupe_queue::core::QueueConfig;
use troupe_runtime::{Addr, ChildOptions, Mesh, Node, NodeConfig, SupervisorSpec};
use troupe_testkit::eventually;

const T: Duration = Duration::from_secs(5);

async fn start(spec: QueueSpec) -> (Node, Addr<QueueMsg>) {
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
    (node, addr)
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

async fn enqueue(q: &Addr<QueueMsg>, payload: &str) -> u64 {
    let msg = QueueMsg::Enqueue {
        payload: Bytes::copy_from_slice(payload.as_bytes()),
    };
    match q.call(msg, T).await.unwrap() {
        QueueReply::Enqueued(id) => id,
        other => panic!("enqueue: {other:?}"),
    }
}

async fn take(q: &Addr<QueueMsg>, consumer: u64, lease_ms: Option<u64>) -> Option<LeaseInfo> {
    let msg = QueueMsg::Take {
        consumer_node: "worker-node".into(),
        consumer,
        lease_ms,
    };
    match q.call(msg, T).await.unwrap() {
        QueueReply::Lease(lease) => Some(lease),
        QueueReply::Empty => None,
        other => panic!("take: {other:?}"),
    }
}

async fn ack(q: &Addr<QueueMsg>, item: u64, consumer: u64) -> QueueReply {
    q.call(QueueMsg::Ack { item, consumer }, T).await.unwrap()
}

async fn nack(q: &Addr<QueueMsg>, item: u64, consumer: u64) {
    let msg = QueueMsg::Nack {
        item,
        consumer,
        error: Some("boom".into()),
    };
    assert_eq!(q.call(msg, T).await.unwrap(), QueueReply::Done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_take_ack_is_fifo() {
    let (node, q) = start(QueueSpec::in_memory(config())).await;
    let ids = [
        enqueue(&q, "a").await,
        enqueue(&q, "b").await,
        enqueue(&q, "c").await,
    ];
    assert!(ids[0] < ids[1] && ids[1] < ids[2]);
    for (id, payload) in ids.iter().zip(["a", "b", "c"]) {
        let lease = take(&q, 1, None).await.unwrap();
        assert_eq!(
            (lease.item, &lease.payload[..], lease.attempt),
            (*id, payload.as_bytes(), 1)
        );
        assert_eq!(ack(&q, lease.item, 1).await, QueueReply::Done);
    }
    assert!(take(&q, 1, None).await.is_none());
    assert!(matches!(
        ack(&q, ids[0], 1).await,
        QueueReply::Error(QueueFailure::NotLeased { .. })
    ));
    let too_large = QueueMsg::Enqueue {
        payload: Bytes::from(vec![0; 65]),
    };
    assert!(matches!(
        q.call(too_large, T).await.unwrap(),
        QueueReply::Error(QueueFailure::TooLarge { len: 65, max: 64 })
    ));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_refuses() {
    let (node, q) = start(QueueSpec::in_memory(QueueConfig {
        capacity: 2,
        ..config()
    }))
    .await;
    enqueue(&q, "a").await;
    enqueue(&q, "b").await;
    let msg = QueueMsg::Enqueue {
        payload: Bytes::from_static(b"c"),
    };
    assert_eq!(
        q.call(msg, T).await.unwrap(),
        QueueReply::Error(QueueFailure::Full { capacity: 2 })
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacked_item_is_redelivered_first() {
    let (node, q) = start(QueueSpec::in_memory(config())).await;
    let a = enqueue(&q, "a").await;
    let b = enqueue(&q, "b").await;
    let first = take(&q, 1, None).await.unwrap();
    assert_eq!(first.item, a);
    nack(&q, a, 1).await;
    let again = take(&q, 2, None).await.unwrap();
    assert_eq!((again.item, again.attempt), (a, 2));
    assert_eq!(take(&q, 2, None).await.unwrap().item, b);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_lease_is_redelivered_by_the_tick() {
    let (node, q) = start(QueueSpec::in_memory(config())).await;
    let a = enqueue(&q, "a").await;
    let b = enqueue(&q, "b").await;
    assert_eq!(take(&q, 1, Some(100)).await.unwrap().item, a);
    // Only the tick can expire the lease: watch the stats, which do not expire anything.
    eventually(
        "the lease expired by the tick",
        Duration::from_secs(5),
        async || {
            let QueueReply::Stats(stats) = q.call(QueueMsg::Stats, T).await.unwrap() else {
                panic!("stats");
            };
            if stats.leased == 0 {
                assert_eq!(stats.ready, 2);
                Ok(())
            } else {
                Err(stats)
            }
        },
    )
    .await;
    let again = take(&q, 2, None).await.unwrap();
    assert_eq!((again.item, again.attempt), (a, 2));
    assert_eq!(take(&q, 2, None).await.unwrap().item, b);
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_after_max_attempts_then_replay() {
    let (node, q) = start(QueueSpec::in_memory(config())).await;
    let a = enqueue(&q, "a").await;
    for attempt in 1..=3 {
        let lease = take(&q, 1, None).await.unwrap();
        assert_eq!((lease.item, lease.attempt), (a, attempt));
        nack(&q, a, 1).await;
    }
    assert!(take(&q, 1, None).await.is_none());
    let QueueReply::DeadLetters(dead) = q.call(QueueMsg::DeadLetters, T).await.unwrap() else {
        panic!("dead letters");
    };
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].item, dead[0].attempts), (a, 3));
    assert_eq!(dead[0].reason, "nacked: boom");
    assert_eq!(
        q.call(QueueMsg::Replay { item: a }, T).await.unwrap(),
        QueueReply::Done
    );
    let lease = take(&q, 1, None).await.unwrap();
    assert_eq!((lease.item, lease.attempt), (a, 1));
    assert_eq!(
        q.call(QueueMsg::Replay { item: a }, T).await.unwrap(),
        QueueReply::Error(QueueFailure::NotDead { item: a })
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_node_down_releases_its_leases() {
    let (node, q) = start(QueueSpec::in_memory(config())).await;
    let a = enqueue(&q, "a").await;
    assert_eq!(take(&q, 7, None).await.unwrap().item, a);
    let down = QueueMsg::NodeDown {
        node: "worker-node".into(),
    };
    assert_eq!(q.call(down, T).await.unwrap(), QueueReply::Done);
    let again = take(&q, 8, None).await.unwrap();
    assert_eq!((again.item, again.attempt), (a, 2));
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_queue_keeps_its_contents_across_an_actor_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.redb");
    let (node, q) = start(QueueSpec::durable(&path, config())).await;
    let ids: Vec<u64> = {
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(enqueue(&q, &format!("item {n}")).await);
        }
        ids
    };
    // Ack the first, lease the second (the lease does not survive the crash).
    assert_eq!(take(&q, 1, None).await.unwrap().item, ids[0]);
    assert_eq!(ack(&q, ids[0], 1).await, QueueReply::Done);
    assert_eq!(take(&q, 1, None).await.unwrap().item, ids[1]);

    assert!(node.kill("queue"));
    // Serving again once restarted: calls may fail meanwhile.
    let stats = eventually(
        "the queue serving again, no lease",
        Duration::from_secs(10),
        async || match q.call(QueueMsg::Stats, T).await {
            Ok(QueueReply::Stats(stats)) if stats.leased == 0 => Ok(stats),
            other => Err(other),
        },
    )
    .await;
    assert_eq!((stats.ready, stats.leased, stats.dead), (4, 0, 0));
    let again = take(&q, 2, None).await.unwrap();
    assert_eq!(
        (again.item, again.attempt),
        (ids[1], 2),
        "released lease first"
    );
    for (n, id) in ids.iter().enumerate().skip(2) {
        let lease = take(&q, 2, None).await.unwrap();
        assert_eq!(
            (lease.item, &lease.payload[..]),
            (*id, format!("item {n}").as_bytes())
        );
    }
    assert!(
        take(&q, 2, None).await.is_none(),
        "the acked item never comes back"
    );
    node.shutdown().await;
}
