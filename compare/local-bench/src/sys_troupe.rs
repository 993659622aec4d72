//! troupe: a supervised, registered child of a node's root supervisor, reached by `Addr`
//! (as in `benches/local_messaging.rs` and `benches/actor_scale.rs`).

use tracing_subscriber::Layer as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use troupe_runtime::{
    Actor, ActorError, Addr, ChildOptions, Ctx, Mesh, Message, Node, NodeConfig, Reply,
    SupervisorSpec,
};

use crate::common::{
    CALL_TIMEOUT, CastPlan, Sample, ScaleRun, Tally, runtime, timed_bounded, timed_calls,
    timed_casts, timed_held_casts,
};

const SYSTEM: &str = "troupe";

#[derive(Serialize, Deserialize)]
enum CounterMsg {
    Add(u64),
    Get(Reply<u64>),
    /// Waits for the plan's gate (the `drain` bench).
    Hold,
}

impl Message for CounterMsg {
    const NAME: &'static str = "bench.Counter";
}

struct Counter(Tally, Arc<Notify>);

impl Actor for Counter {
    type Msg = CounterMsg;

    async fn handle(
        &mut self,
        msg: CounterMsg,
        _ctx: &mut Ctx<CounterMsg>,
    ) -> Result<(), ActorError> {
        match msg {
            CounterMsg::Add(n) => self.0.add(n),
            CounterMsg::Get(reply) => {
                reply.send(self.0.total);
            }
            CounterMsg::Hold => self.1.notified().await,
        }
        Ok(())
    }
}

/// One node with the counter as a permanent child of its root supervisor. The mailbox limit is
/// raised above the run's message count so that no cast is refused as `Overloaded` (the other
/// systems' mailboxes are unbounded here).
async fn counter_node(plan: &CastPlan) -> anyhow::Result<(Node, Addr<CounterMsg>)> {
    let node = Node::new("bench", &Mesh::new(), NodeConfig::default())?;
    let limit = (2 * (plan.warm + plan.n)) as usize;
    let plan = plan.clone();
    let (spec, addr) = node.child(
        "counter",
        ChildOptions::permanent().mailbox_limit(limit),
        move || Counter(plan.tally(), plan.gate.clone()),
    )?;
    node.start(SupervisorSpec::one_for_one(), vec![spec])
        .await?;
    Ok((node, addr))
}

pub fn cast(variant: &str, n: u64, limit: Duration) -> anyhow::Result<Sample> {
    match variant {
        "cast" => {}
        "cast_observed" => observe()?,
        _ => bail!("troupe cast variants: cast, cast_observed"),
    }
    casts("cast", variant, n, limit)
}

/// What a launched troupe program exporting traces runs with: the Prometheus recorder that
/// `/metrics` renders, installed process-wide, and the subscriber `troupe::telemetry::init`
/// installs when an OTLP endpoint is set: log lines at `warn` (discarded here) and an
/// OpenTelemetry layer taking spans at `info` but not ractor's (its spans dropped here instead
/// of exported), with trace context looked up on every send.
fn observe() -> anyhow::Result<()> {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    troupe_admin::prometheus().context("install the Prometheus recorder")?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::sink)
                .with_filter(tracing_subscriber::filter::LevelFilter::WARN),
        )
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("bench"))
                .with_filter(
                    tracing_subscriber::filter::Targets::new()
                        .with_default(tracing_subscriber::filter::LevelFilter::INFO)
                        .with_target("ractor", tracing_subscriber::filter::LevelFilter::OFF),
                ),
        )
        .try_init()
        .map_err(|e| anyhow::anyhow!("install a tracing subscriber: {e}"))?;
    troupe_runtime::trace::enable();
    Ok(())
}

/// The cast run with sending and handling timed apart (see `timed_held_casts`).
pub fn drain(variant: &str, n: u64, limit: Duration) -> anyhow::Result<Sample> {
    if variant != "held" {
        bail!("troupe drain variants: held");
    }
    casts("drain", variant, n, limit)
}

/// N casts to the counter; for the `drain` bench the counter is held while they queue.
fn casts(bench: &str, variant: &str, n: u64, limit: Duration) -> anyhow::Result<Sample> {
    let held = bench == "drain";
    let rt = runtime()?;
    rt.block_on(async {
        let plan = CastPlan::new(n, limit);
        let (node, addr) = counter_node(&plan).await?;
        let sender = {
            let (plan, addr) = (plan.clone(), addr.clone());
            tokio::spawn(async move {
                let send = |v| addr.cast(CounterMsg::Add(v)).context("troupe cast");
                if held {
                    let hold = || addr.cast(CounterMsg::Hold).context("troupe hold");
                    timed_held_casts(&plan, hold, send).await
                } else {
                    timed_casts(&plan, send).await
                }
            })
        };
        let (secs, sent) = sender.await??;
        let total = addr.call(CounterMsg::Get, CALL_TIMEOUT).await?;
        if total != plan.warm + n || addr.dropped() != 0 {
            bail!("troupe counted {total}, dropped {}", addr.dropped());
        }
        node.shutdown().await;
        let mut s = Sample::rate(bench, SYSTEM, variant, n, secs);
        s.send_secs = Some(sent);
        Ok(s)
    })
}

pub fn call(variant: &str, m: u64, limit: Duration) -> anyhow::Result<Sample> {
    // call_untimed: Duration::MAX, troupe's call without a deadline (like ractor's call!)
    let timeout = match variant {
        "call_timeout" => CALL_TIMEOUT,
        "call_untimed" => Duration::MAX,
        "call_untimed_observed" => {
            observe()?;
            Duration::MAX
        }
        _ => bail!("troupe call variants: call_timeout, call_untimed, call_untimed_observed"),
    };
    let rt = runtime()?;
    rt.block_on(async {
        let plan = CastPlan::new(1, limit);
        let (node, addr) = counter_node(&plan).await?;
        let secs = tokio::spawn({
            let addr = addr.clone();
            async move {
                timed_calls(m, limit, || async {
                    addr.call(CounterMsg::Get, timeout)
                        .await
                        .context("troupe call")
                })
                .await
            }
        })
        .await??;
        node.shutdown().await;
        Ok(Sample::rate("call", SYSTEM, variant, m, secs))
    })
}

// ---------------------------------------------------------------- scale

#[derive(Serialize, Deserialize)]
struct Ping(Reply<()>);

impl Message for Ping {
    const NAME: &'static str = "bench.Ping";
}

struct Idle;

impl Actor for Idle {
    type Msg = Ping;

    async fn handle(&mut self, Ping(reply): Ping, _ctx: &mut Ctx<Ping>) -> Result<(), ActorError> {
        reply.send(());
        Ok(())
    }
}

/// N permanent children of one node's root supervisor, each registered as `a{i}`, spawned one
/// after another with `root.spawn` (as `benches/actor_scale.rs`), one `Addr` kept per actor.
pub fn scale(variant: &str, n: u64, limit: Duration) -> anyhow::Result<Sample> {
    if variant != "supervised_named" {
        bail!("troupe scale variants: supervised_named");
    }
    let rt = runtime()?;
    rt.block_on(async {
        let node = Node::new("bench", &Mesh::new(), NodeConfig::default())?;
        let root = node.start(SupervisorSpec::one_for_one(), vec![]).await?;
        let mut addrs: Vec<Addr<Ping>> = Vec::with_capacity(n as usize);
        let mut run = ScaleRun::begin("troupe", n, limit)?;
        for i in 0..n {
            let addr = root
                .spawn(&format!("a{i}"), ChildOptions::permanent(), || Idle)
                .await?;
            addrs.push(addr);
            run.tick(i + 1)?;
        }
        let mut s = run.finish((SYSTEM, variant)).await?;

        // all alive, supervised, registered and reachable
        let children = root.children().await?.len() as u64;
        if children != n {
            bail!("the root supervisor has {children} children, expected {n}");
        }
        for i in [0, n / 2, n - 1] {
            let addr: Addr<Ping> = node.lookup(&format!("a{i}"))?;
            addr.call(Ping, Duration::from_secs(10)).await?;
        }
        drop(addrs);
        // stopped again, all of them, within the bound
        s.shutdown_secs = timed_bounded(Duration::from_secs(30), node.shutdown()).await;
        if s.shutdown_secs.is_none() {
            bail!("troupe: stopping {n} actors took over 30 s");
        }
        let left = node.names().len();
        if left != 0 {
            bail!("troupe: {left} of {n} actors still registered after the stop");
        }
        Ok(s)
    })
}
