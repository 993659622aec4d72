//! The [`Message`] trait that makes a type sendable to an actor on any node, and the
//! [`Reply`] port a request carries for its answer.
//!
//! A request and its reply type belong together: a variant that expects an answer carries a
//! `Reply<R>`, a variant that does not (a cast) carries none.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use troupe_runtime::{Message, Reply};
//!
//! #[derive(Serialize, Deserialize, Message)]
//! #[message(name = "example.Counter")]
//! enum CounterMsg {
//!     /// A cast: no reply
//!     Add(u64),
//!     /// A call answered with the total
//!     Get(Reply<u64>),
//! }
//! ```
//!
//! A caller passes the variant's constructor: `counter.call(CounterMsg::Get, timeout)` returns
//! `Result<u64, CallError>`, and there is no other answer to match.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::oneshot;

use crate::error::CallError;

/// A message type an actor handles; implementing it makes the type usable across nodes.
///
/// Derive it: `#[derive(Serialize, Deserialize, Message)]` with `#[message(name = "...")]`
/// (see [`macro@Message`] for the keys). The name and version identify the type on the wire:
/// the name must be stable and unique in the cluster (a dotted, crate-qualified name is a good
/// habit), and the version changes when the encoding changes incompatibly (see `docs/wire.md`,
/// "Evolving a message type"). Messages sent to an actor in the same process are moved, never
/// serialized.
///
/// Replies are not part of the trait: each request variant carries its own [`Reply`] port.
pub trait Message: Serialize + DeserializeOwned + Send + 'static {
    /// Stable, cluster-unique name of the type.
    const NAME: &'static str;
    /// Version of the encoding this node writes; bump it on incompatible changes.
    const VERSION: u16 = 1;
    /// Oldest version this node still reads: it decodes payloads of versions
    /// `MIN_VERSION..=VERSION` with this one Rust type (so fields added since are optional,
    /// `#[serde(default)]`), and writes `VERSION`. A node never reads a version newer than the
    /// one it writes; see `docs/wire.md`, "Evolving a message type", for rolling upgrades.
    const MIN_VERSION: u16 = Self::VERSION;
}

pub use troupe_macros::Message;

/// A request with one kind of answer, sent to an actor as [`Ask<Self>`]: for actors that take
/// a single kind of request (an HTTP handler, a service behind a balancer), so that the request
/// type itself can be named, versioned, forwarded and balanced without its reply port.
///
/// Derive it with `#[derive(Serialize, Deserialize, Request)]` and
/// `#[request(name = "...", response = Type)]` (the same keys as [`macro@Message`], plus the
/// response type).
pub trait Request: Serialize + DeserializeOwned + Send + 'static {
    /// Stable, cluster-unique name of the request type (the name of `Ask<Self>` on the wire).
    const NAME: &'static str;
    /// Version of the encoding this node writes.
    const VERSION: u16 = 1;
    /// Oldest version this node still reads.
    const MIN_VERSION: u16 = Self::VERSION;
    /// What the request is answered with.
    type Response: ReplyValue;
}

pub use troupe_macros::Request;

/// One request and the port for its answer: the message type of an actor that takes
/// requests of type `Q`. Call it with [`Addr::ask`](crate::Addr::ask).
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Ask<Q: Request> {
    /// The request.
    pub request: Q,
    /// Where its answer goes.
    pub reply: Reply<Q::Response>,
}

impl<Q: Request> Message for Ask<Q> {
    const NAME: &'static str = Q::NAME;
    const VERSION: u16 = Q::VERSION;
    const MIN_VERSION: u16 = Q::MIN_VERSION;
}

/// The message type of an actor that has no messages of its own (it works from timers and
/// tasks on its context, or only from `started`): no value of it exists, so nothing can be sent.
#[derive(Debug, Serialize, Deserialize)]
pub enum NoMessages {}

impl Message for NoMessages {
    const NAME: &'static str = "troupe.NoMessages";
}

/// A type a reply may have: anything serde can carry, so the same request works remotely.
pub trait ReplyValue: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> ReplyValue for T {}

/// Why a reply never came, as seen from inside the process.
#[derive(Debug)]
pub(crate) enum ReplyFailure {
    /// Dropped unanswered.
    Dropped,
    /// The actor failed (panicked or returned an error) while holding it; the reason.
    Failed(Arc<str>),
    /// Answered with an error by the actor or refused before it reached the actor.
    Refused(Box<CallError>),
}

pub(crate) type ReplySender<R> = oneshot::Sender<Result<R, ReplyFailure>>;

/// Answers a caller on another node: encodes the reply and sends it back over the link.
pub(crate) type RemoteSink<R> = Box<dyn FnOnce(Result<R, ReplyFailure>) + Send>;

enum Sink<R> {
    Local(ReplySender<R>),
    Remote(RemoteSink<R>),
    /// The placeholder a remote call's message carries on its way out: the answer comes back
    /// through the caller's pending-call table, not through this value.
    Outbound,
}

impl<R> Sink<R> {
    fn answer(self, result: Result<R, ReplyFailure>) -> bool {
        match self {
            Self::Local(tx) => tx.send(result).is_ok(),
            Self::Remote(sink) => {
                sink(result);
                true
            }
            Self::Outbound => false,
        }
    }
}

/// The port a request carries for its answer: the caller of
/// [`Addr::call`](crate::Addr::call) waits on it.
///
/// It can be moved anywhere in this process (another task, another actor's message) and
/// answered later. Dropping it without answering fails the caller's call with
/// [`CallError::NoReply`], or with [`CallError::ActorFailed`] and the failure's reason (the
/// panic message) when it is dropped because its actor failed, so a caller never hangs on a
/// lost reply. It cannot be sent to another node inside a new message (encoding such a
/// message fails with [`CallError::Decode`]): forward the request with a call of your own and
/// answer with its result.
///
/// The runtime creates the port of a call; [`Reply::none`] makes one nobody waits on, for a
/// request sent as a cast.
#[must_use = "dropping a Reply unanswered fails the caller's call"]
pub struct Reply<R> {
    sink: Option<Sink<R>>,
}

impl<R> Reply<R> {
    pub(crate) fn local(tx: ReplySender<R>) -> Self {
        Self {
            sink: Some(Sink::Local(tx)),
        }
    }

    pub(crate) fn remote(sink: RemoteSink<R>) -> Self {
        Self {
            sink: Some(Sink::Remote(sink)),
        }
    }

    /// A port nobody waits on, for casting a request whose answer is not wanted:
    /// `addr.cast(CounterMsg::Get(Reply::none()))`. Sending on it does nothing.
    pub fn none() -> Self {
        Self { sink: None }
    }

    pub(crate) fn outbound() -> Self {
        Self {
            sink: Some(Sink::Outbound),
        }
    }

    /// Answers the call. Returns `false` if nobody is waiting any more (the caller timed out
    /// or went away); the reply is then discarded.
    pub fn send(mut self, reply: R) -> bool {
        match self.sink.take() {
            Some(sink) => sink.answer(Ok(reply)),
            None => false,
        }
    }

    /// Answers the call with an error instead of a reply — for actors that forward calls (a
    /// balancer passing on its member's failure) or refuse them. The caller's `call` returns
    /// this error as it is.
    pub fn fail(mut self, error: CallError) {
        if let Some(sink) = self.sink.take() {
            sink.answer(Err(ReplyFailure::Refused(Box::new(error))));
        }
    }

    /// Whether the caller is still waiting (`false` once a local caller timed out or dropped
    /// its call). A remote caller is assumed to wait until its own deadline.
    pub fn is_waiting(&self) -> bool {
        match &self.sink {
            Some(Sink::Local(tx)) => !tx.is_closed(),
            Some(Sink::Remote(_)) => true,
            Some(Sink::Outbound) | None => false,
        }
    }
}

impl<R> Drop for Reply<R> {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            let failure = match dropped_reply_failure() {
                Some(failure) => failure,
                None if std::thread::panicking() => ReplyFailure::Failed(
                    current_panic()
                        .unwrap_or_else(|| Arc::from("the actor panicked before answering")),
                ),
                None => ReplyFailure::Dropped,
            };
            sink.answer(Err(failure));
        }
    }
}

impl<R> std::fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("waiting", &self.is_waiting())
            .finish()
    }
}

impl<R> Serialize for Reply<R> {
    /// A call's own reply port (and a port nobody waits on) is written as a unit marker: the
    /// answer travels back by the call's request id. A port someone waits on in this process
    /// cannot leave it.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.sink {
            Some(Sink::Outbound) | None => serializer.serialize_unit(),
            _ => Err(serde::ser::Error::custom(
                "a reply port can cross nodes only as the reply of the call it belongs to",
            )),
        }
    }
}

impl<'de, R: ReplyValue> Deserialize<'de> for Reply<R> {
    /// Reads the unit marker and binds the port to the call being decoded (see
    /// `with_reply_context`); in a cast, or as a second port in one message, it is a port
    /// nobody waits on.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer)?;
        let replier = REPLY_CONTEXT.with(|cell| cell.borrow_mut().take());
        Ok(match replier {
            Some(replier) => Self::remote(Box::new(move |result| replier.answer::<R>(result))),
            None => Self::none(),
        })
    }
}

thread_local! {
    static REPLY_CONTEXT: RefCell<Option<crate::remote::Replier>> = const { RefCell::new(None) };
}

/// Decodes with `replier` as the port a [`Reply`] inside the message binds to; returns the
/// result and the replier if no port took it.
pub(crate) fn with_reply_context<T>(
    replier: Option<crate::remote::Replier>,
    decode: impl FnOnce() -> T,
) -> (T, Option<crate::remote::Replier>) {
    let previous = REPLY_CONTEXT.with(|cell| cell.replace(replier));
    let result = decode();
    let unused = REPLY_CONTEXT.with(|cell| cell.replace(previous));
    (result, unused)
}

thread_local! {
    static CURRENT_PANIC: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// Installs (once per process) a panic hook that remembers each panic's message on its
/// thread, so that a reply port dropped while a handler unwinds can fail its caller with that
/// message. The hook then runs the hook that was installed before it.
pub(crate) fn remember_panic_messages() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message: Arc<str> = if let Some(text) = payload.downcast_ref::<&str>() {
                Arc::from(*text)
            } else if let Some(text) = payload.downcast_ref::<String>() {
                Arc::from(text.as_str())
            } else {
                Arc::from("the actor panicked")
            };
            let _ = CURRENT_PANIC.try_with(|cell| {
                if let Ok(mut current) = cell.try_borrow_mut() {
                    *current = Some(message);
                }
            });
            previous(info);
        }));
    });
}

/// The message of the panic this thread is unwinding from, if the hook saw it.
fn current_panic() -> Option<Arc<str>> {
    CURRENT_PANIC
        .try_with(|cell| cell.try_borrow().ok()?.clone())
        .ok()
        .flatten()
}

/// Why reply ports and messages dropped on this thread right now are being dropped.
enum DropContext {
    /// An instance is failing with `reason`; the messages still in its mailbox go to
    /// `salvage` (its slot) for the next instance.
    Failing {
        reason: Arc<str>,
        salvage: Arc<dyn Any + Send + Sync>,
    },
    /// A message is refused before it reached an actor, with this error.
    Refused(CallError),
}

thread_local! {
    static DROP_CONTEXT: RefCell<Option<DropContext>> = const { RefCell::new(None) };
}

/// Marks the instance whose messages go to `salvage` (its slot) as failing with `reason`,
/// until [`FailingGuard`] clears it: replies dropped meanwhile fail with that reason, and
/// messages dropped from its mailbox are kept for the next instance.
pub(crate) fn set_failing(reason: Arc<str>, salvage: Arc<dyn Any + Send + Sync>) {
    DROP_CONTEXT.with(|cell| *cell.borrow_mut() = Some(DropContext::Failing { reason, salvage }));
}

/// Drops `mail` undelivered, failing its reply port (if any) with `error`.
pub(crate) fn refuse<M: Message>(mail: Mail<M>, error: &CallError) {
    let previous =
        DROP_CONTEXT.with(|cell| cell.replace(Some(DropContext::Refused(error.clone()))));
    mail.discard();
    DROP_CONTEXT.with(|cell| *cell.borrow_mut() = previous);
}

fn dropped_reply_failure() -> Option<ReplyFailure> {
    DROP_CONTEXT
        .try_with(|cell| {
            Some(match cell.try_borrow().ok()?.as_ref()? {
                DropContext::Failing { reason, .. } => ReplyFailure::Failed(reason.clone()),
                DropContext::Refused(error) => ReplyFailure::Refused(Box::new(error.clone())),
            })
        })
        .ok()
        .flatten()
}

fn failing_salvage() -> Option<Arc<dyn Any + Send + Sync>> {
    DROP_CONTEXT
        .try_with(|cell| match cell.try_borrow().ok()?.as_ref()? {
            DropContext::Failing { salvage, .. } => Some(salvage.clone()),
            DropContext::Refused(_) => None,
        })
        .ok()
        .flatten()
}

/// Clears the failing mark when dropped: the last thing a host's state drops, after the
/// actor (whose held replies then still see the reason).
#[derive(Default)]
pub(crate) struct FailingGuard;

impl Drop for FailingGuard {
    fn drop(&mut self) {
        let _ = DROP_CONTEXT.try_with(|cell| {
            if let Ok(mut context) = cell.try_borrow_mut() {
                *context = None;
            }
        });
    }
}

use crate::trace::TraceParent;

/// What travels through an instance's mailbox.
pub(crate) enum Letter<M> {
    /// A user message.
    User(M),
    /// A call from another node, which its caller stops waiting for at `by`: not handled
    /// once that has passed.
    Due(M, tokio::time::Instant),
    /// A task tied to the instance failed: the instance fails with this reason.
    TaskFailed(String),
}

/// A letter in an actor's mailbox, and the trace it belongs to. Dropped undelivered while its
/// instance is failing, a user message is handed back to the actor's slot for the next
/// instance instead of being lost (its trace is not: the next instance handles it untraced).
pub(crate) struct Mail<M: Message>(Option<Letter<M>>, Option<Box<TraceParent>>);

impl<M: Message> Mail<M> {
    pub(crate) fn user(msg: M) -> Self {
        Self(Some(Letter::User(msg)), None)
    }

    /// A message sent from here now: part of the sender's trace, if its span has one.
    pub(crate) fn sent(msg: M) -> Self {
        crate::timing::count_send();
        Self(
            Some(Letter::User(msg)),
            TraceParent::current().map(Box::new),
        )
    }

    /// A message from another node (a call not worth starting after `by`, if it is one), in
    /// the trace its envelope named.
    pub(crate) fn remote(
        msg: M,
        by: Option<tokio::time::Instant>,
        trace: Option<TraceParent>,
    ) -> Self {
        let letter = match by {
            Some(by) => Letter::Due(msg, by),
            None => Letter::User(msg),
        };
        Self(Some(letter), trace.map(Box::new))
    }

    pub(crate) fn task_failed(reason: String) -> Self {
        Self(Some(Letter::TaskFailed(reason)), None)
    }

    /// Takes the letter and its trace out (the host, about to handle it).
    pub(crate) fn open(mut self) -> (Option<Letter<M>>, Option<Box<TraceParent>>) {
        (self.0.take(), self.1.take())
    }

    /// Drops the message without salvaging it (the actor was removed for good).
    pub(crate) fn discard(mut self) {
        drop(self.0.take());
    }
}

impl<M: Message> Drop for Mail<M> {
    fn drop(&mut self) {
        let (Some(Letter::User(msg)) | Some(Letter::Due(msg, _))) = self.0.take() else {
            return;
        };
        match failing_salvage().and_then(|s| s.downcast::<crate::slot::Slot<M>>().ok()) {
            Some(slot) => slot.salvage(msg),
            None => drop(msg),
        }
    }
}
