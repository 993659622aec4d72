//! openraft's network, as troupe messages: each RPC is a call to the target replica's Raft
//! name (a facet of the replica actor), local or over QUIC, with the deadline openraft gives.
//!
//! openraft bounds an append by its number of entries only, and gives it one heartbeat to be
//! answered; one larger than a message may be (a node's frame limit, 8 MiB by default), or
//! than a follower can take within a heartbeat, would fail on every retry and leave the
//! follower behind for good. So an append sends at most [`MAX_APPEND_BYTES`] of its entries
//! (one entry at least) and answers openraft's partial success: openraft sends the rest next
//! ([`first_part`]).

use openraft::error::{NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{EmptyNode, EntryPayload};
use std::sync::Arc;

use troupe_runtime::{Addr, CallError, Reply};

use super::{Proposal, RaftFailure, RaftRpc, TypeConfig};

/// The most entry bytes one append carries (unless a single entry has more): well within a
/// message, and quick enough for a follower to store within a heartbeat.
pub const MAX_APPEND_BYTES: usize = 1024 * 1024;

/// Every replica's Raft handle, by replica number, and the node the RPCs are sent from.
#[derive(Clone, Debug)]
pub struct Network {
    peers: Vec<Addr<RaftRpc>>,
    from: Arc<str>,
}

impl Network {
    /// The network of a replica on node `from` whose peers (itself included) are `peers`, by
    /// replica number.
    pub fn new(peers: Vec<Addr<RaftRpc>>, from: Arc<str>) -> Self {
        Self { peers, from }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, _node: &EmptyNode) -> Peer {
        Peer {
            target,
            from: self.from.clone(),
            addr: usize::try_from(target)
                .ok()
                .and_then(|i| self.peers.get(i))
                .cloned(),
        }
    }
}

/// One target replica.
#[derive(Debug)]
pub struct Peer {
    target: u64,
    /// openraft calls from tasks of its own, which know no node: RPCs are sent as from the
    /// replica's node (see `troupe_runtime::send_from`)
    from: Arc<str>,
    /// `None` for a replica number the database does not have
    addr: Option<Addr<RaftRpc>>,
}

type Rpc<T, E = openraft::error::Infallible> =
    Result<T, RPCError<u64, EmptyNode, RaftError<u64, E>>>;

impl Peer {
    async fn call<T, E>(
        &self,
        make: impl FnOnce(Reply<Result<T, RaftFailure>>) -> RaftRpc,
        within: std::time::Duration,
    ) -> Rpc<T, E>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
        E: std::error::Error,
    {
        let Some(addr) = &self.addr else {
            let err = CallError::NotFound {
                target: format!("raft replica {}", self.target),
            };
            return Err(RPCError::Unreachable(Unreachable::new(&err)));
        };
        let answer = troupe_runtime::send_from(self.from.clone(), addr.call(make, within)).await;
        match answer {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(failure)) => Err(RPCError::Network(NetworkError::new(&failure))),
            // the node is down or the replica is not registered (restarting): back off
            Err(err @ (CallError::Unreachable { .. } | CallError::NotFound { .. })) => {
                Err(RPCError::Unreachable(Unreachable::new(&err)))
            }
            Err(err) => Err(RPCError::Network(NetworkError::new(&err))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<u64>> {
        let (part, rest) = first_part(rpc, MAX_APPEND_BYTES);
        let last = part.entries.last().map(|e| e.log_id);
        let answer = self
            .call(
                |reply| RaftRpc::Append { req: part, reply },
                option.hard_ttl(),
            )
            .await?;
        let answer = match answer {
            AppendEntriesResponse::Success if rest => AppendEntriesResponse::PartialSuccess(last),
            other => other,
        };
        Ok(answer)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<u64>, openraft::error::InstallSnapshotError> {
        self.call(
            |reply| RaftRpc::Snapshot { req: rpc, reply },
            option.hard_ttl(),
        )
        .await
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, option: RPCOption) -> Rpc<VoteResponse<u64>> {
        self.call(|reply| RaftRpc::Vote { req: rpc, reply }, option.hard_ttl())
            .await
    }
}

/// Roughly how many bytes `entry` takes in a message: its writes' keys and values, and a
/// little for each record around them.
fn entry_len(entry: &openraft::Entry<TypeConfig>) -> usize {
    const OVERHEAD: usize = 64;
    OVERHEAD
        + match &entry.payload {
            EntryPayload::Blank => 0,
            EntryPayload::Normal(Proposal(ops)) => {
                ops.iter().map(|op| op.payload_len() + OVERHEAD).sum()
            }
            // a few node ids
            EntryPayload::Membership(_) => 1024,
        }
}

/// The first part of `req` to send: its first entries, at most `max_bytes` of them (one entry
/// at least), with a commit no further than the last of them (a follower must not commit
/// entries it has not been sent in this term); and whether entries were left out. A request
/// within the limit, or a heartbeat, stays whole.
pub fn first_part(
    mut req: AppendEntriesRequest<TypeConfig>,
    max_bytes: usize,
) -> (AppendEntriesRequest<TypeConfig>, bool) {
    let mut bytes = 0;
    let fits = req
        .entries
        .iter()
        .take_while(|entry| {
            bytes += entry_len(entry);
            bytes <= max_bytes
        })
        .count()
        .max(1);
    if fits >= req.entries.len() {
        return (req, false);
    }
    req.entries.truncate(fits);
    let last = req.entries.last().map(|e| e.log_id);
    req.leader_commit = req.leader_commit.min(last);
    (req, true)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use openraft::{CommittedLeaderId, Entry, LogId, Vote};

    use super::*;
    use crate::core::Op;

    fn entry(index: u64, value_len: usize) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(3, 0), index),
            payload: EntryPayload::Normal(Proposal(vec![Op::Put {
                key: Bytes::from(format!("k{index}")),
                value: Bytes::from(vec![0; value_len]),
            }])),
        }
    }

    fn request(entries: Vec<Entry<TypeConfig>>, commit: u64) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(3, 0),
            prev_log_id: Some(LogId::new(CommittedLeaderId::new(2, 0), 10)),
            leader_commit: Some(LogId::new(CommittedLeaderId::new(3, 0), commit)),
            entries,
        }
    }

    type Fields = (
        Vote<u64>,
        Option<LogId<u64>>,
        Option<LogId<u64>>,
        Vec<Entry<TypeConfig>>,
    );

    fn fields(req: &AppendEntriesRequest<TypeConfig>) -> Fields {
        let r = req.clone();
        (r.vote, r.prev_log_id, r.leader_commit, r.entries)
    }

    #[test]
    fn an_append_within_the_limit_stays_whole() {
        let req = request((11..=20).map(|i| entry(i, 100)).collect(), 15);
        let (part, rest) = first_part(req.clone(), 4096);
        assert_eq!((fields(&part), rest), (fields(&req), false));
        let heartbeat = request(Vec::new(), 15);
        let (part, rest) = first_part(heartbeat.clone(), 1);
        assert_eq!((fields(&part), rest), (fields(&heartbeat), false));
    }

    #[test]
    fn a_large_append_sends_its_first_entries_and_commits_only_what_they_carry() {
        // ten entries of ~1 KiB under a 3 KiB limit; the commit at the ninth
        let entries: Vec<_> = (11..=20).map(|i| entry(i, 1000)).collect();
        let req = request(entries.clone(), 19);
        let (part, rest) = first_part(req.clone(), 3 * 1024);
        assert!(rest);
        let n = part.entries.len();
        assert!((1..=3).contains(&n), "{n} entries");
        assert_eq!(part.entries, entries[..n]);
        assert!(part.entries.iter().map(entry_len).sum::<usize>() <= 3 * 1024);
        assert_eq!((part.vote, part.prev_log_id), (req.vote, req.prev_log_id));
        assert_eq!(part.leader_commit, part.entries.last().map(|e| e.log_id));
        // a commit behind the part stays where it was
        let (part, _) = first_part(request(entries, 5), 3 * 1024);
        assert_eq!(
            part.leader_commit,
            Some(LogId::new(CommittedLeaderId::new(3, 0), 5))
        );
    }

    #[test]
    fn an_entry_larger_than_the_limit_goes_alone() {
        let req = request(vec![entry(11, 10_000), entry(12, 10)], 12);
        let (part, rest) = first_part(req, 1024);
        assert_eq!((part.entries.len(), rest), (1, true));
    }
}
