//! The queue's counts reach the `metrics` facade, labelled by queue.
//! (Its own test binary: the recorder is process-global.)

use std::collections::HashMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use troupe_queue::QueueClient;
use troupe_queue::actor::QueueSpec;
use troupe_runtime::{ChildOptions, Mesh, Node, NodeConfig, SupervisorSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_leased_and_acked_items_are_published() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("first recorder in this process");

    let node = Node::new("m", &Mesh::new(), NodeConfig::default()).unwrap();
    let (child, addr) = node
        .child(
            "orders",
            ChildOptions::permanent(),
            QueueSpec::in_memory().factory(),
        )
        .unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![child])
        .await
        .unwrap();
    let queue = QueueClient::new(addr);
    for i in 0..3 {
        queue.enqueue(format!("item {i}")).await.unwrap();
    }
    let worker = troupe_queue::Consumer::new("m", 1);
    let lease = queue.take(&worker).await.unwrap().expect("an item");
    queue.ack(&worker, lease.item).await.unwrap();
    queue.take(&worker).await.unwrap().expect("another item");

    // the next ticks publish: 1 ready, 1 leased, 3 enqueued, 1 acked
    let want: HashMap<&str, f64> = [
        ("troupe_queue_ready_items", 1.0),
        ("troupe_queue_leased_items", 1.0),
        ("troupe_queue_dead_letters", 0.0),
        ("troupe_queue_enqueued_total", 3.0),
        ("troupe_queue_acked_total", 1.0),
        ("troupe_queue_redelivered_total", 0.0),
    ]
    .into();
    troupe_testkit::eventually("the queue's metrics", Duration::from_secs(5), async || {
        // a snapshot takes the values set since the last one: let a few ticks set them all
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut seen: HashMap<String, f64> = HashMap::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let labelled = key
                .key()
                .labels()
                .any(|l| l.key() == "queue" && l.value() == "orders");
            let value = match value {
                DebugValue::Gauge(v) => v.into_inner(),
                DebugValue::Counter(n) => n as f64,
                DebugValue::Histogram(_) => continue,
            };
            if labelled {
                seen.insert(key.key().name().to_string(), value);
            }
        }
        let all = want
            .iter()
            .all(|(name, v)| seen.get(*name).is_some_and(|s| s == v));
        if all { Ok(()) } else { Err(seen) }
    })
    .await;
    node.shutdown().await;
}
