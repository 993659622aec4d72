//! openraft's network, as troupe messages: each RPC is a call to the target replica's Raft
//! name (a facet of the replica actor), local or over QUIC, with the deadline openraft gives.

use openraft::EmptyNode;
use openraft::error::{NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use troupe_runtime::{Addr, CallError, Reply};

use super::{RaftFailure, RaftRpc, TypeConfig};

/// Every replica's Raft handle, by replica number.
#[derive(Clone, Debug)]
pub struct Network {
    peers: Vec<Addr<RaftRpc>>,
}

impl Network {
    /// The network of a replica whose peers (itself included) are `peers`, by replica number.
    pub fn new(peers: Vec<Addr<RaftRpc>>) -> Self {
        Self { peers }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, _node: &EmptyNode) -> Peer {
        Peer {
            target,
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
    /// `None` for a replica number the database does not have
    addr: Option<Addr<RaftRpc>>,
}

type Rpc<T, E = openraft::error::Infallible> =
    Result<T, RPCError<u64, EmptyNode, RaftError<u64, E>>>;

impl Peer {
    async fn call<T, E>(
        &self,
        make: impl FnOnce(Reply<Result<T, RaftFailure>>) -> RaftRpc,
        option: &RPCOption,
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
        match addr.call(make, option.hard_ttl()).await {
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
        self.call(|reply| RaftRpc::Append { req: rpc, reply }, &option)
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<u64>, openraft::error::InstallSnapshotError> {
        self.call(|reply| RaftRpc::Snapshot { req: rpc, reply }, &option)
            .await
    }

    async fn vote(&mut self, rpc: VoteRequest<u64>, option: RPCOption) -> Rpc<VoteResponse<u64>> {
        self.call(|reply| RaftRpc::Vote { req: rpc, reply }, &option)
            .await
    }
}
