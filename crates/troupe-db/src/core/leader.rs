//! The leader's bookkeeping: follower progress, acknowledgement counting, pending writes

use std::collections::{BTreeMap, VecDeque};

use super::follower::{AppendEntries, InstallSnapshot};
use super::log::{Log, NeedSnapshot};
use super::op::{Entry, Op};
use super::state_machine::{Limits, SizeError, StateMachine};
use super::{MAX_ENTRIES_PER_APPEND, ReplicaId, WriteId};

/// How many durable copies a write needs before it is acknowledged, per database
///
/// `n` is the number of replicas, leader included. See the module docs of [`super`] for which
/// acknowledged writes each mode can lose on leader loss.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckMode {
    /// The leader's own durable copy suffices
    LeaderOnly,
    /// `floor(n/2) + 1` durable copies
    Majority,
    /// All `n` replicas
    All,
}

impl AckMode {
    /// Copies needed among `replicas` replicas (leader included)
    pub fn required(self, replicas: usize) -> usize {
        match self {
            Self::LeaderOnly => 1,
            Self::Majority => replicas / 2 + 1,
            Self::All => replicas,
        }
    }
}

/// What the leader knows of one follower's log
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Highest index known to be durable on the follower and to match the leader's log
    pub match_index: u64,
    /// Next index to send
    pub next_index: u64,
}

/// A message named a replica that is not a follower of this leader
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("replica {0:?} is not a follower of this leader")]
pub struct UnknownReplica(pub ReplicaId);

/// Why [`Leader::append_request`] has no append for a follower
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The follower needs entries that were truncated away; send a snapshot
    #[error(transparent)]
    NeedSnapshot(#[from] NeedSnapshot),
    /// Not a follower of this leader
    #[error(transparent)]
    UnknownReplica(#[from] UnknownReplica),
}

/// The leader of one database at one epoch
///
/// # Guarantees
///
/// - [`Leader::commit_index`] never decreases; it is the highest index of this leader's epoch
///   that is durable on [`AckMode::required`] replicas (the leader counts as one through
///   [`Leader::on_local_durable`]), or the commit index it took over if higher.
/// - Each proposed write is reported acknowledged exactly once, in index order, once the commit
///   index reaches it.
/// - A write that breaks [`Limits`] never enters the log.
#[derive(Clone, Debug)]
pub struct Leader {
    epoch: u64,
    log: Log,
    mode: AckMode,
    limits: Limits,
    followers: BTreeMap<ReplicaId, Progress>,
    local_durable: u64,
    commit_index: u64,
    pending: VecDeque<(u64, WriteId)>,
}

impl Leader {
    /// Take over `log` as leader of `epoch`, with `commit_index` known committed
    ///
    /// Appends an [`Op::Noop`] at `epoch` so entries from earlier epochs can commit. The actor
    /// persists the log from [`Leader::local_durable_index`]` + 1` and reports it with
    /// [`Leader::on_local_durable`].
    ///
    /// # Panics
    ///
    /// If `epoch` is not above the log's last epoch, or `commit_index` is past the log.
    pub fn new(
        epoch: u64,
        mut log: Log,
        commit_index: u64,
        followers: impl IntoIterator<Item = ReplicaId>,
        mode: AckMode,
        limits: Limits,
    ) -> Self {
        assert!(epoch > log.last_epoch(), "leader epoch must be new");
        assert!(commit_index <= log.last_index(), "commit past the log");
        let durable = log.last_index();
        log.append([Entry {
            index: durable + 1,
            epoch,
            op: Op::Noop,
        }])
        .expect("the no-op continues the log");
        let next_index = log.last_index();
        let followers = followers
            .into_iter()
            .map(|id| {
                let progress = Progress {
                    match_index: 0,
                    next_index,
                };
                (id, progress)
            })
            .collect();
        Self {
            epoch,
            log,
            mode,
            limits,
            followers,
            local_durable: durable,
            commit_index,
            pending: VecDeque::new(),
        }
    }

    /// This leader's epoch
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The acknowledgement mode
    pub fn mode(&self) -> AckMode {
        self.mode
    }

    /// The log
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Highest index known committed (see the type's guarantees)
    pub fn commit_index(&self) -> u64 {
        self.commit_index
    }

    /// Highest index durable on the leader itself
    pub fn local_durable_index(&self) -> u64 {
        self.local_durable
    }

    /// Progress of `follower`, if it is one
    pub fn progress(&self, follower: ReplicaId) -> Option<Progress> {
        self.followers.get(&follower).copied()
    }

    /// Number of writes proposed and not yet acknowledged
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Append a client write to the log; the returned entry's index is the write's log index
    ///
    /// `Ok` only means the entry is in the in-memory log; the write is acknowledged later, when
    /// an `on_*` call returns its `write`.
    ///
    /// # Errors
    ///
    /// [`SizeError`] if the key or a value breaks the limits; the log is unchanged.
    pub fn propose(&mut self, write: WriteId, op: Op) -> Result<Entry, SizeError> {
        self.limits.check(&op)?;
        let entry = Entry {
            index: self.log.last_index() + 1,
            epoch: self.epoch,
            op,
        };
        self.log
            .append([entry.clone()])
            .expect("the leader's own entry continues its log");
        self.pending.push_back((entry.index, write));
        Ok(entry)
    }

    /// The leader made its log durable up to `index`; returns writes now acknowledged
    pub fn on_local_durable(&mut self, index: u64) -> Vec<WriteId> {
        let index = index.min(self.log.last_index());
        self.local_durable = self.local_durable.max(index);
        self.advance_commit()
    }

    /// The next message for `follower`: up to [`MAX_ENTRIES_PER_APPEND`] entries from its
    /// next index (empty: a heartbeat carrying the commit index)
    ///
    /// # Errors
    ///
    /// - [`RequestError::NeedSnapshot`] if the follower's next entry was truncated away (or it
    ///   diverged): send [`Leader::snapshot_request`] instead.
    /// - [`RequestError::UnknownReplica`] if `follower` is not a follower.
    pub fn append_request(&self, follower: ReplicaId) -> Result<AppendEntries, RequestError> {
        let progress = self
            .followers
            .get(&follower)
            .ok_or(UnknownReplica(follower))?;
        let entries = self
            .log
            .entries_from(progress.next_index, MAX_ENTRIES_PER_APPEND)?;
        let prev_index = progress.next_index - 1;
        let prev_epoch = self
            .log
            .epoch_at(prev_index)
            .expect("prev is at or above the base");
        Ok(AppendEntries {
            leader_epoch: self.epoch,
            prev_index,
            prev_epoch,
            entries,
            leader_commit: self.commit_index,
        })
    }

    /// An [`InstallSnapshot`] carrying `state` (the leader's state machine, which must have
    /// applied at least up to the log's base)
    ///
    /// # Panics
    ///
    /// If `state` has not applied up to the log's base, or applied past the commit index.
    pub fn snapshot_request(&self, state: &StateMachine) -> InstallSnapshot {
        assert!(
            state.applied_index() >= self.log.base().0,
            "snapshot behind the log"
        );
        assert!(
            state.applied_index() <= self.commit_index,
            "snapshot of uncommitted state"
        );
        InstallSnapshot {
            leader_epoch: self.epoch,
            last_included_index: state.applied_index(),
            last_included_epoch: state.applied_epoch(),
            state: state.map().clone(),
        }
    }

    /// `follower` holds a durable log matching ours up to `match_index`; returns writes now
    /// acknowledged
    ///
    /// Stale or duplicate acks are harmless: progress only moves forward.
    ///
    /// # Errors
    ///
    /// [`UnknownReplica`] if `follower` is not a follower.
    pub fn on_ack(
        &mut self,
        follower: ReplicaId,
        match_index: u64,
    ) -> Result<Vec<WriteId>, UnknownReplica> {
        let last = self.log.last_index();
        let progress = self
            .followers
            .get_mut(&follower)
            .ok_or(UnknownReplica(follower))?;
        // A peer claiming more than we hold is buggy; never count what we did not send.
        let match_index = match_index.min(last);
        progress.match_index = progress.match_index.max(match_index);
        progress.next_index = progress.next_index.max(progress.match_index + 1);
        Ok(self.advance_commit())
    }

    /// `follower` refused an append; `hint_last_index` is the last index where it may still
    /// match. Backs `next_index` off (never below `match_index + 1`)
    ///
    /// # Errors
    ///
    /// [`UnknownReplica`] if `follower` is not a follower.
    pub fn on_reject(
        &mut self,
        follower: ReplicaId,
        hint_last_index: u64,
    ) -> Result<(), UnknownReplica> {
        let progress = self
            .followers
            .get_mut(&follower)
            .ok_or(UnknownReplica(follower))?;
        let backed = progress
            .next_index
            .saturating_sub(1)
            .min(hint_last_index.saturating_add(1));
        progress.next_index = backed.max(progress.match_index + 1).max(1);
        Ok(())
    }

    /// `follower` reported it applied entries this leader's log lacks; it must be re-seeded by
    /// a snapshot, so restart its progress from scratch
    ///
    /// # Errors
    ///
    /// [`UnknownReplica`] if `follower` is not a follower.
    pub fn on_diverged(&mut self, follower: ReplicaId) -> Result<(), UnknownReplica> {
        let progress = self
            .followers
            .get_mut(&follower)
            .ok_or(UnknownReplica(follower))?;
        *progress = Progress {
            match_index: 0,
            next_index: 0,
        };
        Ok(())
    }

    /// Give up leadership: the log, for the follower this replica becomes
    pub fn into_log(self) -> Log {
        self.log
    }

    /// Drop log entries up to `upto`, after a snapshot covers them
    ///
    /// # Panics
    ///
    /// If `upto` is past the commit index.
    pub fn compact(&mut self, upto: u64) {
        assert!(upto <= self.commit_index, "compact past the commit index");
        self.log.truncate_prefix(upto);
    }

    fn advance_commit(&mut self) -> Vec<WriteId> {
        let mut matches: Vec<u64> = self.followers.values().map(|p| p.match_index).collect();
        matches.push(self.local_durable);
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let k = self.mode.required(matches.len());
        assert!(k >= 1);
        assert!(k <= matches.len());
        let candidate = matches[k - 1];
        // Only entries of our own epoch commit by counting (Raft §5.4.2): an older entry on a
        // majority can still be overwritten by a replica promoted with a newer last epoch.
        if candidate > self.commit_index && self.log.epoch_at(candidate) == Some(self.epoch) {
            self.commit_index = candidate;
        }
        let mut acked = Vec::new();
        while let Some(&(index, write)) = self.pending.front() {
            if index > self.commit_index {
                break;
            }
            self.pending.pop_front();
            acked.push(write);
        }
        acked
    }
}
