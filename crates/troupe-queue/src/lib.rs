//! troupe's work queue: holds requests until a consumer can process them, first in first out
//!
//! The rules live in [`core`]: a [`core::Queue`] is plain state with no async, no storage and no
//! clock. The caller passes the current time (`now: Instant`) into every call that needs it, so
//! every decision is deterministic for a given sequence of inputs and is tested directly (the
//! sans-IO split of `quinn-proto`). [`actor::QueueActor`] runs a queue under supervision, in
//! memory or durable on redb ([`storage`]), and a [`QueueClient`] reaches it from any node.
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
//! - Durable mode: an enqueue is answered only once committed to disk, an ack only once the
//!   item is removed on disk; a restart (crash, `kill -9`) brings back every acknowledged item
//!   not acked, ready, with its attempts (a leased item is released: at least once).
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
//! - `storage.rs`: [`storage::Storage`], the durable contents of a queue in a redb file (one
//!   table of items by id with their attempts, state and place; one of counters). Each call's
//!   events are committed in one `Durability::Immediate` transaction before the call is
//!   answered; `open` recovers with leases released (at least once).
//! - `actor.rs`: [`actor::QueueActor`], the supervised shell: [`actor::QueueMsg`] in (each
//!   request with its own reply port), a lease-expiry tick, and lease release when a
//!   consumer's node is reported down. [`actor::QueueSpec::in_memory`] (fast, loses
//!   everything on a crash) or [`actor::QueueSpec::durable`] (acknowledged enqueues survive
//!   `kill -9`).
//! - `client.rs`: [`QueueClient`], the typed handle: enqueue, take, ack, nack, stats and dead
//!   letters, with [`QueueError`] for what failed.
//!
//! The `kill -9` test of durable mode runs a real process: its helper binary and the test are in
//! `crates/troupe-examples` (`src/bin/queue_stress.rs`, `tests/queue_processes.rs`).

pub mod actor;
pub mod client;
pub mod core;
pub mod storage;

pub use actor::{DeadInfo, LeaseInfo, QueueActor, QueueFailure, QueueMsg, QueueSpec, StatsInfo};
pub use client::{Consumer, QueueClient, QueueError};
pub use core::{ItemId, QueueConfig};
pub use storage::Storage;
pub use troupe_store::{StoreError, StoreFault};
