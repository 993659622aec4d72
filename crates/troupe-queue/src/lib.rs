//! troupe's work queue: holds requests until a consumer can process them, first in first out
//!
//! The rules live in [`core`]: a [`core::Queue`] is plain state with no async, no storage and no
//! clock. The caller passes the current time (`now: Instant`) into every call that needs it, so
//! every decision is deterministic for a given sequence of inputs and is tested directly (the
//! sans-IO split of `quinn-proto`).
//!
//! # Guarantees
//!
//! - `enqueue` answers at once with an increasing [`core::ItemId`], or a typed
//!   [`core::QueueError::Full`] when `capacity` items are ready or leased (backpressure: the
//!   queue never grows without bound).
//! - Items are delivered in enqueue order. An item whose delivery failed (nack, expired lease,
//!   consumer reported down) is visible again ahead of every item never delivered, and failed
//!   items keep their original order among themselves.
//! - An acked item is never delivered again.
//! - An item that failed `max_attempts` deliveries moves to the bounded dead-letter queue, where
//!   it can be read, replayed (back at the tail, attempts reset) or dropped.
//! - Every state change is a [`core::QueueEvent`]; [`core::Queue::apply`] rebuilds the same
//!   state from the events, so a storage layer can persist them and recover.
//!
//! # Layout
//!
//! - `core/mod.rs`: the shared vocabulary: [`core::ItemId`], [`core::ConsumerId`],
//!   [`core::QueueConfig`], [`core::Lease`], [`core::DeadLetter`], [`core::FailReason`],
//!   [`core::QueueStats`], [`core::QueueError`].
//! - `core/queue.rs`: [`core::Queue`], the rules.
//! - `core/event.rs`: [`core::QueueEvent`], [`core::QueueSnapshot`] and [`core::ApplyError`],
//!   what a storage layer persists.

pub mod core;
