//! [`QueueClient`]: a typed handle to one queue, from any node
//!
//! Every method is one call to the [`QueueActor`](crate::QueueActor) through its
//! restart-proof [`Addr`], with the client's per-call deadline (5 s unless
//! [`QueueClient::with_timeout`] says otherwise). A client never retries: an operation whose
//! call failed ([`QueueError::Call`]) may or may not have taken effect, and the queue's
//! at-least-once delivery is what makes a resent enqueue or a late ack safe to reason about.
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo(queue: troupe_queue::QueueClient) -> Result<(), troupe_queue::QueueError> {
//! use troupe_queue::Consumer;
//!
//! let id = queue.enqueue("resize image 42").await?;
//! let worker = Consumer::new("app", 1);
//! if let Some(job) = queue.take(&worker).await? {
//!     // ... do the work, then:
//!     queue.ack(&worker, job.item).await?;
//! }
//! # let _ = id;
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use bytes::Bytes;
use troupe_runtime::{Addr, CallError};

use crate::actor::{DeadInfo, LeaseInfo, QueueFailure, QueueMsg, StatsInfo};
use crate::core::{ConsumerId, ItemId};

/// How long a [`QueueClient`] waits for each answer unless set with
/// [`QueueClient::with_timeout`]
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Who takes items: an id unique across the cluster, and the node the consumer runs on
///
/// The queue releases every lease of a consumer whose node is reported down (`Down` or
/// `Left`), so its items go to another consumer at once instead of when the lease runs out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Consumer {
    node: String,
    id: ConsumerId,
}

impl Consumer {
    /// Consumer `id` running on node `node` (the node's name, as in
    /// [`Node::name`](troupe_runtime::Node::name))
    pub fn new(node: impl Into<String>, id: u64) -> Self {
        Self {
            node: node.into(),
            id: ConsumerId(id),
        }
    }

    /// The node it runs on
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Its id
    pub fn id(&self) -> ConsumerId {
        self.id
    }
}

/// Why a queue operation failed
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The queue answered and refused the operation (full, too large, not leased, not a dead
    /// letter, storage failure)
    #[error(transparent)]
    Refused(#[from] QueueFailure),
    /// The call got no answer: the queue was unreachable, overloaded, restarting or too slow
    /// for the client's deadline. The operation may or may not have taken effect.
    #[error("the call to the queue failed")]
    Call(#[from] CallError),
}

/// A typed handle to one queue; see the [module docs](self)
///
/// Cheap to clone (one handle and a deadline); clones reach the same queue, on whichever
/// node it runs, across restarts of its actor.
#[derive(Debug, Clone)]
pub struct QueueClient {
    queue: Addr<QueueMsg>,
    timeout: Duration,
}

impl From<Addr<QueueMsg>> for QueueClient {
    fn from(queue: Addr<QueueMsg>) -> Self {
        Self::new(queue)
    }
}

impl QueueClient {
    /// A client for the queue actor `queue` (the handle a topology or
    /// [`Node::child`](troupe_runtime::Node::child) gave for a [`QueueSpec`](crate::QueueSpec)'s
    /// factory, or `node.addr(node_name, name)`), waiting [`DEFAULT_TIMEOUT`] per call
    pub fn new(queue: Addr<QueueMsg>) -> Self {
        Self {
            queue,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A copy of this client that waits up to `timeout` for each answer
    #[must_use]
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            queue: self.queue.clone(),
            timeout,
        }
    }

    /// How long each call waits for its answer
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The queue actor's handle
    pub fn addr(&self) -> &Addr<QueueMsg> {
        &self.queue
    }

    /// Adds `payload` at the tail of the line and returns its id
    ///
    /// `Ok` means the item is in the queue, and for a durable queue committed to disk: it
    /// survives a crash of the queue's process. Ids increase in enqueue order.
    ///
    /// # Errors
    ///
    /// - [`QueueError::Refused`] with [`QueueFailure::Full`] (back off and retry),
    ///   [`QueueFailure::TooLarge`], or [`QueueFailure::Storage`];
    /// - [`QueueError::Call`] if no answer came: the item may have been enqueued.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the call; the item may still be enqueued.
    pub async fn enqueue(&self, payload: impl Into<Bytes>) -> Result<ItemId, QueueError> {
        let payload = payload.into();
        let answer = self
            .queue
            .call(|reply| QueueMsg::Enqueue { payload, reply }, self.timeout)
            .await?;
        Ok(answer?)
    }

    /// Leases the head of the line to `consumer` for the queue's configured lease; `None` if
    /// no item is ready (this does not wait for one)
    ///
    /// `Ok(Some(_))` means the item is hidden from other consumers until it is acked, nacked,
    /// the lease runs out, or the consumer's node is reported down; it is then delivered
    /// again (at least once). Items come in enqueue order, with failed deliveries first.
    ///
    /// # Errors
    ///
    /// - [`QueueError::Refused`] with [`QueueFailure::Storage`];
    /// - [`QueueError::Call`] if no answer came: an item may have been leased, and is
    ///   delivered again once its lease runs out.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the call. The queue does not lease to a caller it knows
    /// has gone, which it can tell only for a call that did not cross the network; otherwise
    /// (a caller on another node, or an item leased just before the caller went) the item is
    /// hidden until its lease runs out, and then delivered again.
    pub async fn take(&self, consumer: &Consumer) -> Result<Option<LeaseInfo>, QueueError> {
        self.take_leased(consumer, None).await
    }

    /// As [`QueueClient::take`], with a lease of `lease` (at most
    /// [`MAX_LEASE`](crate::core::MAX_LEASE)) instead of the configured one
    ///
    /// # Errors
    ///
    /// As [`QueueClient::take`].
    ///
    /// # Cancel safety
    ///
    /// As [`QueueClient::take`].
    pub async fn take_with_lease(
        &self,
        consumer: &Consumer,
        lease: Duration,
    ) -> Result<Option<LeaseInfo>, QueueError> {
        self.take_leased(consumer, Some(lease)).await
    }

    async fn take_leased(
        &self,
        consumer: &Consumer,
        lease: Option<Duration>,
    ) -> Result<Option<LeaseInfo>, QueueError> {
        let consumer_node = consumer.node.clone();
        let consumer = consumer.id;
        let answer = self
            .queue
            .call(
                |reply| QueueMsg::Take {
                    consumer_node,
                    consumer,
                    lease,
                    reply,
                },
                self.timeout,
            )
            .await?;
        Ok(answer?)
    }

    /// Removes `item`, leased to `consumer`, for good
    ///
    /// `Ok` means it is never delivered again (durable queue: removed on disk).
    ///
    /// # Errors
    ///
    /// - [`QueueError::Refused`] with [`QueueFailure::NotLeased`] if the item is not leased
    ///   to `consumer` any more (its lease ran out, it was released, or acked before): it
    ///   may be delivered to someone else; or [`QueueFailure::Storage`];
    /// - [`QueueError::Call`] if no answer came: the ack may have taken effect.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the call; the ack may still take effect.
    pub async fn ack(&self, consumer: &Consumer, item: ItemId) -> Result<(), QueueError> {
        let consumer = consumer.id;
        let answer = self
            .queue
            .call(
                |reply| QueueMsg::Ack {
                    item,
                    consumer,
                    reply,
                },
                self.timeout,
            )
            .await?;
        Ok(answer?)
    }

    /// Gives `item`, leased to `consumer`, back: it is delivered again ahead of every item
    /// never delivered, or becomes a dead letter if that was its last attempt
    ///
    /// # Errors
    ///
    /// As [`QueueClient::ack`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the call; the nack may still take effect.
    pub async fn nack(&self, consumer: &Consumer, item: ItemId) -> Result<(), QueueError> {
        self.nack_with(consumer, item, None).await
    }

    /// As [`QueueClient::nack`], keeping `error` with the item (cut to
    /// [`MAX_ERROR_LEN`](crate::core::MAX_ERROR_LEN) bytes): a dead letter shows it as its
    /// reason
    ///
    /// # Errors
    ///
    /// As [`QueueClient::ack`].
    ///
    /// # Cancel safety
    ///
    /// As [`QueueClient::nack`].
    pub async fn nack_with_error(
        &self,
        consumer: &Consumer,
        item: ItemId,
        error: impl Into<String>,
    ) -> Result<(), QueueError> {
        self.nack_with(consumer, item, Some(error.into())).await
    }

    async fn nack_with(
        &self,
        consumer: &Consumer,
        item: ItemId,
        error: Option<String>,
    ) -> Result<(), QueueError> {
        let consumer = consumer.id;
        let answer = self
            .queue
            .call(
                |reply| QueueMsg::Nack {
                    item,
                    consumer,
                    error,
                    reply,
                },
                self.timeout,
            )
            .await?;
        Ok(answer?)
    }

    /// The queue's counts now (a view: it changes nothing, and does not expire leases)
    ///
    /// # Errors
    ///
    /// [`QueueError::Call`] if no answer came.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the call changes nothing.
    pub async fn stats(&self) -> Result<StatsInfo, QueueError> {
        Ok(self.queue.call(QueueMsg::Stats, self.timeout).await?)
    }

    /// The dead letters (items that failed their last attempt), oldest first
    ///
    /// # Errors
    ///
    /// [`QueueError::Call`] if no answer came.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the call changes nothing.
    pub async fn dead_letters(&self) -> Result<Vec<DeadInfo>, QueueError> {
        Ok(self.queue.call(QueueMsg::DeadLetters, self.timeout).await?)
    }

    /// Puts dead letter `item` back at the tail of the line, with its attempts reset
    ///
    /// # Errors
    ///
    /// - [`QueueError::Refused`] with [`QueueFailure::NotDead`] if it is not a dead letter,
    ///   [`QueueFailure::Full`] if the queue is full, or [`QueueFailure::Storage`];
    /// - [`QueueError::Call`] if no answer came: the replay may have taken effect.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the call; the replay may still take effect.
    pub async fn replay(&self, item: ItemId) -> Result<(), QueueError> {
        let answer = self
            .queue
            .call(|reply| QueueMsg::Replay { item, reply }, self.timeout)
            .await?;
        Ok(answer?)
    }

    /// Drops dead letter `item` for good and returns it
    ///
    /// # Errors
    ///
    /// - [`QueueError::Refused`] with [`QueueFailure::NotDead`] if it is not a dead letter,
    ///   or [`QueueFailure::Storage`];
    /// - [`QueueError::Call`] if no answer came: the letter may have been dropped.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future abandons the call; the letter may still be dropped.
    pub async fn drop_dead_letter(&self, item: ItemId) -> Result<DeadInfo, QueueError> {
        let answer = self
            .queue
            .call(|reply| QueueMsg::DropDead { item, reply }, self.timeout)
            .await?;
        Ok(answer?)
    }
}
