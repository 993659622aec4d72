//! [`RaftReplica`]: the supervised actor that runs one replica of a Raft-mode database. It
//! answers the database's client protocol ([`DbMsg`]) from its openraft instance and its
//! store, and passes the Raft RPCs its peers send ([`RaftRpc`], through its Raft name) to
//! openraft. Every request that waits (a write to commit, a read to be confirmed, a peer's
//! RPC) runs in a task of its own, so the mailbox never waits behind one.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::raft::VoteResponse;
use openraft::{Config, LogId, Raft, ServerState, SnapshotPolicy};
use troupe_runtime::{Actor, ActorError, Ctx, Reply};
use troupe_store::{Degraded, StoreFault};

use super::network::Network;
use super::proposer::Proposer;
use super::store::RaftStore;
use super::{RaftFailure, RaftRpc, SNAPSHOT_CHUNK, TypeConfig};
use crate::core::Op;
use crate::msg::{
    DbFailure, DbMsg, MembershipChange, Promoted, ReadAt, ReadValue, ReplicaStatus, Role, ScanPage,
    WriteOp, Written,
};
use crate::replica::{LeadingMetrics, ReplicaMetrics};
use crate::spec::DbSpec;

/// How often a replica checks whether openraft stopped on a failed write.
const STORAGE_CHECK: Duration = Duration::from_millis(100);

/// One replica of a Raft-mode database; build it with
/// [`DbSpec::child`](crate::DbSpec::child) on a spec made with
/// [`DbSpec::raft`](crate::DbSpec::raft).
pub struct RaftReplica {
    spec: Arc<DbSpec>,
    me: u64,
    running: Option<Running>,
    /// Every replica's Raft handle, by number
    peers: Vec<troupe_runtime::Addr<RaftRpc>>,
    /// Set while openraft is stopped on a failed write: writes and leader reads are refused
    /// with the fault, reads from this replica's state go on, and openraft is started again
    /// on the file after a growing pause
    degraded: Option<Degraded>,
    /// openraft was started again on a degraded replica; the next check clears the fault or
    /// doubles the pause
    reopened: bool,
    /// While this leader hands over to another replica (an operator's promotion): to whom,
    /// and until when; client writes are sent there meanwhile
    handover: Arc<std::sync::Mutex<Option<(u64, Instant)>>>,
    /// Whether this replica is standing for election on request (a promotion, a hand-over):
    /// one such run at a time, or each new attempt's term would cut the last one short
    standing: Arc<std::sync::atomic::AtomicBool>,
    /// When this replica last took an append or a snapshot chunk from a leader (see
    /// [`stands_instead`])
    heard_from_leader: Arc<std::sync::Mutex<Option<Instant>>>,
    /// While a snapshot streams in: until when this replica does not stand for election
    /// (see [`RaftReplica::on_raft`])
    receiving_snapshot: Arc<std::sync::Mutex<Option<Instant>>>,
}

/// What a started replica runs.
#[derive(Clone)]
struct Running {
    raft: Raft<TypeConfig>,
    store: RaftStore,
    proposer: Proposer,
}

impl Running {
    /// `raft` on `store`, with a proposer whose proposals wait `within` for a majority and
    /// which holds at most `limit` writes waiting.
    fn new(raft: Raft<TypeConfig>, store: RaftStore, (within, limit): (Duration, usize)) -> Self {
        let proposer = Proposer::start(raft.clone(), store.clone(), within, limit);
        Self {
            raft,
            store,
            proposer,
        }
    }
}

impl RaftReplica {
    /// Replica `me` of the database `spec` describes; it opens its file when started.
    pub fn new(spec: Arc<DbSpec>, me: u64) -> Self {
        Self {
            spec,
            me,
            running: None,
            peers: Vec::new(),
            degraded: None,
            reopened: false,
            handover: Arc::default(),
            standing: Arc::default(),
            heard_from_leader: Arc::default(),
            receiving_snapshot: Arc::default(),
        }
    }

    /// openraft's timings from the spec's: heartbeats at its heartbeat, this replica's
    /// election timeout (see [`DbSpec::election_timeout`]: at least 6 heartbeats), and a snapshot after every
    /// `log_retain` entries.
    fn config(&self) -> Result<Config, ActorError> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
        let heartbeat = millis(self.spec.raft_heartbeat());
        // a follower of a known leader stands once the leader's lease (openraft's
        // `election_timeout_max`) and then its election timeout have passed: half each, so it
        // stands after the spec's timeout, and refuses other candidates for half of it
        let half = millis(self.spec.election_timeout(self.me as usize)) / 2;
        let config = Config {
            cluster_name: self.spec.name.clone(),
            heartbeat_interval: heartbeat,
            // openraft draws from [min, max): a range of one is the staggered timeout itself
            election_timeout_min: half,
            election_timeout_max: half + 1,
            install_snapshot_timeout: millis(self.spec.call_timeout),
            snapshot_max_chunk_size: SNAPSHOT_CHUNK,
            // each append must be answered within a heartbeat: keep one small enough
            max_payload_entries: 64,
            // an added replica joins the voters once within one append of the leader's log
            // (openraft's default, 5,000 entries, would let it vote long before it holds the
            // data: with 4 voters, 3 of them then carry every write)
            replication_lag_threshold: 64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.spec.log_retain),
            max_in_snapshot_log_to_keep: self.spec.log_retain,
            ..Config::default()
        };
        Ok(config.validate()?)
    }

    /// How long a write may wait for a majority, or a leader read for its confirmation,
    /// before the replica answers [`DbFailure::Unavailable`]: the longest election timeout
    /// (by then a cut-off leader's followers have elected another, which the client can
    /// find), or the call timeout if shorter.
    fn majority_wait(&self) -> Duration {
        self.spec.election_timeout_max().min(self.spec.call_timeout)
    }

    /// A proposer's deadline and queue limit (see [`Running::new`]).
    fn proposing(&self) -> (Duration, usize) {
        (self.majority_wait(), self.spec.max_pending_writes)
    }

    fn running(&self) -> Result<Running, DbFailure> {
        self.running.clone().ok_or_else(|| match &self.degraded {
            // the file could not be reopened yet
            Some(degraded) => DbFailure::Storage(degraded.fault().clone()),
            None => DbFailure::Unavailable("the replica is starting".into()),
        })
    }

    /// As [`running`](Self::running), refusing with the storage fault while degraded: for
    /// writes and for reads that need openraft (the leader's).
    fn writable(&self) -> Result<Running, DbFailure> {
        match &self.degraded {
            Some(degraded) => Err(DbFailure::Storage(degraded.fault().clone())),
            None => self.running(),
        }
    }

    /// What a read needs: openraft to confirm a leader read, only the state for a replica
    /// read (served while degraded too).
    fn for_read(&self, read: ReadAt) -> Result<Running, DbFailure> {
        match read {
            ReadAt::Leader => self.writable(),
            ReadAt::Replica { .. } => self.running(),
        }
    }

    /// Starts openraft on `store`.
    async fn start_raft(&self, store: &RaftStore) -> Result<Raft<TypeConfig>, ActorError> {
        Ok(Raft::new(
            self.me,
            Arc::new(self.config()?),
            Network::new(
                self.peers.clone(),
                Arc::from(self.spec.replica_node(self.me as usize).unwrap_or_default()),
            ),
            store.log_store(),
            store.state_machine(),
        )
        .await?)
    }

    /// Opens the replica's file (again), waiting for the last handle on it to go.
    async fn open_store(&self) -> Result<RaftStore, troupe_store::StoreError> {
        let index = self.me as usize;
        RaftStore::open(&self.spec.raft_path(index), &self.spec.snapshot_dir(index)).await
    }

    /// Every tick: notices openraft stopping on a failed write, and degrades the replica:
    /// openraft is shut down and the file reopened at once (redb refuses a handle after a
    /// failed write; reopening needs no free space), so this replica's reads go on; openraft
    /// is started again on it after a pause that doubles while it keeps failing.
    async fn check_storage(&mut self) {
        let now = troupe_runtime::time::now();
        let fatal = self
            .running
            .as_ref()
            .and_then(|r| r.raft.metrics().borrow().running_state.clone().err());
        if let Some(degraded) = &self.degraded
            && fatal.is_none()
            && self.reopened
        {
            tracing::warn!(replica = self.me, fault = %degraded.fault(), "storage works again; the replica takes part again");
            self.degraded = None;
            self.reopened = false;
            return;
        }
        if let Some(fatal) = fatal {
            let Some(running) = self.running.take() else {
                return;
            };
            let fault = running.store.last_fault().unwrap_or_else(|| StoreFault {
                kind: troupe_store::StoreErrorKind::Io,
                message: fatal.to_string(),
            });
            match self.degraded.as_mut() {
                Some(degraded) => degraded.reopen_failed_with(fault, now),
                None => {
                    tracing::warn!(replica = self.me, cause = %fault, "raft stopped on a failed write; refusing writes, serving this replica's reads, and reopening");
                    self.degraded = Some(Degraded::from_fault(fault, now));
                }
            }
            self.reopened = false;
            let _ = running.raft.shutdown().await;
            let raft = running.raft;
            drop(running.store);
            // the stopped instance answers nothing but its fault; the reopened file serves reads
            match self.open_store().await {
                Ok(store) => self.running = Some(Running::new(raft, store, self.proposing())),
                Err(err) => {
                    tracing::warn!(replica = self.me, cause = %err, "cannot reopen the file yet")
                }
            }
            return;
        }
        let Some(degraded) = self.degraded.as_mut() else {
            return;
        };
        if self.reopened || !degraded.reopen_due(now) {
            return;
        }
        let (stopped, store) = match self.running.take() {
            Some(running) => (Some(running.raft), running.store),
            None => match self.open_store().await {
                Ok(store) => (None, store),
                Err(err) => {
                    if let Some(degraded) = self.degraded.as_mut() {
                        degraded.reopen_failed_with(StoreFault::from(&err), now);
                    }
                    return;
                }
            },
        };
        store.clear_fault();
        match self.start_raft(&store).await {
            Ok(raft) => {
                self.running = Some(Running::new(raft, store, self.proposing()));
                self.reopened = true;
            }
            Err(err) => {
                if let Some(degraded) = self.degraded.as_mut() {
                    degraded.reopen_failed_with(
                        StoreFault {
                            kind: troupe_store::StoreErrorKind::Io,
                            message: err.to_string(),
                        },
                        now,
                    );
                }
                // keep serving reads from the file while the next attempt waits
                let proposing = self.proposing();
                self.running = stopped.map(|raft| Running::new(raft, store, proposing));
            }
        }
    }

    fn status(&self) -> ReplicaStatus {
        let mut status = ReplicaStatus {
            id: self.me,
            role: Role::Follower,
            epoch: 0,
            leader: None,
            last_index: 0,
            last_epoch: 0,
            applied_index: 0,
            base_index: 0,
            storage_fault: None,
            voters: Vec::new(),
        };
        if let Some(running) = &self.running {
            let m = running.raft.metrics().borrow().clone();
            status.role = if m.state == ServerState::Leader {
                Role::Leader
            } else {
                Role::Follower
            };
            status.epoch = m.current_term;
            status.leader = m.current_leader;
            status.last_index = m.last_log_index.unwrap_or(0);
            status.last_epoch = m.vote.leader_id().term;
            status.applied_index = m.last_applied.map_or(0, |id| id.index);
            status.base_index = m.snapshot.map_or(0, |id| id.index);
            status.voters = m.membership_config.membership().voter_ids().collect();
        }
        status.storage_fault = self.degraded.as_ref().map(|d| d.fault().clone());
        status
    }
}

/// A run of standing for election on request; ends when dropped.
struct Standing(Arc<std::sync::atomic::AtomicBool>);

impl Standing {
    /// `None` while another run is on.
    fn start(flag: &Arc<std::sync::atomic::AtomicBool>) -> Option<Self> {
        use std::sync::atomic::Ordering;
        flag.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Self(flag.clone()))
    }
}

impl Drop for Standing {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

/// Stands for election (again after each longest election timeout lost, the followers'
/// leases keeping a live leader's voters away) until this replica leads, or `within` ends.
async fn stand_until_elected(
    raft: &Raft<TypeConfig>,
    me: u64,
    retry: Duration,
    within: Duration,
) -> Result<Promoted, DbFailure> {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        raft.trigger()
            .elect()
            .await
            .map_err(|err| DbFailure::Promotion(err.to_string()))?;
        let waited = raft
            .wait(Some(retry))
            .state(ServerState::Leader, "an election this replica stood for")
            .await;
        if let Ok(m) = waited {
            return Ok(Promoted {
                leader: me,
                epoch: m.current_term,
            });
        }
    }
    Err(DbFailure::Promotion(format!(
        "replica {me} did not win an election within {within:?}"
    )))
}

/// A client write's failure, as the database's clients know them.
pub(super) fn write_failure(
    err: RaftError<u64, ClientWriteError<u64, openraft::EmptyNode>>,
) -> DbFailure {
    match err {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => DbFailure::NotLeader {
            leader: forward.leader_id,
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            DbFailure::Unavailable(e.to_string())
        }
        RaftError::Fatal(fatal) => DbFailure::Unavailable(fatal.to_string()),
    }
}

/// The read a [`ReadAt`] asks for, made safe to answer: confirmed by a majority (the leader
/// still leads: read-index) or, from any replica, once `min_index` is applied here. Answers
/// the index the state was read at.
async fn confirm_read(running: &Running, read: ReadAt, within: Duration) -> Result<u64, DbFailure> {
    let applied = |running: &Running| {
        running
            .raft
            .metrics()
            .borrow()
            .last_applied
            .map_or(0, |id| id.index)
    };
    match read {
        ReadAt::Leader => {
            let confirmed = tokio::time::timeout(within, running.raft.ensure_linearizable())
                .await
                .map_err(|_| {
                    DbFailure::Unavailable(format!(
                        "no majority confirmed this replica's leadership within {within:?}"
                    ))
                })?;
            match confirmed {
                Ok(_) => Ok(applied(running)),
                Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(
                    forward,
                ))) => Err(DbFailure::NotLeader {
                    leader: forward.leader_id,
                }),
                Err(err) => Err(DbFailure::Unavailable(err.to_string())),
            }
        }
        ReadAt::Replica { min_index, wait_ms } => {
            let wait = Duration::from_millis(wait_ms).min(within);
            let now = applied(running);
            if now >= min_index {
                return Ok(now);
            }
            match running
                .raft
                .wait(Some(wait))
                .applied_index_at_least(Some(min_index), "a read-your-writes read")
                .await
            {
                Ok(metrics) => Ok(metrics.last_applied.map_or(0, |id| id.index)),
                Err(_) => Err(DbFailure::Lagging {
                    applied: applied(running),
                    wanted: min_index,
                }),
            }
        }
    }
}

fn storage_failure(err: &troupe_store::StoreError) -> DbFailure {
    DbFailure::Storage(err.into())
}

impl RaftReplica {
    fn write(&self, op: WriteOp, reply: Reply<Result<Written, DbFailure>>) {
        let op = Op::from(op);
        if let Err(too_large) = self.spec.limits.check(&op) {
            reply.send(Err(DbFailure::TooLarge(too_large)));
            return;
        }
        let running = match self.writable() {
            Ok(running) => running,
            Err(failure) => {
                reply.send(Err(failure));
                return;
            }
        };
        if let Some(to) = self.handing_over_to() {
            reply.send(Err(DbFailure::NotLeader { leader: Some(to) }));
            return;
        }
        running.proposer.write(op, reply);
    }

    fn get(
        &self,
        key: bytes::Bytes,
        read: ReadAt,
        reply: Reply<Result<ReadValue, DbFailure>>,
        ctx: &mut Ctx<DbMsg>,
    ) {
        let running = match self.for_read(read) {
            Ok(running) => running,
            Err(failure) => {
                reply.send(Err(failure));
                return;
            }
        };
        let within = self.majority_wait();
        ctx.spawn(async move {
            let answer = match confirm_read(&running, read, within).await {
                Ok(index) => running
                    .store
                    .get(&key)
                    .map(|value| ReadValue { value, index })
                    .map_err(|e| storage_failure(&e)),
                Err(failure) => Err(failure),
            };
            reply.send(answer);
            Ok(())
        });
    }

    fn scan(
        &self,
        prefix: bytes::Bytes,
        limit: u32,
        read: ReadAt,
        reply: Reply<Result<ScanPage, DbFailure>>,
        ctx: &mut Ctx<DbMsg>,
    ) {
        let running = match self.for_read(read) {
            Ok(running) => running,
            Err(failure) => {
                reply.send(Err(failure));
                return;
            }
        };
        let within = self.majority_wait();
        let limit = (limit as usize).min(crate::replica::MAX_SCAN);
        ctx.spawn(async move {
            let answer = match confirm_read(&running, read, within).await {
                Ok(index) => running
                    .store
                    .scan(&prefix, limit)
                    .map(|entries| ScanPage { entries, index })
                    .map_err(|e| storage_failure(&e)),
                Err(failure) => Err(failure),
            };
            reply.send(answer);
            Ok(())
        });
    }

    /// A membership change, run by the leader: an added replica first catches up as a learner
    /// (openraft's `add_learner`, blocking), then joins the voters through a joint
    /// configuration (`change_membership`); a removed one leaves them the same way.
    fn change_members(
        &self,
        change: MembershipChange,
        reply: Reply<Result<Vec<u64>, DbFailure>>,
        ctx: &mut Ctx<DbMsg>,
    ) {
        let running = match self.writable() {
            Ok(running) => running,
            Err(failure) => {
                reply.send(Err(failure));
                return;
            }
        };
        let replicas = self.spec.replicas.len() as u64;
        let target = match change {
            MembershipChange::Add(n) | MembershipChange::Remove(n) => n,
        };
        if target >= replicas {
            reply.send(Err(DbFailure::NotSupported(format!(
                "replica {target} is not placed by this database's spec ({replicas} replicas)"
            ))));
            return;
        }
        let me = self.me;
        if change == MembershipChange::Remove(me) {
            // openraft 0.9 mishandles a leader that removes itself (a leader outside its own
            // membership): hand the lead to another voter, which then removes this one
            let m = running.raft.metrics().borrow().clone();
            let successor = m
                .membership_config
                .membership()
                .voter_ids()
                .find(|&v| v != me);
            let Some(successor) = successor else {
                reply.send(Err(DbFailure::NotSupported(
                    "the last voter cannot leave the group".into(),
                )));
                return;
            };
            if m.state == ServerState::Leader && self.handing_over_to() != Some(successor) {
                if let Err(failure) = self.hand_over(&running, successor, ctx) {
                    tracing::info!(replica = me, cause = %failure, "cannot hand over");
                }
                if let Some(peer) = self.peers.get(successor as usize).cloned() {
                    let within = self.spec.call_timeout;
                    ctx.spawn(async move {
                        let _ = peer.call(|reply| RaftRpc::Elect { reply }, within).await;
                        Ok(())
                    });
                }
            }
            reply.send(Err(DbFailure::NotLeader {
                leader: Some(successor),
            }));
            return;
        }
        ctx.spawn(async move {
            let changed = match change {
                MembershipChange::Add(n) => {
                    match running
                        .raft
                        .add_learner(n, openraft::EmptyNode {}, true)
                        .await
                    {
                        Ok(_) => {
                            let add = openraft::ChangeMembers::AddVoterIds(BTreeSet::from([n]));
                            running.raft.change_membership(add, false).await
                        }
                        Err(err) => Err(err),
                    }
                }
                MembershipChange::Remove(n) => {
                    let remove = openraft::ChangeMembers::RemoveVoters(BTreeSet::from([n]));
                    running.raft.change_membership(remove, false).await
                }
            };
            let answer = match changed {
                Ok(_) => {
                    let voters: Vec<u64> = running
                        .raft
                        .metrics()
                        .borrow()
                        .membership_config
                        .membership()
                        .voter_ids()
                        .collect();
                    tracing::info!(replica = me, ?change, ?voters, "membership changed");
                    Ok(voters)
                }
                Err(err) => Err(write_failure(err)),
            };
            reply.send(answer);
            Ok(())
        });
    }

    /// The replica this leader is handing over to, while it is.
    fn handing_over_to(&self) -> Option<u64> {
        let now = troupe_runtime::time::now();
        self.handover
            .lock()
            .ok()
            .and_then(|h| *h)
            .filter(|(_, until)| *until > now)
            .map(|(to, _)| to)
    }

    /// An operator's promotion of this replica: asks the leader to hand over (it stops its
    /// heartbeats and sends writes here), then stands for election until it wins, or the
    /// call timeout runs out. openraft 0.9 has no leadership transfer; this is one built from
    /// its switches, and the followers' leases (one election timeout) bound how long it takes.
    fn promote(&self, reply: Reply<Result<Promoted, DbFailure>>, ctx: &mut Ctx<DbMsg>) {
        let running = match self.running() {
            Ok(running) => running,
            Err(failure) => {
                reply.send(Err(failure));
                return;
            }
        };
        let (me, within) = (self.me, self.spec.call_timeout);
        let retry = self.spec.election_timeout_max();
        let peers = self.peers.clone();
        let Some(standing) = Standing::start(&self.standing) else {
            reply.send(Err(DbFailure::Promotion(
                "this replica is standing for election already".into(),
            )));
            return;
        };
        ctx.spawn(async move {
            let _standing = standing;
            let won = |m: &openraft::RaftMetrics<u64, openraft::EmptyNode>| Promoted {
                leader: me,
                epoch: m.current_term,
            };
            let now = running.raft.metrics().borrow().clone();
            if now.state == ServerState::Leader {
                reply.send(Ok(won(&now)));
                return Ok(());
            }
            if let Some(leader) = now.current_leader.and_then(|l| peers.get(l as usize)) {
                // refused or unanswered: the leader is gone already, or stepping down
                let _ = leader
                    .call(|reply| RaftRpc::Handover { to: me, reply }, within)
                    .await;
            }
            let answer = stand_until_elected(&running.raft, me, retry, within).await;
            reply.send(answer);
            Ok(())
        });
    }

    /// This leader stops its heartbeats and sends client writes to `to` until it is no longer
    /// leader, or for three election timeouts at most, whichever comes first.
    fn hand_over(
        &self,
        running: &Running,
        to: u64,
        ctx: &mut Ctx<DbMsg>,
    ) -> Result<(), RaftFailure> {
        if running.raft.metrics().borrow().state != ServerState::Leader {
            return Err(RaftFailure::NotRunning("not the leader".into()));
        }
        let until = troupe_runtime::time::now() + self.spec.election_timeout_max() * 3;
        if let Ok(mut handover) = self.handover.lock() {
            *handover = Some((to, until));
        }
        tracing::info!(
            replica = self.me,
            to,
            "handing over the lead (an operator's promotion)"
        );
        running.raft.runtime_config().heartbeat(false);
        let (raft, handover) = (running.raft.clone(), self.handover.clone());
        let wait = self.spec.election_timeout_max() * 3;
        ctx.spawn(async move {
            let _ = raft
                .wait(Some(wait))
                .metrics(|m| m.state != ServerState::Leader, "handed over")
                .await;
            raft.runtime_config().heartbeat(true);
            if let Ok(mut handover) = handover.lock() {
                *handover = None;
            }
            Ok(())
        });
        Ok(())
    }

    /// Lets this replica stand for election again once no snapshot chunk has come for its
    /// election timeout (see [`on_raft`](Self::on_raft)).
    fn resume_elections(&self) {
        let Ok(mut receiving) = self.receiving_snapshot.lock() else {
            return;
        };
        if receiving.is_some_and(|until| troupe_runtime::time::now() >= until) {
            *receiving = None;
            if let Some(running) = &self.running {
                running.raft.runtime_config().elect(true);
            }
        }
    }

    /// A peer's Raft RPC, handed to openraft in a task of its own.
    ///
    /// A snapshot chunk also keeps this replica from standing for election until its election
    /// timeout after the chunk: openraft 0.9 takes chunks outside its core, so they do not
    /// reset a follower's election timer, and a voter catching up by a snapshot that takes
    /// longer than its timeout would stand, depose the leader sending it, and start over, again
    /// and again (a 10 MiB snapshot did, in a debug build under load).
    fn on_raft(&self, rpc: RaftRpc, ctx: &mut Ctx<DbMsg>) {
        let Some(running) = self.running.clone() else {
            rpc.refuse("the replica is starting");
            return;
        };
        let rpc = match rpc {
            RaftRpc::Handover { to, reply } => {
                let _ = reply.send(self.hand_over(&running, to, ctx));
                return;
            }
            RaftRpc::Elect { reply } => {
                let _ = reply.send(Ok(()));
                let Some(standing) = Standing::start(&self.standing) else {
                    return;
                };
                let (me, retry, within) = (
                    self.me,
                    self.spec.election_timeout_max(),
                    self.spec.call_timeout,
                );
                ctx.spawn(async move {
                    let _standing = standing;
                    if let Err(failure) = stand_until_elected(&running.raft, me, retry, within).await {
                        tracing::info!(replica = me, cause = %failure, "asked to stand for election; did not win");
                    }
                    Ok(())
                });
                return;
            }
            other => other,
        };
        let (me, heard) = (self.me, self.heard_from_leader.clone());
        if let RaftRpc::Snapshot { .. } = rpc {
            let now = troupe_runtime::time::now();
            if let Ok(mut receiving) = self.receiving_snapshot.lock() {
                if receiving.is_none() {
                    running.raft.runtime_config().elect(false);
                }
                *receiving = Some(now + self.spec.election_timeout(self.me as usize));
            }
            if let Ok(mut heard) = heard.lock() {
                *heard = Some(now);
            }
        }
        // the lease this replica grants a leader (see `config`)
        let lease = self.spec.election_timeout(self.me as usize) / 2;
        ctx.spawn(async move {
            let _ = match rpc {
                RaftRpc::Append { req, reply } => {
                    let answer = running.raft.append_entries(req).await;
                    if answer.as_ref().is_ok_and(|r| r.is_success())
                        && let Ok(mut heard) = heard.lock()
                    {
                        *heard = Some(troupe_runtime::time::now());
                    }
                    reply.send(answer.map_err(|e| RaftFailure::Raft(e.to_string())))
                }
                RaftRpc::Vote { req, reply } => {
                    let (candidate, term) = (req.last_log_id, req.vote.leader_id().get_term());
                    let answer = running.raft.vote(req).await;
                    if let Ok(refusal) = &answer {
                        let since =
                            heard.lock().ok().and_then(|h| *h).map(|at| {
                                troupe_runtime::time::now().saturating_duration_since(at)
                            });
                        let follower =
                            running.raft.metrics().borrow().state == ServerState::Follower;
                        if follower && stands_instead(refusal, candidate, since, lease) {
                            tracing::info!(
                                replica = me,
                                "a candidate with a shorter log stood; standing instead"
                            );
                            // each election takes the next term after this replica's own:
                            // stand until past the candidate's, which its voters have taken
                            let mine = refusal.vote.leader_id().get_term();
                            for _ in mine..=term {
                                let _ = running.raft.trigger().elect().await;
                            }
                        }
                    }
                    reply.send(answer.map_err(|e| RaftFailure::Raft(e.to_string())))
                }
                RaftRpc::Snapshot { req, reply } => reply.send(
                    running
                        .raft
                        .install_snapshot(req)
                        .await
                        .map_err(|e| RaftFailure::Snapshot(e.to_string())),
                ),
                RaftRpc::Handover { reply, .. } | RaftRpc::Elect { reply } => reply.send(Ok(())),
            };
            Ok(())
        });
    }
}

/// Whether a follower that answered a candidate `answer` should stand for election itself,
/// at once: it refused the candidate for a shorter log than its own (so that candidate cannot
/// win), and it has not heard from a leader for `lease` (`since`, `None` if never), so it too
/// takes the leader to be gone. Without it the follower would wait out its own election
/// timeout first, from its last heartbeat, and writes would wait about two timeouts when the
/// replica that stands first after a leader is cut off is not the one with the longest log.
pub fn stands_instead(
    answer: &VoteResponse<u64>,
    candidate: Option<LogId<u64>>,
    since: Option<Duration>,
    lease: Duration,
) -> bool {
    !answer.vote_granted
        && answer.last_log_id > candidate
        && since.is_none_or(|since| since >= lease)
}

impl Drop for RaftReplica {
    /// A crashed or killed instance is dropped without [`Actor::stopped`]: its openraft
    /// instance, whose tasks are openraft's own, is shut down here, so it stops taking part
    /// and lets go of the file for the next instance.
    fn drop(&mut self) {
        if let Some(running) = self.running.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = running.raft.shutdown().await;
            });
        }
    }
}

/// Follows this replica's openraft metrics: logs, at `info`, each leadership it takes
/// (`leading`, with its term as `epoch`) and gives up (`stepping down`), as the single-leader
/// replica does — the lines an operator follows failovers by, and the simulation's
/// one-leader-per-term check reads — counts its elections won
/// (`troupe_db_elections_total`), and keeps the replica's gauges (the single-leader mode's
/// names: role, term as epoch, log end, applied index; as leader, commit index and each
/// follower's lag) up to date.
async fn watch_metrics(
    me: u64,
    db: String,
    replicas: u64,
    mut metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, openraft::EmptyNode>>,
) {
    let mut gauges = ReplicaMetrics::new(&db, me);
    let elections = metrics::counter!("troupe_db_elections_total", "db" => db.clone());
    let mut leading: Option<u64> = None;
    loop {
        {
            // read in place (it changes with every commit); the guard goes before the await
            let m = metrics.borrow_and_update();
            let now = (m.state == ServerState::Leader).then_some(m.current_term);
            if now != leading {
                if let Some(epoch) = now {
                    tracing::info!(db = %db, replica = me, epoch, "leading");
                    elections.increment(1);
                } else if let Some(was) = leading {
                    tracing::info!(replica = me, epoch = m.current_term, was, leader = ?m.current_leader, "stepping down");
                }
                leading = now;
            }
            let last = m.last_log_index.unwrap_or(0);
            let applied = m.last_applied.map_or(0, |id| id.index);
            gauges.leader.set(if leading.is_some() { 1.0 } else { 0.0 });
            gauges.epoch.set(m.current_term as f64);
            gauges.last_index.set(last as f64);
            gauges.applied_index.set(applied as f64);
            gauges.degraded.set(0.0);
            match (&m.replication, leading) {
                (Some(replication), Some(_)) => {
                    let leading = gauges
                        .leading
                        .get_or_insert_with(|| LeadingMetrics::new(&db, me, replicas));
                    // applied on the leader means committed: openraft applies what commits
                    leading.commit_index.set(applied as f64);
                    for (follower, lag) in &leading.follower_lag {
                        let matched = replication
                            .get(follower)
                            .and_then(|id| id.as_ref())
                            .map_or(0, |id| id.index);
                        lag.set(last.saturating_sub(matched) as f64);
                    }
                }
                _ => gauges.leading = None,
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

impl Actor for RaftReplica {
    type Msg = DbMsg;

    async fn started(&mut self, ctx: &mut Ctx<DbMsg>) -> Result<(), ActorError> {
        let index = self.me as usize;
        let store =
            RaftStore::open(&self.spec.raft_path(index), &self.spec.snapshot_dir(index)).await?;
        let fresh = store.is_fresh()?;
        self.peers = (0..self.spec.replicas.len())
            .map(|i| {
                ctx.node()
                    .addr(&self.spec.replicas[i], &self.spec.raft_name(i))
            })
            .collect();
        let raft = self.start_raft(&store).await?;
        let voters = self.spec.initial_voters() as u64;
        if fresh && self.me < voters {
            // every first voter of a fresh database proposes the same first membership:
            // openraft takes it once, and refuses it where a log exists already; a replica
            // placed beyond them waits to be added
            let members: BTreeSet<u64> = (0..voters).collect();
            match raft.initialize(members).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(err) => return Err(Box::new(err)),
            }
        }
        tracing::info!(replica = self.me, db = %self.spec.name, fresh, "replica started");
        let (me, db, metrics) = (self.me, self.spec.name.clone(), raft.metrics());
        let replicas = self.spec.replicas.len() as u64;
        ctx.spawn(async move {
            watch_metrics(me, db, replicas, metrics).await;
            Ok(())
        });
        self.running = Some(Running::new(raft, store, self.proposing()));
        ctx.send_interval(STORAGE_CHECK, || DbMsg::Tick);
        Ok(())
    }

    async fn handle(&mut self, msg: DbMsg, ctx: &mut Ctx<DbMsg>) -> Result<(), ActorError> {
        match msg {
            DbMsg::Get { key, read, reply } => self.get(key, read, reply, ctx),
            DbMsg::Scan {
                prefix,
                limit,
                read,
                reply,
            } => self.scan(prefix, limit, read, reply, ctx),
            DbMsg::Write { op, reply } => self.write(op, reply),
            DbMsg::Status(reply) => {
                reply.send(self.status());
            }
            DbMsg::Promote(reply) => self.promote(reply, ctx),
            DbMsg::ChangeMembers { change, reply } => self.change_members(change, reply, ctx),
            DbMsg::Raft(rpc) => self.on_raft(rpc, ctx),
            DbMsg::Tick => {
                self.resume_elections();
                self.check_storage().await
            }
            // the single-leader protocol and its self-messages: not this mode's
            DbMsg::Peer(_)
            | DbMsg::Flush
            | DbMsg::Replicated { .. }
            | DbMsg::NodeChanged { .. }
            | DbMsg::Resume { .. }
            | DbMsg::PromotionDone => {}
        }
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &mut Ctx<DbMsg>) -> Result<(), ActorError> {
        if let Some(running) = self.running.take()
            && let Err(err) = running.raft.shutdown().await
        {
            tracing::warn!(replica = self.me, cause = %err, "raft did not shut down cleanly");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, Vote};

    use super::*;

    fn at(term: u64, index: u64) -> Option<LogId<u64>> {
        Some(LogId::new(CommittedLeaderId::new(term, 0), index))
    }

    fn answer(granted: bool, mine: Option<LogId<u64>>) -> VoteResponse<u64> {
        VoteResponse {
            vote: Vote::new(3, 1),
            vote_granted: granted,
            last_log_id: mine,
        }
    }

    #[test]
    fn a_follower_with_the_longer_log_stands_once_its_leader_is_silent() {
        let lease = Duration::from_millis(450);
        let silent = Some(Duration::from_millis(900));
        // refused for a shorter log, the leader silent past the lease: stand
        assert!(stands_instead(
            &answer(false, at(2, 30)),
            at(2, 25),
            silent,
            lease
        ));
        // never heard from a leader at all
        assert!(stands_instead(
            &answer(false, at(2, 30)),
            at(2, 25),
            None,
            lease
        ));
        // the leader heard from within the lease: the candidate is the one cut off
        let recent = Some(Duration::from_millis(100));
        assert!(!stands_instead(
            &answer(false, at(2, 30)),
            at(2, 25),
            recent,
            lease
        ));
        // granted, or refused with a log no longer than the candidate's: the candidate may win
        assert!(!stands_instead(
            &answer(true, at(2, 30)),
            at(2, 25),
            silent,
            lease
        ));
        assert!(!stands_instead(
            &answer(false, at(2, 30)),
            at(2, 30),
            silent,
            lease
        ));
        assert!(!stands_instead(
            &answer(false, at(2, 30)),
            at(3, 12),
            silent,
            lease
        ));
    }
}
