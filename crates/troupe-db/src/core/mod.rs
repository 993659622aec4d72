//! Replication rules as plain types: log, apply order, acknowledgement counting, promotion
//!
//! Nothing here does I/O. The replica actor feeds inputs (`handle_*`, `on_*`) and sends what
//! the calls return. Epochs (leader terms) are explicit in every message and log entry so that
//! a consensus mode (Raft) can reuse [`Log`], [`Entry`], [`StateMachine`] and the
//! [`AppendEntries`] / [`InstallSnapshot`] messages behind the same client API.
//!
//! # Protocol
//!
//! 1. The [`Leader`] validates a write against [`Limits`] and appends it to its [`Log`] at its
//!    epoch ([`Leader::propose`]); the actor makes it durable, then calls
//!    [`Leader::on_local_durable`].
//! 2. The leader sends each follower [`Leader::append_request`]; a follower that is too far
//!    behind (its next entry was truncated away) gets an [`InstallSnapshot`] instead.
//! 3. The [`Follower`] checks epoch and the previous entry, truncates a conflicting suffix,
//!    appends, and (after the actor made the entries durable) replies with the index it now
//!    matches the leader up to. It applies entries up to the leader's commit index, in order.
//! 4. The leader counts durable replicas per index ([`AckMode`]) and acknowledges the pending
//!    writes whose index is now committed ([`Leader::on_ack`]).
//! 5. On leader loss, [`promote`] picks the most up-to-date follower among those reachable and
//!    gives it epoch `old + 1`; [`Follower::into_leader`] turns it into a [`Leader`].
//!
//! A new leader first appends an [`Op::Noop`] at its epoch: it only commits by counting
//! entries of its own epoch (Raft §5.4.2), so without that entry, older entries would wait for
//! the next client write before they commit.
//!
//! # Examples
//!
//! ```
//! use bytes::Bytes;
//! use troupe_db::core::{AckMode, AppendReply, Follower, Leader, Limits, Log, Op, ReplicaId, WriteId};
//!
//! let f = ReplicaId(1);
//! let mut leader = Leader::new(1, Log::new(), 0, [f], AckMode::Majority, Limits::default());
//! let mut follower = Follower::new(Limits::default());
//! let put = Op::Put { key: Bytes::from("k"), value: Bytes::from("v") };
//! let entry = leader.propose(WriteId(7), put).unwrap();
//! // Durable on the leader alone: not yet a majority of two.
//! assert!(leader.on_local_durable(entry.index).is_empty());
//! let resp = follower.handle_append(leader.append_request(f).unwrap()).unwrap();
//! let AppendReply::Success { match_index, .. } = resp.reply else { unreachable!() };
//! assert_eq!(leader.on_ack(f, match_index).unwrap(), vec![WriteId(7)]);
//! // The next append carries the commit index; the follower applies.
//! let resp = follower.handle_append(leader.append_request(f).unwrap()).unwrap();
//! assert_eq!(resp.applied.len(), 2); // the leader's no-op, then the put
//! assert_eq!(follower.state().get(b"k"), Some(&Bytes::from("v")));
//! ```
//!
//! # Durability on leader loss
//!
//! "Acknowledged" means the client got `Ok` with the write's log index. When the leader's node
//! is lost and a follower is promoted:
//!
//! - [`AckMode::LeaderOnly`]: a write is acknowledged once it is durable on the leader alone.
//!   Every acknowledged write that had not yet reached the promoted follower is lost: at most
//!   everything after the promoted follower's last index. Followers holding entries the new
//!   leader lacks are truncated back (or, if they had already applied them, re-seeded from a
//!   snapshot), so the lost writes disappear everywhere. If the old leader's disk survives, its
//!   extra entries are discarded when it rejoins as a follower.
//! - [`AckMode::Majority`]: a write is acknowledged once durable on `floor(n/2) + 1` of the `n`
//!   replicas, leader included. No acknowledged write is lost, provided promotion consults at
//!   least a majority of the replicas and picks the one with the highest
//!   `(last_epoch, last_index)`, which [`promote`] enforces: every majority intersects the set
//!   that holds the write, and the most up-to-date member of that majority holds every
//!   committed entry. Writes that were appended but not yet acknowledged may survive or be lost.
//!   If no majority of replicas is reachable, promotion refuses rather than lose writes.
//! - [`AckMode::All`]: a write is acknowledged once durable on every replica. No acknowledged
//!   write is lost as long as any one follower survives. The cost: one slow or down follower
//!   stops all acknowledgements.
//!
//! In every mode promotion needs a majority of the replicas (fenced at the new epoch): with
//! fewer, two coordinators that cannot reach each other could each promote a leader in the
//! same epoch.
//!
//! In every mode, a write whose client saw a timeout (no answer) may or may not be in the log.

mod follower;
mod leader;
mod log;
mod op;
mod promotion;
mod state_machine;

pub use follower::{
    AppendEntries, AppendReply, AppendResponse, Applied, FenceRefused, Follower, InstallSnapshot,
};
pub use leader::{AckMode, Leader, Progress, RequestError, UnknownReplica};
pub use log::{Log, LogError, NeedSnapshot};
pub use op::{Entry, Op};
pub use promotion::{
    Candidate, LeaderWatch, Promotion, PromotionError, Resume, SILENT_LEADER_FACTOR, lost_leader,
    promote, resume,
};
pub use state_machine::{CasMismatch, Limits, OpOutcome, SizeError, StateMachine};

/// Identity of one replica of a database (leader or follower)
///
/// Stable across restarts of the replica; the actor layer maps it to a node and actor.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ReplicaId(pub u64);

/// Caller-chosen identity of one client write, reported back when the write is acknowledged
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriteId(pub u64);

/// Most entries one `AppendEntries` carries, so one message stays bounded
pub const MAX_ENTRIES_PER_APPEND: usize = 1024;
