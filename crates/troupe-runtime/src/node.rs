//! [`Node`]: a named member of a cluster with its own registry and root supervisor, and
//! [`Mesh`], the nodes that live in one process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::{broadcast, watch};

use crate::actor::{Actor, ActorChild};
use crate::addr::{Addr, Binding};
use crate::error::{CallError, RegistryError, SpawnError};
use crate::message::Message;
use crate::pool::Pool;
use crate::reach::{NodeRoles, Reach};
use crate::registry::Registry;
use crate::remote::NetInner;
use crate::slot::DEFAULT_MAILBOX_LIMIT;
use crate::supervisor::{
    ChildOptions, ChildSpec, SupervisionReport, SupervisorChild, SupervisorRef, SupervisorSpec,
};
use crate::task::TaskGuard;

/// The nodes living in one process; handles resolve names on these nodes directly, without
/// serialization.
///
/// Each [`Node`] belongs to exactly one mesh. Tests make a mesh each, so they never share
/// names.
#[derive(Clone, Default)]
pub struct Mesh {
    inner: Arc<MeshInner>,
}

#[derive(Default)]
pub(crate) struct MeshInner {
    nodes: DashMap<Arc<str>, Weak<NodeInner>>,
    /// Each node's endpoint, held weakly: the endpoint holds its node (and so this mesh), and
    /// a task of its own keeps it until `NodeNet::shutdown` (or until its runtime is dropped).
    nets: DashMap<Arc<str>, Weak<NetInner>>,
    /// Names the cluster places, by name (unique across the nodes of a topology).
    placed: DashMap<Arc<str>, crate::placed::Placed>,
    force_remote: AtomicBool,
}

tokio::task_local! {
    /// The node an actor's handler runs on, when sends must pick that node's endpoint.
    pub(crate) static ORIGIN: Arc<str>;
}

/// Runs `fut` with its sends leaving from node `node`, as the sends of that node's actors do.
///
/// For tasks a library spawns on an actor's behalf, which do not inherit the actor's node
/// (openraft's replication and election tasks, say). A send from a task that no actor of this
/// process spawned leaves from the target node's own endpoint when the target is in this
/// process (as if sent from itself), else from any endpoint of this process: for nodes of one
/// process routed over QUIC ([`Mesh::route_through_quic`]), that would skip the link between
/// the two nodes, and a link cut between them on purpose would not hold for it.
///
/// # Cancel safety
/// As `fut`'s: dropping the returned future drops `fut`.
pub fn send_from<F: std::future::Future>(
    node: Arc<str>,
    fut: F,
) -> impl std::future::Future<Output = F::Output> {
    ORIGIN.scope(node, fut)
}

/// Runs `fut` as sent from the node the caller's task sends from, if it has one: for tasks an
/// actor spawns (a listener's connections), so their sends leave from the actor's own node.
pub(crate) fn keep_origin<F: std::future::Future>(
    fut: F,
) -> futures::future::Either<tokio::task::futures::TaskLocalFuture<Arc<str>, F>, F> {
    match ORIGIN.try_with(Arc::clone) {
        Ok(origin) => futures::future::Either::Left(ORIGIN.scope(origin, fut)),
        Err(_) => futures::future::Either::Right(fut),
    }
}

/// Where a name on a node is reached from this process.
pub(crate) enum Route<M: Message> {
    /// A node of this process: straight into the actor's slot.
    Local(Arc<crate::slot::Slot<M>>),
    /// A facet on a node of this process: wrapped, then into its actor's slot.
    Inlet(Arc<dyn crate::registry::Inlet<M>>),
    /// Another process: over QUIC.
    Remote,
    /// A name the cluster places (a failover child): wherever its holder is now.
    Placed(crate::placed::Placed),
}

impl MeshInner {
    pub(crate) fn attach_net(&self, node: &str, net: &Arc<NetInner>) {
        self.nets.insert(Arc::from(node), Arc::downgrade(net));
    }

    pub(crate) fn detach_net(&self, node: &str) {
        self.nets.remove(node);
    }

    pub(crate) fn force_remote(&self) -> bool {
        self.force_remote.load(Ordering::Relaxed)
    }

    /// Whether a send must know the node it comes from to leave through the right endpoint:
    /// when the process routes between its own nodes over QUIC, or hosts several nodes on the
    /// network (shop's `--node edge --node app`), where a send from `app` leaving through
    /// `edge`'s endpoint would reach its peer as from `edge`, and be refused by actors that
    /// admit `app` only.
    pub(crate) fn sends_need_origin(&self) -> bool {
        self.force_remote() || self.nets.len() > 1
    }

    /// The endpoint to send to node `target` from: the sending actor's node's; for code that
    /// runs on no node (a test, `main`), the target node's own when it is in this process (so
    /// it is reached in place, as from itself), else any of this process's.
    pub(crate) fn net_for_send(&self, target: &str) -> Option<Arc<NetInner>> {
        if let Ok(Some(net)) =
            ORIGIN.try_with(|origin| self.nets.get(origin).and_then(|n| n.upgrade()))
        {
            return Some(net);
        }
        if let Some(net) = self.nets.get(target).and_then(|n| n.upgrade()) {
            return Some(net);
        }
        self.nets.iter().find_map(|n| n.value().upgrade())
    }

    /// The node whose endpoint a send to `target` from code on no node leaves through (see
    /// [`MeshInner::net_for_send`]); `None` where sends go in memory.
    pub(crate) fn default_origin(&self, target: &str) -> Option<Arc<str>> {
        if !self.force_remote() && self.nodes.contains_key(target) {
            return None;
        }
        if self.nets.get(target).is_some_and(|n| n.upgrade().is_some()) {
            return Some(Arc::from(target));
        }
        self.nets
            .iter()
            .find(|n| n.value().upgrade().is_some())
            .map(|n| n.key().clone())
    }

    /// Whether `name` on `node` would handle a message delivered now (see
    /// [`Slot::serving`](crate::slot::Slot::serving)); `None` when `node` is not in this
    /// process, so nothing is known here.
    pub(crate) fn serving(&self, node: &str, name: &str) -> Option<bool> {
        let node = self.nodes.get(node).and_then(|n| n.upgrade())?;
        Some(
            node.registry
                .entry(name)
                .is_some_and(|entry| entry.serving()),
        )
    }

    /// The entry of `name` if the cluster places it.
    pub(crate) fn placed(&self, name: &str) -> Option<crate::placed::Placed> {
        if self.placed.is_empty() {
            return None;
        }
        self.placed.get(name).map(|p| p.clone())
    }

    /// How to reach `name` on `node`.
    pub(crate) fn route<M: Message>(&self, node: &str, name: &str) -> Result<Route<M>, CallError> {
        let local = self.nodes.get(node).and_then(|n| n.upgrade());
        match local {
            Some(n) if !self.force_remote() => n.registry.route::<M>(name),
            _ if !self.nets.is_empty() => Ok(Route::Remote),
            Some(n) => n.registry.route::<M>(name),
            None => Err(CallError::Unreachable {
                node: node.to_string(),
            }),
        }
    }
}

impl Mesh {
    /// An empty mesh.
    pub fn new() -> Self {
        Self::default()
    }

    /// The node named `name` in this mesh, if it is alive.
    pub fn node(&self, name: &str) -> Option<Node> {
        self.inner
            .nodes
            .get(name)
            .and_then(|n| n.upgrade())
            .map(|inner| Node { inner })
    }

    /// Declares `name` as placed by the cluster (a failover child) and returns its entry,
    /// which the placement driver keeps current; the existing entry if it was declared
    /// already. From then on every handle to `name` in this process that is resolved for the
    /// first time, on any node, reaches the entry's holder (casts parked up to
    /// `mailbox_limit` while there is none); declare it before any handle to it is used.
    pub fn place(&self, name: &str, mailbox_limit: usize) -> crate::placed::Placed {
        self.inner
            .placed
            .entry(Arc::from(name))
            .or_insert_with(|| {
                crate::placed::Placed::new(
                    Arc::from(name),
                    mailbox_limit,
                    Arc::downgrade(&self.inner),
                )
            })
            .clone()
    }

    /// The entry of `name` if it was declared placed with [`Mesh::place`].
    pub fn placed(&self, name: &str) -> Option<crate::placed::Placed> {
        self.inner.placed(name)
    }

    /// The network endpoint of node `name` in this mesh, if one runs
    ///
    /// For an actor that needs its node's endpoint (to report the cluster's members, say):
    /// capturing the mesh rather than a [`NodeNet`](crate::remote::NodeNet) keeps the actor's
    /// factory from holding the endpoint, which holds the node, which holds the factory; such a
    /// cycle would keep the endpoint and its socket alive after the node's runtime is gone.
    pub fn net(&self, name: &str) -> Option<crate::remote::NodeNet> {
        self.inner
            .nets
            .get(name)
            .and_then(|n| n.upgrade())
            .map(crate::remote::NodeNet::from_inner)
    }

    /// Routes messages between nodes of this process through QUIC on loopback instead of
    /// handing them over in memory, so one process exercises the serialized remote path
    /// (codec, lanes, TLS) that a multi-host run uses. Set it before the first send; handles
    /// already resolved keep their route.
    pub fn route_through_quic(&self, on: bool) {
        self.inner.force_remote.store(on, Ordering::Relaxed);
    }

    /// Names of the live nodes, sorted.
    pub fn node_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .nodes
            .iter()
            .filter(|e| e.value().strong_count() > 0)
            .map(|e| e.key().to_string())
            .collect();
        names.sort();
        names
    }
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("nodes", &self.node_names())
            .finish()
    }
}

/// Settings of one node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Default mailbox depth limit of its actors.
    pub mailbox_limit: usize,
    /// How long graceful shutdown waits for all actors to stop before killing the rest.
    pub shutdown_timeout: Duration,
    /// Capacity of the supervision report channel (slow subscribers miss old reports).
    pub report_capacity: usize,
    /// While the node runs, one timer of its own is always due at most this far ahead
    /// (`None`: no such timer).
    ///
    /// A remote call arms a tokio timer for its timeout, and so does a local call still
    /// waiting after a sweep of the call watch list; tokio wakes its timer driver (a system
    /// call) each time a timer is registered that is due before every other one. With this
    /// timer due first, a timeout longer than this period never is, so it costs no system
    /// call. The price is one wake-up per period. Default: 100 ms.
    pub timer_anchor: Option<Duration>,
    /// The roles each node of the cluster plays, for [`Reach::roles`]; a `Topology` fills it
    /// from its declarations. Default: none.
    pub node_roles: NodeRoles,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            mailbox_limit: DEFAULT_MAILBOX_LIMIT,
            shutdown_timeout: Duration::from_secs(10),
            report_capacity: 1024,
            timer_anchor: Some(Duration::from_millis(100)),
            node_roles: NodeRoles::default(),
        }
    }
}

/// Starts the timer of [`NodeConfig::timer_anchor`] on the current runtime (none outside one).
fn spawn_timer_anchor(period: Duration) -> Option<TaskGuard> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let period = period.max(Duration::from_millis(1));
    Some(TaskGuard::from(runtime.spawn(async move {
        loop {
            tokio::time::sleep(period).await;
        }
    })))
}

/// How a node's root supervisor ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeExit {
    /// Not ended yet.
    Running,
    /// Shut down gracefully.
    Stopped,
    /// The root supervisor gave up: restart intensity was exceeded at the top of the tree.
    Failed(String),
}

/// A node: a name, a registry of actor names, and a root supervisor.
///
/// Cloning is cheap and every clone refers to the same node.
#[derive(Clone)]
pub struct Node {
    pub(crate) inner: Arc<NodeInner>,
}

pub(crate) struct NodeInner {
    pub(crate) name: Arc<str>,
    pub(crate) registry: Registry,
    pub(crate) mesh: Arc<MeshInner>,
    pub(crate) config: NodeConfig,
    pub(crate) reports: broadcast::Sender<SupervisionReport>,
    pub(crate) cluster_events: broadcast::Sender<crate::remote::NodeEvent>,
    pub(crate) exit: watch::Sender<NodeExit>,
    root: Mutex<Option<SupervisorRef>>,
    shutting_down: AtomicBool,
    /// Ends with the node: the timer of [`NodeConfig::timer_anchor`].
    _timer_anchor: Option<TaskGuard>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("name", &self.name()).finish()
    }
}

impl Node {
    /// Creates node `name` in `mesh`, with no actors yet; call [`Node::start`] next.
    ///
    /// # Errors
    /// [`RegistryError::DuplicateNode`] if the mesh already has a live node of that name.
    pub fn new(name: &str, mesh: &Mesh, config: NodeConfig) -> Result<Self, RegistryError> {
        crate::message::remember_panic_messages();
        let name: Arc<str> = Arc::from(name);
        let (reports, _) = broadcast::channel(config.report_capacity.max(1));
        let (exit, _) = watch::channel(NodeExit::Running);
        let timer_anchor = config.timer_anchor.and_then(spawn_timer_anchor);
        let inner = Arc::new(NodeInner {
            name: name.clone(),
            registry: Registry::new(name.clone(), config.node_roles.clone()),
            mesh: mesh.inner.clone(),
            config,
            reports,
            cluster_events: broadcast::Sender::new(1024),
            exit,
            root: Mutex::new(None),
            shutting_down: AtomicBool::new(false),
            _timer_anchor: timer_anchor,
        });
        match mesh.inner.nodes.entry(name.clone()) {
            dashmap::mapref::entry::Entry::Occupied(mut e) => {
                if e.get().strong_count() > 0 {
                    return Err(RegistryError::DuplicateNode(name.to_string()));
                }
                e.insert(Arc::downgrade(&inner));
            }
            dashmap::mapref::entry::Entry::Vacant(e) => {
                e.insert(Arc::downgrade(&inner));
            }
        }
        Ok(Self { inner })
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The node's settings.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    pub(crate) fn mesh_weak(&self) -> Weak<MeshInner> {
        Arc::downgrade(&self.inner.mesh)
    }

    /// The nodes of this node's process.
    pub fn mesh(&self) -> Mesh {
        Mesh {
            inner: self.inner.mesh.clone(),
        }
    }

    /// Starts the root supervisor with `children`, in order.
    ///
    /// # Errors
    /// [`SpawnError::StartFailed`] if a child fails to start (the ones started before it are
    /// stopped again), or if the node was started already.
    ///
    /// # Cancel safety
    /// Cancelled before it returns, the node stays unstarted: the root supervisor being
    /// started is killed with the children it had started (their [`Actor::stopped`] does not
    /// run). As after a failed start, the children's names stay registered.
    pub async fn start(
        &self,
        spec: SupervisorSpec,
        children: Vec<ChildSpec>,
    ) -> Result<SupervisorRef, SpawnError> {
        if self.inner.root.lock().is_some() {
            return Err(SpawnError::StartFailed {
                name: self.name().to_string(),
                reason: "the node is already started".into(),
            });
        }
        let root = SupervisorChild::new_root(self.clone(), spec, children);
        let sup_ref = root.handle();
        root.start_root().await?;
        *self.inner.root.lock() = Some(sup_ref.clone());
        Ok(sup_ref)
    }

    /// The root supervisor, once started.
    pub fn root(&self) -> Option<SupervisorRef> {
        self.inner.root.lock().clone()
    }

    /// Registers `name` and returns a child spec that runs actors made by `factory` under it,
    /// with the handle that reaches them. Add the spec to a supervisor to start it.
    ///
    /// # Errors
    /// [`RegistryError::AlreadyRegistered`] if the name is taken on this node.
    pub fn child<A, F>(
        &self,
        name: &str,
        options: ChildOptions,
        factory: F,
    ) -> Result<(ChildSpec, Addr<A::Msg>), RegistryError>
    where
        A: Actor,
        F: Fn() -> A + Send + Sync + 'static,
    {
        let limit = options
            .mailbox_limit
            .unwrap_or(self.inner.config.mailbox_limit);
        // one allocation of the name, shared by the registry, the handle and the child
        let name: Arc<str> = Arc::from(name);
        let slot =
            self.inner
                .registry
                .register::<A::Msg>(&name, limit, options.reach, options.gate)?;
        let addr = Addr::with_slot(
            self.inner.name.clone(),
            name,
            self.mesh_weak(),
            slot.clone(),
        );
        let child = ActorChild::new(self.clone(), slot, addr.clone(), factory);
        Ok((ChildSpec::new(Arc::new(child), options.restart), addr))
    }

    /// A child spec for a nested supervisor named `name` with `children`, and its handle.
    pub fn supervisor_child(
        &self,
        name: &str,
        spec: SupervisorSpec,
        restart: crate::supervisor::Restart,
        children: Vec<ChildSpec>,
    ) -> (ChildSpec, SupervisorRef) {
        let child = SupervisorChild::new(self.clone(), Arc::from(name), spec, children);
        let handle = child.handle();
        (ChildSpec::new(child, restart), handle)
    }

    /// Registers `name.0` .. `name.{size-1}` and returns a child spec for a one-for-one
    /// supervisor named `name` running one actor from `factory(i)` under each, with the pool
    /// of their handles.
    ///
    /// # Errors
    /// [`RegistryError::AlreadyRegistered`] if a member name is taken (none stay registered).
    pub fn pool_child<A, F>(
        &self,
        name: &str,
        size: usize,
        options: ChildOptions,
        factory: F,
    ) -> Result<(ChildSpec, Pool<A::Msg>), RegistryError>
    where
        A: Actor,
        F: Fn(usize) -> A + Send + Sync + 'static,
    {
        let factory = Arc::new(factory);
        let mut specs = Vec::with_capacity(size);
        let mut members = Vec::with_capacity(size);
        for i in 0..size {
            let factory = factory.clone();
            let member = Pool::<A::Msg>::member_name(name, i);
            match self.child(&member, options.clone(), move || factory(i)) {
                Ok((spec, addr)) => {
                    specs.push(spec);
                    members.push(addr);
                }
                Err(err) => {
                    specs.into_iter().for_each(ChildSpec::discard);
                    return Err(err);
                }
            }
        }
        let (spec, _) =
            self.supervisor_child(name, SupervisorSpec::one_for_one(), options.restart, specs);
        Ok((spec, Pool::new(name, members)))
    }

    /// A handle to actor `name` on this node.
    ///
    /// # Errors
    /// [`CallError::NotFound`] if nothing is registered under `name`, [`CallError::WrongType`]
    /// if it handles another message type.
    pub fn lookup<M: Message>(&self, name: &str) -> Result<Addr<M>, CallError> {
        let route = self.inner.registry.route::<M>(name)?;
        Ok(Addr::with_route(
            self.inner.name.clone(),
            Arc::from(name),
            self.mesh_weak(),
            route,
        ))
    }

    /// Registers `name` as a second name of the actor registered as `of` on this node,
    /// taking messages of type `P` that reach it wrapped by `wrap` (a variant of its own
    /// message type), and returns the handle to it.
    ///
    /// This is how an actor offers a second protocol to other nodes than its clients: a
    /// part's peer protocol (replication, fencing) as a type of its own, reachable only from
    /// the part's members (`reach`), while its client messages are reachable as its own
    /// [`ChildOptions::reach`] says. Mark the wrapping variant `#[serde(skip)]` so the peer
    /// messages cannot arrive through the client name. The facet goes when `of` is removed.
    ///
    /// # Errors
    /// [`RegistryError::AlreadyRegistered`] if `name` is taken; [`RegistryError::NotRegistered`]
    /// if no actor taking `M` is registered as `of`.
    pub fn facet<P: Message, M: Message>(
        &self,
        name: &str,
        of: &str,
        wrap: fn(P) -> M,
        reach: Reach,
    ) -> Result<Addr<P>, RegistryError> {
        let name: Arc<str> = Arc::from(name);
        self.inner.registry.register_facet(&name, of, wrap, reach)?;
        Ok(Addr::bound(
            self.inner.name.clone(),
            name,
            Binding::Bound(self.mesh_weak()),
        ))
    }

    /// A handle to actor `name` on node `node` of this node's cluster, resolved when first used.
    pub fn addr<M: Message>(&self, node: &str, name: &str) -> Addr<M> {
        Addr::bound(
            Arc::from(node),
            Arc::from(name),
            Binding::Bound(self.mesh_weak()),
        )
    }

    /// Kills the running instance of actor `name` as a crash would — for chaos tests and for
    /// operators: its supervisor sees a failure and restarts it (or not) by its policy.
    /// Returns `false` if nothing by that name is running.
    pub fn kill(&self, name: &str) -> bool {
        self.inner
            .registry
            .inbox(name)
            .is_some_and(|inbox| inbox.kill())
    }

    /// Names registered on this node, sorted.
    pub fn names(&self) -> Vec<String> {
        self.inner.registry.names()
    }

    /// The counters of every actor registered on this node (facets excluded), sorted by
    /// name: mailbox depth, messages received, dropped and parked, restarts. Reading them
    /// costs the actors nothing: each host keeps its counts with plain stores.
    pub fn actor_stats(&self) -> Vec<crate::ActorStats> {
        self.inner.registry.stats()
    }

    /// Gates the messages of the actor registered as `name` on this node (see
    /// [`Gate`](crate::placed::Gate)), as [`ChildOptions::gated`] would have at its
    /// registration: for actors a part registers. Returns `false` if no actor is registered
    /// as `name` (a facet's messages go through its actor's gate), or it is gated already.
    pub fn gate(&self, name: &str, gate: crate::placed::Gate) -> bool {
        self.inner.registry.set_gate(name, gate)
    }

    /// Drops the messages parked for the next instance of the actor registered as `name`
    /// (their calls fail `NotFound`), as for a failover child stopped on this node that runs
    /// elsewhere next. Returns how many.
    pub fn drop_parked(&self, name: &str) -> usize {
        self.inner
            .registry
            .entry(name)
            .map_or(0, |entry| entry.drop_parked())
    }

    /// Whether an instance of the actor registered as `name` runs on this node now.
    pub fn is_running(&self, name: &str) -> bool {
        self.inner
            .registry
            .entry(name)
            .is_some_and(|entry| entry.is_running())
    }

    /// The roles node `node` plays, as this node knows them: from its configuration's table
    /// ([`NodeConfig::node_roles`]), and those the node proved with its certificate (a peer's
    /// handshake; this node's own identity, once it has a network endpoint). A node the
    /// topology does not declare plays only the latter.
    pub fn roles_of(&self, node: &str) -> std::collections::BTreeSet<String> {
        self.inner.registry.roles_of(node)
    }

    /// Records the roles `node` proved with its certificate (see [`Node::roles_of`]).
    pub(crate) fn learn_roles(&self, node: &str, roles: &[String]) {
        self.inner.registry.learn_roles(node, roles);
    }

    /// Whether `name` is registered on this node.
    pub fn is_registered(&self, name: &str) -> bool {
        self.inner.registry.contains(name)
    }

    /// Subscribes to this node's supervision reports (every exit and what was done about it).
    pub fn supervision_reports(&self) -> broadcast::Receiver<SupervisionReport> {
        self.inner.reports.subscribe()
    }

    /// Subscribes to this node's cluster events (peers up, down, left, refused). A node
    /// without a network endpoint has none; one started later sends them to every
    /// subscriber, including those from before it started.
    pub fn cluster_events(&self) -> broadcast::Receiver<crate::remote::NodeEvent> {
        self.inner.cluster_events.subscribe()
    }

    /// Casts `map(event)` to `to` for each of this node's cluster events that `map` turns into
    /// a message, until the returned guard is dropped (keep it in the actor, so it ends with
    /// the instance). Events missed because the subscriber lagged are skipped; a message the
    /// mailbox refuses is dropped, as with any cast.
    pub fn forward_cluster_events<M: Message>(
        &self,
        to: Addr<M>,
        map: impl Fn(crate::remote::NodeEvent) -> Option<M> + Send + 'static,
    ) -> crate::TaskGuard {
        use tokio::sync::broadcast::error::RecvError;
        let mut events = self.cluster_events();
        crate::TaskGuard::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        if let Some(msg) = map(event) {
                            let _ = to.cast(msg);
                        }
                    }
                    Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        })
    }

    /// How the node's root supervisor ended so far.
    pub fn exit_status(&self) -> NodeExit {
        self.inner.exit.borrow().clone()
    }

    /// Waits until the root supervisor ends, and says how.
    ///
    /// # Cancel safety
    /// Cancel safe: it only watches; a later call sees the same end.
    pub async fn wait(&self) -> NodeExit {
        let mut rx = self.inner.exit.subscribe();
        match rx.wait_for(|e| *e != NodeExit::Running).await {
            Ok(exit) => exit.clone(),
            Err(_) => NodeExit::Stopped,
        }
    }

    /// Stops every actor gracefully, in reverse start order, each supervisor stopping its own
    /// children first; whatever has not stopped after the node's shutdown timeout is killed.
    /// Returns once the root supervisor has ended.
    ///
    /// # Cancel safety
    /// The stop is requested when the future is first polled; cancelling after that stops
    /// the waiting, not the shutdown, which goes on in the background (each supervisor still
    /// kills the children that outlive its shutdown timeout). Only the node's own deadline is
    /// lost: a root supervisor still stopping after the node's shutdown timeout is no longer
    /// killed. [`Node::wait`] tells when it has ended. Calling `shutdown` again does not wait
    /// another timeout: the stop having been requested already, it kills at once whatever is
    /// still running.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let root = self.inner.root.lock().clone();
        if let Some(root) = root {
            root.stop(self.inner.config.shutdown_timeout).await;
        }
        self.inner.exit.send_if_modified(|e| {
            if *e == NodeExit::Running {
                *e = NodeExit::Stopped;
                true
            } else {
                false
            }
        });
    }

    /// Whether [`Node::shutdown`] has begun: its supervisors stop their children in reverse
    /// start order, so a child added after another has stopped before it.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    pub(crate) fn report(&self, report: SupervisionReport) {
        let _ = self.inner.reports.send(report);
    }

    pub(crate) fn set_exit(&self, exit: NodeExit) {
        self.inner.exit.send_if_modified(|e| {
            if *e == NodeExit::Running {
                *e = exit;
                true
            } else {
                false
            }
        });
    }

    pub(crate) fn unregister(&self, name: &str) {
        self.inner.registry.unregister(name);
    }
}
