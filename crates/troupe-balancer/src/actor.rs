//! [`Balancer`]: the configuration, and [`BalancerActor`]: the supervised actor that spreads
//! requests over a pool of members.

use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use troupe_runtime::remote::NodeEvent;
use troupe_runtime::{Actor, ActorError, Addr, Ask, CallError, Ctx, Pool, Request};

use crate::core::{self, BreakerConfig, BreakerState, MemberId, Outcome, Strategy};

type KeyFn<Q> = Arc<dyn Fn(&Q) -> Option<Vec<u8>> + Send + Sync>;

/// A load balancer's configuration: its members, how it picks among them, and when it ejects
/// one.
///
/// The balancer takes requests of type `Q` (its message type is [`Ask<Q>`], as its members'
/// is) and answers each with the member's response, so it can stand wherever a member could —
/// behind a proxy route (`Q` = `HttpRequest`), in front of services, caches or DB replicas
/// alike.
///
/// In a topology: `let lb = t.add(app, "lb", Balancer::least_outstanding(&svc).factory());`
/// where `svc` is a [`Pool`] of actors whose `Msg` is `Ask<Q>`, then route the proxy to `lb`.
pub struct Balancer<Q: Request> {
    name: String,
    strategy: Strategy,
    members: Vec<(Addr<Ask<Q>>, u32)>,
    key: Option<KeyFn<Q>>,
    breaker: BreakerConfig,
    timeout: Duration,
    rng_seed: Option<u64>,
}

impl<Q: Request> Clone for Balancer<Q> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            strategy: self.strategy,
            members: self.members.clone(),
            key: self.key.clone(),
            breaker: self.breaker,
            timeout: self.timeout,
            rng_seed: self.rng_seed,
        }
    }
}

impl<Q: Request> std::fmt::Debug for Balancer<Q> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balancer")
            .field("name", &self.name)
            .field("strategy", &self.strategy)
            .field("members", &self.members.len())
            .finish()
    }
}

impl<Q: Request> Balancer<Q> {
    /// A balancer over `members` (weight 1 each) with `strategy`, the default breaker (eject
    /// after 5 consecutive failures, probe after 5 s) and a 10 s call timeout.
    pub fn new(strategy: Strategy, members: impl IntoIterator<Item = Addr<Ask<Q>>>) -> Self {
        Self {
            name: "balancer".into(),
            strategy,
            members: members.into_iter().map(|m| (m, 1)).collect(),
            key: None,
            breaker: BreakerConfig::default(),
            timeout: Duration::from_secs(10),
            rng_seed: None,
        }
    }

    /// Round robin over every member of `pool`.
    pub fn round_robin(pool: &Pool<Ask<Q>>) -> Self {
        Self::new(Strategy::RoundRobin, pool.members().iter().cloned())
    }

    /// Least outstanding requests over every member of `pool`.
    pub fn least_outstanding(pool: &Pool<Ask<Q>>) -> Self {
        Self::new(Strategy::LeastOutstanding, pool.members().iter().cloned())
    }

    /// Power of two random choices over every member of `pool`.
    pub fn power_of_two(pool: &Pool<Ask<Q>>) -> Self {
        Self::new(Strategy::PowerOfTwoChoices, pool.members().iter().cloned())
    }

    /// Smooth weighted round robin over `members` with their weights.
    pub fn weighted(members: impl IntoIterator<Item = (Addr<Ask<Q>>, u32)>) -> Self {
        let mut b = Self::new(Strategy::WeightedRoundRobin, []);
        b.members = members.into_iter().collect();
        b
    }

    /// Consistent hashing over every member of `pool`, by the key `key` extracts from each
    /// request (requests without a key go round robin). When a member joins or leaves, only
    /// about 1/N of the keys move.
    pub fn consistent_hash(
        pool: &Pool<Ask<Q>>,
        key: impl Fn(&Q) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> Self {
        let mut b = Self::new(Strategy::consistent_hash(), pool.members().iter().cloned());
        b.key = Some(Arc::new(key));
        b
    }

    /// Names the balancer in logs and metrics.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets when members are ejected and probed.
    pub fn breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// How long a member gets to answer (a timeout counts as a failure).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Seeds the random choices (power of two choices' samples), so a simulation replays the
    /// same picks; by default each actor draws its seed from the operating system.
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }

    /// A fresh actor running this configuration.
    pub fn actor(&self) -> BalancerActor<Q> {
        let (picks, ejected) = self
            .members
            .iter()
            .map(|(member, _)| {
                let member = format!("{}/{}", member.node(), member.name());
                let labels = [("balancer", self.name.clone()), ("member", member)];
                (
                    metrics::counter!("troupe_balancer_picks_total", &labels),
                    metrics::gauge!("troupe_balancer_member_ejected", &labels),
                )
            })
            .unzip();
        let core = core::Balancer::new(self.strategy, self.breaker);
        let rng = SmallRng::seed_from_u64(self.rng_seed.unwrap_or_else(rand::random));
        BalancerActor {
            forwarder: Arc::new_cyclic(|this| Forwarder {
                this: this.clone(),
                config: self.clone(),
                core: Mutex::new((core, rng)),
                picks,
                ejected,
            }),
        }
    }

    /// A factory for topologies: `t.add(app, "lb", Balancer::least_outstanding(&pool).factory())`.
    pub fn factory(self) -> impl Fn() -> BalancerActor<Q> + Send + Sync + 'static {
        move || self.actor()
    }
}

/// The supervised balancer: picks a member for each request, asks it, and answers with the
/// member's response (or its typed error, as the member's call returned it).
///
/// Calls to members run concurrently (the balancer never waits for one before picking the
/// next); each outcome feeds that member's circuit breaker. Members on a node reported down
/// are skipped until it is up again. A restarted balancer starts with fresh health state;
/// calls it had already forwarded are still answered.
///
/// The balancer shares its state with its own process as a [`Forwarder`] ([`Ctx::share`]):
/// a caller there can pick and ask the member itself, skipping the balancer's mailbox.
pub struct BalancerActor<Q: Request> {
    forwarder: Arc<Forwarder<Q>>,
}

/// A balancer's picking state, shared by the balancer actor with callers in its process
/// ([`Addr::shared`]): [`ask`](Self::ask) picks a member and asks it from the caller's own
/// task, as the balancer would from its own, with the same breakers, counts and metrics —
/// one task hand-off each way instead of three.
///
/// Get it with `balancer_addr.shared::<Forwarder<Q>>()`; `None` (the balancer is on another
/// node, restarting, or behind a failover gate) means: ask the balancer's address instead.
pub struct Forwarder<Q: Request> {
    /// Itself, for the picks it hands out with a request not answered in place ([`Picked`])
    this: Weak<Self>,
    config: Balancer<Q>,
    core: Mutex<(core::Balancer, SmallRng)>,
    /// `troupe_balancer_picks_total` per member, in member order: registered once, so a pick
    /// costs one counter increment and no label allocation.
    picks: Vec<metrics::Counter>,
    /// `troupe_balancer_member_ejected` per member, in member order: 1 while its breaker is
    /// open or half-open, 0 while it is closed.
    ejected: Vec<metrics::Gauge>,
}

/// A member picked by [`Forwarder::ask_in_place`] for a request it did not answer in place:
/// [`ask`](Self::ask) it with that request. Until then the pick counts as outstanding; dropped
/// unasked, it ends as a cancelled call's does, with no verdict on the member.
#[must_use = "the pick counts as outstanding until it is asked or dropped"]
pub struct Picked<Q: Request> {
    forwarder: Arc<Forwarder<Q>>,
    pick: Option<core::Pick>,
}

impl<Q: Request> Picked<Q> {
    /// Asks the picked member with `request` through its mailbox (its answer in place, if it
    /// has one, has already run), waiting at most `within` and the balancer's own member
    /// timeout; as [`Forwarder::ask`] does after its pick.
    ///
    /// # Cancel safety
    ///
    /// As [`Forwarder::ask`]'s.
    pub async fn ask(mut self, request: Q, within: Duration) -> Result<Q::Response, CallError> {
        let forwarder = &self.forwarder;
        let member = self
            .pick
            .and_then(|pick| forwarder.config.members.get(pick.member.0 as usize));
        // a pick names one of the forwarder's own members, so this is always there; the pick
        // is then finished as a failed call, as `Forwarder::pick` finishes it
        let Some((member, _)) = member else {
            if let Some(pick) = self.pick.take() {
                forwarder.finished(pick, Outcome::Error);
            }
            return Err(CallError::NotFound {
                target: format!("{}: no available member", forwarder.config.name),
            });
        };
        let limit = within.min(forwarder.config.timeout);
        let result = member.call(|reply| Ask { request, reply }, limit).await;
        if let Some(pick) = self.pick.take() {
            forwarder.finished(pick, forwarder.outcome(limit, &result));
        }
        result
    }
}

impl<Q: Request> Drop for Picked<Q> {
    fn drop(&mut self) {
        if let Some(pick) = self.pick.take() {
            self.forwarder.finished(pick, Outcome::Abandoned);
        }
    }
}

/// An outstanding pick: reported [`Outcome::Abandoned`] if dropped before it was reported
/// otherwise (the caller's future was cancelled).
struct Outstanding<'a, Q: Request> {
    forwarder: &'a Forwarder<Q>,
    pick: Option<core::Pick>,
}

impl<Q: Request> Outstanding<'_, Q> {
    fn finish(mut self, outcome: Outcome) {
        if let Some(pick) = self.pick.take() {
            self.forwarder.finished(pick, outcome);
        }
    }
}

impl<Q: Request> Drop for Outstanding<'_, Q> {
    fn drop(&mut self) {
        if let Some(pick) = self.pick.take() {
            self.forwarder.finished(pick, Outcome::Abandoned);
        }
    }
}

impl<Q: Request> Forwarder<Q> {
    /// Health and load of each member, in member order (for dashboards and tests).
    pub fn members(&self) -> Vec<core::MemberView> {
        self.core.lock().0.members()
    }

    /// Picks a member for `request` and asks it, waiting at most `within` (and at most the
    /// balancer's own member timeout), from the caller's task; the member's answer, or its
    /// typed error. `NotFound` when no member is available.
    ///
    /// A timeout at `within` before the balancer's own timeout is the caller's, not the
    /// member's: it does not count against the member's breaker.
    ///
    /// # Cancel safety
    ///
    /// Cancelling abandons the member's call (the member may still handle the request); the
    /// pick stops counting as outstanding, with no verdict on the member.
    pub async fn ask(&self, request: Q, within: Duration) -> Result<Q::Response, CallError> {
        let (pick, member) = self.pick(&request)?;
        let outstanding = Outstanding {
            forwarder: self,
            pick: Some(pick),
        };
        let limit = within.min(self.config.timeout);
        let result = member.ask(request, limit).await;
        outstanding.finish(self.outcome(limit, &result));
        result
    }

    /// Picks a member for `request` and, if it answers in place
    /// ([`Addr::ask_in_place`](troupe_runtime::Addr::ask_in_place)), has it answer here and
    /// now, with no future to await: its answer (or `NotFound` when no member is available),
    /// with the outcome counted as [`ask`](Self::ask) counts it. Otherwise the request comes
    /// back with the member [`Picked`] for it: ask that request of it with [`Picked::ask`],
    /// which sends it through the member's mailbox; until then the pick counts as outstanding.
    ///
    /// An answer in place has no timeout (it is a function call) and runs on the caller's
    /// thread.
    ///
    /// For a server answering on its connection's task: what it answers here needs no future.
    pub fn ask_in_place(
        &self,
        request: Q,
    ) -> Result<Result<Q::Response, CallError>, (Q, Picked<Q>)> {
        let (pick, member) = match self.pick(&request) {
            Ok(picked) => picked,
            Err(err) => return Ok(Err(err)),
        };
        let request = match member.ask_in_place(request) {
            Ok(result) => {
                self.finished(pick, outcome_of(&result));
                return Ok(result);
            }
            Err(request) => request,
        };
        match self.this.upgrade() {
            Some(forwarder) => Err((
                request,
                Picked {
                    forwarder,
                    pick: Some(pick),
                },
            )),
            // only a forwarder outside its `Arc` (none is) could get here
            None => {
                self.finished(pick, Outcome::Abandoned);
                Ok(Err(CallError::ActorFailed {
                    target: self.config.name.clone(),
                    reason: "the balancer is gone".into(),
                }))
            }
        }
    }

    /// The verdict on a member whose call, waited for at most `limit`, ended with `result`:
    /// a timeout before the balancer's own is the caller's, so no verdict on the member.
    fn outcome<T>(&self, limit: Duration, result: &Result<T, CallError>) -> Outcome {
        match result {
            Err(CallError::Timeout { .. }) if limit < self.config.timeout => Outcome::Abandoned,
            result => outcome_of(result),
        }
    }

    /// A member for `request`, counted as picked (borrowed: a clone of its handle would bounce
    /// the handle's count between the CPUs on every request).
    fn pick(&self, request: &Q) -> Result<(core::Pick, &Addr<Ask<Q>>), CallError> {
        let key = self.config.key.as_ref().and_then(|k| k(request));
        let pick = {
            let (core, rng) = &mut *self.core.lock();
            core.pick(key.as_deref(), troupe_runtime::time::now(), rng)
        };
        let Some(pick) = pick else {
            metrics::counter!("troupe_balancer_unavailable_total", "balancer" => self.config.name.clone())
                .increment(1);
            return Err(CallError::NotFound {
                target: format!("{}: no available member", self.config.name),
            });
        };
        let index = pick.member.0 as usize;
        if let Some(picks) = self.picks.get(index) {
            picks.increment(1);
        }
        match self.config.members.get(index) {
            Some((member, _)) => Ok((pick, member)),
            None => {
                self.finished(pick, Outcome::Error);
                Err(CallError::NotFound {
                    target: format!("{}: member {}", self.config.name, pick.member),
                })
            }
        }
    }

    /// Reports how `pick` ended, logging and exporting a change of its member's health.
    fn finished(&self, pick: core::Pick, outcome: Outcome) {
        let change = self
            .core
            .lock()
            .0
            .finished(pick, outcome, troupe_runtime::time::now());
        let Some(change) = change else {
            return;
        };
        let index = pick.member.0 as usize;
        if let Some(gauge) = self.ejected.get(index) {
            gauge.set(if change.to == BreakerState::Closed {
                0.0
            } else {
                1.0
            });
        }
        let name = &self.config.name;
        let member = self
            .config
            .members
            .get(index)
            .map_or("?", |(member, _)| member.name());
        match (change.from, change.to) {
            (BreakerState::Closed, BreakerState::Open) => {
                tracing::warn!(balancer = %name, %member, "member ejected");
                metrics::counter!("troupe_balancer_ejections_total", "balancer" => name.clone())
                    .increment(1);
            }
            (_, BreakerState::Closed) => {
                tracing::info!(balancer = %name, %member, "member re-admitted")
            }
            _ => tracing::debug!(balancer = %name, %member, ?change, "breaker"),
        }
    }
}

/// The verdict on a member from its call's result.
fn outcome_of<T>(result: &Result<T, CallError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Success,
        Err(CallError::Timeout { .. }) => Outcome::Timeout,
        Err(_) => Outcome::Error,
    }
}

impl<Q: Request> BalancerActor<Q> {
    /// Health and load of each member, in member order (for dashboards and tests).
    pub fn members(&self) -> Vec<core::MemberView> {
        self.forwarder.members()
    }
}

impl<Q: Request> Actor for BalancerActor<Q> {
    type Msg = Ask<Q>;

    async fn started(&mut self, ctx: &mut Ctx<Ask<Q>>) -> Result<(), ActorError> {
        let forwarder = &self.forwarder;
        {
            let (core, _) = &mut *forwarder.core.lock();
            for (i, (addr, weight)) in forwarder.config.members.iter().enumerate() {
                core.add(MemberId(i as u64), *weight, Some(addr.node().to_string()));
            }
        }
        // a fresh core: every breaker closed
        for gauge in &forwarder.ejected {
            gauge.set(0.0);
        }
        // follows node events for as long as this instance runs (a restarted balancer
        // subscribes afresh with its fresh core)
        let mut events = ctx.node().cluster_events();
        let shared = forwarder.clone();
        ctx.spawn(async move {
            let name = &shared.config.name;
            loop {
                match events.recv().await {
                    // a node this one cannot reach is down for its balancer, whatever the
                    // cluster's membership says
                    Ok(
                        NodeEvent::Down { node, .. }
                        | NodeEvent::Left { node }
                        | NodeEvent::Unreachable { node, .. },
                    ) => {
                        tracing::info!(balancer = %name, %node, "members on a down or unreachable node are out");
                        shared.core.lock().0.node_down(&node);
                    }
                    Ok(NodeEvent::Up { node, .. } | NodeEvent::Reachable { node }) => {
                        shared.core.lock().0.node_up(&node)
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        });
        // members added: callers in this process may now pick for themselves
        ctx.share(self.forwarder.clone());
        Ok(())
    }

    async fn handle(&mut self, ask: Ask<Q>, _ctx: &mut Ctx<Ask<Q>>) -> Result<(), ActorError> {
        let Ask { request, reply } = ask;
        let (pick, member) = match self.forwarder.pick(&request) {
            Ok((pick, member)) => (pick, member.clone()),
            Err(err) => {
                reply.fail(err);
                return Ok(());
            }
        };
        let forwarder = self.forwarder.clone();
        // a detached task, not one on the context: a forward in flight outlives a restart of
        // the balancer (its caller still gets the member's answer), and it never fails the
        // balancer; it still sends from the balancer's node
        // boxed before spawning: the wrappers around it then move a pointer, not the future
        troupe_runtime::spawn_detached(Box::pin(async move {
            let outstanding = Outstanding {
                forwarder: &forwarder,
                pick: Some(pick),
            };
            let result = member.ask(request, forwarder.config.timeout).await;
            outstanding.finish(outcome_of(&result));
            match result {
                Ok(answer) => {
                    reply.send(answer);
                }
                Err(err) => reply.fail(err),
            }
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng as _;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Ping;

    impl Request for Ping {
        const NAME: &'static str = "test.Ping";
        type Response = ();
    }

    fn draws(balancer: &Balancer<Ping>) -> Vec<u64> {
        let actor = balancer.actor();
        let mut core = actor.forwarder.core.lock();
        (0..4).map(|_| core.1.next_u64()).collect()
    }

    #[test]
    fn a_seeded_balancer_draws_the_same_choices_in_every_actor() {
        let seeded = Balancer::<Ping>::new(Strategy::PowerOfTwoChoices, []).rng_seed(7);
        assert_eq!(draws(&seeded), draws(&seeded));
        assert_ne!(draws(&seeded), draws(&seeded.clone().rng_seed(8)));
        let unseeded = Balancer::<Ping>::new(Strategy::PowerOfTwoChoices, []);
        assert_ne!(draws(&unseeded), draws(&unseeded));
    }
}
