//! [`DbMsg`] and [`DbReply`]: what a replica actor handles and answers
//!
//! Clients normally use [`DbClient`](crate::DbClient), which builds these; the replication
//! messages (`Append`, `Snapshot`, `Fence`, `BecomeLeader`) travel between replicas.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use troupe_runtime::Message;
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

/// What a replica actor handles
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DbMsg {
    /// Read one key → [`DbReply::Value`]
    Get {
        /// The key
        key: Bytes,
        /// Which replicas may answer
        read: ReadAt,
    },
    /// Keys starting with `prefix`, in key order, at most `limit` → [`DbReply::Entries`]
    Scan {
        /// The prefix (empty: every key)
        prefix: Bytes,
        /// Most entries returned
        limit: u32,
        /// Which replicas may answer
        read: ReadAt,
    },
    /// A write, to the leader → [`DbReply::Written`] once acknowledged by the database's
    /// acknowledgement mode, or [`DbFailure::NotLeader`]
    Write(WriteOp),
    /// → [`DbReply::Status`]
    Status,
    /// Manual failover: treat the current leader as lost, fence every reachable replica and
    /// promote the most up-to-date follower → [`DbReply::Promoted`]
    Promote,
    /// Replication, leader to follower → [`DbReply::Appended`]
    Append {
        /// The sending leader's replica id
        leader: u64,
        /// The entries
        req: AppendEntries,
    },
    /// Catch-up by snapshot, leader to follower → [`DbReply::Appended`]
    Snapshot {
        /// The sending leader's replica id
        leader: u64,
        /// The snapshot
        req: InstallSnapshot,
    },
    /// Promotion, step 1: refuse leaders older than `epoch` from now on → [`DbReply::Fenced`]
    Fence {
        /// The new epoch
        epoch: u64,
    },
    /// Promotion, step 2: lead at `epoch` → [`DbReply::Done`]
    BecomeLeader {
        /// The epoch to lead
        epoch: u64,
    },
    /// Internal: persist and replicate what was proposed since the last flush
    Flush,
    /// Internal: heartbeats, read-wait expiry, automatic promotion checks
    Tick,
    /// Internal: the answer a follower gave to an append or snapshot
    Replicated {
        /// The follower
        from: u64,
        /// Its answer, or why the call failed
        reply: Result<AppendReply, String>,
    },
    /// Internal: a node went down (`true`) or came back (`false`)
    NodeChanged {
        /// The node
        node: String,
        /// Whether it is down
        down: bool,
    },
    /// Internal: peers' answers to the startup check of a replica that led before
    Resume {
        /// Statuses of the peers that answered
        peers: Vec<ReplicaStatus>,
    },
    /// Internal: a promotion this replica ran has finished
    PromotionDone,
}

/// A replica's role
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Accepts writes
    Leader,
    /// Follows a leader
    Follower,
}

/// What [`DbMsg::Status`] reports
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
}

/// What a write did, as [`DbReply::Written`] carries it
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
    /// The replica's file failed; it restarts from what is on disk. The typed error, with its
    /// cause, is in the replica's log.
    #[error("replica storage failed: {0}")]
    Storage(StoreFault),
    /// A promotion could not pick a follower without risking acknowledged writes, or could
    /// not reach it
    #[error("promotion failed: {0}")]
    Promotion(String),
    /// A replication message that breaks the protocol
    #[error("malformed replication message: {0}")]
    Malformed(String),
    /// Too many writes are waiting for acknowledgement, or reads waiting to catch up; back off
    /// and retry
    #[error("too many requests waiting ({0})")]
    Overloaded(usize),
}

/// What a replica actor answers
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DbReply {
    /// The value of a key (`None`: absent) and the replica's applied index at the read
    Value {
        /// The value
        value: Option<Bytes>,
        /// The applied index the read saw
        index: u64,
    },
    /// The entries of a scan, in key order, and the replica's applied index at the read
    Entries {
        /// Key-value pairs
        entries: Vec<(Bytes, Bytes)>,
        /// The applied index the read saw
        index: u64,
    },
    /// A write was acknowledged at log index `index`
    Written {
        /// Its log index
        index: u64,
        /// What it did
        outcome: WriteOutcome,
    },
    /// A replica's status
    Status(ReplicaStatus),
    /// A follower's answer to [`DbMsg::Append`] or [`DbMsg::Snapshot`]
    Appended(AppendReply),
    /// A replica fenced at the asked epoch, and its standing for promotion
    Fenced(Candidate),
    /// A promotion made `leader` the leader at `epoch`
    Promoted {
        /// The new leader
        leader: u64,
        /// Its epoch
        epoch: u64,
    },
    /// Done
    Done,
    /// Refused
    Error(DbFailure),
}

impl Message for DbMsg {
    const NAME: &'static str = "troupe.db.Replica";
    type Reply = DbReply;
}
