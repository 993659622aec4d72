//! A durable queue on a file whose writes fail with `ENOSPC` (a full disk) or `EIO`, through
//! `troupe_store::faults`: the enqueue that hits the fault gets a typed storage error, reads
//! are served and writes refused typed while it lasts, writes resume once it heals, and every
//! enqueue acknowledged before or after is there. Then the same on a real tmpfs that runs out
//! of space, with a restart on the full disk.

use std::time::Duration;

use troupe_queue::actor::{QueueFailure, QueueSpec};
use troupe_queue::{Consumer, QueueClient, QueueError};
use troupe_runtime::{ChildOptions, Mesh, Node, NodeConfig, SupervisorSpec};
use troupe_store::StoreErrorKind;
use troupe_store::faults::{self, FaultSwitch};
use troupe_testkit::{SmallDisk, T, eventually};

async fn durable_queue(path: &std::path::Path) -> (Node, QueueClient) {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let (spec, addr) = node
        .child(
            "q",
            ChildOptions::permanent(),
            QueueSpec::durable(path).factory(),
        )
        .unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![spec])
        .await
        .unwrap();
    (
        node,
        QueueClient::new(addr).with_timeout(Duration::from_secs(2)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_or_a_failing_device_is_a_typed_error_and_writes_resume_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.redb");
    let switch = FaultSwitch::new();
    faults::inject(&path, &switch);
    let (node, queue) = durable_queue(&path).await;
    let first = queue.enqueue("before").await.unwrap();

    for (fault, kind) in [
        (FaultSwitch::disk_full as fn(&FaultSwitch), "No space left"),
        (FaultSwitch::io_error, "Input/output error"),
    ] {
        fault(&switch);
        match queue.enqueue("during").await {
            Err(QueueError::Refused(QueueFailure::Storage(fault))) => {
                assert_eq!(fault.kind, StoreErrorKind::Io, "{fault:?}");
                assert!(fault.message.contains(kind), "{fault:?}");
            }
            other => panic!("expected a storage failure, got {other:?}"),
        }
        // while the fault lasts: reads served, writes refused typed, nothing crashes
        assert!(queue.stats().await.is_ok());
        assert!(matches!(
            queue.enqueue("refused").await,
            Err(QueueError::Refused(QueueFailure::Storage(_)))
        ));
        assert!(queue.dead_letters().await.is_ok());
        switch.heal();
        // the queue comes back from its file and takes writes again
        eventually("writes resume", T, async || queue.enqueue("after").await).await;
    }

    // every acknowledged enqueue is there, the first one first
    let worker = Consumer::new("n", 1);
    let lease = queue.take(&worker).await.unwrap().unwrap();
    assert_eq!((lease.item, &lease.payload[..]), (first, &b"before"[..]));
    let stats = queue.stats().await.unwrap();
    assert!(stats.ready >= 2, "{stats:?}");
    node.shutdown().await;
    faults::remove(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_full_tmpfs_enqueues_fail_typed_and_a_restart_still_opens() {
    let disk = match SmallDisk::mount(8 << 20) {
        Ok(disk) => disk,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let path = disk.path().join("q.redb");
    let (node, queue) = durable_queue(&path).await;
    let mut acked = 0u64;
    for i in 0..10 {
        queue.enqueue(format!("item {i}")).await.unwrap();
        acked += 1;
    }
    // leased when the queue restarts: recovery makes it ready again, a change to the file
    let worker = Consumer::new("n", 1);
    assert!(queue.take(&worker).await.unwrap().is_some());
    disk.fill();

    // enqueues until one hits the full disk (redb may still have free pages in its file)
    let payload = vec![7u8; 16 << 10];
    let mut refused = None;
    for _ in 0..2_000 {
        match queue.enqueue(payload.clone()).await {
            Ok(_) => acked += 1,
            Err(err) => {
                refused = Some(err);
                break;
            }
        }
    }
    match refused {
        Some(QueueError::Refused(QueueFailure::Storage(fault))) => {
            assert!(fault.message.contains("No space left"), "{fault:?}");
        }
        other => panic!("expected a storage failure, got {other:?}"),
    }
    assert!(queue.stats().await.is_ok());

    // restarted on the full disk: the file opens, and the leased item is ready again
    node.shutdown().await;
    let (node, queue) = durable_queue(&path).await;
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.ready, stats.leased), (acked, 0), "{stats:?}");

    disk.free();
    eventually("enqueues resume once space returns", T, async || {
        queue.enqueue("after").await
    })
    .await;
    assert_eq!(queue.stats().await.unwrap().ready, acked + 1);
    node.shutdown().await;
}
