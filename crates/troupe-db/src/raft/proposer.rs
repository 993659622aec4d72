//! Gathers a replica's client writes into proposals: one Raft log entry carries every write
//! that arrived while the previous proposals were in flight.
//!
//! openraft appends each proposal to the leader's log with a commit and an fsync of its own,
//! and replicates it as one entry. One write per entry made that per-entry cost the limit on
//! write throughput (measured in `docs/benchmarks.md`, "Raft mode vs etcd"); gathering them
//! pays it once per proposal, as etcd gathers its proposals into one append. A write waits for
//! no timer: while fewer than [`IN_FLIGHT`] proposals are in flight, the next one goes out
//! with whatever has arrived.

use std::sync::Arc;
use std::time::Duration;

use openraft::Raft;
use openraft::error::RaftError;
use tokio::sync::{Semaphore, mpsc};
use troupe_runtime::Reply;

use super::store::RaftStore;
use super::{Proposal, TypeConfig};
use crate::core::Op;
use crate::msg::{DbFailure, Written};

/// Proposals in flight at once: enough to keep openraft's log and replication busy while the
/// next one gathers writes.
pub const IN_FLIGHT: usize = 4;

/// The most writes one proposal carries.
pub const MAX_WRITES: usize = 512;

/// The most key and value bytes one proposal carries, unless a single write has more.
pub const MAX_BYTES: usize = 1024 * 1024;

/// One client write waiting to be proposed.
struct Pending {
    op: Op,
    reply: Reply<Result<Written, DbFailure>>,
}

/// The sending side of a replica's proposer; the task that proposes ends once every clone is
/// dropped and the proposals in flight are answered.
#[derive(Clone)]
pub struct Proposer {
    queue: mpsc::Sender<Pending>,
}

impl Proposer {
    /// Starts proposing to `raft`, each proposal given `within` to commit before its writes
    /// are answered [`DbFailure::Unavailable`]; at most `limit` writes wait to be proposed,
    /// more are refused with [`DbFailure::Overloaded`].
    pub fn start(raft: Raft<TypeConfig>, store: RaftStore, within: Duration, limit: usize) -> Self {
        let (queue, writes) = mpsc::channel(limit.max(1));
        tokio::spawn(propose(writes, raft, store, within));
        Self { queue }
    }

    /// Queues `op`; `reply` gets its outcome once the proposal carrying it is committed and
    /// applied, or why not.
    pub fn write(&self, op: Op, reply: Reply<Result<Written, DbFailure>>) {
        if let Err(err) = self.queue.try_send(Pending { op, reply }) {
            let (pending, failure) = match err {
                mpsc::error::TrySendError::Full(p) => {
                    (p, DbFailure::Overloaded(self.queue.max_capacity()))
                }
                mpsc::error::TrySendError::Closed(p) => {
                    (p, DbFailure::Unavailable("the replica is stopping".into()))
                }
            };
            pending.reply.send(Err(failure));
        }
    }
}

async fn propose(
    mut writes: mpsc::Receiver<Pending>,
    raft: Raft<TypeConfig>,
    store: RaftStore,
    within: Duration,
) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // the permit first: writes arriving while every slot is busy join the next proposal
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = writes.recv().await else {
            return;
        };
        let mut bytes = first.op.payload_len();
        let mut batch = vec![first];
        while batch.len() < MAX_WRITES && bytes < MAX_BYTES {
            let Ok(next) = writes.try_recv() else { break };
            bytes += next.op.payload_len();
            batch.push(next);
        }
        let (raft, store) = (raft.clone(), store.clone());
        tokio::spawn(async move {
            commit(batch, &raft, &store, within).await;
            drop(permit);
        });
    }
}

/// Proposes `batch` as one entry and answers each write.
async fn commit(batch: Vec<Pending>, raft: &Raft<TypeConfig>, store: &RaftStore, within: Duration) {
    let (ops, replies): (Vec<Op>, Vec<_>) = batch.into_iter().map(|p| (p.op, p.reply)).unzip();
    let count = ops.len();
    let answer = match tokio::time::timeout(within, raft.client_write(Proposal(ops))).await {
        Err(_) => Err(DbFailure::Unavailable(format!(
            "the write was not committed by a majority within {within:?}; it may still be"
        ))),
        Ok(Err(err)) => Err(match store.last_fault() {
            // openraft stopped on this replica's failed write
            Some(fault) if matches!(err, RaftError::Fatal(_)) => DbFailure::Storage(fault),
            _ => super::replica::write_failure(err),
        }),
        Ok(Ok(written)) if written.data.0.len() == count => Ok(written),
        Ok(Ok(written)) => Err(DbFailure::Unavailable(format!(
            "a proposal of {count} writes was applied with {} outcomes",
            written.data.0.len()
        ))),
    };
    match answer {
        Ok(written) => {
            let index = written.log_id.index;
            for (reply, outcome) in replies.into_iter().zip(written.data.0) {
                reply.send(Ok(Written { index, outcome }));
            }
        }
        Err(failure) => {
            for reply in replies {
                reply.send(Err(failure.clone()));
            }
        }
    }
}
