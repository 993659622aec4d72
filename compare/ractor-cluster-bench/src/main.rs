//! ractor_cluster over plain TCP (no TLS) between two OS processes on 127.0.0.1: the comparison
//! point for troupe's `benches/remote_messaging.rs`, with the same workload.
//!
//! The parent runs this binary twice (`--role recv`, `--role send`):
//!
//! - `recv` runs a `NodeServer` and two actors, joined to process groups `sink` and `echo` (the
//!   way ractor_cluster makes actors reachable from another node): `sink` counts the `Data`
//!   casts it handles and, once it has all `N`, prints the time from the first to the last one;
//!   `echo` answers each call with the length of its payload.
//! - `send` runs a `NodeServer`, connects to the receiver's, waits until the session is ready
//!   and the remote group members are known, then casts `N` 64-byte payloads to `sink` as fast
//!   as it can (ractor casts are unbounded: nothing is refused), confirms with a call queued
//!   after the last cast, and makes `M` sequential calls to `echo` (64-byte request, `u32`
//!   reply, 5 s timeout like troupe's), each timed with `Instant`.
//!
//! `N` defaults to 1,000,000 (env `TROUPE_REMOTE_N`), `M` to 20,000 (env `TROUPE_REMOTE_M`);
//! `--smoke` runs N = 1,000, M = 100. Every wait is bounded (`TROUPE_REMOTE_TIMEOUT_SECS`,
//! default 300); the children are killed when the parent is done or fails, and exit by
//! themselves when their stdin closes.
//!
//! ```sh
//! cd compare/ractor-cluster-bench
//! CARGO_TARGET_DIR=/work/target-compare cargo run --release
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::{NodeServer, NodeServerMessage, NodeSessionMessage, RactorClusterMessage};
use tokio::sync::mpsc;

const DEFAULT_N: u64 = 1_000_000;
const DEFAULT_M: usize = 20_000;
const SMOKE_N: u64 = 1_000;
const SMOKE_M: usize = 100;
const PAYLOAD_LEN: usize = 64;
const WARMUP_CASTS: u64 = 10_000;
const WARMUP_CALLS: usize = 1_000;
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const COOKIE: &str = "bench-cookie";

// ---------------------------------------------------------------- messages and actors

#[derive(RactorClusterMessage)]
enum SinkMsg {
    /// One measured message.
    Data(Vec<u8>),
    /// Forget the warm-up; replies with the count before the reset.
    #[rpc]
    Reset(RpcReplyPort<u64>),
    /// `[count, first-to-last nanoseconds]` since the reset.
    #[rpc]
    Stats(RpcReplyPort<Vec<u64>>),
}

#[derive(RactorClusterMessage)]
enum EchoMsg {
    #[rpc]
    Echo(Vec<u8>, RpcReplyPort<u32>),
}

struct Sink;

struct SinkState {
    n: u64,
    armed: bool,
    count: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    done: mpsc::UnboundedSender<(u64, u64)>,
}

impl SinkState {
    fn stats(&self) -> (u64, u64) {
        let elapsed = match (self.first, self.last) {
            (Some(first), Some(last)) => last - first,
            _ => Duration::ZERO,
        };
        (
            self.count,
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
        )
    }
}

impl Actor for Sink {
    type Msg = SinkMsg;
    type State = SinkState;
    type Arguments = (u64, mpsc::UnboundedSender<(u64, u64)>);

    async fn pre_start(
        &self,
        myself: ActorRef<SinkMsg>,
        (n, done): Self::Arguments,
    ) -> Result<SinkState, ActorProcessingErr> {
        ractor::pg::join("sink".to_string(), vec![myself.get_cell()]);
        Ok(SinkState {
            n,
            armed: false,
            count: 0,
            first: None,
            last: None,
            done,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<SinkMsg>,
        msg: SinkMsg,
        state: &mut SinkState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SinkMsg::Data(_payload) => {
                // the clock is read for the first and the n-th message only, as in troupe's bench
                state.count += 1;
                if state.count == 1 {
                    state.first = Some(Instant::now());
                }
                if state.armed && state.count == state.n {
                    state.last = Some(Instant::now());
                    let _ = state.done.send(state.stats());
                }
            }
            SinkMsg::Reset(reply) => {
                let before = state.count;
                state.armed = true;
                state.count = 0;
                state.first = None;
                state.last = None;
                let _ = reply.send(before);
            }
            SinkMsg::Stats(reply) => {
                let (count, ns) = state.stats();
                let _ = reply.send(vec![count, ns]);
            }
        }
        Ok(())
    }
}

struct EchoActor;

impl Actor for EchoActor {
    type Msg = EchoMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<EchoMsg>,
        _args: (),
    ) -> Result<(), ActorProcessingErr> {
        ractor::pg::join("echo".to_string(), vec![myself.get_cell()]);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<EchoMsg>,
        msg: EchoMsg,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EchoMsg::Echo(payload, reply) => {
                let _ = reply.send(u32::try_from(payload.len()).unwrap_or(u32::MAX));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- settings

#[derive(Clone, Debug)]
struct Settings {
    n: u64,
    m: usize,
    timeout: Duration,
}

impl Settings {
    fn args(&self) -> Vec<String> {
        vec![
            "--n".into(),
            self.n.to_string(),
            "--m".into(),
            self.m.to_string(),
            "--timeout-secs".into(),
            self.timeout.as_secs().to_string(),
        ]
    }
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn parse_flag<T: std::str::FromStr>(args: &[String], name: &str) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    let value = flag(args, name).with_context(|| format!("missing {name}"))?;
    value
        .parse()
        .map_err(|e| anyhow::anyhow!("{name} {value}: {e}"))
}

fn env_number<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{name} must be a positive integer, not {v:?}")),
        Err(_) => Ok(None),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("build the tokio runtime")
}

fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A free TCP port on 127.0.0.1 (bound and released; the node server binds it right after).
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(l.local_addr()?.port())
}

async fn node_server(name: &str) -> anyhow::Result<(ActorRef<NodeServerMessage>, u16)> {
    let port = free_port()?;
    let server = NodeServer::new(
        port,
        COOKIE.to_string(),
        name.to_string(),
        "localhost".to_string(),
        None, // IncomingEncryptionMode::Raw: plain TCP
        None,
    )
    .with_listen_addr(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let (server, _join) = Actor::spawn(None, server, ())
        .await
        .context("start the NodeServer")?;
    Ok((server, port))
}

// ---------------------------------------------------------------- the receiver

fn recv_role(s: &Settings) -> anyhow::Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let (_server, port) = node_server("recv").await?;
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        let (_sink, _) = Actor::spawn(None, Sink, (s.n, done_tx))
            .await
            .context("start the sink")?;
        let (_echo, _) = Actor::spawn(None, EchoActor, ())
            .await
            .context("start echo")?;
        say(&format!("LISTENING 127.0.0.1:{port}"));
        let (count, elapsed_ns) = tokio::time::timeout(s.timeout, done_rx.recv())
            .await
            .context("the sink did not get all messages in time")?
            .context("the sink stopped")?;
        say(&format!(
            "RESULT role=recv count={count} elapsed_ns={elapsed_ns}"
        ));
        tokio::time::sleep(s.timeout).await;
        anyhow::Ok(())
    })
}

// ---------------------------------------------------------------- the sender

/// Waits until the connection to the receiver is authenticated and its initial state (the
/// process groups) exchanged.
async fn wait_ready(server: &ActorRef<NodeServerMessage>, deadline: Instant) -> anyhow::Result<()> {
    loop {
        if Instant::now() > deadline {
            bail!("the node session was not ready in time");
        }
        if let Ok(sessions) = ractor::call_t!(server, NodeServerMessage::GetSessions, 500) {
            for session in sessions.into_values() {
                if let Ok(true) =
                    ractor::call_t!(session.actor, NodeSessionMessage::GetReadyState, 500)
                {
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The remote member of process group `group`, once known.
async fn remote_member<M: ractor::Message>(
    group: &str,
    deadline: Instant,
) -> anyhow::Result<ActorRef<M>> {
    loop {
        if let Some(cell) = ractor::pg::get_members(&group.to_string())
            .into_iter()
            .find(|c| !c.get_id().is_local())
        {
            return Ok(ActorRef::<M>::from(cell));
        }
        if Instant::now() > deadline {
            bail!("no remote member of group {group} in time");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

struct SendReport {
    send_secs: f64,
    confirmed: (u64, u64),
    calls_ns: Vec<u64>,
}

async fn send_workload(
    sink: ActorRef<SinkMsg>,
    echo: ActorRef<EchoMsg>,
    s: Settings,
) -> anyhow::Result<SendReport> {
    let payload = vec![0xA5u8; PAYLOAD_LEN];
    let echo_call = |payload: Vec<u8>| {
        let echo = echo.clone();
        async move {
            match echo
                .call(|port| EchoMsg::Echo(payload, port), Some(CALL_TIMEOUT))
                .await
            {
                Ok(ractor::rpc::CallResult::Success(len)) => Ok(len),
                Ok(other) => bail!("echo call failed: {other:?}"),
                Err(e) => bail!("echo call failed: {e}"),
            }
        }
    };

    for _ in 0..WARMUP_CALLS.min(s.m.max(10)) {
        echo_call(payload.clone()).await?;
    }
    for _ in 0..WARMUP_CASTS.min(s.n) {
        sink.cast(SinkMsg::Data(payload.clone()))
            .map_err(|e| anyhow::anyhow!("cast: {e}"))?;
    }
    match sink.call(SinkMsg::Reset, Some(s.timeout)).await {
        Ok(ractor::rpc::CallResult::Success(_)) => {}
        other => bail!("reset failed: {other:?}"),
    }

    let start = Instant::now();
    for _ in 0..s.n {
        sink.cast(SinkMsg::Data(payload.clone()))
            .map_err(|e| anyhow::anyhow!("cast: {e}"))?;
    }
    let send_secs = start.elapsed().as_secs_f64();
    // queued after the last cast on the same session, so handled after all of them
    let confirmed = match sink.call(SinkMsg::Stats, Some(s.timeout)).await {
        Ok(ractor::rpc::CallResult::Success(v)) if v.len() == 2 => (v[0], v[1]),
        other => bail!("stats failed: {other:?}"),
    };
    if confirmed.0 != s.n {
        bail!("the sink handled {} of {} casts", confirmed.0, s.n);
    }

    let mut calls_ns = Vec::with_capacity(s.m);
    for _ in 0..s.m {
        let t = Instant::now();
        let len = echo_call(payload.clone()).await?;
        let ns = t.elapsed().as_nanos();
        if len as usize != PAYLOAD_LEN {
            bail!("echo answered {len}, expected {PAYLOAD_LEN}");
        }
        calls_ns.push(u64::try_from(ns).unwrap_or(u64::MAX));
    }
    calls_ns.sort_unstable();
    Ok(SendReport {
        send_secs,
        confirmed,
        calls_ns,
    })
}

fn send_role(s: &Settings, peer: &str) -> anyhow::Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let (server, _port) = node_server("send").await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        ractor_cluster::client_connect(&server, peer.to_string())
            .await
            .map_err(|e| anyhow::anyhow!("connect to {peer}: {e}"))?;
        wait_ready(&server, deadline).await?;
        let sink = remote_member::<SinkMsg>("sink", deadline).await?;
        let echo = remote_member::<EchoMsg>("echo", deadline).await?;
        let work = tokio::spawn(send_workload(sink, echo, s.clone()));
        let report = tokio::time::timeout(s.timeout, work)
            .await
            .context("the sender's workload timed out")???;
        let p = |q: f64| percentile(&report.calls_ns, q);
        let v = &report.calls_ns;
        say(&format!(
            "RESULT role=send send_secs={} retries=0 confirmed_count={} confirmed_elapsed_ns={} \
             calls={} p50_ns={} p90_ns={} p99_ns={} min_ns={} max_ns={} mean_ns={}",
            report.send_secs,
            report.confirmed.0,
            report.confirmed.1,
            v.len(),
            p(0.50),
            p(0.90),
            p(0.99),
            v.first().copied().unwrap_or(0),
            v.last().copied().unwrap_or(0),
            if v.is_empty() {
                0
            } else {
                v.iter().sum::<u64>() / v.len() as u64
            },
        ));
        anyhow::Ok(())
    })
}

fn percentile(v: &[u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

// ---------------------------------------------------------------- the parent

struct Proc {
    role: &'static str,
    child: Child,
    lines: std_mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(role: &'static str, s: &Settings, extra: &[String]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locate this binary")?;
        let mut child = Command::new(exe)
            .args(["--role", role])
            .args(s.args())
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start the {role} process"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = std_mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { role, child, lines })
    }

    fn expect(&mut self, prefix: &str, deadline: Instant) -> anyhow::Result<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(other) => eprintln!("[{}] {other}", self.role),
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    bail!("no {prefix:?} line from the {} process in time", self.role)
                }
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    bail!(
                        "the {} process ended without a {prefix:?} line (status {status:?})",
                        self.role
                    )
                }
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fields(line: &str) -> std::collections::HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn field<T: std::str::FromStr>(
    map: &std::collections::HashMap<String, String>,
    key: &str,
) -> anyhow::Result<T> {
    map.get(key)
        .with_context(|| format!("no {key} in the result"))?
        .parse()
        .map_err(|_| anyhow::anyhow!("bad {key} in the result"))
}

fn parent(s: &Settings) -> anyhow::Result<()> {
    let deadline = Instant::now() + s.timeout;
    let mut recv = Proc::spawn("recv", s, &[])?;
    let listening = recv.expect("LISTENING ", Instant::now() + Duration::from_secs(30))?;
    let addr = listening
        .trim_start_matches("LISTENING ")
        .trim()
        .to_string();
    eprintln!(
        "ractor_cluster: receiver listening on {addr} (TCP); N = {}, M = {}",
        s.n, s.m
    );
    let mut send = Proc::spawn("send", s, &["--peer".into(), addr])?;
    let recv_line = recv.expect("RESULT ", deadline)?;
    let send_line = send.expect("RESULT ", deadline)?;
    drop(send);
    drop(recv);

    let r = fields(&recv_line);
    let w = fields(&send_line);
    let count: u64 = field(&r, "count")?;
    let elapsed_ns: u64 = field(&r, "elapsed_ns")?;
    if count != s.n {
        bail!("the receiver counted {count} of {}", s.n);
    }
    let recv_secs = elapsed_ns as f64 / 1e9;
    let per_sec = count as f64 / recv_secs.max(1e-9);
    let send_secs: f64 = field(&w, "send_secs")?;
    let us = |key: &str| -> anyhow::Result<f64> { Ok(field::<u64>(&w, key)? as f64 / 1e3) };
    let (p50, p90, p99) = (us("p50_ns")?, us("p90_ns")?, us("p99_ns")?);
    let (min, max, mean) = (us("min_ns")?, us("max_ns")?, us("mean_ns")?);
    let calls: usize = field(&w, "calls")?;
    let (n, m) = (s.n, s.m);

    println!();
    println!(
        "remote_messaging: ractor_cluster 0.16, 2 processes on 127.0.0.1, plain TCP, 2 tokio workers each"
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
    println!(
        "{{\"bench\":\"remote_messaging\",\"system\":\"ractor_cluster\",\"transport\":\"tcp\",\
         \"n\":{n},\"m\":{m},\"cast_per_sec\":{per_sec:.1},\"cast_recv_secs\":{recv_secs:.6},\
         \"cast_send_secs\":{send_secs:.6},\"call_p50_us\":{p50:.2},\"call_p90_us\":{p90:.2},\
         \"call_p99_us\":{p99:.2},\"call_min_us\":{min:.2},\"call_mean_us\":{mean:.2},\
         \"call_max_us\":{max:.2}}}"
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
            timeout: Duration::from_secs(parse_flag(&args, "--timeout-secs")?),
        };
        return match role {
            "recv" => recv_role(&s),
            "send" => send_role(&s, flag(&args, "--peer").context("missing --peer")?),
            other => bail!("unknown role {other:?}"),
        };
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    let n =
        env_number::<u64>("TROUPE_REMOTE_N")?.unwrap_or(if smoke { SMOKE_N } else { DEFAULT_N });
    let m =
        env_number::<usize>("TROUPE_REMOTE_M")?.unwrap_or(if smoke { SMOKE_M } else { DEFAULT_M });
    if n == 0 || m == 0 {
        bail!("TROUPE_REMOTE_N and TROUPE_REMOTE_M must be positive");
    }
    let timeout = Duration::from_secs(env_number("TROUPE_REMOTE_TIMEOUT_SECS")?.unwrap_or(300));
    parent(&Settings { n, m, timeout })
}
