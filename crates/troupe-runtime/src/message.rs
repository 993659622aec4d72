//! The [`Message`] trait that makes a type sendable to an actor on any node, and the
//! [`ReplyTo`] handle an actor answers a call through.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

/// A message type an actor handles; implementing it makes the type usable across nodes.
///
/// The name and version identify the type on the wire: the name must be stable and unique in
/// the cluster (a dotted, crate-qualified name is a good habit), and the version changes when
/// the encoding changes incompatibly (see `docs/wire.md`, "Evolving a message type"). Messages
/// sent to an actor in the same process are moved, never serialized.
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use troupe_runtime::Message;
///
/// #[derive(Debug, Serialize, Deserialize)]
/// enum Counter {
///     Add(u64),
///     Get,
/// }
///
/// impl Message for Counter {
///     const NAME: &'static str = "example.Counter";
///     const VERSION: u16 = 1;
///     type Reply = u64;
/// }
/// ```
pub trait Message: Serialize + DeserializeOwned + Send + 'static {
    /// Stable, cluster-unique name of the type.
    const NAME: &'static str;
    /// Version of the encoding this node writes; bump it on incompatible changes.
    const VERSION: u16 = 1;
    /// Oldest version this node still reads (for rolling upgrades: first deploy readers that
    /// accept `VERSION - 1 ..= VERSION`, then switch writers).
    const MIN_VERSION: u16 = Self::VERSION;
    /// What a call with this message returns (`()` for cast-only messages).
    type Reply: Serialize + DeserializeOwned + Send + 'static;
}

/// Why a reply never came, as seen from inside the process.
#[derive(Debug)]
pub(crate) enum ReplyFailure {
    /// Dropped unanswered.
    Dropped,
    /// Dropped while the handler was panicking.
    Panicked,
    /// The message never reached the actor (used for remote callers).
    Refused(crate::error::CallError),
}

pub(crate) type ReplySender<R> = oneshot::Sender<Result<R, ReplyFailure>>;

/// Answers a caller on another node: encodes the reply and sends it back over the link.
pub(crate) type RemoteSink<R> = Box<dyn FnOnce(Result<R, ReplyFailure>) + Send>;

enum Sink<R> {
    Local(ReplySender<R>),
    Remote(RemoteSink<R>),
}

impl<R> Sink<R> {
    fn answer(self, result: Result<R, ReplyFailure>) -> bool {
        match self {
            Self::Local(tx) => tx.send(result).is_ok(),
            Self::Remote(sink) => {
                sink(result);
                true
            }
        }
    }
}

/// The handle an actor answers one call through.
///
/// It can be moved anywhere (another task, another actor) and answered later. Dropping it
/// without answering fails the caller's call with [`CallError::NoReply`](crate::CallError), or
/// [`CallError::ActorFailed`](crate::CallError) when the drop happens while the handler
/// panics, so a caller never hangs on a lost reply. For a [`cast`](crate::Addr::cast) there is
/// nobody waiting: [`ReplyTo::send`] does nothing and [`ReplyTo::is_call`] is `false`.
#[must_use = "dropping a ReplyTo unanswered fails the caller's call"]
pub struct ReplyTo<R> {
    tx: Option<Sink<R>>,
}

impl<R> ReplyTo<R> {
    pub(crate) fn call(tx: ReplySender<R>) -> Self {
        Self {
            tx: Some(Sink::Local(tx)),
        }
    }

    pub(crate) fn remote(sink: RemoteSink<R>) -> Self {
        Self {
            tx: Some(Sink::Remote(sink)),
        }
    }

    /// Answers the call with an error instead of a reply — for actors that forward calls (a
    /// balancer passing on its member's failure) or refuse them. The caller's `call` returns
    /// this error as is. Does nothing for a cast.
    pub fn fail(self, error: crate::error::CallError) {
        self.refuse(error);
    }

    /// Answers with a refusal (the message was never handled) instead of the drop default.
    pub(crate) fn refuse(mut self, error: crate::error::CallError) {
        if let Some(tx) = self.tx.take() {
            tx.answer(Err(ReplyFailure::Refused(error)));
        }
    }

    pub(crate) fn cast() -> Self {
        Self { tx: None }
    }

    /// Whether a caller is waiting for this reply.
    pub fn is_call(&self) -> bool {
        self.tx.is_some()
    }

    /// Answers the call. Returns `false` if nobody is waiting any more (a cast, or the caller
    /// timed out or went away); the reply is then discarded.
    pub fn send(mut self, reply: R) -> bool {
        match self.tx.take() {
            Some(tx) => tx.answer(Ok(reply)),
            None => false,
        }
    }
}

impl<R> Drop for ReplyTo<R> {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let failure = if std::thread::panicking() {
                ReplyFailure::Panicked
            } else {
                ReplyFailure::Dropped
            };
            tx.answer(Err(failure));
        }
    }
}

impl<R> std::fmt::Debug for ReplyTo<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyTo")
            .field("is_call", &self.is_call())
            .finish()
    }
}

/// A message in an actor's mailbox, with the reply handle of its caller.
pub(crate) struct Mail<M: Message> {
    pub(crate) msg: M,
    pub(crate) reply: ReplyTo<M::Reply>,
}
