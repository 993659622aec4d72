//! [`Queue`]: one named queue's rules

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::event::{ApplyError, QueueEvent, QueueSnapshot, SnapshotItem};
use super::{
    ConsumerId, DeadLetter, FailReason, ItemId, Lease, MAX_ERROR_LEN, MAX_LEASE, QueueConfig,
    QueueError, QueueStats, QueueTotals,
};

/// An item in line or leased
#[derive(Debug, Clone)]
struct Item {
    id: ItemId,
    payload: Bytes,
    attempts: u32,
    last_failure: Option<FailReason>,
}

/// An item out with a consumer
#[derive(Debug, Clone)]
struct Leased {
    /// Its position in line, kept so a failure puts it back where it was
    position: u64,
    item: Item,
    consumer: ConsumerId,
    deadline: Instant,
}

/// One named queue: FIFO with visibility leases, redelivery at the head, dead letters, capacity
///
/// Plain state: time is the `now` argument, and every method that takes `now` first expires
/// the leases due at `now` (see [`Queue::expire`]). Each change is made by applying
/// [`QueueEvent`]s; a journaled queue ([`Queue::journaled`]) also hands them out through
/// [`Queue::poll_event`], in order, for a storage layer to persist.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use bytes::Bytes;
/// use troupe_queue::core::{ConsumerId, Queue, QueueConfig};
///
/// let now = Instant::now();
/// let mut queue = Queue::new(QueueConfig::default());
/// let id = queue.enqueue(Bytes::from_static(b"resize photo 7"), now).unwrap();
/// let lease = queue.take(ConsumerId(1), now, None).unwrap();
/// assert_eq!((lease.item, lease.attempt), (id, 1));
/// queue.ack(id, ConsumerId(1)).unwrap();
/// assert!(queue.take(ConsumerId(1), now + Duration::from_secs(60), None).is_none());
/// ```
#[derive(Debug, Clone)]
pub struct Queue {
    config: QueueConfig,
    next_id: u64,
    next_position: u64,
    /// Ready items by position: the first entry is the head of the line
    ready: BTreeMap<u64, Item>,
    leased: HashMap<ItemId, Leased>,
    /// Leased items by deadline, then position, so expiry finds them in order
    deadlines: BTreeSet<(Instant, u64, ItemId)>,
    /// Dead letters, oldest first; at most `dlq_capacity` between calls
    dead: VecDeque<DeadLetter>,
    totals: QueueTotals,
    /// Events not yet handed out, when journaled; the caller drains them after every call, so
    /// this holds at most one call's events
    journal: Option<VecDeque<QueueEvent>>,
}

impl Queue {
    /// An empty queue with these limits, not journaled
    ///
    /// # Panics
    ///
    /// - if `config.max_attempts` is 0 (no item could ever be delivered)
    /// - if `config.lease` is zero or longer than [`MAX_LEASE`]
    pub fn new(config: QueueConfig) -> Self {
        assert!(config.max_attempts > 0, "max_attempts must be at least 1");
        assert!(!config.lease.is_zero(), "lease must be longer than zero");
        assert!(config.lease <= MAX_LEASE, "lease must be at most MAX_LEASE");
        Self {
            config,
            next_id: 0,
            next_position: 0,
            ready: BTreeMap::new(),
            leased: HashMap::new(),
            deadlines: BTreeSet::new(),
            dead: VecDeque::new(),
            totals: QueueTotals::default(),
            journal: None,
        }
    }

    /// This queue, recording every following state change for [`Queue::poll_event`]
    ///
    /// Drain the events after every call: they are kept until then.
    #[must_use]
    pub fn journaled(mut self) -> Self {
        self.journal.get_or_insert_with(VecDeque::new);
        self
    }

    /// The limits this queue runs with
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The next recorded state change, oldest first; always `None` when not journaled
    #[must_use]
    pub fn poll_event(&mut self) -> Option<QueueEvent> {
        self.journal.as_mut()?.pop_front()
    }

    /// Adds an item at the tail of the line and answers with its id
    ///
    /// `Ok` means the item is in the queue; it does not mean it is stored anywhere durable: a
    /// storage layer persists the [`QueueEvent::Enqueued`] before answering a producer.
    ///
    /// # Errors
    ///
    /// - [`QueueError::TooLarge`] if the payload is longer than `max_item_bytes`
    /// - [`QueueError::Full`] if `capacity` items are ready or leased (after expiring leases due
    ///   at `now`)
    pub fn enqueue(&mut self, payload: Bytes, now: Instant) -> Result<ItemId, QueueError> {
        if payload.len() > self.config.max_item_bytes {
            return Err(QueueError::TooLarge {
                len: payload.len(),
                max: self.config.max_item_bytes,
            });
        }
        self.expire(now);
        self.check_room()?;
        let id = ItemId(self.next_id);
        self.commit(QueueEvent::Enqueued { id, payload });
        debug_assert!(self.in_line() <= self.config.capacity);
        self.check_invariants();
        Ok(id)
    }

    /// Leases the head of the line to `consumer` until `now + lease` (or the configured lease)
    ///
    /// The item is invisible to other takes until it is acked, nacked, its lease expires or its
    /// consumer is released. `None` when no item is ready. Leases longer than [`MAX_LEASE`] are
    /// shortened to it; a zero lease is due at once and expires on the next call with `now`.
    pub fn take(
        &mut self,
        consumer: ConsumerId,
        now: Instant,
        lease: Option<Duration>,
    ) -> Option<Lease> {
        self.expire(now);
        let (id, payload, attempts) = {
            let (_, head) = self.ready.first_key_value()?;
            (head.id, head.payload.clone(), head.attempts)
        };
        let lease = lease.unwrap_or(self.config.lease).min(MAX_LEASE);
        let deadline = now + lease;
        let attempt = attempts.saturating_add(1);
        self.commit(QueueEvent::Leased {
            id,
            consumer,
            attempt,
            deadline,
        });
        self.check_invariants();
        Some(Lease {
            item: id,
            payload,
            attempt,
            deadline,
        })
    }

    /// Removes a leased item for good: it is never delivered again
    ///
    /// A lease past its deadline still counts until something expires it (any call with `now`),
    /// so a late ack that arrives first wins and saves a redelivery.
    ///
    /// # Errors
    ///
    /// [`QueueError::NotLeased`] if `item` is not leased to `consumer`: unknown, already acked,
    /// released, or leased to another consumer. Nothing changes.
    pub fn ack(&mut self, item: ItemId, consumer: ConsumerId) -> Result<(), QueueError> {
        self.check_leased(item, consumer)?;
        self.commit(QueueEvent::Acked { id: item });
        self.check_invariants();
        Ok(())
    }

    /// Gives a leased item back: visible again at its place at the head of the line, or a dead
    /// letter if this was its last attempt
    ///
    /// # Errors
    ///
    /// [`QueueError::NotLeased`] if `item` is not leased to `consumer` once leases due at `now`
    /// are expired (an expired item was already given back).
    pub fn nack(
        &mut self,
        item: ItemId,
        consumer: ConsumerId,
        now: Instant,
    ) -> Result<(), QueueError> {
        self.nack_inner(item, consumer, None, now)
    }

    /// [`Queue::nack`], keeping the consumer's error text (cut to [`MAX_ERROR_LEN`] bytes) as
    /// the item's last failure reason, shown in its [`DeadLetter`]
    ///
    /// # Errors
    ///
    /// As [`Queue::nack`].
    pub fn nack_with_error(
        &mut self,
        item: ItemId,
        consumer: ConsumerId,
        error: &str,
        now: Instant,
    ) -> Result<(), QueueError> {
        let mut end = error.len().min(MAX_ERROR_LEN);
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        self.nack_inner(item, consumer, Some(error[..end].to_owned()), now)
    }

    fn nack_inner(
        &mut self,
        item: ItemId,
        consumer: ConsumerId,
        error: Option<String>,
        now: Instant,
    ) -> Result<(), QueueError> {
        self.expire(now);
        self.check_leased(item, consumer)?;
        self.fail(item, FailReason::Nacked { error });
        self.check_invariants();
        Ok(())
    }

    /// Releases every lease whose deadline is at or before `now`, as if nacked
    ///
    /// Released items are visible again at the head of the line in their original order (or
    /// dead letters if it was their last attempt). Returns them in that order. Called by every
    /// method that takes `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<ItemId> {
        let mut due: Vec<(u64, ItemId)> = self
            .deadlines
            .iter()
            .take_while(|(deadline, _, _)| *deadline <= now)
            .map(|&(_, position, id)| (position, id))
            .collect();
        if due.is_empty() {
            return Vec::new();
        }
        due.sort_unstable();
        let ids: Vec<ItemId> = due.into_iter().map(|(_, id)| id).collect();
        for &id in &ids {
            self.fail(id, FailReason::Expired);
        }
        self.check_invariants();
        ids
    }

    /// Releases every lease held by `consumer` at once (its node was reported down)
    ///
    /// Leases due at `now` are expired first. The consumer's items are visible again at the head
    /// of the line in their original order (or dead letters if it was their last attempt).
    /// Returns them in that order.
    pub fn release_consumer(&mut self, consumer: ConsumerId, now: Instant) -> Vec<ItemId> {
        self.expire(now);
        let ids = self.leased_where(|leased| leased.consumer == consumer);
        for &id in &ids {
            self.fail(id, FailReason::ConsumerDown);
        }
        self.check_invariants();
        ids
    }

    /// Releases every lease, with reason [`FailReason::Restarted`]
    ///
    /// For recovery: after replaying a log with [`Queue::apply`], lease deadlines from the
    /// previous process mean nothing here, so every leased item goes back in line (or to the
    /// dead-letter queue if that was its last attempt). Returns them in line order.
    pub fn release_all_leases(&mut self) -> Vec<ItemId> {
        let ids = self.leased_where(|_| true);
        for &id in &ids {
            self.fail(id, FailReason::Restarted);
        }
        self.check_invariants();
        ids
    }

    /// The dead letters, oldest first
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.dead.iter().cloned().collect()
    }

    /// Puts a dead letter back at the tail of the line with its attempts reset to 0
    ///
    /// It keeps its id.
    ///
    /// # Errors
    ///
    /// - [`QueueError::NotDead`] if `item` is not in the dead-letter queue
    /// - [`QueueError::Full`] if `capacity` items are ready or leased; it stays a dead letter
    pub fn replay_dead_letter(&mut self, item: ItemId, now: Instant) -> Result<(), QueueError> {
        self.expire(now);
        if !self.dead.iter().any(|dead| dead.item == item) {
            return Err(QueueError::NotDead { item });
        }
        self.check_room()?;
        self.commit(QueueEvent::Replayed { id: item });
        debug_assert!(self.in_line() <= self.config.capacity);
        self.check_invariants();
        Ok(())
    }

    /// Drops a dead letter for good and hands it back
    ///
    /// # Errors
    ///
    /// [`QueueError::NotDead`] if `item` is not in the dead-letter queue.
    pub fn drop_dead_letter(&mut self, item: ItemId) -> Result<DeadLetter, QueueError> {
        let dead = self
            .dead
            .iter()
            .find(|dead| dead.item == item)
            .cloned()
            .ok_or(QueueError::NotDead { item })?;
        self.commit(QueueEvent::DeadLetterDropped { id: item });
        self.check_invariants();
        Ok(dead)
    }

    /// Counts of ready, leased and dead items, and the running totals
    pub fn stats(&self) -> QueueStats {
        QueueStats {
            ready: self.ready.len(),
            leased: self.leased.len(),
            dead: self.dead.len(),
            totals: self.totals,
        }
    }

    /// The durable contents: ready items in line order and dead letters, as they are after
    /// [`Queue::release_all_leases`] (leases do not survive a restart)
    pub fn snapshot(&self) -> QueueSnapshot {
        let mut copy = self.clone();
        copy.journal = None;
        copy.release_all_leases();
        QueueSnapshot {
            next_id: ItemId(copy.next_id),
            ready: copy
                .ready
                .into_values()
                .map(|item| SnapshotItem {
                    id: item.id,
                    payload: item.payload,
                    attempts: item.attempts,
                    last_failure: item.last_failure,
                })
                .collect(),
            dead: copy.dead.into_iter().collect(),
            totals: copy.totals,
        }
    }

    /// A queue with the contents of `snapshot`, not journaled
    ///
    /// It behaves as the snapshotted queue would after [`Queue::release_all_leases`]. Items are
    /// kept even beyond `config.capacity` (they were acknowledged); enqueues are refused until
    /// there is room. Dead letters beyond `dlq_capacity` are evicted, oldest first.
    ///
    /// # Errors
    ///
    /// [`ApplyError`] if the snapshot is inconsistent: an id repeated, or not below `next_id`.
    ///
    /// # Panics
    ///
    /// As [`Queue::new`].
    pub fn restore(config: QueueConfig, snapshot: QueueSnapshot) -> Result<Self, ApplyError> {
        let mut queue = Self::new(config);
        queue.next_id = snapshot.next_id.0;
        queue.totals = snapshot.totals;
        let mut seen = HashSet::new();
        let ids = snapshot
            .ready
            .iter()
            .map(|item| item.id)
            .chain(snapshot.dead.iter().map(|dead| dead.item));
        for id in ids {
            let why = if id.0 >= queue.next_id {
                "id not below next_id"
            } else if !seen.insert(id) {
                "id repeated"
            } else {
                continue;
            };
            return Err(ApplyError {
                kind: "Snapshot",
                id,
                why,
            });
        }
        for item in snapshot.ready {
            let position = queue.take_position();
            queue.ready.insert(
                position,
                Item {
                    id: item.id,
                    payload: item.payload,
                    attempts: item.attempts,
                    last_failure: item.last_failure,
                },
            );
        }
        queue.dead = snapshot.dead.into();
        while queue.dead.len() > queue.config.dlq_capacity {
            queue.dead.pop_front();
            queue.totals.dead_evicted += 1;
        }
        queue.check_invariants();
        Ok(queue)
    }

    /// Applies one recorded state change, as the method that recorded it did
    ///
    /// Rebuilding from a log: apply its events in order to `Queue::new(config)`, then call
    /// [`Queue::release_all_leases`]. Capacity is not enforced here: every logged enqueue was
    /// acknowledged and is kept. Applied events are not journaled again.
    ///
    /// # Errors
    ///
    /// [`ApplyError`] if the event does not fit the state (a corrupt or reordered log); the
    /// state is unchanged.
    pub fn apply(&mut self, event: QueueEvent) -> Result<(), ApplyError> {
        let refuse = |why| ApplyError {
            kind: event.kind(),
            id: event.id(),
            why,
        };
        match &event {
            QueueEvent::Enqueued { id, payload } => {
                if id.0 < self.next_id {
                    return Err(refuse("id not above every earlier id"));
                }
                self.next_id = id.0 + 1;
                let position = self.take_position();
                self.ready.insert(
                    position,
                    Item {
                        id: *id,
                        payload: payload.clone(),
                        attempts: 0,
                        last_failure: None,
                    },
                );
                self.totals.enqueued += 1;
            }
            QueueEvent::Leased {
                id,
                consumer,
                attempt,
                deadline,
            } => {
                let Some(mut head) = self.ready.first_entry() else {
                    return Err(refuse("no item ready"));
                };
                if head.get().id != *id {
                    return Err(refuse("item is not the head of the line"));
                }
                if head.get().attempts.saturating_add(1) != *attempt {
                    return Err(refuse("attempt is not the next one"));
                }
                head.get_mut().attempts = *attempt;
                let (position, item) = head.remove_entry();
                self.deadlines.insert((*deadline, position, *id));
                self.leased.insert(
                    *id,
                    Leased {
                        position,
                        item,
                        consumer: *consumer,
                        deadline: *deadline,
                    },
                );
                self.totals.delivered += 1;
                if *attempt > 1 {
                    self.totals.redelivered += 1;
                }
            }
            QueueEvent::Acked { id } => {
                self.remove_leased(*id)
                    .ok_or_else(|| refuse("item not leased"))?;
                self.totals.acked += 1;
            }
            QueueEvent::Released { id, reason } => {
                let mut leased = self
                    .remove_leased(*id)
                    .ok_or_else(|| refuse("item not leased"))?;
                self.count_failure(reason);
                leased.item.last_failure = Some(reason.clone());
                let displaced = self.ready.insert(leased.position, leased.item);
                debug_assert!(displaced.is_none(), "two items at one position");
            }
            QueueEvent::DeadLettered { id, reason } => {
                let leased = self
                    .remove_leased(*id)
                    .ok_or_else(|| refuse("item not leased"))?;
                self.count_failure(reason);
                self.dead.push_back(DeadLetter {
                    item: *id,
                    payload: leased.item.payload,
                    attempts: leased.item.attempts,
                    reason: reason.clone(),
                });
                self.totals.dead_lettered += 1;
            }
            QueueEvent::DeadLetterEvicted { id } => {
                if self.dead.front().map(|dead| dead.item) != Some(*id) {
                    return Err(refuse("item is not the oldest dead letter"));
                }
                self.dead.pop_front();
                self.totals.dead_evicted += 1;
            }
            QueueEvent::Replayed { id } => {
                let dead = self
                    .remove_dead(*id)
                    .ok_or_else(|| refuse("item not dead"))?;
                let position = self.take_position();
                self.ready.insert(
                    position,
                    Item {
                        id: *id,
                        payload: dead.payload,
                        attempts: 0,
                        last_failure: None,
                    },
                );
                self.totals.replayed += 1;
            }
            QueueEvent::DeadLetterDropped { id } => {
                self.remove_dead(*id)
                    .ok_or_else(|| refuse("item not dead"))?;
                self.totals.dead_dropped += 1;
            }
        }
        Ok(())
    }

    /// Applies an event decided here and journals it
    fn commit(&mut self, event: QueueEvent) {
        let applied = self.apply(event.clone());
        // Why assert: the event was decided from this very state, so a refusal is a bug here.
        assert!(applied.is_ok(), "own event refused: {applied:?}");
        if let Some(journal) = &mut self.journal {
            journal.push_back(event);
        }
    }

    /// A failed delivery: back in line, or a dead letter after the last attempt
    fn fail(&mut self, id: ItemId, reason: FailReason) {
        let attempts = self.leased.get(&id).map(|leased| leased.item.attempts);
        debug_assert!(attempts.is_some(), "failing an item not leased");
        let Some(attempts) = attempts else { return };
        if attempts >= self.config.max_attempts {
            self.commit(QueueEvent::DeadLettered { id, reason });
            while self.dead.len() > self.config.dlq_capacity {
                let Some(oldest) = self.dead.front().map(|dead| dead.item) else {
                    break;
                };
                self.commit(QueueEvent::DeadLetterEvicted { id: oldest });
            }
        } else {
            self.commit(QueueEvent::Released { id, reason });
        }
    }

    fn count_failure(&mut self, reason: &FailReason) {
        let counter = match reason {
            FailReason::Nacked { .. } => &mut self.totals.nacked,
            FailReason::Expired => &mut self.totals.expired,
            FailReason::ConsumerDown => &mut self.totals.consumer_down,
            FailReason::Restarted => &mut self.totals.restarted,
        };
        *counter += 1;
    }

    fn check_room(&self) -> Result<(), QueueError> {
        if self.in_line() >= self.config.capacity {
            return Err(QueueError::Full {
                capacity: self.config.capacity,
            });
        }
        Ok(())
    }

    fn check_leased(&self, item: ItemId, consumer: ConsumerId) -> Result<(), QueueError> {
        match self.leased.get(&item) {
            Some(leased) if leased.consumer == consumer => Ok(()),
            _ => Err(QueueError::NotLeased { item, consumer }),
        }
    }

    /// Leased items matching `keep`, in line order
    fn leased_where(&self, keep: impl Fn(&Leased) -> bool) -> Vec<ItemId> {
        let mut found: Vec<(u64, ItemId)> = self
            .leased
            .values()
            .filter(|leased| keep(leased))
            .map(|leased| (leased.position, leased.item.id))
            .collect();
        found.sort_unstable();
        found.into_iter().map(|(_, id)| id).collect()
    }

    fn remove_leased(&mut self, id: ItemId) -> Option<Leased> {
        let leased = self.leased.remove(&id)?;
        let removed = self
            .deadlines
            .remove(&(leased.deadline, leased.position, id));
        debug_assert!(removed, "leased item without its deadline entry");
        Some(leased)
    }

    fn remove_dead(&mut self, id: ItemId) -> Option<DeadLetter> {
        let index = self.dead.iter().position(|dead| dead.item == id)?;
        self.dead.remove(index)
    }

    fn take_position(&mut self) -> u64 {
        let position = self.next_position;
        self.next_position += 1;
        position
    }

    fn in_line(&self) -> usize {
        self.ready.len() + self.leased.len()
    }

    /// Every item in exactly one place, ids unique and issued, indexes agree (debug builds only)
    fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let mut ids = HashSet::new();
        for (&position, item) in &self.ready {
            debug_assert!(position < self.next_position, "position not issued");
            debug_assert!(item.id.0 < self.next_id, "ready id not issued");
            debug_assert!(ids.insert(item.id), "ready id in two places");
        }
        debug_assert_eq!(self.deadlines.len(), self.leased.len());
        for (id, leased) in &self.leased {
            debug_assert_eq!(*id, leased.item.id);
            debug_assert!(id.0 < self.next_id, "leased id not issued");
            debug_assert!(ids.insert(*id), "leased id in two places");
            debug_assert!(leased.item.attempts >= 1, "leased item never delivered");
            debug_assert!(
                !self.ready.contains_key(&leased.position),
                "position shared"
            );
            debug_assert!(
                self.deadlines
                    .contains(&(leased.deadline, leased.position, *id)),
                "deadline index out of step"
            );
        }
        for dead in &self.dead {
            debug_assert!(dead.item.0 < self.next_id, "dead id not issued");
            debug_assert!(ids.insert(dead.item), "dead id in two places");
        }
        debug_assert!(self.dead.len() <= self.config.dlq_capacity);
    }
}
