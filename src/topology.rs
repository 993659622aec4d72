//! [`Topology`]: nodes, the actors placed on them and how they are supervised, as plain Rust.

use std::sync::Arc;

use troupe_runtime::remote::NodeNet;
use troupe_runtime::{
    Actor, Addr, AddrBinding, ChildOptions, ChildSpec, Mesh, Node, NodeConfig, NodeExit, Pool,
    Reach, RegistryError, Restart, SpawnError, SupervisorSpec,
};

/// A node declared in a [`Topology`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(usize);

/// A supervisor declared in a [`Topology`]: a node's root or a nested group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupId {
    node: usize,
    group: usize,
}

/// Where an actor is placed: on a node (under its root supervisor) or in a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Place(GroupId);

impl From<NodeId> for Place {
    fn from(node: NodeId) -> Self {
        Self(GroupId {
            node: node.0,
            group: 0,
        })
    }
}

impl From<GroupId> for Place {
    fn from(group: GroupId) -> Self {
        Self(group)
    }
}

/// Something a [`Topology`] places under a name with [`Topology::add`]: an actor's factory, or
/// one of troupe's parts (proxy, balancer, cache, queue, database). Each returns the handle or
/// typed client it is reached through, before anything runs.
///
/// | declared with `t.add(place, name, ..)` | returns |
/// |---|---|
/// | `|| MyActor::new(..)` (any `Fn() -> A`, called at every (re)start) | [`Addr<A::Msg>`](Addr) |
/// | [`Restartable::from(actor)`](Restartable) (an `A: Clone`, cloned at every (re)start) | [`Addr<A::Msg>`](Addr) |
/// | `Proxy::http(addr).route("/", target)` | `Addr<ProxyMsg>` |
/// | `Balancer::least_outstanding(&pool)` | `Addr<Ask<Q>>` (it stands where a member would) |
/// | `CacheSpec::lru(capacity).shards(n).read_through(..)` | `CacheClient` |
/// | `QueueSpec::durable(path)` / `QueueSpec::in_memory()` | `QueueClient` |
/// | `DbSpec::in_dir(dir).replicas(3)` | `DbClient` |
pub trait Part {
    /// What declaring the part returns.
    type Handle;

    /// Declares the part in `topology`, at `place`, under `name`.
    fn place(self, topology: &mut Topology, place: Place, name: &str) -> Self::Handle;
}

impl<A, F> Part for F
where
    A: Actor,
    F: Fn() -> A + Send + Sync + 'static,
{
    type Handle = Addr<A::Msg>;

    fn place(self, topology: &mut Topology, place: Place, name: &str) -> Addr<A::Msg> {
        topology.add_with(place, name, ChildOptions::permanent(), self)
    }
}

/// An actor value that is cloned afresh at every (re)start: `t.add(app, "svc",
/// Restartable::from(Service::new(cache, db)))` instead of a factory closure that clones each
/// handle it captures.
#[derive(Clone, Debug)]
pub struct Restartable<A>(pub A);

impl<A> From<A> for Restartable<A> {
    fn from(actor: A) -> Self {
        Self(actor)
    }
}

impl<A: Actor + Clone + Sync> Part for Restartable<A> {
    type Handle = Addr<A::Msg>;

    fn place(self, topology: &mut Topology, place: Place, name: &str) -> Addr<A::Msg> {
        let template = self.0;
        topology.add_with(place, name, ChildOptions::permanent(), move || {
            template.clone()
        })
    }
}

/// A part that other nodes may reach, as its [`Reach`] says: `t.add(app, "greeter",
/// (|| Greeter).reachable_from(Reach::cluster()))`. Without it, everything a topology declares
/// is reachable only from its own node, and a message from another node gets
/// [`CallError::Forbidden`](troupe_runtime::CallError::Forbidden).
///
/// For a part made of several actors (a cache's shards, a database's replicas) the reach
/// applies to the names its clients use; a part's peer protocol stays reachable from its own
/// members only.
#[derive(Clone, Debug)]
pub struct Reachable<P> {
    part: P,
    reach: Reach,
}

/// [`Reachable`] for any [`Part`]: `part.reachable_from(Reach::cluster())`.
pub trait PartExt: Part + Sized {
    /// This part, reachable from the nodes `reach` allows.
    fn reachable_from(self, reach: Reach) -> Reachable<Self> {
        Reachable { part: self, reach }
    }
}

impl<P: Part> PartExt for P {}

impl<P: Part> Part for Reachable<P> {
    type Handle = P::Handle;

    fn place(self, topology: &mut Topology, place: Place, name: &str) -> P::Handle {
        let outer = topology.reach.replace(self.reach);
        let handle = self.part.place(topology, place, name);
        topology.reach = outer;
        handle
    }
}

/// Makes a child on a node: called once per node it is made on (a failover group's children
/// on each node of its order).
type MakeChild = Arc<dyn Fn(&Node) -> Result<ChildSpec, RegistryError> + Send + Sync>;

/// Makes several children at once (a part made of several actors).
#[cfg(any(feature = "cache", feature = "db"))]
type MakeChildren = Arc<dyn Fn(&Node) -> Result<Vec<ChildSpec>, RegistryError> + Send + Sync>;

#[derive(Clone)]
enum Decl {
    Actor(MakeChild),
    #[cfg(any(feature = "cache", feature = "db"))]
    Children(MakeChildren),
    Group(usize),
}

#[derive(Clone)]
struct GroupDecl {
    name: String,
    spec: SupervisorSpec,
    restart: Restart,
    children: Vec<Decl>,
    /// A failover group: run by the cluster on one node of this order at a time, not
    /// started with its node
    #[cfg(feature = "db")]
    failover: Option<crate::failover::FailoverOrder>,
}

struct NodeDecl {
    name: String,
    config: NodeConfig,
    roles: std::collections::BTreeSet<String>,
    groups: Vec<GroupDecl>,
}

/// A whole system: its nodes, the actors on each, and their supervision tree.
///
/// Declaring an actor returns its [`Addr`] at once, before anything runs, so actors can be
/// wired to each other in any order; the handles resolve when the topology starts. The same
/// topology runs with every node in one process ([`Topology::start`]) or, later, one node per
/// host.
///
/// # Examples
///
/// ```
/// use troupe::prelude::*;
/// # use serde::{Deserialize, Serialize};
/// #[derive(Serialize, Deserialize, Message)]
/// #[message(name = "doc.Hello")]
/// struct Hello(Reply<String>);
///
/// struct Greeter;
///
/// impl Actor for Greeter {
///     type Msg = Hello;
///     async fn handle(&mut self, Hello(reply): Hello, _: &mut Ctx<Hello>) -> Result<(), ActorError> {
///         reply.send("hello".into());
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), troupe::LaunchError> {
/// let mut t = Topology::new("demo");
/// let app = t.node("app");
/// let greeter = t.add(app, "greeter", || Greeter);
/// let running = t.start().await?;
/// assert_eq!(greeter.call(Hello, std::time::Duration::from_secs(1)).await.unwrap(), "hello");
/// running.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Topology {
    name: String,
    binding: AddrBinding,
    nodes: Vec<NodeDecl>,
    /// Set while a [`Reachable`] part places itself: who may reach what it declares.
    reach: Option<Reach>,
    /// The databases and queues the admin endpoint reports on.
    #[cfg(feature = "admin")]
    admin_parts: troupe_admin::AdminParts,
    /// Failover children and the metadata group that places them.
    #[cfg(feature = "db")]
    failover: crate::failover::FailoverDecls,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topology")
            .field("name", &self.name)
            .field(
                "nodes",
                &self.nodes.iter().map(|n| &n.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Topology {
    /// An empty topology named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            binding: AddrBinding::new(),
            nodes: Vec::new(),
            reach: None,
            #[cfg(feature = "admin")]
            admin_parts: troupe_admin::AdminParts::new(),
            #[cfg(feature = "db")]
            failover: crate::failover::FailoverDecls::default(),
        }
    }

    /// The failover declarations.
    #[cfg(feature = "db")]
    pub(crate) fn failover_mut(&mut self) -> &mut crate::failover::FailoverDecls {
        &mut self.failover
    }

    /// The node `place` is on.
    #[cfg(feature = "db")]
    pub(crate) fn place_node(&self, place: Place) -> NodeId {
        NodeId(place.0.node)
    }

    /// Declares a failover group named `name`: a supervisor (with `spec`) that the cluster
    /// runs, with everything added to it, on the first live node of `nodes` at a time — never
    /// on two at once — and moves when that node goes down (see [`crate::failover`]).
    /// Anything can be added to it as to a node: actors, pools, a balancer, a cache. Handles
    /// to what it holds follow it wherever it runs.
    ///
    /// The topology needs a metadata group ([`Topology::metadata`]). `nodes` in order of
    /// preference; with none, the group never runs.
    ///
    /// `spec` applies where the group runs. With [`SupervisorSpec::escalate_when_exceeded`],
    /// a group past its restart intensity on a node is given up there: it moves to the next
    /// node of the order while that node sits out for a while, longer each time (so does a
    /// group that fails to start on a node 3 times in a row; see `docs/failover.md`). By
    /// default the supervisor keeps restarting, and a crash loop stays on its node.
    #[cfg(feature = "db")]
    pub fn failover_group(
        &mut self,
        name: &str,
        nodes: impl IntoIterator<Item = NodeId>,
        spec: SupervisorSpec,
    ) -> GroupId {
        let mut order: Vec<String> = Vec::new();
        let mut first = None;
        for node in nodes {
            let node_name = self.nodes[node.0].name.clone();
            if !order.contains(&node_name) {
                first.get_or_insert(node.0);
                order.push(node_name);
            }
        }
        // declared on the first node, but started by no node's root
        let node = first.unwrap_or(0);
        if self.nodes.is_empty() {
            self.node("default");
        }
        let groups = &mut self.nodes[node].groups;
        groups.push(GroupDecl {
            name: name.to_string(),
            spec,
            restart: Restart::Permanent,
            children: Vec::new(),
            failover: Some(crate::failover::FailoverOrder {
                nodes: order,
                takeover: false,
                roles: Vec::new(),
            }),
        });
        GroupId {
            node,
            group: groups.len() - 1,
        }
    }

    /// Moves failover group `group` back to a node earlier in its order as soon as that node
    /// is live again (OTP's takeover). Without it the group stays where it runs until its
    /// node goes. No effect on a group that is not a failover group.
    #[cfg(feature = "db")]
    pub fn takeover(&mut self, group: GroupId) {
        if let Some(order) = self.nodes[group.node].groups[group.group].failover.as_mut() {
            order.takeover = true;
        }
    }

    /// Lets the nodes playing `role` run failover group `group` too, after the nodes it was
    /// declared with (in name order): nodes the topology gives the role ([`Topology::role`]),
    /// and nodes it does not declare at all that join the cluster with the role, their
    /// certificate proving it (`troupe ca issue CA NODE --role ROLE`, then `--node NODE --role
    /// ROLE` on the joining process). No effect on a group that is not a failover group.
    #[cfg(feature = "db")]
    pub fn failover_role(&mut self, group: GroupId, role: &str) {
        if let Some(order) = self.nodes[group.node].groups[group.group].failover.as_mut()
            && !order.roles.iter().any(|r| r == role)
        {
            order.roles.push(role.to_string());
        }
    }

    /// Every failover group, as (its id, name, order).
    #[cfg(feature = "db")]
    fn failover_groups(&self) -> Vec<(GroupId, String, crate::failover::FailoverOrder)> {
        let mut found = Vec::new();
        for (n, node) in self.nodes.iter().enumerate() {
            for (g, group) in node.groups.iter().enumerate() {
                if let Some(order) = &group.failover {
                    found.push((
                        GroupId { node: n, group: g },
                        group.name.clone(),
                        order.clone(),
                    ));
                }
            }
        }
        found
    }

    /// Makes failover group `group` on `node`, registering its names there.
    #[cfg(feature = "db")]
    pub(crate) fn build_failover_group(
        &self,
        node: &Node,
        group: GroupId,
    ) -> Result<ChildSpec, RegistryError> {
        let groups = &self.nodes[group.node].groups;
        build_group(node, groups, &groups[group.group])
    }

    /// What makes failover group `group` on a node, for as long as the topology runs.
    #[cfg(feature = "db")]
    pub(crate) fn failover_maker(&self, group: GroupId) -> troupe_failover::driver::MakeChild {
        let groups: Arc<Vec<GroupDecl>> = Arc::new(self.nodes[group.node].groups.clone());
        Arc::new(move |node: &Node| build_group(node, &groups, &groups[group.group]))
    }

    /// The topology's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Names of the declared nodes, in declaration order.
    pub fn node_names(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.name.as_str()).collect()
    }

    /// Declares a node with default settings (or returns the existing one of that name).
    pub fn node(&mut self, name: &str) -> NodeId {
        self.node_with(name, NodeConfig::default())
    }

    /// Declares a node with `config` (or returns the existing one, keeping its settings).
    pub fn node_with(&mut self, name: &str, config: NodeConfig) -> NodeId {
        if let Some(i) = self.nodes.iter().position(|n| n.name == name) {
            return NodeId(i);
        }
        self.nodes.push(NodeDecl {
            name: name.to_string(),
            config,
            roles: std::collections::BTreeSet::new(),
            groups: vec![GroupDecl {
                name: "root".into(),
                spec: SupervisorSpec::one_for_one(),
                restart: Restart::Permanent,
                children: Vec::new(),
                #[cfg(feature = "db")]
                failover: None,
            }],
        });
        NodeId(self.nodes.len() - 1)
    }

    /// Gives `node` the role `role`, for parts declared reachable by role
    /// ([`Reach::roles`]): `t.role(data, "db")`. Every node of the topology knows every node's
    /// roles, from this declaration (a peer cannot claim one).
    pub fn role(&mut self, node: NodeId, role: &str) {
        self.nodes[node.0].roles.insert(role.to_string());
    }

    /// Sets every node's graceful shutdown timeout.
    pub(crate) fn set_shutdown_timeout(&mut self, timeout: std::time::Duration) {
        for node in &mut self.nodes {
            node.config.shutdown_timeout = timeout;
        }
    }

    /// Sets how `node`'s root supervisor treats its children (default:
    /// [`SupervisorSpec::default()`]: one-for-one, backoff 10 ms..1 s, and past 3 restarts in
    /// 5 s it keeps restarting rather than ending the node).
    pub fn supervise(&mut self, node: NodeId, spec: SupervisorSpec) {
        self.nodes[node.0].groups[0].spec = spec;
    }

    /// Declares a nested supervisor named `name` in `place`; actors added to the returned group
    /// are supervised by it with `spec`.
    pub fn group(&mut self, place: impl Into<Place>, name: &str, spec: SupervisorSpec) -> GroupId {
        let Place(parent) = place.into();
        let node = &mut self.nodes[parent.node];
        node.groups.push(GroupDecl {
            name: name.to_string(),
            spec,
            restart: Restart::Permanent,
            children: Vec::new(),
            #[cfg(feature = "db")]
            failover: None,
        });
        let group = node.groups.len() - 1;
        node.groups[parent.group].children.push(Decl::Group(group));
        GroupId {
            node: parent.node,
            group,
        }
    }

    /// Places `part` — an actor's factory or one of troupe's parts — named `name`, and returns
    /// the handle or client it is reached through (see [`Part`] for what each returns).
    /// Everything is added this one way; the returned handle works from any node once the
    /// topology runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use troupe::prelude::*;
    ///
    /// # #[derive(Clone)] struct Stats;
    /// # impl Actor for Stats { type Msg = NoMessages; }
    /// let mut t = Topology::new("shop");
    /// let (app, data) = (t.node("app"), t.node("data"));
    /// let stats = t.add(app, "stats", || Stats);
    /// let orders: QueueClient = t.add(data, "orders", QueueSpec::in_memory());
    /// # let _ = (stats, orders);
    /// ```
    pub fn add<P: Part>(&mut self, place: impl Into<Place>, name: &str, part: P) -> P::Handle {
        part.place(self, place.into(), name)
    }

    /// The databases and queues placed so far, for the admin endpoint.
    #[cfg(feature = "admin")]
    pub(crate) fn admin_parts_mut(&mut self) -> &mut troupe_admin::AdminParts {
        &mut self.admin_parts
    }

    /// The databases and queues placed so far, and the placement of the failover groups
    /// declared so far (with a metadata group), as an admin endpoint reports on them and acts
    /// on them (`/db`, `/queue`, `/placement`): what [`launch`](crate::launch) serves, for
    /// programs that start the topology themselves and serve
    /// [`AdminServer::start_with`](troupe_admin::AdminServer::start_with). The clients inside
    /// reach the parts once the topology runs.
    #[cfg(feature = "admin")]
    pub fn admin_parts(&self) -> troupe_admin::AdminParts {
        #[allow(unused_mut)]
        let mut parts = self.admin_parts.clone();
        #[cfg(feature = "db")]
        if let Some(metadata) = &self.failover.metadata {
            let (groups, takeover) = self
                .failover_groups()
                .into_iter()
                .map(|(_, name, order)| {
                    let declared = troupe_admin::DeclaredGroup {
                        name,
                        order: order.nodes,
                        roles: order.roles,
                    };
                    (declared, order.takeover)
                })
                .unzip();
            parts.set_placement(crate::admin_parts::PlacementPart {
                register: crate::failover::DbRegister::new(
                    metadata,
                    crate::admin_parts::PlacementPart::WITHIN,
                ),
                groups,
                takeover,
                nodes: self.nodes.iter().map(|n| n.name.clone()).collect(),
            });
        }
        parts
    }

    /// The name of a declared node (as `--node` and `DbSpec::replica` spell it).
    ///
    /// # Panics
    /// If `node` comes from another topology.
    pub fn node_name(&self, node: NodeId) -> &str {
        &self.nodes[node.0].name
    }

    /// A handle to the actor named `name` on `place`'s node, resolved once the topology starts:
    /// for actors a part registers besides the one [`add`](Self::add) returns (a cache's RESP
    /// server, `CacheSpec::resp_name(name)`). A wrong name or type fails its sends typed
    /// (`NotFound`, `WrongType`), as any handle does.
    pub fn handle<M: troupe_runtime::Message>(
        &self,
        place: impl Into<Place>,
        name: &str,
    ) -> Addr<M> {
        let Place(group) = place.into();
        Addr::deferred(&self.nodes[group.node].name, name, &self.binding)
    }

    /// The name of the node `place` is on.
    #[cfg(feature = "db")]
    pub(crate) fn place_node_name(&self, place: Place) -> &str {
        &self.nodes[place.0.node].name
    }

    #[cfg(any(feature = "cache", feature = "db"))]
    /// Declares children that `make` registers on `place`'s node when the topology starts.
    pub(crate) fn declare_children(
        &mut self,
        place: Place,
        make: impl Fn(&Node) -> Result<Vec<ChildSpec>, RegistryError> + Send + Sync + 'static,
    ) {
        let group = place.0;
        self.nodes[group.node].groups[group.group]
            .children
            .push(Decl::Children(Arc::new(make)));
    }

    /// Who may reach what is being declared now, when a [`Reachable`] part set it.
    #[cfg(any(feature = "cache", feature = "db"))]
    pub(crate) fn declared_reach(&self) -> Option<&Reach> {
        self.reach.as_ref()
    }

    /// Places an actor with explicit restart type, mailbox limit and reach (when `options`
    /// leave the reach local and the part is [`Reachable`], its reach applies).
    pub fn add_with<A, F>(
        &mut self,
        place: impl Into<Place>,
        name: &str,
        options: ChildOptions,
        factory: F,
    ) -> Addr<A::Msg>
    where
        A: Actor,
        F: Fn() -> A + Send + Sync + 'static,
    {
        let Place(group) = place.into();
        let node_name = self.nodes[group.node].name.clone();
        let addr = Addr::deferred(&node_name, name, &self.binding);
        let actor_name = name.to_string();
        let options = match &self.reach {
            Some(reach) if options.reach == Reach::Local => options.reachable_from(reach.clone()),
            _ => options,
        };
        let factory = Arc::new(factory);
        self.nodes[group.node].groups[group.group]
            .children
            .push(Decl::Actor(Arc::new(move |node: &Node| {
                let factory = factory.clone();
                node.child(&actor_name, options.clone(), move || factory())
                    .map(|(spec, _)| spec)
            })));
        addr
    }

    /// Places a pool of `size` permanent actors `name.0`, `name.1`, ... made by
    /// `factory(index)`, under their own one-for-one supervisor named `name`, reachable from
    /// their own node only (see [`Topology::pool_with`]).
    pub fn pool<A, F>(
        &mut self,
        place: impl Into<Place>,
        name: &str,
        size: usize,
        factory: F,
    ) -> Pool<A::Msg>
    where
        A: Actor,
        F: Fn(usize) -> A + Send + Sync + 'static,
    {
        self.pool_with(place, name, size, ChildOptions::permanent(), factory)
    }

    /// As [`Topology::pool`], each member with `options` (restart type, mailbox limit, and
    /// reach: `ChildOptions::permanent().reachable_from(Reach::nodes(["edge"]))` for a pool
    /// that a balancer on node `edge` spreads work over).
    pub fn pool_with<A, F>(
        &mut self,
        place: impl Into<Place>,
        name: &str,
        size: usize,
        options: ChildOptions,
        factory: F,
    ) -> Pool<A::Msg>
    where
        A: Actor,
        F: Fn(usize) -> A + Send + Sync + 'static,
    {
        let Place(group) = place.into();
        let node_name = self.nodes[group.node].name.clone();
        let members = (0..size)
            .map(|i| {
                Addr::deferred(
                    &node_name,
                    &Pool::<A::Msg>::member_name(name, i),
                    &self.binding,
                )
            })
            .collect();
        let pool_name = name.to_string();
        let factory = Arc::new(factory);
        self.nodes[group.node].groups[group.group]
            .children
            .push(Decl::Actor(Arc::new(move |node: &Node| {
                let factory = factory.clone();
                node.pool_child(&pool_name, size, options.clone(), move |i| factory(i))
                    .map(|(spec, _)| spec)
            })));
        Pool::new(name, members)
    }

    /// Starts every node in this process, in declaration order, each with its actors in
    /// declaration order.
    ///
    /// # Errors
    /// [`LaunchError::Registry`] for a name declared twice on one node;
    /// [`LaunchError::Spawn`] if an actor fails to start (nodes already started are shut
    /// down again).
    ///
    /// # Cancel safety
    /// Not cancel safe. Cancelled before it returns, the node being started is left
    /// unstarted (as [`Node::start`]), but the nodes started before it keep running with no
    /// [`Running`] to shut them down, until the tokio runtime ends; cancelled while it shuts
    /// them down after a failure, the rest of that shutdown is skipped.
    pub async fn start(self) -> Result<Running, LaunchError> {
        self.prepare(None)?.start(Vec::new()).await
    }

    /// Starts only node `name` of this topology, its endpoint made by `bind` from the node
    /// once it exists and before anything on it starts
    ///
    /// For one node per host where the socket is not a plain UDP socket: each simulated host
    /// of a `troupe-sim` simulation declares the same topology and starts its own node with
    /// `|node| async move { troupe_sim::bind(&node, config).await }`, so a topology runs
    /// under the simulator unchanged. (On a real host, [`launch`](crate::launch) with `--node`
    /// does the same with a UDP socket.)
    ///
    /// # Errors
    /// [`LaunchError::UnknownNode`] if the topology declares no node `name`;
    /// [`LaunchError::Network`] if `bind` fails (nothing was started); otherwise as
    /// [`Topology::start`].
    ///
    /// # Cancel safety
    /// As [`Topology::start`]; cancelled while `bind` runs, nothing has started (the endpoint
    /// `bind` may have made is dropped).
    pub async fn start_node_with<F, Fut>(self, name: &str, bind: F) -> Result<Running, LaunchError>
    where
        F: FnOnce(Node) -> Fut,
        Fut: std::future::Future<Output = Result<NodeNet, troupe_runtime::remote::ConnectError>>,
    {
        let declared: Vec<String> = self.node_names().iter().map(|s| s.to_string()).collect();
        if !declared.iter().any(|d| d == name) {
            return Err(LaunchError::UnknownNode(name.to_string(), declared));
        }
        let prepared = self.prepare(Some(&[name.to_string()]))?;
        let Some(node) = prepared.nodes().next().cloned() else {
            return Err(LaunchError::UnknownNode(name.to_string(), declared));
        };
        let net = bind(node).await.map_err(|source| LaunchError::Network {
            node: name.to_string(),
            source,
        })?;
        prepared.start(vec![net]).await
    }

    /// Creates the nodes whose names `only` contains (all for `None`) and registers every
    /// name, without starting anything.
    pub(crate) fn prepare(self, only: Option<&[String]>) -> Result<Prepared, LaunchError> {
        self.prepare_joined(only, None)
    }

    /// As [`Topology::prepare`], and with `joined` a node the topology does not declare,
    /// playing the roles given (its certificate must prove them to its peers): it runs no
    /// declared actor, only the failover groups placed on its roles when the cluster places
    /// them there.
    pub(crate) fn prepare_joined(
        self,
        only: Option<&[String]>,
        joined: Option<(&str, &[String])>,
    ) -> Result<Prepared, LaunchError> {
        let mesh = Mesh::new();
        let mut nodes = Vec::new();
        let mut table: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            self.nodes
                .iter()
                .filter(|n| !n.roles.is_empty())
                .map(|n| (n.name.clone(), n.roles.clone()))
                .collect();
        if let Some((name, roles)) = joined {
            if self.nodes.iter().any(|n| n.name == name) {
                return Err(LaunchError::Flags(format!(
                    "node {name:?} is declared in the topology: its roles are declared there \
                     (Topology::role), not with --role"
                )));
            }
            table.insert(name.to_string(), roles.iter().cloned().collect());
        }
        let roles: troupe_runtime::NodeRoles = Arc::new(table);
        #[cfg(feature = "db")]
        let failover = crate::failover::NodeFailover::new(
            &self.failover,
            self.failover_groups(),
            |node, group| self.build_failover_group(node, group),
        )?;
        // register every name on every node before anything starts, so early messages to
        // actors declared later are parked rather than refused
        for decl in &self.nodes {
            if only.is_some_and(|o| !o.contains(&decl.name)) {
                continue;
            }
            let mut config = decl.config.clone();
            if config.node_roles.is_empty() {
                config.node_roles = roles.clone();
            }
            let node = Node::new(&decl.name, &mesh, config)?;
            self.binding.bind(&node);
            #[allow(unused_mut)]
            let (spec, mut children) = build_node(&node, &decl.groups)?;
            // after the declared actors: failover children may use them
            #[cfg(feature = "db")]
            if let Some(failover) = &failover {
                match failover.driver_child(&node, |g| self.failover_maker(g)) {
                    Ok(driver) => children.push(driver),
                    Err(err) => {
                        children.into_iter().for_each(ChildSpec::discard);
                        return Err(err.into());
                    }
                }
            }
            nodes.push((node, spec, children));
        }
        if let Some((name, _)) = joined {
            let config = NodeConfig {
                node_roles: roles.clone(),
                ..NodeConfig::default()
            };
            let node = Node::new(name, &mesh, config)?;
            self.binding.bind(&node);
            #[allow(unused_mut)]
            let mut children = Vec::new();
            #[cfg(feature = "db")]
            if let Some(failover) = &failover {
                children.push(failover.driver_child(&node, |g| self.failover_maker(g))?);
            }
            nodes.push((node, SupervisorSpec::one_for_one(), children));
        }
        Ok(Prepared {
            name: Arc::from(self.name.as_str()),
            mesh,
            nodes,
            #[cfg(feature = "admin")]
            admin_parts: self.admin_parts(),
        })
    }
}

/// A topology whose nodes exist and whose names are registered, but nothing runs yet.
pub(crate) struct Prepared {
    name: Arc<str>,
    pub(crate) mesh: Mesh,
    nodes: Vec<(Node, SupervisorSpec, Vec<ChildSpec>)>,
    /// The databases and queues the admin endpoint reports on.
    #[cfg(feature = "admin")]
    pub(crate) admin_parts: troupe_admin::AdminParts,
}

impl Prepared {
    /// The prepared nodes, in declaration order.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().map(|(n, _, _)| n)
    }

    /// Starts every node's supervision tree, in order; on failure stops the ones started.
    pub(crate) async fn start(self, nets: Vec<NodeNet>) -> Result<Running, LaunchError> {
        let mut running: Vec<Node> = Vec::new();
        for (node, spec, children) in self.nodes {
            if let Err(err) = node.start(spec, children).await {
                for started in running.iter().rev() {
                    started.shutdown().await;
                }
                for net in &nets {
                    net.shutdown().await;
                }
                return Err(err.into());
            }
            running.push(node);
        }
        Ok(Running {
            name: self.name,
            mesh: self.mesh,
            nodes: running,
            nets,
        })
    }
}

/// Builds a node's root supervisor spec and its children's specs, nested groups included
/// (failover groups are not: the cluster starts them where it places them).
fn build_node(
    node: &Node,
    groups: &[GroupDecl],
) -> Result<(SupervisorSpec, Vec<ChildSpec>), RegistryError> {
    let Some(root) = groups.first() else {
        return Ok((SupervisorSpec::default(), Vec::new()));
    };
    let children = build_children(node, groups, &root.children)?;
    Ok((root.spec.clone(), children))
}

/// Makes `children` on `node` (`groups`: the groups of the node they were declared on).
fn build_children(
    node: &Node,
    groups: &[GroupDecl],
    children: &[Decl],
) -> Result<Vec<ChildSpec>, RegistryError> {
    let mut specs = Vec::with_capacity(children.len());
    for child in children {
        let spec = match child {
            Decl::Actor(make) => make(node),
            #[cfg(any(feature = "cache", feature = "db"))]
            Decl::Children(make) => match make(node) {
                Ok(made) => {
                    specs.extend(made);
                    continue;
                }
                Err(err) => Err(err),
            },
            Decl::Group(i) => match groups.get(*i) {
                Some(group) => build_group(node, groups, group),
                None => continue,
            },
        };
        match spec {
            Ok(spec) => specs.push(spec),
            Err(err) => {
                specs.into_iter().for_each(ChildSpec::discard);
                return Err(err);
            }
        }
    }
    Ok(specs)
}

/// Makes `group`'s supervisor with its children on `node`.
fn build_group(
    node: &Node,
    groups: &[GroupDecl],
    group: &GroupDecl,
) -> Result<ChildSpec, RegistryError> {
    build_children(node, groups, &group.children).map(|children| {
        node.supervisor_child(&group.name, group.spec.clone(), group.restart, children)
            .0
    })
}

/// A started topology: its nodes in this process.
pub struct Running {
    name: Arc<str>,
    mesh: Mesh,
    nodes: Vec<Node>,
    nets: Vec<NodeNet>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("name", &self.name)
            .field("nodes", &self.mesh.node_names())
            .finish()
    }
}

impl Running {
    /// The running node named `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name() == name)
    }

    /// The running nodes, in start order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The network endpoint of node `name`, when it runs with one.
    pub fn net(&self, name: &str) -> Option<&NodeNet> {
        self.nets.iter().find(|n| n.node_name() == name)
    }

    /// Stops the nodes in reverse start order, each stopping its actors in reverse start
    /// order within its shutdown timeout, then leaves the cluster (peers see `Left` at once).
    ///
    /// # Cancel safety
    /// Not cancel safe. Cancelled part-way, the node being stopped goes on stopping in the
    /// background (see [`Node::shutdown`]), the nodes not reached yet keep running and the
    /// endpoints may be left half closed (see [`NodeNet::shutdown`]). Calling it again
    /// finishes the job, killing at once what the first call had begun to stop.
    pub async fn shutdown(&self) {
        for node in self.nodes.iter().rev() {
            node.shutdown().await;
        }
        // leaving is independent per node: do it concurrently
        futures::future::join_all(self.nets.iter().map(|n| n.shutdown())).await;
    }

    /// Waits until some node's root supervisor fails (restart intensity exceeded at the top),
    /// returning that node's name and reason; or until every node has stopped (`Ok`).
    ///
    /// # Errors
    /// [`LaunchError::NodeFailed`] with the first failure seen.
    ///
    /// # Cancel safety
    /// Cancel safe: it only watches the nodes; a later call sees the same ends.
    pub async fn wait(&self) -> Result<(), LaunchError> {
        let mut waits: Vec<_> = self
            .nodes
            .iter()
            .map(|n| {
                let n = n.clone();
                Box::pin(async move { (n.name().to_string(), n.wait().await) })
            })
            .collect();
        while !waits.is_empty() {
            let ((node, exit), _, rest) = futures::future::select_all(waits).await;
            if let NodeExit::Failed(reason) = exit {
                return Err(LaunchError::NodeFailed { node, reason });
            }
            waits = rest;
        }
        Ok(())
    }
}

/// Why a topology could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// A name was declared twice on one node, or a node name twice.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// An actor or supervisor failed to start.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// A node's root supervisor exceeded its restart intensity.
    #[error("node {node} failed: {reason}")]
    NodeFailed {
        /// The node.
        node: String,
        /// Why its root gave up.
        reason: String,
    },
    /// The launch flags name a node the topology does not declare (and give it no role to
    /// join with).
    #[error(
        "unknown node {0:?}; the topology declares {1:?} (a node it does not declare joins \
         with --role ROLE, to run the failover groups placed on that role)"
    )]
    UnknownNode(String, Vec<String>),
    /// A node's network endpoint could not start.
    #[error("network of node {node}: {source}")]
    Network {
        /// The node.
        node: String,
        /// Why.
        source: troupe_runtime::remote::ConnectError,
    },
    /// The nodes of this process (`--quic`) did not all connect to each other in time.
    #[error("nodes in this process did not connect to each other within {0:?}")]
    MeshTimeout(std::time::Duration),
    /// The node's identity (CA and certificate files, or the dev CA) could not be loaded or made.
    #[error("identity: {0}")]
    Identity(#[from] troupe_identity::IdentityError),
    /// The launch flags are inconsistent.
    #[error("invalid flags: {0}")]
    Flags(String),
    /// The topology places failover children but declares no metadata group to record
    /// where they run.
    #[error(
        "failover children need the cluster's metadata group: declare it with Topology::metadata"
    )]
    NoMetadata,
    /// Installing the signal handlers failed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// The admin endpoint (`--admin`) could not start.
    #[cfg(feature = "admin")]
    #[error("admin endpoint: {0}")]
    Admin(#[from] troupe_admin::AdminError),
}
