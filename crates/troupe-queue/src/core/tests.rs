//! Scenario tests of the queue rules, with a virtual clock

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;

const A: ConsumerId = ConsumerId(1);
const B: ConsumerId = ConsumerId(2);

fn config() -> QueueConfig {
    QueueConfig {
        capacity: 8,
        max_attempts: 3,
        lease: Duration::from_secs(10),
        max_item_bytes: 16,
        dlq_capacity: 2,
    }
}

fn secs(base: Instant, s: u64) -> Instant {
    base + Duration::from_secs(s)
}

fn fill(queue: &mut Queue, n: u64, now: Instant) -> Vec<ItemId> {
    (0..n)
        .map(|i| {
            queue
                .enqueue(Bytes::from(format!("item {i}")), now)
                .unwrap()
        })
        .collect()
}

fn take_id(queue: &mut Queue, consumer: ConsumerId, now: Instant) -> Option<ItemId> {
    queue.take(consumer, now, None).map(|lease| lease.item)
}

#[test]
fn fifo_when_nothing_fails() {
    let t0 = Instant::now();
    let mut queue = Queue::new(config());
    let ids = fill(&mut queue, 5, t0);
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "ids increase");
    for &id in &ids {
        let lease = queue.take(A, t0, None).unwrap();
        assert_eq!(lease.item, id);
        assert_eq!(lease.attempt, 1);
        assert_eq!(lease.payload, Bytes::from(format!("item {}", id.0)));
        queue.ack(id, A).unwrap();
    }
    assert!(queue.take(A, t0, None).is_none());
    let stats = queue.stats();
    assert_eq!((stats.ready, stats.leased, stats.dead), (0, 0, 0));
    assert_eq!((stats.totals.enqueued, stats.totals.acked), (5, 5));
}

#[test]
fn lease_expires_at_deadline_not_before() {
    let t0 = Instant::now();
    let mut queue = Queue::new(config());
    let [first, second] = fill(&mut queue, 2, t0)[..] else {
        unreachable!()
    };
    let lease = queue.take(A, t0, None).unwrap();
    assert_eq!(lease.deadline, secs(t0, 10));
    // Just before the deadline the item stays invisible: the next take gets the second.
    let almost = lease.deadline - Duration::from_nanos(1);
    assert!(queue.expire(almost).is_empty());
    assert_eq!(take_id(&mut queue, B, almost), Some(second));
    assert!(queue.take(B, almost, None).is_none());
    // At the deadline it is back at the head, with the next attempt.
    let again = queue.take(B, lease.deadline, None).unwrap();
    assert_eq!((again.item, again.attempt), (first, 2));
    assert_eq!(queue.stats().totals.expired, 1);
    assert_eq!(queue.stats().totals.redelivered, 1);
    // The original consumer's late ack is refused: the lease is B's now.
    assert_eq!(
        queue.ack(first, A),
        Err(QueueError::NotLeased {
            item: first,
            consumer: A
        })
    );
}

#[test]
fn custom_lease_and_max_lease() {
    let t0 = Instant::now();
    let mut queue = Queue::new(config());
    fill(&mut queue, 2, t0);
    let short = queue.take(A, t0, Some(Duration::from_secs(1))).unwrap();
    assert_eq!(short.deadline, secs(t0, 1));
    let long = queue.take(A, t0, Some(MAX_LEASE * 2)).unwrap();
    assert_eq!(long.deadline, t0 + MAX_LEASE);
}

#[test]
fn expired_items_return_in_order_ahead_of_new_ones() {
    let t0 = Instant::now();
    let mut queue = Queue::new(config());
    let ids = fill(&mut queue, 5, t0);
    // Take three with leases that run out in reverse order of their position.
    for (i, consumer) in [A, B, A].into_iter().enumerate() {
        let lease = queue
            .take(consumer, t0, Some(Duration::from_secs(5 - i as u64)))
            .unwrap();
        assert_eq!(lease.item, ids[i]);
    }
    assert_eq!(queue.expire(secs(t0, 5)), ids[..3].to_vec());
    let order: Vec<_> = std::iter::from_fn(|| take_id(&mut queue, A, secs(t0, 6))).collect();
    assert_eq!(order, ids);
}

#[test]
fn nack_goes_to_head_before_never_delivered() {
    let t0 = Instant::now();
    let mut queue = Queue::new(config());
    let ids = fill(&mut queue, 4, t0);
    let a = take_id(&mut queue, A, t0).unwrap();
    let b = take_id(&mut queue, B, t0).unwrap();
    // Nack out of order: they still come back in their original order.
    queue.nack(b, B, t0).unwrap();
    queue.nack_with_error(a, A, "disk full", t0).unwrap();
    let order: Vec<_> = std::iter::from_fn(|| queue.take(A, t0, None))
        .map(|lease| (lease.item, lease.attempt))
        .collect();
    assert_eq!(
        order,
        vec![(ids[0], 2), (ids[1], 2), (ids[2], 1), (ids[3], 1)]
    );
    assert_eq!(queue.stats().totals.nacked, 2);
}

#[test]
fn release_consumer_returns_its_leases_in_order() {
    let t0 = Instant::now();
    let mut queue = Queue::new(config());
    let ids = fill(&mut queue, 5, t0);
    for consumer in [A, B, A, B] {
        take_id(&mut queue, consumer, t0).unwrap();
    }
    assert_eq!(queue.release_consumer(A, t0), vec![ids[0], ids[2]]);
    assert_eq!(queue.release_consumer(A, t0), vec![]);
    assert_eq!(queue.stats().leased, 2);
    assert_eq!(take_id(&mut queue, B, t0), Some(ids[0]));
    assert_eq!(take_id(&mut queue, B, t0), Some(ids[2]));
    assert_eq!(take_id(&mut queue, B, t0), Some(ids[4]));
    assert_eq!(queue.stats().totals.consumer_down, 2);
}

#[test]
fn ack_errors_are_typed_and_change_nothing() {
    let t0 = Instant::now();
    let mut queue = Queue::new(config());
    let [id] = fill(&mut queue, 1, t0)[..] else {
        unreachable!()
    };
    let not_leased = |item, consumer| Err(QueueError::NotLeased { item, consumer });
    assert_eq!(queue.ack(id, A), not_leased(id, A), "ready, not leased");
    assert_eq!(
        queue.ack(ItemId(99), A),
        not_leased(ItemId(99), A),
        "unknown"
    );
    take_id(&mut queue, A, t0).unwrap();
    assert_eq!(queue.ack(id, B), not_leased(id, B), "another consumer's");
    assert_eq!(queue.nack(id, B, t0), not_leased(id, B));
    queue.ack(id, A).unwrap();
    assert_eq!(queue.ack(id, A), not_leased(id, A), "acked twice");
    assert_eq!(queue.nack(id, A, t0), not_leased(id, A));
    assert!(
        queue.take(A, secs(t0, 100), None).is_none(),
        "acked never comes back"
    );
}

#[test]
fn dead_letter_after_max_attempts_then_replay() {
    let t0 = Instant::now();
    let mut queue = Queue::new(config());
    let [id, other] = fill(&mut queue, 2, t0)[..] else {
        unreachable!()
    };
    for attempt in 1..=3 {
        let lease = queue.take(A, t0, None).unwrap();
        assert_eq!((lease.item, lease.attempt), (id, attempt));
        queue
            .nack_with_error(id, A, &format!("fail {attempt}"), t0)
            .unwrap();
    }
    let dead = queue.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].item, dead[0].attempts), (id, 3));
    assert_eq!(
        dead[0].reason,
        FailReason::Nacked {
            error: Some("fail 3".into())
        }
    );
    assert_eq!(queue.stats().totals.dead_lettered, 1);
    // The dead letter is out of line: the next take is the other item.
    assert_eq!(take_id(&mut queue, A, t0), Some(other));
    // Replayed: back at the tail (behind `third`), attempts reset.
    let third = queue.enqueue(Bytes::from_static(b"third"), t0).unwrap();
    queue.replay_dead_letter(id, t0).unwrap();
    assert!(queue.dead_letters().is_empty());
    assert_eq!(
        queue.replay_dead_letter(id, t0),
        Err(QueueError::NotDead { item: id })
    );
    assert_eq!(take_id(&mut queue, A, t0), Some(third));
    let lease = queue.take(A, t0, None).unwrap();
    assert_eq!((lease.item, lease.attempt), (id, 1));
}

#[test]
fn expiry_on_last_attempt_dead_letters() {
    let t0 = Instant::now();
    let mut queue = Queue::new(QueueConfig {
        max_attempts: 1,
        ..config()
    });
    let [id] = fill(&mut queue, 1, t0)[..] else {
        unreachable!()
    };
    take_id(&mut queue, A, t0).unwrap();
    assert_eq!(queue.expire(secs(t0, 10)), vec![id]);
    assert_eq!(queue.stats().ready, 0);
    assert_eq!(queue.dead_letters()[0].reason, FailReason::Expired);
}

#[test]
fn dlq_full_evicts_oldest_and_counts() {
    let t0 = Instant::now();
    let mut queue = Queue::new(QueueConfig {
        max_attempts: 1,
        ..config()
    });
    let ids = fill(&mut queue, 3, t0);
    for &id in &ids {
        take_id(&mut queue, A, t0).unwrap();
        queue.nack(id, A, t0).unwrap();
    }
    let dead: Vec<_> = queue
        .dead_letters()
        .into_iter()
        .map(|dead| dead.item)
        .collect();
    assert_eq!(dead, vec![ids[1], ids[2]]);
    assert_eq!(queue.stats().totals.dead_evicted, 1);
    let dropped = queue.drop_dead_letter(ids[1]).unwrap();
    assert_eq!(dropped.item, ids[1]);
    assert_eq!(
        queue.drop_dead_letter(ids[1]),
        Err(QueueError::NotDead { item: ids[1] })
    );
    assert_eq!(queue.stats().dead, 1);
    assert_eq!(queue.stats().totals.dead_dropped, 1);
}

#[test]
fn full_exactly_at_capacity_and_room_after_ack() {
    let t0 = Instant::now();
    let mut queue = Queue::new(config());
    let ids = fill(&mut queue, 8, t0);
    let full = Err(QueueError::Full { capacity: 8 });
    assert_eq!(queue.enqueue(Bytes::new(), t0), full);
    // Leased items still count.
    take_id(&mut queue, A, t0).unwrap();
    assert_eq!(queue.enqueue(Bytes::new(), t0), full);
    queue.ack(ids[0], A).unwrap();
    assert!(queue.enqueue(Bytes::new(), t0).is_ok());
    assert_eq!(queue.enqueue(Bytes::new(), t0), full);
    assert_eq!(queue.stats().totals.enqueued, 9);
}

#[test]
fn replay_respects_capacity() {
    let t0 = Instant::now();
    let mut queue = Queue::new(QueueConfig {
        max_attempts: 1,
        ..config()
    });
    let [id] = fill(&mut queue, 1, t0)[..] else {
        unreachable!()
    };
    take_id(&mut queue, A, t0).unwrap();
    queue.nack(id, A, t0).unwrap();
    fill(&mut queue, 8, t0);
    assert_eq!(
        queue.replay_dead_letter(id, t0),
        Err(QueueError::Full { capacity: 8 })
    );
    assert_eq!(queue.stats().dead, 1, "still a dead letter");
}

#[test]
fn too_large_is_refused() {
    let t0 = Instant::now();
    let mut queue = Queue::new(config());
    assert!(queue.enqueue(Bytes::from(vec![0; 16]), t0).is_ok());
    assert_eq!(
        queue.enqueue(Bytes::from(vec![0; 17]), t0),
        Err(QueueError::TooLarge { len: 17, max: 16 })
    );
}

#[test]
fn long_nack_error_is_cut_at_char_boundary() {
    let t0 = Instant::now();
    let mut queue = Queue::new(QueueConfig {
        max_attempts: 1,
        ..config()
    });
    let [id] = fill(&mut queue, 1, t0)[..] else {
        unreachable!()
    };
    take_id(&mut queue, A, t0).unwrap();
    let long = "é".repeat(MAX_ERROR_LEN);
    queue.nack_with_error(id, A, &long, t0).unwrap();
    let FailReason::Nacked { error: Some(kept) } = &queue.dead_letters()[0].reason else {
        panic!("nack reason kept");
    };
    assert!(kept.len() <= MAX_ERROR_LEN && kept.len() > MAX_ERROR_LEN - 2);
}

#[test]
fn journal_replays_to_the_same_state() {
    let t0 = Instant::now();
    let mut queue = Queue::new(QueueConfig {
        max_attempts: 2,
        ..config()
    })
    .journaled();
    let ids = fill(&mut queue, 4, t0);
    take_id(&mut queue, A, t0).unwrap();
    take_id(&mut queue, B, t0).unwrap();
    queue.ack(ids[1], B).unwrap();
    queue.expire(secs(t0, 10));
    take_id(&mut queue, A, secs(t0, 10)).unwrap();
    queue.nack(ids[0], A, secs(t0, 10)).unwrap();
    take_id(&mut queue, B, secs(t0, 11)).unwrap();
    let events: Vec<_> = std::iter::from_fn(|| queue.poll_event()).collect();
    assert!(matches!(events[0], QueueEvent::Enqueued { id, .. } if id == ids[0]));
    assert!(
        events
            .iter()
            .any(|event| matches!(event, QueueEvent::DeadLettered { .. }))
    );
    let mut rebuilt = Queue::new(queue.config().clone());
    for event in events {
        rebuilt.apply(event).unwrap();
    }
    assert_eq!(rebuilt.stats(), queue.stats());
    assert_eq!(rebuilt.snapshot(), queue.snapshot());
    assert_eq!(rebuilt.dead_letters(), queue.dead_letters());
}

#[test]
fn apply_refuses_events_that_do_not_fit() {
    let t0 = Instant::now();
    let mut queue = Queue::new(config());
    let ack = queue.apply(QueueEvent::Acked { id: ItemId(3) });
    assert_eq!(ack.unwrap_err().kind, "Acked");
    queue
        .apply(QueueEvent::Enqueued {
            id: ItemId(5),
            payload: Bytes::new(),
        })
        .unwrap();
    let repeated = queue.apply(QueueEvent::Enqueued {
        id: ItemId(5),
        payload: Bytes::new(),
    });
    assert!(repeated.is_err());
    let wrong_attempt = queue.apply(QueueEvent::Leased {
        id: ItemId(5),
        consumer: A,
        attempt: 2,
        deadline: t0,
    });
    assert!(wrong_attempt.is_err());
    assert_eq!(queue.stats().ready, 1, "refused events change nothing");
    assert_eq!(queue.enqueue(Bytes::new(), t0), Ok(ItemId(6)));
}

#[test]
fn snapshot_releases_leases_and_restores() {
    let t0 = Instant::now();
    let mut queue = Queue::new(config());
    let ids = fill(&mut queue, 3, t0);
    take_id(&mut queue, A, t0).unwrap();
    let snapshot = queue.snapshot();
    let order: Vec<_> = snapshot
        .ready
        .iter()
        .map(|item| (item.id, item.attempts))
        .collect();
    assert_eq!(order, vec![(ids[0], 1), (ids[1], 0), (ids[2], 0)]);
    let mut restored = Queue::restore(config(), snapshot).unwrap();
    let lease = restored.take(A, t0, None).unwrap();
    assert_eq!(
        (lease.item, lease.attempt),
        (ids[0], 2),
        "at least once: redelivered"
    );
    assert_eq!(restored.enqueue(Bytes::new(), t0), Ok(ItemId(3)));
    assert_eq!(restored.stats().totals.restarted, 1);
}

#[test]
fn restore_refuses_inconsistent_snapshots() {
    let item = |id| SnapshotItem {
        id: ItemId(id),
        payload: Bytes::new(),
        attempts: 0,
        last_failure: None,
    };
    let snapshot = |next, ready| QueueSnapshot {
        next_id: ItemId(next),
        ready,
        dead: vec![],
        totals: QueueTotals::default(),
    };
    assert!(Queue::restore(config(), snapshot(2, vec![item(0), item(0)])).is_err());
    assert!(Queue::restore(config(), snapshot(1, vec![item(0), item(1)])).is_err());
    assert!(Queue::restore(config(), snapshot(2, vec![item(1), item(0)])).is_ok());
}
