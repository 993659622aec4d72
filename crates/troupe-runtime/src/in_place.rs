//! Requests an actor lets its own process answer without a message.
//!
//! An actor whose answer to a request needs none of its own state (a stateless HTTP handler, a
//! lookup in a table it shares) can share an [`InPlace`] answer with [`Ctx::answer_in_place`].
//! From then on, until the instance ends, [`Addr::ask`] from this process runs the answer on
//! the caller's own task: no mailbox, no task hand-off, no reply channel — what Orleans calls a
//! stateless worker, here chosen per request (the answer can hand a request back to the mailbox).
//!
//! [`Ctx::answer_in_place`]: crate::Ctx::answer_in_place
//! [`Addr::ask`]: crate::Addr::ask

use std::fmt;
use std::panic::AssertUnwindSafe;

use crate::actor::panic_message;
use crate::error::CallError;
use crate::message::Request;

type Answer<Q> = dyn Fn(Q) -> Result<<Q as Request>::Response, Q> + Send + Sync;

/// An answer to requests of type `Q` that callers in the actor's process run on their own
/// task; see [`Ctx::answer_in_place`](crate::Ctx::answer_in_place).
pub struct InPlace<Q: Request> {
    answer: Box<Answer<Q>>,
}

impl<Q: Request> InPlace<Q> {
    /// `answer` answers a request (`Ok`) or hands it back to go through the actor's mailbox as
    /// a message (`Err`).
    pub fn new(answer: impl Fn(Q) -> Result<Q::Response, Q> + Send + Sync + 'static) -> Self {
        Self {
            answer: Box::new(answer),
        }
    }

    /// Runs the answer for `request` on this task: `Ok` with the response, or with
    /// [`CallError::ActorFailed`] (naming `target()`) if the answer panicked; `Err` with the
    /// request if the answer handed it back.
    #[inline]
    pub(crate) fn answer(
        &self,
        request: Q,
        target: impl FnOnce() -> String,
    ) -> Result<Result<Q::Response, CallError>, Q> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| (self.answer)(request))) {
            Ok(Ok(response)) => Ok(Ok(response)),
            Ok(Err(request)) => Err(request),
            Err(panic) => {
                let (target, reason) = (target(), panic_message(&*panic));
                tracing::warn!(actor = %target, %reason, "an answer in place panicked");
                Ok(Err(CallError::ActorFailed { target, reason }))
            }
        }
    }
}

impl<Q: Request> fmt::Debug for InPlace<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InPlace")
            .field("request", &std::any::type_name::<Q>())
            .finish()
    }
}
