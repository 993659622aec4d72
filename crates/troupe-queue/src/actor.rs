//! [`QueueActor`]: the supervised actor that owns one [`Queue`]
//!
//! A thin shell: it reads the clock once per message, applies the operation to its queue and,
//! in durable mode, writes the call's events to its [`Storage`] before answering. Two modes,
//! chosen by [`QueueSpec`]:
//!
//! - [`QueueSpec::in_memory`]: fast; a crash or restart loses every item.
//! - [`QueueSpec::durable`]: every enqueue is committed to a redb file before it is
//!   acknowledged, and every ack before it is answered; a restarted instance (after a crash,
//!   `kill -9` of the process, or a supervisor restart) reopens the file and gets every
//!   acknowledged item not acked back, ready, with leases released (at least once).
//!
//! A failed write crashes the actor after answering [`QueueFailure::Storage`], so its
//! supervisor restarts it from what the file holds.
//!
//! Leases expire on a tick every [`TICK`] (a timer on the actor's context, so a restarted
//! instance never runs two); a consumer node reported down (`Down` or `Left`) has the leases
//! of every consumer that took from it released at once (a task on the context watches the
//! node's cluster events).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use troupe_runtime::remote::NodeEvent;
use troupe_runtime::{Actor, ActorError, Ctx, Message, Reply};

use crate::core::{
    ConsumerId, DeadLetter, FailReason, ItemId, MAX_LEASE, Queue, QueueConfig, QueueError,
    QueueStats,
};
use crate::storage::{Storage, drain};
use troupe_store::{Degraded, Reopen, StoreError, StoreFault};

/// How often a queue actor expires leases
pub const TICK: Duration = Duration::from_millis(50);

/// What a [`QueueActor`] handles
///
/// Each request carries the port for its own answer; callers normally use
/// [`QueueClient`](crate::QueueClient), which builds these. `Tick` and `NodeDown` are the
/// actor's own messages.
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "troupe.queue.Queue")]
pub enum QueueMsg {
    /// Add an item at the tail → its id once it is stored (durable mode: committed to disk),
    /// or [`QueueFailure::Full`] / [`QueueFailure::TooLarge`]
    Enqueue {
        /// The item
        payload: Bytes,
        /// Where the answer goes
        reply: Reply<Result<ItemId, QueueFailure>>,
    },
    /// Lease the head of the line → the delivery, or `None` if no item is ready
    Take {
        /// The node the consumer runs on: its leases are released when it is reported down
        consumer_node: String,
        /// The consumer, unique across nodes
        consumer: ConsumerId,
        /// How long the lease lasts; `None` for the configured one (at most [`MAX_LEASE`])
        lease: Option<Duration>,
        /// Where the answer goes
        reply: Reply<Result<Option<LeaseInfo>, QueueFailure>>,
    },
    /// Remove a leased item for good (durable mode: answered once removed on disk), or
    /// [`QueueFailure::NotLeased`]
    Ack {
        /// The item
        item: ItemId,
        /// The consumer holding it
        consumer: ConsumerId,
        /// Where the answer goes
        reply: Reply<Result<(), QueueFailure>>,
    },
    /// Give a leased item back, or [`QueueFailure::NotLeased`]
    Nack {
        /// The item
        item: ItemId,
        /// The consumer holding it
        consumer: ConsumerId,
        /// What went wrong, kept with the item
        error: Option<String>,
        /// Where the answer goes
        reply: Reply<Result<(), QueueFailure>>,
    },
    /// The dead letters, oldest first
    DeadLetters(Reply<Vec<DeadInfo>>),
    /// Put a dead letter back at the tail (attempts reset), or [`QueueFailure::NotDead`] /
    /// [`QueueFailure::Full`]
    Replay {
        /// The item
        item: ItemId,
        /// Where the answer goes
        reply: Reply<Result<(), QueueFailure>>,
    },
    /// Drop a dead letter for good → the letter dropped, or [`QueueFailure::NotDead`]
    DropDead {
        /// The item
        item: ItemId,
        /// Where the answer goes
        reply: Reply<Result<DeadInfo, QueueFailure>>,
    },
    /// The queue's counts
    Stats(Reply<StatsInfo>),
    /// Expire due leases (the actor sends this to itself every [`TICK`])
    // self-message: never crosses the wire
    #[serde(skip)]
    Tick,
    /// Release every lease of consumers on `node` (the actor sends this to itself when the
    /// node is reported down)
    // self-message: never crosses the wire
    #[serde(skip)]
    NodeDown {
        /// The node
        node: String,
    },
}

/// One delivery: what a take answers
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// The item: ack or nack it by this id
    pub item: ItemId,
    /// Its payload
    pub payload: Bytes,
    /// Which delivery this is: 1 on the first
    pub attempt: u32,
    /// How long the lease lasts from when it was granted
    pub lease: Duration,
}

/// A dead letter, as [`QueueMsg::DeadLetters`] lists it
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadInfo {
    /// The item
    pub item: ItemId,
    /// Its payload
    pub payload: Bytes,
    /// Deliveries it got
    pub attempts: u32,
    /// Why the last one failed, as text
    pub reason: String,
}

impl From<DeadLetter> for DeadInfo {
    fn from(dead: DeadLetter) -> Self {
        let reason = match dead.reason {
            FailReason::Nacked { error: Some(e) } => format!("nacked: {e}"),
            FailReason::Nacked { error: None } => "nacked".into(),
            FailReason::Expired => "lease expired".into(),
            FailReason::ConsumerDown => "consumer down".into(),
            FailReason::Restarted => "queue restarted".into(),
        };
        Self {
            item: dead.item,
            payload: dead.payload,
            attempts: dead.attempts,
            reason,
        }
    }
}

/// A queue's counts, as [`QueueMsg::Stats`] answers them
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatsInfo {
    /// Items waiting for a consumer
    pub ready: u64,
    /// Items leased
    pub leased: u64,
    /// Dead letters
    pub dead: u64,
    /// Items enqueued since this instance started
    pub enqueued: u64,
    /// Items acked since this instance started
    pub acked: u64,
    /// Redeliveries since this instance started
    pub redelivered: u64,
}

impl From<QueueStats> for StatsInfo {
    fn from(stats: QueueStats) -> Self {
        Self {
            ready: stats.ready as u64,
            leased: stats.leased as u64,
            dead: stats.dead as u64,
            enqueued: stats.totals.enqueued,
            acked: stats.totals.acked,
            redelivered: stats.totals.redelivered,
        }
    }
}

/// The queue's metrics, labelled `queue`: gauges for the items ready, leased and dead, counters
/// for those enqueued, acked and redelivered since the instance started (a restart starts them
/// again, as a process restart would). Registered once per instance; set every tick, so a
/// scrape sees them at most one tick old.
struct QueueMetrics {
    ready: metrics::Gauge,
    leased: metrics::Gauge,
    dead: metrics::Gauge,
    enqueued: metrics::Counter,
    acked: metrics::Counter,
    redelivered: metrics::Counter,
}

impl QueueMetrics {
    fn new(queue: &str) -> Self {
        let labels = [("queue", queue.to_string())];
        Self {
            ready: metrics::gauge!("troupe_queue_ready_items", &labels),
            leased: metrics::gauge!("troupe_queue_leased_items", &labels),
            dead: metrics::gauge!("troupe_queue_dead_letters", &labels),
            enqueued: metrics::counter!("troupe_queue_enqueued_total", &labels),
            acked: metrics::counter!("troupe_queue_acked_total", &labels),
            redelivered: metrics::counter!("troupe_queue_redelivered_total", &labels),
        }
    }

    fn publish(&self, stats: StatsInfo) {
        self.ready.set(stats.ready as f64);
        self.leased.set(stats.leased as f64);
        self.dead.set(stats.dead as f64);
        self.enqueued.absolute(stats.enqueued);
        self.acked.absolute(stats.acked);
        self.redelivered.absolute(stats.redelivered);
    }
}

/// Why a [`QueueActor`] refused an operation (what travels back to the caller)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum QueueFailure {
    /// The queue holds `capacity` items ready or leased: back off and retry
    #[error("queue full: {capacity} items ready or leased")]
    Full {
        /// The configured capacity
        capacity: u64,
    },
    /// The payload is larger than the limit
    #[error("item of {len} bytes is larger than the limit of {max}")]
    TooLarge {
        /// The payload length
        len: u64,
        /// The limit
        max: u64,
    },
    /// The item is not leased to this consumer (acked, expired, released, or another's)
    #[error("item {} is not leased to consumer {}", .item.0, .consumer.0)]
    NotLeased {
        /// The item
        item: ItemId,
        /// The consumer
        consumer: ConsumerId,
    },
    /// The item is not a dead letter
    #[error("item {} is not a dead letter", .item.0)]
    NotDead {
        /// The item
        item: ItemId,
    },
    /// Durable mode: a write failed (a full disk, a failing device). The operation that hit it
    /// may not have taken effect; until the queue's file reopens (tried with a growing pause,
    /// up to 5 s) writes get this error too, while stats and dead letters are still served.
    /// Once it reopens, the queue is what the file holds: every acknowledged write.
    #[error("queue storage failed: {0}")]
    Storage(StoreFault),
}

impl From<QueueError> for QueueFailure {
    fn from(err: QueueError) -> Self {
        match err {
            QueueError::Full { capacity } => Self::Full {
                capacity: capacity as u64,
            },
            QueueError::TooLarge { len, max } => Self::TooLarge {
                len: len as u64,
                max: max as u64,
            },
            QueueError::NotLeased { item, consumer } => Self::NotLeased { item, consumer },
            QueueError::NotDead { item } => Self::NotDead { item },
        }
    }
}

/// How to build [`QueueActor`]s: which mode, which limits
///
/// What a topology places: `QueueSpec::durable("jobs.redb").capacity(50_000)`; every
/// (re)start of the actor gets a fresh [`QueueActor`] from [`QueueSpec::factory`], and a
/// [`QueueClient`](crate::QueueClient) built on the actor's handle reaches it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use troupe_queue::QueueSpec;
///
/// let spec = QueueSpec::durable("./jobs.redb")
///     .capacity(50_000)
///     .lease(Duration::from_secs(10))
///     .max_attempts(3);
/// assert_eq!(spec.queue_config().capacity, 50_000);
/// assert!(spec.path().is_some());
/// ```
#[derive(Debug, Clone)]
pub struct QueueSpec {
    config: QueueConfig,
    path: Option<PathBuf>,
}

impl QueueSpec {
    /// A queue held in memory only, with [`QueueConfig::default`] limits: fast, and a crash
    /// or restart loses every item
    pub fn in_memory() -> Self {
        Self {
            config: QueueConfig::default(),
            path: None,
        }
    }

    /// A queue stored in the redb file at `path` (created if missing), with
    /// [`QueueConfig::default`] limits: enqueues and acks are on disk before they are
    /// answered, and a restarted actor reopens the file
    pub fn durable(path: impl Into<PathBuf>) -> Self {
        Self {
            config: QueueConfig::default(),
            path: Some(path.into()),
        }
    }

    /// The same queue with all of these limits
    ///
    /// # Panics
    ///
    /// If `config.max_attempts` is 0, or `config.lease` is zero or longer than [`MAX_LEASE`]
    /// (as [`Queue::new`]).
    #[must_use]
    pub fn config(mut self, config: QueueConfig) -> Self {
        check(&config);
        self.config = config;
        self
    }

    /// The most items ready or leased at once; enqueues beyond it are refused
    /// ([`QueueFailure::Full`]). Default 10,000.
    #[must_use]
    pub fn capacity(mut self, items: usize) -> Self {
        self.config.capacity = items;
        self
    }

    /// Deliveries an item gets before it becomes a dead letter. Default 5.
    ///
    /// # Panics
    ///
    /// If `attempts` is 0.
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.max_attempts = attempts;
        check(&self.config);
        self
    }

    /// The lease a take gets when it asks for none. Default 30 s.
    ///
    /// # Panics
    ///
    /// If `lease` is zero or longer than [`MAX_LEASE`].
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        check(&self.config);
        self
    }

    /// The largest payload accepted, in bytes ([`QueueFailure::TooLarge`] beyond). Default
    /// 1 MiB.
    #[must_use]
    pub fn max_item_bytes(mut self, bytes: usize) -> Self {
        self.config.max_item_bytes = bytes;
        self
    }

    /// The most dead letters kept; the oldest is dropped for a new one at the limit.
    /// Default 1,000.
    #[must_use]
    pub fn dead_letter_capacity(mut self, letters: usize) -> Self {
        self.config.dlq_capacity = letters;
        self
    }

    /// The limits the queue runs with
    pub fn queue_config(&self) -> &QueueConfig {
        &self.config
    }

    /// The file of a durable queue; `None` for one in memory
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// A factory for [`Node::child`](troupe_runtime::Node::child) or a topology: every
    /// (re)start gets a fresh actor, which in durable mode opens the file when it starts
    pub fn factory(&self) -> impl Fn() -> QueueActor + Send + Sync + 'static {
        let spec = self.clone();
        move || QueueActor::new(spec.clone())
    }
}

/// Asserts what [`Queue::new`] asserts, where a spec is written rather than where it starts
fn check(config: &QueueConfig) {
    assert!(config.max_attempts > 0, "max_attempts must be at least 1");
    assert!(!config.lease.is_zero(), "lease must be longer than zero");
    assert!(config.lease <= MAX_LEASE, "lease must be at most MAX_LEASE");
}

/// The supervised actor owning one queue; see the [module docs](self)
pub struct QueueActor {
    spec: QueueSpec,
    queue: Queue,
    storage: Option<Storage>,
    /// Consumer → the node it took from, for releasing on node down
    consumers: HashMap<ConsumerId, String>,
    /// Durable mode after a failed write (a full disk, a failing device). The in-memory state
    /// may be ahead of the file, so writes are refused; reads are served from that state, and
    /// the file is reopened (restoring the state it holds) with a growing pause.
    degraded: Option<Degraded>,
    /// Registered when the instance starts (its name labels them)
    metrics: Option<QueueMetrics>,
}

impl QueueActor {
    /// An actor for `spec`; durable mode opens its file in [`Actor::started`]
    pub fn new(spec: QueueSpec) -> Self {
        Self {
            queue: Queue::new(spec.config.clone()),
            spec,
            storage: None,
            consumers: HashMap::new(),
            degraded: None,
            metrics: None,
        }
    }

    /// While degraded, answers a write with the storage failure and returns `None`; otherwise
    /// hands the reply port back.
    fn writable<T>(
        &self,
        reply: Reply<Result<T, QueueFailure>>,
    ) -> Option<Reply<Result<T, QueueFailure>>> {
        match &self.degraded {
            Some(degraded) => {
                reply.send(Err(QueueFailure::Storage(degraded.fault().clone())));
                None
            }
            None => Some(reply),
        }
    }

    /// A write failed: stop taking writes, keep serving reads, reopen the file later.
    fn degrade(&mut self, err: &StoreError, now: Instant) {
        tracing::error!(cause = %err, "queue storage failed; refusing writes until the file reopens");
        self.storage = None;
        self.degraded = Some(Degraded::new(err, now));
    }

    /// While degraded, tries to reopen the file once its pause is over; on success the queue is
    /// what the file holds (every write acknowledged) and takes writes again.
    fn try_recover(&mut self, now: Instant) {
        let (Some(degraded), Some(path)) = (&mut self.degraded, &self.spec.path) else {
            return;
        };
        if !degraded.reopen_due(now) {
            return;
        }
        match Storage::open(path, self.spec.config.clone()) {
            Ok((storage, queue)) => {
                tracing::info!("queue storage reopened; taking writes again");
                self.storage = Some(storage);
                self.queue = queue;
                self.consumers.clear();
                self.degraded = None;
            }
            Err(err) => {
                tracing::debug!(cause = %err, "queue storage still failing");
                degraded.reopen_failed(&err, now);
            }
        }
    }

    /// Writes what a timer or an event changed; a failed write degrades the queue.
    fn persist_or_degrade(&mut self, now: Instant) {
        if let Err(err) = self.persist() {
            self.degrade(&err, now);
        }
    }

    /// Writes the events of the operation just applied (durable mode)
    fn persist(&mut self) -> Result<(), StoreError> {
        let events = drain(&mut self.queue);
        match &self.storage {
            Some(storage) if !events.is_empty() => storage.commit(&events),
            _ => Ok(()),
        }
    }

    /// Persists the operation just applied, then answers it with `result`; a failed write
    /// answers [`QueueFailure::Storage`] instead and degrades the queue (no writes until its
    /// file reopens, reads still served)
    fn finish<T>(
        &mut self,
        reply: Reply<Result<T, QueueFailure>>,
        result: Result<T, QueueError>,
    ) -> Result<(), ActorError> {
        match self.persist() {
            Ok(()) => reply.send(result.map_err(QueueFailure::from)),
            Err(err) => {
                reply.send(Err(QueueFailure::Storage(StoreFault::from(&err))));
                self.degrade(&err, troupe_runtime::time::now());
                true
            }
        };
        Ok(())
    }

    fn take(
        &mut self,
        consumer_node: String,
        consumer: ConsumerId,
        lease: Option<Duration>,
        now: Instant,
    ) -> Option<LeaseInfo> {
        let lease = self.queue.take(consumer, now, lease)?;
        self.consumers.insert(consumer, consumer_node);
        Some(LeaseInfo {
            item: lease.item,
            payload: lease.payload,
            attempt: lease.attempt,
            lease: lease.deadline.saturating_duration_since(now),
        })
    }

    fn node_down(&mut self, node: &str, now: Instant) {
        let gone: Vec<ConsumerId> = self
            .consumers
            .iter()
            .filter(|(_, n)| *n == node)
            .map(|(c, _)| *c)
            .collect();
        for consumer in gone {
            self.consumers.remove(&consumer);
            self.queue.release_consumer(consumer, now);
        }
    }
}

impl Actor for QueueActor {
    type Msg = QueueMsg;

    async fn started(&mut self, ctx: &mut Ctx<QueueMsg>) -> Result<(), ActorError> {
        if let Some(path) = self.spec.path.clone() {
            // A restart may find the crashed predecessor's handle on the file not yet dropped.
            let (storage, queue) =
                Storage::open_when_released(path, self.spec.config.clone(), Reopen::default())
                    .await?;
            self.storage = Some(storage);
            self.queue = queue;
        }
        self.metrics = Some(QueueMetrics::new(ctx.name()));
        ctx.send_interval(TICK, || QueueMsg::Tick);
        let mut events = ctx.node().cluster_events();
        let me = ctx.myself().clone();
        ctx.spawn(async move {
            loop {
                match events.recv().await {
                    Ok(NodeEvent::Down { node, .. } | NodeEvent::Left { node }) => {
                        // A full mailbox drops it: the leases then expire as usual.
                        let _ = me.cast(QueueMsg::NodeDown { node });
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return Ok(()),
                }
            }
        });
        Ok(())
    }

    async fn handle(&mut self, msg: QueueMsg, _ctx: &mut Ctx<QueueMsg>) -> Result<(), ActorError> {
        let now = troupe_runtime::time::now();
        match msg {
            QueueMsg::Enqueue { payload, reply } => {
                let Some(reply) = self.writable(reply) else {
                    return Ok(());
                };
                let result = self.queue.enqueue(payload, now);
                self.finish(reply, result)
            }
            QueueMsg::Take {
                consumer_node,
                consumer,
                lease,
                reply,
            } => {
                if !reply.is_waiting() {
                    // The caller gave up: a lease now would hide the item from everyone.
                    return Ok(());
                }
                let Some(reply) = self.writable(reply) else {
                    return Ok(());
                };
                let lease = self.take(consumer_node, consumer, lease, now);
                self.finish(reply, Ok(lease))
            }
            QueueMsg::Ack {
                item,
                consumer,
                reply,
            } => {
                let Some(reply) = self.writable(reply) else {
                    return Ok(());
                };
                let result = self.queue.ack(item, consumer);
                self.finish(reply, result)
            }
            QueueMsg::Nack {
                item,
                consumer,
                error,
                reply,
            } => {
                let Some(reply) = self.writable(reply) else {
                    return Ok(());
                };
                let result = match error {
                    Some(text) => self.queue.nack_with_error(item, consumer, &text, now),
                    None => self.queue.nack(item, consumer, now),
                };
                self.finish(reply, result)
            }
            QueueMsg::DeadLetters(reply) => {
                let dead = self.queue.dead_letters();
                reply.send(dead.into_iter().map(DeadInfo::from).collect());
                Ok(())
            }
            QueueMsg::Replay { item, reply } => {
                let Some(reply) = self.writable(reply) else {
                    return Ok(());
                };
                let result = self.queue.replay_dead_letter(item, now);
                self.finish(reply, result)
            }
            QueueMsg::DropDead { item, reply } => {
                let Some(reply) = self.writable(reply) else {
                    return Ok(());
                };
                let result = self.queue.drop_dead_letter(item).map(DeadInfo::from);
                self.finish(reply, result)
            }
            QueueMsg::Stats(reply) => {
                reply.send(self.queue.stats().into());
                Ok(())
            }
            QueueMsg::Tick => {
                if let Some(metrics) = &self.metrics {
                    metrics.publish(self.queue.stats().into());
                }
                if self.degraded.is_some() {
                    self.try_recover(now);
                    return Ok(());
                }
                self.queue.expire(now);
                self.persist_or_degrade(now);
                Ok(())
            }
            QueueMsg::NodeDown { node } => {
                // degraded, the release is lost with the in-memory state when the file reopens:
                // those leases then expire as usual
                self.node_down(&node, now);
                self.persist_or_degrade(now);
                Ok(())
            }
        }
    }

    async fn stopped(&mut self, _ctx: &mut Ctx<QueueMsg>) -> Result<(), ActorError> {
        self.storage = None;
        Ok(())
    }
}
