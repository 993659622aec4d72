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
use std::time::{Duration, Instant};

use bytes::Bytes;
use troupe_runtime::{Addr, CallError};

use crate::msg::{DbFailure, DbMsg, DbReply, ReadAt, ReplicaStatus, WriteOp, WriteOutcome};

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
    /// A replica refused the request for good (too large, storage failure)
    #[error(transparent)]
    Refused(DbFailure),
    /// No leader (or no replica, for reads) answered before the deadline
    #[error("database unavailable: {last}")]
    Unavailable {
        /// The last failure seen
        #[source]
        last: AttemptError,
    },
    /// A compare-and-set's answer was lost; it may or may not have been applied
    #[error("outcome unknown: {0}")]
    Ambiguous(#[source] AttemptError),
    /// The call itself was refused (e.g. the request is over the frame size limit)
    #[error(transparent)]
    Call(CallError),
}

/// Why one attempt at a database call did not succeed: the cause inside
/// [`DbError::Unavailable`] and [`DbError::Ambiguous`]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    /// No replica was tried: none is configured, or none fits (the reason says which)
    #[error("{0}")]
    NoReplica(&'static str),
    /// Replica `replica` refused: it does not lead, lags behind, is overloaded, or lost its
    /// leadership with the write in flight
    #[error("replica {replica}: {failure}")]
    Refused {
        /// The replica's index in the database's list
        replica: usize,
        /// Its answer
        #[source]
        failure: DbFailure,
    },
    /// The call to replica `replica` failed (timeout, unreachable, not found...)
    #[error("replica {replica}: {error}")]
    Call {
        /// The replica's index in the database's list
        replica: usize,
        /// Why
        #[source]
        error: CallError,
    },
    /// A replica answered with a reply that does not fit the request
    #[error("unexpected answer {0}")]
    Unexpected(String),
}

/// A write's log index and effect
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The write's log index: pass it to a read-your-writes read elsewhere
    pub index: u64,
    /// What it did
    pub outcome: WriteOutcome,
}

/// A read's value and the applied index of the replica that answered
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadValue {
    /// The value, `None` if absent
    pub value: Option<Bytes>,
    /// The answering replica's applied index
    pub index: u64,
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
    session: Arc<Session>,
    timeout: Duration,
    call_timeout: Duration,
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
        Self {
            deadline: Instant::now() + timeout,
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
    /// A client for the database whose replica `i` is `replicas[i]`
    pub fn new(replicas: Vec<Addr<DbMsg>>) -> Self {
        Self {
            replicas: replicas.into(),
            session: Arc::new(Session {
                leader: AtomicUsize::new(0),
                next_read: AtomicUsize::new(0),
                last_write: AtomicU64::new(0),
            }),
            timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(2),
            read_policy: ReadPolicy::Leader,
            read_wait: Duration::from_millis(500),
        }
    }

    /// The same session with another read policy
    pub fn with_read_policy(mut self, policy: ReadPolicy) -> Self {
        self.read_policy = policy;
        self
    }

    /// The same session with another deadline per operation, retries included (default 5 s)
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.call_timeout = self.call_timeout.min(timeout);
        self
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
    /// # Errors
    ///
    /// [`DbError`]: too large, no leader in time, or the request over the frame limit.
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
    /// # Errors
    ///
    /// As [`DbClient::put`].
    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<Written, DbError> {
        self.write(WriteOp::Delete { key: key.into() }).await
    }

    /// Sets `key` to `new` (removes it when `None`) if it holds `expected` (`None`: absent);
    /// the outcome says whether it did ([`WriteOutcome::Swapped`]) or what the key held
    /// ([`WriteOutcome::CasFailed`])
    ///
    /// # Errors
    ///
    /// As [`DbClient::put`], and [`DbError::Ambiguous`] if the answer was lost.
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

    /// Reads `key` by this client's read policy
    ///
    /// # Errors
    ///
    /// [`DbError::Unavailable`] if no suitable replica answered in time.
    pub async fn get(&self, key: impl Into<Bytes>) -> Result<Option<Bytes>, DbError> {
        Ok(self.get_with(key, self.read_policy).await?.value)
    }

    /// Reads `key` by `policy`, with the applied index of the replica that answered
    ///
    /// # Errors
    ///
    /// As [`DbClient::get`].
    pub async fn get_with(
        &self,
        key: impl Into<Bytes>,
        policy: ReadPolicy,
    ) -> Result<ReadValue, DbError> {
        let key = key.into();
        let reply = self
            .read(policy, |read| DbMsg::Get {
                key: key.clone(),
                read,
            })
            .await?;
        match reply {
            DbReply::Value { value, index } => Ok(ReadValue { value, index }),
            other => Err(unexpected(&other)),
        }
    }

    /// Up to `limit` entries whose key starts with `prefix`, in key order (at most
    /// [`MAX_SCAN`](crate::replica::MAX_SCAN) entries and about 4 MiB)
    ///
    /// # Errors
    ///
    /// As [`DbClient::get`].
    pub async fn scan(
        &self,
        prefix: impl Into<Bytes>,
        limit: u32,
    ) -> Result<Vec<(Bytes, Bytes)>, DbError> {
        let prefix = prefix.into();
        let reply = self
            .read(self.read_policy, |read| DbMsg::Scan {
                prefix: prefix.clone(),
                limit,
                read,
            })
            .await?;
        match reply {
            DbReply::Entries { entries, .. } => Ok(entries),
            other => Err(unexpected(&other)),
        }
    }

    /// The status of every replica (`Err` for those that did not answer)
    pub async fn statuses(&self) -> Vec<Result<ReplicaStatus, DbError>> {
        let mut out = Vec::with_capacity(self.replicas.len());
        for (i, replica) in self.replicas.iter().enumerate() {
            out.push(match replica.call(DbMsg::Status, self.call_timeout).await {
                Ok(DbReply::Status(status)) => Ok(status),
                Ok(other) => Err(unexpected(&other)),
                Err(error) => Err(DbError::Unavailable {
                    last: AttemptError::Call { replica: i, error },
                }),
            });
        }
        out
    }

    /// Manual failover: treats the current leader as lost and promotes the most up-to-date
    /// follower; returns the new leader and its epoch
    ///
    /// # Errors
    ///
    /// [`DbError::Refused`] with [`DbFailure::Promotion`] if no follower could be promoted
    /// without risking acknowledged writes, [`DbError::Unavailable`] if no replica answered.
    pub async fn promote(&self) -> Result<(usize, u64), DbError> {
        let leader = self.leader();
        let mut last = AttemptError::NoReplica("no follower to coordinate the promotion");
        for (i, replica) in self.replicas.iter().enumerate() {
            if i == leader && self.replicas.len() > 1 {
                continue;
            }
            match replica.call(DbMsg::Promote, self.timeout).await {
                Ok(DbReply::Promoted { leader, epoch }) => {
                    let leader = leader as usize;
                    self.session.leader.store(leader, Ordering::Relaxed);
                    return Ok((leader, epoch));
                }
                Ok(DbReply::Error(failure)) => return Err(DbError::Refused(failure)),
                Ok(other) => return Err(unexpected(&other)),
                Err(error) => last = AttemptError::Call { replica: i, error },
            }
        }
        Err(DbError::Unavailable { last })
    }

    async fn write(&self, op: WriteOp) -> Result<Written, DbError> {
        let resend_when_unsure = !matches!(op, WriteOp::Cas { .. });
        let n = self.replicas.len();
        let mut retry = Retry::new(self.timeout);
        let mut target = self.leader() % n.max(1);
        let mut last = AttemptError::NoReplica("no replica");
        loop {
            let remaining = retry.remaining();
            if remaining.is_zero() || n == 0 {
                return Err(DbError::Unavailable { last });
            }
            let call = self.replicas[target]
                .call(DbMsg::Write(op.clone()), remaining.min(self.call_timeout));
            match call.await {
                Ok(DbReply::Written { index, outcome }) => {
                    self.session.leader.store(target, Ordering::Relaxed);
                    self.session.last_write.fetch_max(index, Ordering::Relaxed);
                    return Ok(Written { index, outcome });
                }
                Ok(DbReply::Error(DbFailure::NotLeader { leader: Some(l) }))
                    if l as usize != target && (l as usize) < n =>
                {
                    last = AttemptError::Refused {
                        replica: target,
                        failure: DbFailure::NotLeader { leader: Some(l) },
                    };
                    target = l as usize;
                    continue;
                }
                Ok(DbReply::Error(failure @ DbFailure::NotLeader { .. })) => {
                    last = AttemptError::Refused {
                        replica: target,
                        failure,
                    };
                    target = (target + 1) % n;
                }
                Ok(DbReply::Error(failure @ DbFailure::LeadershipLost)) if !resend_when_unsure => {
                    return Err(DbError::Ambiguous(AttemptError::Refused {
                        replica: target,
                        failure,
                    }));
                }
                Ok(DbReply::Error(failure @ DbFailure::LeadershipLost)) => {
                    last = AttemptError::Refused {
                        replica: target,
                        failure,
                    };
                    target = (target + 1) % n;
                }
                Ok(DbReply::Error(failure @ DbFailure::Overloaded(_))) => {
                    last = AttemptError::Refused {
                        replica: target,
                        failure,
                    };
                }
                Ok(DbReply::Error(failure)) => return Err(DbError::Refused(failure)),
                Ok(other) => return Err(unexpected(&other)),
                Err(err @ CallError::TooLarge { .. }) => return Err(DbError::Call(err)),
                Err(err) => {
                    let unsent = matches!(
                        err,
                        CallError::NotFound { .. } | CallError::Overloaded { .. }
                    );
                    let attempt = AttemptError::Call {
                        replica: target,
                        error: err,
                    };
                    if !unsent && !resend_when_unsure {
                        return Err(DbError::Ambiguous(attempt));
                    }
                    last = attempt;
                    target = (target + 1) % n;
                }
            }
            retry.pause().await;
        }
    }

    async fn read(
        &self,
        policy: ReadPolicy,
        msg: impl Fn(ReadAt) -> DbMsg,
    ) -> Result<DbReply, DbError> {
        let n = self.replicas.len();
        let mut retry = Retry::new(self.timeout);
        let mut last = AttemptError::NoReplica("no replica");
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
            let call = self.replicas[target].call(msg(read), remaining.min(self.call_timeout));
            match call.await {
                Ok(DbReply::Error(DbFailure::NotLeader { leader: Some(l) }))
                    if l as usize != target && (l as usize) < n =>
                {
                    last = AttemptError::Refused {
                        replica: target,
                        failure: DbFailure::NotLeader { leader: Some(l) },
                    };
                    target = l as usize;
                    continue;
                }
                Ok(DbReply::Error(failure @ DbFailure::Lagging { .. })) => {
                    // Read-your-writes falls back to the leader.
                    last = AttemptError::Refused {
                        replica: target,
                        failure,
                    };
                    policy = ReadPolicy::Leader;
                    target = self.leader() % n;
                    continue;
                }
                Ok(DbReply::Error(
                    failure @ (DbFailure::NotLeader { .. } | DbFailure::Overloaded(_)),
                )) => {
                    last = AttemptError::Refused {
                        replica: target,
                        failure,
                    };
                    target = (target + 1) % n;
                }
                Ok(DbReply::Error(failure)) => return Err(DbError::Refused(failure)),
                Ok(reply) => {
                    if policy == ReadPolicy::Leader {
                        self.session.leader.store(target, Ordering::Relaxed);
                    }
                    return Ok(reply);
                }
                Err(err @ CallError::TooLarge { .. }) => return Err(DbError::Call(err)),
                Err(error) => {
                    last = AttemptError::Call {
                        replica: target,
                        error,
                    };
                    target = (target + 1) % n;
                }
            }
            retry.pause().await;
        }
    }
}

fn unexpected(reply: &DbReply) -> DbError {
    DbError::Unavailable {
        last: AttemptError::Unexpected(format!("{reply:?}")),
    }
}
