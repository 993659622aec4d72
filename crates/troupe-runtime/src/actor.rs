//! The [`Actor`] trait users implement, the [`Ctx`] it runs with, and the ractor actor that
//! hosts it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ractor::{ActorCell, ActorProcessingErr, ActorRef};

use crate::addr::Addr;
use crate::error::SpawnError;
use crate::message::{Mail, Message, ReplyTo};
use crate::node::Node;
use crate::slot::{Instance, Slot};
use crate::supervisor::Starter;

/// The error an actor's hooks return; any error stops the actor as failed, and its supervisor
/// decides what happens next.
pub type ActorError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The reply type of an actor's message type.
pub type ReplyOf<A> = <<A as Actor>::Msg as Message>::Reply;

/// A unit of state that handles messages one at a time, supervised and addressable by name.
///
/// The runtime builds a fresh value from the actor's factory at every (re)start, calls
/// [`started`](Actor::started), then [`handle`](Actor::handle) for each message in arrival
/// order, and [`stopped`](Actor::stopped) when it is stopped gracefully. A panic or an `Err`
/// from any hook fails the actor; its supervisor then restarts it (or not) by its policy.
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use troupe_runtime::{Actor, ActorError, Ctx, Message, ReplyTo};
///
/// #[derive(Serialize, Deserialize)]
/// enum CounterMsg { Add(u64), Get }
/// impl Message for CounterMsg {
///     const NAME: &'static str = "doc.Counter";
///     type Reply = u64;
/// }
///
/// #[derive(Default)]
/// struct Counter { total: u64 }
///
/// impl Actor for Counter {
///     type Msg = CounterMsg;
///     async fn handle(&mut self, msg: CounterMsg, reply: ReplyTo<u64>, _ctx: &Ctx<CounterMsg>)
///         -> Result<(), ActorError>
///     {
///         if let CounterMsg::Add(n) = msg { self.total += n; }
///         reply.send(self.total);
///         Ok(())
///     }
/// }
/// ```
pub trait Actor: Send + 'static {
    /// The messages this actor handles.
    type Msg: Message;

    /// Runs once per start, before the first message.
    ///
    /// # Errors
    /// An error fails this start; the supervisor counts it as a crash.
    fn started(
        &mut self,
        ctx: &Ctx<Self::Msg>,
    ) -> impl Future<Output = Result<(), ActorError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Handles one message; `reply` answers the caller of a call (a no-op for a cast).
    ///
    /// # Errors
    /// An error fails the actor (as a panic would).
    fn handle(
        &mut self,
        msg: Self::Msg,
        reply: ReplyTo<<Self::Msg as Message>::Reply>,
        ctx: &Ctx<Self::Msg>,
    ) -> impl Future<Output = Result<(), ActorError>> + Send;

    /// Runs when the actor is stopped gracefully (not after a crash or a kill).
    ///
    /// # Errors
    /// An error is reported to the supervisor as a failure.
    fn stopped(
        &mut self,
        ctx: &Ctx<Self::Msg>,
    ) -> impl Future<Output = Result<(), ActorError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }
}

/// What an actor knows about where it runs: its own handle, its name and its node.
pub struct Ctx<M: Message> {
    myself: Addr<M>,
    node: Node,
    cell: ActorCell,
}

impl<M: Message> Ctx<M> {
    /// A handle to this actor (by name, so it stays valid across restarts).
    pub fn myself(&self) -> &Addr<M> {
        &self.myself
    }

    /// This actor's registered name.
    pub fn name(&self) -> &str {
        self.myself.name()
    }

    /// The node this actor runs on.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Stops this actor normally after the current message: a permanent child is restarted,
    /// a transient or temporary one is removed.
    pub fn stop(&self) {
        self.cell.stop(None);
    }
}

/// The ractor actor that runs a troupe [`Actor`], with `R` deciding where its sends leave from.
///
/// With [`Direct`] (the common case) `handle` returns the user's handler future as it is: no
/// wrapping state machine and no branch, so ractor polls (and moves) nothing but that future
/// per message. Actors of a process that routes its own nodes over QUIC run with [`Routed`].
pub(crate) struct Host<A, R>(std::marker::PhantomData<fn() -> (A, R)>);

/// How a host runs its actor's hooks.
pub(crate) trait Routing: Send + Sync + 'static {
    /// Runs `hook`, a hook of the actor on node `origin`.
    fn run<F: Future + Send>(
        origin: impl FnOnce() -> Arc<str>,
        hook: F,
    ) -> impl Future<Output = F::Output> + Send;
}

/// Sends take the ordinary route: the hook runs as it is.
pub(crate) struct Direct;

/// The process routes between its own nodes over QUIC
/// ([`Mesh::route_through_quic`](crate::Mesh::route_through_quic)): every hook runs with the
/// actor's node as the origin of its sends. A type of its own rather than a branch per
/// message, which cost the common host about 40 ns per message in a drain probe.
pub(crate) struct Routed;

impl Routing for Direct {
    fn run<F: Future + Send>(
        _origin: impl FnOnce() -> Arc<str>,
        hook: F,
    ) -> impl Future<Output = F::Output> + Send {
        hook
    }
}

impl Routing for Routed {
    fn run<F: Future + Send>(
        origin: impl FnOnce() -> Arc<str>,
        hook: F,
    ) -> impl Future<Output = F::Output> + Send {
        crate::node::ORIGIN.scope(origin(), hook)
    }
}

pub(crate) struct HostArgs<A: Actor> {
    actor: A,
    myself: Addr<A::Msg>,
    node: Node,
    depth: Arc<AtomicUsize>,
}

pub(crate) struct HostState<A: Actor> {
    actor: A,
    ctx: Ctx<A::Msg>,
    depth: Arc<AtomicUsize>,
}

impl<A: Actor, R: Routing> ractor::Actor for Host<A, R> {
    type Msg = Mail<A::Msg>;
    type State = HostState<A>;
    type Arguments = HostArgs<A>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(HostState {
            actor: args.actor,
            ctx: Ctx {
                myself: args.myself,
                node: args.node,
                cell: myself.get_cell(),
            },
            depth: args.depth,
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let HostState { actor, ctx, .. } = state;
        R::run(|| ctx.node.inner.name.clone(), actor.started(ctx)).await
    }

    fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        mail: Self::Msg,
        state: &mut Self::State,
    ) -> impl Future<Output = Result<(), ActorProcessingErr>> + Send {
        state.depth.fetch_sub(1, Ordering::Relaxed);
        let HostState { actor, ctx, .. } = state;
        R::run(
            || ctx.node.inner.name.clone(),
            actor.handle(mail.msg, mail.reply, ctx),
        )
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let HostState { actor, ctx, .. } = state;
        R::run(|| ctx.node.inner.name.clone(), actor.stopped(ctx)).await
    }
}

/// A supervised child that runs actors of type `A`, made by factory `F`, under one registered
/// name (the name is its handle's). One per actor, so kept small: the factory is stored as it
/// is, not boxed.
pub(crate) struct ActorChild<A: Actor, F> {
    node: Node,
    slot: Arc<Slot<A::Msg>>,
    addr: Addr<A::Msg>,
    factory: F,
}

impl<A: Actor, F: Fn() -> A + Send + Sync + 'static> ActorChild<A, F> {
    pub(crate) fn new(node: Node, slot: Arc<Slot<A::Msg>>, addr: Addr<A::Msg>, factory: F) -> Self {
        Self {
            node,
            slot,
            addr,
            factory,
        }
    }
}

impl<A: Actor, F: Fn() -> A + Send + Sync + 'static> Starter for ActorChild<A, F> {
    fn name(&self) -> &str {
        self.addr.name()
    }

    fn start(
        self: Arc<Self>,
        parent: ActorCell,
    ) -> Pin<Box<dyn Future<Output = Result<ActorCell, SpawnError>> + Send>> {
        Box::pin(async move {
            let failed = |reason: String| SpawnError::StartFailed {
                name: self.addr.name().to_string(),
                reason,
            };
            let actor = std::panic::catch_unwind(AssertUnwindSafe(|| (self.factory)()))
                .map_err(|_| failed("the actor's factory panicked".into()))?;
            let depth = Arc::new(AtomicUsize::new(0));
            let args = HostArgs {
                actor,
                myself: self.addr.clone(),
                node: self.node.clone(),
                depth: depth.clone(),
            };
            let spawned = if self.node.inner.mesh.force_remote() {
                let host = Host::<A, Routed>(Default::default());
                ractor::Actor::spawn_linked(None, host, args, parent).await
            } else {
                let host = Host::<A, Direct>(Default::default());
                ractor::Actor::spawn_linked(None, host, args, parent).await
            };
            let (actor_ref, _join) = spawned.map_err(|e| failed(e.to_string()))?;
            let cell = actor_ref.get_cell();
            self.slot.install(Instance {
                actor: actor_ref,
                depth,
            });
            Ok(cell)
        })
    }

    fn vacate(&self) {
        self.slot.vacate();
    }

    fn remove(&self) {
        self.node.unregister(self.addr.name());
        self.slot.close();
    }
}
