//! Names the cluster places rather than one node: failover children.
//!
//! A failover child runs on one node at a time, chosen by the cluster (a lease in its metadata
//! group, see `troupe-placement`), and may move. Its handles name the child, not a node: each
//! send looks up who holds it now in this process's [`Placed`] entry for the name, which the
//! placement driver keeps current. While nobody is known to hold it (its node went down and
//! no other has taken it yet, or it is moving), casts are **parked** here, within the
//! child's mailbox limit, and delivered in order to the next holder as soon as it is known,
//! as a local restart parks them in the actor's slot; calls wait for a holder within their
//! own timeout.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::addr::{Addr, Binding};
use crate::error::CallError;
use crate::message::{Message, Reply, ReplyValue};

/// A cast waiting for a holder: delivers its message to the node it is given.
type Parked = Box<dyn FnOnce(Arc<str>) -> Result<(), CallError> + Send>;

/// Where one placed name runs now, as this process knows it, and the casts waiting for it.
///
/// Cloning is cheap; every clone is the same entry. Get it with
/// [`Mesh::place`](crate::Mesh::place).
#[derive(Clone)]
pub struct Placed {
    inner: Arc<PlacedInner>,
}

struct PlacedInner {
    name: Arc<str>,
    limit: usize,
    /// The mesh of this process, to tell whether a holder here serves yet
    mesh: Weak<crate::node::MeshInner>,
    state: Mutex<State>,
    /// The holder, for calls waiting for one.
    holder: watch::Sender<Option<Arc<str>>>,
    /// Parked casts refused at the limit, and parked casts the holder refused when they were
    /// delivered.
    dropped: AtomicU64,
}

struct State {
    /// The generation of the lease record the holder was learnt from.
    generation: u64,
    holder: Option<Arc<str>>,
    parked: VecDeque<Parked>,
}

impl std::fmt::Debug for Placed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state.lock();
        f.debug_struct("Placed")
            .field("name", &self.inner.name)
            .field("holder", &state.holder)
            .field("generation", &state.generation)
            .field("parked", &state.parked.len())
            .finish()
    }
}

impl Placed {
    pub(crate) fn new(name: Arc<str>, limit: usize, mesh: Weak<crate::node::MeshInner>) -> Self {
        let (holder, _) = watch::channel(None);
        Self {
            inner: Arc::new(PlacedInner {
                name,
                limit,
                mesh,
                state: Mutex::new(State {
                    generation: 0,
                    holder: None,
                    parked: VecDeque::new(),
                }),
                holder,
                dropped: AtomicU64::new(0),
            }),
        }
    }

    /// The placed name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The node known to run the child now, if any.
    pub fn holder(&self) -> Option<String> {
        self.inner
            .state
            .lock()
            .holder
            .as_deref()
            .map(str::to_string)
    }

    /// The generation of the lease record the holder was learnt from (0: none yet).
    pub fn generation(&self) -> u64 {
        self.inner.state.lock().generation
    }

    /// Casts waiting for a holder.
    pub fn parked(&self) -> usize {
        self.inner.state.lock().parked.len()
    }

    /// Casts dropped: refused because the parked casts were at the child's mailbox limit, or
    /// refused by the holder they were delivered to.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Records that, as of lease record `generation`, `holder` runs the child (`None`: nobody
    /// that this node can reach). An observation older than the one recorded is ignored (it
    /// returns `false`); one of the same generation may change the holder between a node and
    /// `None`, as that node's link goes down and comes back.
    ///
    /// When a holder becomes known, the parked casts are delivered to it first, in order,
    /// before any later send can reach it. A holder in this process whose child does not
    /// serve yet (a lease claimed, its gate not yet open: another node can read the claim
    /// first) is not routed to: sends park until an observation finds it serving, so none is
    /// refused there as absent.
    pub fn observe(&self, holder: Option<&str>, generation: u64) -> bool {
        let mut state = self.inner.state.lock();
        if generation < state.generation {
            return false;
        }
        state.generation = generation;
        if state.holder.as_deref() == holder {
            return true;
        }
        let not_serving = holder.is_some_and(|node| {
            self.inner
                .mesh
                .upgrade()
                .and_then(|mesh| mesh.serving(node, &self.inner.name))
                == Some(false)
        });
        let holder: Option<Arc<str>> = if not_serving {
            tracing::debug!(name = %self.inner.name, ?holder, generation, "the holder does not serve yet; sends park");
            None
        } else {
            holder.map(Arc::from)
        };
        if state.holder == holder {
            return true;
        }
        if let Some(node) = &holder {
            // Delivered under the lock: a send that finds the holder set comes after them.
            for parked in state.parked.drain(..) {
                if let Err(error) = parked(node.clone()) {
                    self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(name = %self.inner.name, %node, %error, "a parked message was refused on delivery");
                }
            }
        }
        tracing::debug!(name = %self.inner.name, holder = ?holder, generation, "placement changed");
        state.holder = holder.clone();
        self.inner.holder.send_replace(holder);
        true
    }

    /// Sends `msg` to the holder, or parks it until there is one.
    pub(crate) fn cast<M: Message>(&self, binding: &Binding, msg: M) -> Result<(), CallError> {
        let mut state = self.inner.state.lock();
        if let Some(holder) = state.holder.clone() {
            drop(state);
            return Addr::<M>::direct(holder, self.inner.name.clone(), binding.clone()).cast(msg);
        }
        if state.parked.len() >= self.inner.limit {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(CallError::Overloaded {
                target: format!("(placed)/{}", self.inner.name),
                limit: self.inner.limit,
            });
        }
        let name = self.inner.name.clone();
        let binding = binding.clone();
        // Delivered later from whatever task learns the holder: it must leave through the
        // endpoint this send would have left through, or a later send from the same sender,
        // through another, could overtake it
        let origin = crate::node::ORIGIN.try_with(Arc::clone).ok();
        state.parked.push_back(Box::new(move |holder| {
            let origin = origin.or_else(|| binding.mesh().and_then(|m| m.default_origin(&holder)));
            let send = || Addr::<M>::direct(holder, name, binding).cast(msg);
            match origin {
                Some(origin) => crate::node::ORIGIN.sync_scope(origin, send),
                None => send(),
            }
        }));
        Ok(())
    }

    /// Calls the holder, waiting for one within `timeout`.
    pub(crate) async fn call<M: Message, R: ReplyValue>(
        &self,
        binding: &Binding,
        make: impl FnOnce(Reply<R>) -> M,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let started = crate::time::now();
        let mut changes = self.inner.holder.subscribe();
        let wait = changes.wait_for(Option::is_some);
        let holder = if timeout == Duration::MAX {
            wait.await.ok().and_then(|h| h.clone())
        } else {
            match tokio::time::timeout(timeout, wait).await {
                Ok(found) => found.ok().and_then(|h| h.clone()),
                Err(_) => None,
            }
        };
        let Some(holder) = holder else {
            return Err(CallError::Timeout {
                target: format!("(placed)/{}", self.inner.name),
                after: timeout,
            });
        };
        let left = timeout.saturating_sub(crate::time::now().saturating_duration_since(started));
        Addr::<M>::direct(holder, self.inner.name.clone(), binding.clone())
            .call(make, left)
            .await
    }
}

/// Until when an actor may handle messages: a failover child's, set to the end of its
/// node's lease by the placement driver. Past it (or once closed), each message is refused
/// as it comes to be handled — a call's caller gets [`CallError::NotFound`], as for an
/// actor that is not there — instead of handled, and a message sent while no instance runs
/// is refused at once rather than parked: a process paused past its lease may run the
/// actor's task before the driver's on waking, and another node may run the actor by then.
///
/// Closed when made. Cloning is cheap; every clone is the same gate.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<GateInner>,
}

struct GateInner {
    /// The instant the deadline is counted from
    anchor: std::time::Instant,
    /// Nanoseconds from `anchor` (negative: before it) until which messages are handled;
    /// `i64::MIN`: closed
    until: std::sync::atomic::AtomicI64,
    /// The fencing token of the lease it is open under (0: none given)
    token: std::sync::atomic::AtomicU64,
}

/// `at - anchor` in nanoseconds, negative when `at` is earlier, saturating
fn offset(anchor: std::time::Instant, at: std::time::Instant) -> i64 {
    match at.checked_duration_since(anchor) {
        Some(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        None => {
            let before = anchor.saturating_duration_since(at).as_nanos();
            i64::try_from(before).map_or(i64::MIN + 1, |n| -n)
        }
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            inner: Arc::new(GateInner {
                anchor: crate::time::now(),
                until: std::sync::atomic::AtomicI64::new(i64::MIN),
                token: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("open", &self.is_open(crate::time::now()))
            .finish()
    }
}

impl Gate {
    /// A closed gate
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets messages be handled until `until` (on the runtime's clock, [`crate::time::now`]).
    pub fn open_until(&self, until: std::time::Instant) {
        let until = offset(self.inner.anchor, until).max(i64::MIN + 1);
        self.inner.until.store(until, Ordering::Release);
    }

    /// Lets messages be handled until `until`, under the lease whose fencing token is `token`
    /// (see [`Gate::fencing_token`]).
    pub fn open_until_with_token(&self, until: std::time::Instant, token: u64) {
        self.inner.token.store(token, Ordering::Release);
        self.open_until(until);
    }

    /// The fencing token of the lease the gate was last opened under, while it is open at
    /// `now`: the placement driver gives its lease record's generation, which every write of
    /// the record bumps, so a later holder's token is always larger than any an earlier
    /// holder had. A store that remembers the largest token it was written with and refuses
    /// smaller ones refuses an instance that lost its lease (paused past it, cut off) — the
    /// gate alone cannot stop a write already on its way. `None` while closed, or if no
    /// token was given.
    pub fn fencing_token(&self, now: std::time::Instant) -> Option<u64> {
        let token = self.inner.token.load(Ordering::Acquire);
        (token != 0 && self.is_open(now)).then_some(token)
    }

    /// Refuses every message from now on, until opened again.
    pub fn close(&self) {
        self.inner.until.store(i64::MIN, Ordering::Release);
    }

    /// Whether a message may be handled at `now`.
    pub fn is_open(&self, now: std::time::Instant) -> bool {
        let until = self.inner.until.load(Ordering::Acquire);
        until != i64::MIN && offset(self.inner.anchor, now) < until
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Gate;

    #[test]
    fn a_gate_gives_its_fencing_token_only_while_open() {
        let gate = Gate::new();
        let now = Instant::now();
        assert_eq!(gate.fencing_token(now), None, "closed when made");
        gate.open_until(now + Duration::from_secs(1));
        assert_eq!(gate.fencing_token(now), None, "opened without a token");
        gate.open_until_with_token(now + Duration::from_secs(1), 7);
        assert_eq!(gate.fencing_token(now), Some(7));
        assert_eq!(gate.fencing_token(now + Duration::from_secs(1)), None);
        gate.close();
        assert_eq!(gate.fencing_token(now), None);
    }

    #[test]
    fn a_gate_is_open_exactly_before_its_deadline_whatever_the_clock_reads() {
        let gate = Gate::new();
        let now = Instant::now();
        assert!(!gate.is_open(now), "closed when made");
        gate.open_until(now + Duration::from_secs(1));
        assert!(gate.is_open(now) && gate.is_open(now + Duration::from_millis(999)));
        assert!(!gate.is_open(now + Duration::from_secs(1)));
        // instants before the gate was made (another runtime's paused clock) compare too
        let early = now.checked_sub(Duration::from_secs(3600)).unwrap_or(now);
        gate.open_until(early + Duration::from_secs(1));
        assert!(gate.is_open(early) && !gate.is_open(early + Duration::from_secs(2)));
        assert!(!gate.is_open(now));
        gate.close();
        assert!(!gate.is_open(early));
    }
}
