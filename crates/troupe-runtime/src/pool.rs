//! [`Pool`]: `n` actors from one factory, addressable one by one and as a group.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::addr::Addr;
use crate::error::CallError;
use crate::message::{Message, Reply, ReplyValue};

/// A fixed set of actors made from one factory, under their own one-for-one supervisor.
///
/// Members are named `name.0`, `name.1`, ... and each is reached through its own [`Addr`];
/// the pool adds group operations: round-robin sends and broadcasts. Cloning is cheap.
pub struct Pool<M: Message> {
    inner: Arc<PoolInner<M>>,
}

struct PoolInner<M: Message> {
    name: String,
    members: Vec<Addr<M>>,
    next: AtomicUsize,
}

impl<M: Message> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<M: Message> std::fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.inner.name)
            .field("size", &self.inner.members.len())
            .finish()
    }
}

impl<M: Message> Pool<M> {
    /// A pool over existing handles.
    pub fn new(name: impl Into<String>, members: Vec<Addr<M>>) -> Self {
        Self {
            inner: Arc::new(PoolInner {
                name: name.into(),
                members,
                next: AtomicUsize::new(0),
            }),
        }
    }

    /// The pool's name (its supervisor's name).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The name of member `index`.
    pub fn member_name(name: &str, index: usize) -> String {
        format!("{name}.{index}")
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.inner.members.len()
    }

    /// Whether the pool has no members.
    pub fn is_empty(&self) -> bool {
        self.inner.members.is_empty()
    }

    /// Member `index`, if it exists.
    pub fn member(&self, index: usize) -> Option<&Addr<M>> {
        self.inner.members.get(index)
    }

    /// All members, in index order.
    pub fn members(&self) -> &[Addr<M>] {
        &self.inner.members
    }

    fn next_member(&self) -> Result<&Addr<M>, CallError> {
        if self.inner.members.is_empty() {
            return Err(CallError::NotFound {
                target: format!("{} (empty pool)", self.inner.name),
            });
        }
        let i = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.members.len();
        Ok(&self.inner.members[i])
    }

    /// Casts to the next member in round-robin order.
    ///
    /// # Errors
    /// As [`Addr::cast`]; `NotFound` for an empty pool.
    pub fn cast_next(&self, msg: M) -> Result<(), CallError> {
        self.next_member()?.cast(msg)
    }

    /// Calls the next member in round-robin order.
    ///
    /// # Errors
    /// As [`Addr::call`]; `NotFound` for an empty pool.
    ///
    /// # Cancel safety
    /// As [`Addr::call`]. The round-robin turn is taken when the future is first polled,
    /// whether or not the call then completes.
    pub async fn call_next<R: ReplyValue>(
        &self,
        make: impl FnOnce(Reply<R>) -> M,
        timeout: Duration,
    ) -> Result<R, CallError> {
        self.next_member()?.call(make, timeout).await
    }

    /// Casts `make()` to every member; one result per member, in index order.
    pub fn cast_all(&self, make: impl Fn() -> M) -> Vec<Result<(), CallError>> {
        self.inner.members.iter().map(|m| m.cast(make())).collect()
    }

    /// Calls every member concurrently with the request `make` builds for each; one result
    /// per member, in index order, all within `timeout`.
    ///
    /// # Cancel safety
    /// Dropping the future abandons every call still waiting, each as [`Addr::call`]: members
    /// that have their request may still handle it, and their answers are discarded.
    pub async fn call_all<R: ReplyValue>(
        &self,
        make: impl Fn(Reply<R>) -> M,
        timeout: Duration,
    ) -> Vec<Result<R, CallError>> {
        let calls = self.inner.members.iter().map(|m| m.call(&make, timeout));
        futures::future::join_all(calls).await
    }
}
