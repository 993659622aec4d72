//! failover: a counter that outlives its node.
//!
//! ```text
//! cargo run --example failover                        # all three nodes in this process
//! ```
//!
//! Nodes `a`, `b` and `c` each hold a replica of the cluster's metadata group (a small Raft
//! group that records who runs what). The `counter` is a failover child: it runs on `b`, or
//! on `c` while `b` is down, never on both (a lease in the metadata group decides). The
//! `pinger` on `a` increments it every `--interval-ms` through one handle and prints who
//! served it (`served by b count 120`), and, when the counter moves, the gap between the last
//! answer from the old node and the first from the new one (`moved from b to c after 3620 ms`).
//! The pinger's node prints what it sees of the others (`node up b`, `node down b (...)`).
//! Each node prints `counter started on NODE` and `counter gone from NODE` as its instance
//! comes and goes (`counter stopped on NODE` first when it is stopped gracefully, in a
//! hand-over; a node whose lease ran out kills it). The counter's count starts again from zero on the new node: a failover child keeps no
//! state of its own across nodes (keep it in the database or the queue).
//!
//! Across three processes — then kill `b` with `kill -9` and watch `a`:
//!
//! ```text
//! troupe ca init ca && for n in a b c; do troupe ca issue ca $n; done
//! cargo run --example failover -- --node a --listen 127.0.0.1:7201 --ca ca --data d/a
//! cargo run --example failover -- --node b --listen 127.0.0.1:7202 --seed 127.0.0.1:7201 --ca ca --data d/b
//! cargo run --example failover -- --node c --listen 127.0.0.1:7203 --seed 127.0.0.1:7201 --ca ca --data d/c
//! ```
//!
//! A fourth process can join without being declared: any node playing role `spare` may run
//! the counter after `b` and `c`. Its certificate carries the role, which peers check:
//!
//! ```text
//! troupe ca issue ca d --role spare
//! cargo run --example failover -- --node d --role spare --listen 127.0.0.1:7204 --seed 127.0.0.1:7201 --ca ca --data d/d
//! ```
//!
//! Or move it by hand: give each process `--admin 127.0.0.1:909N` and an operator a
//! certificate (`troupe ca issue ca alice --operator`), then
//!
//! ```text
//! troupe placement --admin 127.0.0.1:9091                        # the counter on b
//! troupe move counter.failover c --admin 127.0.0.1:9091 --ca ca --operator alice
//! troupe drain c --leave --admin 127.0.0.1:9093 --ca ca --operator alice   # back to b; c leaves
//! troupe drain c --undo --admin 127.0.0.1:9091 --ca ca --operator alice
//! ```

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use troupe::prelude::*;

#[derive(Debug, Parser)]
#[command(about = "A counter that outlives its node: kill the node it runs on, watch it move")]
struct Args {
    #[command(flatten)]
    launch: LaunchArgs,
    /// Where the metadata group's replicas keep their files
    #[arg(long, default_value = "./troupe-data/failover")]
    data: PathBuf,
    /// How often the pinger increments the counter
    #[arg(long, default_value_t = 50)]
    interval_ms: u64,
    /// Stop after this many seconds (0: run until Ctrl-C)
    #[arg(long, default_value_t = 0)]
    for_secs: u64,
}

/// The counter's messages
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "failover.Counter")]
enum CounterMsg {
    /// Add one; answered with the node that served it and the count there
    Increment(Reply<(String, u64)>),
}

/// Counts increments on whichever node runs it
#[derive(Default)]
struct Counter {
    value: u64,
    /// The node it runs on, once started
    node: Option<String>,
}

impl Drop for Counter {
    /// However the instance ends: stopped (a hand-over) or killed (its lease ran out)
    fn drop(&mut self) {
        if let Some(node) = &self.node {
            say(&format!("counter gone from {node}"));
        }
    }
}

impl Actor for Counter {
    type Msg = CounterMsg;

    async fn started(&mut self, ctx: &mut Ctx<CounterMsg>) -> Result<(), ActorError> {
        say(&format!("counter started on {}", ctx.node().name()));
        self.node = Some(ctx.node().name().to_string());
        Ok(())
    }

    async fn stopped(&mut self, ctx: &mut Ctx<CounterMsg>) -> Result<(), ActorError> {
        say(&format!("counter stopped on {}", ctx.node().name()));
        Ok(())
    }

    async fn handle(
        &mut self,
        msg: CounterMsg,
        ctx: &mut Ctx<CounterMsg>,
    ) -> Result<(), ActorError> {
        let CounterMsg::Increment(reply) = msg;
        self.value += 1;
        reply.send((ctx.node().name().to_string(), self.value));
        Ok(())
    }
}

/// The pinger's clock
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "failover.Tick")]
struct Tick;

/// Increments the counter on every tick and reports who served it
struct Pinger {
    counter: Addr<CounterMsg>,
    interval: Duration,
    /// The node that answered last, and when
    last: Option<(String, tokio::time::Instant)>,
    answered: u64,
    failed: u64,
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

impl Actor for Pinger {
    type Msg = Tick;

    async fn started(&mut self, ctx: &mut Ctx<Tick>) -> Result<(), ActorError> {
        // what this node sees of the others: `node up b`, `node down b (...)`
        let mut events = ctx.node().cluster_events();
        ctx.spawn(async move {
            use troupe::runtime::remote::NodeEvent;
            loop {
                match events.recv().await {
                    Ok(NodeEvent::Up { node, .. }) => say(&format!("node up {node}")),
                    Ok(NodeEvent::Down { node, reason }) => {
                        say(&format!("node down {node} ({reason})"))
                    }
                    Ok(NodeEvent::Left { node }) => say(&format!("node left {node}")),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        });
        ctx.send_interval(self.interval, || Tick);
        Ok(())
    }

    async fn handle(&mut self, _: Tick, _: &mut Ctx<Tick>) -> Result<(), ActorError> {
        let answer = self
            .counter
            .call(CounterMsg::Increment, Duration::from_millis(500))
            .await;
        let now = tokio::time::Instant::now();
        match answer {
            Ok((node, count)) => {
                self.answered += 1;
                if let Some((before, at)) = &self.last
                    && *before != node
                {
                    let gap = now.duration_since(*at).as_millis();
                    say(&format!("moved from {before} to {node} after {gap} ms"));
                }
                if count % 20 == 1 {
                    say(&format!(
                        "served by {node} count {count} (answered {} failed {})",
                        self.answered, self.failed
                    ));
                }
                self.last = Some((node, now));
            }
            Err(error) => {
                self.failed += 1;
                tracing::debug!(%error, "increment failed");
            }
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = troupe::telemetry::init_with("failover", "warn,troupe_failover=info");
    let args = Args::parse();
    let mut t = Topology::new("failover");
    let (a, b, c) = (t.node("a"), t.node("b"), t.node("c"));
    t.metadata([a, b, c], &args.data);
    let counter = t.add(
        b,
        "counter",
        (Counter::default)
            .failover_to([c])
            .or_role("spare")
            .reachable_from(Reach::cluster()),
    );
    let interval = Duration::from_millis(args.interval_ms.max(1));
    t.add(a, "pinger", move || Pinger {
        counter: counter.clone(),
        interval,
        last: None,
        answered: 0,
        failed: 0,
    });
    let for_secs = args.for_secs;
    let until = async move {
        if for_secs == 0 {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_secs(for_secs)).await;
    };
    let outcome = troupe::launch_until(t, args.launch, until).await;
    telemetry.shutdown().await;
    Ok(outcome?)
}
