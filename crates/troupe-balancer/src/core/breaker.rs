//! A per-member circuit breaker: ejects a member that keeps failing and re-admits it after one
//! successful probe
//!
//! [`Breaker`] is a small state machine driven by the outcomes of requests and by the time the
//! caller passes in; it never reads a clock. The [`Balancer`](super::Balancer) keeps one per
//! member, asks [`Breaker::can_pass`] before considering the member for a pick, calls
//! [`Breaker::on_probe_sent`] when it sends the probe, and feeds the outcome of each request
//! back through [`Breaker::on_success`] / [`Breaker::on_failure`].
//!
//! # Transitions
//!
//! `threshold` is [`BreakerConfig::consecutive_failures`]; `n` counts consecutive failures in
//! `Closed`; `k` counts consecutive failed probes since the member was last `Closed`. The open
//! period after `k` failed probes is `open_for * 2^k`, capped at `max_open_for` (and never less
//! than `open_for`).
//!
//! | state           | input                                   | next state                       | [`Admission`] meanwhile |
//! |-----------------|-----------------------------------------|----------------------------------|-------------------------|
//! | `Closed(n)`     | `on_success`                            | `Closed(0)`                      | `Pass`                  |
//! | `Closed(n)`     | `on_failure`, `n + 1 < threshold`       | `Closed(n + 1)`                  | `Pass`                  |
//! | `Closed(n)`     | `on_failure`, `n + 1 >= threshold`      | `Open(since = now, k = 0)`       |                         |
//! | `Open`          | `can_pass` before the open period ends  | `Open` (unchanged)               | `Reject`                |
//! | `Open`          | `can_pass` once the open period ended   | `Open` (unchanged)               | `Probe`                 |
//! | `Open`          | `on_probe_sent`, open period ended      | `HalfOpen(k)`                    |                         |
//! | `Open`          | `on_probe_sent` too early               | `Open` (unchanged)               |                         |
//! | `Open`          | `on_success` / `on_failure`             | `Open` (ignored: a stale result) | `Reject` / `Probe`      |
//! | `HalfOpen(k)`   | `can_pass`                              | `HalfOpen(k)` (unchanged)        | `Reject`                |
//! | `HalfOpen(k)`   | `on_success` (the probe succeeded)      | `Closed(0)`, `k` reset           | `Pass`                  |
//! | `HalfOpen(k)`   | `on_failure` (the probe failed)         | `Open(since = now, k + 1)`       | `Reject`                |
//!
//! While `HalfOpen`, only the probe's outcome may be reported: the breaker cannot tell a probe's
//! outcome from a stale one, so the caller filters (the balancer does, by ticket).
//!
//! # Time
//!
//! Time comes in as `now` on every call. A `now` earlier than one passed before (a clock that
//! went backwards) is treated as no time having passed: the breaker stays open longer, never
//! shorter, and never panics.

use std::time::{Duration, Instant};

/// When a member is ejected and for how long
///
/// Values are normalized when a [`Breaker`] is built: `consecutive_failures` of 0 is treated as
/// 1, and a `max_open_for` below `open_for` as `open_for`. To effectively disable ejection, set
/// `consecutive_failures` to `u32::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// How many consecutive failed requests (errors or timeouts) eject a healthy member
    ///
    /// Default 5. A success resets the count.
    pub consecutive_failures: u32,
    /// How long an ejected member is left alone before one probe request may go to it
    ///
    /// Default 5 s.
    pub open_for: Duration,
    /// The longest open period: each failed probe doubles the previous period up to this bound
    ///
    /// Default 60 s. Set it equal to `open_for` for a fixed period.
    pub max_open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            open_for: Duration::from_secs(5),
            max_open_for: Duration::from_secs(60),
        }
    }
}

impl BreakerConfig {
    /// The config with its documented normalizations applied
    fn normalized(self) -> Self {
        Self {
            consecutive_failures: self.consecutive_failures.max(1),
            open_for: self.open_for,
            max_open_for: self.max_open_for.max(self.open_for),
        }
    }
}

/// The externally visible state of a [`Breaker`]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Healthy: requests pass
    Closed,
    /// Ejected: no request passes until the open period has ended, then one probe may
    Open,
    /// The probe is outstanding: no other request passes until its outcome is reported
    HalfOpen,
}

/// Whether a request may go to the member right now, as answered by [`Breaker::can_pass`]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Admission {
    /// The member is healthy: send the request normally
    Pass,
    /// The member is ejected but its open period has ended: one request may go to it as the
    /// probe, after calling [`Breaker::on_probe_sent`]
    Probe,
    /// Do not send a request to this member
    Reject,
}

/// A change of [`BreakerState`] caused by one input
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transition {
    /// The state before the input
    pub from: BreakerState,
    /// The state after the input; never equal to `from`
    pub to: BreakerState,
}

/// The internal state, with what each state needs to remember
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        /// Consecutive failures so far, always below the threshold
        failures: u32,
    },
    Open {
        /// When the member was ejected
        since: Instant,
        /// How long it stays ejected before a probe may go
        period: Duration,
        /// Failed probes since the member was last closed
        failed_probes: u32,
    },
    HalfOpen {
        /// Failed probes since the member was last closed
        failed_probes: u32,
    },
}

/// A circuit breaker for one member; see the [module docs](self) for its transition table
///
/// Guarantees: it never admits a request while `Open` before the open period has ended, it
/// admits at most one probe per open period, and no sequence of calls panics.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use troupe_balancer::core::breaker::{Admission, Breaker, BreakerConfig, BreakerState};
///
/// let config = BreakerConfig { consecutive_failures: 2, open_for: Duration::from_secs(5), ..Default::default() };
/// let mut breaker = Breaker::new(config);
/// let t0 = Instant::now();
/// breaker.on_failure(t0);
/// breaker.on_failure(t0);
/// assert_eq!(breaker.state(), BreakerState::Open);
/// assert_eq!(breaker.can_pass(t0 + Duration::from_secs(1)), Admission::Reject);
///
/// let later = t0 + Duration::from_secs(5);
/// assert_eq!(breaker.can_pass(later), Admission::Probe);
/// breaker.on_probe_sent(later);
/// assert_eq!(breaker.can_pass(later), Admission::Reject); // one probe at a time
/// breaker.on_success(later);
/// assert_eq!(breaker.state(), BreakerState::Closed);
/// ```
#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    state: State,
}

impl Breaker {
    /// A closed breaker with `config` (normalized as [`BreakerConfig`] describes)
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config: config.normalized(),
            state: State::Closed { failures: 0 },
        }
    }

    /// The config in force, after normalization
    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// The current state
    ///
    /// An `Open` breaker whose period has ended still reports `Open` until the probe is sent:
    /// the state changes only on inputs, never by itself.
    pub fn state(&self) -> BreakerState {
        match self.state {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Consecutive failures counted while `Closed`; 0 in other states
    pub fn consecutive_failures(&self) -> u32 {
        match self.state {
            State::Closed { failures } => failures,
            State::Open { .. } | State::HalfOpen { .. } => 0,
        }
    }

    /// When `Open`, the instant from which a probe is admitted; `None` in other states, or if
    /// that instant is not representable
    pub fn probe_at(&self) -> Option<Instant> {
        match self.state {
            State::Open { since, period, .. } => since.checked_add(period),
            State::Closed { .. } | State::HalfOpen { .. } => None,
        }
    }

    /// Whether a request may go to the member at `now`; changes nothing
    ///
    /// `Pass` when closed; `Probe` when open and the open period has ended; `Reject` otherwise
    /// (open too early, or half-open with the probe outstanding).
    pub fn can_pass(&self, now: Instant) -> Admission {
        match self.state {
            State::Closed { .. } => Admission::Pass,
            State::Open { since, period, .. } => {
                if now.saturating_duration_since(since) >= period {
                    Admission::Probe
                } else {
                    Admission::Reject
                }
            }
            State::HalfOpen { .. } => Admission::Reject,
        }
    }

    /// Records that the probe was sent at `now`: `Open` → `HalfOpen`
    ///
    /// Does nothing (and returns `None`) unless [`can_pass`](Self::can_pass) would answer
    /// `Probe` at `now`, so it can never let a second probe through.
    pub fn on_probe_sent(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            State::Open { failed_probes, .. } if self.can_pass(now) == Admission::Probe => {
                self.state = State::HalfOpen { failed_probes };
                Some(Transition {
                    from: BreakerState::Open,
                    to: BreakerState::HalfOpen,
                })
            }
            State::Closed { .. } | State::Open { .. } | State::HalfOpen { .. } => None,
        }
    }

    /// Records a successful request
    ///
    /// Closed: resets the consecutive-failure count. Half-open: the probe succeeded, so the
    /// member is re-admitted (`Closed`, counts reset). Open: ignored, as the result of a request
    /// sent before the member was ejected. Returns the transition, if the state changed.
    pub fn on_success(&mut self, _now: Instant) -> Option<Transition> {
        match self.state {
            State::Closed { .. } => {
                self.state = State::Closed { failures: 0 };
                None
            }
            State::HalfOpen { .. } => {
                self.state = State::Closed { failures: 0 };
                Some(Transition {
                    from: BreakerState::HalfOpen,
                    to: BreakerState::Closed,
                })
            }
            State::Open { .. } => None,
        }
    }

    /// Records a failed request (an error or a timeout)
    ///
    /// Closed: counts it, and ejects the member (`Open` from `now`) when the count reaches the
    /// threshold. Half-open: the probe failed, so the member is ejected again from `now` for a
    /// doubled period (capped). Open: ignored. Returns the transition, if the state changed.
    pub fn on_failure(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            State::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.consecutive_failures {
                    self.state = State::Open {
                        since: now,
                        period: self.period_after(0),
                        failed_probes: 0,
                    };
                    Some(Transition {
                        from: BreakerState::Closed,
                        to: BreakerState::Open,
                    })
                } else {
                    self.state = State::Closed { failures };
                    None
                }
            }
            State::HalfOpen { failed_probes } => {
                let failed_probes = failed_probes.saturating_add(1);
                self.state = State::Open {
                    since: now,
                    period: self.period_after(failed_probes),
                    failed_probes,
                };
                Some(Transition {
                    from: BreakerState::HalfOpen,
                    to: BreakerState::Open,
                })
            }
            State::Open { .. } => None,
        }
    }

    /// The open period after `failed_probes` failed probes: `open_for * 2^failed_probes`,
    /// capped at `max_open_for`
    fn period_after(&self, failed_probes: u32) -> Duration {
        let factor = 1u32.checked_shl(failed_probes).unwrap_or(u32::MAX);
        self.config
            .open_for
            .saturating_mul(factor)
            .min(self.config.max_open_for)
    }
}
