//! The slot behind every handle: the current instance of a named actor.
//!
//! A supervisor swaps the instance when it restarts the actor, so every `Addr` clone reaches
//! the new instance with one atomic load. While the slot is empty (between a crash and the
//! restart) sends are parked in a bounded pending queue and delivered, in order, to the next
//! instance before anyone else can reach it. Messages still in a crashed instance's mailbox
//! are salvaged into the slot (see `Mail`'s drop) and go to the next instance first.

use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use ractor::{ActorRef, MessagingErr};

use crate::error::CallError;
use crate::message::{Mail, Message};
use crate::timing::{HandlingStats, HandlingTimes};

/// Default limit on the messages waiting in one actor's mailbox.
pub const DEFAULT_MAILBOX_LIMIT: usize = 65_536;

/// One running instance: the ractor mailbox and the counters its host keeps.
pub(crate) struct Instance<M: Message> {
    pub(crate) actor: ActorRef<Mail<M>>,
    pub(crate) mailbox: Arc<Mailbox>,
}

/// The counters of one instance's mailbox: senders add to the depth, the host takes from it
/// and counts what it handled (on the line it has just written, so counting costs it a store).
#[derive(Default)]
pub(crate) struct Mailbox {
    pub(crate) depth: AtomicUsize,
    pub(crate) handled: AtomicU64,
    /// What the instance shares with callers in its own process (see `Ctx::share`): kept
    /// here because callers reach it through the slot's current instance, so it is visible
    /// exactly while the instance is current (the record itself may live a little longer).
    pub(crate) shared: OnceLock<Arc<dyn Any + Send + Sync>>,
}

/// One registered actor's counters, as [`Node::actor_stats`](crate::Node::actor_stats)
/// reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActorStats {
    /// The name it is registered under.
    pub name: String,
    /// Messages in its current instance's mailbox, not yet handled.
    pub mailbox_depth: usize,
    /// Messages its instances have handled, all restarts included.
    pub messages_handled: u64,
    /// Messages refused because the mailbox was at its limit.
    pub dropped: u64,
    /// Times it was started again after the first start.
    pub restarts: u64,
    /// Messages waiting for its next instance while it restarts.
    pub parked: usize,
    /// Messages its handlers sent (to any actor, on any node), all restarts included.
    pub messages_sent: u64,
    /// How long its handlers took, sampled (one message in
    /// [`SAMPLE_EVERY`](crate::timing::SAMPLE_EVERY)); `None` before the first timed one.
    pub handling: Option<HandlingStats>,
}

enum Lifecycle {
    /// Registered; an instance is current or will be installed.
    Open,
    /// Removed for good: sends fail with `NotFound`.
    Closed,
}

struct Pending<M: Message> {
    /// Messages taken back from a failed instance's mailbox; they were sent before anything
    /// in `queue`, so the next instance gets them first.
    salvaged: VecDeque<Mail<M>>,
    queue: VecDeque<Mail<M>>,
    lifecycle: Lifecycle,
}

/// The current instance of one registered name.
pub(crate) struct Slot<M: Message> {
    current: ArcSwapOption<Instance<M>>,
    pending: Mutex<Pending<M>>,
    limit: usize,
    dropped: AtomicU64,
    /// Messages handled by instances no longer current.
    handled_before: AtomicU64,
    /// Instances started.
    starts: AtomicU64,
    /// Messages its handlers sent, all instances.
    pub(crate) sent: AtomicU64,
    /// How long its handlers took, one message in [`SAMPLE_EVERY`](crate::timing::SAMPLE_EVERY).
    pub(crate) handling: HandlingTimes,
    /// The node and the name, shared with the registry: errors spell `node/name` when they
    /// happen rather than every actor keeping that string.
    node: Arc<str>,
    pub(crate) name: Arc<str>,
    /// Until when its instances may handle messages, when only for a while.
    pub(crate) gate: std::sync::OnceLock<crate::placed::Gate>,
}

/// Why a delivery failed, with the message handed back when it still exists.
pub(crate) struct Undelivered<M: Message> {
    pub(crate) error: CallError,
    #[allow(dead_code)] // kept for the waiting send, which retries with it
    pub(crate) mail: Option<Mail<M>>,
}

impl<M: Message> Slot<M> {
    /// The actor, as `node/name`.
    pub(crate) fn target(&self) -> String {
        format!("{}/{}", self.node, self.name)
    }

    pub(crate) fn new(
        node: Arc<str>,
        name: Arc<str>,
        limit: usize,
        gate: Option<crate::placed::Gate>,
    ) -> Self {
        Self {
            current: ArcSwapOption::empty(),
            pending: Mutex::new(Pending {
                salvaged: VecDeque::new(),
                queue: VecDeque::new(),
                lifecycle: Lifecycle::Open,
            }),
            limit,
            dropped: AtomicU64::new(0),
            handled_before: AtomicU64::new(0),
            starts: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            handling: HandlingTimes::default(),
            node,
            name,
            gate: gate.map(std::sync::OnceLock::from).unwrap_or_default(),
        }
    }

    /// Messages refused because the mailbox was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Hands `mail` to the current instance, or parks it until the next one is installed.
    pub(crate) fn deliver(&self, mail: Mail<M>) -> Result<(), Undelivered<M>> {
        let mail = {
            let guard = self.current.load();
            match guard.as_deref() {
                Some(instance) => match self.try_send(instance, mail) {
                    Ok(()) => return Ok(()),
                    Err(Retry::Overloaded(mail)) => return Err(self.overloaded(mail)),
                    Err(Retry::Dead(Some(mail))) => mail,
                    Err(Retry::Dead(None)) => return Err(self.lost()),
                },
                None => mail,
            }
        };
        self.deliver_slow(mail)
    }

    fn try_send(&self, instance: &Instance<M>, mail: Mail<M>) -> Result<(), Retry<M>> {
        let before = instance.mailbox.depth.fetch_add(1, Ordering::Relaxed);
        if before >= self.limit {
            instance.mailbox.depth.fetch_sub(1, Ordering::Relaxed);
            return Err(Retry::Overloaded(mail));
        }
        match instance.actor.send_message(mail) {
            Ok(()) => Ok(()),
            Err(err) => {
                instance.mailbox.depth.fetch_sub(1, Ordering::Relaxed);
                match err {
                    MessagingErr::SendErr(mail) => Err(Retry::Dead(Some(mail))),
                    // ractor hands the message back only in SendErr; a typed ActorRef never
                    // returns the others, but if it did the message is gone with them.
                    MessagingErr::ChannelClosed | MessagingErr::InvalidActorType => {
                        Err(Retry::Dead(None))
                    }
                }
            }
        }
    }

    fn overloaded(&self, mail: Mail<M>) -> Undelivered<M> {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        Undelivered {
            error: CallError::Overloaded {
                target: self.target(),
                limit: self.limit,
            },
            mail: Some(mail),
        }
    }

    fn lost(&self) -> Undelivered<M> {
        Undelivered {
            error: CallError::ActorFailed {
                target: self.target(),
                reason: "the mailbox refused the message".into(),
            },
            mail: None,
        }
    }

    #[cold]
    fn deliver_slow(&self, mail: Mail<M>) -> Result<(), Undelivered<M>> {
        let mut pending = self.pending.lock();
        if let Lifecycle::Closed = pending.lifecycle {
            return Err(Undelivered {
                error: CallError::NotFound {
                    target: self.target(),
                },
                mail: Some(mail),
            });
        }
        // install() publishes under this lock, so this second look is authoritative
        let mail = match self.current.load().as_deref() {
            Some(instance) => match self.try_send(instance, mail) {
                Ok(()) => return Ok(()),
                Err(Retry::Overloaded(mail)) => return Err(self.overloaded(mail)),
                Err(Retry::Dead(Some(mail))) => mail,
                Err(Retry::Dead(None)) => return Err(self.lost()),
            },
            None => mail,
        };
        // a gated actor with no instance is not here (a failover child stopped on this node,
        // or not started yet): refused now, so the sender finds where it runs, rather than
        // parked here until it runs here again
        if self
            .gate
            .get()
            .is_some_and(|gate| !gate.is_open(crate::time::now()))
        {
            return Err(Undelivered {
                error: CallError::NotFound {
                    target: self.target(),
                },
                mail: Some(mail),
            });
        }
        if pending.queue.len() + pending.salvaged.len() >= self.limit {
            return Err(self.overloaded(mail));
        }
        pending.queue.push_back(mail);
        Ok(())
    }

    /// Drops every message parked for the next instance (a failover child stopped here,
    /// which may run elsewhere next): their calls fail `NotFound`. Returns how many.
    pub(crate) fn drop_parked(&self) -> usize {
        let (salvaged, queue) = {
            let mut pending = self.pending.lock();
            (
                std::mem::take(&mut pending.salvaged),
                std::mem::take(&mut pending.queue),
            )
        };
        let dropped = salvaged.len() + queue.len();
        let error = CallError::NotFound {
            target: self.target(),
        };
        for mail in salvaged.into_iter().chain(queue) {
            crate::message::refuse(mail, &error);
        }
        self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
        dropped
    }

    /// Makes `instance` current after first handing it every parked message, so that a
    /// sender's parked messages stay ahead of its later ones.
    pub(crate) fn install(&self, instance: Instance<M>) {
        let mut pending = self.pending.lock();
        let mut kept = VecDeque::new();
        let parked = std::mem::take(&mut pending.salvaged);
        let later = std::mem::take(&mut pending.queue);
        for mail in parked.into_iter().chain(later) {
            instance.mailbox.depth.fetch_add(1, Ordering::Relaxed);
            if let Err(err) = instance.actor.send_message(mail) {
                instance.mailbox.depth.fetch_sub(1, Ordering::Relaxed);
                if let MessagingErr::SendErr(mail) = err {
                    kept.push_back(mail);
                }
            }
        }
        if !kept.is_empty() {
            // the new instance died before it was published; keep the mail for the next one
            pending.queue = kept;
            return;
        }
        self.retire(self.current.swap(Some(Arc::new(instance))));
    }

    /// Kills the current instance (no `stopped` hook, reported to its supervisor as a failure).
    /// What the current instance shares with its own process, if it is of type `T`; nothing
    /// for an actor behind a gate (a failover child), whose every use must pass the gate.
    pub(crate) fn shared<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let current = self.ungated()?;
        let shared = current.as_deref()?.mailbox.shared.get()?.clone();
        shared.downcast::<T>().ok()
    }

    /// `f` of what the current instance shares, if it is a `T` (as [`shared`](Self::shared),
    /// without taking a reference count); `arg` back if not.
    #[inline]
    pub(crate) fn with_shared<T: Send + Sync + 'static, A, R>(
        &self,
        arg: A,
        f: impl FnOnce(&T, A) -> R,
    ) -> Result<R, A> {
        let Some(current) = self.ungated() else {
            return Err(arg);
        };
        match current
            .as_deref()
            .and_then(|instance| instance.mailbox.shared.get())
            .and_then(|shared| shared.downcast_ref::<T>())
        {
            Some(shared) => Ok(f(shared, arg)),
            None => Err(arg),
        }
    }

    /// The current instance, unless the actor is behind a gate (a failover child), whose
    /// every use must pass the gate.
    fn ungated(&self) -> Option<arc_swap::Guard<Option<Arc<Instance<M>>>>> {
        if self.gate.get().is_some() {
            return None;
        }
        Some(self.current.load())
    }

    /// Whether a message delivered now would be handled: always for an actor with no gate
    /// (one restarting keeps its mail for the next instance); for a gated one (a failover
    /// child), only while its gate is open and an instance runs.
    pub(crate) fn serving(&self) -> bool {
        match self.gate.get() {
            Some(gate) => gate.is_open(crate::time::now()) && self.has_instance(),
            None => true,
        }
    }

    /// Whether an instance is current.
    pub(crate) fn has_instance(&self) -> bool {
        self.current.load().is_some()
    }

    pub(crate) fn kill_current(&self) -> bool {
        match self.current.load().as_deref() {
            Some(instance) => {
                instance.actor.kill();
                true
            }
            None => false,
        }
    }

    /// Empties the slot after its instance stopped; later sends are parked.
    pub(crate) fn vacate(&self) {
        let _pending = self.pending.lock();
        self.retire(self.current.swap(None));
    }

    /// Keeps the count of what a replaced instance handled.
    fn retire(&self, old: Option<Arc<Instance<M>>>) {
        if let Some(old) = old {
            let handled = old.mailbox.handled.load(Ordering::Relaxed);
            self.handled_before.fetch_add(handled, Ordering::Relaxed);
        }
    }

    /// Counts an instance being started.
    pub(crate) fn note_start(&self) {
        self.starts.fetch_add(1, Ordering::Relaxed);
    }

    /// The actor's counters now.
    pub(crate) fn stats(&self) -> ActorStats {
        let (mailbox_depth, current_handled) = match self.current.load().as_deref() {
            Some(instance) => (
                instance.mailbox.depth.load(Ordering::Relaxed),
                instance.mailbox.handled.load(Ordering::Relaxed),
            ),
            None => (0, 0),
        };
        let parked = {
            let pending = self.pending.lock();
            pending.queue.len() + pending.salvaged.len()
        };
        ActorStats {
            name: self.name.to_string(),
            mailbox_depth,
            messages_handled: self.handled_before.load(Ordering::Relaxed) + current_handled,
            dropped: self.dropped(),
            restarts: self.starts.load(Ordering::Relaxed).saturating_sub(1),
            parked,
            messages_sent: self.sent.load(Ordering::Relaxed),
            handling: self.handling.snapshot(),
        }
    }

    /// Removes the actor for good: parked calls fail with `NotFound` and later sends too.
    pub(crate) fn close(&self) {
        let parked = {
            let mut pending = self.pending.lock();
            pending.lifecycle = Lifecycle::Closed;
            self.retire(self.current.swap(None));
            let salvaged = std::mem::take(&mut pending.salvaged);
            salvaged
                .into_iter()
                .chain(std::mem::take(&mut pending.queue))
        };
        // dropping a message drops its reply port, which answers its waiting caller
        parked.for_each(Mail::discard);
    }

    /// Keeps `msg`, found in the mailbox of an instance that failed, for the next instance
    /// (ahead of anything parked since). After [`close`](Self::close) it is dropped instead.
    pub(crate) fn salvage(&self, msg: M) {
        let mut pending = self.pending.lock();
        match pending.lifecycle {
            Lifecycle::Open => pending.salvaged.push_back(Mail::user(msg)),
            Lifecycle::Closed => {
                drop(pending);
                drop(msg);
            }
        }
    }
}

enum Retry<M: Message> {
    Overloaded(Mail<M>),
    Dead(Option<Mail<M>>),
}
