//! The Raft mode: a replica group run by [openraft](https://docs.rs/openraft) (0.9), behind
//! troupe's own types so an upgrade stays here.
//!
//! - Consensus, elections, log matching and commit are openraft's; troupe provides its storage
//!   ([`store`]: log, vote and state machine in one redb file per replica, committed with an
//!   fsync before a vote or an append is acknowledged; snapshots in files of their own), its
//!   network ([`network`]: each Raft RPC a [`RaftRpc`] message between the replica actors, on
//!   this node or over QUIC, through the same handles as everything else), and the actor
//!   ([`RaftReplica`]) that answers the database's client protocol ([`crate::DbMsg`]), so
//!   [`crate::DbClient`] works unchanged.
//! - Snapshots travel in chunks of [`SNAPSHOT_CHUNK`] bytes, read from and written to files:
//!   no whole-map message, no size limit but the disk.

pub mod network;
pub mod proposer;
pub mod replica;
pub mod store;

use serde::{Deserialize, Serialize};
use troupe_runtime::{Message, Reply};

use crate::core::Op;
use crate::msg::WriteOutcome;

pub use replica::RaftReplica;

/// The largest piece of a snapshot one message carries.
pub const SNAPSHOT_CHUNK: u64 = 1024 * 1024;

openraft::declare_raft_types!(
    /// How troupe's database instantiates openraft: the log holds [`Proposal`]s, applying one
    /// answers what each of its writes did, replicas are numbered as in the [`DbSpec`](crate::DbSpec) and need no
    /// address (a replica's handle comes from the spec), snapshots are files.
    pub TypeConfig:
        D = Proposal,
        R = Applied,
        NodeId = u64,
        Node = openraft::EmptyNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// What one log entry proposes: client writes, applied in order and together at the entry's
/// index (a leader gathers the writes that arrive while earlier proposals are in flight: see
/// [`proposer`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal(pub Vec<Op>);

/// What applying one log entry did: each write's outcome, in the proposal's order; none for
/// Raft's own entries (a new leader's blank entry, a membership change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied(pub Vec<WriteOutcome>);

/// The Raft peer protocol between the replicas of one database, each request with the port
/// for its answer. A replica takes these through its Raft name (`{name}.{index}.raft`), which
/// only the database's own replicas' nodes may reach.
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "troupe.db.Raft")]
pub enum RaftRpc {
    /// Log replication and heartbeats, leader to follower
    Append {
        /// The request
        req: openraft::raft::AppendEntriesRequest<TypeConfig>,
        /// Where the answer goes
        reply: Reply<Result<openraft::raft::AppendEntriesResponse<u64>, RaftFailure>>,
    },
    /// A candidate asking for a vote
    Vote {
        /// The request
        req: openraft::raft::VoteRequest<u64>,
        /// Where the answer goes
        reply: Reply<Result<openraft::raft::VoteResponse<u64>, RaftFailure>>,
    },
    /// One chunk of a snapshot, leader to follower
    Snapshot {
        /// The request
        req: openraft::raft::InstallSnapshotRequest<TypeConfig>,
        /// Where the answer goes
        reply: Reply<Result<openraft::raft::InstallSnapshotResponse<u64>, RaftFailure>>,
    },
    /// To a voter the leader hands over to (before it removes itself): stand for election
    /// until elected
    Elect {
        /// Where the answer goes: `Ok` once the election is under way
        reply: Reply<Result<(), RaftFailure>>,
    },
    /// An operator's promotion of replica `to`, to the leader: stop heartbeats and writes for
    /// a while, so `to` can win an election once the followers' leases run out
    Handover {
        /// The replica to hand over to
        to: u64,
        /// Where the answer goes: `Ok` once the leader has stopped
        reply: Reply<Result<(), RaftFailure>>,
    },
}

impl RaftRpc {
    /// Answers it with [`RaftFailure::NotRunning`] for `why`.
    pub fn refuse(self, why: &str) {
        let not = || RaftFailure::NotRunning(why.to_string());
        // a caller that stopped waiting loses nothing by not hearing why
        let _ = match self {
            Self::Append { reply, .. } => reply.send(Err(not())),
            Self::Vote { reply, .. } => reply.send(Err(not())),
            Self::Snapshot { reply, .. } => reply.send(Err(not())),
            Self::Handover { reply, .. } => reply.send(Err(not())),
            Self::Elect { reply } => reply.send(Err(not())),
        };
    }
}

/// Why a replica refused a Raft RPC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RaftFailure {
    /// The replica is not running Raft now (starting, stopping, or its storage failed)
    #[error("the replica is not running: {0}")]
    NotRunning(String),
    /// A snapshot chunk out of order or for another snapshot
    #[error("snapshot refused: {0}")]
    Snapshot(String),
    /// Raft itself refused (a fatal error in the replica)
    #[error("raft failed: {0}")]
    Raft(String),
}
