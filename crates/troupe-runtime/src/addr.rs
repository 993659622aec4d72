//! [`Addr`], the one handle type for reaching an actor, wherever it runs.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::oneshot;

use crate::deadline::{Ticket, WATCH_MIN, Watch};
use crate::error::CallError;
use crate::in_place::InPlace;
use crate::message::{Ask, Mail, Message, Reply, ReplyFailure, ReplyValue, Request};
use crate::node::{MeshInner, Node, Route};
use crate::slot::Slot;

/// Where an `Addr` looks its target up: the nodes of one process, known now or once a topology
/// is launched.
#[derive(Clone)]
pub(crate) enum Binding {
    Bound(Weak<MeshInner>),
    Deferred(Arc<OnceLock<Weak<MeshInner>>>),
}

impl Binding {
    pub(crate) fn mesh(&self) -> Option<Arc<MeshInner>> {
        match self {
            Self::Bound(mesh) => mesh.upgrade(),
            Self::Deferred(cell) => cell.get().and_then(Weak::upgrade),
        }
    }
}

/// A handle to the actor registered under `name` on `node`, sending messages of type `M`.
///
/// The handle names the actor rather than one instance of it: when a supervisor restarts the
/// actor, every clone of the handle reaches the new instance, and messages sent while it
/// restarts wait (bounded by the mailbox limit) and are delivered to it in order. Messages from
/// one sender to one actor arrive in the order they were sent.
///
/// An `Addr` can travel inside a message: it serializes as its node and name and works where it
/// lands. Cloning is cheap (one reference count).
pub struct Addr<M: Message> {
    inner: Arc<AddrInner<M>>,
}

struct AddrInner<M: Message> {
    node: Arc<str>,
    name: Arc<str>,
    binding: Binding,
    /// Names exactly `name` on `node`, even when the name is placed by the cluster (the
    /// handle a placed route sends through once it knows the holder).
    direct: bool,
    route: OnceLock<Route<M>>,
}

impl<M: Message> Clone for Addr<M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<M: Message> fmt::Debug for Addr<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Addr<{}>({}/{})",
            M::NAME,
            self.inner.node,
            self.inner.name
        )
    }
}

impl<M: Message> PartialEq for Addr<M> {
    fn eq(&self, other: &Self) -> bool {
        self.inner.node == other.inner.node && self.inner.name == other.inner.name
    }
}

impl<M: Message> Eq for Addr<M> {}

impl<M: Message> std::hash::Hash for Addr<M> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.node.hash(state);
        self.inner.name.hash(state);
    }
}

impl<M: Message> Addr<M> {
    pub(crate) fn bound(node: Arc<str>, name: Arc<str>, binding: Binding) -> Self {
        Self {
            inner: Arc::new(AddrInner {
                node,
                name,
                binding,
                direct: false,
                route: OnceLock::new(),
            }),
        }
    }

    /// A handle to `name` on exactly `node`, whether or not the name is placed by the cluster.
    pub(crate) fn direct(node: Arc<str>, name: Arc<str>, binding: Binding) -> Self {
        Self {
            inner: Arc::new(AddrInner {
                node,
                name,
                binding,
                direct: true,
                route: OnceLock::new(),
            }),
        }
    }

    pub(crate) fn with_slot(
        node: Arc<str>,
        name: Arc<str>,
        mesh: Weak<MeshInner>,
        slot: Arc<Slot<M>>,
    ) -> Self {
        Self::with_route(node, name, mesh, Route::Local(slot))
    }

    pub(crate) fn with_route(
        node: Arc<str>,
        name: Arc<str>,
        mesh: Weak<MeshInner>,
        route: Route<M>,
    ) -> Self {
        let addr = Self::bound(node, name, Binding::Bound(mesh));
        let _ = addr.inner.route.set(route);
        addr
    }

    /// A handle to `name` on `node` that is resolved when first used, against the nodes that
    /// `binding` is (or will be) set to. Used by topologies to hand out handles before launch.
    pub fn deferred(node: &str, name: &str, binding: &AddrBinding) -> Self {
        Self::bound(
            Arc::from(node),
            Arc::from(name),
            Binding::Deferred(binding.0.clone()),
        )
    }

    /// A handle to `name` on the same node, resolved against the same nodes as this one: for
    /// a second protocol of the same actor on a facet of its own (the database's `db.0.admin`
    /// beside `db.0`).
    pub fn sibling<N: Message>(&self, name: &str) -> Addr<N> {
        Addr::bound(
            self.inner.node.clone(),
            Arc::from(name),
            self.inner.binding.clone(),
        )
    }

    /// The node the actor is placed on; for a failover child (placed by the cluster, see
    /// [`Placed`](crate::placed::Placed)), the first node of its failover order, while it may
    /// run on any of them.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// The name the actor is registered under on its node.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    fn target(&self) -> String {
        format!("{}/{}", self.inner.node, self.inner.name)
    }

    fn mesh(&self) -> Result<Arc<MeshInner>, CallError> {
        self.inner
            .binding
            .mesh()
            .ok_or_else(|| CallError::Unreachable {
                node: self.inner.node.to_string(),
            })
    }

    fn resolve(&self) -> Result<Route<M>, CallError> {
        let mesh = self.mesh()?;
        if !self.inner.direct
            && let Some(placed) = mesh.placed(&self.inner.name)
        {
            return Ok(Route::Placed(placed));
        }
        mesh.route::<M>(&self.inner.node, &self.inner.name)
    }

    fn route(&self) -> Result<&Route<M>, CallError> {
        if let Some(route) = self.inner.route.get() {
            return Ok(route);
        }
        let route = self.resolve()?;
        Ok(self.inner.route.get_or_init(|| route))
    }

    fn deliver_local(&self, slot: &Arc<Slot<M>>, mail: Mail<M>) -> Result<(), CallError> {
        match slot.deliver(mail) {
            Ok(()) => Ok(()),
            Err(undelivered) => match (undelivered.error, undelivered.mail) {
                // The cached slot was closed (its actor was removed); the name may since have
                // been registered again with a fresh slot.
                (CallError::NotFound { .. }, Some(mail)) => match self.resolve() {
                    Ok(Route::Local(fresh)) if !Arc::ptr_eq(&fresh, slot) => {
                        fresh.deliver(mail).map_err(|u| u.error)
                    }
                    _ => Err(CallError::NotFound {
                        target: self.target(),
                    }),
                },
                (error, _) => Err(error),
            },
        }
    }

    /// What the actor's current instance shares with this process ([`Ctx::share`]), if it runs
    /// on a node of this process, shares a `T`, and is not behind a failover gate; `None`
    /// otherwise (another process, a placed name, between instances, nothing shared), in
    /// which case send messages as usual.
    ///
    /// [`Ctx::share`]: crate::Ctx::share
    pub fn shared<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        match self.route() {
            Ok(Route::Local(slot)) => slot.shared(),
            _ => None,
        }
    }

    /// `f` of what the actor's current instance shares, when [`shared`](Self::shared) would
    /// have it, lent rather than counted (no reference count taken, so nothing bounces between
    /// CPUs); `arg` back otherwise.
    ///
    /// `f` sees the instance that was current when it started, even if a restart replaces it
    /// meanwhile; it runs on the caller's thread, holding one of that thread's few fast
    /// reference slots, so keep it short.
    #[inline]
    pub fn with_shared<T: Send + Sync + 'static, A, R>(
        &self,
        arg: A,
        f: impl FnOnce(&T, A) -> R,
    ) -> Result<R, A> {
        match self.route() {
            Ok(Route::Local(slot)) => slot.with_shared(arg, f),
            _ => Err(arg),
        }
    }

    /// Sends `msg` without waiting for it to be handled (at most once).
    ///
    /// `Ok` means the message was queued for the actor (or parked for its next instance while it
    /// restarts); it does not mean it was handled, and it can still be lost if the actor crashes
    /// with it in its mailbox.
    ///
    /// # Errors
    /// - [`CallError::Overloaded`] if the actor's mailbox is at its limit (the message is dropped
    ///   and counted);
    /// - [`CallError::NotFound`] if no actor is registered under the name;
    /// - [`CallError::WrongType`] if the name handles another message type;
    /// - [`CallError::Unreachable`] if the actor's node is not reachable.
    pub fn cast(&self, msg: M) -> Result<(), CallError> {
        match self.route()? {
            Route::Local(slot) => self.deliver_local(slot, Mail::sent(msg)),
            Route::Inlet(inlet) => inlet.deliver(msg),
            Route::Remote => {
                crate::remote::remote_cast(&*self.mesh()?, &self.inner.node, &self.inner.name, msg)
            }
            Route::Placed(placed) => placed.cast(&self.inner.binding, msg),
        }
    }

    /// Sends the request `make(reply)` and waits up to `timeout` for its answer.
    ///
    /// `make` builds the request around the reply port the runtime hands it; a request
    /// variant that carries a [`Reply<R>`] is such a function by itself, so
    /// `counter.call(CounterMsg::Get, timeout)` returns the `R` of that variant and nothing
    /// else. A request with more fields takes a closure:
    /// `cache.call(|reply| CacheMsg::Get { key, reply }, timeout)`.
    ///
    /// `Duration::MAX` waits without any deadline, like ractor's `call!`: no timer is involved
    /// at all, and the call ends only when the actor answers, drops the reply port, or fails
    /// (a local actor that keeps the reply port forever keeps the caller waiting forever).
    /// Any other timeout costs a local call one entry on a watch list, not a timer, unless the
    /// reply takes longer than one sweep of that list (50 ms); timeouts under 100 ms arm a
    /// timer at once.
    ///
    /// # Errors
    /// Everything [`Addr::cast`] returns, and:
    /// - [`CallError::Timeout`] if no reply came in time;
    /// - [`CallError::NoReply`] if the actor dropped the reply port unanswered;
    /// - [`CallError::ActorFailed`] if the actor panicked or failed while holding it (the
    ///   reason is the panic message or the error);
    /// - whatever the actor answered with [`Reply::fail`].
    ///
    /// # Cancel safety
    /// The request is sent when the future is first polled; one dropped unpolled sends nothing.
    /// Dropped after that, it abandons the call but not the request: the actor may still
    /// handle it, and its answer is discarded (for a caller in this process,
    /// [`Reply::is_waiting`] turns `false` and [`Reply::send`] returns `false`). A local call's
    /// watch-list entry or timer goes with the future, and so does a remote call's entry in its
    /// node's table of pending calls ([`NodeNet::pending_calls`](crate::remote::NodeNet::pending_calls));
    /// a reply that arrives later is dropped and counted as a stray reply.
    pub async fn call<R: ReplyValue>(
        &self,
        make: impl FnOnce(Reply<R>) -> M,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let rx = match self.route()? {
            Route::Local(slot) => {
                let (tx, rx) = oneshot::channel();
                self.deliver_local(slot, Mail::sent(make(Reply::local(tx))))?;
                rx
            }
            Route::Inlet(inlet) => {
                let (tx, rx) = oneshot::channel();
                inlet.deliver(make(Reply::local(tx)))?;
                rx
            }
            Route::Remote => {
                let mesh = self.mesh()?;
                // boxed: the remote path's state machine would otherwise size (and be moved
                // with) every local call's future
                return Box::pin(crate::remote::remote_call(
                    &mesh,
                    &self.inner.node,
                    &self.inner.name,
                    make,
                    timeout,
                ))
                .await;
            }
            Route::Placed(placed) => {
                // boxed: it calls back into `call` on the holder
                return Box::pin(placed.call(&self.inner.binding, make, timeout)).await;
            }
        };
        let outcome = if timeout == Duration::MAX {
            // no deadline: nothing to watch, so no wait state around the channel either
            Ok(rx.await.map_err(|_| ()))
        } else {
            ReplyWait::new(rx, timeout).await
        };
        match outcome {
            Ok(Ok(Ok(reply))) => Ok(reply),
            Ok(Ok(Err(failure))) => Err(self.failure(failure)),
            // the sender is always answered on drop; a closed channel means it was lost with
            // a mailbox that was torn down
            Ok(Err(_)) => Err(CallError::ActorFailed {
                target: self.target(),
                reason: "the call was lost with the actor's mailbox".into(),
            }),
            Err(_) => Err(CallError::Timeout {
                target: self.target(),
                after: timeout,
            }),
        }
    }

    fn failure(&self, failure: ReplyFailure) -> CallError {
        match failure {
            ReplyFailure::Dropped => CallError::NoReply {
                target: self.target(),
            },
            ReplyFailure::Failed(reason) => CallError::ActorFailed {
                target: self.target(),
                reason: reason.to_string(),
            },
            ReplyFailure::Refused(error) => *error,
        }
    }

    /// Messages refused so far because the actor's mailbox was full (0 if unresolved).
    pub fn dropped(&self) -> u64 {
        match self.route() {
            Ok(Route::Local(slot)) => slot.dropped(),
            Ok(Route::Inlet(inlet)) => inlet.dropped(),
            Ok(Route::Placed(placed)) => placed.dropped(),
            _ => 0,
        }
    }
}

impl<Q: Request> Addr<Ask<Q>> {
    /// Sends `request` and waits up to `timeout` for its response: `call` for actors that
    /// take one kind of request.
    ///
    /// If the actor runs in this process and answers in place
    /// ([`Ctx::answer_in_place`](crate::Ctx::answer_in_place)), its answer runs here, on this
    /// task, without a message (and without the timeout, as a function call has none); a
    /// request the answer hands back is sent as usual.
    ///
    /// # Errors
    /// As [`Addr::call`]; [`CallError::ActorFailed`] if an answer in place panicked.
    ///
    /// # Cancel safety
    /// As [`Addr::call`]. An answer in place runs to its end before the first await.
    pub async fn ask(&self, request: Q, timeout: Duration) -> Result<Q::Response, CallError> {
        let request = match self.ask_in_place(request) {
            Ok(answered) => return answered,
            Err(request) => request,
        };
        self.call(|reply| Ask { request, reply }, timeout).await
    }

    /// The actor's answer in place for `request`, run here and now, if the actor runs in this
    /// process and answers in place ([`Ctx::answer_in_place`](crate::Ctx::answer_in_place));
    /// `Err(request)` otherwise, or when its answer hands the request back — then
    /// [`ask`](Self::ask) or [`call`](Self::call) it as usual.
    ///
    /// What [`ask`](Self::ask) does before it sends, for callers that want to answer without
    /// a future when they can (a server answering on its connection's task). The answer runs
    /// the actor's function on the caller's thread, with no timeout (it is a function call).
    ///
    /// # Errors
    /// The answer's own error; [`CallError::ActorFailed`] if the answer panicked.
    #[inline]
    pub fn ask_in_place(&self, request: Q) -> Result<Result<Q::Response, CallError>, Q> {
        match self.route() {
            Ok(Route::Local(slot)) => slot
                .with_shared(request, |in_place: &InPlace<Q>, request| {
                    in_place.answer(request, || self.target())
                })
                .unwrap_or_else(Err),
            _ => Err(request),
        }
    }
}

/// The shared, set-once binding of handles created before their nodes exist (by a topology).
#[derive(Clone, Default)]
pub struct AddrBinding(Arc<OnceLock<Weak<MeshInner>>>);

impl AddrBinding {
    /// An unset binding: handles deferred on it fail with `Unreachable` until [`bind`](Self::bind).
    pub fn new() -> Self {
        Self::default()
    }

    /// Points every handle of this binding at `node`'s process. Later calls have no effect.
    pub fn bind(&self, node: &Node) {
        let _ = self.0.set(node.mesh_weak());
    }
}

impl fmt::Debug for AddrBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddrBinding")
            .field("bound", &self.0.get().is_some())
            .finish()
    }
}

thread_local! {
    static DECODE_MESH: RefCell<Option<Weak<MeshInner>>> = const { RefCell::new(None) };
}

/// Runs `f` with `node` as the context in which deserialized [`Addr`]s resolve.
///
/// The runtime does this around every message it decodes; call it yourself when you decode
/// messages holding handles outside the runtime (for example from a file).
pub fn with_decode_context<T>(node: &Node, f: impl FnOnce() -> T) -> T {
    let previous = DECODE_MESH.with(|cell| cell.replace(Some(node.mesh_weak())));
    let result = f();
    DECODE_MESH.with(|cell| *cell.borrow_mut() = previous);
    result
}

#[derive(Serialize, Deserialize)]
struct AddrRepr<'a> {
    #[serde(borrow)]
    node: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
}

impl<M: Message> Serialize for Addr<M> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        AddrRepr {
            node: std::borrow::Cow::Borrowed(&self.inner.node),
            name: std::borrow::Cow::Borrowed(&self.inner.name),
        }
        .serialize(serializer)
    }
}

impl<'de, M: Message> Deserialize<'de> for Addr<M> {
    /// Deserializes a handle bound to the decode context (see [`with_decode_context`]); outside
    /// one, the handle's sends fail with [`CallError::Unreachable`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = AddrRepr::deserialize(deserializer)?;
        let mesh = DECODE_MESH.with(|cell| cell.borrow().clone());
        let binding = match mesh {
            Some(mesh) => Binding::Bound(mesh),
            None => Binding::Deferred(Arc::new(OnceLock::new())),
        };
        Ok(Self::bound(
            Arc::from(repr.node.as_ref()),
            Arc::from(repr.name.as_ref()),
            binding,
        ))
    }
}

/// Waits for a local call's reply until its timeout, arming a tokio timer only for calls that
/// wait longer than a sweep of the watch list (see `crate::deadline`).
struct ReplyWait<T> {
    rx: oneshot::Receiver<T>,
    timeout: Duration,
    state: WaitState,
}

enum WaitState {
    /// Not polled yet.
    Fresh,
    /// On the watch list since `since`.
    Watched {
        ticket: Ticket,
        since: tokio::time::Instant,
    },
    /// Waiting on a timer for the exact deadline.
    Timed(Pin<Box<tokio::time::Sleep>>),
    /// No deadline (`Duration::MAX`, or one too far to represent): only the reply ends it.
    Untimed,
}

/// The reply wait timed out.
struct Elapsed;

impl<T> ReplyWait<T> {
    fn new(rx: oneshot::Receiver<T>, timeout: Duration) -> Self {
        Self {
            rx,
            timeout,
            state: WaitState::Fresh,
        }
    }

    fn unwatch(&mut self) {
        if let WaitState::Watched { ticket, .. } = &self.state {
            Watch::global().unwatch(ticket);
            self.state = WaitState::Fresh;
        }
    }
}

impl<T> Future for ReplyWait<T> {
    type Output = Result<Result<T, ()>, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Poll::Ready(reply) = Pin::new(&mut this.rx).poll(cx) {
            this.unwatch();
            return Poll::Ready(Ok(reply.map_err(|_| ())));
        }
        loop {
            match &mut this.state {
                WaitState::Fresh if this.timeout == Duration::MAX => {
                    this.state = WaitState::Untimed;
                }
                // the watch list sweeps on the real clock: under a simulated one, a timer
                WaitState::Fresh if this.timeout >= WATCH_MIN && !crate::time::is_simulated() => {
                    this.state = WaitState::Watched {
                        ticket: Watch::global().watch(cx.waker()),
                        since: tokio::time::Instant::now(),
                    };
                    return Poll::Pending;
                }
                WaitState::Fresh => {
                    this.state = WaitState::Timed(Box::pin(tokio::time::sleep(this.timeout)));
                }
                WaitState::Watched { ticket, since } => {
                    if Watch::global().still_watched(ticket, cx.waker()) {
                        return Poll::Pending;
                    }
                    // swept: waiting longer than a tick, so it gets a timer of its own
                    this.state = match since.checked_add(this.timeout) {
                        Some(deadline) => {
                            WaitState::Timed(Box::pin(tokio::time::sleep_until(deadline)))
                        }
                        None => WaitState::Untimed,
                    };
                }
                WaitState::Timed(sleep) => return sleep.as_mut().poll(cx).map(|()| Err(Elapsed)),
                WaitState::Untimed => return Poll::Pending,
            }
        }
    }
}

impl<T> Drop for ReplyWait<T> {
    fn drop(&mut self) {
        self.unwatch();
    }
}
