//! The [`Actor`] trait users implement, the [`Ctx`] it runs with (its handle, timers and
//! tasks), and the ractor actor that hosts it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use ractor::{ActorCell, ActorProcessingErr, ActorRef};
use tokio::task::AbortHandle;

use crate::addr::Addr;
use crate::error::{CallError, SpawnError};
use crate::in_place::InPlace;
use crate::message::{Ask, FailingGuard, Letter, Mail, Message, Request, set_failing};
use crate::node::Node;
use crate::slot::{Instance, Mailbox, Slot};
use crate::supervisor::Starter;
use crate::timing;

/// The error an actor's hooks return; any error stops the actor as failed, and its supervisor
/// decides what happens next.
pub type ActorError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A unit of state that handles messages one at a time, supervised and addressable by name.
///
/// The runtime builds a fresh value from the actor's factory at every (re)start, calls
/// [`started`](Actor::started), then [`handle`](Actor::handle) for each message in arrival
/// order, and [`stopped`](Actor::stopped) when it is stopped gracefully. A panic or an `Err`
/// from any hook fails the actor; its supervisor then restarts it (or not) by its policy. The
/// caller of the message that failed it gets [`CallError::ActorFailed`](crate::CallError)
/// with the panic message (or the error) as its reason; messages queued behind it stay queued
/// and are handled by the restarted instance.
///
/// # Cancel safety
///
/// The runtime drops a hook's future part-way only when it kills the instance: through
/// [`Node::kill`], when the instance has not stopped within its supervisor's shutdown timeout
/// (a graceful stop waits for the hook at hand, it does not interrupt it), when its supervisor
/// ends without stopping it first (killed, or failed), which kills the whole subtree, or when
/// the tokio runtime itself shuts down. The future is then dropped at the `.await` it was
/// waiting on:
///
/// - what it had half done to `self` is never seen again: the value is dropped, and a restart
///   builds a fresh one from the factory;
/// - the message being handled is lost, not redelivered; reply ports the hook still held answer
///   their callers with [`CallError::NoReply`];
/// - the instance's timers and tasks end, and [`stopped`](Actor::stopped) is not run;
/// - effects outside the actor (a file written, a message sent, a write transaction not yet
///   committed) stay as they were at that `.await`: keep each of them whole at every `.await`,
///   as a crash would require anyway.
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use troupe_runtime::{Actor, ActorError, Ctx, Message, Reply};
///
/// #[derive(Serialize, Deserialize, Message)]
/// #[message(name = "doc.Counter")]
/// enum CounterMsg {
///     Add(u64),
///     Get(Reply<u64>),
/// }
///
/// #[derive(Default)]
/// struct Counter { total: u64 }
///
/// impl Actor for Counter {
///     type Msg = CounterMsg;
///     async fn handle(&mut self, msg: CounterMsg, _ctx: &mut Ctx<CounterMsg>)
///         -> Result<(), ActorError>
///     {
///         match msg {
///             CounterMsg::Add(n) => self.total += n,
///             CounterMsg::Get(reply) => { reply.send(self.total); }
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Actor: Send + 'static {
    /// The messages this actor handles ([`NoMessages`](crate::NoMessages) if it has none).
    type Msg: Message;

    /// Runs once per start, before the first message: the place to start timers and tasks
    /// (they end with this instance, so a restarted actor never has two).
    ///
    /// # Errors
    /// An error fails this start; the supervisor counts it as a crash.
    ///
    /// # Cancel safety
    /// Dropped part-way only if the instance is killed (see [the trait](Actor#cancel-safety));
    /// the supervisor then counts the start as a crash, and the timers and tasks it had
    /// started end with the instance.
    fn started(
        &mut self,
        ctx: &mut Ctx<Self::Msg>,
    ) -> impl Future<Output = Result<(), ActorError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Handles one message. A request's [`Reply`](crate::Reply) is inside the message; answer
    /// it (now or later, from anywhere in this process).
    ///
    /// The default drops the message (a call's caller gets `NoReply`) with a warning: it is
    /// for actors whose `Msg` is [`NoMessages`](crate::NoMessages).
    ///
    /// # Errors
    /// An error fails the actor (as a panic would).
    ///
    /// # Cancel safety
    /// Dropped part-way only if the instance is killed (see [the trait](Actor#cancel-safety)):
    /// the message is then lost half handled, and a reply port it carried answers
    /// [`CallError::NoReply`] unless it was answered before.
    fn handle(
        &mut self,
        msg: Self::Msg,
        ctx: &mut Ctx<Self::Msg>,
    ) -> impl Future<Output = Result<(), ActorError>> + Send {
        tracing::warn!(
            actor = %ctx.name(),
            msg_type = <Self::Msg as Message>::NAME,
            "message dropped: the actor does not implement handle"
        );
        drop(msg);
        async { Ok(()) }
    }

    /// Runs when the actor is stopped gracefully (not after a crash or a kill).
    ///
    /// # Errors
    /// An error is reported to the supervisor as a failure.
    ///
    /// # Cancel safety
    /// The supervisor's shutdown timeout covers this hook too: one that has not returned when
    /// it runs out is dropped at its current `.await` as the instance is killed (see
    /// [the trait](Actor#cancel-safety)), so flush what must survive early in it.
    fn stopped(
        &mut self,
        ctx: &mut Ctx<Self::Msg>,
    ) -> impl Future<Output = Result<(), ActorError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }
}

/// What an actor knows about where it runs (its own handle, its name and its node), and the
/// timers and tasks that live exactly as long as this instance of it.
///
/// Timers and tasks started here end when the instance stops, crashes or is restarted, so a
/// restarted actor that starts its timers in [`Actor::started`] never runs two of them.
pub struct Ctx<M: Message> {
    myself: Addr<M>,
    node: Node,
    me: ActorRef<Mail<M>>,
    tasks: Tasks,
    mailbox: Arc<Mailbox>,
}

/// A timer or task started from a [`Ctx`]; it ends with the actor instance anyway, this
/// handle only lets it end earlier.
#[derive(Debug, Clone)]
pub struct TaskHandle(AbortHandle);

impl TaskHandle {
    /// Stops the timer or task now (a timer's pending message is not sent).
    pub fn cancel(&self) {
        self.0.abort();
    }

    /// Whether the timer or task has ended (fired, finished, failed or cancelled).
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

/// The instance's tasks, aborted when it goes.
#[derive(Default)]
struct Tasks(Vec<AbortHandle>);

impl Tasks {
    fn push(&mut self, handle: AbortHandle) {
        // keep the list as long as the live tasks, not as long as every task ever started
        if self.0.len() >= 16 && self.0.len().is_power_of_two() {
            self.0.retain(|h| !h.is_finished());
        }
        self.0.push(handle);
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl<Q: Request> Ctx<Ask<Q>> {
    /// Lets callers in this process answer requests themselves, on their own task, with
    /// `answer`, for as long as this instance is current: [`Addr::ask`] runs it instead of
    /// sending a message (no mailbox, no task hand-off, no reply channel). `answer` answers a
    /// request (`Ok`) or hands it back (`Err`), and a request handed back goes through the
    /// mailbox to [`Actor::handle`] as usual; requests from other nodes always do.
    ///
    /// For answers that need none of the actor's own state (`answer` cannot reach `self`): a
    /// stateless HTTP handler, a lookup in state behind its own lock. It runs concurrently on
    /// any number of callers' tasks, outside the mailbox's order, and should not block: a slow
    /// answer holds up its caller's task. A panic in it fails that one call with
    /// [`CallError::ActorFailed`](crate::CallError::ActorFailed); the actor keeps running.
    /// Answers in place are not counted in the actor's message statistics.
    ///
    /// It is what this instance shares ([`share`](Self::share)): `false`, and nothing
    /// changes, if the instance already shares something.
    ///
    /// ```
    /// use troupe_runtime::{Actor, ActorError, Ask, Ctx, Request};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Request)]
    /// #[request(name = "doc.Square", response = u64)]
    /// struct Square(u64);
    ///
    /// struct Squarer;
    ///
    /// impl Actor for Squarer {
    ///     type Msg = Ask<Square>;
    ///
    ///     async fn started(&mut self, ctx: &mut Ctx<Ask<Square>>) -> Result<(), ActorError> {
    ///         // small squares on the caller's task; the rest as messages, below
    ///         ctx.answer_in_place(|Square(n)| if n < 1 << 32 { Ok(n * n) } else { Err(Square(n)) });
    ///         Ok(())
    ///     }
    ///
    ///     async fn handle(&mut self, ask: Ask<Square>, _: &mut Ctx<Ask<Square>>)
    ///         -> Result<(), ActorError>
    ///     {
    ///         ask.reply.send(ask.request.0.saturating_mul(ask.request.0));
    ///         Ok(())
    ///     }
    /// }
    /// ```
    pub fn answer_in_place(
        &self,
        answer: impl Fn(Q) -> Result<Q::Response, Q> + Send + Sync + 'static,
    ) -> bool {
        self.share(Arc::new(InPlace::new(answer)))
    }
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

    /// For an actor of a failover group, the fencing token of the lease it runs under here:
    /// larger than any token an earlier holder of the group had (it grows with each renewal
    /// too). Hand it with each write to a store outside the group that keeps the largest
    /// token it has seen and refuses smaller ones, and an instance that lost its lease (a
    /// process paused past it, cut off) cannot overwrite its successor's work with a write
    /// already on its way. `None` for an actor that is not in a failover group, or whose
    /// lease here has ended.
    pub fn fencing_token(&self) -> Option<u64> {
        self.node
            .inner
            .registry
            .entry(self.myself.name())?
            .gate()?
            .fencing_token(crate::time::now())
    }

    /// Shares `value` with code in this process that holds a handle to this actor, for as
    /// long as this instance is current: [`Addr::shared`] returns it from this call on until
    /// the instance stops, crashes or is replaced (a restarted instance shares anew, or not
    /// at all). Once per instance: `false`, and nothing changes, if this instance already
    /// shares something.
    ///
    /// This is Erlang's ETS table owned by a process: callers on this node reach the state
    /// without a message and without waiting for the actor (a cache shard's store behind a
    /// lock), while the actor stays its owner and supervision unit. What callers do through
    /// it is outside the actor's mailbox order, so share only state that is consistent
    /// under its own synchronization and that the actor may lose on a crash. Callers on other
    /// nodes, and callers of an actor behind a failover gate, never see it and send messages
    /// as before.
    pub fn share<T: Send + Sync + 'static>(&self, value: Arc<T>) -> bool {
        self.mailbox.shared.set(value).is_ok()
    }

    /// Stops this actor normally after the current message: a permanent child is restarted,
    /// a transient or temporary one is removed.
    pub fn stop(&self) {
        self.me.stop(None);
    }

    /// Sends `msg` to this actor after `delay` (on the runtime's clock), unless the instance
    /// has ended by then. The message queues behind what is already in the mailbox; if the
    /// mailbox is full when it fires, it is dropped (and counted, as any cast).
    pub fn send_after(&mut self, delay: Duration, msg: M) -> TaskHandle {
        let myself = self.myself.clone();
        self.spawn_quiet(async move {
            tokio::time::sleep(delay).await;
            if let Err(err) = myself.cast(msg) {
                tracing::debug!(actor = %myself.name(), cause = %err, "timer message not sent");
            }
        })
    }

    /// Sends `make()` to this actor every `period` (the first after one period), until the
    /// instance ends or the handle is cancelled. A tick that finds the mailbox full is
    /// skipped, and ticks missed while the runtime was busy are not sent in a burst.
    ///
    /// # Panics
    /// If `period` is zero.
    pub fn send_interval(
        &mut self,
        period: Duration,
        mut make: impl FnMut() -> M + Send + 'static,
    ) -> TaskHandle {
        assert!(!period.is_zero(), "send_interval needs a non-zero period");
        let myself = self.myself.clone();
        self.spawn_quiet(async move {
            let start = tokio::time::Instant::now() + period;
            let mut ticks = tokio::time::interval_at(start, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(err) = myself.cast(make()) {
                    tracing::debug!(actor = %myself.name(), cause = %err, "tick not sent");
                }
            }
        })
    }

    /// Runs `task` beside this actor, supervised with it: it is cancelled when the instance
    /// stops or restarts, and if it returns an error or panics, the actor fails with that
    /// reason (its supervisor then restarts it by its policy).
    pub fn spawn<F>(&mut self, task: F) -> TaskHandle
    where
        F: Future<Output = Result<(), ActorError>> + Send + 'static,
    {
        let me = self.me.clone();
        let name = self.myself.name().to_string();
        self.spawn_quiet(async move {
            let reason = match AssertUnwindSafe(task).catch_unwind().await {
                Ok(Ok(())) => return,
                Ok(Err(err)) => format!("a task of {name} failed: {err}"),
                Err(panic) => format!("a task of {name} panicked: {}", panic_message(&*panic)),
            };
            // queued behind what the actor already has, so it fails between two messages
            let _ = me.send_message(Mail::task_failed(reason));
        })
    }

    fn spawn_quiet(&mut self, task: impl Future<Output = ()> + Send + 'static) -> TaskHandle {
        // in the span of the message being handled, so work it does for a traced message
        // stays in the trace
        let task = tracing::Instrument::in_current_span(task);
        let handle = if self.node.inner.mesh.sends_need_origin() {
            tokio::spawn(crate::node::ORIGIN.scope(self.node.inner.name.clone(), task))
        } else {
            tokio::spawn(task)
        };
        let abort = handle.abort_handle();
        self.tasks.push(abort.clone());
        TaskHandle(abort)
    }
}

/// The text of a panic's payload (what `panic!` was given, when it was a string).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "the actor panicked".to_string()
    }
}

pin_project_lite::pin_project! {
    /// Runs one hook of an actor; if it panics or fails, marks the instance as failing (so
    /// the replies it held fail with the reason and its mailbox is kept for the next
    /// instance) before dropping the hook's state, then fails the ractor actor.
    ///
    /// With no hook (a letter that runs no user code) it is ready at once: `Ok`, or the
    /// failure it was made with. One type for every letter, so a message costs no `Either`.
    struct Guarded<'a, F, M: Message> {
        #[pin]
        hook: Option<F>,
        failure: Option<String>,
        slot: &'a Arc<Slot<M>>,
        // the span the hook runs in, for a message that belongs to a trace
        span: Option<Box<tracing::Span>>,
        // when it began, for the one message in SAMPLE_EVERY whose handling is timed
        started: Option<tokio::time::Instant>,
    }
}

impl<F, M> Future for Guarded<'_, F, M>
where
    F: Future<Output = Result<(), ActorError>>,
    M: Message,
{
    type Output = Result<(), ActorProcessingErr>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _entered = this.span.as_deref().map(tracing::Span::enter);
        let polled = match this.hook.as_mut().as_pin_mut() {
            Some(hook) => {
                let sent_before = timing::sent_so_far();
                let polled = std::panic::catch_unwind(AssertUnwindSafe(|| hook.poll(cx)));
                let sent = timing::sent_so_far().wrapping_sub(sent_before);
                if sent > 0 {
                    this.slot.sent.fetch_add(sent, Ordering::Relaxed);
                }
                if let (Ok(Poll::Ready(_)), Some(started)) = (&polled, this.started.take()) {
                    this.slot.handling.record(started.elapsed());
                }
                polled
            }
            None => match this.failure.take() {
                None => return Poll::Ready(Ok(())),
                Some(reason) => Ok(Poll::Ready(Err(reason.into()))),
            },
        };
        let (reason, error): (Arc<str>, ActorError) = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(Ok(()))) => return Poll::Ready(Ok(())),
            Ok(Poll::Ready(Err(err))) => (err.to_string().into(), err),
            Err(panic) => {
                let reason = panic_message(&*panic);
                (reason.clone().into(), reason.into())
            }
        };
        set_failing(reason, this.slot.clone());
        this.hook.set(None);
        Poll::Ready(Err(error))
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
/// ([`Mesh::route_through_quic`](crate::Mesh::route_through_quic)), or hosts several nodes on
/// the network: every hook runs with the actor's node as the origin of its sends. A type of its own rather than a branch per
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
    mailbox: Arc<Mailbox>,
    slot: Arc<Slot<A::Msg>>,
}

/// One running instance. Fields drop in order: the actor first (replies it holds still see
/// a failure's reason), then the context (its timers and tasks end), the failing mark last.
pub(crate) struct HostState<A: Actor> {
    actor: A,
    ctx: Ctx<A::Msg>,
    mailbox: Arc<Mailbox>,
    /// Messages this instance has handled (published to `mailbox.handled` with a store).
    handled: u64,
    slot: Arc<Slot<A::Msg>>,
    /// The node's name, for hosts whose sends carry their origin ([`Routed`]).
    origin: Arc<str>,
    _failing: FailingGuard,
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
        let origin = args.node.inner.name.clone();
        Ok(HostState {
            actor: args.actor,
            ctx: Ctx {
                myself: args.myself,
                node: args.node,
                me: myself,
                tasks: Tasks::default(),
                mailbox: args.mailbox.clone(),
            },
            mailbox: args.mailbox,
            handled: 0,
            slot: args.slot,
            origin,
            _failing: FailingGuard,
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let HostState {
            actor,
            ctx,
            slot,
            origin,
            ..
        } = state;
        run_guarded::<R, _, _>(origin, slot, actor.started(ctx)).await
    }

    fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        mail: Self::Msg,
        state: &mut Self::State,
    ) -> impl Future<Output = Result<(), ActorProcessingErr>> + Send {
        let HostState {
            actor,
            ctx,
            mailbox,
            handled,
            slot,
            origin,
            ..
        } = state;
        let (letter, trace) = mail.open();
        let span = trace.map(|t| Box::new(t.handling_span(origin, &slot.name)));
        // the first of every SAMPLE_EVERY messages is timed (`handled` counts this one below)
        let started = (*handled % timing::SAMPLE_EVERY == 0).then(tokio::time::Instant::now);
        let (hook, failure) = match letter {
            Some(Letter::User(msg) | Letter::Due(msg, _)) if gate_closed(slot) => {
                mailbox.depth.fetch_sub(1, Ordering::Relaxed);
                metrics::counter!("troupe_messages_refused_unheld_total").increment(1);
                let error = CallError::NotFound {
                    target: slot.target(),
                };
                crate::message::refuse(Mail::user(msg), &error);
                (None, None)
            }
            Some(Letter::User(msg)) => {
                mailbox.depth.fetch_sub(1, Ordering::Relaxed);
                *handled += 1;
                mailbox.handled.store(*handled, Ordering::Relaxed);
                (Some(actor.handle(msg, ctx)), None)
            }
            Some(Letter::Due(msg, by)) => {
                mailbox.depth.fetch_sub(1, Ordering::Relaxed);
                *handled += 1;
                mailbox.handled.store(*handled, Ordering::Relaxed);
                if tokio::time::Instant::now() <= by {
                    (Some(actor.handle(msg, ctx)), None)
                } else {
                    // its caller has given up: not started (the answer says why, for a caller
                    // that waits without a deadline of its own)
                    metrics::counter!("troupe_calls_expired_total").increment(1);
                    let error = CallError::Timeout {
                        target: slot.target(),
                        after: Duration::ZERO,
                    };
                    crate::message::refuse(Mail::user(msg), &error);
                    (None, None)
                }
            }
            Some(Letter::TaskFailed(reason)) => (None, Some(reason)),
            None => (None, None),
        };
        R::run(
            || origin.clone(),
            Guarded {
                hook,
                failure,
                slot,
                span,
                started,
            },
        )
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let HostState {
            actor,
            ctx,
            slot,
            origin,
            ..
        } = state;
        run_guarded::<R, _, _>(origin, slot, actor.stopped(ctx)).await
    }
}

/// Whether the actor's gate (a failover child's lease) refuses messages now.
fn gate_closed<M: Message>(slot: &Slot<M>) -> bool {
    slot.gate
        .get()
        .is_some_and(|gate| !gate.is_open(crate::time::now()))
}

/// Runs one hook of an actor on node `origin` the way its host routes, guarded (see
/// [`Guarded`]) so a failure keeps the instance's mailbox in `slot`.
fn run_guarded<'a, R, F, M>(
    origin: &'a Arc<str>,
    slot: &'a Arc<Slot<M>>,
    hook: F,
) -> impl Future<Output = Result<(), ActorProcessingErr>> + Send + 'a
where
    R: Routing,
    F: Future<Output = Result<(), ActorError>> + Send + 'a,
    M: Message,
{
    R::run(
        || origin.clone(),
        Guarded {
            hook: Some(hook),
            failure: None,
            slot,
            span: None,
            started: None,
        },
    )
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
            let mailbox = Arc::new(Mailbox::default());
            self.slot.note_start();
            let args = HostArgs {
                actor,
                myself: self.addr.clone(),
                node: self.node.clone(),
                mailbox: mailbox.clone(),
                slot: self.slot.clone(),
            };
            let spawned = if self.node.inner.mesh.sends_need_origin() {
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
                mailbox,
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
