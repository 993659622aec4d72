//! The balancer's deciding logic: plain state, no I/O, no clock, no async
//!
//! A [`Balancer`] holds the members of one pool, each with a weight, an optional node, a count
//! of outstanding requests and a circuit [`breaker`]. The caller (the actor shell) feeds it
//! membership changes ([`Balancer::add`], [`Balancer::remove`]), node events
//! ([`Balancer::node_down`], [`Balancer::node_up`]), and for each request one
//! [`Balancer::pick`] followed later by one [`Balancer::finished`]. Time and randomness are
//! arguments, so a test replays any sequence exactly.
//!
//! # Examples
//!
//! ```
//! use std::time::Instant;
//! use rand::{SeedableRng, rngs::SmallRng};
//! use troupe_balancer::core::{Balancer, BreakerConfig, MemberId, Outcome, Strategy};
//!
//! let mut balancer = Balancer::new(Strategy::LeastOutstanding, BreakerConfig::default());
//! balancer.add(MemberId(1), 1, Some("app-1".into()));
//! balancer.add(MemberId(2), 1, Some("app-2".into()));
//! let mut rng = SmallRng::seed_from_u64(7);
//! let now = Instant::now();
//!
//! let first = balancer.pick(None, now, &mut rng).expect("two members are available");
//! let second = balancer.pick(None, now, &mut rng).expect("two members are available");
//! assert_ne!(first.member, second.member); // the idle member is preferred
//!
//! balancer.finished(first, Outcome::Success, now);
//! balancer.finished(second, Outcome::Success, now);
//!
//! balancer.node_down("app-1");
//! balancer.node_down("app-2");
//! assert!(balancer.pick(None, now, &mut rng).is_none());
//! ```

mod balancer;
pub mod breaker;
pub mod hash;
pub mod health;
mod ring;
mod strategy;

pub use balancer::Balancer;
pub use breaker::{BreakerConfig, BreakerState};
pub use health::{CheckedHealth, HealthChecks};
pub use ring::{DEFAULT_VNODES_PER_WEIGHT, MAX_VNODES_PER_MEMBER};
pub use strategy::Strategy;

use std::fmt;

/// Identifies a member of a balancer's pool
///
/// Opaque to the balancer: the shell maps it to an actor handle. Members are kept in ascending
/// id order, which is the order [`Strategy::RoundRobin`] cycles in; consistent-hash ring
/// positions depend on the id, so keep a member's id stable across restarts to keep its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(pub u64);

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "member-{}", self.0)
    }
}

/// One request's assignment to a member, returned by [`Balancer::pick`]
///
/// The request counts as outstanding on `member` until this pick is passed to
/// [`Balancer::finished`]. Each pick carries a ticket unique within its balancer, so reporting
/// the same pick twice, or a pick whose member was removed (even if a member with the same id
/// was added since), changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a pick is outstanding until it is passed to `Balancer::finished`"]
pub struct Pick {
    /// The member the request should go to
    pub member: MemberId,
    /// Whether this request is the circuit breaker's probe: the member was ejected, its open
    /// period has ended, and this request's outcome decides whether it is re-admitted
    pub probe: bool,
    /// For [`Strategy::PowerOfTwoChoices`] with at least two eligible members, the two members
    /// sampled, in sampling order; `member` is one of them, the one with fewer outstanding
    /// requests at pick time (the first on a tie). `None` otherwise.
    pub sampled: Option<[MemberId; 2]>,
    /// Unique within the balancer, increasing with each pick
    ticket: u64,
}

impl Pick {
    /// This pick's ticket: unique within its balancer and increasing with each pick, so the
    /// shell may use it to key its table of pending requests
    pub fn ticket(&self) -> u64 {
        self.ticket
    }
}

/// How a picked request ended, as reported to [`Balancer::finished`]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The member answered successfully
    Success,
    /// The member answered with an error, or failed (its actor stopped, the call was refused)
    Error,
    /// The member did not answer in time
    Timeout,
    /// The caller gave up first (its own deadline, or it was cancelled): no verdict on the
    /// member, except that an abandoned probe counts as failed, so the member waits out
    /// another open period rather than being probed by nobody
    Abandoned,
}

/// A snapshot of one member, as listed by [`Balancer::members`]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// The member's id
    pub id: MemberId,
    /// Its weight, at least 1
    pub weight: u32,
    /// The node it lives on, if known
    pub node: Option<String>,
    /// Requests picked for it and not yet reported finished
    pub outstanding: usize,
    /// Its circuit breaker's state
    pub state: BreakerState,
    /// Whether its node is currently reported down
    pub node_down: bool,
    /// Whether ordinary requests may go to it: its node is not down and its breaker is
    /// [`Closed`](BreakerState::Closed)
    ///
    /// An `Open` member whose open period has ended is not counted as available, though
    /// [`Balancer::pick`] may send it a probe.
    pub available: bool,
}

/// A change in a member's circuit breaker state, returned by [`Balancer::finished`] so that the
/// shell can log it and count ejections
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HealthChange {
    /// The member whose breaker changed
    pub member: MemberId,
    /// The state before: `Closed` then `to == Open` is an ejection; `HalfOpen` then `to == Open`
    /// a failed probe; `HalfOpen` then `to == Closed` a re-admission
    pub from: BreakerState,
    /// The state after; never equal to `from`
    pub to: BreakerState,
}
