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
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "hello_cluster.Counter")]
enum CounterMsg {
    /// Add one; answered with the instance's id and its count.
    Increment(Reply<Count>),
}

/// What the counter answers: which instance answered, and its count since it started.
#[derive(Debug, Serialize, Deserialize)]
struct Count {
    instance: u64,
    value: u64,
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
        _ctx: &mut Ctx<CounterMsg>,
    ) -> Result<(), ActorError> {
        let CounterMsg::Increment(reply) = msg;
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
        Ok(())
    }
}

/// Messages the pinger handles.
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "hello_cluster.Pinger")]
enum PingerMsg {
    /// Make one call to the counter (its own timer sends this).
    Tick,
    /// Answered with the tallies so far.
    Tallies(Reply<Tallies>),
}

/// What the pinger has seen so far.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Tallies {
    calls: u64,
    restarts_seen: u64,
    errors: u64,
}

/// Calls the counter on a timer, counting answers, errors and instance changes.
#[derive(Clone)]
struct Pinger {
    counter: Addr<CounterMsg>,
    tallies: Tallies,
    last_instance: Option<u64>,
    interval: Duration,
}

impl Actor for Pinger {
    type Msg = PingerMsg;

    async fn started(&mut self, ctx: &mut Ctx<PingerMsg>) -> Result<(), ActorError> {
        ctx.send_interval(self.interval, || PingerMsg::Tick);
        Ok(())
    }

    async fn handle(
        &mut self,
        msg: PingerMsg,
        _ctx: &mut Ctx<PingerMsg>,
    ) -> Result<(), ActorError> {
        match msg {
            PingerMsg::Tallies(reply) => {
                reply.send(self.tallies);
            }
            PingerMsg::Tick => match self
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
                // the call that made the counter crash, or one caught while its node was down
                Err(err) => {
                    tracing::debug!(%err, "call failed");
                    self.tallies.errors += 1;
                }
            },
        }
        Ok(())
    }
}

/// Prints the pinger's tallies once a second, and its node's cluster events as they happen.
#[derive(Clone)]
struct Reporter {
    pinger: Addr<PingerMsg>,
}

/// The reporter's own timer.
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "hello_cluster.Report")]
struct Report;

impl Actor for Reporter {
    type Msg = Report;

    async fn started(&mut self, ctx: &mut Ctx<Report>) -> Result<(), ActorError> {
        let mut events = ctx.node().cluster_events();
        ctx.spawn(async move {
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
            Ok(())
        });
        ctx.send_interval(Duration::from_secs(1), || Report);
        Ok(())
    }

    async fn handle(&mut self, _: Report, _: &mut Ctx<Report>) -> Result<(), ActorError> {
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
    // a crash every N calls is expected: restart at once rather than backing off
    t.supervise(
        b,
        SupervisorSpec::one_for_one()
            .intensity(1_000, Duration::from_secs(10))
            .no_backoff(),
    );
    let instances = Arc::new(AtomicU64::new(0));
    // only the pinger's node may call the counter, only the reporter's the pinger
    let counter = t.add(
        b,
        "counter",
        (move || Counter {
            instance: instances.fetch_add(1, Ordering::Relaxed),
            value: 0,
            crash_every,
        })
        .reachable_from(Reach::nodes(["c"])),
    );
    // a fresh copy of these at every (re)start
    let pinger = t.add(
        c,
        "pinger",
        Restartable::from(Pinger {
            counter,
            tallies: Tallies::default(),
            last_instance: None,
            interval,
        })
        .reachable_from(Reach::nodes(["a"])),
    );
    t.add(a, "reporter", Restartable::from(Reporter { pinger }));
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
    let telemetry = troupe::telemetry::init("hello_cluster");
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
    let outcome = match args.for_secs {
        Some(secs) => {
            launch_until(
                topology,
                args.launch,
                tokio::time::sleep(Duration::from_secs(secs)),
            )
            .await
        }
        None => launch(topology, args.launch).await,
    };
    telemetry.shutdown().await;
    outcome?;
    println!("hello_cluster: stopped");
    Ok(())
}
