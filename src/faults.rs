//! Faults injected on purpose from inside a running topology: links between nodes cut and
//! healed, actors crashed — for learning what a distributed system does when its parts fail,
//! for demos and for tests, the same in one process as across hosts, with no firewall rules.
//!
//! [`Faults::on_every_node`] puts a small injector actor on each node of a topology (named
//! [`FAULTS_NAME`]`.NODE`, so no two nodes publish one name) and returns a client that reaches
//! all of them:
//!
//! ```no_run
//! # async fn demo() -> Result<(), troupe::faults::FaultError> {
//! use troupe::prelude::*;
//! use troupe::faults::Faults;
//! let mut t = Topology::new("demo");
//! for name in ["edge", "app", "data"] {
//!     t.node(name);
//! }
//! let faults = Faults::on_every_node(&mut t);
//! // ... launch the topology, then:
//! faults.partition(&["app"], &["edge", "data"]).await?; // app cut off from the others
//! faults.heal().await;
//! # Ok(()) }
//! ```
//!
//! A cut link goes silent as a partition does (see
//! [`NodeNet::cut_link`](troupe_runtime::remote::NodeNet::cut_link)): nodes cut off from each
//! other with no node left that reaches both report each other down within their peer-down
//! timeout (two nodes that still both reach a third stay up everywhere, the third relaying
//! their probes), calls across the cut time out, and the link comes back once healed. Cuts act on the QUIC path only, so nodes of one process must be routed over
//! QUIC (`--quic`) for a cut between them to hold.
//!
//! The injector accepts requests from **every node of the cluster**: a node that may send it a
//! message can partition the cluster. Add it to topologies meant to be broken on purpose, not
//! to production ones.

use std::time::Duration;

use futures::future::join_all;
use serde::{Deserialize, Serialize};
use troupe_runtime::{Actor, ActorError, Addr, CallError, Ctx, Message, Reach, Reply};

use crate::topology::{PartExt, Topology};

/// The prefix of each node's injector's name: node `edge`'s is `troupe.faults.edge`.
pub const FAULTS_NAME: &str = "troupe.faults";

/// How long the client waits for one injector's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// What a node's injector does on request.
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "troupe.Faults")]
pub enum FaultMsg {
    /// Cut this node's links to `peers`; answered with every peer it is cut off from now.
    Cut {
        /// The peers to cut this node off from.
        peers: Vec<String>,
        /// The answer.
        reply: Reply<Result<Vec<String>, FaultError>>,
    },
    /// Heal every link this node cut; answered with the peers healed.
    Heal(Reply<Vec<String>>),
    /// Kill actor `actor` on this node as a crash would (its supervisor restarts it by its
    /// policy); answered with whether it was running here.
    Kill {
        /// The actor's registered name.
        actor: String,
        /// The answer.
        reply: Reply<bool>,
    },
    /// Kill every actor on this node but this injector, as a crash of its process would;
    /// answered with the names killed.
    KillAll(Reply<Vec<String>>),
    /// Answered with what this node is cut off from and which process it runs in.
    Status(Reply<FaultStatus>),
}

/// One node's state as its injector reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultStatus {
    /// The node.
    pub node: String,
    /// The peers it is cut off from, sorted.
    pub cut_from: Vec<String>,
    /// A number drawn at random once per process: nodes that report the same one run in the
    /// same process (operating system process ids repeat across containers).
    pub process: u64,
}

/// This process's [`FaultStatus::process`].
fn this_process() -> u64 {
    static ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    // std's hasher keys are random per process: no random-number crate needed for one number
    *ID.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.finish()
    })
}

/// Why a fault could not be injected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum FaultError {
    /// The node has no network endpoint (nodes of one process are routed in memory unless
    /// `--quic`): there is no link to cut.
    #[error("node {0} has no network endpoint to cut (run one process with --quic)")]
    NoNetwork(String),
    /// The node does not know a peer of that name.
    #[error("node {node} knows no peer {peer}")]
    UnknownPeer {
        /// The node asked to cut.
        node: String,
        /// The peer it does not know.
        peer: String,
    },
    /// The topology declares no such node.
    #[error("no node {0} in this topology")]
    UnknownNode(String),
    /// The node's injector could not be reached or did not answer.
    #[error("node {node} did not answer: {cause}")]
    Unreachable {
        /// The node.
        node: String,
        /// Why.
        cause: String,
    },
}

/// The injector on one node; see the [module docs](self).
#[derive(Debug, Default, Clone, Copy)]
pub struct FaultInjector;

impl Actor for FaultInjector {
    type Msg = FaultMsg;

    async fn handle(&mut self, msg: FaultMsg, ctx: &mut Ctx<FaultMsg>) -> Result<(), ActorError> {
        let node = ctx.node().name().to_string();
        let net = ctx.node().mesh().net(&node);
        match msg {
            FaultMsg::Cut { peers, reply } => {
                let Some(net) = net else {
                    reply.send(Err(FaultError::NoNetwork(node)));
                    return Ok(());
                };
                // all or nothing: every peer must be known before any link is cut
                let known: Vec<String> = net.members().into_iter().map(|(n, _, _)| n).collect();
                if let Some(peer) = peers.iter().find(|p| !known.contains(p) || **p == node) {
                    let peer = peer.clone();
                    reply.send(Err(FaultError::UnknownPeer { node, peer }));
                    return Ok(());
                }
                for peer in &peers {
                    if net.cut_link(peer).is_err() {
                        let peer = peer.clone();
                        reply.send(Err(FaultError::UnknownPeer { node, peer }));
                        return Ok(());
                    }
                }
                reply.send(Ok(net.cut_links()));
            }
            FaultMsg::Heal(reply) => {
                let healed = net.map_or_else(Vec::new, |net| {
                    let cut = net.cut_links();
                    cut.into_iter().filter(|p| net.heal_link(p)).collect()
                });
                reply.send(healed);
            }
            FaultMsg::Kill { actor, reply } => {
                reply.send(ctx.node().kill(&actor));
            }
            FaultMsg::KillAll(reply) => {
                let me = ctx.name().to_string();
                let killed = ctx
                    .node()
                    .names()
                    .into_iter()
                    .filter(|name| *name != me && ctx.node().kill(name))
                    .collect();
                reply.send(killed);
            }
            FaultMsg::Status(reply) => {
                reply.send(FaultStatus {
                    cut_from: net.map_or_else(Vec::new, |n| n.cut_links()),
                    node,
                    process: this_process(),
                });
            }
        }
        Ok(())
    }
}

/// Reaches the injector of every node of a topology; see the [module docs](self).
///
/// Every request has a deadline (2 s per node); a node that does not answer is reported, not
/// waited for.
#[derive(Clone, Debug)]
pub struct Faults {
    nodes: Vec<(String, Addr<FaultMsg>)>,
}

impl Faults {
    /// Adds an injector to every node `topology` declares so far (declare the nodes first) and
    /// returns the client that reaches them.
    pub fn on_every_node(topology: &mut Topology) -> Self {
        let names: Vec<String> = topology
            .node_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        let nodes = names
            .into_iter()
            .map(|name| {
                let id = topology.node(&name);
                let addr = topology.add(
                    id,
                    &format!("{FAULTS_NAME}.{name}"),
                    (|| FaultInjector).reachable_from(Reach::cluster()),
                );
                (name, addr)
            })
            .collect();
        Self { nodes }
    }

    /// The nodes reached, in declaration order.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|(n, _)| n.as_str())
    }

    fn injector(&self, node: &str) -> Result<&Addr<FaultMsg>, FaultError> {
        self.nodes
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, a)| a)
            .ok_or_else(|| FaultError::UnknownNode(node.to_string()))
    }

    /// Cuts every link between the nodes of `side` and those of `other` (a node in both is
    /// skipped). Each link is cut at one end only — which is enough, both ways — preferring an
    /// end in this process, so that [`Faults::heal`] from here always reaches it.
    ///
    /// # Errors
    /// The first node that refused or did not answer; links cut before it stay cut.
    ///
    /// # Cancel safety
    /// Dropped early, some links may be cut and others not; [`Faults::heal`] undoes them.
    pub async fn partition(&self, side: &[&str], other: &[&str]) -> Result<(), FaultError> {
        let mut here = Vec::new();
        for node in side.iter().chain(other) {
            // one that does not answer is taken for another process's; cutting it fails below
            if let Ok(status) = self.status(node).await
                && status.process == this_process()
            {
                here.push(node.to_string());
            }
        }
        let mut cuts: Vec<(String, Vec<String>)> = Vec::new();
        for a in side {
            for b in other.iter().filter(|b| *b != a) {
                let (at, peer) = if here.iter().any(|h| h == a) || !here.iter().any(|h| h == b) {
                    (a, b)
                } else {
                    (b, a)
                };
                match cuts.iter_mut().find(|(n, _)| n == at) {
                    Some((_, peers)) => peers.push(peer.to_string()),
                    None => cuts.push((at.to_string(), vec![peer.to_string()])),
                }
            }
        }
        // ends in other processes first: a cut made here first could cut this process off
        // from them
        cuts.sort_by_key(|(at, _)| here.contains(at));
        for (at, peers) in cuts {
            self.cut(&at, peers).await?;
        }
        Ok(())
    }

    /// Cuts node `at`'s links to `peers`; the peers `at` is cut off from now.
    ///
    /// # Errors
    /// [`FaultError`] if `at` is unknown, unreachable, has no endpoint or does not know a peer.
    ///
    /// # Cancel safety
    /// Dropped early, the cut may or may not be made.
    pub async fn cut(&self, at: &str, peers: Vec<String>) -> Result<Vec<String>, FaultError> {
        self.injector(at)?
            .call(|reply| FaultMsg::Cut { peers, reply }, ANSWER_TIMEOUT)
            .await
            .map_err(|e| unreachable(at, &e))?
    }

    /// Heals every cut link of every node, all asked at once; each node with what it healed,
    /// or why it could not be asked.
    ///
    /// A node that does not answer is asked again, up to three more times a second apart: one
    /// cut off from this process only by a link that another node here heals in the first
    /// round is reached once that link is back. (A node cut off by a cut made from another
    /// process, and enforced there, stays out of reach: heal from that process.)
    ///
    /// # Cancel safety
    /// Dropped early, some nodes may have healed and others not.
    pub async fn heal(&self) -> Vec<(String, Result<Vec<String>, FaultError>)> {
        let ask = |node: &str, addr: &Addr<FaultMsg>| {
            let (node, addr) = (node.to_string(), addr.clone());
            async move {
                let healed = addr
                    .call(FaultMsg::Heal, ANSWER_TIMEOUT)
                    .await
                    .map_err(|e| unreachable(&node, &e));
                (node, healed)
            }
        };
        let mut answers = join_all(self.nodes.iter().map(|(n, a)| ask(n, a))).await;
        for _ in 0..3 {
            if answers.iter().all(|(_, healed)| healed.is_ok()) {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let again = answers
                .iter()
                .filter(|(_, h)| h.is_err())
                .filter_map(|(node, _)| self.injector(node).ok().map(|addr| ask(node, addr)));
            for (node, healed) in join_all(again).await {
                if let Some(slot) = answers.iter_mut().find(|(n, _)| *n == node) {
                    slot.1 = healed;
                }
            }
        }
        answers
    }

    /// Kills actor `actor` on every node that runs one, as a crash would; the nodes it ran on.
    ///
    /// # Cancel safety
    /// Dropped early, the actor may or may not have been killed.
    pub async fn kill(&self, actor: &str) -> Vec<String> {
        let asks = self.nodes.iter().map(|(node, addr)| async move {
            let actor = actor.to_string();
            let killed = addr
                .call(|reply| FaultMsg::Kill { actor, reply }, ANSWER_TIMEOUT)
                .await;
            (node.clone(), matches!(killed, Ok(true)))
        });
        join_all(asks)
            .await
            .into_iter()
            .filter_map(|(node, killed)| killed.then_some(node))
            .collect()
    }

    /// Kills actor `actor` on node `node` only, as a crash would; whether it ran there.
    ///
    /// # Errors
    /// [`FaultError::UnknownNode`] or [`FaultError::Unreachable`].
    ///
    /// # Cancel safety
    /// Dropped early, the actor may or may not have been killed.
    pub async fn kill_on(&self, node: &str, actor: &str) -> Result<bool, FaultError> {
        let actor = actor.to_string();
        self.injector(node)?
            .call(|reply| FaultMsg::Kill { actor, reply }, ANSWER_TIMEOUT)
            .await
            .map_err(|e| unreachable(node, &e))
    }

    /// Crashes node `node` as others see a machine that died and is restarted later: every
    /// actor on it is killed (its supervisors start them again, empty, as a restarted process
    /// would), then it is cut off from every other node (silent, as a dead machine is) until
    /// [`Faults::heal`]; the actors killed.
    ///
    /// # Errors
    /// As [`Faults::partition`].
    ///
    /// # Cancel safety
    /// As [`Faults::partition`].
    pub async fn crash(&self, node: &str) -> Result<Vec<String>, FaultError> {
        let killed = self
            .injector(node)?
            .call(FaultMsg::KillAll, ANSWER_TIMEOUT)
            .await
            .map_err(|e| unreachable(node, &e))?;
        let others: Vec<&str> = self.nodes().filter(|n| *n != node).collect();
        self.partition(&[node], &others).await?;
        Ok(killed)
    }

    /// Node `node`'s state.
    ///
    /// # Errors
    /// [`FaultError::UnknownNode`] or [`FaultError::Unreachable`].
    ///
    /// # Cancel safety
    /// Cancel safe: it only asks.
    pub async fn status(&self, node: &str) -> Result<FaultStatus, FaultError> {
        self.injector(node)?
            .call(FaultMsg::Status, ANSWER_TIMEOUT)
            .await
            .map_err(|e| unreachable(node, &e))
    }
}

fn unreachable(node: &str, err: &CallError) -> FaultError {
    FaultError::Unreachable {
        node: node.to_string(),
        cause: err.to_string(),
    }
}
