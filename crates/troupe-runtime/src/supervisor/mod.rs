//! Erlang/OTP-style supervision on top of ractor's supervision events.
//!
//! ractor reports child starts, exits and failures; what to do about them is decided by the
//! pure [`core::SupervisorCore`] (strategies, restart types, intensity, backoff) and carried out
//! by the thin supervisor actor in this module. A supervisor keeps its children in start order
//! (ractor's own child map is unordered), which is what rest-for-one and ordered shutdown need.

pub mod core;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use ractor::{ActorCell, ActorProcessingErr, ActorRef, ActorStatus, SupervisionEvent};
use tokio::sync::oneshot;

use self::core::SupervisorCore;
pub use self::core::{
    Backoff, ChildId, Decision, Exit, Intensity, Restart, Strategy, WhenExceeded,
};
use crate::actor::Actor;
use crate::addr::Addr;
use crate::error::SpawnError;
use crate::node::{Node, NodeExit};
use crate::pool::Pool;
use crate::reach::Reach;

/// How a supervisor treats its children: strategy, restart intensity, backoff, what to do
/// when the intensity is exceeded, and how long each child gets to stop gracefully.
///
/// The defaults keep crashes small: one-for-one, intensity 3 restarts in 5 s, restarts
/// delayed from 10 ms doubling up to 1 s, and past the intensity the supervisor **keeps
/// restarting** (at the backoff's pace, logging the crash loop at error level) instead of
/// escalating. OTP's escalation — stop every child and fail upwards, which at a node's root
/// ends the node — is asked for with [`escalate_when_exceeded`](Self::escalate_when_exceeded).
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    /// Which siblings restart together.
    pub strategy: Strategy,
    /// Restart limit before escalating (or, by default, before the crash loop is reported).
    pub intensity: Intensity,
    /// Delay between restarts, growing while restarts keep coming.
    pub backoff: Option<Backoff>,
    /// Escalate or keep restarting when the intensity is exceeded.
    pub when_exceeded: WhenExceeded,
    /// Time each child gets to stop before it is killed.
    pub shutdown_timeout: Duration,
}

/// The default restart backoff: 10 ms, doubling up to 1 s.
pub const DEFAULT_BACKOFF: Backoff = Backoff {
    initial: Duration::from_millis(10),
    max: Duration::from_secs(1),
};

impl Default for SupervisorSpec {
    fn default() -> Self {
        Self {
            strategy: Strategy::OneForOne,
            intensity: Intensity::default(),
            backoff: Some(DEFAULT_BACKOFF),
            when_exceeded: WhenExceeded::KeepRestarting,
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

impl SupervisorSpec {
    /// One-for-one with the default intensity, backoff and crash-loop handling (see the type).
    pub fn one_for_one() -> Self {
        Self::default()
    }

    /// One-for-all with the defaults otherwise.
    pub fn one_for_all() -> Self {
        Self {
            strategy: Strategy::OneForAll,
            ..Self::default()
        }
    }

    /// Rest-for-one with the defaults otherwise.
    pub fn rest_for_one() -> Self {
        Self {
            strategy: Strategy::RestForOne,
            ..Self::default()
        }
    }

    /// Allows at most `max_restarts` restarts within `within` before escalating.
    pub fn intensity(mut self, max_restarts: u32, within: Duration) -> Self {
        self.intensity = Intensity {
            max_restarts,
            within,
        };
        self
    }

    /// Delays restarts exponentially from `initial` up to `max`.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff = Some(Backoff { initial, max });
        self
    }

    /// Restarts at once, with no backoff (OTP's behaviour).
    pub fn no_backoff(mut self) -> Self {
        self.backoff = None;
        self
    }

    /// When the intensity is exceeded, stops every child and fails upwards, as OTP does: a
    /// nested supervisor is then restarted (or not) by its parent, and a node's root
    /// supervisor ends the node with the reason logged at error level.
    pub fn escalate_when_exceeded(mut self) -> Self {
        self.when_exceeded = WhenExceeded::Escalate;
        self
    }

    /// Gives each child `timeout` to stop gracefully before killing it.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }
}

/// Per-child settings: restart type, mailbox limit, and who may reach it from other nodes.
#[derive(Clone, Debug, Default)]
pub struct ChildOptions {
    /// Whether the child is restarted after it exits.
    pub restart: Restart,
    /// Mailbox depth limit; the node's default when `None`.
    pub mailbox_limit: Option<usize>,
    /// Which other nodes may send it messages; [`Reach::Local`] (none) unless set.
    pub reach: Reach,
    /// Until when it may handle messages, if only for a while (a failover child's lease);
    /// always when `None`.
    pub gate: Option<crate::placed::Gate>,
}

impl ChildOptions {
    /// A permanent child with the node's mailbox limit.
    pub fn permanent() -> Self {
        Self::default()
    }

    /// A transient child (restarted only after a failure).
    pub fn transient() -> Self {
        Self {
            restart: Restart::Transient,
            ..Self::default()
        }
    }

    /// A temporary child (never restarted).
    pub fn temporary() -> Self {
        Self {
            restart: Restart::Temporary,
            ..Self::default()
        }
    }

    /// Sets the mailbox depth limit.
    pub fn mailbox_limit(mut self, limit: usize) -> Self {
        self.mailbox_limit = Some(limit);
        self
    }

    /// Lets other nodes send it messages as `reach` says (by default none may: a message
    /// from another node gets [`CallError::Forbidden`](crate::CallError::Forbidden)).
    pub fn reachable_from(mut self, reach: Reach) -> Self {
        self.reach = reach;
        self
    }

    /// Handles messages only while `gate` is open; refuses them otherwise (see
    /// [`Gate`](crate::placed::Gate)).
    pub fn gated(mut self, gate: crate::placed::Gate) -> Self {
        self.gate = Some(gate);
        self
    }
}

/// Something a supervisor can start, stop and forget: an actor under a name, or a nested
/// supervisor.
pub(crate) trait Starter: Send + Sync + 'static {
    fn name(&self) -> &str;
    /// Starts a new instance linked to `parent` and makes it reachable.
    fn start(
        self: Arc<Self>,
        parent: ActorCell,
    ) -> Pin<Box<dyn Future<Output = Result<ActorCell, SpawnError>> + Send>>;
    /// The instance is gone; messages wait for the next one.
    fn vacate(&self);
    /// The child is gone for good; its names are released and waiting calls fail.
    fn remove(&self);
}

/// A child ready to be added to a supervisor (made by [`Node::child`] and friends).
#[derive(Clone)]
pub struct ChildSpec {
    starter: Arc<dyn Starter>,
    restart: Restart,
}

impl ChildSpec {
    pub(crate) fn new(starter: Arc<dyn Starter>, restart: Restart) -> Self {
        Self { starter, restart }
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        self.starter.name()
    }

    /// The same child with restart type `restart`: for a child whose restarts are decided
    /// elsewhere (a failover group, which its placement driver adds as
    /// [`Restart::Temporary`] so that, when it gives up, the node's root neither restarts it
    /// nor fails with it).
    pub fn with_restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Releases the child's registered names without starting it (for a spec that will not be
    /// used after all).
    pub fn discard(self) {
        self.starter.remove();
    }
}

impl std::fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name())
            .field("restart", &self.restart)
            .finish()
    }
}

/// What a supervisor did about one child's exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SupervisionAction {
    /// The listed children are being restarted (after `delay`).
    Restarted {
        /// Children restarted, in start order.
        children: Vec<String>,
        /// Backoff before the restart.
        delay: Duration,
    },
    /// The child was removed (temporary, or transient that ended normally).
    Removed,
    /// Restart intensity was exceeded; the supervisor stopped its children and failed.
    Escalated(String),
}

/// One child exit and the supervisor's response, published to [`Node::supervision_reports`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SupervisionReport {
    /// The node.
    pub node: String,
    /// The supervisor's name.
    pub supervisor: String,
    /// The child that exited.
    pub child: String,
    /// How it exited.
    pub exit: Exit,
    /// What it said when it exited, if anything.
    pub reason: Option<String>,
    /// What the supervisor did.
    pub action: SupervisionAction,
}

pub(crate) enum SupMsg {
    /// A child waits whose first event came before it (see `Adoptions`).
    Wake,
    RestartDue(Vec<ChildId>),
    Children(oneshot::Sender<Vec<String>>),
    /// Stop the child of this name and forget it; answers whether there was one.
    Remove(String, Forget, oneshot::Sender<bool>),
}

/// How [`SupMsg::Remove`] forgets a child
#[derive(Clone, Copy, Debug)]
pub(crate) struct Forget {
    /// Leave its names registered, for a later start of the same spec
    keep_names: bool,
    /// Kill it at once rather than stop it gracefully
    kill: bool,
}

/// What a supervisor heard of a child before it could record it.
pub(crate) enum Early {
    /// The child started.
    Started,
    /// The child ended.
    Exited(Exit, Option<String>),
}

/// Children that [`SupervisorRef::add`] started, between their start and their supervisor
/// recording them, shared by the callers and the supervisor's current instance.
///
/// `add` starts a child in the caller's task, linked to the supervisor, and leaves it in
/// `waiting`; the supervisor records every waiting child before it handles anything else (an
/// event, a message, its own stop), so no message per child is needed. A child's first event
/// can come before its `add` has put it there (it runs on another thread from its start on);
/// the supervisor keeps such events in `early`, and that `add` leaves the event with the child
/// and wakes the supervisor with a [`SupMsg::Wake`].
#[derive(Default)]
struct Adoptions {
    /// The pid of the supervisor instance taking children; `None` while none runs (a caller
    /// then stops what it started).
    instance: Option<u64>,
    /// Started and linked to `instance` (with their pids), the children of one caller in the
    /// order it added them. Emptied at every event and message the supervisor handles.
    waiting: Vec<Waiting>,
    /// First events of children not yet in `waiting`: one per `add` between starting its child
    /// and handing it over, and emptied whenever no `add` is there.
    early: IdMap<u64, Early>,
}

/// A child in `Adoptions::waiting`: its instance's pid, its spec, its instance, and its first
/// event if the supervisor heard it before the child was there.
type Waiting = (u64, ChildSpec, ActorCell, Option<Early>);

/// One [`SupervisorRef::add`] from before its child starts until the supervisor has it.
///
/// Counted in its supervisor's `adopting` while it exists, which bounds `Adoptions::early`.
/// Dropped while it still holds the child (the start failed, the caller was cancelled, or the
/// supervisor stopped before recording it), it stops the child and releases its names, as a
/// failed `add` does.
pub(crate) struct Adoption {
    spec: Option<ChildSpec>,
    cell: Option<ActorCell>,
    shared: Arc<SupervisorChild>,
}

impl Adoption {
    fn new(shared: Arc<SupervisorChild>, spec: ChildSpec) -> Self {
        shared.adopting.fetch_add(1, Ordering::SeqCst);
        Self {
            spec: Some(spec),
            cell: None,
            shared,
        }
    }
}

impl Drop for Adoption {
    fn drop(&mut self) {
        if let Some(spec) = self.spec.take() {
            if let Some(cell) = self.cell.take() {
                cell.kill();
            }
            spec.discard();
        }
        self.shared.adopting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What survives a supervisor's own restarts: its spec, its children's specs and its handle.
pub(crate) struct SupervisorChild {
    node: Node,
    name: Arc<str>,
    spec: SupervisorSpec,
    children: Mutex<Vec<ChildSpec>>,
    current: ArcSwapOption<ActorRef<SupMsg>>,
    is_root: bool,
    adoptions: Mutex<Adoptions>,
    /// [`Adoption`]s in flight: `add`s that have not handed their child over yet.
    adopting: AtomicUsize,
}

impl SupervisorChild {
    pub(crate) fn new(
        node: Node,
        name: Arc<str>,
        spec: SupervisorSpec,
        children: Vec<ChildSpec>,
    ) -> Arc<Self> {
        Arc::new(Self {
            node,
            is_root: false,
            name,
            spec,
            children: Mutex::new(children),
            current: ArcSwapOption::empty(),
            adoptions: Mutex::default(),
            adopting: AtomicUsize::new(0),
        })
    }

    pub(crate) fn handle(self: &Arc<Self>) -> SupervisorRef {
        SupervisorRef {
            shared: self.clone(),
        }
    }

    /// A node's root supervisor: when it ends, the node ends.
    pub(crate) fn new_root(
        node: Node,
        spec: SupervisorSpec,
        children: Vec<ChildSpec>,
    ) -> Arc<Self> {
        Arc::new(Self {
            node,
            is_root: true,
            name: Arc::from("root"),
            spec,
            children: Mutex::new(children),
            current: ArcSwapOption::empty(),
            adoptions: Mutex::default(),
            adopting: AtomicUsize::new(0),
        })
    }

    /// Spawns this supervisor with no parent and records how it ends in its node's exit status.
    pub(crate) async fn start_root(self: Arc<Self>) -> Result<(), SpawnError> {
        let (actor, join) = ractor::Actor::spawn(None, Supervisor, self.clone())
            .await
            .map_err(|e| SpawnError::StartFailed {
                name: self.name.to_string(),
                reason: e.to_string(),
            })?;
        self.current.store(Some(Arc::new(actor)));
        let node = self.node.clone();
        tokio::spawn(async move {
            let _ = join.await;
            // a failure was recorded before the supervisor failed; this only marks clean ends
            node.set_exit(NodeExit::Stopped);
        });
        Ok(())
    }
}

impl Starter for SupervisorChild {
    fn name(&self) -> &str {
        &self.name
    }

    fn start(
        self: Arc<Self>,
        parent: ActorCell,
    ) -> Pin<Box<dyn Future<Output = Result<ActorCell, SpawnError>> + Send>> {
        Box::pin(async move {
            let (actor, _join) =
                ractor::Actor::spawn_linked(None, Supervisor, self.clone(), parent)
                    .await
                    .map_err(|e| SpawnError::StartFailed {
                        name: self.name.to_string(),
                        reason: e.to_string(),
                    })?;
            let cell = actor.get_cell();
            self.current.store(Some(Arc::new(actor)));
            Ok(cell)
        })
    }

    fn vacate(&self) {
        self.current.store(None);
        // ractor killed the subtree with the supervisor; every descendant's slot is empty now
        for child in self.children.lock().iter() {
            child.starter.vacate();
        }
    }

    fn remove(&self) {
        self.current.store(None);
        for child in self.children.lock().drain(..) {
            child.starter.remove();
        }
    }
}

/// A handle to a supervisor, valid across its restarts.
#[derive(Clone)]
pub struct SupervisorRef {
    shared: Arc<SupervisorChild>,
}

impl std::fmt::Debug for SupervisorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorRef")
            .field("node", &self.shared.node.name())
            .field("name", &self.shared.name)
            .finish()
    }
}

impl SupervisorRef {
    /// The supervisor's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The node it runs on.
    pub fn node(&self) -> &Node {
        &self.shared.node
    }

    fn actor(&self) -> Result<Arc<ActorRef<SupMsg>>, SpawnError> {
        self.shared
            .current
            .load_full()
            .ok_or_else(|| SpawnError::SupervisorGone(self.shared.name.to_string()))
    }

    /// Adds `child` to the running supervisor, at the end of its start order, and starts it.
    ///
    /// `Ok` means the child runs, linked to this supervisor, and is reachable by its names; the
    /// supervisor records it in its start order right after (children added from one task keep
    /// that task's order).
    ///
    /// # Errors
    /// [`SpawnError::StartFailed`] if the child fails to start (its names are released),
    /// [`SpawnError::SupervisorGone`] if the supervisor is not running.
    ///
    /// # Cancel safety
    /// Cancelled after its first poll and before it returns, the child is not added: a start
    /// under way is undone (the half-started actor, or nested supervisor with the children it
    /// had started, is killed) and the child's names are released. A future dropped before
    /// its first poll drops `child` unstarted without releasing its names, as dropping any
    /// [`ChildSpec`] does; release them with [`ChildSpec::discard`].
    pub async fn add(&self, child: ChildSpec) -> Result<(), SpawnError> {
        let (actor, adoption) = self.start_here(child).await?;
        self.hand_over(&actor, adoption)
    }

    /// Starts `child` in the caller's task, linked to the supervisor, to be handed over to it
    /// (see `Adoptions`): a spawn costs no round trip through the supervisor's mailbox. ractor
    /// links the child as it starts, so its exits are reported from the first moment.
    async fn start_here(
        &self,
        child: ChildSpec,
    ) -> Result<(Arc<ActorRef<SupMsg>>, Adoption), SpawnError> {
        let actor = match self.actor() {
            Ok(actor) => actor,
            Err(e) => {
                child.discard();
                return Err(e);
            }
        };
        let parent = actor.get_cell();
        if parent.get_status() >= ActorStatus::Draining {
            child.discard();
            return Err(self.gone());
        }
        let starter = child.starter.clone();
        let mut adoption = Adoption::new(self.shared.clone(), child);
        match starter.start(parent.clone()).await {
            Ok(cell) => adoption.cell = Some(cell),
            // dropping the adoption releases the child's names
            Err(_) if parent.get_status() >= ActorStatus::Draining => return Err(self.gone()),
            Err(err) => return Err(err),
        }
        Ok((actor, adoption))
    }

    /// Leaves a child started by [`start_here`](Self::start_here) waiting for the supervisor,
    /// and wakes the supervisor if it has heard of the child already.
    fn hand_over(
        &self,
        actor: &ActorRef<SupMsg>,
        mut adoption: Adoption,
    ) -> Result<(), SpawnError> {
        let instance = actor.get_id().pid();
        let wake = {
            let mut adoptions = self.shared.adoptions.lock();
            if adoptions.instance != Some(instance) {
                // that instance has ended; dropping the adoption stops the child
                return Err(self.gone());
            }
            let (Some(spec), Some(cell)) = (adoption.spec.take(), adoption.cell.take()) else {
                return Err(self.gone());
            };
            let pid = cell.get_id().pid();
            let early = adoptions.early.remove(&pid);
            let wake = early.is_some();
            adoptions.waiting.push((pid, spec, cell, early));
            wake
        };
        if wake {
            // Refused only if the supervisor is stopping: the end of the instance stops the
            // waiting child then and releases its names.
            let _ = actor.send_message(SupMsg::Wake);
        }
        Ok(())
    }

    fn gone(&self) -> SpawnError {
        SpawnError::SupervisorGone(self.shared.name.to_string())
    }

    /// Registers `name` on this supervisor's node and starts actors from `factory` under it.
    ///
    /// # Errors
    /// [`SpawnError::Registry`] if the name is taken; otherwise as [`SupervisorRef::add`].
    ///
    /// # Cancel safety
    /// Cancelled before it returns, nothing is left: the name is registered only once the
    /// future is polled, and released again with the start undone, as for
    /// [`SupervisorRef::add`].
    pub async fn spawn<A, F>(
        &self,
        name: &str,
        options: ChildOptions,
        factory: F,
    ) -> Result<Addr<A::Msg>, SpawnError>
    where
        A: Actor,
        F: Fn() -> A + Send + Sync + 'static,
    {
        let (spec, addr) = self.shared.node.child(name, options, factory)?;
        self.add(spec).await?;
        Ok(addr)
    }

    /// Starts a nested supervisor under this one.
    ///
    /// # Errors
    /// As [`SupervisorRef::add`].
    ///
    /// # Cancel safety
    /// Cancelled before it returns, no supervisor is added: a start under way is undone, as
    /// for [`SupervisorRef::add`].
    pub async fn spawn_supervisor(
        &self,
        name: &str,
        spec: SupervisorSpec,
        restart: Restart,
    ) -> Result<Self, SpawnError> {
        let (child, handle) = self
            .shared
            .node
            .supervisor_child(name, spec, restart, Vec::new());
        self.add(child).await?;
        Ok(handle)
    }

    /// Starts a pool of `size` actors named `name.0` .. `name.{size-1}` from one factory,
    /// under a nested one-for-one supervisor named `name`.
    ///
    /// # Errors
    /// As [`SupervisorRef::spawn`].
    ///
    /// # Cancel safety
    /// As [`SupervisorRef::spawn`]: cancelled before it returns, no member runs and every
    /// member name is released.
    pub async fn spawn_pool<A, F>(
        &self,
        name: &str,
        size: usize,
        options: ChildOptions,
        factory: F,
    ) -> Result<Pool<A::Msg>, SpawnError>
    where
        A: Actor,
        F: Fn(usize) -> A + Send + Sync + 'static,
    {
        let (spec, pool) = self.shared.node.pool_child(name, size, options, factory)?;
        self.add(spec).await?;
        Ok(pool)
    }

    /// Names of the running children, in start order.
    ///
    /// # Errors
    /// [`SpawnError::SupervisorGone`] if the supervisor is not running.
    ///
    /// # Cancel safety
    /// Cancel safe: the question changes nothing; a supervisor that already has it answers
    /// into the void.
    pub async fn children(&self) -> Result<Vec<String>, SpawnError> {
        let actor = self.actor()?;
        let (tx, rx) = oneshot::channel();
        let gone = || SpawnError::SupervisorGone(self.shared.name.to_string());
        actor
            .send_message(SupMsg::Children(tx))
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Stops the child named `name` gracefully (killed after the supervisor's shutdown
    /// timeout) and forgets it: it is not restarted, its names are released, and sends to them
    /// fail with `NotFound` until something registers them again (OTP's `terminate_child`
    /// followed by `delete_child`). Answers whether the supervisor had such a child.
    ///
    /// The supervisor handles nothing else while the child stops, as in OTP.
    ///
    /// # Errors
    /// [`SpawnError::SupervisorGone`] if the supervisor is not running.
    ///
    /// # Cancel safety
    /// The request is sent at the first poll; dropped after that, the child is still stopped
    /// and removed, and the answer is lost.
    pub async fn remove(&self, name: &str) -> Result<bool, SpawnError> {
        self.forget(
            name,
            Forget {
                keep_names: false,
                kill: false,
            },
        )
        .await
    }

    /// As [`remove`](Self::remove), but the child's names stay registered: messages to them
    /// wait (bounded by each mailbox limit) for the next instance, which the same
    /// [`ChildSpec`] starts when it is [`add`](Self::add)ed again — to this supervisor or
    /// another of the node's. For a child that stops here for a while (a failover child whose
    /// node gave its lease up).
    ///
    /// # Errors
    /// As [`remove`](Self::remove).
    ///
    /// # Cancel safety
    /// As [`remove`](Self::remove).
    pub async fn terminate(&self, name: &str) -> Result<bool, SpawnError> {
        self.forget(
            name,
            Forget {
                keep_names: true,
                kill: false,
            },
        )
        .await
    }

    /// As [`terminate`](Self::terminate), but the child (with everything under it) is
    /// killed at once, as a crash would end it: no `stopped` hook runs and a handler under
    /// way is cut off. For a failover child whose lease ran out, which may not act a moment
    /// longer.
    ///
    /// # Errors
    /// As [`remove`](Self::remove).
    ///
    /// # Cancel safety
    /// As [`remove`](Self::remove).
    pub async fn kill_and_terminate(&self, name: &str) -> Result<bool, SpawnError> {
        self.forget(
            name,
            Forget {
                keep_names: true,
                kill: true,
            },
        )
        .await
    }

    async fn forget(&self, name: &str, how: Forget) -> Result<bool, SpawnError> {
        let actor = self.actor()?;
        let (tx, rx) = oneshot::channel();
        let gone = || SpawnError::SupervisorGone(self.shared.name.to_string());
        actor
            .send_message(SupMsg::Remove(name.to_string(), how, tx))
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Stops the supervisor gracefully (children in reverse start order), killing it if it has
    /// not stopped within `timeout`.
    pub(crate) async fn stop(&self, timeout: Duration) {
        if let Ok(actor) = self.actor() {
            let cell = actor.get_cell();
            if cell.stop_and_wait(None, Some(timeout)).await.is_err() {
                cell.kill();
                let _ = cell.wait(Some(Duration::from_secs(1))).await;
            }
        }
    }
}

struct Running {
    spec: ChildSpec,
    cell: Option<ActorCell>,
    /// Times this supervisor restarted the child after it failed (for the log line).
    restarts: u64,
}

/// Hashes the supervisor's integer keys (child ids, actor pids) with one multiply instead of
/// SipHash's rounds: the runtime makes these keys, no peer chooses them.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

pub(crate) struct SupState {
    shared: Arc<SupervisorChild>,
    /// This instance's pid (the `Adoptions::instance` it takes children for).
    pid: u64,
    core: SupervisorCore,
    children: IdMap<ChildId, Running>,
    /// Running children by the pid of their instance (every child is a local actor), which is
    /// what ractor's events name.
    by_actor: IdMap<u64, ChildId>,
    /// Instances this supervisor stopped itself and whose exit has not been reported yet: their
    /// exits are expected, not news. One entry per stopped instance, removed by its exit (an
    /// instance that outlives even its kill keeps its entry while it lives).
    stopped: HashSet<u64, BuildHasherDefault<IdHasher>>,
    /// The buffer `Adoptions::waiting` is swapped with to take its children (so that neither
    /// allocates once both have grown).
    spare: Vec<Waiting>,
    /// Exits of children just recorded that came before they were (see `Adoptions`), to be
    /// handled next.
    early_exits: Vec<(ChildId, u64, Exit, Option<String>)>,
    next_id: u64,
}

impl Drop for SupState {
    /// However the instance ends (killed, failed, stopped): children still waiting for it are
    /// stopped and their names released, and later `add`s for it fail.
    fn drop(&mut self) {
        let waiting = {
            let mut adoptions = self.shared.adoptions.lock();
            if adoptions.instance != Some(self.pid) {
                return;
            }
            adoptions.instance = None;
            adoptions.early.clear();
            std::mem::take(&mut adoptions.waiting)
        };
        for (_, spec, cell, _) in waiting {
            cell.kill();
            spec.discard();
        }
    }
}

/// The supervisor actor.
pub(crate) struct Supervisor;

impl SupState {
    fn add_spec(&mut self, spec: ChildSpec) -> ChildId {
        let id = ChildId(self.next_id);
        self.next_id += 1;
        self.core.add_child(id, spec.restart);
        self.children.insert(
            id,
            Running {
                spec,
                cell: None,
                restarts: 0,
            },
        );
        id
    }

    async fn start_child(&mut self, id: ChildId, myself: &ActorCell) -> Result<(), SpawnError> {
        let Some(running) = self.children.get_mut(&id) else {
            return Ok(());
        };
        let cell = running.spec.starter.clone().start(myself.clone()).await?;
        self.by_actor.insert(cell.get_id().pid(), id);
        running.cell = Some(cell);
        self.core.started(id);
        Ok(())
    }

    /// Stops a running child gracefully (killing it after the shutdown timeout); returns the pid
    /// of the instance it stopped, whose exit event is still to come.
    async fn stop_child(&mut self, id: ChildId) -> Option<u64> {
        let running = self.children.get_mut(&id)?;
        running.spec.starter.vacate();
        let cell = running.cell.take()?;
        let pid = cell.get_id().pid();
        self.by_actor.remove(&pid);
        let timeout = self.shared.spec.shutdown_timeout;
        if cell.stop_and_wait(None, Some(timeout)).await.is_err() {
            tracing::warn!(child = %running.spec.name(), "child did not stop in time; killing it");
            cell.kill();
            let _ = cell.wait(Some(Duration::from_secs(1))).await;
        }
        Some(pid)
    }

    /// Kills a running child at once (its subtree with it); returns the pid of the instance
    /// killed, whose exit event is still to come.
    async fn kill_child(&mut self, id: ChildId) -> Option<u64> {
        let running = self.children.get_mut(&id)?;
        running.spec.starter.vacate();
        let cell = running.cell.take()?;
        let pid = cell.get_id().pid();
        self.by_actor.remove(&pid);
        cell.kill();
        let _ = cell.wait(Some(Duration::from_secs(1))).await;
        Some(pid)
    }

    /// Records a child that [`SupervisorRef::add`] started, at the end of the start order.
    fn adopt(&mut self, spec: ChildSpec, cell: ActorCell) -> ChildId {
        self.shared.children.lock().push(spec.clone());
        let id = self.add_spec(spec);
        self.by_actor.insert(cell.get_id().pid(), id);
        if let Some(running) = self.children.get_mut(&id) {
            running.cell = Some(cell);
        }
        id
    }

    /// Records the children that wait for this instance (see `Adoptions`), in their order; with
    /// `closing`, takes no more (the instance is ending).
    fn adopt_waiting(&mut self, closing: bool) {
        {
            let mut adoptions = self.shared.adoptions.lock();
            if closing && adoptions.instance == Some(self.pid) {
                adoptions.instance = None;
            }
            if adoptions.waiting.is_empty() {
                return;
            }
            std::mem::swap(&mut adoptions.waiting, &mut self.spare);
        }
        self.adopt_spare();
    }

    fn adopt_spare(&mut self) {
        let mut batch = std::mem::take(&mut self.spare);
        for (pid, spec, cell, early) in batch.drain(..) {
            let id = self.adopt(spec, cell);
            if let Some(Early::Exited(exit, reason)) = early {
                self.early_exits.push((id, pid, exit, reason));
            }
        }
        self.spare = batch;
    }

    /// Handles the exits that came before their children were recorded, in their order.
    async fn handle_early_exits(
        &mut self,
        myself: &ActorRef<SupMsg>,
    ) -> Result<(), ActorProcessingErr> {
        while !self.early_exits.is_empty() {
            let (id, pid, exit, reason) = self.early_exits.remove(0);
            self.exited(myself, id, pid, exit, reason).await?;
        }
        Ok(())
    }

    /// The child that an event of instance `pid` is about, after recording the children waiting
    /// for this supervisor; `None` if it has none (yet).
    fn child_of(&mut self, pid: u64, event: Early) -> Option<ChildId> {
        if let Some(&id) = self.by_actor.get(&pid) {
            return Some(id);
        }
        {
            let mut adoptions = self.shared.adoptions.lock();
            if !adoptions.waiting.iter().any(|w| w.0 == pid) {
                let expected = match event {
                    Early::Started => self.stopped.contains(&pid),
                    Early::Exited(..) => self.stopped.remove(&pid),
                };
                // Neither ours nor one we stopped: a child whose `add` has not handed it over
                // yet (it counts itself in `adopting` before ractor links it, so before any
                // event of it exists). When no `add` is under way, what is left there is stale.
                if self.shared.adopting.load(Ordering::SeqCst) == 0 {
                    adoptions.early.clear();
                } else if !expected {
                    adoptions.early.insert(pid, event);
                }
                return None;
            }
            std::mem::swap(&mut adoptions.waiting, &mut self.spare);
        }
        self.adopt_spare();
        self.by_actor.get(&pid).copied()
    }

    /// Handles the exit of child `id`'s instance `pid`.
    async fn exited(
        &mut self,
        myself: &ActorRef<SupMsg>,
        id: ChildId,
        pid: u64,
        exit: Exit,
        reason: Option<String>,
    ) -> Result<(), ActorProcessingErr> {
        self.by_actor.remove(&pid);
        if let Some(running) = self.children.get_mut(&id) {
            running.cell = None;
            running.spec.starter.vacate();
        }
        // boxed: ractor moves each handler's future, and the common events need none of this
        // one's size
        Box::pin(self.on_exit(myself, id, exit, reason)).await
    }

    /// Forgets a child for good; `keep_spec` leaves it in the list a restarted supervisor
    /// starts from (for the bulk removal at shutdown, which clears that list once).
    fn remove_child(&mut self, id: ChildId, keep_spec: bool) {
        if let Some(running) = self.children.remove(&id) {
            if let Some(cell) = &running.cell {
                self.by_actor.remove(&cell.get_id().pid());
            }
            running.spec.starter.remove();
            if !keep_spec {
                let starter = running.spec.starter.clone();
                self.shared
                    .children
                    .lock()
                    .retain(|c| !Arc::ptr_eq(&c.starter, &starter));
            }
        }
        self.core.remove_child(id);
    }

    /// Forgets a stopped child, keeping its names registered for a later start of its spec.
    fn forget_child(&mut self, id: ChildId) {
        if let Some(running) = self.children.remove(&id) {
            if let Some(cell) = &running.cell {
                self.by_actor.remove(&cell.get_id().pid());
            }
            running.spec.starter.vacate();
            let starter = running.spec.starter.clone();
            self.shared
                .children
                .lock()
                .retain(|c| !Arc::ptr_eq(&c.starter, &starter));
        }
        self.core.remove_child(id);
    }

    /// Stops every child, in reverse start order; the instance is ending.
    async fn stop_all(&mut self, remove: bool) {
        self.adopt_waiting(true);
        // children that ended before they were recorded have nothing left to stop
        for (id, pid, _, _) in std::mem::take(&mut self.early_exits) {
            self.by_actor.remove(&pid);
            if let Some(running) = self.children.get_mut(&id) {
                running.cell = None;
                running.spec.starter.vacate();
            }
        }
        for id in self.core.shutdown_order() {
            self.stop_child(id).await;
            if remove {
                self.remove_child(id, true);
            }
        }
        if remove {
            self.shared.children.lock().clear();
        }
    }

    fn child_name(&self, id: ChildId) -> String {
        self.children
            .get(&id)
            .map(|r| r.spec.name().to_string())
            .unwrap_or_default()
    }

    fn report(&self, child: String, exit: Exit, reason: Option<String>, action: SupervisionAction) {
        let why = reason.as_deref().unwrap_or("");
        let (node, supervisor) = (self.shared.node.name(), &*self.shared.name);
        match (exit, &action) {
            // logged at warn with its restart count where it is restarted
            (Exit::Failed, SupervisionAction::Restarted { .. }) => {
                tracing::debug!(%node, %supervisor, %child, reason = why, ?action, "child failed")
            }
            (Exit::Failed, _) => {
                tracing::warn!(%node, %supervisor, %child, reason = why, ?action, "child failed")
            }
            (Exit::Normal, _) => {
                tracing::info!(%node, %supervisor, %child, ?action, "child exited")
            }
        }
        self.shared.node.report(SupervisionReport {
            node: self.shared.node.name().to_string(),
            supervisor: self.shared.name.to_string(),
            child,
            exit,
            reason,
            action,
        });
    }

    /// Applies the core's decisions for one exit, and for any start failures that follow it.
    async fn on_exit(
        &mut self,
        myself: &ActorRef<SupMsg>,
        id: ChildId,
        exit: Exit,
        reason: Option<String>,
    ) -> Result<(), ActorProcessingErr> {
        let mut work = VecDeque::from([(id, exit, reason)]);
        while let Some((id, exit, reason)) = work.pop_front() {
            let name = self.child_name(id);
            let now = crate::time::now();
            let decision = self.core.on_exit(id, exit, now);
            if matches!(decision, Decision::Restart { .. }) && self.core.is_exceeded(now) {
                tracing::error!(
                    node = %self.shared.node.name(),
                    supervisor = %self.shared.name,
                    child = %name,
                    reason = reason.as_deref().unwrap_or(""),
                    "restart intensity exceeded: the child keeps failing; restarting it at the backoff's pace"
                );
            }
            match decision {
                Decision::Ignore => {}
                Decision::Remove(id) => {
                    self.remove_child(id, false);
                    self.report(name, exit, reason, SupervisionAction::Removed);
                }
                Decision::Restart {
                    stop,
                    remove,
                    start,
                    delay,
                } => {
                    for s in stop {
                        if let Some(pid) = self.stop_child(s).await {
                            self.stopped.insert(pid);
                        }
                    }
                    for r in remove {
                        self.remove_child(r, false);
                    }
                    let children: Vec<String> = start.iter().map(|&s| self.child_name(s)).collect();
                    if exit == Exit::Failed
                        && start.contains(&id)
                        && let Some(running) = self.children.get_mut(&id)
                    {
                        running.restarts += 1;
                        tracing::warn!(
                            node = %self.shared.node.name(),
                            supervisor = %self.shared.name,
                            child = %name,
                            reason = reason.as_deref().unwrap_or(""),
                            restarts = running.restarts,
                            ?delay,
                            with = ?children,
                            "restarting a failed child"
                        );
                    }
                    self.report(
                        name,
                        exit,
                        reason,
                        SupervisionAction::Restarted { children, delay },
                    );
                    if delay.is_zero() {
                        for s in start {
                            if let Err(err) = self.start_child(s, &myself.get_cell()).await {
                                // a failed start is a crash of that child, counted like one
                                self.core.started(s);
                                work.push_back((s, Exit::Failed, Some(err.to_string())));
                            }
                        }
                    } else {
                        let myself = myself.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = myself.send_message(SupMsg::RestartDue(start));
                        });
                    }
                }
                Decision::Escalate { reason: why } => {
                    self.stop_all(false).await;
                    self.report(
                        name,
                        exit,
                        reason,
                        SupervisionAction::Escalated(why.clone()),
                    );
                    if self.shared.is_root {
                        self.shared.node.set_exit(NodeExit::Failed(why.clone()));
                    }
                    tracing::error!(
                        node = %self.shared.node.name(),
                        supervisor = %self.shared.name,
                        reason = %why,
                        "supervisor escalates"
                    );
                    return Err(why.into());
                }
            }
        }
        Ok(())
    }
}

impl ractor::Actor for Supervisor {
    type Msg = SupMsg;
    type State = SupState;
    type Arguments = Arc<SupervisorChild>;

    async fn pre_start(
        &self,
        myself: ActorRef<SupMsg>,
        shared: Arc<SupervisorChild>,
    ) -> Result<SupState, ActorProcessingErr> {
        let spec = shared.spec.clone();
        let pid = myself.get_id().pid();
        let leftover = {
            let mut adoptions = shared.adoptions.lock();
            adoptions.instance = Some(pid);
            adoptions.early.clear();
            std::mem::take(&mut adoptions.waiting)
        };
        // children an earlier instance was killed before it could record them: they went with it
        for (_, spec, cell, _) in leftover {
            cell.kill();
            spec.discard();
        }
        let mut state = SupState {
            core: SupervisorCore::new(spec.strategy, spec.intensity, spec.backoff)
                .when_exceeded(spec.when_exceeded),
            shared: shared.clone(),
            pid,
            children: IdMap::default(),
            by_actor: IdMap::default(),
            stopped: HashSet::default(),
            spare: Vec::new(),
            early_exits: Vec::new(),
            next_id: 0,
        };
        let specs = shared.children.lock().clone();
        for spec in specs {
            let id = state.add_spec(spec);
            if let Err(err) = state.start_child(id, &myself.get_cell()).await {
                state.stop_all(false).await;
                return Err(Box::new(err));
            }
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupMsg>,
        state: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        let shutting_down = state.shared.is_root || state.shared.node.is_shutting_down();
        state.stop_all(shutting_down).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupMsg>,
        msg: SupMsg,
        state: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        state.adopt_waiting(false);
        state.handle_early_exits(&myself).await?;
        match msg {
            SupMsg::Wake => {}
            SupMsg::RestartDue(ids) => {
                for id in ids {
                    if let Err(err) = state.start_child(id, &myself.get_cell()).await {
                        state.core.started(id);
                        Box::pin(state.on_exit(&myself, id, Exit::Failed, Some(err.to_string())))
                            .await?;
                    }
                }
            }
            SupMsg::Children(reply) => {
                let names = state
                    .core
                    .children()
                    .filter(|(id, _)| state.children.get(id).is_some_and(|r| r.cell.is_some()))
                    .map(|(id, _)| state.child_name(id))
                    .collect();
                let _ = reply.send(names);
            }
            SupMsg::Remove(name, how, reply) => {
                let found = state
                    .children
                    .iter()
                    .find(|(_, r)| r.spec.name() == name)
                    .map(|(id, _)| *id);
                if let Some(id) = found {
                    let stopped = match how.kill {
                        true => state.kill_child(id).await,
                        false => state.stop_child(id).await,
                    };
                    if let Some(pid) = stopped {
                        state.stopped.insert(pid);
                    }
                    if how.keep_names {
                        state.forget_child(id);
                    } else {
                        state.remove_child(id, false);
                    }
                }
                let _ = reply.send(found.is_some());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupMsg>,
        event: SupervisionEvent,
        state: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, event) = match event {
            SupervisionEvent::ActorStarted(cell) => (cell, Early::Started),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let exit = match reason.as_deref() {
                    Some("killed") | Some("actor_task_cancelled") => Exit::Failed,
                    _ => Exit::Normal,
                };
                (cell, Early::Exited(exit, reason))
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                (cell, Early::Exited(Exit::Failed, Some(err.to_string())))
            }
            _ => return Ok(()),
        };
        let pid = cell.get_id().pid();
        match event {
            Early::Started => {
                // nothing to do but record it if `add` left it waiting
                state.child_of(pid, Early::Started);
                state.handle_early_exits(&myself).await
            }
            Early::Exited(exit, reason) => {
                // children added before this exit count in its decision (a restart of all)
                state.adopt_waiting(false);
                let id = state.child_of(pid, Early::Exited(exit, reason.clone()));
                state.handle_early_exits(&myself).await?;
                let Some(id) = id else {
                    return Ok(());
                };
                state.exited(&myself, id, pid, exit, reason).await
            }
        }
    }
}
