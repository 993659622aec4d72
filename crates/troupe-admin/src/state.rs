//! What `/state` answers: the nodes of one process, as plain serializable types.

use serde::{Deserialize, Serialize};
#[cfg(feature = "server")]
use troupe_runtime::Mesh;
#[cfg(feature = "server")]
use troupe_runtime::remote::MemberStatus;

/// The nodes of one process (`GET /state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessState {
    /// Whether the topology has started and not begun to stop.
    pub ready: bool,
    /// The live nodes of this process, by name.
    pub nodes: Vec<NodeState>,
}

/// One node of the process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// The node's name.
    pub name: String,
    /// The actors registered on it, sorted by name, with their counters.
    pub actors: Vec<ActorState>,
    /// Its network endpoint, for a node on the network; `None` in a one-process run.
    pub network: Option<NetState>,
}

/// One actor and its counters (as the runtime's `ActorStats` reports them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorState {
    /// The name it is registered under.
    pub name: String,
    /// Messages in its mailbox, not yet handled.
    pub mailbox_depth: usize,
    /// Messages its instances took from their mailbox, restarts included.
    pub messages_received: u64,
    /// Messages its handlers sent.
    #[serde(default)]
    pub messages_sent: u64,
    /// Messages refused at the mailbox limit.
    pub messages_dropped: u64,
    /// Times it was started again after its first start.
    pub restarts: u64,
    /// Messages waiting for its next instance while it restarts.
    pub parked: usize,
}

/// A node's network endpoint and the cluster as it sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetState {
    /// The UDP address it listens on.
    pub listen: String,
    /// This run of the node (changes on every restart).
    pub incarnation: u64,
    /// The other members it knows of, sorted by name.
    pub members: Vec<MemberState>,
    /// Calls to other nodes waiting for their reply.
    pub pending_calls: usize,
}

/// One member as a node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberState {
    /// The member's node name.
    pub name: String,
    /// `up`, `down` or `left`.
    pub status: String,
    /// The run of the member it last heard from.
    pub incarnation: u64,
}

#[cfg(feature = "server")]
impl ProcessState {
    /// The state of every live node of `mesh` now.
    pub fn of(mesh: &Mesh, ready: bool) -> Self {
        let nodes = mesh
            .node_names()
            .into_iter()
            .filter_map(|name| {
                let node = mesh.node(&name)?;
                let actors = node
                    .actor_stats()
                    .into_iter()
                    .map(|s| ActorState {
                        name: s.name,
                        mailbox_depth: s.mailbox_depth,
                        messages_received: s.messages_handled,
                        messages_sent: s.messages_sent,
                        messages_dropped: s.dropped,
                        restarts: s.restarts,
                        parked: s.parked,
                    })
                    .collect();
                let network = mesh.net(&name).map(|net| NetState {
                    listen: net.local_addr().to_string(),
                    incarnation: net.incarnation(),
                    members: net
                        .members()
                        .into_iter()
                        .map(|(name, status, incarnation)| MemberState {
                            name,
                            status: status_name(status).to_string(),
                            incarnation,
                        })
                        .collect(),
                    pending_calls: net.pending_calls(),
                });
                Some(NodeState {
                    name,
                    actors,
                    network,
                })
            })
            .collect();
        Self { ready, nodes }
    }
}

#[cfg(feature = "server")]
fn status_name(status: MemberStatus) -> &'static str {
    match status {
        MemberStatus::Up => "up",
        MemberStatus::Down => "down",
        MemberStatus::Left => "left",
    }
}

/// One replicated database as the admin endpoint reports it (`GET /db`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbState {
    /// The name it was added under.
    pub name: String,
    /// Its replicas, replica 0 first.
    pub replicas: Vec<ReplicaState>,
}

/// One database replica: what it answered to a status request, or why it did not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    /// Its actor name (`NAME.i`).
    pub name: String,
    /// The node it runs on.
    pub node: String,
    /// `leader`, `follower`, `fenced`, ...; `None` if it did not answer.
    pub role: Option<String>,
    /// The newest epoch (term) it has seen.
    pub epoch: u64,
    /// Its log's last index.
    pub last_index: u64,
    /// The highest index applied to its state (its commit index).
    pub applied_index: u64,
    /// Entries it is behind the leader's log (`None` without a leader that answered).
    pub lag: Option<u64>,
    /// Why it did not answer, or why its storage refuses changes.
    pub error: Option<String>,
}

/// What a promotion did (`POST /db/NAME/promote`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotedState {
    /// The replica that leads now (its actor name).
    pub leader: String,
    /// The epoch it leads in.
    pub epoch: u64,
}

/// One queue's counts (`GET /queue`), or why it did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueState {
    /// The name it was added under.
    pub name: String,
    /// Items waiting for a consumer.
    pub ready: u64,
    /// Items leased to a consumer.
    pub leased: u64,
    /// Dead letters.
    pub dead: u64,
    /// Items enqueued since the queue's actor started.
    pub enqueued: u64,
    /// Items acknowledged since then.
    pub acked: u64,
    /// Redeliveries since then.
    pub redelivered: u64,
    /// Why it did not answer (the counts are then 0).
    pub error: Option<String>,
}

/// One dead letter (`GET /queue/NAME/dead-letters`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterState {
    /// Its item id (what `POST /queue/NAME/replay/ID` takes).
    pub item: u64,
    /// Deliveries it got.
    pub attempts: u32,
    /// Why the last one failed.
    pub reason: String,
    /// Its payload's size in bytes.
    pub bytes: usize,
    /// The start of its payload as text (at most 64 bytes, invalid UTF-8 replaced).
    pub preview: String,
}

/// The most of a dead letter's payload [`DeadLetterState::preview`] shows.
pub const PREVIEW_BYTES: usize = 64;

impl DeadLetterState {
    /// The preview of `payload`: its first [`PREVIEW_BYTES`] bytes as text.
    pub fn preview_of(payload: &[u8]) -> String {
        String::from_utf8_lossy(&payload[..payload.len().min(PREVIEW_BYTES)]).into_owned()
    }
}

/// Where the failover groups of the topology run, and what operators directed
/// (`GET /placement`), as the cluster's metadata group holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PlacementState {
    /// Each failover group, in declaration order.
    pub groups: Vec<GroupPlacementState>,
    /// The nodes being drained (`troupe drain`): out of every group's order.
    pub drained: Vec<String>,
    /// Why the operators' directions could not be read (`drained` and each group's
    /// `moved_to` and `directed` are then unknown and shown empty or as declared).
    pub error: Option<String>,
}

/// One failover group: its order, as declared and as directed now, and its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupPlacementState {
    /// The group's name (`NAME.failover` for an actor placed with `failover_to`).
    pub name: String,
    /// The nodes it may run on, in the order the topology declares.
    pub order: Vec<String>,
    /// The order the nodes follow now: the node it was moved to first, drained nodes left out
    /// (the live nodes playing `roles` follow these, in name order).
    pub directed: Vec<String>,
    /// The roles whose nodes may run it after the nodes of `order`: nodes the topology gives
    /// the role, and nodes that join the cluster with it.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Whether it moves back to an earlier node of `directed` that is live again (declared
    /// takeover, or a move).
    pub takeover: bool,
    /// The node an operator moved it to (`troupe move`), until the move is cleared.
    pub moved_to: Option<String>,
    /// The node its lease names: where it runs, or ran last (`None`: never placed).
    pub holder: Option<String>,
    /// The lease record's generation, bumped by every write of it.
    pub generation: u64,
    /// The holder is handing it over: it works off the messages it has, then stops.
    pub draining: bool,
    /// The holder stopped it and gave the lease up; the next node claims it.
    pub released: bool,
    /// Why its lease could not be read (the lease fields are then empty).
    pub error: Option<String>,
}

impl GroupPlacementState {
    /// Whether its lease names `node`: the group runs there, is being handed over from there,
    /// or was released there and not yet claimed elsewhere.
    pub fn held_by(&self, node: &str) -> bool {
        self.holder.as_deref() == Some(node)
    }
}
