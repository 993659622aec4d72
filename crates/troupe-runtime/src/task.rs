//! [`TaskGuard`]: background work that lives exactly as long as its owner

use tokio::task::JoinHandle;

/// Spawns `task` on the current tokio runtime, like `tokio::spawn`, but sending from the same
/// node as the code that spawns it: a task an actor starts this way reaches other nodes from
/// the actor's node, also when several nodes share a process and route through QUIC. Unlike
/// [`Ctx::spawn`](crate::Ctx::spawn), the task is not tied to the actor's instance: it
/// outlives a restart, and its failure fails nothing.
///
/// # Panics
/// Outside a tokio runtime.
pub fn spawn_detached<F>(task: F) -> JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    // in the span it was spawned from, so work it does for a traced message stays in the trace
    tokio::spawn(tracing::Instrument::in_current_span(
        crate::node::keep_origin(task),
    ))
}

/// Aborts a spawned task when dropped
///
/// Actors keep their background tasks (tickers, event forwarders) in guards, so a crash, a
/// restart or a stop ends them with the instance that started them.
#[derive(Debug)]
pub struct TaskGuard(JoinHandle<()>);

impl TaskGuard {
    /// Spawns `task` on the current tokio runtime, guarded
    pub fn spawn(task: impl std::future::Future<Output = ()> + Send + 'static) -> Self {
        Self(tokio::spawn(task))
    }

    /// Whether the task has ended
    pub fn is_finished(&self) -> bool {
        self.0.is_finished()
    }
}

impl From<JoinHandle<()>> for TaskGuard {
    fn from(handle: JoinHandle<()>) -> Self {
        Self(handle)
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}
