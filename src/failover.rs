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

pub use troupe_failover::{DbRegister, Directions, LeaseConfig, RegisterError};

use troupe_failover::{FailoverChild, FailoverUnit, Placement, PlacementDriver, Prepared};
use troupe_runtime::placed::Gate;
use troupe_runtime::{
    Actor, Addr, ChildOptions, ChildSpec, DEFAULT_MAILBOX_LIMIT, Mesh, Node, NodeConfig, Reach,
    RegistryError, SupervisorSpec,
};

use crate::topology::{GroupId, LaunchError, NodeId, Part, Place, Topology};

/// An actor factory placed with failover ([`FailoverExt::failover_to`]): runs on the node it
/// is added on, or on the next live node of `others` while that one is down.
#[derive(Clone)]
pub struct Failover<F> {
    factory: F,
    others: Vec<NodeId>,
    takeover: bool,
    roles: Vec<String>,
    options: ChildOptions,
    spec: SupervisorSpec,
}

impl<F> Failover<F> {
    /// When a node earlier in the order comes back, the child moves back to it (OTP's
    /// takeover). Without it the child stays where it runs until that node goes.
    pub fn takeover(mut self) -> Self {
        self.takeover = true;
        self
    }

    /// After the nodes it was given, the nodes playing `role` may run it too, in name order
    /// (see [`Topology::failover_role`]): a node can then join the cluster with the role and
    /// take the child over, without being declared in the topology.
    pub fn or_role(mut self, role: &str) -> Self {
        self.roles.push(role.to_string());
        self
    }

    /// The spec of the failover group the child runs in (default: one-for-one, which keeps
    /// restarting a crash loop where it runs). With
    /// [`escalate_when_exceeded`](SupervisorSpec::escalate_when_exceeded), a child that
    /// crashes past the spec's intensity on a node makes that node give it up to the next.
    pub fn supervised(mut self, spec: SupervisorSpec) -> Self {
        self.spec = spec;
        self
    }

    /// Sets the child's restart type, mailbox limit and reach.
    pub fn options(mut self, options: ChildOptions) -> Self {
        self.options = options;
        self
    }
}

/// `.failover_to(nodes)` on an actor factory.
pub trait FailoverExt<A: Actor>: Fn() -> A + Send + Sync + Sized + 'static {
    /// This actor, on the node it is added on or, while that node is down, on the first live
    /// node of `others`, in order: `t.add(app1, "orders", (|| Orders).failover_to([app2]))`.
    /// It runs in a failover group of its own, `NAME.failover`
    /// ([`Topology::failover_group`]). The topology needs a metadata group
    /// ([`Topology::metadata`]).
    fn failover_to(self, others: impl IntoIterator<Item = NodeId>) -> Failover<Self> {
        Failover {
            factory: self,
            others: others.into_iter().collect(),
            takeover: false,
            roles: Vec::new(),
            options: ChildOptions::permanent(),
            spec: SupervisorSpec::one_for_one(),
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
        let order = std::iter::once(first).chain(self.others);
        let group = topology.failover_group(&format!("{name}.failover"), order, self.spec);
        if self.takeover {
            topology.takeover(group);
        }
        for role in &self.roles {
            topology.failover_role(group, role);
        }
        topology.add_with(group, name, self.options, self.factory)
    }
}

/// A failover group's nodes in order of preference, whether it moves back, and the roles
/// whose nodes may run it after those
#[derive(Debug, Clone)]
pub(crate) struct FailoverOrder {
    pub(crate) nodes: Vec<String>,
    pub(crate) takeover: bool,
    pub(crate) roles: Vec<String>,
}

/// Where a topology's leases are kept and how long they run.
#[derive(Default)]
pub(crate) struct FailoverDecls {
    pub(crate) metadata: Option<troupe_db::DbClient>,
    pub(crate) lease: LeaseConfig,
}

/// The name of the metadata group's database
pub const METADATA_NAME: &str = "troupe.meta";

impl Topology {
    /// Declares the cluster's metadata group: a database in Raft mode with one replica on
    /// each of `nodes` (three or five, so that it survives one or two of them), its files
    /// under `dir`. It records where failover groups run; every node of the topology reads
    /// it. Returns its client (it is an ordinary troupe database).
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

    /// Sets the lease every failover group is placed under (default: a 3 s term renewed
    /// every second; see [`LeaseConfig`]). Longer terms ride out longer pauses and slower
    /// metadata groups; shorter ones fail over sooner.
    pub fn lease(&mut self, config: LeaseConfig) {
        self.failover_mut().lease = config;
    }
}

/// One failover group as the nodes of this process see it
struct GroupPlan {
    id: GroupId,
    child: FailoverChild,
}

/// What each node of a topology with failover groups runs besides its declared actors.
pub(crate) struct NodeFailover {
    groups: Vec<GroupPlan>,
    register: Arc<DbRegister>,
    lease: LeaseConfig,
}

impl NodeFailover {
    /// Checks the declarations and learns each group's names (by making it on a node of
    /// its own, which is then dropped); `None` when there are no failover groups.
    pub(crate) fn new(
        decls: &FailoverDecls,
        groups: Vec<(GroupId, String, FailoverOrder)>,
        build: impl Fn(&Node, GroupId) -> Result<ChildSpec, RegistryError>,
    ) -> Result<Option<Self>, LaunchError> {
        if groups.is_empty() {
            return Ok(None);
        }
        let Some(metadata) = &decls.metadata else {
            return Err(LaunchError::NoMetadata);
        };
        decls
            .lease
            .check()
            .map_err(|e| LaunchError::Flags(e.to_string()))?;
        let mut plans = Vec::with_capacity(groups.len());
        let mut seen = std::collections::HashSet::new();
        for (id, name, order) in groups {
            let probe = Node::new(
                "troupe.placement.probe",
                &Mesh::new(),
                NodeConfig::default(),
            )?;
            let spec = build(&probe, id)?;
            let names: Vec<String> = probe.names();
            spec.discard();
            if let Some(twice) = names
                .iter()
                .chain([&name])
                .find(|n| !seen.insert((*n).clone()))
            {
                return Err(LaunchError::Flags(format!(
                    "{twice:?} is declared in two failover groups"
                )));
            }
            plans.push(GroupPlan {
                id,
                child: FailoverChild::new(
                    &name,
                    names,
                    Placement::new(order.nodes, order.takeover).with_roles(order.roles),
                    DEFAULT_MAILBOX_LIMIT,
                ),
            });
        }
        Ok(Some(Self {
            register: Arc::new(DbRegister::new(metadata, decls.lease.renew_after)),
            groups: plans,
            lease: decls.lease,
        }))
    }

    /// Declares every group's names in `node`'s process (so handles follow them), makes the
    /// groups whose order names `node` on it (with `build`), gated, and makes the node's
    /// placement driver.
    pub(crate) fn driver_child(
        &self,
        node: &Node,
        maker: impl Fn(GroupId) -> troupe_failover::driver::MakeChild,
    ) -> Result<ChildSpec, RegistryError> {
        let mesh = node.mesh();
        let mut units = Vec::with_capacity(self.groups.len());
        for plan in &self.groups {
            let child = &plan.child;
            for name in child.names() {
                mesh.place(name, child.mailbox_limit());
            }
            let plays = node.roles_of(node.name());
            let eligible = child
                .placement()
                .admits(node.name(), &|r| plays.contains(r));
            if !eligible && let Some(taken) = child.names().iter().find(|n| node.is_registered(n)) {
                // every handle to it in this process goes to the failover group
                units
                    .into_iter()
                    .filter_map(|u: FailoverUnit| u.here)
                    .for_each(|p| p.spec.discard());
                return Err(RegistryError::AlreadyRegistered {
                    node: node.name().to_string(),
                    name: taken.clone(),
                });
            }
            let make = maker(plan.id);
            let here = match eligible {
                true => match make(node) {
                    Ok(spec) => {
                        let gate = Gate::new();
                        for name in child.names() {
                            node.gate(name, gate.clone());
                        }
                        Some(Prepared { spec, gate, make })
                    }
                    Err(err) => {
                        units
                            .into_iter()
                            .filter_map(|u: FailoverUnit| u.here)
                            .for_each(|p| p.spec.discard());
                        return Err(err);
                    }
                },
                false => None,
            };
            units.push(FailoverUnit {
                child: child.clone(),
                here,
            });
        }
        let (register, lease) = (self.register.clone(), self.lease);
        node.child(
            troupe_failover::DRIVER_NAME,
            ChildOptions::permanent(),
            move || PlacementDriver::new(register.clone(), lease, units.clone()),
        )
        .map(|(spec, _)| spec)
    }
}
