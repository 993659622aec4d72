//! What a storage layer persists: one event per state change, or a whole snapshot

use std::time::Instant;

use bytes::Bytes;

use super::{ConsumerId, DeadLetter, FailReason, ItemId, QueueTotals};

/// One state change of a [`Queue`](super::Queue)
///
/// Every mutating method of `Queue` is carried out as a sequence of these, applied in order;
/// [`Queue::apply`](super::Queue::apply) of the same sequence to the same state gives the same
/// state. A journaled queue ([`Queue::journaled`](super::Queue::journaled)) hands them out
/// through [`Queue::poll_event`](super::Queue::poll_event).
///
/// A storage layer that must not lose acknowledged enqueues persists `Enqueued` before
/// answering the producer, and `Acked` before answering the consumer; the other events may be
/// persisted lazily (losing them only means a redelivery: at least once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueEvent {
    /// An item joined the tail of the line with no deliveries yet
    Enqueued {
        /// Its id: larger than every id before it
        id: ItemId,
        /// Its payload
        payload: Bytes,
    },
    /// The head of the line was leased to a consumer
    Leased {
        /// The item, which was the head of the line
        id: ItemId,
        /// Who holds the lease
        consumer: ConsumerId,
        /// Which delivery this is (1 on the first)
        attempt: u32,
        /// When the lease runs out; meaningless in another process, see
        /// [`Queue::release_all_leases`](super::Queue::release_all_leases)
        deadline: Instant,
    },
    /// A leased item was acked and is gone for good
    Acked {
        /// The item
        id: ItemId,
    },
    /// A leased item failed and is back in line at its original position
    Released {
        /// The item
        id: ItemId,
        /// Why the delivery failed
        reason: FailReason,
    },
    /// A leased item failed its last attempt and moved to the dead-letter queue
    DeadLettered {
        /// The item
        id: ItemId,
        /// Why the last delivery failed
        reason: FailReason,
    },
    /// The oldest dead letter was dropped to make room
    DeadLetterEvicted {
        /// The item, which was the oldest dead letter
        id: ItemId,
    },
    /// A dead letter went back to the tail of the line with its attempts reset
    Replayed {
        /// The item
        id: ItemId,
    },
    /// A dead letter was dropped on request
    DeadLetterDropped {
        /// The item
        id: ItemId,
    },
}

impl QueueEvent {
    /// The item this event is about
    pub fn id(&self) -> ItemId {
        match self {
            Self::Enqueued { id, .. }
            | Self::Leased { id, .. }
            | Self::Acked { id }
            | Self::Released { id, .. }
            | Self::DeadLettered { id, .. }
            | Self::DeadLetterEvicted { id }
            | Self::Replayed { id }
            | Self::DeadLetterDropped { id } => *id,
        }
    }

    /// The name of the variant, for errors and logs
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Enqueued { .. } => "Enqueued",
            Self::Leased { .. } => "Leased",
            Self::Acked { .. } => "Acked",
            Self::Released { .. } => "Released",
            Self::DeadLettered { .. } => "DeadLettered",
            Self::DeadLetterEvicted { .. } => "DeadLetterEvicted",
            Self::Replayed { .. } => "Replayed",
            Self::DeadLetterDropped { .. } => "DeadLetterDropped",
        }
    }
}

/// An event or snapshot that does not fit the state it is applied to (a corrupt or reordered log)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} does not fit the queue state for item {id:?}: {why}")]
pub struct ApplyError {
    /// The event kind, or `"Snapshot"`
    pub kind: &'static str,
    /// The item named
    pub id: ItemId,
    /// What did not fit
    pub why: &'static str,
}

/// One ready item in a [`QueueSnapshot`]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotItem {
    /// The item
    pub id: ItemId,
    /// Its payload
    pub payload: Bytes,
    /// Deliveries it already had
    pub attempts: u32,
    /// Why the last delivery failed, if it had one
    pub last_failure: Option<FailReason>,
}

/// The durable contents of a queue: ready items in line order and dead letters, no leases
///
/// Leases do not survive a restart: [`Queue::snapshot`](super::Queue::snapshot) records the
/// state as it is after [`Queue::release_all_leases`](super::Queue::release_all_leases), so a
/// leased item is ready again (or dead, if that was its last attempt): at least once delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// The id the next enqueue gets
    pub next_id: ItemId,
    /// Ready items, head of the line first
    pub ready: Vec<SnapshotItem>,
    /// Dead letters, oldest first
    pub dead: Vec<DeadLetter>,
    /// Running totals
    pub totals: QueueTotals,
}
