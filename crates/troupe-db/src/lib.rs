//! troupe's replicated key-value store: single-leader log replication, catch-up and failover
//!
//! This crate currently holds only the replication rules, in [`core`]: plain types with no
//! networking code, no async, no clock and no storage. Storage on redb and the replica actors
//! that move messages between these types come later and only call into [`core`].
//!
//! # Guarantees
//!
//! - A follower applies log entries strictly in index order, each exactly once
//!   ([`core::Follower`]); only an explicit snapshot install replaces its state wholesale.
//! - A write is acknowledged only when its entry is durable on as many replicas as the
//!   database's [`core::AckMode`] asks for ([`core::Leader::commit_index`]).
//! - Which acknowledged writes can be lost when the leader is lost is stated per mode in
//!   [`core`]'s module docs, under `# Durability on leader loss`.
//!
//! # Layout
//!
//! - `core/mod.rs`: shared vocabulary ([`core::ReplicaId`], [`core::WriteId`]) and the
//!   durability statement per acknowledgement mode.
//! - `core/op.rs`: [`core::Op`] and [`core::Entry`], what the log holds.
//! - `core/log.rs`: [`core::Log`], the in-memory replicated log with prefix and suffix truncation.
//! - `core/state_machine.rs`: [`core::StateMachine`], the key-value map the log is applied to,
//!   with [`core::Limits`] on key and value sizes.
//! - `core/follower.rs`: [`core::Follower`], the rules for accepting `AppendEntries` and
//!   `InstallSnapshot` and applying in order.
//! - `core/leader.rs`: [`core::Leader`], per-follower progress, acknowledgement counting and
//!   pending writes.
//! - `core/promotion.rs`: [`core::promote`], choosing the follower to promote on leader loss.

pub mod backing;
pub mod client;
pub mod core;
pub mod msg;
pub mod replica;
pub mod spec;
pub mod storage;

pub use backing::DbBacking;
pub use client::{DbClient, DbError, ReadPolicy, ReadValue, Written};
pub use core::{AckMode, Limits};
pub use msg::{DbFailure, DbMsg, DbReply, ReplicaStatus, Role, WriteOutcome};
pub use replica::DbReplica;
pub use spec::DbSpec;
