//! The parts the admin endpoint reports on and acts on: each replicated database and queue of
//! the topology, through the same clients users reach them with.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{DbState, DeadLetterState, PromotedState, QueueState};

/// A boxed future, as the part traits return them.
pub type PartFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a part refused or could not do an operator's action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// The thing acted on does not exist (no such dead letter).
    #[error("{0}")]
    NotFound(String),
    /// The part refused: doing it would break a promise (no follower can be promoted without
    /// losing acknowledged writes, the queue is full).
    #[error("{0}")]
    Refused(String),
    /// The part did not answer in time.
    #[error("{0}")]
    Unavailable(String),
}

/// A replicated database as the admin endpoint sees it.
pub trait DbAdmin: Send + Sync + 'static {
    /// The name it was added under.
    fn name(&self) -> &str;
    /// Every replica's status now; a replica that does not answer within the client's timeout
    /// is reported with its error.
    fn status(&self) -> PartFuture<'_, DbState>;
    /// Manual failover: the most up-to-date follower becomes leader.
    fn promote(&self) -> PartFuture<'_, Result<PromotedState, ActionError>>;
    /// Adds replica `replica` to the voters (`add`) or takes it out; answers the voters once
    /// the change is committed. Refused unless the database runs Raft.
    fn change_members(
        &self,
        add: bool,
        replica: u64,
    ) -> PartFuture<'_, Result<Vec<u64>, ActionError>> {
        let _ = (add, replica);
        Box::pin(async {
            Err(ActionError::Refused(
                "membership changes need Raft mode".into(),
            ))
        })
    }
}

/// A queue as the admin endpoint sees it.
pub trait QueueAdmin: Send + Sync + 'static {
    /// The name it was added under.
    fn name(&self) -> &str;
    /// Its counts now.
    fn stats(&self) -> PartFuture<'_, QueueState>;
    /// Its dead letters, oldest first.
    fn dead_letters(&self) -> PartFuture<'_, Result<Vec<DeadLetterState>, ActionError>>;
    /// Puts dead letter `item` back at the tail of the line.
    fn replay(&self, item: u64) -> PartFuture<'_, Result<(), ActionError>>;
}

/// The databases and queues an admin endpoint serves `/db` and `/queue` for.
#[derive(Clone, Default)]
pub struct AdminParts {
    pub(crate) dbs: Vec<Arc<dyn DbAdmin>>,
    pub(crate) queues: Vec<Arc<dyn QueueAdmin>>,
}

impl AdminParts {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a database.
    pub fn add_db(&mut self, db: impl DbAdmin) {
        self.dbs.push(Arc::new(db));
    }

    /// Adds a queue.
    pub fn add_queue(&mut self, queue: impl QueueAdmin) {
        self.queues.push(Arc::new(queue));
    }

    /// Whether it has no part.
    pub fn is_empty(&self) -> bool {
        self.dbs.is_empty() && self.queues.is_empty()
    }
}

impl std::fmt::Debug for AdminParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminParts")
            .field(
                "dbs",
                &self.dbs.iter().map(|d| d.name()).collect::<Vec<_>>(),
            )
            .field(
                "queues",
                &self.queues.iter().map(|q| q.name()).collect::<Vec<_>>(),
            )
            .finish()
    }
}
