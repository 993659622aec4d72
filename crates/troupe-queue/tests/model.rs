//! Model-based tests: random operation sequences against a simple reference model, with a
//! virtual clock (whole seconds after a fixed base instant)

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use troupe_queue::core::{ConsumerId, ItemId, Queue, QueueConfig, QueueError};

const CAPACITY: usize = 6;
const MAX_ATTEMPTS: u32 = 3;
const LEASE_SECS: u64 = 4;
const MAX_BYTES: usize = 8;
const DLQ_CAPACITY: usize = 2;
const CONSUMERS: u64 = 3;

fn config() -> QueueConfig {
    QueueConfig {
        capacity: CAPACITY,
        max_attempts: MAX_ATTEMPTS,
        lease: Duration::from_secs(LEASE_SECS),
        max_item_bytes: MAX_BYTES,
        dlq_capacity: DLQ_CAPACITY,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Enqueue(usize),
    Take(u64, Option<u64>),
    Ack(u64, u64),
    Nack(u64, u64),
    Advance(u64),
    Expire,
    ReleaseConsumer(u64),
    Replay(u64),
    DropDead(u64),
}

fn op() -> impl Strategy<Value = Op> {
    // Ids are drawn a little beyond those issued so unknown ids are tried too.
    let id = 0..40u64;
    let consumer = 0..CONSUMERS;
    prop_oneof![
        4 => (0..=MAX_BYTES + 1).prop_map(Op::Enqueue),
        4 => (consumer.clone(), proptest::option::of(1..8u64)).prop_map(|(c, l)| Op::Take(c, l)),
        3 => (id.clone(), consumer.clone()).prop_map(|(i, c)| Op::Ack(i, c)),
        2 => (id.clone(), consumer.clone()).prop_map(|(i, c)| Op::Nack(i, c)),
        2 => (0..6u64).prop_map(Op::Advance),
        1 => Just(Op::Expire),
        1 => consumer.prop_map(Op::ReleaseConsumer),
        1 => id.clone().prop_map(Op::Replay),
        1 => id.prop_map(Op::DropDead),
    ]
}

/// What an operation answered, comparable between the queue and the model
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Enqueued(Result<ItemId, QueueError>),
    Took(Option<(ItemId, u32, u64)>),
    Done(Result<(), QueueError>),
    Released(Vec<ItemId>),
    Dropped(Result<ItemId, QueueError>),
    Nothing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    Leased { consumer: u64, deadline: u64 },
    Acked,
    Dead,
    Gone,
}

#[derive(Debug, Clone)]
struct ModelItem {
    position: u64,
    attempts: u32,
    state: State,
}

/// The reference: a flat list of every item ever enqueued, searched linearly
#[derive(Debug, Clone, Default)]
struct Model {
    items: Vec<ModelItem>,
    next_position: u64,
    dead_order: Vec<u64>,
}

impl Model {
    fn in_line(&self) -> usize {
        let in_line = |item: &&ModelItem| matches!(item.state, State::Ready | State::Leased { .. });
        self.items.iter().filter(in_line).count()
    }

    fn count(&self, want: fn(State) -> bool) -> usize {
        self.items.iter().filter(|item| want(item.state)).count()
    }

    fn leased_where(&self, keep: impl Fn(u64, u64) -> bool) -> Vec<u64> {
        let mut found: Vec<(u64, u64)> = (0..self.items.len() as u64)
            .filter_map(|id| match self.items[id as usize].state {
                State::Leased { consumer, deadline } if keep(consumer, deadline) => {
                    Some((self.items[id as usize].position, id))
                }
                _ => None,
            })
            .collect();
        found.sort_unstable();
        found.into_iter().map(|(_, id)| id).collect()
    }

    fn fail(&mut self, id: u64) {
        let item = &mut self.items[id as usize];
        if item.attempts >= MAX_ATTEMPTS {
            item.state = State::Dead;
            self.dead_order.push(id);
            while self.dead_order.len() > DLQ_CAPACITY {
                let oldest = self.dead_order.remove(0);
                self.items[oldest as usize].state = State::Gone;
            }
        } else {
            item.state = State::Ready;
        }
    }

    fn expire(&mut self, now: u64) -> Vec<ItemId> {
        let due = self.leased_where(|_, deadline| deadline <= now);
        for &id in &due {
            self.fail(id);
        }
        due.into_iter().map(ItemId).collect()
    }

    fn leased_by(&self, id: u64, consumer: u64) -> Result<(), QueueError> {
        match self.items.get(id as usize).map(|item| item.state) {
            Some(State::Leased {
                consumer: holder, ..
            }) if holder == consumer => Ok(()),
            _ => Err(QueueError::NotLeased {
                item: ItemId(id),
                consumer: ConsumerId(consumer),
            }),
        }
    }

    fn is_dead(&self, id: u64) -> Result<(), QueueError> {
        match self.items.get(id as usize).map(|item| item.state) {
            Some(State::Dead) => Ok(()),
            _ => Err(QueueError::NotDead { item: ItemId(id) }),
        }
    }

    fn room(&self) -> Result<(), QueueError> {
        if self.in_line() >= CAPACITY {
            return Err(QueueError::Full { capacity: CAPACITY });
        }
        Ok(())
    }

    fn step(&mut self, op: &Op, now: &mut u64) -> Answer {
        match *op {
            Op::Enqueue(len) => Answer::Enqueued((|| {
                if len > MAX_BYTES {
                    return Err(QueueError::TooLarge {
                        len,
                        max: MAX_BYTES,
                    });
                }
                self.expire(*now);
                self.room()?;
                self.items.push(ModelItem {
                    position: self.next_position,
                    attempts: 0,
                    state: State::Ready,
                });
                self.next_position += 1;
                Ok(ItemId(self.items.len() as u64 - 1))
            })()),
            Op::Take(consumer, lease) => {
                self.expire(*now);
                let head = (0..self.items.len())
                    .filter(|&id| self.items[id].state == State::Ready)
                    .min_by_key(|&id| self.items[id].position);
                Answer::Took(head.map(|id| {
                    let item = &mut self.items[id];
                    item.attempts += 1;
                    let deadline = *now + lease.unwrap_or(LEASE_SECS);
                    item.state = State::Leased { consumer, deadline };
                    (ItemId(id as u64), item.attempts, deadline)
                }))
            }
            Op::Ack(id, consumer) => Answer::Done(self.leased_by(id, consumer).map(|()| {
                self.items[id as usize].state = State::Acked;
            })),
            Op::Nack(id, consumer) => {
                self.expire(*now);
                Answer::Done(self.leased_by(id, consumer).map(|()| self.fail(id)))
            }
            Op::Advance(secs) => {
                *now += secs;
                Answer::Nothing
            }
            Op::Expire => Answer::Released(self.expire(*now)),
            Op::ReleaseConsumer(consumer) => {
                self.expire(*now);
                let ids = self.leased_where(|holder, _| holder == consumer);
                for &id in &ids {
                    self.fail(id);
                }
                Answer::Released(ids.into_iter().map(ItemId).collect())
            }
            Op::Replay(id) => {
                self.expire(*now);
                Answer::Done(self.is_dead(id).and_then(|()| self.room()).map(|()| {
                    self.dead_order.retain(|&dead| dead != id);
                    let item = &mut self.items[id as usize];
                    item.state = State::Ready;
                    item.attempts = 0;
                    item.position = self.next_position;
                    self.next_position += 1;
                }))
            }
            Op::DropDead(id) => Answer::Dropped(self.is_dead(id).map(|()| {
                self.dead_order.retain(|&dead| dead != id);
                self.items[id as usize].state = State::Gone;
                ItemId(id)
            })),
        }
    }
}

fn at(base: Instant, secs: u64) -> Instant {
    base + Duration::from_secs(secs)
}

/// Runs `op` on the real queue
fn run(queue: &mut Queue, op: &Op, base: Instant, now: &mut u64) -> Answer {
    let t = at(base, *now);
    match *op {
        Op::Enqueue(len) => Answer::Enqueued(queue.enqueue(Bytes::from(vec![7; len]), t)),
        Op::Take(consumer, lease) => Answer::Took(
            queue
                .take(ConsumerId(consumer), t, lease.map(Duration::from_secs))
                .map(|lease| {
                    let secs = lease.deadline.duration_since(base).as_secs();
                    (lease.item, lease.attempt, secs)
                }),
        ),
        Op::Ack(id, consumer) => Answer::Done(queue.ack(ItemId(id), ConsumerId(consumer))),
        Op::Nack(id, consumer) => Answer::Done(queue.nack(ItemId(id), ConsumerId(consumer), t)),
        Op::Advance(secs) => {
            *now += secs;
            Answer::Nothing
        }
        Op::Expire => Answer::Released(queue.expire(t)),
        Op::ReleaseConsumer(consumer) => {
            Answer::Released(queue.release_consumer(ConsumerId(consumer), t))
        }
        Op::Replay(id) => Answer::Done(queue.replay_dead_letter(ItemId(id), t)),
        Op::DropDead(id) => {
            Answer::Dropped(queue.drop_dead_letter(ItemId(id)).map(|dead| dead.item))
        }
    }
}

/// Checks the queue against the model and the rules that need no model
fn check(queue: &Queue, model: &Model, acked: &HashSet<ItemId>) {
    let stats = queue.stats();
    assert_eq!(stats.ready, model.count(|s| s == State::Ready));
    assert_eq!(
        stats.leased,
        model.count(|s| matches!(s, State::Leased { .. }))
    );
    assert_eq!(stats.dead, model.count(|s| s == State::Dead));
    assert_eq!(stats.totals.acked as usize, acked.len());
    assert_eq!(stats.totals.enqueued as usize, model.items.len());
    // Nothing lost: every enqueued item is acked, ready, leased, dead, or counted as dropped.
    let t = stats.totals;
    let accounted = t.acked
        + (stats.ready + stats.leased + stats.dead) as u64
        + t.dead_evicted
        + t.dead_dropped;
    assert_eq!(t.enqueued, accounted);
    assert!(stats.ready + stats.leased <= CAPACITY);
    let dead: Vec<_> = queue
        .dead_letters()
        .iter()
        .map(|dead| (dead.item.0, dead.attempts))
        .collect();
    let expected: Vec<_> = model
        .dead_order
        .iter()
        .map(|&id| (id, model.items[id as usize].attempts))
        .collect();
    assert_eq!(dead, expected);
}

fn drive(
    queue: &mut Queue,
    model: &mut Model,
    ops: &[Op],
    base: Instant,
    now: &mut u64,
    acked: &mut HashSet<ItemId>,
) {
    for op in ops {
        let mut model_now = *now;
        let expected = model.step(op, &mut model_now);
        let answer = run(queue, op, base, now);
        assert_eq!(answer, expected, "after {op:?}");
        match (&answer, op) {
            (Answer::Took(Some((id, attempt, _))), _) => {
                assert!(!acked.contains(id), "acked item {id:?} delivered again");
                assert!(*attempt <= MAX_ATTEMPTS);
            }
            (Answer::Done(Ok(())), Op::Ack(id, _)) => {
                assert!(acked.insert(ItemId(*id)), "acked twice");
            }
            _ => {}
        }
        check(queue, model, acked);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The queue answers every operation as the model does; the journal rebuilds it
    #[test]
    fn queue_matches_model(ops in proptest::collection::vec(op(), 0..120)) {
        let base = Instant::now();
        let mut queue = Queue::new(config()).journaled();
        let mut model = Model::default();
        let (mut now, mut acked) = (0, HashSet::new());
        drive(&mut queue, &mut model, &ops, base, &mut now, &mut acked);

        let mut rebuilt = Queue::new(config());
        while let Some(event) = queue.poll_event() {
            rebuilt.apply(event).unwrap();
        }
        prop_assert_eq!(rebuilt.stats(), queue.stats());
        prop_assert_eq!(rebuilt.snapshot(), queue.snapshot());
    }

    /// A queue restored from a snapshot answers every later operation as the original does
    /// once its leases are released
    #[test]
    fn restore_behaves_identically(
        before in proptest::collection::vec(op(), 0..80),
        after in proptest::collection::vec(op(), 0..80),
    ) {
        let base = Instant::now();
        let mut queue = Queue::new(config());
        let mut model = Model::default();
        let (mut now, mut acked) = (0, HashSet::new());
        drive(&mut queue, &mut model, &before, base, &mut now, &mut acked);

        let snapshot = queue.snapshot();
        let mut restored = Queue::restore(config(), snapshot.clone()).unwrap();
        prop_assert_eq!(restored.snapshot(), snapshot);
        queue.release_all_leases();
        prop_assert_eq!(restored.stats(), queue.stats());
        for op in &after {
            let (mut now_a, mut now_b) = (now, now);
            let a = run(&mut queue, op, base, &mut now_a);
            let b = run(&mut restored, op, base, &mut now_b);
            prop_assert_eq!(a, b, "after {:?}", op);
            now = now_a;
        }
        prop_assert_eq!(restored.snapshot(), queue.snapshot());
    }
}
