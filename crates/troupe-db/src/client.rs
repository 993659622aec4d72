//! [`DbClient`]: one handle to a replicated database, whatever its leader is
//!
//! Writes go to the replica the client believes leads; a `NotLeader` answer redirects them,
//! and a replica that cannot be reached makes the client try the others, with backoff, until
//! the operation's deadline. So a failover (automatic or [`DbClient::promote`]) is followed
//! without the caller changing anything: writes fail only if no leader appears in time.
//!
//! Reads go where the [`ReadPolicy`] says. Clones share the session: the log index of the last
//! write any clone made, which [`ReadPolicy::ReadYourWrites`] waits for.
//!
//! # Retries and ambiguity
//!
//! A put or delete whose answer was lost (a timeout, or the leader lost with the write in
//! flight) is sent again: applying it twice leaves the same value, though a concurrent
//! writer's value in between may be overwritten. A compare-and-set is never resent after an
//! ambiguous failure; it returns [`DbError::Ambiguous`], because it may have been applied.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use troupe_runtime::{Addr, CallError, Reply};

use crate::msg::{
    DbAdminMsg, DbFailure, DbMsg, MembershipChange, Promoted, ReadAt, ReadValue, ReplicaStatus,
    ScanPage, WriteOp, Written,
};

/// How long one [`DbClient`] operation may take, retries included, unless set with
/// [`DbClient::with_timeout`]
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one call to one replica waits by default before the client tries another
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a client's reads go
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadPolicy {
    /// The leader: sees every acknowledged write
    #[default]
    Leader,
    /// Any replica, round robin (read/write split): fast, possibly stale
    AnyReplica,
    /// Any replica, once it has applied this client's last write (waiting for it, bounded);
    /// the leader if none has in time
    ReadYourWrites,
}

/// Why a database operation failed
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    /// A replica refused the request for good (too large, storage failure, promotion refused)
    #[error(transparent)]
    Refused(DbFailure),
    /// No leader (or no replica, for reads) answered before the deadline
    #[error("database unavailable: no suitable replica answered before the deadline")]
    Unavailable {
        /// The last failure seen; `None` if there was no replica to ask
        #[source]
        last: Option<AttemptError>,
    },
    /// A compare-and-set's answer was lost; it may or may not have been applied
    #[error("outcome unknown: the write's answer was lost, it may have been applied")]
    Ambiguous(#[source] AttemptError),
    /// The call itself was refused: the request is over the frame size limit, or this node
    /// may not send it (a promotion or membership change from a node the spec's
    /// [`administered_from`](crate::DbSpec::administered_from) does not admit)
    #[error("the call to the database was refused")]
    Call(#[from] CallError),
}

/// Why one attempt at one replica failed: the cause inside [`DbError::Unavailable`] and
/// [`DbError::Ambiguous`]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    /// The replica answered with a refusal worth trying elsewhere or later (not the leader,
    /// lagging, overloaded, leadership lost)
    #[error("replica {replica} refused")]
    Refused {
        /// The replica's index
        replica: usize,
        /// What it answered
        #[source]
        failure: DbFailure,
    },
    /// The call to the replica got no answer
    #[error("the call to replica {replica} failed")]
    Call {
        /// The replica's index
        replica: usize,
        /// Why
        #[source]
        error: CallError,
    },
}

struct Session {
    leader: AtomicUsize,
    next_read: AtomicUsize,
    last_write: AtomicU64,
}

/// A handle to a replicated database; see the [module docs](self)
///
/// Build it with [`DbSpec::client`](crate::DbSpec::client), or from the replicas' handles
/// with [`DbClient::new`].
#[derive(Clone)]
pub struct DbClient {
    replicas: Arc<[Addr<DbMsg>]>,
    /// Each replica's admin name (`NAME.N.admin`), for promotions and membership changes
    admins: Arc<[Addr<DbAdminMsg>]>,
    session: Arc<Session>,
    timeout: Duration,
    /// How long one call to one replica may wait (`timeout` bounds it too)
    attempt_timeout: Duration,
    read_policy: ReadPolicy,
    read_wait: Duration,
}

impl std::fmt::Debug for DbClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbClient")
            .field("replicas", &self.replicas.len())
            .field("leader", &self.session.leader.load(Ordering::Relaxed))
            .field("read_policy", &self.read_policy)
            .finish()
    }
}

const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// One operation's retries: its deadline and a doubling pause between attempts
struct Retry {
    deadline: Instant,
    pause: Duration,
}

impl Retry {
    fn new(timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            // A timeout too long to represent is as good as none.
            deadline: now
                .checked_add(timeout)
                .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600)),
            pause: Duration::from_millis(5),
        }
    }

    /// Time left before the deadline (zero once it passed)
    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Waits before the next attempt (never past the deadline), doubling the pause up to
    /// [`MAX_BACKOFF`]
    async fn pause(&mut self) {
        tokio::time::sleep(self.pause.min(self.remaining())).await;
        self.pause = (self.pause * 2).min(MAX_BACKOFF);
    }
}

impl DbClient {
    /// A client for the database whose replica `i` is `replicas[i]` (as
    /// [`DbSpec::client`](crate::DbSpec::client) builds it from a node, or a topology from the
    /// replicas' handles), with the [`DEFAULT_TIMEOUT`] and [`ReadPolicy::Leader`]
    pub fn new(replicas: Vec<Addr<DbMsg>>) -> Self {
        let admins: Vec<Addr<DbAdminMsg>> = replicas
            .iter()
            .map(|r| r.sibling(&format!("{}.admin", r.name())))
            .collect();
        Self {
            replicas: replicas.into(),
            admins: admins.into(),
            session: Arc::new(Session {
                leader: AtomicUsize::new(0),
                next_read: AtomicUsize::new(0),
                last_write: AtomicU64::new(0),
            }),
            timeout: DEFAULT_TIMEOUT,
            attempt_timeout: DEFAULT_ATTEMPT_TIMEOUT,
            read_policy: ReadPolicy::Leader,
            read_wait: Duration::from_millis(500),
        }
    }

    /// A copy of this client (same session) whose reads follow `policy`
    #[must_use]
    pub fn with_read_policy(&self, policy: ReadPolicy) -> Self {
        Self {
            read_policy: policy,
            ..self.clone()
        }
    }

    /// A copy of this client (same session) whose operations each take at most `timeout`,
    /// retries included (default [`DEFAULT_TIMEOUT`]); one call to one replica waits at most
    /// [`with_attempt_timeout`](Self::with_attempt_timeout) of it
    #[must_use]
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            timeout,
            ..self.clone()
        }
    }

    /// A copy of this client (same session) that waits at most `attempt` for one replica's
    /// answer before it tries another (default [`DEFAULT_ATTEMPT_TIMEOUT`]; a Raft-mode spec's
    /// client uses the election timeout, so a leader cut off by a partition costs the client
    /// one election, not its whole timeout)
    #[must_use]
    pub fn with_attempt_timeout(&self, attempt: Duration) -> Self {
        Self {
            attempt_timeout: attempt,
            ..self.clone()
        }
    }

    /// One call's bound: the attempt timeout, within the operation's
    fn call_timeout(&self) -> Duration {
        self.attempt_timeout.min(self.timeout)
    }

    /// How long one operation may take, retries included
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The replicas' handles, replica `i` at index `i`
    pub fn replicas(&self) -> &[Addr<DbMsg>] {
        &self.replicas
    }

    /// The replica this client sends writes to now
    pub fn leader(&self) -> usize {
        self.session.leader.load(Ordering::Relaxed)
    }

    /// The log index of this session's last acknowledged write (0: none)
    pub fn last_write_index(&self) -> u64 {
        self.session.last_write.load(Ordering::Relaxed)
    }

    /// Sets `key` to `value`
    ///
    /// `Ok` means the write is durable on as many replicas as the database's
    /// [`AckMode`](crate::AckMode) asks for, and applied by the leader: a leader read sees it.
    /// A write whose answer was lost is sent again (see the [module docs](self)).
    ///
    /// # Errors
    ///
    /// [`DbError::Refused`] if a replica refused it for good (too large, storage failure),
    /// [`DbError::Unavailable`] if no leader acknowledged it in time (it may still be
    /// applied), [`DbError::Call`] if the request is over the frame limit.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the retries; a write already sent may still be applied.
    /// The session does not record a write whose answer it did not see, so
    /// [`ReadPolicy::ReadYourWrites`] does not wait for it.
    pub async fn put(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> Result<Written, DbError> {
        self.write(WriteOp::Put {
            key: key.into(),
            value: value.into(),
        })
        .await
    }

    /// Removes `key`
    ///
    /// `Ok` as for [`DbClient::put`].
    ///
    /// # Errors
    ///
    /// As [`DbClient::put`].
    ///
    /// # Cancel safety
    ///
    /// As [`DbClient::put`].
    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<Written, DbError> {
        self.write(WriteOp::Delete { key: key.into() }).await
    }

    /// Sets `key` to `new` (removes it when `None`) if it holds `expected` (`None`: absent);
    /// the outcome says whether it did ([`WriteOutcome::Swapped`](crate::WriteOutcome)) or
    /// what the key held ([`WriteOutcome::CasFailed`](crate::WriteOutcome))
    ///
    /// `Ok` as for [`DbClient::put`]; a compare-and-set is never sent twice.
    ///
    /// # Errors
    ///
    /// As [`DbClient::put`], and [`DbError::Ambiguous`] if the answer was lost.
    ///
    /// # Cancel safety
    ///
    /// As [`DbClient::put`]: a compare-and-set already sent may have been applied, and
    /// nothing tells the caller whether it was (as with [`DbError::Ambiguous`]).
    pub async fn cas(
        &self,
        key: impl Into<Bytes>,
        expected: Option<Bytes>,
        new: Option<Bytes>,
    ) -> Result<Written, DbError> {
        self.write(WriteOp::Cas {
            key: key.into(),
            expected,
            new,
        })
        .await
    }

    /// Reads `key` by this client's read policy (`None`: absent)
    ///
    /// # Errors
    ///
    /// [`DbError::Unavailable`] if no suitable replica answered in time,
    /// [`DbError::Refused`] if one refused for good.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a read changes nothing.
    pub async fn get(&self, key: impl Into<Bytes>) -> Result<Option<Bytes>, DbError> {
        Ok(self.get_with(key, self.read_policy).await?.value)
    }

    /// Reads `key` by `policy`, with the applied index of the replica that answered
    ///
    /// # Errors
    ///
    /// As [`DbClient::get`].
    ///
    /// # Cancel safety
    ///
    /// As [`DbClient::get`].
    pub async fn get_with(
        &self,
        key: impl Into<Bytes>,
        policy: ReadPolicy,
    ) -> Result<ReadValue, DbError> {
        let key = key.into();
        self.read(policy, |read, reply| DbMsg::Get {
            key: key.clone(),
            read,
            reply,
        })
        .await
    }

    /// Up to `limit` entries whose key starts with `prefix`, in key order (at most
    /// [`MAX_SCAN`](crate::replica::MAX_SCAN) entries and about 4 MiB)
    ///
    /// # Errors
    ///
    /// As [`DbClient::get`].
    ///
    /// # Cancel safety
    ///
    /// As [`DbClient::get`].
    pub async fn scan(
        &self,
        prefix: impl Into<Bytes>,
        limit: u32,
    ) -> Result<Vec<(Bytes, Bytes)>, DbError> {
        let prefix = prefix.into();
        let page = self
            .read(self.read_policy, |read, reply| DbMsg::Scan {
                prefix: prefix.clone(),
                limit,
                read,
                reply,
            })
            .await?;
        Ok(page.entries)
    }

    /// The status of every replica, replica `i` at index `i` (`Err` for those that did not
    /// answer within one call's timeout)
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it changes nothing.
    pub async fn statuses(&self) -> Vec<Result<ReplicaStatus, DbError>> {
        let mut out = Vec::with_capacity(self.replicas.len());
        for (i, replica) in self.replicas.iter().enumerate() {
            out.push(
                replica
                    .call(DbMsg::Status, self.call_timeout())
                    .await
                    .map_err(|error| DbError::Unavailable {
                        last: Some(AttemptError::Call { replica: i, error }),
                    }),
            );
        }
        out
    }

    /// Manual failover: treats the current leader as lost and promotes the most up-to-date
    /// follower; returns the new leader and its epoch
    ///
    /// `Ok` means the new leader accepted; this client sends its writes there from now on.
    ///
    /// # Errors
    ///
    /// [`DbError::Refused`] with [`DbFailure::Promotion`] if no follower could be promoted
    /// without risking acknowledged writes, [`DbError::Unavailable`] if no replica answered.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the wait, not the promotion: a replica that has the
    /// request runs its promotion to the end (unless it restarts), and the leader may change.
    /// This client's idea of the leader is then not updated; its next write finds the new
    /// leader through a `NotLeader` redirect.
    pub async fn promote(&self) -> Result<Promoted, DbError> {
        let leader = self.leader();
        let mut last = None;
        for (i, admin) in self.admins.iter().enumerate() {
            if i == leader && self.admins.len() > 1 {
                continue;
            }
            match admin.call(DbAdminMsg::Promote, self.timeout).await {
                Ok(Ok(promoted)) => {
                    self.session
                        .leader
                        .store(promoted.leader as usize, Ordering::Relaxed);
                    return Ok(promoted);
                }
                Ok(Err(failure)) => return Err(DbError::Refused(failure)),
                // not allowed from this node: asking another replica changes nothing
                Err(error @ CallError::Forbidden { .. }) => return Err(DbError::Call(error)),
                Err(error) => last = Some(AttemptError::Call { replica: i, error }),
            }
        }
        Err(DbError::Unavailable { last })
    }

    /// Makes replica `n` (as the spec places it) a voter of the Raft group: it catches up by
    /// snapshot and log as a learner, then joins through a joint configuration, while writes
    /// go on. Returns the voters once the change is committed.
    ///
    /// # Errors
    /// [`DbError::Refused`] with [`DbFailure::NotSupported`] in a single-leader mode or for a
    /// replica the spec does not place; [`DbError::Unavailable`] if no leader completed the
    /// change within the client's timeout (it may complete later).
    ///
    /// # Cancel safety
    /// Dropping the future abandons the wait, not the change: the leader carries it on.
    pub async fn add_replica(&self, n: u64) -> Result<Vec<u64>, DbError> {
        self.change_members(MembershipChange::Add(n)).await
    }

    /// Takes replica `n` out of the Raft group's voters (the leader included: it steps down
    /// once the change commits). Returns the voters once the change is committed.
    ///
    /// # Errors
    /// As [`add_replica`](Self::add_replica).
    ///
    /// # Cancel safety
    /// As [`add_replica`](Self::add_replica).
    pub async fn remove_replica(&self, n: u64) -> Result<Vec<u64>, DbError> {
        self.change_members(MembershipChange::Remove(n)).await
    }

    async fn change_members(&self, change: MembershipChange) -> Result<Vec<u64>, DbError> {
        let n = self.replicas.len();
        let mut retry = Retry::new(self.timeout);
        let mut target = self.leader() % n.max(1);
        let mut last = None;
        loop {
            let remaining = retry.remaining();
            if remaining.is_zero() || n == 0 {
                return Err(DbError::Unavailable { last });
            }
            // no attempt bound: a learner's catch-up takes as long as its data
            let call = self.admins[target].call(
                |reply| DbAdminMsg::ChangeMembers { change, reply },
                remaining,
            );
            let refused = |failure| AttemptError::Refused {
                replica: target,
                failure,
            };
            match call.await {
                Ok(Ok(voters)) => {
                    self.session.leader.store(target, Ordering::Relaxed);
                    return Ok(voters);
                }
                Ok(Err(failure @ DbFailure::NotLeader { leader: Some(l) }))
                    if l as usize != target && (l as usize) < n =>
                {
                    last = Some(refused(failure));
                    target = l as usize;
                    continue;
                }
                Ok(Err(failure @ (DbFailure::NotLeader { .. } | DbFailure::Unavailable(_)))) => {
                    last = Some(refused(failure));
                    target = (target + 1) % n;
                }
                Ok(Err(failure)) => return Err(DbError::Refused(failure)),
                Err(error @ CallError::Forbidden { .. }) => return Err(DbError::Call(error)),
                Err(error) => {
                    last = Some(AttemptError::Call {
                        replica: target,
                        error,
                    });
                    target = (target + 1) % n;
                }
            }
            retry.pause().await;
        }
    }

    async fn write(&self, op: WriteOp) -> Result<Written, DbError> {
        let resend_when_unsure = !matches!(op, WriteOp::Cas { .. });
        let n = self.replicas.len();
        let mut retry = Retry::new(self.timeout);
        let mut target = self.leader() % n.max(1);
        let mut last = None;
        loop {
            let remaining = retry.remaining();
            if remaining.is_zero() || n == 0 {
                return Err(DbError::Unavailable { last });
            }
            let call = self.replicas[target].call(
                |reply| DbMsg::Write {
                    op: op.clone(),
                    reply,
                },
                remaining.min(self.call_timeout()),
            );
            let refused = |failure| AttemptError::Refused {
                replica: target,
                failure,
            };
            match call.await {
                Ok(Ok(written)) => {
                    self.session.leader.store(target, Ordering::Relaxed);
                    self.session
                        .last_write
                        .fetch_max(written.index, Ordering::Relaxed);
                    return Ok(written);
                }
                Ok(Err(failure @ DbFailure::NotLeader { leader: Some(l) }))
                    if l as usize != target && (l as usize) < n =>
                {
                    last = Some(refused(failure));
                    target = l as usize;
                    continue;
                }
                Ok(Err(failure @ DbFailure::NotLeader { .. })) => {
                    last = Some(refused(failure));
                    target = (target + 1) % n;
                }
                // the write may still take effect (Raft mode: proposed, not committed by a
                // majority in time): ambiguous
                Ok(Err(failure @ (DbFailure::LeadershipLost | DbFailure::Unavailable(_))))
                    if !resend_when_unsure =>
                {
                    return Err(DbError::Ambiguous(refused(failure)));
                }
                Ok(Err(failure @ (DbFailure::LeadershipLost | DbFailure::Unavailable(_)))) => {
                    last = Some(refused(failure));
                    target = (target + 1) % n;
                }
                Ok(Err(failure @ DbFailure::Overloaded(_))) => {
                    last = Some(refused(failure));
                }
                Ok(Err(failure)) => return Err(DbError::Refused(failure)),
                Err(err @ CallError::TooLarge { .. }) => return Err(DbError::Call(err)),
                Err(error) => {
                    let unsent = matches!(
                        error,
                        CallError::NotFound { .. } | CallError::Overloaded { .. }
                    );
                    let attempt = AttemptError::Call {
                        replica: target,
                        error,
                    };
                    if !unsent && !resend_when_unsure {
                        return Err(DbError::Ambiguous(attempt));
                    }
                    last = Some(attempt);
                    target = (target + 1) % n;
                }
            }
            retry.pause().await;
        }
    }

    /// Sends the read `msg` by `policy` until a suitable replica answers or the deadline
    async fn read<T: troupe_runtime::ReplyValue + AnsweredAt>(
        &self,
        policy: ReadPolicy,
        msg: impl Fn(ReadAt, Reply<Result<T, DbFailure>>) -> DbMsg,
    ) -> Result<T, DbError> {
        // what a read-your-writes answer must include, even from the leader it falls back to
        let floor = match policy {
            ReadPolicy::ReadYourWrites => self.last_write_index(),
            ReadPolicy::Leader | ReadPolicy::AnyReplica => 0,
        };
        let n = self.replicas.len();
        let mut retry = Retry::new(self.timeout);
        let mut last = None;
        let wait_ms = u64::try_from(self.read_wait.as_millis()).unwrap_or(u64::MAX);
        let mut policy = policy;
        let mut target = match policy {
            ReadPolicy::Leader => self.leader() % n.max(1),
            _ => self.session.next_read.fetch_add(1, Ordering::Relaxed) % n.max(1),
        };
        loop {
            let remaining = retry.remaining();
            if remaining.is_zero() || n == 0 {
                return Err(DbError::Unavailable { last });
            }
            let read = match policy {
                ReadPolicy::Leader => ReadAt::Leader,
                ReadPolicy::AnyReplica => ReadAt::Replica {
                    min_index: 0,
                    wait_ms: 0,
                },
                ReadPolicy::ReadYourWrites => ReadAt::Replica {
                    min_index: self.last_write_index(),
                    wait_ms,
                },
            };
            let call = self.replicas[target]
                .call(|reply| msg(read, reply), remaining.min(self.call_timeout()));
            let refused = |failure| AttemptError::Refused {
                replica: target,
                failure,
            };
            match call.await {
                Ok(Err(failure @ DbFailure::NotLeader { leader: Some(l) }))
                    if l as usize != target && (l as usize) < n =>
                {
                    last = Some(refused(failure));
                    target = l as usize;
                    continue;
                }
                Ok(Err(failure @ DbFailure::Lagging { .. })) => {
                    // Read-your-writes falls back to the leader.
                    last = Some(refused(failure));
                    policy = ReadPolicy::Leader;
                    target = self.leader() % n;
                    continue;
                }
                Ok(Err(
                    failure @ (DbFailure::NotLeader { .. }
                    | DbFailure::Overloaded(_)
                    | DbFailure::Unavailable(_)),
                )) => {
                    last = Some(refused(failure));
                    target = (target + 1) % n;
                }
                Ok(Err(failure)) => return Err(DbError::Refused(failure)),
                Ok(Ok(answer)) if answer.index() < floor => {
                    // A leader that was deposed without knowing it (paused, cut off) answers
                    // from a log that lacks this session's write: ask the others.
                    last = Some(refused(DbFailure::Lagging {
                        applied: answer.index(),
                        wanted: floor,
                    }));
                    target = (target + 1) % n;
                }
                Ok(Ok(answer)) => {
                    if policy == ReadPolicy::Leader {
                        self.session.leader.store(target, Ordering::Relaxed);
                    }
                    return Ok(answer);
                }
                Err(err @ CallError::TooLarge { .. }) => return Err(DbError::Call(err)),
                Err(error) => {
                    last = Some(AttemptError::Call {
                        replica: target,
                        error,
                    });
                    target = (target + 1) % n;
                }
            }
            retry.pause().await;
        }
    }
}

/// A read's answer, with the applied index of the replica that gave it
trait AnsweredAt {
    fn index(&self) -> u64;
}

impl AnsweredAt for ReadValue {
    fn index(&self) -> u64 {
        self.index
    }
}

impl AnsweredAt for ScanPage {
    fn index(&self) -> u64 {
        self.index
    }
}
