//! Scale across nodes: remote cast throughput of the same three troupe nodes spread over 1, 2
//! and 3 OS processes on 127.0.0.1, over QUIC with mutual TLS (issue 9).
//!
//! The topology is a ring of three nodes, `a`, `b` and `c`. Each node hosts a `sink` actor and
//! a sender task: the sender on `a` casts `N` 64-byte payloads (`serde_bytes`) to `b/sink`, `b`
//! casts to `c/sink` and `c` to `a/sink`, so every cast crosses nodes in every layout. Each node
//! has a mesh and a `NodeNet` of its own (bound on `127.0.0.1:0`), so even nodes in one process
//! reach each other only through QUIC on loopback, never through memory.
//!
//! The layouts place the same three nodes in processes (children of this binary, `--role
//! nodes --nodes ...`): one process (`a+b+c`), two (`a+b | c`), three (`a | b | c`). Each node
//! seeds every node started before it, so they form a full mesh. Once every node of a process
//! is connected to the two others, each sender warms up (10,000 casts, then a `Reset` call that
//! travels the same lane, so it is handled after them) and the process says `READY`; when every
//! process is ready, the parent says `GO` to all of them at once (on stdin) and all three senders
//! start. A cast refused with `Overloaded` (the lane buffer to the peer is full) is retried with
//! the same payload after a `yield_now`; the retries are counted and reported.
//!
//! A sink reads the wall clock (nanoseconds since the UNIX epoch, comparable across processes on
//! one machine) only at its first and its `N`-th message. The result per layout is the total
//! throughput counted at the receivers, `3 N / (last message handled by any sink - first
//! message handled by any sink)`, with each sink's own rate and the retries.
//!
//! `N` defaults to 500,000 per sender (env `TROUPE_SCALE_N`); the layouts run in 3 rounds,
//! alternating 1, 2, 3, 1, 2, 3, ... (env `TROUPE_SCALE_ROUNDS`), each layout with fresh
//! processes; each process runs a tokio runtime with 2 workers (env `TROUPE_SCALE_WORKERS`).
//! Without `--bench` (as `cargo test --benches` runs it) and without those variables it is a
//! smoke run: N = 1,000, one round. Every wait is bounded (env `TROUPE_SCALE_TIMEOUT_SECS`,
//! default 300, bounds each layout of each round); the children are killed when the parent is
//! done with a layout or fails, and exit by themselves if the parent goes away (their stdin
//! closes).
//!
//! The parent prints a table (every round, and the medians) and one JSON line per layout, with
//! the medians over the rounds.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use common::{
    Proc, call_retrying, cast_retrying, env_number, field, fields, flag, parse_flag, say,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use troupe_runtime::remote::{NetConfig, NodeNet};
use troupe_runtime::{
    Actor, ActorError, Addr, ChildOptions, Ctx, Mesh, Message, Node, NodeConfig, Reach, Reply,
    SupervisorSpec,
};

const DEFAULT_N: u64 = 500_000;
const SMOKE_N: u64 = 1_000;
/// Rounds of the three layouts, alternating.
const DEFAULT_ROUNDS: usize = 3;
const PAYLOAD_LEN: usize = 64;
/// Casts each sender sends (and its sink forgets) before the measured ones.
const WARMUP_CASTS: u64 = 10_000;
/// Timeout of the `Reset` call after the warm-up.
const RESET_TIMEOUT: Duration = Duration::from_secs(10);
/// How long every node of a process must stay connected to both others before the warm-up.
const SETTLE: Duration = Duration::from_millis(200);
const CLUSTER: &str = "bench";
const WORKERS_ENV: &str = "TROUPE_SCALE_WORKERS";
const NODES: [&str; 3] = ["a", "b", "c"];
/// The nodes each process hosts, for 1, 2 and 3 processes.
const LAYOUTS: [&[&[&str]]; 3] = [
    &[&["a", "b", "c"]],
    &[&["a", "b"], &["c"]],
    &[&["a"], &["b"], &["c"]],
];

/// Whose sink a node's sender casts to: the next node of the ring.
fn target_of(node: &str) -> anyhow::Result<&'static str> {
    Ok(match node {
        "a" => "b",
        "b" => "c",
        "c" => "a",
        other => bail!("no node {other:?} in the ring"),
    })
}

/// Nanoseconds since the UNIX epoch: the same clock in every process on this machine.
fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------- the sink

/// What a sender sends to the next node's `sink`.
#[derive(Serialize, Deserialize)]
enum SinkMsg {
    /// One measured message.
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Forget the warm-up: count from zero, and report once `n` messages were handled.
    Reset(Reply<()>),
}

impl Message for SinkMsg {
    const NAME: &'static str = "bench.ScaleSink";
}

/// What a sink reports once it handled its `n`-th message after the `Reset`.
#[derive(Clone, Copy, Debug)]
struct SinkStats {
    count: u64,
    /// Wall clock at the first and the `n`-th handled `Data`, nanoseconds since the UNIX epoch.
    first_ns: u64,
    last_ns: u64,
}

/// Counts `Data`; reads the clock only for the first and the `n`-th (after a `Reset`), and
/// then sends the stats to the process's main task.
struct Sink {
    n: u64,
    armed: bool,
    count: u64,
    first_ns: u64,
    done: mpsc::UnboundedSender<SinkStats>,
}

impl Actor for Sink {
    type Msg = SinkMsg;

    async fn handle(&mut self, msg: SinkMsg, _ctx: &mut Ctx<SinkMsg>) -> Result<(), ActorError> {
        match msg {
            SinkMsg::Data(_payload) => {
                self.count += 1;
                if self.count == 1 {
                    self.first_ns = unix_ns();
                }
                if self.armed && self.count == self.n {
                    let _ = self.done.send(SinkStats {
                        count: self.count,
                        first_ns: self.first_ns,
                        last_ns: unix_ns(),
                    });
                }
            }
            SinkMsg::Reset(reply) => {
                self.armed = true;
                self.count = 0;
                self.first_ns = 0;
                reply.send(());
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- a process of nodes

/// What every process needs, passed to the children as flags.
#[derive(Clone, Debug)]
struct Settings {
    n: u64,
    ca: PathBuf,
    timeout: Duration,
}

impl Settings {
    fn args(&self) -> Vec<String> {
        vec![
            "--n".into(),
            self.n.to_string(),
            "--ca".into(),
            self.ca.display().to_string(),
            "--timeout-secs".into(),
            self.timeout.as_secs().to_string(),
        ]
    }
}

/// A node of this process: its sink reports on `done`.
struct Hosted {
    name: String,
    node: Node,
    net: NodeNet,
    done: mpsc::UnboundedReceiver<SinkStats>,
}

async fn start_node(s: &Settings, name: &str, seeds: &[SocketAddr]) -> anyhow::Result<Hosted> {
    // a mesh of its own: the other nodes are reached through QUIC even in this process
    let node = Node::new(
        name,
        &Mesh::new(),
        NodeConfig {
            mailbox_limit: 1 << 20,
            ..Default::default()
        },
    )?;
    let (done_tx, done) = mpsc::unbounded_channel();
    let n = s.n;
    let limit = usize::try_from(n + WARMUP_CASTS)
        .unwrap_or(usize::MAX)
        .max(1 << 20);
    let (sink, _) = node.child(
        "sink",
        ChildOptions::permanent()
            .mailbox_limit(limit)
            .reachable_from(Reach::cluster()),
        move || Sink {
            n,
            armed: false,
            count: 0,
            first_ns: 0,
            done: done_tx.clone(),
        },
    )?;
    node.start(SupervisorSpec::one_for_one(), vec![sink])
        .await?;
    let identity = troupe_identity::NodeIdentity::load(&s.ca, name)?;
    let net = NodeNet::bind(
        &node,
        "127.0.0.1:0".parse()?,
        NetConfig::new(CLUSTER, identity).seeds(seeds.iter().copied()),
    )
    .await?;
    Ok(Hosted {
        name: name.to_string(),
        node,
        net,
        done,
    })
}

/// Waits until every hosted node has one connection to each of the two others, and has kept it
/// for [`SETTLE`] (a duplicate connection from simultaneous dials is closed by then).
async fn wait_connected(hosted: &[Hosted], within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let others = NODES.len() - 1;
    let mut stable_since = None;
    loop {
        let ready = hosted
            .iter()
            .all(|h| h.net.connected().len() == others && h.net.open_connections() == others);
        match (ready, stable_since) {
            (true, Some(since)) if Instant::now() - since >= SETTLE => return Ok(()),
            (true, None) => stable_since = Some(Instant::now()),
            (true, Some(_)) => {}
            (false, _) => stable_since = None,
        }
        if Instant::now() > deadline {
            let seen: Vec<String> = hosted
                .iter()
                .map(|h| format!("{}: {:?}", h.name, h.net.connected()))
                .collect();
            bail!(
                "not fully connected within {within:?} ({})",
                seen.join("; ")
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Warms up the lane from `node` to the next node's sink, then resets that sink.
async fn warm_up(node: Node, n: u64) -> anyhow::Result<()> {
    let sink: Addr<SinkMsg> = node.addr(target_of(node.name())?, "sink");
    let payload = vec![0xA5u8; PAYLOAD_LEN];
    for _ in 0..WARMUP_CASTS.min(n) {
        cast_retrying(&sink, || SinkMsg::Data(payload.clone())).await?;
    }
    // same lane as the casts, so the sink handles it after all of them
    call_retrying(&sink, SinkMsg::Reset, RESET_TIMEOUT).await?;
    Ok(())
}

/// Casts `n` payloads from `node` to the next node's sink; returns the `Overloaded` refusals
/// (each retried).
async fn send(node: Node, n: u64) -> anyhow::Result<u64> {
    let sink: Addr<SinkMsg> = node.addr(target_of(node.name())?, "sink");
    let payload = vec![0xA5u8; PAYLOAD_LEN];
    let mut retries = 0;
    for _ in 0..n {
        retries += cast_retrying(&sink, || SinkMsg::Data(payload.clone())).await?;
    }
    Ok(retries)
}

/// A child process hosting `names`: starts them, says `LISTENING name addr` for each and
/// `READY` once warmed up, starts every sender on `GO` and says one `RESULT` line per node.
fn nodes_role(s: &Settings, names: &[&str], seeds: &[SocketAddr]) -> anyhow::Result<()> {
    let mut from_parent = common::stdin_lines();
    let rt = common::runtime(WORKERS_ENV)?;
    rt.block_on(async {
        let mut hosted: Vec<Hosted> = Vec::new();
        let mut seeds = seeds.to_vec();
        for name in names {
            let h = start_node(s, name, &seeds).await?;
            say(&format!("LISTENING {name} {}", h.net.local_addr()));
            seeds.push(h.net.local_addr());
            hosted.push(h);
        }
        wait_connected(&hosted, s.timeout.min(Duration::from_secs(30))).await?;

        // warm-ups run as tasks on the runtime's workers, as an actor's sends would
        let warm: Vec<_> = hosted
            .iter()
            .map(|h| tokio::spawn(warm_up(h.node.clone(), s.n)))
            .collect();
        let deadline = tokio::time::Instant::now() + s.timeout;
        for w in warm {
            tokio::time::timeout_at(deadline, w)
                .await
                .context("the warm-up timed out")???;
        }
        say("READY");
        loop {
            match tokio::time::timeout(s.timeout, from_parent.recv()).await {
                Ok(Some(line)) if line == "GO" => break,
                Ok(Some(_)) => {}
                Ok(None) => bail!("stdin reader stopped"),
                Err(_) => bail!("no GO from the parent in time"),
            }
        }

        let senders: Vec<_> = hosted
            .iter()
            .map(|h| tokio::spawn(send(h.node.clone(), s.n)))
            .collect();
        let deadline = tokio::time::Instant::now() + s.timeout;
        for (h, sender) in hosted.iter_mut().zip(senders) {
            let retries = tokio::time::timeout_at(deadline, sender)
                .await
                .with_context(|| format!("the sender on {} timed out", h.name))???;
            let stats = tokio::time::timeout_at(deadline, h.done.recv())
                .await
                .with_context(|| format!("{}/sink did not get all casts in time", h.name))?
                .with_context(|| format!("{}/sink stopped", h.name))?;
            say(&format!(
                "RESULT node={} count={} first_ns={} last_ns={} retries={retries}",
                h.name, stats.count, stats.first_ns, stats.last_ns
            ));
        }
        // keep serving (other processes may still be sending) until the parent closes stdin,
        // which ends this process, or the run times out
        tokio::time::sleep(s.timeout).await;
        anyhow::Ok(())
    })
}

// ---------------------------------------------------------------- the parent

/// One node's `RESULT` line.
struct NodeResult {
    node: String,
    count: u64,
    first_ns: u64,
    last_ns: u64,
    retries: u64,
}

impl NodeResult {
    fn parse(line: &str) -> anyhow::Result<Self> {
        let f = fields(line);
        Ok(Self {
            node: field(&f, "node")?,
            count: field(&f, "count")?,
            first_ns: field(&f, "first_ns")?,
            last_ns: field(&f, "last_ns")?,
            retries: field(&f, "retries")?,
        })
    }

    /// This sink's own rate, first to `n`-th message.
    fn per_sec(&self) -> f64 {
        self.count as f64 / (self.last_ns.saturating_sub(self.first_ns) as f64 / 1e9).max(1e-9)
    }
}

/// One layout's outcome.
struct LayoutResult {
    processes: usize,
    layout: String,
    /// All casts handled at the sinks, first (any sink) to last (any sink).
    window_secs: f64,
    casts_per_s: f64,
    /// Sorted by node name.
    nodes: Vec<NodeResult>,
    retries: u64,
}

fn run_layout(s: &Settings, layout: &[&[&str]]) -> anyhow::Result<LayoutResult> {
    let deadline = Instant::now() + s.timeout;
    let mut procs = Vec::new();
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for group in layout {
        let mut args = vec!["--role".to_string(), "nodes".into(), "--nodes".into()];
        args.push(group.join(","));
        args.extend(s.args());
        if !addrs.is_empty() {
            let seeds: Vec<String> = addrs.iter().map(ToString::to_string).collect();
            args.extend(["--seeds".to_string(), seeds.join(",")]);
        }
        let mut p = Proc::spawn(group.join("+"), &args)?;
        let listening = deadline.min(Instant::now() + Duration::from_secs(30));
        for node in group.iter() {
            let prefix = format!("LISTENING {node} ");
            let line = p.expect(&prefix, listening)?;
            let addr: SocketAddr = line[prefix.len()..]
                .trim()
                .parse()
                .with_context(|| format!("the address of {node}"))?;
            addrs.push(addr);
        }
        procs.push(p);
    }
    for p in &mut procs {
        p.expect("READY", deadline)?;
    }
    for p in &mut procs {
        p.tell("GO")?;
    }
    let mut nodes = Vec::new();
    for (p, group) in procs.iter_mut().zip(layout) {
        for _ in group.iter() {
            nodes.push(NodeResult::parse(&p.expect("RESULT ", deadline)?)?);
        }
    }
    drop(procs);

    nodes.sort_by(|x, y| x.node.cmp(&y.node));
    for r in &nodes {
        if r.count != s.n {
            bail!("{}/sink counted {} of {}", r.node, r.count, s.n);
        }
    }
    let first = nodes.iter().map(|r| r.first_ns).min().unwrap_or(0);
    let last = nodes.iter().map(|r| r.last_ns).max().unwrap_or(0);
    let window_secs = last.saturating_sub(first) as f64 / 1e9;
    let total = nodes.iter().map(|r| r.count).sum::<u64>();
    Ok(LayoutResult {
        processes: layout.len(),
        layout: layout
            .iter()
            .map(|g| g.join("+"))
            .collect::<Vec<_>>()
            .join(" | "),
        window_secs,
        casts_per_s: total as f64 / window_secs.max(1e-9),
        retries: nodes.iter().map(|r| r.retries).sum(),
        nodes,
    })
}

/// The 1, 5 and 15 minute load averages (other work on the machine skews every layout).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The median of `xs` (the mean of the middle two for an even count).
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => 0.0,
        len if len % 2 == 1 => xs[len / 2],
        len => (xs[len / 2 - 1] + xs[len / 2]) / 2.0,
    }
}

/// This sink's rate in `r`, 0 if it is missing.
fn sink_rate(r: &LayoutResult, node: &str) -> f64 {
    r.nodes
        .iter()
        .find(|x| x.node == node)
        .map_or(0.0, NodeResult::per_sec)
}

fn parent(n: u64, rounds: usize, timeout: Duration) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir().context("make a temporary directory")?;
    let ca = tmp.path().join("ca");
    common::make_ca(&ca, CLUSTER, &NODES)?;
    let s = Settings { n, ca, timeout };
    let workers = common::workers(WORKERS_ENV)?;
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let load = load_average();

    // rounds alternate the layouts (1, 2, 3, 1, 2, 3, ...), so a slow spell of the machine does
    // not fall on one layout only
    let mut results: Vec<Vec<LayoutResult>> = LAYOUTS.iter().map(|_| Vec::new()).collect();
    for round in 1..=rounds {
        for (layout, of_layout) in LAYOUTS.iter().zip(&mut results) {
            let r = run_layout(&s, layout)
                .with_context(|| format!("round {round}, the {}-process layout", layout.len()))?;
            eprintln!(
                "remote_scale: round {round}, {} process(es) ({}): {:.0} casts/s",
                r.processes, r.layout, r.casts_per_s
            );
            of_layout.push(r);
        }
    }

    println!();
    println!(
        "remote_scale: ring a -> b -> c -> a of troupe nodes, QUIC + mutual TLS on 127.0.0.1, \
         {PAYLOAD_LEN}-byte casts, N = {n} per sender ({} in all), {workers} tokio workers per \
         process, {cores} cores, {rounds} round(s); load average {load} at the start, {} at \
         the end",
        3 * n,
        load_average()
    );
    println!(
        "{:<10} {:<12} {:<7} {:>14} {:>11} {:>12} {:>12} {:>12} {:>10}",
        "processes",
        "layout",
        "round",
        "casts/s",
        "window (s)",
        "a/sink /s",
        "b/sink /s",
        "c/sink /s",
        "retries"
    );
    let mut json = Vec::new();
    for of_layout in &results {
        for (round, r) in of_layout.iter().enumerate() {
            println!(
                "{:<10} {:<12} {:<7} {:>14.0} {:>11.4} {:>12.0} {:>12.0} {:>12.0} {:>10}",
                r.processes,
                r.layout,
                round + 1,
                r.casts_per_s,
                r.window_secs,
                sink_rate(r, "a"),
                sink_rate(r, "b"),
                sink_rate(r, "c"),
                r.retries
            );
        }
        let Some(first) = of_layout.first() else {
            continue;
        };
        let med = |f: &dyn Fn(&LayoutResult) -> f64| median(of_layout.iter().map(f).collect());
        let casts_per_s = med(&|r| r.casts_per_s);
        let window_secs = med(&|r| r.window_secs);
        let retries = med(&|r| r.retries as f64);
        let sinks: Vec<(&str, f64)> = NODES
            .iter()
            .map(|&node| (node, med(&|r| sink_rate(r, node))))
            .collect();
        if rounds > 1 {
            println!(
                "{:<10} {:<12} {:<7} {:>14.0} {:>11.4} {:>12.0} {:>12.0} {:>12.0} {:>10.0}",
                first.processes,
                first.layout,
                "median",
                casts_per_s,
                window_secs,
                sinks[0].1,
                sinks[1].1,
                sinks[2].1,
                retries
            );
        }
        let each: Vec<String> = of_layout
            .iter()
            .map(|r| format!("{:.1}", r.casts_per_s))
            .collect();
        let sinks: Vec<String> = sinks
            .iter()
            .map(|(node, v)| format!("\"sink_{node}_per_s\":{v:.1}"))
            .collect();
        json.push(format!(
            "{{\"bench\":\"remote_scale\",\"system\":\"troupe\",\"processes\":{},\"layout\":\"{}\",\
             \"nodes\":3,\"workers\":{workers},\"n_per_sender\":{n},\"rounds\":{rounds},\
             \"casts_per_s\":{casts_per_s:.1},\"casts_per_s_rounds\":[{}],\
             \"window_secs\":{window_secs:.6},{},\"retries\":{retries:.0}}}",
            first.processes,
            first.layout,
            each.join(","),
            sinks.join(",")
        ));
    }
    println!(
        "casts/s: all 3 N casts over the time from the first to the last one handled by any sink; \
         medians over the rounds in the JSON lines"
    );
    for line in json {
        println!("{line}");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(role) = flag(&args, "--role") {
        let s = Settings {
            n: parse_flag(&args, "--n")?,
            ca: PathBuf::from(flag(&args, "--ca").context("missing --ca")?),
            timeout: Duration::from_secs(parse_flag(&args, "--timeout-secs")?),
        };
        let names: Vec<&str> = flag(&args, "--nodes")
            .context("missing --nodes")?
            .split(',')
            .collect();
        let seeds = match flag(&args, "--seeds") {
            Some(list) => list
                .split(',')
                .map(|a| a.parse().with_context(|| format!("seed {a}")))
                .collect::<anyhow::Result<Vec<SocketAddr>>>()?,
            None => Vec::new(),
        };
        return match role {
            "nodes" => nodes_role(&s, &names, &seeds),
            other => bail!("unknown role {other:?}"),
        };
    }

    let bench = args.iter().any(|a| a == "--bench");
    let n_env = env_number::<u64>("TROUPE_SCALE_N")?;
    let n = n_env.unwrap_or(if bench { DEFAULT_N } else { SMOKE_N });
    let rounds_env = env_number::<usize>("TROUPE_SCALE_ROUNDS")?;
    let smoke = !bench && n_env.is_none() && rounds_env.is_none();
    let rounds = rounds_env.unwrap_or(if smoke { 1 } else { DEFAULT_ROUNDS });
    let timeout = Duration::from_secs(env_number("TROUPE_SCALE_TIMEOUT_SECS")?.unwrap_or(300));
    if n == 0 || rounds == 0 || timeout.is_zero() {
        bail!("TROUPE_SCALE_N, TROUPE_SCALE_ROUNDS and TROUPE_SCALE_TIMEOUT_SECS must be positive");
    }
    if smoke {
        eprintln!("remote_scale: smoke run, N = {n}, 1 round (pass --bench for the real run)");
    }
    parent(n, rounds, timeout)
}
