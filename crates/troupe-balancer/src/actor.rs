//! [`Balancer`]: the configuration, and [`BalancerActor`]: the supervised actor that spreads
//! requests over a pool of members.

use std::sync::Arc;
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
        BalancerActor {
            config: self.clone(),
            core: Arc::new(Mutex::new(core::Balancer::new(self.strategy, self.breaker))),
            rng: SmallRng::seed_from_u64(self.rng_seed.unwrap_or_else(rand::random)),
            picks,
            ejected,
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
pub struct BalancerActor<Q: Request> {
    config: Balancer<Q>,
    core: Arc<Mutex<core::Balancer>>,
    rng: SmallRng,
    /// `troupe_balancer_picks_total` per member, in member order: registered once, so a pick
    /// costs one counter increment and no label allocation.
    picks: Vec<metrics::Counter>,
    /// `troupe_balancer_member_ejected` per member, in member order: 1 while its breaker is
    /// open or half-open, 0 while it is closed.
    ejected: Vec<metrics::Gauge>,
}

impl<Q: Request> BalancerActor<Q> {
    /// Health and load of each member, in member order (for dashboards and tests).
    pub fn members(&self) -> Vec<core::MemberView> {
        self.core.lock().members()
    }
}

impl<Q: Request> Actor for BalancerActor<Q> {
    type Msg = Ask<Q>;

    async fn started(&mut self, ctx: &mut Ctx<Ask<Q>>) -> Result<(), ActorError> {
        {
            let mut core = self.core.lock();
            for (i, (addr, weight)) in self.config.members.iter().enumerate() {
                core.add(MemberId(i as u64), *weight, Some(addr.node().to_string()));
            }
        }
        // a fresh core: every breaker closed
        for gauge in &self.ejected {
            gauge.set(0.0);
        }
        // follows node events for as long as this instance runs (a restarted balancer
        // subscribes afresh with its fresh core)
        let mut events = ctx.node().cluster_events();
        let core = self.core.clone();
        let name = self.config.name.clone();
        ctx.spawn(async move {
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
                        core.lock().node_down(&node);
                    }
                    Ok(NodeEvent::Up { node, .. } | NodeEvent::Reachable { node }) => {
                        core.lock().node_up(&node)
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        });
        Ok(())
    }

    async fn handle(&mut self, ask: Ask<Q>, _ctx: &mut Ctx<Ask<Q>>) -> Result<(), ActorError> {
        let Ask { request, reply } = ask;
        let key = self.config.key.as_ref().and_then(|k| k(&request));
        let pick =
            self.core
                .lock()
                .pick(key.as_deref(), troupe_runtime::time::now(), &mut self.rng);
        let Some(pick) = pick else {
            metrics::counter!("troupe_balancer_unavailable_total", "balancer" => self.config.name.clone())
                .increment(1);
            reply.fail(CallError::NotFound {
                target: format!("{}: no available member", self.config.name),
            });
            return Ok(());
        };
        if let Some(picks) = self.picks.get(pick.member.0 as usize) {
            picks.increment(1);
        }
        let Some((member, _)) = self.config.members.get(pick.member.0 as usize).cloned() else {
            let _ = self
                .core
                .lock()
                .finished(pick, Outcome::Error, troupe_runtime::time::now());
            reply.fail(CallError::NotFound {
                target: format!("{}: member {}", self.config.name, pick.member),
            });
            return Ok(());
        };
        let core = self.core.clone();
        let timeout = self.config.timeout;
        let name = self.config.name.clone();
        let ejected = self.ejected.get(pick.member.0 as usize).cloned();
        // a detached task, not one on the context: a forward in flight outlives a restart of
        // the balancer (its caller still gets the member's answer), and it never fails the
        // balancer; it still sends from the balancer's node
        // boxed before spawning: the wrappers around it then move a pointer, not the future
        troupe_runtime::spawn_detached(Box::pin(async move {
            let result = member.ask(request, timeout).await;
            let outcome = match &result {
                Ok(_) => Outcome::Success,
                Err(CallError::Timeout { .. }) => Outcome::Timeout,
                Err(_) => Outcome::Error,
            };
            let change = core
                .lock()
                .finished(pick, outcome, troupe_runtime::time::now());
            if let Some(change) = change {
                if let Some(gauge) = &ejected {
                    gauge.set(if change.to == BreakerState::Closed {
                        0.0
                    } else {
                        1.0
                    });
                }
                let member = member.name().to_string();
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
        let mut actor = balancer.actor();
        (0..4).map(|_| actor.rng.next_u64()).collect()
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
