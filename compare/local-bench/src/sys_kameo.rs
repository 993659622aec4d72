//! kameo 0.22 (default features off: no `tracing` spans captured per message, matching the
//! ractor configuration; `macros` are not needed).

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use kameo::actor::{ActorRef, Spawn};
use kameo::error::Infallible;
use kameo::mailbox;
use kameo::message::{Context as KContext, Message};

use crate::common::{
    CALL_TIMEOUT, CastPlan, Sample, ScaleRun, Tally, runtime, timed_bounded, timed_calls,
    timed_casts, timed_casts_async,
};

const SYSTEM: &str = "kameo";

struct Counter(Tally);

impl kameo::Actor for Counter {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(state: Self, _actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

struct Add(u64);
struct Get;

impl Message<Add> for Counter {
    type Reply = ();

    async fn handle(&mut self, Add(n): Add, _ctx: &mut KContext<Self, ()>) {
        self.0.add(n);
    }
}

impl Message<Get> for Counter {
    type Reply = u64;

    async fn handle(&mut self, _msg: Get, _ctx: &mut KContext<Self, u64>) -> u64 {
        self.0.total
    }
}

/// `tell_unbounded`: the counter spawned with `mailbox::unbounded()` (like ractor's and the
/// tokio channel), `tell(..).try_send()`. `tell_bounded64`: kameo's default `spawn` (a bounded
/// mailbox of 64) and `tell(..).await`, which waits for room: kameo's default back-pressure.
pub fn cast(variant: &str, n: u64, limit: Duration) -> anyhow::Result<Sample> {
    let bounded = match variant {
        "tell_unbounded" => false,
        "tell_bounded64" => true,
        other => bail!("kameo cast variants: tell_unbounded, tell_bounded64 (not {other})"),
    };
    let rt = runtime()?;
    rt.block_on(async {
        let plan = CastPlan::new(n, limit);
        let actor = if bounded {
            Counter::spawn(Counter(plan.tally()))
        } else {
            Counter::spawn_with_mailbox(Counter(plan.tally()), mailbox::unbounded())
        };
        actor.wait_for_startup().await;
        let sender = {
            let (plan, actor) = (plan.clone(), actor.clone());
            tokio::spawn(async move {
                if bounded {
                    timed_casts_async(&plan, |v| {
                        let actor = &actor;
                        async move {
                            actor
                                .tell(Add(v))
                                .await
                                .map_err(|_| anyhow!("kameo tell failed"))
                        }
                    })
                    .await
                } else {
                    timed_casts(&plan, |v| {
                        actor
                            .tell(Add(v))
                            .try_send()
                            .map_err(|_| anyhow!("kameo tell failed"))
                    })
                    .await
                }
            })
        };
        let (secs, sent) = sender.await??;
        let total = actor.ask(Get).await.map_err(|_| anyhow!("kameo ask"))?;
        if total != plan.warm + n {
            bail!("kameo counted {total}");
        }
        actor.kill();
        actor.wait_for_shutdown().await;
        let mut s = Sample::rate("cast", SYSTEM, variant, n, secs);
        s.send_secs = Some(sent);
        Ok(s)
    })
}

/// `ask`: `actor_ref.ask(Get).await` (no timeout); `ask_timeout`: with
/// `.reply_timeout(30 s)`. The counter has kameo's default mailbox (bounded, 64).
pub fn call(variant: &str, m: u64, limit: Duration) -> anyhow::Result<Sample> {
    let timed = match variant {
        "ask" => false,
        "ask_timeout" => true,
        other => bail!("kameo call variants: ask, ask_timeout (not {other})"),
    };
    let rt = runtime()?;
    rt.block_on(async {
        let plan = CastPlan::new(1, limit);
        let actor = Counter::spawn(Counter(plan.tally()));
        actor.wait_for_startup().await;
        let task = {
            let actor = actor.clone();
            tokio::spawn(async move {
                if timed {
                    timed_calls(m, limit, || async {
                        actor
                            .ask(Get)
                            .reply_timeout(CALL_TIMEOUT)
                            .await
                            .map_err(|_| anyhow!("kameo ask with timeout failed"))
                    })
                    .await
                } else {
                    timed_calls(m, limit, || async {
                        actor
                            .ask(Get)
                            .await
                            .map_err(|_| anyhow!("kameo ask failed"))
                    })
                    .await
                }
            })
        };
        let secs = task.await??;
        actor.kill();
        actor.wait_for_shutdown().await;
        Ok(Sample::rate("call", SYSTEM, variant, m, secs))
    })
}

// ---------------------------------------------------------------- scale

struct Idle;

impl kameo::Actor for Idle {
    type Args = ();
    type Error = Infallible;

    async fn on_start(_args: (), _actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(Idle)
    }
}

struct Ping;

impl Message<Ping> for Idle {
    type Reply = ();

    async fn handle(&mut self, _msg: Ping, _ctx: &mut KContext<Self, ()>) {}
}

/// A kameo supervisor: one-for-one (kameo's default strategy).
struct Supervisor;

impl kameo::Actor for Supervisor {
    type Args = ();
    type Error = Infallible;

    async fn on_start(_args: (), _actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(Supervisor)
    }
}

/// N idle actors, each `Idle::supervise(&supervisor, ()).spawn().await` (kameo's supervision
/// API, restart policy Permanent by default, default bounded mailbox of 64) and then
/// `actor_ref.register("a{i}")` in kameo's local registry (process-global, a `HashMap` behind a
/// `Mutex`). kameo's spawn returns before the actor's `on_start` ran, so the clock stops only
/// after `wait_for_startup` has returned for all N (awaited in order after the loop).
pub fn scale(variant: &str, n: u64, limit: Duration) -> anyhow::Result<Sample> {
    if variant != "supervised_registered" {
        bail!("kameo scale variants: supervised_registered");
    }
    let rt = runtime()?;
    rt.block_on(async {
        let supervisor = Supervisor::spawn(());
        supervisor.wait_for_startup().await;
        let mut refs: Vec<ActorRef<Idle>> = Vec::with_capacity(n as usize);
        let mut run = ScaleRun::begin("kameo", n, limit)?;
        for i in 0..n {
            let actor = Idle::supervise(&supervisor, ()).spawn().await;
            actor
                .register(format!("a{i}"))
                .map_err(|e| anyhow!("register a{i}: {e}"))?;
            refs.push(actor);
            run.tick(i + 1)?;
        }
        for actor in &refs {
            actor.wait_for_startup().await;
        }
        let mut s = run.finish((SYSTEM, variant)).await?;

        for i in [0, n / 2, n - 1] {
            let actor = ActorRef::<Idle>::lookup(format!("a{i}").as_str())
                .map_err(|e| anyhow!("lookup a{i}: {e}"))?
                .with_context(|| format!("a{i} is not registered"))?;
            actor.ask(Ping).await.map_err(|_| anyhow!("ask a{i}"))?;
        }
        drop(refs);
        s.shutdown_secs = timed_bounded(Duration::from_secs(30), async {
            let _ = supervisor.stop_gracefully().await;
            supervisor.wait_for_shutdown().await;
        })
        .await;
        Ok(s)
    })
}
