//! The parts the admin endpoint reports on and acts on: each replicated database and queue of
//! the topology, and the placement of its failover groups, through the same clients users
//! reach them with.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{DbState, DeadLetterState, PlacementState, PromotedState, QueueState};

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

/// A failover group as the topology declares it: its name and the nodes it may run on, in
/// order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredGroup {
    /// The group's name (`NAME.failover` for an actor placed with `failover_to`).
    pub name: String,
    /// Its nodes, in failover order.
    pub order: Vec<String>,
    /// The roles whose nodes may run it after `order` (nodes the topology need not declare).
    pub roles: Vec<String>,
}

/// The placement of a topology's failover groups as the admin endpoint sees it
/// (`/placement`) and acts on it (operators' moves and drains), through the cluster's
/// metadata group.
///
/// The endpoint checks names against [`groups`](Self::groups) and [`nodes`](Self::nodes)
/// before it calls the actions: they get a declared group and a node of its order, or a node
/// of the topology.
pub trait PlacementAdmin: Send + Sync + 'static {
    /// Every failover group of the topology, in declaration order.
    fn groups(&self) -> &[DeclaredGroup];
    /// Every node of the topology, in declaration order.
    fn nodes(&self) -> &[String];
    /// Where each group runs now, and the operators' directions; what could not be read is
    /// reported with its error.
    fn state(&self) -> PartFuture<'_, PlacementState>;
    /// Moves `group` to `node` (first in its order, with takeover, until cleared), or clears
    /// its move with `None`.
    fn move_group(
        &self,
        group: &str,
        node: Option<&str>,
    ) -> PartFuture<'_, Result<(), ActionError>>;
    /// Drains `node` (out of every group's order, so what runs there moves off, handed over in
    /// order), or with `false` puts it back in service.
    fn drain(&self, node: &str, drained: bool) -> PartFuture<'_, Result<(), ActionError>>;
}

/// The databases, queues and failover placement an admin endpoint serves `/db`, `/queue` and
/// `/placement` for.
#[derive(Clone, Default)]
pub struct AdminParts {
    pub(crate) dbs: Vec<Arc<dyn DbAdmin>>,
    pub(crate) queues: Vec<Arc<dyn QueueAdmin>>,
    pub(crate) placement: Option<Arc<dyn PlacementAdmin>>,
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

    /// Sets the failover placement (a topology has one, through its metadata group).
    pub fn set_placement(&mut self, placement: impl PlacementAdmin) {
        self.placement = Some(Arc::new(placement));
    }

    /// Whether it has no part.
    pub fn is_empty(&self) -> bool {
        self.dbs.is_empty() && self.queues.is_empty() && self.placement.is_none()
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
            .field(
                "failover_groups",
                &self
                    .placement
                    .iter()
                    .flat_map(|p| p.groups().iter().map(|g| g.name.as_str()))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}
