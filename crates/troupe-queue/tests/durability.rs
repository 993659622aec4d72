//! Durable mode across reopens of a real file. (The `kill -9` test, with a real child process,
//! is `crates/troupe-examples/tests/queue_processes.rs`.)

use std::time::Instant;

use troupe_queue::core::{ConsumerId, QueueConfig};
use troupe_queue::storage::Storage;

fn commit(storage: &Storage, queue: &mut troupe_queue::core::Queue) {
    let events: Vec<_> = std::iter::from_fn(|| queue.poll_event()).collect();
    storage.commit(&events).unwrap();
}

#[test]
fn dead_letters_and_attempts_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.redb");
    let config = QueueConfig {
        max_attempts: 2,
        ..QueueConfig::default()
    };
    let now = Instant::now();
    {
        let (storage, mut queue) = Storage::open(&path, config.clone()).unwrap();
        let a = queue.enqueue("a".into(), now).unwrap();
        let b = queue.enqueue("b".into(), now).unwrap();
        commit(&storage, &mut queue);
        for _ in 0..2 {
            assert_eq!(queue.take(ConsumerId(1), now, None).unwrap().item, a);
            queue.nack_with_error(a, ConsumerId(1), "bad", now).unwrap();
            commit(&storage, &mut queue);
        }
        assert_eq!(queue.dead_letters().len(), 1);
        // b is leased on its last attempt... after one nack, leased again at the crash.
        assert_eq!(queue.take(ConsumerId(1), now, None).unwrap().item, b);
        queue.nack(b, ConsumerId(1), now).unwrap();
        assert_eq!(queue.take(ConsumerId(1), now, None).unwrap().attempt, 2);
        commit(&storage, &mut queue);
    }
    let (storage, mut queue) = Storage::open(&path, config.clone()).unwrap();
    let dead = queue.dead_letters();
    assert_eq!(
        dead.len(),
        2,
        "a was nacked out, b was leased on its last attempt"
    );
    assert_eq!(&dead[0].payload[..], b"a");
    assert_eq!(dead[0].attempts, 2);
    assert_eq!(&dead[1].payload[..], b"b");
    assert!(queue.take(ConsumerId(1), now, None).is_none());
    queue.replay_dead_letter(dead[0].item, now).unwrap();
    commit(&storage, &mut queue);
    drop((storage, queue));
    let (_storage, mut queue) = Storage::open(&path, config).unwrap();
    assert_eq!(queue.dead_letters().len(), 1);
    let lease = queue.take(ConsumerId(1), now, None).unwrap();
    assert_eq!((&lease.payload[..], lease.attempt), (&b"a"[..], 1));
}

#[test]
fn a_file_that_is_not_a_queue_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, vec![0xAB; 8192]).unwrap();
    assert!(Storage::open(&path, QueueConfig::default()).is_err());
    // A directory that cannot be made (a file is in the way) is a typed error too ...
    let blocked = path.join("queue.redb");
    assert!(Storage::open(&blocked, QueueConfig::default()).is_err());
    // ... while a missing one is created.
    let fresh = dir.path().join("no-such-dir").join("queue.redb");
    assert!(Storage::open(&fresh, QueueConfig::default()).is_ok());
}
