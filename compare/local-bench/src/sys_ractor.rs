//! Raw ractor 0.16 (default features off, as troupe uses it): plain `ActorRef`s.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ractor::{ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::Notify;

use crate::common::{
    CALL_TIMEOUT, CastPlan, Sample, ScaleRun, Tally, runtime, timed_bounded, timed_calls,
    timed_casts, timed_held_casts,
};

const SYSTEM: &str = "ractor";

enum CounterMsg {
    Add(u64),
    Get(RpcReplyPort<u64>),
    /// Waits for this gate (the `drain` bench).
    Hold(Arc<Notify>),
}

struct Counter;

impl ractor::Actor for Counter {
    type Msg = CounterMsg;
    type State = Tally;
    type Arguments = Tally;

    async fn pre_start(
        &self,
        _myself: ActorRef<CounterMsg>,
        tally: Tally,
    ) -> Result<Tally, ActorProcessingErr> {
        Ok(tally)
    }

    async fn handle(
        &self,
        _myself: ActorRef<CounterMsg>,
        msg: CounterMsg,
        tally: &mut Tally,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CounterMsg::Add(n) => tally.add(n),
            CounterMsg::Get(port) => {
                let _ = port.send(tally.total);
            }
            CounterMsg::Hold(gate) => gate.notified().await,
        }
        Ok(())
    }
}

/// The cast run with sending and handling timed apart (see `timed_held_casts`).
pub fn drain(variant: &str, n: u64, limit: Duration) -> anyhow::Result<Sample> {
    if variant != "held" {
        bail!("ractor drain variants: held");
    }
    casts("drain", variant, n, limit)
}

/// A plain ractor actor spawned unnamed (as `benches/local_messaging.rs`); its mailbox is
/// unbounded.
pub fn cast(variant: &str, n: u64, limit: Duration) -> anyhow::Result<Sample> {
    if variant != "cast" {
        bail!("ractor cast variants: cast");
    }
    casts("cast", variant, n, limit)
}

/// N casts to the counter; for the `drain` bench the counter is held while they queue.
fn casts(bench: &str, variant: &str, n: u64, limit: Duration) -> anyhow::Result<Sample> {
    let held = bench == "drain";
    let rt = runtime()?;
    rt.block_on(async {
        let plan = CastPlan::new(n, limit);
        let (actor, join) = ractor::Actor::spawn(None, Counter, plan.tally()).await?;
        let sender = {
            let (plan, actor) = (plan.clone(), actor.clone());
            tokio::spawn(async move {
                let send = |v| actor.cast(CounterMsg::Add(v)).context("ractor cast");
                if held {
                    let gate = plan.gate.clone();
                    let hold = || {
                        let gate = gate.clone();
                        actor.cast(CounterMsg::Hold(gate)).context("ractor hold")
                    };
                    timed_held_casts(&plan, hold, send).await
                } else {
                    timed_casts(&plan, send).await
                }
            })
        };
        let (secs, sent) = sender.await??;
        let total = ractor::call!(actor, CounterMsg::Get)?;
        if total != plan.warm + n {
            bail!("ractor counted {total}");
        }
        actor.stop(None);
        let _ = join.await;
        let mut s = Sample::rate(bench, SYSTEM, variant, n, secs);
        s.send_secs = Some(sent);
        Ok(s)
    })
}

/// `call` = `ractor::call!` (no timeout, ractor's cheapest call); `call_timeout` =
/// `ractor::call_t!` with the same 30 s timeout troupe's call carries.
pub fn call(variant: &str, m: u64, limit: Duration) -> anyhow::Result<Sample> {
    let timeout_ms = CALL_TIMEOUT.as_millis() as u64;
    let rt = runtime()?;
    rt.block_on(async {
        let plan = CastPlan::new(1, limit);
        let (actor, join) = ractor::Actor::spawn(None, Counter, plan.tally()).await?;
        let task = {
            let actor = actor.clone();
            let variant = variant.to_string();
            tokio::spawn(async move {
                match variant.as_str() {
                    "call" => {
                        timed_calls(m, limit, || async {
                            ractor::call!(actor, CounterMsg::Get).context("ractor call!")
                        })
                        .await
                    }
                    "call_timeout" => {
                        timed_calls(m, limit, || async {
                            ractor::call_t!(actor, CounterMsg::Get, timeout_ms)
                                .context("ractor call_t!")
                        })
                        .await
                    }
                    other => bail!("ractor call variants: call, call_timeout (not {other})"),
                }
            })
        };
        let secs = task.await??;
        actor.stop(None);
        let _ = join.await;
        Ok(Sample::rate("call", SYSTEM, variant, m, secs))
    })
}

// ---------------------------------------------------------------- scale

struct Ping;

struct Idle;

impl ractor::Actor for Idle {
    type Msg = Ping;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Ping>,
        _args: (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// A plain ractor supervisor: links its children and ignores their events (ractor has no
/// restart strategies of its own; this is the "supervised" a raw ractor user gets).
struct Supervisor;

impl ractor::Actor for Supervisor {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<()>, _args: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<()>,
        _event: SupervisionEvent,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// N idle actors `spawn_linked` under one supervisor actor, one `ActorRef` kept per actor.
/// `linked_named`: each registered as `a{i}` in ractor's registry (process-global, a
/// `DashMap`); `linked_unnamed`: no name (as `benches/actor_scale.rs`).
pub fn scale(variant: &str, n: u64, limit: Duration) -> anyhow::Result<Sample> {
    let named = match variant {
        "linked_named" => true,
        "linked_unnamed" => false,
        other => bail!("ractor scale variants: linked_named, linked_unnamed (not {other})"),
    };
    let rt = runtime()?;
    rt.block_on(async {
        let (supervisor, supervisor_join) = ractor::Actor::spawn(None, Supervisor, ()).await?;
        let parent: ActorCell = supervisor.get_cell();
        let mut refs: Vec<ActorRef<Ping>> = Vec::with_capacity(n as usize);
        let mut run = ScaleRun::begin(&format!("ractor {variant}"), n, limit)?;
        for i in 0..n {
            let name = named.then(|| format!("a{i}"));
            let (actor, _join) =
                ractor::Actor::spawn_linked(name, Idle, (), parent.clone()).await?;
            refs.push(actor);
            run.tick(i + 1)?;
        }
        let mut s = run.finish((SYSTEM, variant)).await?;

        let children = parent.get_children().len() as u64;
        if children != n {
            bail!("the ractor supervisor has {children} children, expected {n}");
        }
        if named {
            for i in [0, n / 2, n - 1] {
                ractor::registry::where_is(format!("a{i}"))
                    .with_context(|| format!("a{i} is not registered"))?;
            }
        }
        drop(refs);
        s.shutdown_secs = timed_bounded(Duration::from_secs(30), async {
            supervisor
                .stop_children_and_wait(None, Some(Duration::from_secs(30)))
                .await;
            supervisor.stop(None);
            let _ = supervisor_join.await;
        })
        .await;
        if s.shutdown_secs.is_none() {
            bail!("ractor: stopping {n} actors took over 30 s");
        }
        Ok(s)
    })
}
