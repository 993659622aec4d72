//! The queue actor on node `data`, a consumer on node `app`, over QUIC: when `app` leaves the
//! cluster, the data node's real `Left` event releases the leases taken from `app` at once,
//! long before they would expire.

use std::time::{Duration, Instant};

use troupe_queue::actor::{QueueFailure, QueueMsg, QueueSpec};
use troupe_queue::core::QueueConfig;
use troupe_queue::{Consumer, QueueClient, QueueError};
use troupe_runtime::{ChildOptions, Mesh, Node, NodeConfig, Reach, SupervisorSpec};
use troupe_testkit::{Cluster, eventually, fully_connected, within};

const T: Duration = Duration::from_secs(5);

/// Far longer than the test waits: only the node event can free the item in time
const LEASE: Duration = Duration::from_secs(60);

fn config() -> QueueConfig {
    QueueConfig {
        capacity: 100,
        max_attempts: 5,
        lease: LEASE,
        max_item_bytes: 64,
        dlq_capacity: 10,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_of_a_consumer_node_that_left_are_released_at_once() {
    let cluster = Cluster::new("q");

    // The queue is added after the endpoint binds here; either order works, since a node's
    // cluster events reach subscribers from before its network started.
    let data = Node::new("data", &Mesh::new(), NodeConfig::default()).unwrap();
    data.start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    let data_net = cluster.join(&data, &[]).await;
    let queue = data
        .root()
        .unwrap()
        .spawn(
            "queue",
            ChildOptions::permanent().reachable_from(Reach::nodes(["app"])),
            QueueSpec::in_memory().config(config()).factory(),
        )
        .await
        .unwrap();

    let app = Node::new("app", &Mesh::new(), NodeConfig::default()).unwrap();
    app.start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    let app_net = cluster.join(&app, &[data_net.local_addr()]).await;
    fully_connected(&[&app_net, &data_net], T).await;

    let queue = QueueClient::new(queue);
    let id = queue.enqueue("job").await.unwrap();

    // The consumer on app takes the item across the network, through a client of its own.
    let remote = QueueClient::new(app.addr::<QueueMsg>("data", "queue"));
    let on_app = Consumer::new("app", 1);
    let lease = remote.take(&on_app).await.unwrap().unwrap();
    assert_eq!((lease.item, lease.attempt), (id, 1));
    assert_eq!(lease.lease, LEASE);
    assert_eq!(&lease.payload[..], b"job");
    let on_data = Consumer::new("data", 2);
    assert!(queue.take(&on_data).await.unwrap().is_none());
    // Typed refusals cross the network too.
    assert_eq!(
        remote.ack(&on_data, id).await,
        Err(QueueError::Refused(QueueFailure::NotLeased {
            item: id,
            consumer: on_data.id()
        }))
    );

    // app leaves: data reports `Left` and the queue releases app's lease.
    let mut events = data_net.events();
    let left_at = Instant::now();
    app_net.shutdown().await;
    within("data seeing app go", T, async {
        loop {
            let event = events.recv().await.unwrap();
            if let troupe_runtime::remote::NodeEvent::Left { node } = event {
                assert_eq!(node, "app");
                break;
            }
        }
    })
    .await;

    // Another consumer gets it promptly, well within the lease.
    let again = eventually("app's lease released", T, async || {
        queue.take(&on_data).await.unwrap()
    })
    .await;
    assert!(left_at.elapsed() < LEASE / 10);
    assert_eq!(again.item, id);
    assert_eq!(again.attempt, 2);
    queue.ack(&on_data, id).await.unwrap();
}
