//! The follower's rules: accept appends from the current leader, apply in order

use std::collections::BTreeMap;

use bytes::Bytes;

use super::ReplicaId;
use super::leader::{AckMode, Leader};
use super::log::{Log, LogError, check_run};
use super::op::Entry;
use super::promotion::Candidate;
use super::state_machine::{CasMismatch, Limits, OpOutcome, StateMachine};

/// Leader to follower: entries following `(prev_index, prev_epoch)`, and the commit index
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AppendEntries {
    /// Epoch of the sending leader
    pub leader_epoch: u64,
    /// Index of the entry just before `entries` (0: the start of the log)
    pub prev_index: u64,
    /// Epoch of that entry in the leader's log
    pub prev_epoch: u64,
    /// Entries `prev_index + 1 ..`, contiguous; empty for a heartbeat
    pub entries: Vec<Entry>,
    /// The leader's commit index
    pub leader_commit: u64,
}

/// Leader to follower: replace state and log prefix with a snapshot
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct InstallSnapshot {
    /// Epoch of the sending leader
    pub leader_epoch: u64,
    /// Last log index the snapshot covers
    pub last_included_index: u64,
    /// Epoch of that entry
    pub last_included_epoch: u64,
    /// The whole key-value map after applying entries up to `last_included_index`
    pub state: BTreeMap<Bytes, Bytes>,
}

/// Follower to leader: the answer to [`AppendEntries`] or [`InstallSnapshot`]
///
/// Send it only after the entries the follower accepted are durable: the leader counts a
/// `Success` as a durable copy.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum AppendReply {
    /// The follower's log matches the leader's up to `match_index`
    Success {
        /// The follower's epoch (the leader's)
        epoch: u64,
        /// Highest index known to match the leader's log
        match_index: u64,
    },
    /// The sender's epoch is older than one this follower has seen; the sender is no longer
    /// leader and should step down
    StaleEpoch {
        /// The follower's epoch
        epoch: u64,
    },
    /// The entry at `prev_index` is missing or differs; the leader should back up to at most
    /// `last_index + 1` and retry
    Mismatch {
        /// The follower's epoch
        epoch: u64,
        /// Last index at which the follower's log may still match the leader's
        last_index: u64,
    },
    /// The follower applied entries the leader's log does not hold (possible only after an
    /// [`AckMode::LeaderOnly`] failover, or a promotion that skipped the most up-to-date
    /// replica); only a snapshot can repair it
    Diverged {
        /// The follower's epoch
        epoch: u64,
        /// The follower's applied index
        applied_index: u64,
    },
}

/// One entry the follower applied while handling a message
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The entry's index
    pub index: u64,
    /// The entry's epoch
    pub epoch: u64,
    /// What it did
    pub outcome: Result<OpOutcome, CasMismatch>,
}

/// What [`Follower::handle_append`] produced
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct AppendResponse {
    /// The reply for the leader
    pub reply: AppendReply,
    /// Entries applied by this call, in index order (wakes read-your-writes waiters)
    pub applied: Vec<Applied>,
}

/// One follower replica: its epoch, log and state machine
///
/// # Guarantees
///
/// - Entries are applied in index order, each once, only up to the leader's commit index and
///   only once they were verified to match the leader's log (`applied_index` never skips,
///   never repeats, never goes back) — except that [`Follower::handle_snapshot`] replaces the
///   state wholesale.
/// - Messages from an epoch older than the newest seen are refused, and so are messages from
///   the epoch a promotion fenced it at: promotions lead at a newer epoch than they fence, so
///   whoever leads at the fenced epoch (a restarted leader resuming, a coordinator that drew
///   the same epoch) cannot get acknowledgements from a replica fenced against it.
/// - Applied entries are never truncated; a conflict below the applied index is reported as
///   [`AppendReply::Diverged`].
#[derive(Clone, Debug, Default)]
pub struct Follower {
    epoch: u64,
    /// Fenced at `epoch` and no leader of that epoch heard since: its messages are refused
    leaderless: bool,
    /// The coordinator that fenced it at `epoch`, the only one whose fence at that epoch it
    /// takes again
    fenced_by: Option<ReplicaId>,
    log: Log,
    state: StateMachine,
    limits: Limits,
}

/// A fence refused: the replica is at a newer epoch, follows a leader of it, or was fenced at
/// it by another coordinator (`fenced_by`)
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at epoch {epoch}, fenced by {fenced_by:?}")]
pub struct FenceRefused {
    /// The replica's epoch
    pub epoch: u64,
    /// Who fenced it at that epoch, if a coordinator did and no leader was heard since
    pub fenced_by: Option<ReplicaId>,
}

impl Follower {
    /// A fresh replica: empty log and map, epoch 0
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// A replica restored from storage after a restart (following whoever leads `epoch`;
    /// [`Follower::restore_fence`] if it was fenced at it)
    ///
    /// # Panics
    ///
    /// If the state's applied index lies outside `base ..= last_index` of the log.
    pub fn from_parts(epoch: u64, log: Log, state: StateMachine, limits: Limits) -> Self {
        assert!(
            state.applied_index() >= log.base().0,
            "applied below the log base"
        );
        assert!(
            state.applied_index() <= log.last_index(),
            "applied past the log"
        );
        Self {
            epoch,
            leaderless: false,
            fenced_by: None,
            log,
            state,
            limits,
        }
    }

    /// Newest leader epoch seen
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The log
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// The state machine (serves follower reads)
    pub fn state(&self) -> &StateMachine {
        &self.state
    }

    /// Index of the last applied entry
    pub fn applied_index(&self) -> u64 {
        self.state.applied_index()
    }

    /// This replica's standing for promotion
    pub fn candidate(&self, id: ReplicaId) -> Candidate {
        Candidate {
            id,
            epoch: self.epoch,
            last_epoch: self.log.last_epoch(),
            last_index: self.log.last_index(),
        }
    }

    /// Refuse messages from leaders of `epoch` or older from now on (until a leader of a newer
    /// epoch is heard), for the promotion coordinated by `by`
    ///
    /// Promotion fences the replicas it consulted this way, then promotes at a newer epoch, so
    /// a deposed leader that is still running cannot get new writes acknowledged by them, nor
    /// can a leader that took the fenced epoch itself. A replica takes one coordinator's fence
    /// per epoch, as a Raft voter votes once per term: two coordinators fencing at one epoch
    /// cannot both gather a majority, so they cannot both promote a leader at the next.
    /// Returns whether anything changed (`false` for the same coordinator's fence again).
    ///
    /// # Errors
    ///
    /// [`FenceRefused`] for an epoch older than this replica's, the epoch of a leader it
    /// follows, or an epoch another coordinator fenced it at.
    pub fn fence(&mut self, epoch: u64, by: ReplicaId) -> Result<bool, FenceRefused> {
        if epoch > self.epoch {
            self.epoch = epoch;
            self.leaderless = true;
            self.fenced_by = Some(by);
            return Ok(true);
        }
        if epoch == self.epoch && self.leaderless {
            match self.fenced_by {
                Some(fencer) if fencer == by => return Ok(false),
                // fenced with no coordinator named (a leader stepping down): the first
                // coordinator claims it
                None => {
                    self.fenced_by = Some(by);
                    return Ok(true);
                }
                Some(_) => {}
            }
        }
        Err(FenceRefused {
            epoch: self.epoch,
            fenced_by: self.fenced_by.filter(|_| self.leaderless),
        })
    }

    /// Refuse leaders of `epoch` or older, naming no coordinator (a leader that steps down, or
    /// takes a new epoch itself); the first coordinator to fence it at `epoch` claims it.
    /// Returns whether the epoch rose.
    pub fn fence_unclaimed(&mut self, epoch: u64) -> bool {
        let rose = epoch > self.epoch;
        if rose {
            self.epoch = epoch;
            self.leaderless = true;
            self.fenced_by = None;
        }
        rose
    }

    /// After a restart: this replica was fenced at its epoch, by `by` if the file says, and
    /// heard no leader of it since
    pub fn restore_fence(&mut self, by: Option<ReplicaId>) {
        self.leaderless = true;
        self.fenced_by = by;
    }

    /// The coordinator that fenced this replica at its epoch, while no leader of it was heard
    pub fn fenced_by(&self) -> Option<ReplicaId> {
        self.fenced_by.filter(|_| self.leaderless)
    }

    /// Whether it was fenced at its epoch and has heard no leader of it since (what
    /// [`Follower::restore_fence`] restores)
    pub fn is_fenced(&self) -> bool {
        self.leaderless
    }

    /// Follow a leader of `epoch` (newer than or equal to this replica's): for a leader that
    /// steps down on hearing from it
    pub fn follow(&mut self, epoch: u64) {
        if epoch >= self.epoch {
            self.epoch = epoch;
            self.leaderless = false;
        }
    }

    /// Whether a leader of `epoch` is refused: older than the newest seen, or the epoch this
    /// replica was fenced at
    fn refuses(&self, epoch: u64) -> bool {
        epoch < self.epoch || (epoch == self.epoch && self.leaderless)
    }

    /// Whether this replica may lead at `epoch`: newer than its log's, and newer than its own
    /// unless it was only fenced at it (a leader of that epoch may already be running)
    pub fn may_lead_at(&self, epoch: u64) -> bool {
        epoch > self.log.last_epoch()
            && (epoch > self.epoch || (epoch == self.epoch && self.leaderless))
    }

    /// Handle an [`AppendEntries`] from a leader
    ///
    /// The reply's `Success` promises that the log matches the leader's up to `match_index`;
    /// the actor must make the log durable before sending it.
    ///
    /// # Errors
    ///
    /// [`LogError`] if the message is malformed (entries not contiguous from `prev_index + 1`
    /// or with regressing epochs); nothing changed.
    pub fn handle_append(&mut self, req: AppendEntries) -> Result<AppendResponse, LogError> {
        check_run(req.prev_index, req.prev_epoch, &req.entries)?;
        if self.refuses(req.leader_epoch) {
            return Ok(self.reply_only(AppendReply::StaleEpoch { epoch: self.epoch }));
        }
        self.follow(req.leader_epoch);
        let (base, _) = self.log.base();
        let mut prev = req.prev_index;
        let mut entries = req.entries;
        if prev < base {
            // Our snapshot covers the prefix; it holds only committed entries, which every
            // leader's log shares, so those positions match by construction.
            entries.retain(|e| e.index > base);
            prev = base;
        } else if self.log.epoch_at(prev) != Some(req.prev_epoch) {
            if prev <= self.applied_index() {
                return Ok(self.diverged());
            }
            let last_index = self.log.last_index().min(prev - 1);
            return Ok(self.reply_only(AppendReply::Mismatch {
                epoch: self.epoch,
                last_index,
            }));
        }
        let match_index = prev + entries.len() as u64;
        let mut new_from = entries.len();
        for (i, e) in entries.iter().enumerate() {
            match self.log.epoch_at(e.index) {
                Some(epoch) if epoch == e.epoch => continue,
                Some(_) => {
                    if e.index <= self.applied_index() {
                        return Ok(self.diverged());
                    }
                    self.log.truncate_suffix(e.index);
                }
                None => {}
            }
            new_from = i;
            break;
        }
        self.log.append(entries.drain(new_from..))?;
        let commit = req.leader_commit.min(match_index);
        let applied = self.apply_up_to(commit);
        Ok(AppendResponse {
            reply: AppendReply::Success {
                epoch: self.epoch,
                match_index,
            },
            applied,
        })
    }

    /// Handle an [`InstallSnapshot`] from a leader
    ///
    /// If the follower already holds the snapshot's last entry as applied, nothing changes.
    /// Otherwise the state machine is replaced; log entries after the snapshot are kept when the
    /// log holds the snapshot's last entry, else the whole log is dropped.
    pub fn handle_snapshot(&mut self, req: InstallSnapshot) -> AppendReply {
        if self.refuses(req.leader_epoch) {
            return AppendReply::StaleEpoch { epoch: self.epoch };
        }
        self.follow(req.leader_epoch);
        let index = req.last_included_index;
        let (base, _) = self.log.base();
        let holds = self.log.epoch_at(index) == Some(req.last_included_epoch);
        if index <= base || (holds && index <= self.applied_index()) {
            return AppendReply::Success {
                epoch: self.epoch,
                match_index: index,
            };
        }
        self.state = StateMachine::from_snapshot(req.state, index, req.last_included_epoch);
        if holds {
            self.log.truncate_prefix(index);
        } else {
            self.log = Log::with_base(index, req.last_included_epoch);
        }
        assert!(self.log.base().0 == index);
        assert!(self.applied_index() == index);
        AppendReply::Success {
            epoch: self.epoch,
            match_index: index,
        }
    }

    /// Drop log entries up to `upto`, after a snapshot of the state covers them
    ///
    /// # Panics
    ///
    /// If `upto` is past the applied index.
    pub fn compact(&mut self, upto: u64) {
        assert!(
            upto <= self.applied_index(),
            "compact past the applied index"
        );
        self.log.truncate_prefix(upto);
    }

    /// Become leader at `new_epoch` (after [`super::promote`] chose this replica)
    ///
    /// Returns the leader bookkeeping and the state machine the leader serves reads from and
    /// keeps applying committed entries to.
    ///
    /// # Panics
    ///
    /// If `new_epoch` is below an epoch this replica has seen, or not above its last entry's.
    pub fn into_leader(
        self,
        new_epoch: u64,
        followers: impl IntoIterator<Item = ReplicaId>,
        mode: AckMode,
    ) -> (Leader, StateMachine) {
        // Promotion fences the chosen replica at `new_epoch` too, so equal is fine.
        assert!(new_epoch >= self.epoch, "a new leader needs a newer epoch");
        assert!(
            new_epoch > self.log.last_epoch(),
            "a new leader needs a newer epoch"
        );
        let commit = self.applied_index();
        let leader = Leader::new(new_epoch, self.log, commit, followers, mode, self.limits);
        (leader, self.state)
    }

    fn apply_up_to(&mut self, commit: u64) -> Vec<Applied> {
        let mut applied = Vec::new();
        while self.state.applied_index() < commit {
            let entry = self
                .log
                .get(self.state.applied_index() + 1)
                .expect("entries up to a verified commit index are in the log");
            let outcome = self.state.apply_entry(entry);
            applied.push(Applied {
                index: entry.index,
                epoch: entry.epoch,
                outcome,
            });
        }
        applied
    }

    fn reply_only(&self, reply: AppendReply) -> AppendResponse {
        AppendResponse {
            reply,
            applied: Vec::new(),
        }
    }

    fn diverged(&self) -> AppendResponse {
        self.reply_only(AppendReply::Diverged {
            epoch: self.epoch,
            applied_index: self.applied_index(),
        })
    }
}
