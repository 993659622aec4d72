//! The pure decision logic of a supervisor: which children to stop and restart, when, and when
//! to give up and escalate. No actors, no tokio, no clock: time comes in as `now`.
//!
//! The vocabulary and semantics follow Erlang/OTP's `supervisor`:
//!
//! - **Strategy** ([`Strategy`]): which siblings share a child's restart.
//! - **Restart type** ([`Restart`]): whether a child is restarted after it exits.
//! - **Intensity** ([`Intensity`]): at most `max_restarts` restarts within `within`; one more and,
//!   by [`WhenExceeded`], the supervisor either stops all its children and escalates to its own
//!   parent (OTP's rule) or keeps restarting no faster than the intensity allows.
//! - **Backoff** ([`Backoff`]), a troupe addition: restarts are delayed exponentially while
//!   restarts keep happening inside the intensity window.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Which children are restarted when one child exits and must be restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Only the exited child is restarted.
    #[default]
    OneForOne,
    /// All children are stopped (in reverse start order) and all are restarted (in start order).
    OneForAll,
    /// The exited child and every child started after it are stopped and restarted.
    RestForOne,
}

/// Whether a child is restarted after it exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Restart {
    /// Always restarted, whether it failed or stopped normally.
    #[default]
    Permanent,
    /// Restarted only if it failed (panicked or returned an error); a normal stop removes it.
    Transient,
    /// Never restarted; removed when it exits for any reason, including when a sibling's
    /// restart under [`Strategy::OneForAll`] or [`Strategy::RestForOne`] stops it.
    Temporary,
}

/// Restart intensity: how many restarts a supervisor tolerates in a sliding window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts allowed inside the window; restart number `max_restarts + 1` escalates.
    pub max_restarts: u32,
    /// The sliding window.
    pub within: Duration,
}

impl Default for Intensity {
    /// Three restarts in five seconds.
    fn default() -> Self {
        Self {
            max_restarts: 3,
            within: Duration::from_secs(5),
        }
    }
}

/// What a supervisor does when a restart would exceed its intensity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WhenExceeded {
    /// Stop every child and fail upwards (OTP's rule); at a node's root this ends the node.
    Escalate,
    /// Keep restarting, each restart delayed by the backoff (or, without one, until the
    /// oldest restart leaves the window), so a crash loop costs at most the intensity's rate.
    #[default]
    KeepRestarting,
}

/// Exponential restart backoff: the n-th restart inside the intensity window waits
/// `min(initial * 2^(n-1), max)`. The first restart after a quiet window waits `initial`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first restart in a window.
    pub initial: Duration,
    /// Upper bound on any delay.
    pub max: Duration,
}

impl Backoff {
    /// The delay before restart number `n` (1-based) inside the window.
    pub fn delay(&self, n: u32) -> Duration {
        let shift = n.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// Identifies a child within one supervisor; assigned by the caller, unique per supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChildId(pub u64);

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It stopped by itself without an error.
    Normal,
    /// It panicked, returned an error, failed to start, or was killed.
    Failed,
}

/// What the supervisor must do after a child exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing: the child is unknown or its exit was caused by the supervisor itself.
    Ignore,
    /// Forget the child (temporary, or transient that ended normally); restart nothing.
    Remove(ChildId),
    /// Restart children.
    Restart {
        /// Running siblings to stop first, in reverse start order.
        stop: Vec<ChildId>,
        /// Children to forget instead of restarting (temporary siblings in `stop`).
        remove: Vec<ChildId>,
        /// Children to start again after `delay`, in start order (includes the exited child).
        start: Vec<ChildId>,
        /// How long to wait before starting them.
        delay: Duration,
    },
    /// Restart intensity exceeded: stop every child (reverse start order) and fail upwards.
    Escalate {
        /// Why, for the parent's logs.
        reason: String,
    },
}

/// The lifecycle state of one child as the supervisor sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildStatus {
    /// Running (or starting).
    Running,
    /// Stopped and waiting to be started again by a decided restart.
    Restarting,
}

#[derive(Clone, Debug)]
struct Child {
    id: ChildId,
    restart: Restart,
    status: ChildStatus,
}

/// A supervisor's decision state: its children in start order and its recent restarts.
///
/// Invariants: child ids are unique; children are kept in start order; the restart history only
/// holds instants inside the current intensity window after each decision.
#[derive(Clone, Debug)]
pub struct SupervisorCore {
    strategy: Strategy,
    intensity: Intensity,
    backoff: Option<Backoff>,
    when_exceeded: WhenExceeded,
    children: Vec<Child>,
    restarts: VecDeque<Instant>,
}

impl SupervisorCore {
    /// A supervisor with no children that escalates when its intensity is exceeded.
    pub fn new(strategy: Strategy, intensity: Intensity, backoff: Option<Backoff>) -> Self {
        Self {
            strategy,
            intensity,
            backoff,
            when_exceeded: WhenExceeded::Escalate,
            children: Vec::new(),
            restarts: VecDeque::new(),
        }
    }

    /// Sets what happens when a restart would exceed the intensity.
    pub fn when_exceeded(mut self, when_exceeded: WhenExceeded) -> Self {
        self.when_exceeded = when_exceeded;
        self
    }

    /// Whether the restarts inside the window ending at `now` are over the intensity (a
    /// supervisor that keeps restarting is then in a crash loop).
    pub fn is_exceeded(&mut self, now: Instant) -> bool {
        self.recent_restarts(now) > self.intensity.max_restarts as usize
    }

    /// Appends a child at the end of the start order, as running.
    ///
    /// # Panics
    /// If `id` is not greater than every id added before (ids must grow, which keeps the
    /// children sorted by id and lookups logarithmic).
    pub fn add_child(&mut self, id: ChildId, restart: Restart) {
        assert!(
            self.children.last().is_none_or(|last| last.id < id),
            "child ids must grow: {id:?}"
        );
        self.children.push(Child {
            id,
            restart,
            status: ChildStatus::Running,
        });
    }

    /// Forgets a child (it was removed by the caller).
    pub fn remove_child(&mut self, id: ChildId) {
        if let Some(i) = self.position(id) {
            // at shutdown children go in reverse start order, so this removes the last one
            self.children.remove(i);
        }
    }

    /// Marks a child as running again after the caller started it.
    pub fn started(&mut self, id: ChildId) {
        if let Some(i) = self.position(id) {
            self.children[i].status = ChildStatus::Running;
        }
    }

    /// Children in start order with their status.
    pub fn children(&self) -> impl Iterator<Item = (ChildId, ChildStatus)> + '_ {
        self.children.iter().map(|c| (c.id, c.status))
    }

    /// Ids in reverse start order, the order to stop them in at shutdown.
    pub fn shutdown_order(&self) -> Vec<ChildId> {
        self.children.iter().rev().map(|c| c.id).collect()
    }

    /// Restarts counted inside the window ending at `now`.
    pub fn recent_restarts(&mut self, now: Instant) -> usize {
        self.prune(now);
        self.restarts.len()
    }

    /// Decides what to do after child `id` exited with `exit` at `now`.
    ///
    /// Exits of children that are unknown or already [`ChildStatus::Restarting`] (stopped by
    /// this supervisor as part of a sibling's restart) are [`Decision::Ignore`]d.
    pub fn on_exit(&mut self, id: ChildId, exit: Exit, now: Instant) -> Decision {
        let Some(pos) = self.position(id) else {
            return Decision::Ignore;
        };
        if self.children[pos].status != ChildStatus::Running {
            return Decision::Ignore;
        }
        let wants_restart = match (self.children[pos].restart, exit) {
            (Restart::Permanent, _) => true,
            (Restart::Transient, Exit::Failed) => true,
            (Restart::Transient, Exit::Normal) | (Restart::Temporary, _) => false,
        };
        if !wants_restart {
            self.children.remove(pos);
            return Decision::Remove(id);
        }

        self.prune(now);
        self.restarts.push_back(now);
        let count = self.restarts.len();
        let exceeded = count > self.intensity.max_restarts as usize;
        if exceeded && self.when_exceeded == WhenExceeded::Escalate {
            return Decision::Escalate {
                reason: format!(
                    "restart intensity exceeded: {count} restarts within {:?} (limit {})",
                    self.intensity.within, self.intensity.max_restarts
                ),
            };
        }

        let affected: Vec<usize> = match self.strategy {
            Strategy::OneForOne => vec![pos],
            Strategy::OneForAll => (0..self.children.len()).collect(),
            Strategy::RestForOne => (pos..self.children.len()).collect(),
        };
        let stop: Vec<ChildId> = affected
            .iter()
            .rev()
            .filter(|&&i| i != pos && self.children[i].status == ChildStatus::Running)
            .map(|&i| self.children[i].id)
            .collect();
        let remove: Vec<ChildId> = affected
            .iter()
            .filter(|&&i| i != pos && self.children[i].restart == Restart::Temporary)
            .map(|&i| self.children[i].id)
            .collect();
        let start: Vec<ChildId> = affected
            .iter()
            .map(|&i| self.children[i].id)
            .filter(|cid| !remove.contains(cid))
            .collect();
        for &i in &affected {
            self.children[i].status = ChildStatus::Restarting;
        }
        self.children.retain(|c| !remove.contains(&c.id));
        let delay = match (self.backoff, exceeded) {
            (Some(backoff), _) => backoff.delay(count as u32),
            (None, false) => Duration::ZERO,
            // no faster than the intensity: until the oldest restart leaves the window
            (None, true) => self.restarts.front().map_or(Duration::ZERO, |&oldest| {
                (oldest + self.intensity.within).saturating_duration_since(now)
            }),
        };
        Decision::Restart {
            stop,
            remove,
            start,
            delay,
        }
    }

    /// Children stay sorted by id (ids only grow), so this is a binary search.
    fn position(&self, id: ChildId) -> Option<usize> {
        self.children.binary_search_by_key(&id, |c| c.id).ok()
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&oldest) = self.restarts.front() {
            if now.saturating_duration_since(oldest) >= self.intensity.within {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests;
