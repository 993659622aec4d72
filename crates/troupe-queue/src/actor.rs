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
//! Leases expire on a tick every [`TICK`]; a consumer node reported down (`Down` or `Left`)
//! has the leases of every consumer that took from it released at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use troupe_runtime::remote::NodeEvent;
use troupe_runtime::{Actor, ActorError, Ctx, Message, ReplyTo, TaskGuard};

use crate::core::{
    ConsumerId, DeadLetter, FailReason, ItemId, Queue, QueueConfig, QueueError, QueueStats,
};
use crate::storage::{Storage, drain};
use troupe_store::{Reopen, StoreError, StoreFault};

/// How often a queue actor expires leases
pub const TICK: Duration = Duration::from_millis(50);

/// What a [`QueueActor`] handles
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueMsg {
    /// Add an item at the tail → [`QueueReply::Enqueued`] once it is stored (durable mode:
    /// committed to disk), or [`QueueReply::Error`] ([`QueueFailure::Full`],
    /// [`QueueFailure::TooLarge`])
    Enqueue {
        /// The item
        payload: Bytes,
    },
    /// Lease the head of the line → [`QueueReply::Lease`] or [`QueueReply::Empty`]
    Take {
        /// The node the consumer runs on: its leases are released when it is reported down
        consumer_node: String,
        /// The consumer, unique across nodes
        consumer: u64,
        /// The lease in milliseconds; `None` for the configured one
        lease_ms: Option<u64>,
    },
    /// Remove a leased item for good → [`QueueReply::Done`] (durable mode: once removed on
    /// disk) or [`QueueFailure::NotLeased`]
    Ack {
        /// The item
        item: u64,
        /// The consumer holding it
        consumer: u64,
    },
    /// Give a leased item back → [`QueueReply::Done`] or [`QueueFailure::NotLeased`]
    Nack {
        /// The item
        item: u64,
        /// The consumer holding it
        consumer: u64,
        /// What went wrong, kept with the item
        error: Option<String>,
    },
    /// → [`QueueReply::DeadLetters`], oldest first
    DeadLetters,
    /// Put a dead letter back at the tail → [`QueueReply::Done`], [`QueueFailure::NotDead`] or
    /// [`QueueFailure::Full`]
    Replay {
        /// The item
        item: u64,
    },
    /// → [`QueueReply::Stats`]
    Stats,
    /// Expire due leases (the actor casts this to itself every [`TICK`]) → [`QueueReply::Done`]
    Tick,
    /// Release every lease of consumers on `node` (the actor casts this to itself when the
    /// node is reported down) → [`QueueReply::Done`]
    NodeDown {
        /// The node
        node: String,
    },
}

/// One delivery, as [`QueueReply::Lease`] carries it
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// The item: ack or nack it by this id
    pub item: u64,
    /// Its payload
    pub payload: Bytes,
    /// Which delivery this is: 1 on the first
    pub attempt: u32,
    /// How long the lease lasts from when it was granted, in milliseconds
    pub lease_ms: u64,
}

/// A dead letter, as [`QueueReply::DeadLetters`] carries it
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadInfo {
    /// The item
    pub item: u64,
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
            item: dead.item.0,
            payload: dead.payload,
            attempts: dead.attempts,
            reason,
        }
    }
}

/// A queue's counts, as [`QueueReply::Stats`] carries them
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

/// Why a [`QueueActor`] refused an operation
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
    #[error("item {item} is not leased to consumer {consumer}")]
    NotLeased {
        /// The item
        item: u64,
        /// The consumer
        consumer: u64,
    },
    /// The item is not a dead letter
    #[error("item {item} is not a dead letter")]
    NotDead {
        /// The item
        item: u64,
    },
    /// Durable mode: the write failed; the operation may not have taken effect and the queue
    /// restarts from its file. The typed error, with its cause, is in the queue's log.
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
            QueueError::NotLeased { item, consumer } => Self::NotLeased {
                item: item.0,
                consumer: consumer.0,
            },
            QueueError::NotDead { item } => Self::NotDead { item: item.0 },
        }
    }
}

/// What a [`QueueActor`] answers
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueReply {
    /// The item is in the queue (durable mode: on disk) with this id
    Enqueued(u64),
    /// A delivery
    Lease(LeaseInfo),
    /// No item is ready
    Empty,
    /// Done
    Done,
    /// Dead letters, oldest first
    DeadLetters(Vec<DeadInfo>),
    /// Counts
    Stats(StatsInfo),
    /// Refused
    Error(QueueFailure),
}

impl Message for QueueMsg {
    const NAME: &'static str = "troupe.queue.Queue";
    type Reply = QueueReply;
}

/// How to build [`QueueActor`]s: which mode, which limits
#[derive(Debug, Clone)]
pub struct QueueSpec {
    config: QueueConfig,
    path: Option<PathBuf>,
}

impl QueueSpec {
    /// A queue held in memory only: fast, and a crash or restart loses every item
    pub fn in_memory(config: QueueConfig) -> Self {
        Self { config, path: None }
    }

    /// A queue stored in the redb file at `path` (created if missing): enqueues and acks are
    /// on disk before they are answered, and a restarted actor reopens the file
    pub fn durable(path: impl Into<PathBuf>, config: QueueConfig) -> Self {
        Self {
            config,
            path: Some(path.into()),
        }
    }

    /// A factory for [`Node::child`](troupe_runtime::Node::child): every (re)start gets a
    /// fresh actor, which in durable mode opens the file when it starts
    pub fn factory(&self) -> impl Fn() -> QueueActor + Send + Sync + 'static {
        let spec = self.clone();
        move || QueueActor::new(spec.clone())
    }
}

/// The supervised actor owning one queue; see the [module docs](self)
pub struct QueueActor {
    spec: QueueSpec,
    queue: Queue,
    storage: Option<Storage>,
    /// Consumer → the node it took from, for releasing on node down
    consumers: HashMap<u64, String>,
    tasks: Vec<TaskGuard>,
}

impl QueueActor {
    /// An actor for `spec`; durable mode opens its file in [`Actor::started`]
    ///
    /// # Panics
    ///
    /// As [`Queue::new`], on an invalid config.
    pub fn new(spec: QueueSpec) -> Self {
        Self {
            queue: Queue::new(spec.config.clone()),
            spec,
            storage: None,
            consumers: HashMap::new(),
            tasks: Vec::new(),
        }
    }

    /// Writes the journal (durable mode)
    fn persist(&mut self) -> Result<(), StoreError> {
        let events = drain(&mut self.queue);
        match &self.storage {
            Some(storage) => storage.commit(&events),
            None => Ok(()),
        }
    }

    fn apply(&mut self, msg: QueueMsg, now: Instant) -> QueueReply {
        let result: Result<QueueReply, QueueError> = match msg {
            QueueMsg::Enqueue { payload } => self
                .queue
                .enqueue(payload, now)
                .map(|id| QueueReply::Enqueued(id.0)),
            QueueMsg::Take {
                consumer_node,
                consumer,
                lease_ms,
            } => {
                let lease = lease_ms.map(Duration::from_millis);
                match self.queue.take(ConsumerId(consumer), now, lease) {
                    Some(lease) => {
                        self.consumers.insert(consumer, consumer_node);
                        let ms = lease.deadline.saturating_duration_since(now).as_millis();
                        Ok(QueueReply::Lease(LeaseInfo {
                            item: lease.item.0,
                            payload: lease.payload,
                            attempt: lease.attempt,
                            lease_ms: u64::try_from(ms).unwrap_or(u64::MAX),
                        }))
                    }
                    None => Ok(QueueReply::Empty),
                }
            }
            QueueMsg::Ack { item, consumer } => self
                .queue
                .ack(ItemId(item), ConsumerId(consumer))
                .map(|()| QueueReply::Done),
            QueueMsg::Nack {
                item,
                consumer,
                error,
            } => {
                let (item, consumer) = (ItemId(item), ConsumerId(consumer));
                match error {
                    Some(text) => self.queue.nack_with_error(item, consumer, &text, now),
                    None => self.queue.nack(item, consumer, now),
                }
                .map(|()| QueueReply::Done)
            }
            QueueMsg::DeadLetters => Ok(QueueReply::DeadLetters(
                self.queue
                    .dead_letters()
                    .into_iter()
                    .map(DeadInfo::from)
                    .collect(),
            )),
            QueueMsg::Replay { item } => self
                .queue
                .replay_dead_letter(ItemId(item), now)
                .map(|()| QueueReply::Done),
            QueueMsg::Stats => Ok(QueueReply::Stats(self.queue.stats().into())),
            QueueMsg::Tick => {
                self.queue.expire(now);
                Ok(QueueReply::Done)
            }
            QueueMsg::NodeDown { node } => {
                let gone: Vec<u64> = self
                    .consumers
                    .iter()
                    .filter(|(_, n)| **n == node)
                    .map(|(c, _)| *c)
                    .collect();
                for consumer in gone {
                    self.consumers.remove(&consumer);
                    self.queue.release_consumer(ConsumerId(consumer), now);
                }
                Ok(QueueReply::Done)
            }
        };
        result.unwrap_or_else(|err| QueueReply::Error(err.into()))
    }
}

impl Actor for QueueActor {
    type Msg = QueueMsg;

    async fn started(&mut self, ctx: &Ctx<QueueMsg>) -> Result<(), ActorError> {
        if let Some(path) = self.spec.path.clone() {
            // A restart may find the crashed predecessor's handle on the file not yet dropped.
            let (storage, queue) =
                Storage::open_when_released(path, self.spec.config.clone(), Reopen::default())
                    .await?;
            self.storage = Some(storage);
            self.queue = queue;
        }
        let me = ctx.myself().clone();
        self.tasks.push(TaskGuard::spawn(async move {
            let mut every = tokio::time::interval(TICK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                // A full mailbox just skips a tick.
                let _ = me.cast(QueueMsg::Tick);
            }
        }));
        self.tasks.push(ctx.node().forward_cluster_events(
            ctx.myself().clone(),
            |event| match event {
                NodeEvent::Down { node, .. } | NodeEvent::Left { node } => {
                    Some(QueueMsg::NodeDown { node })
                }
                _ => None,
            },
        ));
        Ok(())
    }

    async fn handle(
        &mut self,
        msg: QueueMsg,
        reply: ReplyTo<QueueReply>,
        _ctx: &Ctx<QueueMsg>,
    ) -> Result<(), ActorError> {
        let answer = self.apply(msg, Instant::now());
        if let Err(err) = self.persist() {
            tracing::error!(%err, "queue storage failed; restarting from the file");
            reply.send(QueueReply::Error(QueueFailure::Storage(StoreFault::from(
                &err,
            ))));
            return Err(err.into());
        }
        reply.send(answer);
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &Ctx<QueueMsg>) -> Result<(), ActorError> {
        self.tasks.clear();
        self.storage = None;
        Ok(())
    }
}
