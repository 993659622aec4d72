//! Remote messaging: cast throughput and call latency between two troupe nodes in two OS
//! processes on 127.0.0.1, over QUIC with mutual TLS (issue 3, item 10).
//!
//! The parent makes a cluster CA in a temporary directory, issues certificates for `recv` and
//! `send`, and runs this same binary twice (`--role recv`, `--role send`), so the two nodes are
//! in different processes and every message crosses QUIC.
//!
//! - `recv` runs two actors: `sink`, which counts the `Data` casts it handles and, once it has
//!   all `N`, prints the time from the first to the last one (the throughput is counted at the
//!   receiver), and `echo`, which answers each call with the length of its payload.
//! - `send` casts `N` 64-byte payloads (`serde_bytes`) to `recv/sink` as fast as it can. A cast
//!   refused with `Overloaded` (the lane buffer to the peer is full) is retried with the same
//!   payload after a `yield_now`, so none is lost; the retries are counted and reported. A call
//!   to `sink` queued after the last cast (same lane, so it is handled after all of them)
//!   confirms the count. Then it makes `M` sequential calls to `recv/echo` (64-byte request, a
//!   `u32` reply), each timed with `Instant`, and reports p50/p90/p99.
//!
//! `N` defaults to 1,000,000 (env `TROUPE_REMOTE_N`), `M` to 20,000 (env `TROUPE_REMOTE_M`);
//! each process runs a tokio runtime with 2 workers (env `TROUPE_REMOTE_WORKERS`);
//! `TROUPE_REMOTE_SPIN_US` turns on `NetConfig::spin_after_traffic` with that window.
//! Without `--bench` (as `cargo test --benches` runs it) and without those variables it is a
//! smoke run with N = 1,000 and M = 100. Every wait is bounded (env
//! `TROUPE_REMOTE_TIMEOUT_SECS`, default 300, bounds a whole run); the children are killed when
//! the parent is done or fails, and exit by themselves if the parent goes away (their stdin
//! closes).
//!
//! The parent prints a table and one JSON line. The ractor_cluster side of the comparison
//! lives in `compare/ractor-cluster-bench` (outside the workspace: it needs aws-lc-rs).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::{
    Proc, call_retrying, cast_retrying, env_number, exit_when_stdin_closes, field, fields, flag,
    make_ca, parse_flag, say,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use troupe_runtime::remote::{NetConfig, NodeNet};
use troupe_runtime::{
    Actor, ActorError, Addr, Ask, ChildOptions, Ctx, Mesh, Message, Node, NodeConfig, Reach, Reply,
    SupervisorSpec,
};

const DEFAULT_N: u64 = 1_000_000;
const DEFAULT_M: usize = 20_000;
const SMOKE_N: u64 = 1_000;
const SMOKE_M: usize = 100;
const PAYLOAD_LEN: usize = 64;
/// Casts sent (and discarded by the sink) before the measured ones, to warm up the lanes.
const WARMUP_CASTS: u64 = 10_000;
/// Calls made before the measured ones.
const WARMUP_CALLS: usize = 1_000;
/// Timeout of every measured call.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Target from the issue: call p50 at most this many microseconds.
const CALL_P50_TARGET_US: f64 = 50.0;
const CLUSTER: &str = "bench";

// ---------------------------------------------------------------- messages and actors

/// What the sender sends to `recv/sink`.
#[derive(Serialize, Deserialize)]
enum SinkMsg {
    /// One measured message.
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Forget the warm-up: count from zero, and report once `n` messages were handled.
    Reset(Reply<SinkStats>),
    /// How many `Data` were handled since `Reset`, and the time between the first and the last.
    Stats(Reply<SinkStats>),
}

impl Message for SinkMsg {
    const NAME: &'static str = "bench.Sink";
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct SinkStats {
    count: u64,
    /// Nanoseconds from the first handled `Data` to the `n`-th (0 before the `n`-th arrived).
    elapsed_ns: u64,
}

/// What the sender calls `recv/echo` with.
#[derive(Serialize, Deserialize)]
struct Echo(#[serde(with = "serde_bytes")] Vec<u8>);

impl troupe::runtime::Request for Echo {
    const NAME: &'static str = "bench.Echo";
    type Response = u32;
}

/// Counts `Data`; sends the stats to the process's main task when the `n`-th arrives (after a
/// `Reset`). The clock is read only for the first and the `n`-th, so timing costs nothing per
/// message.
struct Sink {
    n: u64,
    armed: bool,
    count: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    done: mpsc::UnboundedSender<SinkStats>,
}

impl Sink {
    fn stats(&self) -> SinkStats {
        let elapsed = match (self.first, self.last) {
            (Some(first), Some(last)) => last - first,
            _ => Duration::ZERO,
        };
        SinkStats {
            count: self.count,
            elapsed_ns: u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
        }
    }
}

impl Actor for Sink {
    type Msg = SinkMsg;

    async fn handle(&mut self, msg: SinkMsg, _ctx: &mut Ctx<SinkMsg>) -> Result<(), ActorError> {
        match msg {
            SinkMsg::Data(_payload) => {
                // the clock is read for the first and the n-th message only
                self.count += 1;
                if self.count == 1 {
                    self.first = Some(Instant::now());
                }
                if self.armed && self.count == self.n {
                    self.last = Some(Instant::now());
                    let _ = self.done.send(self.stats());
                }
            }
            SinkMsg::Reset(reply) => {
                self.armed = true;
                self.count = 0;
                self.first = None;
                self.last = None;
                reply.send(self.stats());
            }
            SinkMsg::Stats(reply) => {
                reply.send(self.stats());
            }
        }
        Ok(())
    }
}

struct EchoActor;

impl Actor for EchoActor {
    type Msg = Ask<Echo>;

    async fn handle(
        &mut self,
        ask: Ask<Echo>,
        _ctx: &mut Ctx<Ask<Echo>>,
    ) -> Result<(), ActorError> {
        let Echo(payload) = ask.request;
        ask.reply
            .send(u32::try_from(payload.len()).unwrap_or(u32::MAX));
        Ok(())
    }
}

// ---------------------------------------------------------------- settings

/// Everything a role needs, passed to the children as flags.
#[derive(Clone, Debug)]
struct Settings {
    n: u64,
    m: usize,
    ca: PathBuf,
    timeout: Duration,
}

impl Settings {
    fn args(&self) -> Vec<String> {
        vec![
            "--n".into(),
            self.n.to_string(),
            "--m".into(),
            self.m.to_string(),
            "--ca".into(),
            self.ca.display().to_string(),
            "--timeout-secs".into(),
            self.timeout.as_secs().to_string(),
        ]
    }
}

/// Tokio workers per process (env `TROUPE_REMOTE_WORKERS`, default 2).
const WORKERS_ENV: &str = "TROUPE_REMOTE_WORKERS";

/// The endpoint's settings; env `TROUPE_REMOTE_SPIN_US` turns on
/// [`NetConfig::spin_after_traffic`] with that window in microseconds.
fn net_config(identity: troupe_identity::NodeIdentity) -> anyhow::Result<NetConfig> {
    let config = NetConfig::new(CLUSTER, identity);
    Ok(match env_number::<u64>("TROUPE_REMOTE_SPIN_US")? {
        Some(us) if us > 0 => config.spin_after_traffic(Duration::from_micros(us)),
        _ => config,
    })
}

fn node_config() -> NodeConfig {
    NodeConfig {
        mailbox_limit: 1 << 20,
        ..Default::default()
    }
}

// ---------------------------------------------------------------- the receiver

fn recv_role(s: &Settings) -> anyhow::Result<()> {
    let rt = common::runtime(WORKERS_ENV)?;
    rt.block_on(async {
        let node = Node::new("recv", &Mesh::new(), node_config())?;
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let n = s.n;
        let (sink, _) = node.child(
            "sink",
            ChildOptions::permanent()
                .mailbox_limit(1 << 20)
                .reachable_from(Reach::cluster()),
            move || Sink {
                n,
                armed: false,
                count: 0,
                first: None,
                last: None,
                done: done_tx.clone(),
            },
        )?;
        let (echo, _) = node.child(
            "echo",
            ChildOptions::permanent().reachable_from(Reach::cluster()),
            || EchoActor,
        )?;
        node.start(SupervisorSpec::one_for_one(), vec![sink, echo])
            .await?;
        let identity = troupe_identity::NodeIdentity::load(&s.ca, "recv")?;
        let net = NodeNet::bind(&node, "127.0.0.1:0".parse()?, net_config(identity)?).await?;
        say(&format!("LISTENING {}", net.local_addr()));

        let stats = tokio::time::timeout(s.timeout, done_rx.recv())
            .await
            .context("the sink did not get all messages in time")?
            .context("the sink stopped")?;
        say(&format!(
            "RESULT role=recv count={} elapsed_ns={}",
            stats.count, stats.elapsed_ns
        ));
        // keep serving the sender's calls until the parent closes stdin (or the run times out)
        tokio::time::sleep(s.timeout).await;
        net.shutdown().await;
        node.shutdown().await;
        anyhow::Ok(())
    })
}

// ---------------------------------------------------------------- the sender

/// What the sender measured.
#[derive(Debug, Default)]
struct SendReport {
    /// Seconds from the first cast to the last one accepted by the lane.
    send_secs: f64,
    /// Casts refused with `Overloaded` and sent again.
    retries: u64,
    /// What the sink reported after the last cast (count, first-to-last time).
    confirmed: SinkStats,
    /// Call round trips in nanoseconds, sorted.
    calls_ns: Vec<u64>,
}

async fn send_workload(node: &Node, s: &Settings) -> anyhow::Result<SendReport> {
    let sink: Addr<SinkMsg> = node.addr("recv", "sink");
    let echo: Addr<Ask<Echo>> = node.addr("recv", "echo");
    let payload = vec![0xA5u8; PAYLOAD_LEN];
    let mut report = SendReport::default();

    // warm-up: connections, lanes, both actors
    for _ in 0..WARMUP_CALLS.min(s.m.max(10)) {
        echo.ask(Echo(payload.clone()), CALL_TIMEOUT).await?;
    }
    for _ in 0..WARMUP_CASTS.min(s.n) {
        cast_retrying(&sink, || SinkMsg::Data(payload.clone())).await?;
    }
    call_retrying(&sink, SinkMsg::Reset, s.timeout).await?;

    // cast throughput (counted at the receiver; this side only records how long sending took)
    let start = Instant::now();
    for _ in 0..s.n {
        report.retries += cast_retrying(&sink, || SinkMsg::Data(payload.clone())).await?;
    }
    report.send_secs = start.elapsed().as_secs_f64();
    // same lane as the casts, so it is handled after all of them
    report.confirmed = call_retrying(&sink, SinkMsg::Stats, s.timeout).await?;
    if report.confirmed.count != s.n {
        bail!(
            "the sink handled {} of {} casts",
            report.confirmed.count,
            s.n
        );
    }

    // call latency
    report.calls_ns.reserve(s.m);
    for _ in 0..s.m {
        let t = Instant::now();
        let len = echo.ask(Echo(payload.clone()), CALL_TIMEOUT).await?;
        let ns = t.elapsed().as_nanos();
        if len as usize != PAYLOAD_LEN {
            bail!("echo answered {len}, expected {PAYLOAD_LEN}");
        }
        report.calls_ns.push(u64::try_from(ns).unwrap_or(u64::MAX));
    }
    report.calls_ns.sort_unstable();
    Ok(report)
}

fn send_role(s: &Settings, peer: SocketAddr) -> anyhow::Result<()> {
    let rt = common::runtime(WORKERS_ENV)?;
    rt.block_on(async {
        let node = Node::new("send", &Mesh::new(), node_config())?;
        node.start(SupervisorSpec::one_for_one(), vec![]).await?;
        let identity = troupe_identity::NodeIdentity::load(&s.ca, "send")?;
        let net = NodeNet::bind(
            &node,
            "127.0.0.1:0".parse()?,
            net_config(identity)?.seeds([peer]),
        )
        .await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !net.connected().iter().any(|p| p == "recv") {
            if Instant::now() > deadline {
                bail!("not connected to recv at {peer} within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // the workload runs as a task on the runtime's workers, as an actor's sends would
        let work = {
            let node = node.clone();
            let s = s.clone();
            tokio::spawn(async move { send_workload(&node, &s).await })
        };
        let report = tokio::time::timeout(s.timeout, work)
            .await
            .context("the sender's workload timed out")???;
        let p = |q: f64| percentile(&report.calls_ns, q);
        say(&format!(
            "RESULT role=send send_secs={} retries={} confirmed_count={} confirmed_elapsed_ns={} \
             calls={} p50_ns={} p90_ns={} p99_ns={} min_ns={} max_ns={} mean_ns={}",
            report.send_secs,
            report.retries,
            report.confirmed.count,
            report.confirmed.elapsed_ns,
            report.calls_ns.len(),
            p(0.50),
            p(0.90),
            p(0.99),
            report.calls_ns.first().copied().unwrap_or(0),
            report.calls_ns.last().copied().unwrap_or(0),
            if report.calls_ns.is_empty() {
                0
            } else {
                report.calls_ns.iter().sum::<u64>() / report.calls_ns.len() as u64
            },
        ));
        let _ = tokio::time::timeout(Duration::from_secs(5), net.shutdown()).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), node.shutdown()).await;
        anyhow::Ok(())
    })
}

/// The `q`-quantile of sorted `v` (nearest rank).
fn percentile(v: &[u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

// ---------------------------------------------------------------- the parent

fn parent(n: u64, m: usize, timeout: Duration) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir().context("make a temporary directory")?;
    let ca = tmp.path().join("ca");
    make_ca(&ca, CLUSTER, &["recv", "send"])?;
    let s = Settings { n, m, ca, timeout };
    let deadline = Instant::now() + timeout;

    let role_args = |role: &str, extra: &[String]| -> Vec<String> {
        let mut args = vec!["--role".to_string(), role.to_string()];
        args.extend(s.args());
        args.extend_from_slice(extra);
        args
    };
    let mut recv = Proc::spawn("recv", &role_args("recv", &[]))?;
    let listening = recv.expect("LISTENING ", Instant::now() + Duration::from_secs(30))?;
    let addr = listening
        .trim_start_matches("LISTENING ")
        .trim()
        .to_string();
    let _: SocketAddr = addr.parse().context("the receiver's address")?;
    eprintln!("remote_messaging: receiver listening on {addr} (QUIC); N = {n}, M = {m}");
    let mut send = Proc::spawn("send", &role_args("send", &["--peer".into(), addr]))?;

    let recv_line = recv.expect("RESULT ", deadline)?;
    let send_line = send.expect("RESULT ", deadline)?;
    drop(send);
    drop(recv);

    let r = fields(&recv_line);
    let w = fields(&send_line);
    let count: u64 = field(&r, "count")?;
    let elapsed_ns: u64 = field(&r, "elapsed_ns")?;
    if count != n {
        bail!("the receiver counted {count} of {n}");
    }
    let recv_secs = elapsed_ns as f64 / 1e9;
    let per_sec = count as f64 / recv_secs.max(1e-9);
    let send_secs: f64 = field(&w, "send_secs")?;
    let retries: u64 = field(&w, "retries")?;
    let us = |key: &str| -> anyhow::Result<f64> { Ok(field::<u64>(&w, key)? as f64 / 1e3) };
    let (p50, p90, p99) = (us("p50_ns")?, us("p90_ns")?, us("p99_ns")?);
    let (min, max, mean) = (us("min_ns")?, us("max_ns")?, us("mean_ns")?);
    let calls: usize = field(&w, "calls")?;

    println!();
    let workers = common::workers(WORKERS_ENV)?;
    let spin_us = common::env_number::<u64>("TROUPE_REMOTE_SPIN_US")?.unwrap_or(0);
    let spin = if spin_us > 0 {
        format!(", spin_after_traffic {spin_us} us")
    } else {
        String::new()
    };
    println!(
        "remote_messaging: troupe, 2 processes on 127.0.0.1, QUIC + mutual TLS, {workers} tokio workers each{spin}"
    );
    println!("{:<44} {:>16}", "cast: messages (64-byte payload)", n);
    println!(
        "{:<44} {:>16.4}",
        "cast: first-to-last at the receiver (s)", recv_secs
    );
    println!(
        "{:<44} {:>16.0}",
        "cast: msgs/s handled at the receiver", per_sec
    );
    println!(
        "{:<44} {:>16.4}",
        "cast: sender's time to queue all (s)", send_secs
    );
    println!(
        "{:<44} {:>16}",
        "cast: Overloaded retries (none lost)", retries
    );
    println!("{:<44} {:>16}", "call: sequential calls", calls);
    println!(
        "{:<44} {:>16}",
        "call: p50 / p90 / p99 (us)",
        format!("{p50:.1} / {p90:.1} / {p99:.1}")
    );
    println!(
        "{:<44} {:>16}",
        "call: min / mean / max (us)",
        format!("{min:.1} / {mean:.1} / {max:.1}")
    );
    let verdict = if p50 <= CALL_P50_TARGET_US {
        "meets"
    } else {
        "MISSES"
    };
    println!("call p50 target <= {CALL_P50_TARGET_US} us: {verdict}");
    println!("cast target: >= 2x ractor_cluster (run compare/ractor-cluster-bench for its number)");
    println!(
        "{{\"bench\":\"remote_messaging\",\"transport\":\"quic\",\"workers\":{workers},\"spin_us\":{spin_us},\"n\":{n},\"m\":{m},\
         \"cast_per_sec\":{per_sec:.1},\"cast_recv_secs\":{recv_secs:.6},\
         \"cast_send_secs\":{send_secs:.6},\"overloaded_retries\":{retries},\
         \"call_p50_us\":{p50:.2},\"call_p90_us\":{p90:.2},\"call_p99_us\":{p99:.2},\
         \"call_min_us\":{min:.2},\"call_mean_us\":{mean:.2},\"call_max_us\":{max:.2}}}"
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(role) = flag(&args, "--role") {
        exit_when_stdin_closes();
        let s = Settings {
            n: parse_flag(&args, "--n")?,
            m: parse_flag(&args, "--m")?,
            ca: PathBuf::from(flag(&args, "--ca").context("missing --ca")?),
            timeout: Duration::from_secs(parse_flag(&args, "--timeout-secs")?),
        };
        return match role {
            "recv" => recv_role(&s),
            "send" => send_role(&s, parse_flag(&args, "--peer")?),
            other => bail!("unknown role {other:?}"),
        };
    }

    let bench = args.iter().any(|a| a == "--bench");
    let n_env = env_number::<u64>("TROUPE_REMOTE_N")?;
    let m_env = env_number::<usize>("TROUPE_REMOTE_M")?;
    let smoke = !bench && n_env.is_none() && m_env.is_none();
    let n = n_env.unwrap_or(if bench { DEFAULT_N } else { SMOKE_N });
    let m = m_env.unwrap_or(if bench { DEFAULT_M } else { SMOKE_M });
    let timeout = Duration::from_secs(env_number("TROUPE_REMOTE_TIMEOUT_SECS")?.unwrap_or(300));
    if n == 0 || m == 0 {
        bail!("TROUPE_REMOTE_N and TROUPE_REMOTE_M must be positive");
    }
    if smoke {
        eprintln!("remote_messaging: smoke run, N = {n}, M = {m} (pass --bench for the real run)");
    }
    parent(n, m, timeout)
}
