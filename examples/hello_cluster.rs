//! hello_cluster: three nodes, a counter that crashes on purpose, and a pinger that keeps
//! calling it through the restarts.
//!
//! ```text
//! cargo run --example hello_cluster                   # all three nodes in this process
//! cargo run --example hello_cluster -- --crash-every 5 --for-secs 10
//! ```
//!
//! Node `a` runs a reporter, node `b` the counter, node `c` the pinger. The counter panics on
//! every Nth increment; its supervisor restarts it (a fresh instance, same name), and the
//! pinger's handle reaches the new instance without looking anything up again. Once a second
//! the reporter asks the pinger for its tallies and prints calls done, restarts seen and
//! errors; it also prints every cluster event its node sees (`node up b`, `node down b ...`).
//!
//! The same topology runs as three processes (see the README, "Running across hosts"):
//!
//! ```text
//! troupe ca init ca && for n in a b c; do troupe ca issue ca $n; done
//! cargo run --example hello_cluster -- --node a --listen 127.0.0.1:7001 --ca ca
//! cargo run --example hello_cluster -- --node b --listen 127.0.0.1:7002 --seed 127.0.0.1:7001 --ca ca
//! cargo run --example hello_cluster -- --node c --listen 127.0.0.1:7003 --seed 127.0.0.1:7001 --ca ca
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use troupe::prelude::*;

/// Messages the counter understands.
#[derive(Debug, Serialize, Deserialize)]
enum CounterMsg {
    /// Add one; replies with the instance's id and its count.
    Increment,
}

/// What the counter answers: which instance answered, and its count since it started.
#[derive(Debug, Serialize, Deserialize)]
struct Count {
    instance: u64,
    value: u64,
}

impl Message for CounterMsg {
    const NAME: &'static str = "hello_cluster.Counter";
    const VERSION: u16 = 1;
    type Reply = Count;
}

/// Counts increments; panics on every `crash_every`-th one.
struct Counter {
    instance: u64,
    value: u64,
    crash_every: u64,
}

impl Actor for Counter {
    type Msg = CounterMsg;

    async fn handle(
        &mut self,
        msg: CounterMsg,
        reply: ReplyTo<Count>,
        _ctx: &Ctx<CounterMsg>,
    ) -> Result<(), ActorError> {
        match msg {
            CounterMsg::Increment => {
                self.value += 1;
                if self.crash_every > 0 && self.value.is_multiple_of(self.crash_every) {
                    panic!(
                        "counter {} crashes on purpose at {}",
                        self.instance, self.value
                    );
                }
                reply.send(Count {
                    instance: self.instance,
                    value: self.value,
                });
            }
        }
        Ok(())
    }
}

/// Messages the pinger handles.
#[derive(Debug, Serialize, Deserialize)]
enum PingerMsg {
    /// Make one call to the counter, then schedule the next (sent to itself).
    Tick,
    /// Reply with the tallies so far.
    Tallies,
}

/// What the pinger has seen so far.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Tallies {
    calls: u64,
    restarts_seen: u64,
    errors: u64,
}

impl Message for PingerMsg {
    const NAME: &'static str = "hello_cluster.Pinger";
    type Reply = Tallies;
}

/// Calls the counter in a loop, counting answers, errors and instance changes.
struct Pinger {
    counter: Addr<CounterMsg>,
    tallies: Tallies,
    last_instance: Option<u64>,
    interval: Duration,
}

impl Actor for Pinger {
    type Msg = PingerMsg;

    async fn started(&mut self, ctx: &Ctx<PingerMsg>) -> Result<(), ActorError> {
        ctx.myself().cast(PingerMsg::Tick)?;
        Ok(())
    }

    async fn handle(
        &mut self,
        msg: PingerMsg,
        reply: ReplyTo<Tallies>,
        ctx: &Ctx<PingerMsg>,
    ) -> Result<(), ActorError> {
        if let PingerMsg::Tallies = msg {
            reply.send(self.tallies);
            return Ok(());
        }
        match self
            .counter
            .call(CounterMsg::Increment, Duration::from_secs(1))
            .await
        {
            Ok(count) => {
                self.tallies.calls += 1;
                if self
                    .last_instance
                    .is_some_and(|last| last != count.instance)
                {
                    self.tallies.restarts_seen += 1;
                }
                self.last_instance = Some(count.instance);
            }
            // the call that made the counter crash, or one that arrived while it restarted
            // (or while its node was down)
            Err(err) => {
                tracing::debug!(%err, "call failed");
                self.tallies.errors += 1;
            }
        }
        let myself = ctx.myself().clone();
        let interval = self.interval;
        tokio::spawn(async move {
            tokio::time::sleep(interval).await;
            let _ = myself.cast(PingerMsg::Tick);
        });
        Ok(())
    }
}

/// Prints the pinger's tallies once a second, and its node's cluster events as they happen.
struct Reporter {
    pinger: Addr<PingerMsg>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Report;

impl Message for Report {
    const NAME: &'static str = "hello_cluster.Report";
    type Reply = ();
}

impl Actor for Reporter {
    type Msg = Report;

    async fn started(&mut self, ctx: &Ctx<Report>) -> Result<(), ActorError> {
        {
            let mut events = ctx.node().cluster_events();
            tokio::spawn(async move {
                use troupe::runtime::remote::NodeEvent;
                while let Ok(event) = events.recv().await {
                    match event {
                        NodeEvent::Up { node, incarnation } => {
                            println!("node up {node} (incarnation {incarnation:x})")
                        }
                        NodeEvent::Down { node, reason } => println!("node down {node} ({reason})"),
                        NodeEvent::Left { node } => println!("node left {node}"),
                        other => println!("cluster event {other:?}"),
                    }
                }
            });
        }
        let me = ctx.myself().clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.tick().await;
            loop {
                every.tick().await;
                if me.cast(Report).is_err() {
                    break;
                }
            }
        });
        Ok(())
    }

    async fn handle(
        &mut self,
        _: Report,
        _: ReplyTo<()>,
        _: &Ctx<Report>,
    ) -> Result<(), ActorError> {
        match self
            .pinger
            .call(PingerMsg::Tallies, Duration::from_millis(500))
            .await
        {
            Ok(t) => println!(
                "calls {:>6}   restarts seen {:>4}   errors {:>4}",
                t.calls, t.restarts_seen, t.errors
            ),
            Err(err) => println!("pinger unreachable: {err}"),
        }
        Ok(())
    }
}

/// The topology: reporter on `a`, counter on `b`, pinger on `c`.
fn hello_cluster(crash_every: u64, interval: Duration) -> Topology {
    let mut t = Topology::new("hello_cluster");
    let (a, b, c) = (t.node("a"), t.node("b"), t.node("c"));
    // a crash every N calls is expected: allow plenty of restarts before giving up
    t.supervise(
        b,
        SupervisorSpec::one_for_one().intensity(1_000, Duration::from_secs(10)),
    );
    let instances = Arc::new(AtomicU64::new(0));
    let counter = t.add(b, "counter", move || Counter {
        instance: instances.fetch_add(1, Ordering::Relaxed),
        value: 0,
        crash_every,
    });
    let pinger = t.add(c, "pinger", move || Pinger {
        counter: counter.clone(),
        tallies: Tallies::default(),
        last_instance: None,
        interval,
    });
    t.add(a, "reporter", move || Reporter {
        pinger: pinger.clone(),
    });
    t
}

#[derive(Debug, Parser)]
#[command(about = "Three nodes, a crashing counter, and a pinger that keeps calling it")]
struct Args {
    /// The counter panics on every Nth increment (0: never).
    #[arg(long, default_value_t = 7)]
    crash_every: u64,
    /// Pause between the pinger's calls, in milliseconds.
    #[arg(long, default_value_t = 50)]
    interval_ms: u64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    for_secs: Option<u64>,
    #[command(flatten)]
    launch: LaunchArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    // the counter's deliberate panics are expected; keep their messages short
    std::panic::set_hook(Box::new(|info| {
        tracing::debug!("{info}");
    }));
    let args = Args::parse();
    let topology = hello_cluster(args.crash_every, Duration::from_millis(args.interval_ms));
    println!(
        "hello_cluster: counter on b crashes every {} calls; Ctrl-C to stop",
        args.crash_every
    );
    match args.for_secs {
        Some(secs) => {
            launch_until(
                topology,
                args.launch,
                tokio::time::sleep(Duration::from_secs(secs)),
            )
            .await?
        }
        None => launch(topology, args.launch).await?,
    }
    println!("hello_cluster: stopped");
    Ok(())
}
