//! The placement driver: the actor on each node that carries out its [`Seat`]s.
//!
//! It is a thin shell. Every 100 ms of the runtime's clock it asks each seat what to do,
//! given the time and which nodes this node holds live; it does the reads and compare-and-
//! sets the seat asks for against the [`LeaseRegister`], starts and stops the child under the
//! node's root supervisor when told to, and keeps the process's [`Placed`] entry of every
//! failover child current, so that handles reach the holder. A node that is not eligible for
//! a child only follows its record, to route to it.
//!
//! # When the child gives up
//!
//! The child is added to the root as a [`Restart::Temporary`] child: the root neither
//! restarts it nor fails with it. Its own supervisor applies its restart intensity here; when
//! it gives up (the child exits on its own) or the child fails to start
//! [`GIVE_UP_AFTER_FAILED_STARTS`](troupe_placement::GIVE_UP_AFTER_FAILED_STARTS) times in a
//! row, the seat gives the child up to the next node of the order and sits out for a while
//! (see `troupe_placement::bench`). The driver learns of an exit by asking the root for its
//! children at every tick while the child runs here; a stop it asked for itself is never
//! counted.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use troupe_placement::{
    Action, GaveUp, LeaseConfig, LeaseRecord, Placement, RequestId, Seat, WriteOutcome,
};
use troupe_runtime::placed::{Gate, Placed};
use troupe_runtime::{Actor, ActorError, ChildSpec, Ctx, Node, Restart};

use crate::register::{Directions, LeaseRegister};

/// How often the driver consults its seats
pub const TICK: Duration = Duration::from_millis(100);

/// How a failed start is retried: as a supervisor backs off restarts by default (10 ms,
/// doubling up to 1 s), at the driver's tick at the soonest
pub const START_BACKOFF: troupe_runtime::Backoff = troupe_runtime::supervisor::DEFAULT_BACKOFF;

/// How close to the end of its lease a stop kills the child rather than stopping it
/// gracefully (and when a hand-over stops waiting for its mailboxes to empty)
pub const KILL_WITHIN: Duration = Duration::from_millis(500);

/// The name the driver is registered under on each node
pub const DRIVER_NAME: &str = "troupe.placement";

/// A unit the cluster places on one node of its [`Placement`] at a time: usually a
/// supervisor with everything under it (a failover group). It is known by the name it is
/// started and stopped under and by every name it registers, whose handles follow it.
#[derive(Debug, Clone)]
pub struct FailoverChild {
    name: String,
    names: Vec<String>,
    placement: Placement,
    mailbox_limit: usize,
}

impl FailoverChild {
    /// Unit `name` (unique in the topology), registering `names`, placed by `placement`;
    /// casts to each name park up to `mailbox_limit` while nobody runs it
    pub fn new(
        name: &str,
        names: impl IntoIterator<Item = String>,
        placement: Placement,
        mailbox_limit: usize,
    ) -> Self {
        Self {
            name: name.to_string(),
            names: names.into_iter().collect(),
            placement,
            mailbox_limit,
        }
    }

    /// The name it is started and stopped under
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every name it registers
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Its failover order
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// The limit on casts parked for each of its names while nobody runs it
    pub fn mailbox_limit(&self) -> usize {
        self.mailbox_limit
    }
}

/// What a node in a child's failover order holds for it: the child's spec, its names
/// registered on the node and gated by `gate`, ready to start whenever the node holds the
/// lease (and to start again after it gave it up: [`SupervisorRef::terminate`] keeps the
/// names).
///
/// [`SupervisorRef::terminate`]: troupe_runtime::SupervisorRef::terminate
#[derive(Clone)]
pub struct Prepared {
    /// The child, made on this node
    pub spec: ChildSpec,
    /// The gate every one of its names was registered behind (`Node::gate`)
    pub gate: Gate,
    /// Makes the child on this node again (registering its names), for when a failed start
    /// discarded `spec`
    pub make: MakeChild,
}

/// Makes a failover child on a node, registering its names there
pub type MakeChild =
    Arc<dyn Fn(&Node) -> Result<ChildSpec, troupe_runtime::RegistryError> + Send + Sync>;

/// One failover child as a node's driver is given it
#[derive(Clone)]
pub struct FailoverUnit {
    /// The child
    pub child: FailoverChild,
    /// Its spec on this node, if the node is in its failover order
    pub here: Option<Prepared>,
}

/// The driver's own messages: its clock and the answers of the tasks it starts. Never sent
/// from another node (the driver is registered reachable from its own node only).
#[derive(Debug, Serialize, Deserialize, troupe_runtime::Message)]
#[message(name = "troupe.placement.Driver", crate = "troupe_runtime")]
pub enum DriverMsg {
    /// Consult the seats
    Tick,
    /// A read came back: `record` is `None` if it failed; `id` is the seat's request, `None`
    /// for a follower's read
    Read {
        /// The driver instance that asked (answers to an earlier one are dropped)
        epoch: u64,
        /// The child's index
        child: usize,
        /// The seat's request
        id: Option<RequestId>,
        /// What the register holds
        record: Option<Option<LeaseRecord>>,
    },
    /// A compare-and-set ended
    Wrote {
        /// The driver instance that asked
        epoch: u64,
        /// The child's index
        child: usize,
        /// The seat's request
        id: RequestId,
        /// How
        outcome: WriteOutcome,
    },
    /// A start ended
    Started {
        /// The driver instance that asked
        epoch: u64,
        /// The child's index
        child: usize,
        /// Whether the child runs
        ok: bool,
    },
    /// The child stopped
    Stopped {
        /// The driver instance that asked
        epoch: u64,
        /// The child's index
        child: usize,
    },
    /// Operators' directions came back (`None`: the read failed)
    Directed {
        /// The driver instance that asked
        epoch: u64,
        /// What they are
        directions: Option<Directions>,
    },
    /// The root supervisor said which children it runs: a child asked about and not among
    /// them ended on its own
    Children {
        /// The driver instance that asked
        epoch: u64,
        /// The children asked about: each one's index, and how many starts it had had here
        /// when asked (an exit counts only for the instance it was asked about)
        asked: Vec<(usize, u64)>,
        /// The root's running children; `None` if it did not answer
        names: Option<Vec<String>>,
    },
}

/// Where a child's instance on this node is
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Instance {
    None,
    Starting {
        /// A stop came while it started: stop it once started
        then_stop: bool,
    },
    Running,
    Stopping,
}

struct Tracked {
    child: FailoverChild,
    /// The entries of its names in this process
    placed: Vec<Placed>,
    /// Its spec here, and the gate open while this node's lease lets it act
    here: Option<Prepared>,
    /// This node's seat, if it is in the child's failover order
    seat: Option<Seat>,
    instance: Instance,
    /// Being handed over: its next stop waits for its mailboxes to empty
    draining: bool,
    /// Starts that failed in a row here, and when the next may be tried (backed off as a
    /// supervisor backs off restarts)
    start_failures: u32,
    retry_at: Option<Instant>,
    /// A follower's read is in flight
    reading: bool,
    last_read: Option<Instant>,
    /// Starts begun here: names the instance a check of the root's children is about
    starts: u64,
}

impl Tracked {
    /// The holder this process knows of
    fn holder(&self) -> Option<String> {
        self.placed.first().and_then(Placed::holder)
    }

    /// The newest lease generation its entries were told of
    fn generation(&self) -> u64 {
        self.placed
            .iter()
            .map(Placed::generation)
            .max()
            .unwrap_or(0)
    }

    /// Routes every one of its names to `holder` as of lease record `generation`
    fn observe(&self, holder: Option<&str>, generation: u64) {
        for placed in &self.placed {
            placed.observe(holder, generation);
        }
    }
}

/// The order `child` follows now, as `node` sees it: its placement with the nodes of `live`
/// that play its roles, then as operators' `directions` have it (moved to a node first,
/// drained nodes left out)
pub fn current_order(
    child: &FailoverChild,
    directions: &Directions,
    node: &Node,
    live: &HashSet<String>,
) -> Placement {
    let placement = child.placement();
    let members = match placement.roles() {
        [] => Vec::new(),
        roles => live
            .iter()
            .filter(|n| {
                let plays = node.roles_of(n);
                roles.iter().any(|r| plays.contains(r))
            })
            .collect(),
    };
    let moved_to = directions.moved.get(child.name()).map(String::as_str);
    placement
        .with_members(members)
        .directed(moved_to, &|n| directions.drained.contains(n))
}

/// Whether every actor of `names` on `node` has an empty mailbox
fn mailboxes_empty(node: &Node, names: &[String]) -> bool {
    node.actor_stats()
        .iter()
        .filter(|s| names.contains(&s.name))
        .all(|s| s.mailbox_depth == 0)
}

/// The actor that places failover children from one node; see the [module docs](self)
pub struct PlacementDriver {
    register: Arc<dyn LeaseRegister>,
    config: LeaseConfig,
    units: Vec<FailoverUnit>,
    tracked: Vec<Tracked>,
    /// This instance of the driver, stamped on the answers it asks for
    epoch: u64,
    /// Operators' directions as last read, and whether a read of them is in flight
    directions: Directions,
    reading_directions: bool,
    directions_read: Option<Instant>,
    /// A question to the root about which children run is in flight
    checking: bool,
}

impl PlacementDriver {
    /// A driver for `units` (every failover child of the topology, with its spec where this
    /// node may run it), keeping leases in `register` by `config`. A `config` that cannot keep
    /// holders apart ([`LeaseConfig::check`]) fails the driver's start.
    pub fn new(
        register: Arc<dyn LeaseRegister>,
        config: LeaseConfig,
        units: Vec<FailoverUnit>,
    ) -> Self {
        Self {
            register,
            config,
            units,
            tracked: Vec::new(),
            epoch: 0,
            directions: Directions::default(),
            reading_directions: false,
            directions_read: None,
            checking: false,
        }
    }

    /// Has every seat follow its child's order as it stands: with the live nodes that play
    /// its roles, as operators direct it
    fn redirect(&mut self, node: &Node, live: &HashSet<String>) {
        for t in &mut self.tracked {
            if let Some(seat) = &mut t.seat {
                let placement = current_order(&t.child, &self.directions, node, live);
                if *seat.placement() != placement {
                    tracing::info!(child = %t.child.name, order = ?placement.nodes(), "placement directed");
                    seat.set_placement(placement);
                }
            }
        }
    }

    /// The nodes this node holds live: itself, and the peers the membership protocol holds up
    /// (every node of the process when it has no network endpoint). Not the peers it is
    /// connected to: a link cut between two nodes that both reach a third leaves each up in
    /// every view, so the nodes agree on who tries.
    fn live_view(node: &Node) -> HashSet<String> {
        let mesh = node.mesh();
        let mut live: HashSet<String> = match mesh.net(node.name()) {
            Some(net) => net.live().into_iter().collect(),
            None => mesh.node_names().into_iter().collect(),
        };
        live.insert(node.name().to_string());
        live
    }

    fn tick(&mut self, ctx: &mut Ctx<DriverMsg>) {
        let now = troupe_runtime::time::now();
        if !self.reading_directions
            && self
                .directions_read
                .is_none_or(|at| now >= at + self.config.renew_after)
        {
            self.reading_directions = true;
            let (read, myself) = (self.register.directions(), ctx.myself().clone());
            let epoch = self.epoch;
            ctx.spawn(async move {
                let directions = match read.await {
                    Ok(directions) => Some(directions),
                    Err(error) => {
                        tracing::debug!(%error, "reading placement directions failed");
                        None
                    }
                };
                let _ = myself.cast(DriverMsg::Directed { epoch, directions });
                Ok(())
            });
        }
        let live = Self::live_view(ctx.node());
        self.redirect(ctx.node(), &live);
        let me = ctx.node().name().to_string();
        for i in 0..self.tracked.len() {
            let t = &mut self.tracked[i];
            let actions = match &mut t.seat {
                Some(seat) => {
                    let actions = seat.tick(now, &|n| live.contains(n));
                    if let Some(here) = &t.here {
                        match seat.acts_until() {
                            Some(until) => here.gate.open_until_with_token(
                                until,
                                seat.lease().map_or(0, |lease| lease.generation),
                            ),
                            None => here.gate.close(),
                        }
                    }
                    actions
                }
                None => Vec::new(),
            };
            self.act(i, actions, ctx);
            let t = &mut self.tracked[i];
            if t.seat.is_none()
                && !t.reading
                && t.last_read
                    .is_none_or(|at| now >= at + self.config.renew_after)
            {
                t.reading = true;
                self.read(i, None, ctx);
            }
            // a holder this node no longer reaches: park sends until the next one is known
            let t = &self.tracked[i];
            if let Some(holder) = t.holder()
                && holder != me
                && !live.contains(&holder)
            {
                t.observe(None, t.generation());
            }
        }
        self.check_running(ctx);
    }

    /// Asks the root which children run, if a child runs here and no question is in flight:
    /// one that no longer does ended on its own (see [`PlacementDriver::ended_here`])
    fn check_running(&mut self, ctx: &mut Ctx<DriverMsg>) {
        if self.checking {
            return;
        }
        let asked: Vec<(usize, u64)> = self
            .tracked
            .iter()
            .enumerate()
            .filter(|(_, t)| t.instance == Instance::Running)
            .map(|(i, t)| (i, t.starts))
            .collect();
        let Some(root) = ctx.node().root() else {
            return;
        };
        if asked.is_empty() {
            return;
        }
        self.checking = true;
        let (myself, epoch) = (ctx.myself().clone(), self.epoch);
        ctx.spawn(async move {
            let names = match root.children().await {
                Ok(names) => Some(names),
                Err(error) => {
                    tracing::debug!(%error, "asking the root for its children failed");
                    None
                }
            };
            let _ = myself.cast(DriverMsg::Children {
                epoch,
                asked,
                names,
            });
            Ok(())
        });
    }

    /// Failover child `i` ended here on its own (its supervisor gave up: restart intensity
    /// exceeded), or failed to start too often, and its seat gave it up (`gave_up`): nothing of
    /// it runs or takes messages here, and sends wait for the next holder
    fn ended_here(&mut self, i: usize, gave_up: GaveUp, how: &str, node: &Node) {
        let t = &mut self.tracked[i];
        t.instance = Instance::None;
        t.draining = false;
        (t.start_failures, t.retry_at) = (0, None);
        if t.holder().as_deref() == Some(node.name()) {
            // sends park for the next holder rather than reach names released here
            t.observe(None, t.generation() + 1);
        }
        if let Some(here) = &t.here {
            here.gate.close();
        }
        tracing::warn!(
            node = %node.name(),
            child = %t.child.name,
            failures = gave_up.in_a_row,
            sits_out = ?gave_up.sits_out,
            "failover child {how} here: giving it up to the next node"
        );
    }

    fn read(&self, i: usize, id: Option<RequestId>, ctx: &mut Ctx<DriverMsg>) {
        let read = self.register.read(self.tracked[i].child.name());
        let epoch = self.epoch;
        let myself = ctx.myself().clone();
        let name = self.tracked[i].child.name.clone();
        ctx.spawn(async move {
            let record = match read.await {
                Ok(record) => Some(record),
                Err(error) => {
                    tracing::debug!(child = %name, %error, "lease read failed");
                    None
                }
            };
            let _ = myself.cast(DriverMsg::Read {
                epoch,
                child: i,
                id,
                record,
            });
            Ok(())
        });
    }

    /// Carries out a seat's actions
    fn act(&mut self, i: usize, actions: Vec<Action>, ctx: &mut Ctx<DriverMsg>) {
        for action in actions {
            match action {
                Action::Read { id } => self.read(i, Some(id), ctx),
                Action::Write { id, expected, new } => {
                    let write =
                        self.register
                            .compare_and_set(self.tracked[i].child.name(), expected, new);
                    let (myself, epoch) = (ctx.myself().clone(), self.epoch);
                    ctx.spawn(async move {
                        let outcome = write.await;
                        let _ = myself.cast(DriverMsg::Wrote {
                            epoch,
                            child: i,
                            id,
                            outcome,
                        });
                        Ok(())
                    });
                }
                Action::Start => self.start(i, ctx),
                Action::Drain => self.drain(i, ctx),
                Action::Stop => self.stop(i, ctx),
            }
        }
    }

    fn start(&mut self, i: usize, ctx: &mut Ctx<DriverMsg>) {
        let epoch = self.epoch;
        let t = &mut self.tracked[i];
        match t.instance {
            Instance::None => {}
            Instance::Starting { .. } => {
                t.instance = Instance::Starting { then_stop: false };
                return;
            }
            // still stopping from an earlier stop: started again once stopped
            Instance::Running | Instance::Stopping => return,
        }
        let Some(here) = t.here.as_mut() else {
            // not in its failover order: a seat never tells this node to start it
            return;
        };
        if t.retry_at
            .is_some_and(|at| troupe_runtime::time::now() < at)
        {
            // backing off after a failed start: the seat asks again at a later tick
            if let Some(seat) = &mut t.seat {
                seat.child_stopped();
            }
            return;
        }
        let node = ctx.node().clone();
        // a start that failed (or was cancelled) discarded the spec and released its names:
        // make it afresh, gated again
        if !t.child.names.iter().all(|n| node.is_registered(n)) {
            match (here.make)(&node) {
                Ok(spec) => {
                    for name in &t.child.names {
                        node.gate(name, here.gate.clone());
                    }
                    here.spec = spec;
                }
                Err(error) => {
                    tracing::warn!(child = %t.child.name, %error, "failover child could not be made again");
                    let now = troupe_runtime::time::now();
                    t.start_failures += 1;
                    t.retry_at = Some(now + START_BACKOFF.delay(t.start_failures));
                    if let Some(gave_up) = t.seat.as_mut().and_then(|seat| seat.start_failed(now)) {
                        self.ended_here(i, gave_up, "failed to start", &node);
                    }
                    return;
                }
            }
        }
        t.instance = Instance::Starting { then_stop: false };
        t.starts += 1;
        tracing::info!(child = %t.child.name, node = %node.name(), "starting failover child here");
        // temporary under the root: when the child gives up, the seat moves it, and the root
        // neither restarts it here nor fails with it
        let (spec, myself, name) = (
            here.spec.clone().with_restart(Restart::Temporary),
            ctx.myself().clone(),
            t.child.name.clone(),
        );
        ctx.spawn(async move {
            let started = match node.root() {
                Some(root) => root.add(spec).await.map_err(|e| e.to_string()),
                None => Err("the node has no root supervisor".to_string()),
            };
            if let Err(error) = &started {
                tracing::warn!(child = %name, %error, "failover child failed to start; retrying");
            }
            let _ = myself.cast(DriverMsg::Started {
                epoch,
                child: i,
                ok: started.is_ok(),
            });
            Ok(())
        });
    }

    /// Holds new messages back from the instance here (they park for the next holder) while
    /// it works off those it has
    fn drain(&mut self, i: usize, ctx: &mut Ctx<DriverMsg>) {
        let t = &mut self.tracked[i];
        if t.instance == Instance::None {
            return;
        }
        t.draining = true;
        if t.holder().as_deref() == Some(ctx.node().name()) {
            // newer than the record the hand-over is about to write's predecessor, so a stale
            // read by another node of this process cannot route here again
            t.observe(None, t.generation() + 1);
        }
        tracing::info!(child = %t.child.name, node = %ctx.node().name(), "handing failover child over: draining it here");
    }

    fn stop(&mut self, i: usize, ctx: &mut Ctx<DriverMsg>) {
        let epoch = self.epoch;
        let t = &mut self.tracked[i];
        let generation = t.generation();
        match t.instance {
            Instance::Starting { .. } => {
                t.instance = Instance::Starting { then_stop: true };
                return;
            }
            Instance::Stopping => return,
            Instance::None => {
                t.draining = false;
                if let Some(seat) = &mut t.seat {
                    seat.child_stopped();
                }
                return;
            }
            Instance::Running => {}
        }
        let drain = std::mem::take(&mut t.draining);
        t.instance = Instance::Stopping;
        // sends park from now on, rather than reach an instance on its way out
        if t.holder().as_deref() == Some(ctx.node().name()) {
            t.observe(None, generation + 1);
        }
        let now = troupe_runtime::time::now();
        let acts_until = t.seat.as_ref().and_then(Seat::acts_until);
        // a lease that has run out (or is about to) may not be relied on for a graceful stop:
        // its hooks and a handler under way could still act when another node has the child
        let kill = acts_until.is_none_or(|until| until <= now + KILL_WITHIN);
        tracing::info!(child = %t.child.name, node = %ctx.node().name(), kill, "stopping failover child here");
        let (node, myself, name) = (
            ctx.node().clone(),
            ctx.myself().clone(),
            t.child.name.clone(),
        );
        let names = t.child.names.clone();
        ctx.spawn(async move {
            // handed over: let it work off its mailboxes first, while its lease lasts (past
            // that its gate refuses what is left)
            if drain && !kill && let Some(until) = acts_until {
                let until = tokio::time::Instant::from_std(until - KILL_WITHIN);
                while tokio::time::Instant::now() < until && !mailboxes_empty(&node, &names) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            // its names stay registered here for a next start; what is left for them here is
            // dropped (refused), not kept for an instance that may run elsewhere next
            if let Some(root) = node.root() {
                let stopped = match kill {
                    true => root.kill_and_terminate(&name).await,
                    false => root.terminate(&name).await,
                };
                if let Err(error) = stopped {
                    tracing::warn!(child = %name, %error, "failover child could not be stopped");
                }
            }
            let dropped: usize = names.iter().map(|n| node.drop_parked(n)).sum();
            if dropped > 0 {
                tracing::warn!(child = %name, dropped, "messages left for the failover child here were dropped");
            }
            let _ = myself.cast(DriverMsg::Stopped { epoch, child: i });
            Ok(())
        });
    }

    /// Routes by a record read from the register (unless this node holds it: it knows); a
    /// record being handed over routes nowhere: senders hold their messages for the next holder
    fn learn(&self, i: usize, record: Option<&LeaseRecord>, node: &Node) {
        let t = &self.tracked[i];
        let Some(record) = record else {
            return;
        };
        if record.holder == node.name() {
            // this node knows better than the record: it routes here only while it runs it
            if t.seat.as_ref().is_some_and(Seat::holds) {
                return;
            }
            t.observe(None, record.generation);
            return;
        }
        let live = Self::live_view(node);
        let holder = (!record.released && !record.draining && live.contains(&record.holder))
            .then_some(record.holder.as_str());
        t.observe(holder, record.generation);
    }

    /// Answers a read or a write came back with, then whatever the seat does next
    fn settle(&mut self, msg: DriverMsg, ctx: &mut Ctx<DriverMsg>) {
        let now = troupe_runtime::time::now();
        let me = ctx.node().name().to_string();
        let msg = match msg {
            DriverMsg::Tick => return self.tick(ctx),
            DriverMsg::Directed { epoch, .. }
            | DriverMsg::Children { epoch, .. }
            | DriverMsg::Read { epoch, .. }
            | DriverMsg::Wrote { epoch, .. }
            | DriverMsg::Started { epoch, .. }
            | DriverMsg::Stopped { epoch, .. }
                if epoch != self.epoch =>
            {
                // an answer to an earlier instance of this driver, left in its mailbox
                return;
            }
            DriverMsg::Directed { directions, .. } => {
                self.reading_directions = false;
                self.directions_read = Some(now);
                if let Some(directions) = directions {
                    self.directions = directions;
                }
                return self.tick(ctx);
            }
            DriverMsg::Children { asked, names, .. } => {
                self.checking = false;
                let Some(names) = names else {
                    return;
                };
                let node = ctx.node().clone();
                let mut ended = false;
                for (i, starts) in asked {
                    let Some(t) = self.tracked.get_mut(i) else {
                        continue;
                    };
                    // the instance asked about still runs as far as the driver knows (no stop
                    // asked since, no new start), and the root no longer has it
                    if t.instance != Instance::Running
                        || t.starts != starts
                        || names.contains(&t.child.name)
                    {
                        continue;
                    }
                    let gave_up = t.seat.as_mut().map(|seat| seat.child_failed(now));
                    match gave_up {
                        Some(gave_up) => self.ended_here(i, gave_up, "ended on its own", &node),
                        None => t.instance = Instance::None,
                    }
                    ended = true;
                }
                if ended {
                    self.tick(ctx);
                }
                return;
            }
            msg => msg,
        };
        let i = match &msg {
            DriverMsg::Read { child, .. }
            | DriverMsg::Wrote { child, .. }
            | DriverMsg::Started { child, .. }
            | DriverMsg::Stopped { child, .. } => *child,
            DriverMsg::Tick | DriverMsg::Directed { .. } | DriverMsg::Children { .. } => return,
        };
        if i >= self.tracked.len() {
            return;
        }
        match msg {
            DriverMsg::Tick | DriverMsg::Directed { .. } | DriverMsg::Children { .. } => {}
            DriverMsg::Read { id, record, .. } => {
                let t = &mut self.tracked[i];
                if id.is_none() {
                    t.reading = false;
                    t.last_read = Some(now);
                }
                if let Some(record) = record {
                    self.learn(i, record.as_ref(), ctx.node());
                    if let (Some(seat), Some(id)) = (&mut self.tracked[i].seat, id) {
                        seat.read_done(id, record, now);
                    }
                }
            }
            DriverMsg::Wrote { id, outcome, .. } => {
                let actions = match &mut self.tracked[i].seat {
                    Some(seat) => seat.write_done(id, outcome, now),
                    None => Vec::new(),
                };
                self.act(i, actions, ctx);
            }
            DriverMsg::Started { ok, .. } => {
                let t = &mut self.tracked[i];
                let then_stop = matches!(t.instance, Instance::Starting { then_stop: true });
                if !ok {
                    t.instance = Instance::None;
                    t.start_failures += 1;
                    t.retry_at = Some(now + START_BACKOFF.delay(t.start_failures));
                    // told to run still: tried again once the backoff has passed (and a stop
                    // asked meanwhile is done: nothing runs), unless it failed too often here
                    if let Some(gave_up) = t.seat.as_mut().and_then(|seat| seat.start_failed(now)) {
                        self.ended_here(i, gave_up, "failed to start", ctx.node());
                    }
                } else if then_stop {
                    t.instance = Instance::Running;
                    self.stop(i, ctx);
                } else {
                    t.instance = Instance::Running;
                    (t.start_failures, t.retry_at) = (0, None);
                    if let Some(seat) = &mut t.seat {
                        seat.child_started();
                    }
                    let generation = t.seat.as_ref().and_then(Seat::lease).map(|l| l.generation);
                    if let Some(generation) = generation {
                        let generation = generation.max(t.generation());
                        t.observe(Some(&me), generation);
                    }
                }
            }
            DriverMsg::Stopped { .. } => {
                let t = &mut self.tracked[i];
                t.instance = Instance::None;
                if let Some(seat) = &mut t.seat {
                    seat.child_stopped();
                }
            }
        }
        // act on what changed at once rather than at the next tick
        self.tick(ctx);
    }
}

impl Actor for PlacementDriver {
    type Msg = DriverMsg;

    async fn started(&mut self, ctx: &mut Ctx<DriverMsg>) -> Result<(), ActorError> {
        static EPOCHS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        self.epoch = EPOCHS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.checking = false;
        let node = ctx.node().clone();
        let mesh = node.mesh();
        self.tracked.clear();
        // nothing acts on a lease this instance has not read yet
        for unit in &self.units {
            if let Some(here) = &unit.here {
                here.gate.close();
            }
        }
        let running = match node.root() {
            Some(root) => root
                .children()
                .await
                .map_err(|e| ActorError::from(e.to_string()))?,
            None => Vec::new(),
        };
        for unit in &self.units {
            let child = &unit.child;
            // an instance left by an earlier driver of this node runs with no lease renewed:
            // stop it before anything else
            if running.contains(&child.name)
                && let Some(root) = node.root()
            {
                tracing::warn!(child = %child.name, "stopping a failover child left from before this driver started");
                root.terminate(&child.name)
                    .await
                    .map_err(|e| ActorError::from(e.to_string()))?;
            }
            let settles = mesh.net(node.name()).map(|net| net.view_settles_at());
            let seat = unit
                .here
                .is_some()
                .then(|| Seat::new(node.name(), child.placement.clone(), self.config))
                .transpose()
                .map_err(|e| ActorError::from(e.to_string()))?
                .map(|seat| match settles {
                    Some(at) => seat.with_view_settling_until(at),
                    None => seat,
                });
            self.tracked.push(Tracked {
                child: child.clone(),
                placed: child
                    .names
                    .iter()
                    .map(|name| mesh.place(name, child.mailbox_limit))
                    .collect(),
                here: unit.here.clone(),
                seat,
                instance: Instance::None,
                draining: false,
                start_failures: 0,
                retry_at: None,
                reading: false,
                last_read: None,
                starts: 0,
            });
        }
        ctx.send_interval(TICK, || DriverMsg::Tick);
        self.tick(ctx);
        Ok(())
    }

    async fn handle(&mut self, msg: DriverMsg, ctx: &mut Ctx<DriverMsg>) -> Result<(), ActorError> {
        self.settle(msg, ctx);
        Ok(())
    }

    /// Gives up the leases this node holds, so the next node need not wait for them to run
    /// out: when the node shuts down (its failover children, added after the driver, have
    /// stopped by now), or for children not running here
    async fn stopped(&mut self, ctx: &mut Ctx<DriverMsg>) -> Result<(), ActorError> {
        for t in &self.tracked {
            if let Some(here) = &t.here {
                here.gate.close();
            }
        }
        let node = ctx.node().clone();
        let releases: Vec<_> = self
            .tracked
            .iter()
            // only what no longer runs here (at shutdown the groups, added after the driver,
            // have stopped before it)
            .filter(|t| !t.child.names.iter().any(|n| node.is_running(n)))
            .filter_map(|t| {
                let lease = t.seat.as_ref().and_then(Seat::lease)?;
                Some(self.register.compare_and_set(
                    t.child.name(),
                    Some(lease.clone()),
                    lease.released(),
                ))
            })
            .collect();
        if !releases.is_empty() {
            let released =
                tokio::time::timeout(self.config.renew_after, futures::future::join_all(releases))
                    .await;
            tracing::info!(node = %ctx.node().name(), released = released.is_ok(), "gave up this node's leases");
        }
        Ok(())
    }
}
