//! troupe's replicated key-value store: single-leader log replication, catch-up and failover
//!
//! The replication rules live in [`core`]: plain types with no networking code, no async, no
//! clock and no storage, tested deterministically. Around them, a thin shell: [`storage`] (one
//! redb file per replica), [`DbReplica`] (the supervised actor that feeds the rules and moves
//! their messages between replicas), [`DbClient`] (one handle that follows the leader). The
//! database behind a read-through cache (`DbBacking`) is in the facade crate `troupe`, where
//! the cache and the database meet. `docs/db.md` in the repository
//! says what each acknowledgement mode can lose, and how failover works.
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo(node: troupe_runtime::Node) -> Result<(), troupe_db::DbError> {
//! use troupe_db::{AckMode, DbSpec, ReadPolicy};
//!
//! let spec = DbSpec::new("db", "./troupe-data")
//!     .replica("data-1")
//!     .replica("data-2")
//!     .replica("data-3")
//!     .ack(AckMode::Majority);
//! // Each host registers its replica with `spec.child(&node, i)` (or `Topology::add` does
//! // it); a node `reachable_from` allows can then reach the database:
//! let db = spec.client(&node);
//! let written = db.put("user:42", "ada").await?;
//! let mine = db.with_read_policy(ReadPolicy::ReadYourWrites);
//! assert_eq!(mine.get("user:42").await?.as_deref(), Some(&b"ada"[..]));
//! # let _ = written;
//! # Ok(())
//! # }
//! ```
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
//! - `storage.rs`: [`storage::ReplicaStore`], a replica's log, applied map and epochs on redb.
//! - `msg.rs`: [`DbMsg`], what clients say to a replica, and [`DbPeerMsg`], what replicas say
//!   to each other (each request with its own reply port), and the answers' types.
//! - `spec.rs`: [`DbSpec`], placement, acknowledgement mode, limits and timings.
//! - `replica.rs`: [`DbReplica`], the actor; `client.rs`: [`DbClient`].
//! - `raft/`: the Raft mode ([`raft::RaftReplica`]), a replica group run by openraft.

pub mod client;
pub mod core;
pub mod msg;
pub mod raft;
pub mod replica;
pub mod spec;
pub mod storage;

pub use client::{AttemptError, DbClient, DbError, ReadPolicy};
pub use core::{AckMode, Limits};
pub use msg::{
    DbAdminMsg, DbFailure, DbMsg, DbPeerMsg, MembershipChange, Promoted, ReadValue, ReplicaStatus,
    Role, ScanPage, WriteOutcome, Written,
};
pub use replica::DbReplica;
pub use spec::DbSpec;
pub use troupe_store::{StoreError, StoreFault};
