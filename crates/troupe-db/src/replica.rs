//! [`DbReplica`]: the supervised actor that runs one replica of a database
//!
//! A thin shell around [`core`](crate::core): it feeds messages to a [`Follower`] or a
//! [`Leader`], writes what changed to its [`ReplicaStore`] before answering, and moves
//! replication messages between replicas with calls that run beside the actor as tasks on its
//! context (their answers come back as [`DbMsg::Replicated`]), so a slow follower never
//! blocks the leader. Its heartbeat is a timer on the context and its watch on the cluster's
//! node events a task there: both end with the instance, so a restarted replica never runs
//! two.
//!
//! # Writes
//!
//! The leader appends each write to its in-memory log and schedules one [`DbMsg::Flush`];
//! writes that arrive before the flush runs share its fsync (group commit). The flush makes
//! the log durable, then sends each follower the entries it lacks (one append in flight per
//! follower; entries that arrive meanwhile ride the next one). A write is answered once its
//! index is committed under the database's [`AckMode`] and applied to
//! the leader's state.
//!
//! # Who leads
//!
//! - A fresh database: replica 0, once a majority of the replicas answer and none is ahead.
//! - After a restart: a replica whose file says it led its newest epoch asks the others; it
//!   leads again (at a new epoch) only if a majority answer and none has seen a newer epoch,
//!   leads, or holds a newer log ([`core::resume`](crate::core::resume)), so a replica that
//!   was replaced while it was down (or paused) follows instead.
//! - On leader loss: when the leader's node has been reported down for
//!   [`DbSpec::promote_after`] (or the leader has been silent for four times that while its
//!   node is up), the lowest-numbered follower on a live node fences the reachable replicas at
//!   a new epoch and promotes the most up-to-date one at the epoch after it
//!   ([`core::promote`](crate::core::promote)); [`DbMsg::Promote`] does the same on demand.
//!   A fenced replica refuses leaders of the fenced epoch and older, and keeps its fence in
//!   its file.
//! - A leader that hears of a newer epoch, or is refused at its own, steps down; writes it had
//!   not acknowledged get [`DbFailure::LeadershipLost`].
//!
//! # A failing file
//!
//! A write to the file that fails (a full disk, a failing device) degrades the replica instead
//! of crashing it into a restart that fails the same way; `docs/db.md` says what it then does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use troupe_runtime::remote::NodeEvent;
use troupe_runtime::time::now;
use troupe_runtime::{Actor, ActorError, Addr, CallError, Ctx, Reply};
use troupe_store::{Degraded, Reopen, StoreError};

use crate::core::{
    AppendReply, Candidate, Follower, Leader, Log, Op, ReplicaId, RequestError, StateMachine,
    WriteId, promote,
};
use crate::msg::{
    DbFailure, DbMsg, DbPeerMsg, Promoted, ReadAt, ReadValue, ReplicaStatus, Role, ScanPage,
    WriteOp, WriteOutcome, Written,
};
use crate::spec::DbSpec;
use crate::storage::{Batch, Flush, ReplicaStore, SnapshotWrite};

/// Time since `then`, on the runtime's clock (see [`now`])
fn elapsed(then: Instant) -> Duration {
    now().saturating_duration_since(then)
}

/// Most entries one scan answers
pub const MAX_SCAN: usize = 10_000;

/// Most reads one replica holds waiting to catch up; more are refused as overloaded
pub const MAX_WAITING_READS: usize = 10_000;

enum State {
    Follower(Follower),
    Leader(Box<Leading>),
    /// Only between taking one role out and putting the next in
    Moving,
}

struct Leading {
    leader: Leader,
    state: StateMachine,
    /// Writes waiting for acknowledgement, by log index
    writes: BTreeMap<u64, Reply<Result<Written, DbFailure>>>,
    /// Followers with an append or snapshot in flight
    in_flight: HashMap<u64, Instant>,
    /// The commit index last sent to each follower
    sent_commit: HashMap<u64, u64>,
    /// The index of this leadership's first entry (its no-op): entries before it were
    /// acknowledged, maybe, by an earlier leader, and are applied here only once it commits,
    /// so reads wait for it (as Raft's leaders commit an entry of their term before reading)
    ready_index: u64,
}

/// What a leader sends a follower that lacks entries
enum Outgoing {
    Append(crate::core::AppendEntries),
    Snapshot(crate::core::InstallSnapshot),
}

/// A read and the port for its answer
enum ReadKind {
    Get {
        key: Bytes,
        reply: Reply<Result<ReadValue, DbFailure>>,
    },
    Scan {
        prefix: Bytes,
        limit: u32,
        reply: Reply<Result<ScanPage, DbFailure>>,
    },
}

impl ReadKind {
    fn fail(self, failure: DbFailure) {
        match self {
            Self::Get { reply, .. } => {
                reply.send(Err(failure));
            }
            Self::Scan { reply, .. } => {
                reply.send(Err(failure));
            }
        }
    }
}

struct WaitingRead {
    kind: ReadKind,
    min_index: u64,
    deadline: Instant,
}

/// One replica of a database; see the [module docs](self). Build it with
/// [`DbSpec::factory`].
pub struct DbReplica {
    spec: Arc<DbSpec>,
    me: u64,
    store: Option<ReplicaStore>,
    state: State,
    /// Every replica's peer name (this one's too), by replica id
    peers: Vec<Addr<DbPeerMsg>>,
    leader_hint: Option<u64>,
    flush_scheduled: bool,
    reads: Vec<WaitingRead>,
    /// Nodes reported down, since when
    down: HashMap<String, Instant>,
    /// When an append from the leader last arrived
    heard_leader: Instant,
    promoting: bool,
    next_promotion: Instant,
    /// This replica led its newest epoch before a restart (or leads a fresh database) and
    /// waits for the peers' answers to decide whether it leads again
    resume: bool,
    resume_asked: Option<Instant>,
    /// Registered when the replica starts
    metrics: Option<ReplicaMetrics>,
    /// Changes not yet written: applied entries, compaction
    dirty: Batch,
    /// The file failed a write (a full disk, a failing device) or could not be opened. The
    /// in-memory state may be ahead of the file, so the replica changes nothing: writes and
    /// the peer protocol's changes (appends, snapshots, fences, leading) are refused with
    /// [`DbFailure::Storage`], a leader stops replicating, and nothing held only in memory
    /// spreads. Reads are served from the state held (none while no file was ever read). On
    /// its tick the replica reopens the file with a growing pause; once that works it is what
    /// the file holds, every acknowledged write included, and rejoins as after a restart.
    degraded: Option<Degraded>,
    /// The file was read at least once: there is state to serve reads from
    loaded: bool,
}

impl DbReplica {
    /// Replica `me` of `spec`; it opens its file in [`Actor::started`]
    pub fn new(spec: Arc<DbSpec>, me: u64) -> Self {
        let limits = spec.limits;
        Self {
            spec,
            me,
            store: None,
            state: State::Follower(Follower::new(limits)),
            peers: Vec::new(),
            leader_hint: None,
            flush_scheduled: false,
            reads: Vec::new(),
            down: HashMap::new(),
            heard_leader: now(),
            promoting: false,
            next_promotion: now(),
            resume: false,
            resume_asked: None,
            metrics: None,
            dirty: Batch::default(),
            degraded: None,
            loaded: false,
        }
    }

    fn n(&self) -> usize {
        self.spec.replicas.len()
    }

    fn applied(&self) -> &StateMachine {
        match &self.state {
            State::Follower(f) => f.state(),
            State::Leader(l) => &l.state,
            State::Moving => unreachable!("role in transition"),
        }
    }

    fn epoch(&self) -> u64 {
        match &self.state {
            State::Follower(f) => f.epoch(),
            State::Leader(l) => l.leader.epoch(),
            State::Moving => unreachable!("role in transition"),
        }
    }

    fn log(&self) -> &Log {
        match &self.state {
            State::Follower(f) => f.log(),
            State::Leader(l) => l.leader.log(),
            State::Moving => unreachable!("role in transition"),
        }
    }

    fn status(&self) -> ReplicaStatus {
        let role = match self.state {
            State::Leader(_) => Role::Leader,
            _ => Role::Follower,
        };
        let log = self.log();
        ReplicaStatus {
            id: self.me,
            role,
            epoch: self.epoch(),
            leader: self.leader_hint,
            last_index: log.last_index(),
            last_epoch: log.last_epoch(),
            applied_index: self.applied().applied_index(),
            base_index: log.base().0,
            storage_fault: self.degraded.as_ref().map(|d| d.fault().clone()),
            voters: (0..self.n() as u64).collect(),
        }
    }

    /// Sets this replica's metrics (see [`ReplicaMetrics`]) from its state now. Every tick, so
    /// a scrape sees them at most one tick old.
    fn publish_metrics(&mut self) {
        let Some(mut m) = self.metrics.take() else {
            return;
        };
        let leading = matches!(self.state, State::Leader(_));
        let log = self.log();
        m.leader.set(if leading { 1.0 } else { 0.0 });
        m.epoch.set(self.epoch() as f64);
        m.last_index.set(log.last_index() as f64);
        m.applied_index.set(self.applied().applied_index() as f64);
        m.degraded
            .set(if self.degraded.is_some() { 1.0 } else { 0.0 });
        if let State::Leader(l) = &self.state {
            // registered at the first tick as leader: a replica that never led exports none
            let leading = m.leading.get_or_insert_with(|| {
                LeadingMetrics::new(&self.spec.name, self.me, self.n() as u64)
            });
            leading.commit_index.set(l.leader.commit_index() as f64);
            for (follower, lag) in &leading.follower_lag {
                if let Some(progress) = l.leader.progress(ReplicaId(*follower)) {
                    lag.set(log.last_index().saturating_sub(progress.match_index) as f64);
                }
            }
        }
        self.metrics = Some(m);
    }

    /// Writes the pending changes; a failure degrades the replica (see its `degraded` field)
    fn commit(&mut self, flush: Flush) -> Result<(), DbFailure> {
        let batch = std::mem::take(&mut self.dirty);
        if let Some(refusal) = self.refusal() {
            // Rebuilt from the file on recovery.
            return Err(refusal);
        }
        if batch.is_empty() {
            return Ok(());
        }
        let result = match self.store.as_mut() {
            Some(store) => store.commit(&batch, flush),
            None => Err(StoreError::corrupt("replica file", "not open")),
        };
        result.map_err(|err| self.degrade(&err))
    }

    /// A write failed: refuse changes, keep serving reads, reopen the file later. Writes
    /// waiting for acknowledgement get the failure; they may or may not have taken effect.
    fn degrade(&mut self, err: &StoreError) -> DbFailure {
        tracing::error!(replica = self.me, cause = %err, "replica storage failed; refusing writes until the file reopens");
        let degraded = Degraded::new(err, now());
        let fault = degraded.fault().clone();
        self.store = None;
        self.dirty = Batch::default();
        self.flush_scheduled = false;
        if let State::Leader(leading) = &mut self.state {
            for (_, reply) in std::mem::take(&mut leading.writes) {
                reply.send(Err(DbFailure::Storage(fault.clone())));
            }
        }
        self.degraded = Some(degraded);
        DbFailure::Storage(fault)
    }

    /// The failure a degraded replica answers changes with
    fn refusal(&self) -> Option<DbFailure> {
        self.degraded
            .as_ref()
            .map(|d| DbFailure::Storage(d.fault().clone()))
    }

    /// Takes what the file holds as this replica's state, as a fresh instance does
    fn load(&mut self, store: ReplicaStore, loaded: crate::storage::Loaded) {
        self.store = Some(store);
        let fresh = loaded.is_fresh();
        let led = loaded.led_epoch != 0 && loaded.led_epoch == loaded.epoch;
        let mut follower =
            Follower::from_parts(loaded.epoch, loaded.log, loaded.state, self.spec.limits);
        if loaded.fenced_epoch != 0 && loaded.fenced_epoch == loaded.epoch {
            follower.restore_fence(loaded.fenced_by.map(ReplicaId));
        }
        self.state = State::Follower(follower);
        self.resume = led || (fresh && self.me == 0);
        self.resume_asked = None;
        self.leader_hint = None;
        self.heard_leader = now();
        self.dirty = Batch::default();
        self.degraded = None;
        self.loaded = true;
    }

    /// While degraded, tries to reopen the file once its pause is over
    fn try_recover(&mut self, ctx: &mut Ctx<DbMsg>) {
        let Some(degraded) = &mut self.degraded else {
            return;
        };
        let now = now();
        if !degraded.reopen_due(now) {
            return;
        }
        match ReplicaStore::open(&self.spec.replica_path(self.me as usize)) {
            Ok((store, loaded)) => {
                self.load(store, loaded);
                tracing::info!(replica = self.me, status = ?self.status(), "replica storage reopened; taking writes again");
                self.serve_reads();
                self.ask_to_resume(ctx);
            }
            Err(err) => {
                tracing::debug!(replica = self.me, cause = %err, "replica storage still failing");
                degraded.reopen_failed(&err, now);
            }
        }
    }

    fn schedule_flush(&mut self, ctx: &Ctx<DbMsg>) {
        if self.flush_scheduled {
            return;
        }
        // A full mailbox: the next tick flushes.
        self.flush_scheduled = ctx.myself().cast(DbMsg::Flush).is_ok();
    }

    /// Answers `kind` from the applied state
    fn answer_read(&self, kind: ReadKind) {
        let state = self.applied();
        let index = state.applied_index();
        match kind {
            ReadKind::Get { key, reply } => {
                reply.send(Ok(ReadValue {
                    value: state.get(&key).cloned(),
                    index,
                }));
            }
            ReadKind::Scan {
                prefix,
                limit,
                reply,
            } => {
                let limit = (limit as usize).min(MAX_SCAN);
                let mut bytes = 0usize;
                let entries = state
                    .scan_prefix(&prefix, limit)
                    .take_while(|(k, v)| {
                        bytes += k.len() + v.len();
                        bytes <= self.spec.max_append_bytes
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                reply.send(Ok(ScanPage { entries, index }));
            }
        }
    }

    fn read(&mut self, kind: ReadKind, read: ReadAt) {
        if !self.loaded
            && let Some(refusal) = self.refusal()
        {
            kind.fail(refusal);
            return;
        }
        match read {
            ReadAt::Leader => {
                let State::Leader(leading) = &self.state else {
                    kind.fail(DbFailure::NotLeader {
                        leader: self.leader_hint,
                    });
                    return;
                };
                let ready = leading.ready_index;
                if leading.state.applied_index() >= ready {
                    self.answer_read(kind);
                } else if self.reads.len() >= MAX_WAITING_READS {
                    kind.fail(DbFailure::Overloaded(self.reads.len()));
                } else {
                    // a new leader: not before every earlier acknowledged write is applied
                    self.reads.push(WaitingRead {
                        kind,
                        min_index: ready,
                        deadline: now() + self.spec.max_read_wait,
                    });
                }
            }
            ReadAt::Replica { min_index, wait_ms } => {
                let applied = self.applied().applied_index();
                if applied >= min_index {
                    self.answer_read(kind);
                } else if wait_ms == 0 {
                    kind.fail(DbFailure::Lagging {
                        applied,
                        wanted: min_index,
                    });
                } else if self.reads.len() >= MAX_WAITING_READS {
                    kind.fail(DbFailure::Overloaded(self.reads.len()));
                } else {
                    let wait = Duration::from_millis(wait_ms).min(self.spec.max_read_wait);
                    self.reads.push(WaitingRead {
                        kind,
                        min_index,
                        deadline: now() + wait,
                    });
                }
            }
        }
    }

    /// Answers waiting reads that can be answered now, or whose wait is over
    fn serve_reads(&mut self) {
        if self.reads.is_empty() {
            return;
        }
        let applied = self.applied().applied_index();
        let now = now();
        let mut keep = Vec::with_capacity(self.reads.len());
        for waiting in std::mem::take(&mut self.reads) {
            if applied >= waiting.min_index {
                self.answer_read(waiting.kind);
            } else if now >= waiting.deadline {
                waiting.kind.fail(DbFailure::Lagging {
                    applied,
                    wanted: waiting.min_index,
                });
            } else {
                keep.push(waiting);
            }
        }
        self.reads = keep;
    }

    fn write(&mut self, op: WriteOp, reply: Reply<Result<Written, DbFailure>>, ctx: &Ctx<DbMsg>) {
        if let Some(refusal) = self.refusal() {
            reply.send(Err(refusal));
            return;
        }
        let State::Leader(leading) = &mut self.state else {
            reply.send(Err(DbFailure::NotLeader {
                leader: self.leader_hint,
            }));
            return;
        };
        if leading.writes.len() >= self.spec.max_pending_writes {
            reply.send(Err(DbFailure::Overloaded(leading.writes.len())));
            return;
        }
        let op = Op::from(op);
        let index = leading.leader.log().last_index() + 1;
        match leading.leader.propose(WriteId(index), op) {
            Ok(entry) => {
                leading.writes.insert(entry.index, reply);
                self.schedule_flush(ctx);
            }
            Err(too_large) => {
                reply.send(Err(DbFailure::TooLarge(too_large)));
            }
        }
    }

    /// Leader: makes the log durable, counts it, replicates
    fn flush(&mut self, ctx: &mut Ctx<DbMsg>) {
        self.flush_scheduled = false;
        let State::Leader(leading) = &mut self.state else {
            return;
        };
        let log = leading.leader.log();
        let last = log.last_index();
        self.dirty
            .stage_log(log, leading.leader.local_durable_index() + 1, last);
        if self.commit(Flush::Durable).is_err() {
            return; // degraded: the writes waiting got the failure
        }
        if let State::Leader(leading) = &mut self.state {
            let _ = leading.leader.on_local_durable(last);
        }
        self.apply_committed();
        self.replicate_all(false, ctx);
    }

    /// Leader: applies entries up to the commit index (and the local durable index) and
    /// answers their writers
    fn apply_committed(&mut self) {
        let State::Leader(leading) = &mut self.state else {
            return;
        };
        let upto = leading
            .leader
            .commit_index()
            .min(leading.leader.local_durable_index());
        let mut applied_any = false;
        while leading.state.applied_index() < upto {
            let index = leading.state.applied_index() + 1;
            let Some(entry) = leading.leader.log().get(index) else {
                break;
            };
            let outcome = leading.state.apply_entry(entry);
            self.dirty.record_apply(&entry.op, outcome.is_ok());
            applied_any = true;
            if let Some(reply) = leading.writes.remove(&index) {
                reply.send(Ok(Written {
                    index,
                    outcome: WriteOutcome::from_apply(outcome),
                }));
            }
        }
        if applied_any {
            self.dirty.applied =
                Some((leading.state.applied_index(), leading.state.applied_epoch()));
            self.maybe_compact();
            self.serve_reads();
        }
    }

    /// Drops log entries far enough behind the applied index
    ///
    /// In steps of a tenth of `log_retain`: deleting the rows is one write transaction inside
    /// this actor, and a step of 10,000 rows stalled every write for hundreds of
    /// milliseconds, while 1,000 rows at a time spread the same work thinly.
    fn maybe_compact(&mut self) {
        let retain = self.spec.log_retain;
        let step = (retain / 10).max(1);
        let (applied, base) = (self.applied().applied_index(), self.log().base().0);
        if applied < base + retain + step {
            return;
        }
        let upto = base + step;
        let new_base = match &mut self.state {
            State::Follower(f) => {
                f.compact(upto);
                f.log().base()
            }
            State::Leader(l) => {
                l.leader.compact(upto);
                l.leader.log().base()
            }
            State::Moving => return,
        };
        self.dirty.log_base = Some(new_base);
    }

    fn replicate_all(&mut self, heartbeat: bool, ctx: &mut Ctx<DbMsg>) {
        for id in 0..self.n() as u64 {
            if id != self.me {
                self.replicate(id, heartbeat, ctx);
            }
        }
    }

    /// Leader: sends `follower` what it lacks (or, with `heartbeat`, an empty append), unless
    /// an append to it is in flight
    fn replicate(&mut self, follower: u64, heartbeat: bool, ctx: &mut Ctx<DbMsg>) {
        let State::Leader(leading) = &mut self.state else {
            return;
        };
        if self.degraded.is_some() {
            return; // what it holds may not be durable here
        }
        if let Some(since) = leading.in_flight.get(&follower) {
            // The call's own timeout ends it; this only guards against a lost answer.
            if elapsed(*since) < self.spec.call_timeout * 2 {
                return;
            }
        }
        let msg = match leading.leader.append_request(ReplicaId(follower)) {
            Ok(mut req) => {
                let sent = leading.sent_commit.get(&follower).copied().unwrap_or(0);
                if req.entries.is_empty() && !heartbeat && sent >= req.leader_commit {
                    return;
                }
                let mut bytes = 0usize;
                let max = self.spec.max_append_bytes;
                let keep = req
                    .entries
                    .iter()
                    .position(|e| {
                        bytes += op_bytes(&e.op);
                        bytes > max
                    })
                    .unwrap_or(req.entries.len())
                    .max(1);
                req.entries.truncate(keep);
                leading.sent_commit.insert(follower, req.leader_commit);
                Outgoing::Append(req)
            }
            Err(RequestError::NeedSnapshot(_)) => {
                Outgoing::Snapshot(leading.leader.snapshot_request(&leading.state))
            }
            Err(RequestError::UnknownReplica(_)) => return,
        };
        let Some(peer) = self.peers.get(follower as usize) else {
            return;
        };
        leading.in_flight.insert(follower, now());
        let (peer, me, timeout) = (peer.clone(), ctx.myself().clone(), self.spec.call_timeout);
        let leader = self.me;
        ctx.spawn(async move {
            let answer = match msg {
                Outgoing::Append(req) => {
                    peer.call(|reply| DbPeerMsg::Append { leader, req, reply }, timeout)
                        .await
                }
                Outgoing::Snapshot(req) => {
                    // one message until the Raft mode's chunked snapshots: its start and its
                    // end are the progress there is to report
                    let (keys, index) = (req.state.len(), req.last_included_index);
                    let bytes: usize = req.state.iter().map(|(k, v)| k.len() + v.len()).sum();
                    tracing::info!(
                        replica = leader,
                        follower,
                        keys,
                        bytes,
                        index,
                        "catching a follower up by snapshot"
                    );
                    let started = now();
                    let answer = peer
                        .call(|reply| DbPeerMsg::Snapshot { leader, req, reply }, timeout)
                        .await;
                    match &answer {
                        Ok(Ok(AppendReply::Success { .. })) => tracing::info!(
                            replica = leader,
                            follower,
                            keys,
                            index,
                            took_ms = elapsed(started).as_millis() as u64,
                            "follower caught up by snapshot"
                        ),
                        _ => tracing::info!(
                            replica = leader,
                            follower,
                            took_ms = elapsed(started).as_millis() as u64,
                            "snapshot not installed; trying again"
                        ),
                    }
                    answer
                }
            };
            // A full mailbox drops it: the append is sent again after `in_flight` times out.
            let _ = me.cast(DbMsg::Replicated {
                from: follower,
                answer,
            });
            Ok(())
        });
    }

    fn on_replicated(
        &mut self,
        from: u64,
        answer: Result<Result<AppendReply, DbFailure>, CallError>,
        ctx: &mut Ctx<DbMsg>,
    ) {
        let my_epoch = self.epoch();
        let State::Leader(leading) = &mut self.state else {
            return;
        };
        leading.in_flight.remove(&from);
        let follower = ReplicaId(from);
        let reply = match answer {
            Ok(Ok(reply)) => reply,
            Ok(Err(failure)) => {
                tracing::debug!(replica = self.me, follower = from, cause = %failure, "append refused");
                // Retried on the next tick.
                return;
            }
            Err(err) => {
                tracing::debug!(replica = self.me, follower = from, cause = %err, "append failed");
                return;
            }
        };
        match reply {
            AppendReply::Success { epoch, .. } | AppendReply::StaleEpoch { epoch }
                if epoch > my_epoch =>
            {
                // A failed write degrades the replica, which still steps down in memory.
                let _ = self.step_down(epoch, None);
                return;
            }
            // An answer to an append of an earlier term of this replica's: its match index
            // says nothing about this term's log.
            AppendReply::Success { epoch, .. }
            | AppendReply::Mismatch { epoch, .. }
            | AppendReply::Diverged { epoch, .. }
                if epoch < my_epoch => {}
            AppendReply::Success { match_index, .. } => {
                let _ = leading.leader.on_ack(follower, match_index);
                self.apply_committed();
            }
            AppendReply::Mismatch { last_index, .. } => {
                let _ = leading.leader.on_reject(follower, last_index);
            }
            AppendReply::Diverged { .. } => {
                let _ = leading.leader.on_diverged(follower);
            }
            // A replica refused this leader's own epoch: a promotion fenced it there, or
            // another leader holds the epoch. Stepping down lets a promotion at a newer epoch
            // settle who leads, rather than leading forever without that replica.
            AppendReply::StaleEpoch { epoch } => {
                let _ = self.step_down(epoch, None);
            }
        }
        self.replicate(from, false, ctx);
    }

    /// Leader → follower at `epoch`: its log made durable first, unacknowledged writes failed
    ///
    /// In memory it always steps down; `Err` if writing that failed (the replica is then
    /// degraded).
    fn step_down(&mut self, epoch: u64, leader: Option<u64>) -> Result<(), DbFailure> {
        let State::Leader(leading) = std::mem::replace(&mut self.state, State::Moving) else {
            unreachable!("step_down of a follower");
        };
        let Leading {
            leader: l,
            state,
            writes,
            ..
        } = *leading;
        tracing::warn!(
            replica = self.me,
            old = l.epoch(),
            new = epoch,
            "stepping down"
        );
        let (old_epoch, durable) = (l.epoch(), l.local_durable_index());
        let log = l.into_log();
        self.dirty.stage_log(&log, durable + 1, log.last_index());
        self.dirty.epoch = Some(epoch);
        self.dirty.led_epoch = Some(0);
        let mut follower = Follower::from_parts(old_epoch, log, state, self.spec.limits);
        match leader {
            // a leader of `epoch` spoke: its message is handled next
            Some(_) => follower.follow(epoch),
            None => {
                follower.fence_unclaimed(epoch);
            }
        }
        self.dirty.fenced_epoch = Some(if follower.is_fenced() { epoch } else { 0 });
        self.dirty.fenced_by = Some(follower.fenced_by().map(|r| r.0));
        self.state = State::Follower(follower);
        self.leader_hint = leader;
        self.heard_leader = now();
        for (_, reply) in writes {
            reply.send(Err(DbFailure::LeadershipLost));
        }
        self.commit(Flush::Durable)
    }

    /// Follower → leader at `epoch`
    ///
    /// `Err` with [`DbFailure::Promotion`] if it may not lead at `epoch`, or
    /// [`DbFailure::Storage`] if the epoch could not be written (it then follows again).
    fn become_leader(&mut self, epoch: u64, ctx: &Ctx<DbMsg>) -> Result<(), DbFailure> {
        if let Some(refusal) = self.refusal() {
            return Err(refusal);
        }
        let State::Follower(f) = &self.state else {
            return Err(DbFailure::Promotion(format!(
                "already leads at epoch {}",
                self.epoch()
            )));
        };
        if !f.may_lead_at(epoch) {
            return Err(DbFailure::Promotion(format!(
                "epoch {epoch} is not newer than this replica's {}",
                f.epoch().max(f.log().last_epoch())
            )));
        }
        let State::Follower(mut f) = std::mem::replace(&mut self.state, State::Moving) else {
            unreachable!("checked above");
        };
        f.fence_unclaimed(epoch);
        let followers = (0..self.n() as u64)
            .filter(|&id| id != self.me)
            .map(ReplicaId);
        let (leader, state) = f.into_leader(epoch, followers, self.spec.mode);
        tracing::info!(replica = self.me, epoch, "leading");
        let ready_index = leader.log().last_index();
        self.state = State::Leader(Box::new(Leading {
            leader,
            state,
            writes: BTreeMap::new(),
            in_flight: HashMap::new(),
            sent_commit: HashMap::new(),
            ready_index,
        }));
        self.leader_hint = Some(self.me);
        self.resume = false;
        self.dirty.epoch = Some(epoch);
        self.dirty.led_epoch = Some(epoch);
        self.dirty.fenced_epoch = Some(0);
        if let Err(failure) = self.commit(Flush::Durable) {
            // Leading at an epoch the file does not hold could let it lead twice after a restart.
            let _ = self.step_down(epoch, None);
            return Err(failure);
        }
        // The new leader's no-op.
        self.schedule_flush(ctx);
        Ok(())
    }

    /// A replication message from `leader` at `epoch` reached this replica: if it leads, it
    /// steps down when `epoch` is newer, and otherwise refuses the message (the answer to send)
    fn yield_to(&mut self, leader: u64, epoch: u64) -> Result<Option<AppendReply>, DbFailure> {
        if !matches!(self.state, State::Leader(_)) {
            return Ok(None);
        }
        if epoch > self.epoch() {
            self.step_down(epoch, Some(leader))?;
            return Ok(None);
        }
        Ok(Some(AppendReply::StaleEpoch {
            epoch: self.epoch(),
        }))
    }

    fn on_append(
        &mut self,
        leader: u64,
        req: crate::core::AppendEntries,
    ) -> Result<AppendReply, DbFailure> {
        if let Some(refusal) = self.yield_to(leader, req.leader_epoch)? {
            return Ok(refusal);
        }
        if let Some(refusal) = self.refusal() {
            return Err(refusal);
        }
        let State::Follower(f) = &mut self.state else {
            unreachable!("a leader stepped down above");
        };
        let epoch_before = f.epoch();
        let fenced_before = f.is_fenced();
        let first = req.prev_index.saturating_add(1);
        let resp = match f.handle_append(req) {
            Ok(resp) => resp,
            Err(err) => return Err(DbFailure::Malformed(err.to_string())),
        };
        if !matches!(resp.reply, AppendReply::StaleEpoch { .. }) {
            // a leader of this replica's epoch is alive, even if its log does not match yet:
            // resuming would only depose it
            self.resume = false;
        }
        if let AppendReply::Success { match_index, .. } = resp.reply {
            tracing::debug!(
                replica = self.me,
                leader,
                epoch = f.epoch(),
                match_index,
                "appended"
            );
            let log = f.log();
            self.dirty
                .stage_log(log, first.max(log.base().0 + 1), match_index);
            self.leader_hint = Some(leader);
            self.heard_leader = now();
            self.resume = false;
        }
        if f.epoch() != epoch_before {
            self.dirty.epoch = Some(f.epoch());
        }
        if fenced_before && !f.is_fenced() {
            self.dirty.fenced_epoch = Some(0);
        }
        for applied in &resp.applied {
            if let Some(entry) = f.log().get(applied.index) {
                self.dirty.record_apply(&entry.op, applied.outcome.is_ok());
            }
        }
        if !resp.applied.is_empty() {
            self.dirty.applied = Some((f.state().applied_index(), f.state().applied_epoch()));
            self.maybe_compact();
        }
        let durable = !self.dirty.log.is_empty() || self.dirty.epoch.is_some();
        self.commit(if durable { Flush::Durable } else { Flush::Lazy })?;
        self.serve_reads();
        Ok(resp.reply)
    }

    fn on_snapshot(
        &mut self,
        leader: u64,
        req: crate::core::InstallSnapshot,
    ) -> Result<AppendReply, DbFailure> {
        if let Some(refusal) = self.yield_to(leader, req.leader_epoch)? {
            return Ok(refusal);
        }
        if let Some(refusal) = self.refusal() {
            return Err(refusal);
        }
        let State::Follower(f) = &mut self.state else {
            unreachable!("a leader stepped down above");
        };
        let before = (f.epoch(), f.applied_index(), f.log().base());
        let fenced_before = f.is_fenced();
        let reply = f.handle_snapshot(req);
        if f.epoch() != before.0 {
            self.dirty.epoch = Some(f.epoch());
        }
        if fenced_before && !f.is_fenced() {
            self.dirty.fenced_epoch = Some(0);
        }
        if (f.applied_index(), f.log().base()) != (before.1, before.2) {
            tracing::info!(
                replica = self.me,
                index = f.applied_index(),
                "installed a snapshot"
            );
            // The snapshot replaces whatever applies were pending.
            self.dirty.kv.clear();
            self.dirty.snapshot = Some(SnapshotWrite {
                map: f.state().map().clone(),
            });
            self.dirty.applied = Some((f.state().applied_index(), f.state().applied_epoch()));
            self.dirty.log_base = Some(f.log().base());
            self.dirty.log_last = Some(f.log().last_index());
        }
        if matches!(reply, AppendReply::Success { .. }) {
            self.leader_hint = Some(leader);
            self.heard_leader = now();
            self.resume = false;
        }
        self.commit(Flush::Durable)?;
        self.serve_reads();
        Ok(reply)
    }

    /// `Err` with [`DbFailure::Storage`] if the fence could not be written: the replica is
    /// then no candidate (a leader still steps down in memory)
    fn on_fence(&mut self, epoch: u64, by: u64) -> Result<Candidate, DbFailure> {
        if let State::Leader(_) = &self.state {
            if epoch > self.epoch() {
                self.step_down(epoch, None)?;
            } else {
                return Err(DbFailure::Promotion(format!(
                    "replica {} leads at epoch {}",
                    self.me,
                    self.epoch()
                )));
            }
        }
        if let Some(refusal) = self.refusal() {
            return Err(refusal);
        }
        let State::Follower(f) = &mut self.state else {
            unreachable!("a leader stepped down above");
        };
        self.resume = false;
        match f.fence(epoch, ReplicaId(by)) {
            Ok(true) => {
                self.dirty.epoch = Some(epoch);
                self.dirty.fenced_epoch = Some(epoch);
                self.dirty.fenced_by = Some(Some(by));
                self.commit(Flush::Durable)?;
            }
            Ok(false) => {}
            Err(refused) => {
                tracing::debug!(replica = self.me, epoch, coordinator = by, %refused, "fence refused");
                return Err(DbFailure::Fenced {
                    epoch: refused.epoch,
                    by: refused.fenced_by.map(|r| r.0),
                });
            }
        }
        let State::Follower(f) = &self.state else {
            unreachable!("still a follower");
        };
        let candidate = f.candidate(ReplicaId(self.me));
        tracing::debug!(replica = self.me, epoch, ?candidate, "fenced");
        Ok(candidate)
    }

    /// Runs a promotion beside the actor: fences the replicas, promotes the best one
    fn start_promotion(
        &mut self,
        old_leader: Option<u64>,
        reply: Option<Reply<Result<Promoted, DbFailure>>>,
        ctx: &mut Ctx<DbMsg>,
    ) {
        let me = ctx.myself().clone();
        self.promoting = true;
        let peers = self.peers.clone();
        let known = self.epoch();
        let (timeout, me_id) = (self.spec.call_timeout, self.me);
        tracing::warn!(replica = self.me, ?old_leader, "promoting a follower");
        metrics::counter!("troupe_db_promotions_total", "db" => self.spec.name.to_string())
            .increment(1);
        ctx.spawn(async move {
            let result = run_promotion(&peers, me_id, old_leader, known, timeout).await;
            match &result {
                Ok(promoted) => {
                    tracing::warn!(leader = promoted.leader, epoch = promoted.epoch, "promoted");
                }
                Err(why) => tracing::warn!(%why, "promotion failed"),
            }
            if let Some(reply) = reply {
                reply.send(result.map_err(DbFailure::Promotion));
            }
            let _ = me.cast(DbMsg::PromotionDone);
            Ok(())
        });
    }

    /// Follower: promote a new leader if the leader is lost and this replica coordinates (the
    /// rule is `core::lost_leader`)
    fn check_promotion(&mut self, ctx: &mut Ctx<DbMsg>) {
        let Some(delay) = self.spec.promote_after else {
            return;
        };
        let now = now();
        if self.promoting || now < self.next_promotion {
            return;
        }
        if !matches!(self.state, State::Follower(_)) || self.resume {
            return;
        }
        let down_since = |id: ReplicaId| {
            self.spec
                .replicas
                .get(id.0 as usize)
                .and_then(|node| self.down.get(node).copied())
        };
        let watch = crate::core::LeaderWatch {
            me: ReplicaId(self.me),
            replicas: self.n(),
            leader: self.leader_hint.map(ReplicaId),
            heard_leader: self.heard_leader,
            down_since: &down_since,
            delay,
        };
        if let Some(leader) = crate::core::lost_leader(&watch, now) {
            self.next_promotion = now + delay;
            self.start_promotion(leader.map(|l| l.0), None, ctx);
        }
    }

    /// Asks the peers whether this replica may lead (see the module docs, "Who leads")
    fn ask_to_resume(&mut self, ctx: &mut Ctx<DbMsg>) {
        if !self.resume {
            return;
        }
        if let Some(asked) = self.resume_asked
            && elapsed(asked) < self.spec.call_timeout
        {
            return;
        }
        let me = ctx.myself().clone();
        self.resume_asked = Some(now());
        let peers: Vec<Addr<DbPeerMsg>> = self
            .peers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as u64 != self.me)
            .map(|(_, a)| a.clone())
            .collect();
        let timeout = self.spec.call_timeout.min(Duration::from_millis(500));
        ctx.spawn(async move {
            let statuses = statuses(&peers, timeout).await;
            let _ = me.cast(DbMsg::Resume { peers: statuses });
            Ok(())
        });
    }

    fn on_resume(&mut self, peers: Vec<ReplicaStatus>, ctx: &Ctx<DbMsg>) {
        self.resume_asked = None;
        if !self.resume || !matches!(self.state, State::Follower(_)) || self.degraded.is_some() {
            return;
        }
        let me = Candidate {
            id: ReplicaId(self.me),
            epoch: self.epoch(),
            last_epoch: self.log().last_epoch(),
            last_index: self.log().last_index(),
        };
        let answers: Vec<(Candidate, bool)> = peers
            .iter()
            .map(|p| {
                let candidate = Candidate {
                    id: ReplicaId(p.id),
                    epoch: p.epoch,
                    last_epoch: p.last_epoch,
                    last_index: p.last_index,
                };
                (candidate, p.role == Role::Leader)
            })
            .collect();
        match crate::core::resume(self.n(), me, &answers) {
            crate::core::Resume::Follow { ahead, leading } => {
                tracing::info!(
                    replica = self.me,
                    peer = ahead.0,
                    leading,
                    "a peer is ahead; following"
                );
                self.resume = false;
                if leading {
                    self.leader_hint = Some(ahead.0);
                }
            }
            // asked again on a later tick
            crate::core::Resume::Wait { .. } => {}
            crate::core::Resume::Lead { epoch } => {
                if let Err(why) = self.become_leader(epoch, ctx) {
                    tracing::warn!(replica = self.me, %why, "could not resume leading");
                }
            }
        }
    }

    fn tick(&mut self, ctx: &mut Ctx<DbMsg>) {
        self.publish_metrics();
        self.serve_reads();
        if self.degraded.is_some() {
            self.try_recover(ctx);
            return;
        }
        match &self.state {
            State::Leader(_) => {
                if !self.flush_scheduled
                    && let State::Leader(l) = &self.state
                    && l.leader.local_durable_index() < l.leader.log().last_index()
                {
                    self.schedule_flush(ctx);
                }
                self.replicate_all(true, ctx);
            }
            State::Follower(_) => {
                self.ask_to_resume(ctx);
                self.check_promotion(ctx);
            }
            State::Moving => {}
        }
    }
}

fn op_bytes(op: &Op) -> usize {
    32 + match op {
        Op::Put { key, value } => key.len() + value.len(),
        Op::Delete { key } => key.len(),
        Op::Cas { key, expected, new } => {
            key.len() + expected.as_ref().map_or(0, Bytes::len) + new.as_ref().map_or(0, Bytes::len)
        }
        Op::Noop => 0,
    }
}

/// Asks every replica for its status, concurrently; `(id, status)` of those that answered
async fn statuses(peers: &[Addr<DbPeerMsg>], timeout: Duration) -> Vec<ReplicaStatus> {
    let mut asks = JoinSet::new();
    for peer in peers {
        let peer = peer.clone();
        asks.spawn(async move { peer.call(DbPeerMsg::Status, timeout).await });
    }
    let mut out = Vec::new();
    while let Some(answer) = asks.join_next().await {
        if let Ok(Ok(status)) = answer {
            out.push(status);
        }
    }
    out
}

/// Promotes the most up-to-date reachable follower other than `old_leader`; returns the new
/// leader and its epoch
///
/// First a dry run on the replicas' statuses: if another replica leads, or fewer than a
/// majority are reachable, nothing is changed (a failed promotion must not leave replicas
/// fenced against a leader that is still working). Then every replica is fenced at a new
/// epoch in the name of `coordinator` (a replica fenced at that epoch by another coordinator
/// refuses, and is no candidate), the decision is taken again on the fenced standings, and
/// the winner is told to lead at the epoch after the fence.
async fn run_promotion(
    peers: &[Addr<DbPeerMsg>],
    coordinator: u64,
    old_leader: Option<u64>,
    known_epoch: u64,
    timeout: Duration,
) -> Result<Promoted, String> {
    let seen = statuses(peers, timeout).await;
    if let Some(leader) = seen
        .iter()
        .find(|s| s.role == Role::Leader && Some(s.id) != old_leader)
    {
        return Err(format!(
            "replica {} leads at epoch {}",
            leader.id, leader.epoch
        ));
    }
    let standing = |s: &ReplicaStatus| Candidate {
        id: ReplicaId(s.id),
        epoch: s.epoch,
        last_epoch: s.last_epoch,
        last_index: s.last_index,
    };
    let dry: Vec<Candidate> = seen
        .iter()
        .filter(|s| Some(s.id) != old_leader)
        .map(standing)
        .collect();
    promote(peers.len(), known_epoch, &dry).map_err(|e| e.to_string())?;
    let newest = seen
        .iter()
        .map(|s| s.epoch.max(s.last_epoch))
        .chain([known_epoch])
        .max()
        .unwrap_or(0);
    let fence_epoch = newest.saturating_add(1);
    let mut fences = JoinSet::new();
    for (id, peer) in peers.iter().enumerate() {
        let peer = peer.clone();
        fences.spawn(async move {
            (
                id as u64,
                peer.call(
                    |reply| DbPeerMsg::Fence {
                        epoch: fence_epoch,
                        by: coordinator,
                        reply,
                    },
                    timeout,
                )
                .await,
            )
        });
    }
    let mut candidates: Vec<Candidate> = Vec::new();
    while let Some(joined) = fences.join_next().await {
        let Ok((id, answer)) = joined else { continue };
        match answer {
            Ok(Ok(candidate)) if Some(id) != old_leader => candidates.push(candidate),
            Ok(Err(DbFailure::Promotion(why))) => return Err(why),
            _ => {}
        }
    }
    let promotion = promote(peers.len(), newest, &candidates).map_err(|e| e.to_string())?;
    let leader = promotion.leader.0;
    let Some(addr) = peers.get(leader as usize) else {
        return Err(format!("no replica {leader}"));
    };
    let epoch = promotion.epoch;
    match addr
        .call(|reply| DbPeerMsg::BecomeLeader { epoch, reply }, timeout)
        .await
    {
        Ok(Ok(())) => Ok(Promoted { leader, epoch }),
        Ok(Err(DbFailure::Promotion(why))) => Err(why),
        Ok(Err(err)) => Err(err.to_string()),
        Err(err) => Err(format!("replica {leader}: {err}")),
    }
}

impl DbReplica {
    /// A message of the peer protocol, from another replica (or this one) of the database
    fn on_peer(&mut self, msg: DbPeerMsg, ctx: &Ctx<DbMsg>) {
        match msg {
            DbPeerMsg::Append { leader, req, reply } => {
                reply.send(self.on_append(leader, req));
            }
            DbPeerMsg::Snapshot { leader, req, reply } => {
                reply.send(self.on_snapshot(leader, req));
            }
            DbPeerMsg::Fence { epoch, by, reply } => {
                reply.send(self.on_fence(epoch, by));
            }
            DbPeerMsg::BecomeLeader { epoch, reply } => {
                reply.send(self.become_leader(epoch, ctx));
            }
            DbPeerMsg::Status(reply) => {
                reply.send(self.status());
            }
        }
    }
}

impl Actor for DbReplica {
    type Msg = DbMsg;

    async fn started(&mut self, ctx: &mut Ctx<DbMsg>) -> Result<(), ActorError> {
        // A restart may find the crashed predecessor's handle on the file not yet dropped.
        let path = self.spec.replica_path(self.me as usize);
        match ReplicaStore::open_when_released(&path, Reopen::default()).await {
            Ok((store, loaded)) => self.load(store, loaded),
            // The device failed reading or repairing it (a full disk): refuse everything
            // until it opens, as after a failed write.
            Err(err) if err.is_device_failure() => {
                self.degrade(&err);
            }
            // Held by another handle, or not a replica's file: a restart may help, or the
            // supervisor gives up and says why.
            Err(err) => return Err(Box::new(err)),
        }
        self.peers = (0..self.n())
            .map(|i| {
                ctx.node()
                    .addr(&self.spec.replicas[i], &self.spec.peer_name(i))
            })
            .collect();
        self.metrics = Some(ReplicaMetrics::new(&self.spec.name, self.me));
        ctx.send_interval(self.spec.heartbeat, || DbMsg::Tick);
        let mut events = ctx.node().cluster_events();
        let me = ctx.myself().clone();
        ctx.spawn(async move {
            loop {
                // a node this replica cannot reach is down for it, whatever the cluster's
                // membership says (a leader cut off from its followers, reached by others)
                let (node, down) = match events.recv().await {
                    Ok(
                        NodeEvent::Down { node, .. }
                        | NodeEvent::Left { node }
                        | NodeEvent::Unreachable { node, .. },
                    ) => (node, true),
                    Ok(NodeEvent::Up { node, .. } | NodeEvent::Reachable { node }) => (node, false),
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return Ok(()),
                };
                // A full mailbox drops it, as any cast.
                let _ = me.cast(DbMsg::NodeChanged { node, down });
            }
        });
        tracing::info!(replica = self.me, db = %self.spec.name, status = ?self.status(), "replica started");
        self.ask_to_resume(ctx);
        Ok(())
    }

    async fn handle(&mut self, msg: DbMsg, ctx: &mut Ctx<DbMsg>) -> Result<(), ActorError> {
        match msg {
            DbMsg::Get { key, read, reply } => self.read(ReadKind::Get { key, reply }, read),
            DbMsg::Scan {
                prefix,
                limit,
                read,
                reply,
            } => self.read(
                ReadKind::Scan {
                    prefix,
                    limit,
                    reply,
                },
                read,
            ),
            DbMsg::Write { op, reply } => self.write(op, reply, ctx),
            DbMsg::Status(reply) => {
                reply.send(self.status());
            }
            DbMsg::Promote(reply) => {
                if self.promoting {
                    reply.send(Err(DbFailure::Promotion(
                        "a promotion is already running here".into(),
                    )));
                } else {
                    let old = self.leader_hint;
                    self.start_promotion(old, Some(reply), ctx);
                }
            }
            DbMsg::Peer(msg) => self.on_peer(msg, ctx),
            DbMsg::Raft(rpc) => rpc.refuse("this database runs single-leader replication"),
            DbMsg::ChangeMembers { reply, .. } => {
                reply.send(Err(DbFailure::NotSupported(
                    "membership changes need Raft mode (a spec without .ack(mode))".into(),
                )));
            }
            DbMsg::Flush => self.flush(ctx),
            DbMsg::Tick => self.tick(ctx),
            DbMsg::Replicated { from, answer } => self.on_replicated(from, answer, ctx),
            DbMsg::NodeChanged { node, down } => {
                if down {
                    self.down.entry(node).or_insert_with(now);
                } else {
                    self.down.remove(&node);
                }
            }
            DbMsg::Resume { peers } => self.on_resume(peers, ctx),
            DbMsg::PromotionDone => self.promoting = false,
        }
        // Applied entries not yet written (leader acknowledgements, heartbeats) go lazily:
        // the durable log can rebuild them. A failure degrades the replica, which logs it.
        let _ = self.commit(Flush::Lazy);
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &mut Ctx<DbMsg>) -> Result<(), ActorError> {
        // A failure is logged; the file keeps what was durable before it.
        let _ = self.commit(Flush::Durable);
        self.store = None;
        Ok(())
    }
}

/// A replica's metrics, labelled `db` and `replica`: whether it leads, its epoch, log end,
/// applied index and whether a storage fault degrades it; once it has led, [`LeadingMetrics`].
/// Registered once per instance, so a tick sets them without building their keys.
pub(crate) struct ReplicaMetrics {
    pub(crate) leader: metrics::Gauge,
    pub(crate) epoch: metrics::Gauge,
    pub(crate) last_index: metrics::Gauge,
    pub(crate) applied_index: metrics::Gauge,
    pub(crate) degraded: metrics::Gauge,
    pub(crate) leading: Option<LeadingMetrics>,
}

/// What a leader exports besides: its commit index and each follower's lag in entries (label
/// `follower`).
pub(crate) struct LeadingMetrics {
    pub(crate) commit_index: metrics::Gauge,
    pub(crate) follower_lag: Vec<(u64, metrics::Gauge)>,
}

fn replica_labels(db: &str, me: u64) -> [(&'static str, String); 2] {
    [("db", db.to_string()), ("replica", me.to_string())]
}

impl ReplicaMetrics {
    pub(crate) fn new(db: &str, me: u64) -> Self {
        let labels = replica_labels(db, me);
        Self {
            leader: metrics::gauge!("troupe_db_leader", &labels),
            epoch: metrics::gauge!("troupe_db_epoch", &labels),
            last_index: metrics::gauge!("troupe_db_last_index", &labels),
            applied_index: metrics::gauge!("troupe_db_applied_index", &labels),
            degraded: metrics::gauge!("troupe_db_degraded", &labels),
            leading: None,
        }
    }
}

impl LeadingMetrics {
    pub(crate) fn new(db: &str, me: u64, replicas: u64) -> Self {
        let labels = replica_labels(db, me);
        let follower_lag = (0..replicas)
            .filter(|&f| f != me)
            .map(|f| {
                let [db, replica] = labels.clone();
                let follower = ("follower", f.to_string());
                let lag =
                    metrics::gauge!("troupe_db_follower_lag_entries", &[db, replica, follower]);
                (f, lag)
            })
            .collect();
        Self {
            commit_index: metrics::gauge!("troupe_db_commit_index", &labels),
            follower_lag,
        }
    }
}
