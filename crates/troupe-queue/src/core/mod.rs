//! The queue rules as plain state: no async, no storage, no clock
//!
//! Time enters only as the `now: Instant` argument. Every method that takes `now` first expires
//! the leases whose deadline is at or before `now` (as [`Queue::expire`] does).
//!
//! # Position in line
//!
//! Each item gets a position when it is enqueued (or replayed from the dead-letter queue) and
//! keeps it across deliveries. The ready item with the earliest position is the head of the line.
//! Because deliveries always take the head, an item that comes back after a failed delivery is
//! ahead of every item never delivered, and several returning items keep their original order.

mod event;
mod queue;
#[cfg(test)]
mod tests;

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use event::{ApplyError, QueueEvent, QueueSnapshot, SnapshotItem};
pub use queue::Queue;

/// The longest lease a consumer can get; longer requests are shortened to this
///
/// Why: a lease is a promise to hide an item; a bound keeps a forgotten lease from hiding it
/// for good and keeps `now + lease` far from `Instant` overflow.
pub const MAX_LEASE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The longest nack error text kept with an item, in bytes; longer text is cut at a char boundary
pub const MAX_ERROR_LEN: usize = 1024;

/// The id of one enqueued item, unique within its queue and increasing in enqueue order
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemId(pub u64);

/// Who holds a lease: the caller maps its consumers (actors on any node) to these ids
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConsumerId(pub u64);

/// The limits of one queue
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// The most items ready or leased at once; `enqueue` beyond it is [`QueueError::Full`]
    pub capacity: usize,
    /// Deliveries an item gets; a failure of the last one moves it to the dead-letter queue
    pub max_attempts: u32,
    /// The visibility timeout when `take` asks for none (at most [`MAX_LEASE`])
    pub lease: Duration,
    /// The largest payload `enqueue` accepts, in bytes
    pub max_item_bytes: usize,
    /// The most dead letters kept; when a new one arrives at the limit, the oldest is dropped
    /// and counted in [`QueueTotals::dead_evicted`]
    pub dlq_capacity: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            max_attempts: 5,
            lease: Duration::from_secs(30),
            max_item_bytes: 1024 * 1024,
            dlq_capacity: 1_000,
        }
    }
}

/// One delivery of an item to a consumer
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The item delivered
    pub item: ItemId,
    /// Its payload
    pub payload: Bytes,
    /// Which delivery this is: 1 on the first
    pub attempt: u32,
    /// When the lease runs out and the item is visible again unless acked
    pub deadline: std::time::Instant,
}

/// Why a delivery failed
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailReason {
    /// The consumer nacked it, with an optional error text (at most [`MAX_ERROR_LEN`] bytes)
    Nacked {
        /// What the consumer reported
        error: Option<String>,
    },
    /// The lease ran out before an ack
    Expired,
    /// The consumer's node was reported down
    ConsumerDown,
    /// The queue restarted (all leases are released on recovery)
    Restarted,
}

/// An item that failed `max_attempts` deliveries
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The item
    pub item: ItemId,
    /// Its payload
    pub payload: Bytes,
    /// How many deliveries it got
    pub attempts: u32,
    /// Why the last one failed
    pub reason: FailReason,
}

/// Running totals since the queue was created (they survive snapshot and event replay)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueTotals {
    /// Items accepted by `enqueue`
    pub enqueued: u64,
    /// Deliveries, first or not
    pub delivered: u64,
    /// Deliveries after the first of the same item
    pub redelivered: u64,
    /// Items acked
    pub acked: u64,
    /// Failed deliveries by nack
    pub nacked: u64,
    /// Failed deliveries by lease expiry
    pub expired: u64,
    /// Failed deliveries because the consumer was reported down
    pub consumer_down: u64,
    /// Failed deliveries because the queue restarted
    pub restarted: u64,
    /// Items moved to the dead-letter queue
    pub dead_lettered: u64,
    /// Dead letters dropped to make room for newer ones
    pub dead_evicted: u64,
    /// Dead letters put back in line
    pub replayed: u64,
    /// Dead letters dropped on request
    pub dead_dropped: u64,
}

/// A view of one queue
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Items waiting for a consumer
    pub ready: usize,
    /// Items delivered and not yet acked or failed
    pub leased: usize,
    /// Items in the dead-letter queue
    pub dead: usize,
    /// Running totals
    pub totals: QueueTotals,
}

/// Why a queue operation was refused
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// `capacity` items are ready or leased: try again after some are acked
    #[error("queue full: {capacity} items ready or leased")]
    Full {
        /// The configured capacity
        capacity: usize,
    },
    /// The payload is larger than `max_item_bytes`
    #[error("item of {len} bytes is larger than the limit of {max}")]
    TooLarge {
        /// The payload length
        len: usize,
        /// The configured limit
        max: usize,
    },
    /// The item is not leased to this consumer (unknown, acked, released or leased to another)
    #[error("item {item:?} is not leased to consumer {consumer:?}")]
    NotLeased {
        /// The item named
        item: ItemId,
        /// The consumer named
        consumer: ConsumerId,
    },
    /// The item is not in the dead-letter queue
    #[error("item {item:?} is not a dead letter")]
    NotDead {
        /// The item named
        item: ItemId,
    },
}
