//! Durable queue across a real process kill: a child process (`queue_stress`) enqueues into a
//! redb file and prints each acknowledged id; it is killed with SIGKILL mid-stream, and the
//! file is reopened here: every acknowledged id is present, and acked items never come back
//! after a reopen.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use troupe::queue::core::{ConsumerId, Queue, QueueConfig};
use troupe::queue::storage::Storage;

/// As in `src/bin/queue_stress.rs`
fn config() -> QueueConfig {
    QueueConfig {
        capacity: 10_000_000,
        ..QueueConfig::default()
    }
}

fn commit(storage: &Storage, queue: &mut Queue) {
    let events: Vec<_> = std::iter::from_fn(|| queue.poll_event()).collect();
    storage.commit(&events).unwrap();
}

#[test]
fn nothing_acknowledged_is_lost_to_kill_9_and_acked_items_never_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.redb");
    let mut child = Command::new(env!("CARGO_BIN_EXE_queue_stress"))
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // Read acknowledged ids for a while (bounded by count and by time), then kill mid-stream.
    let mut acknowledged = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while acknowledged.len() < 200 && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            acknowledged.insert(line.parse::<u64>().unwrap());
        }
    }
    let killed = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished: {status:?}");
    // Ids printed before the kill landed were acknowledged too.
    reader.join().unwrap();
    acknowledged.extend(rx.try_iter().map(|line| line.parse::<u64>().unwrap()));
    assert!(
        acknowledged.len() >= 10,
        "the child acknowledged {} enqueues",
        acknowledged.len()
    );

    let (storage, mut queue) = Storage::open(&path, config()).unwrap();
    let stats = queue.stats();
    assert!(stats.ready >= acknowledged.len());
    let now = Instant::now();
    let mut present = BTreeSet::new();
    let mut acked = BTreeSet::new();
    while let Some(lease) = queue.take(ConsumerId(1), now, None) {
        assert_eq!(lease.payload, format!("item {}", lease.item.0).as_bytes());
        present.insert(lease.item.0);
        // Ack every other acknowledged item; leave the rest leased.
        if lease.item.0 % 2 == 0 {
            queue.ack(lease.item, ConsumerId(1)).unwrap();
            acked.insert(lease.item.0);
        }
        commit(&storage, &mut queue);
    }
    let lost: Vec<_> = acknowledged.difference(&present).collect();
    assert!(lost.is_empty(), "acknowledged ids lost: {lost:?}");
    drop(storage);
    drop(queue);

    // Reopen: acked items never come back; the leased ones are back, released.
    let (_storage, mut queue) = Storage::open(&path, config()).unwrap();
    let mut back = BTreeSet::new();
    while let Some(lease) = queue.take(ConsumerId(2), now, None) {
        assert_eq!(lease.attempt, 2, "item {} had one delivery", lease.item.0);
        back.insert(lease.item.0);
    }
    let expected: BTreeSet<u64> = present.difference(&acked).copied().collect();
    assert_eq!(back, expected);
    assert!(!acked.is_empty() && !back.is_empty());
}
