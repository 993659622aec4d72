//! [`DbMsg`]: what a replica actor handles, each request with the port for its own answer
//!
//! Clients normally use [`DbClient`](crate::DbClient), which builds these; the replication
//! messages (`Append`, `Snapshot`, `Fence`, `BecomeLeader`) travel between replicas, and the
//! rest after them are the replica's messages to itself.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use troupe_runtime::{CallError, Message, Reply};
use troupe_store::StoreFault;

use crate::core::{AppendEntries, AppendReply, Candidate, InstallSnapshot, OpOutcome, SizeError};

/// Where a read may be served
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadAt {
    /// Only by the leader, from its applied state: every acknowledged write is visible
    Leader,
    /// By whichever replica gets it, once it has applied at least `min_index` (0: at once);
    /// a replica behind waits up to `wait_ms` and then answers [`DbFailure::Lagging`]
    Replica {
        /// Lowest applied index the answer may come from (the log index of the caller's last
        /// write, for read-your-writes)
        min_index: u64,
        /// Longest the replica waits to catch up, in milliseconds (capped by its
        /// configuration)
        wait_ms: u64,
    },
}

/// A write, as a client asks for it
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOp {
    /// Set `key` to `value`
    Put {
        /// The key
        key: Bytes,
        /// The value
        value: Bytes,
    },
    /// Remove `key`
    Delete {
        /// The key
        key: Bytes,
    },
    /// Set `key` to `new` (remove when `None`) if it holds `expected` (`None`: absent)
    Cas {
        /// The key
        key: Bytes,
        /// What the key must hold
        expected: Option<Bytes>,
        /// What to store
        new: Option<Bytes>,
    },
}

impl From<WriteOp> for crate::core::Op {
    /// The log operation a client's write becomes.
    fn from(op: WriteOp) -> Self {
        match op {
            WriteOp::Put { key, value } => Self::Put { key, value },
            WriteOp::Delete { key } => Self::Delete { key },
            WriteOp::Cas { key, expected, new } => Self::Cas { key, expected, new },
        }
    }
}

/// An operator's request to a replica: what changes who leads or who is a member. It reaches
/// a replica only through its admin name (`NAME.N.admin`), from the nodes the spec's
/// [`administered_from`](crate::DbSpec::administered_from) admits (by default the database's
/// own replicas' nodes: where the admin endpoint of a data process sends from), so a node that
/// may read and write cannot fail the database over or change its members.
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "troupe.db.Admin")]
pub enum DbAdminMsg {
    /// Manual failover: treat the current leader as lost, fence every reachable replica and
    /// promote the most up-to-date follower → the new leader and its epoch
    Promote(Reply<Result<Promoted, DbFailure>>),
    /// A membership change, to the leader (Raft mode) → the voters once it is committed, or
    /// [`DbFailure::NotLeader`]
    ChangeMembers {
        /// The change
        change: MembershipChange,
        /// Where the answer goes
        reply: Reply<Result<Vec<u64>, DbFailure>>,
    },
}

impl From<DbAdminMsg> for DbMsg {
    fn from(msg: DbAdminMsg) -> Self {
        match msg {
            DbAdminMsg::Promote(reply) => Self::Promote(reply),
            DbAdminMsg::ChangeMembers { change, reply } => Self::ChangeMembers { change, reply },
        }
    }
}

/// What a replica actor handles
///
/// Client requests first, then the operators' requests (a [`DbAdminMsg`], which reaches a
/// replica only through its admin name, from the nodes the spec's `administered_from` admits),
/// the peer protocol (a [`DbPeerMsg`], which reaches a replica only through its peer name, from
/// the database's own replicas), then the replica's own messages. Everything after the client
/// requests is `#[serde(skip)]`: it cannot be encoded, so no other node can send it through
/// the client name.
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "troupe.db.Replica")]
pub enum DbMsg {
    /// Read one key → its value and the replica's applied index, or
    /// [`DbFailure::NotLeader`] / [`DbFailure::Lagging`] / [`DbFailure::Overloaded`]
    Get {
        /// The key
        key: Bytes,
        /// Which replicas may answer
        read: ReadAt,
        /// Where the answer goes
        reply: Reply<Result<ReadValue, DbFailure>>,
    },
    /// Keys starting with `prefix`, in key order, at most `limit` (and about
    /// [`DbSpec::max_append_bytes`](crate::DbSpec) of them), with the applied index
    Scan {
        /// The prefix (empty: every key)
        prefix: Bytes,
        /// Most entries returned
        limit: u32,
        /// Which replicas may answer
        read: ReadAt,
        /// Where the answer goes
        reply: Reply<Result<ScanPage, DbFailure>>,
    },
    /// A write, to the leader → its index and outcome once acknowledged by the database's
    /// acknowledgement mode, or [`DbFailure::NotLeader`]
    Write {
        /// The write
        op: WriteOp,
        /// Where the answer goes
        reply: Reply<Result<Written, DbFailure>>,
    },
    /// The replica's status
    Status(Reply<ReplicaStatus>),
    /// [`DbAdminMsg::Promote`], through the admin name
    #[serde(skip)]
    Promote(Reply<Result<Promoted, DbFailure>>),
    /// [`DbAdminMsg::ChangeMembers`], through the admin name
    #[serde(skip)]
    ChangeMembers {
        /// The change
        change: MembershipChange,
        /// Where the answer goes
        reply: Reply<Result<Vec<u64>, DbFailure>>,
    },
    /// The peer protocol, from another replica of this database (through the replica's facet)
    #[serde(skip)]
    Peer(DbPeerMsg),
    /// The Raft mode's peer protocol, from another replica of this database (through the
    /// replica's Raft facet)
    #[serde(skip)]
    Raft(crate::raft::RaftRpc),
    /// Persist and replicate what was proposed since the last flush
    // self-message
    #[serde(skip)]
    Flush,
    /// Heartbeats, read-wait expiry, automatic promotion checks
    // self-message
    #[serde(skip)]
    Tick,
    /// The answer a follower gave to an append or snapshot, or why the call failed
    // self-message: never encoded (a call error has no wire form), so no peer can send it
    #[serde(skip)]
    Replicated {
        /// The follower
        from: u64,
        /// Its answer
        answer: Result<Result<AppendReply, DbFailure>, CallError>,
    },
    /// A node went down (`true`) or came back (`false`)
    // self-message
    #[serde(skip)]
    NodeChanged {
        /// The node
        node: String,
        /// Whether it is down
        down: bool,
    },
    /// Peers' answers to the startup check of a replica that led before
    // self-message
    #[serde(skip)]
    Resume {
        /// Statuses of the peers that answered
        peers: Vec<ReplicaStatus>,
    },
    /// A promotion this replica ran has finished
    // self-message
    #[serde(skip)]
    PromotionDone,
}

/// The peer protocol between the replicas of one database: replication, catch-up and the two
/// steps of a promotion, and the status a replica asks its peers for
///
/// A replica takes these through its peer name (`{name}.{index}.peer`, a
/// [facet](troupe_runtime::Node::facet)), which only the database's own replicas' nodes may
/// reach: a node that is not one of them gets `CallError::Forbidden` for each.
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "troupe.db.Peer")]
pub enum DbPeerMsg {
    /// Replication, leader to follower → the follower's answer
    Append {
        /// The sending leader's replica id
        leader: u64,
        /// The entries
        req: AppendEntries,
        /// Where the answer goes
        reply: Reply<Result<AppendReply, DbFailure>>,
    },
    /// Catch-up by snapshot, leader to follower → the follower's answer
    Snapshot {
        /// The sending leader's replica id
        leader: u64,
        /// The snapshot
        req: InstallSnapshot,
        /// Where the answer goes
        reply: Reply<Result<AppendReply, DbFailure>>,
    },
    /// Promotion, step 1: refuse leaders older than `epoch` from now on → the replica's
    /// standing for promotion
    Fence {
        /// The new epoch
        epoch: u64,
        /// The replica coordinating the promotion: a replica takes one coordinator's fence per
        /// epoch
        by: u64,
        /// Where the answer goes
        reply: Reply<Result<Candidate, DbFailure>>,
    },
    /// Promotion, step 2: lead at `epoch`
    BecomeLeader {
        /// The epoch to lead
        epoch: u64,
        /// Where the answer goes
        reply: Reply<Result<(), DbFailure>>,
    },
    /// The replica's status, for a peer deciding a promotion or a resume
    Status(Reply<ReplicaStatus>),
}

/// A change to a Raft group's voters, by replica number (as the [`DbSpec`](crate::DbSpec)
/// places them)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Replica `n` catches up (by snapshot and log) as a learner, then becomes a voter
    Add(u64),
    /// Replica `n` stops being a voter and leaves the group (the leader may remove itself:
    /// it steps down once the change commits)
    Remove(u64),
}

/// A read's value and the applied index of the replica that answered
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadValue {
    /// The value, `None` if absent
    pub value: Option<Bytes>,
    /// The answering replica's applied index
    pub index: u64,
}

/// A scan's entries, in key order, and the applied index of the replica that answered
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanPage {
    /// Key-value pairs
    pub entries: Vec<(Bytes, Bytes)>,
    /// The answering replica's applied index
    pub index: u64,
}

/// A write's log index and effect
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// The write's log index: pass it to a read-your-writes read elsewhere
    pub index: u64,
    /// What it did
    pub outcome: WriteOutcome,
}

/// A promotion's result: who leads now, at which epoch
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promoted {
    /// The new leader's replica index
    pub leader: u64,
    /// Its epoch
    pub epoch: u64,
}

/// A replica's role
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Accepts writes
    Leader,
    /// Follows a leader
    Follower,
}

/// What [`DbMsg::Status`] answers
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// The replica
    pub id: u64,
    /// Its role
    pub role: Role,
    /// Newest epoch it has seen
    pub epoch: u64,
    /// The replica it believes leads, if any
    pub leader: Option<u64>,
    /// Its log's last index
    pub last_index: u64,
    /// Epoch of that entry
    pub last_epoch: u64,
    /// Highest index applied to its state
    pub applied_index: u64,
    /// Its log's base (covered by a snapshot)
    pub base_index: u64,
    /// Why its file last failed, while it refuses changes until the file reopens
    #[serde(default)]
    pub storage_fault: Option<StoreFault>,
    /// The group's voters as this replica knows them (Raft mode; every replica in the
    /// single-leader modes)
    #[serde(default)]
    pub voters: Vec<u64>,
}

/// What a write did, as [`Written`] carries it
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOutcome {
    /// A put; the value it replaced
    Put {
        /// `None` if the key was absent
        previous: Option<Bytes>,
    },
    /// A delete; the value it removed
    Deleted {
        /// `None` if the key was absent
        previous: Option<Bytes>,
    },
    /// A compare-and-set whose expectation held
    Swapped,
    /// A compare-and-set whose expectation did not hold; nothing changed
    CasFailed {
        /// What the key held
        actual: Option<Bytes>,
    },
}

impl WriteOutcome {
    pub(crate) fn from_apply(outcome: Result<OpOutcome, crate::core::CasMismatch>) -> Self {
        match outcome {
            Ok(OpOutcome::Put { previous }) => Self::Put { previous },
            Ok(OpOutcome::Delete { previous }) => Self::Deleted { previous },
            Ok(OpOutcome::Cas | OpOutcome::Noop) => Self::Swapped,
            Err(mismatch) => Self::CasFailed {
                actual: mismatch.actual,
            },
        }
    }
}

/// Why a replica refused a request
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DbFailure {
    /// This replica does not lead; `leader` is the one it follows, if known
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader it knows of
        leader: Option<u64>,
    },
    /// The replica lost leadership while the write was in flight: it may or may not be
    /// applied by the new leader
    #[error("leadership lost with the write in flight; it may or may not have been applied")]
    LeadershipLost,
    /// The replica had not applied `wanted` within the wait
    #[error("replica has applied up to {applied}, {wanted} was asked for")]
    Lagging {
        /// What it had applied
        applied: u64,
        /// What the read asked for
        wanted: u64,
    },
    /// A key or value over the database's limits; nothing was written
    #[error(transparent)]
    TooLarge(#[from] SizeError),
    /// The replica's file failed (a full disk, a failing device): the request may or may not
    /// have taken effect, and the replica refuses changes, still serving reads, until its file
    /// reopens (tried with a growing pause). The typed error, with its cause, is in the
    /// replica's log.
    #[error("replica storage failed: {0}")]
    Storage(StoreFault),
    /// A promotion could not pick a follower without risking acknowledged writes, or could
    /// not reach it
    #[error("promotion failed: {0}")]
    Promotion(String),
    /// A promotion's fence refused: the replica is at `epoch` already, following its leader
    /// or fenced at it by another coordinator (`by`)
    #[error("fence refused: at epoch {epoch}, fenced by {by:?}")]
    Fenced {
        /// The replica's epoch
        epoch: u64,
        /// The coordinator that fenced it at that epoch, if one did
        by: Option<u64>,
    },
    /// A replication message that breaks the protocol
    #[error("malformed replication message: {0}")]
    Malformed(String),
    /// Too many writes are waiting for acknowledgement, or reads waiting to catch up; back off
    /// and retry
    #[error("too many requests waiting ({0})")]
    Overloaded(usize),
    /// This replication mode does not do that (membership changes need Raft mode)
    #[error("not supported: {0}")]
    NotSupported(String),
    /// The replica cannot answer safely now: it is starting, or (Raft mode) no majority
    /// confirmed it within its deadline — a side cut off from the majority refuses rather than
    /// answering stale or acknowledging what may be lost. A write refused so may still commit
    /// later; another replica may answer.
    #[error("unavailable: {0}")]
    Unavailable(String),
}
