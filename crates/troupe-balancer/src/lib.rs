//! troupe's load balancer: spreads requests over a pool of members and keeps each member's health
//!
//! The deciding logic lives in [`core`]: a [`core::Balancer`] is plain state with no networking
//! code, no async and no clock. The caller passes the current time (`now: Instant`) and a random
//! number generator into every call that needs them, so every decision is deterministic for a
//! given sequence of inputs and is tested directly, without actors (the sans-IO split of
//! `quinn-proto`).
//!
//! # Guarantees
//!
//! - A pick only ever names a member that is present, whose node is not reported down and whose
//!   circuit breaker admits it; when no such member exists, the pick is `None`.
//! - Every pick counts as outstanding on its member until it is reported finished, exactly once;
//!   a second report, or a report for a removed member, is ignored.
//! - No sequence of calls panics.
//!
//! # Layout
//!
//! - `core/mod.rs`: the shared vocabulary: [`core::MemberId`], [`core::Pick`],
//!   [`core::Outcome`], [`core::MemberView`], [`core::HealthChange`].
//! - `core/strategy.rs`: [`core::Strategy`], the ways a member is chosen.
//! - `core/balancer.rs`: [`core::Balancer`], membership, node events, picking and outcomes.
//! - `core/breaker.rs`: [`core::breaker::Breaker`], the per-member circuit breaker state
//!   machine, and its [`core::BreakerConfig`].
//! - `core/ring.rs`: the consistent-hash ring of virtual nodes.
//! - `core/hash.rs`: [`core::hash::key_hash`], the fixed, version-stable hash that places keys
//!   and virtual nodes on the ring.
//! - `actor.rs`: [`Balancer`] (configuration) and [`BalancerActor`], the thin supervised shell
//!   for requests of any [`Request`](troupe_runtime::Request) type `Q` (its message is
//!   `Ask<Q>`): it picks, forwards each request concurrently, reports outcomes, follows node
//!   events.
//!
//! # Metrics
//! `troupe_balancer_ejections_total{balancer}` and `troupe_balancer_unavailable_total{balancer}`
//! through the `metrics` facade.

pub mod actor;
pub mod core;

pub use actor::{Balancer, BalancerActor, Forwarder, Picked};
