//! Failover children in a [`Topology`]: an actor placed on one node of a list at a time,
//! moving to the next live node when its node goes.
//!
//! ```
//! use troupe::prelude::*;
//! # #[derive(Clone)] struct Orders;
//! # impl Actor for Orders { type Msg = NoMessages; }
//! # let dir = tempfile::tempdir().unwrap();
//! let mut t = Topology::new("shop");
//! let (app1, app2) = (t.node("app-1"), t.node("app-2"));
//! let data: Vec<_> = ["data-1", "data-2", "data-3"].iter().map(|n| t.node(n)).collect();
//! // the cluster's metadata group: a small Raft group that records who runs what
//! t.metadata(data, dir.path());
//! // on app-1, or on app-2 while app-1 is down
//! let orders = t.add(app1, "orders", (|| Orders).failover_to([app2]));
//! # let _ = orders;
//! ```
//!
//! Which node runs the child is decided by the cluster's agreed state, not by each node's
//! view: a lease in the metadata group, which a node renews while it runs the child, and
//! which another claims only once it has run out (see `troupe-placement`). So the child runs
//! on at most one node at any time, even across a partition; a node cut off from the
//! majority stops it before another can start it. Handles to it follow it: sends while
//! nobody runs it park (casts, within its mailbox limit) or wait (calls, within their
//! timeout).

use std::path::PathBuf;
use std::sync::Arc;

use troupe_failover::{DbRegister, FailoverChild, LeaseConfig, Placement, PlacementDriver};
use troupe_runtime::{Actor, Addr, ChildOptions, Node, Reach, RegistryError};

use crate::topology::{NodeId, Part, Place, Topology};

/// An actor factory placed with failover ([`FailoverExt::failover_to`]): runs on the node it
/// is added on, or on the next live node of `others` while that one is down.
#[derive(Clone)]
pub struct Failover<F> {
    factory: F,
    others: Vec<NodeId>,
    takeover: bool,
    options: ChildOptions,
}

impl<F> Failover<F> {
    /// When a node earlier in the order comes back, the child moves back to it (OTP's
    /// takeover). Without it the child stays where it runs until that node goes.
    pub fn takeover(mut self) -> Self {
        self.takeover = true;
        self
    }

    /// Sets the child's restart type, mailbox limit (which also bounds the casts parked
    /// while it moves) and reach.
    pub fn options(mut self, options: ChildOptions) -> Self {
        self.options = options;
        self
    }
}

/// `.failover_to(nodes)` on an actor factory.
pub trait FailoverExt<A: Actor>: Fn() -> A + Send + Sync + Sized + 'static {
    /// This actor, on the node it is added on or, while that node is down, on the first live
    /// node of `others`, in order: `t.add(app1, "orders", (|| Orders).failover_to([app2]))`.
    /// The topology needs a metadata group ([`Topology::metadata`]).
    fn failover_to(self, others: impl IntoIterator<Item = NodeId>) -> Failover<Self> {
        Failover {
            factory: self,
            others: others.into_iter().collect(),
            takeover: false,
            options: ChildOptions::permanent(),
        }
    }
}

impl<A: Actor, F: Fn() -> A + Send + Sync + 'static> FailoverExt<A> for F {}

impl<A, F> Part for Failover<F>
where
    A: Actor,
    F: Fn() -> A + Send + Sync + 'static,
{
    type Handle = Addr<A::Msg>;

    fn place(self, topology: &mut Topology, place: Place, name: &str) -> Addr<A::Msg> {
        let first = topology.place_node(place);
        let mut order = vec![topology.node_name(first).to_string()];
        for node in self.others {
            let name = topology.node_name(node).to_string();
            if !order.contains(&name) {
                order.push(name);
            }
        }
        let options = match topology.declared_reach() {
            Some(reach) if self.options.reach == Reach::Local => {
                self.options.reachable_from(reach.clone())
            }
            _ => self.options,
        };
        let placement = Placement::new(order, self.takeover);
        let handle = topology.handle(first, name);
        topology.add_failover(FailoverChild::new(name, placement, options, self.factory));
        handle
    }
}

/// The failover children of a topology and where their leases are kept.
#[derive(Default)]
pub(crate) struct FailoverDecls {
    pub(crate) children: Vec<FailoverChild>,
    pub(crate) metadata: Option<troupe_db::DbClient>,
    pub(crate) lease: LeaseConfig,
}

/// The name of the metadata group's database
pub const METADATA_NAME: &str = "troupe.meta";

impl Topology {
    /// Declares the cluster's metadata group: a database in Raft mode with one replica on
    /// each of `nodes` (three or five, so that it survives one or two of them), its files
    /// under `dir`. It records where failover children run; every node of the topology
    /// reads it. Returns its client (it is an ordinary troupe database).
    pub fn metadata(
        &mut self,
        nodes: impl IntoIterator<Item = NodeId>,
        dir: impl Into<PathBuf>,
    ) -> troupe_db::DbClient {
        let nodes: Vec<NodeId> = nodes.into_iter().collect();
        let mut spec = troupe_db::DbSpec::new(METADATA_NAME, dir)
            .raft()
            .reachable_from(Reach::cluster());
        for &node in &nodes {
            spec = spec.replica(self.node_name(node));
        }
        let Some(&first) = nodes.first() else {
            // no member: every read and write fails typed (Unavailable), and so placement
            let client = troupe_db::DbClient::new(Vec::new());
            self.failover_mut().metadata = Some(client.clone());
            return client;
        };
        let client = self.add(first, METADATA_NAME, spec);
        self.failover_mut().metadata = Some(client.clone());
        client
    }

    /// Sets the lease every failover child is placed under (default: a 3 s term renewed
    /// every second; see [`LeaseConfig`]). Longer terms ride out longer pauses and slower
    /// metadata groups; shorter ones fail over sooner.
    pub fn lease(&mut self, config: LeaseConfig) {
        self.failover_mut().lease = config;
    }
}

/// What each node of a topology with failover children runs besides its declared actors.
pub(crate) struct NodeFailover {
    children: Vec<FailoverChild>,
    register: Arc<DbRegister>,
    lease: LeaseConfig,
}

impl NodeFailover {
    /// Checks the declarations; `None` when there are no failover children.
    pub(crate) fn from_decls(
        decls: FailoverDecls,
    ) -> Result<Option<Self>, crate::topology::LaunchError> {
        if decls.children.is_empty() {
            return Ok(None);
        }
        let Some(metadata) = decls.metadata else {
            return Err(crate::topology::LaunchError::NoMetadata);
        };
        let mut names = std::collections::HashSet::new();
        if let Some(twice) = decls.children.iter().find(|c| !names.insert(c.name())) {
            return Err(crate::topology::LaunchError::Flags(format!(
                "failover child {:?} declared twice",
                twice.name()
            )));
        }
        decls
            .lease
            .check()
            .map_err(|e| crate::topology::LaunchError::Flags(e.to_string()))?;
        Ok(Some(Self {
            register: Arc::new(DbRegister::new(&metadata, decls.lease.renew_after)),
            children: decls.children,
            lease: decls.lease,
        }))
    }

    /// Declares the children's names in `node`'s process (so handles follow them) and makes
    /// the node's placement driver.
    pub(crate) fn driver_child(
        &self,
        node: &Node,
    ) -> Result<troupe_runtime::ChildSpec, RegistryError> {
        let mesh = node.mesh();
        for child in &self.children {
            mesh.place(child.name(), child.mailbox_limit());
        }
        let (register, lease, children) =
            (self.register.clone(), self.lease, self.children.clone());
        node.child(
            troupe_failover::DRIVER_NAME,
            ChildOptions::permanent(),
            move || PlacementDriver::new(register.clone(), lease, children.clone()),
        )
        .map(|(spec, _)| spec)
    }
}
