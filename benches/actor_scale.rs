//! Actor scale: spawn rate and resident memory per idle actor, troupe vs raw ractor.
//!
//! Spawns `N` idle actors (env `TROUPE_SCALE_N`, default 100,000) two ways, each in a fresh
//! child process of this binary so that one side's allocator state cannot pollute the other:
//!
//! - `troupe`: supervised children of one node's root supervisor, spawned one after another
//!   with `root.spawn("a{i}", ..)` (registered under unique names, supervised, one `Addr` kept
//!   per actor);
//! - `ractor`: plain ractor actors spawned unnamed with `Actor::spawn_linked` under one plain
//!   ractor supervisor actor (one `ActorRef` kept per actor).
//!
//! Each side reports its spawn rate and `(RSS after spawning and settling - RSS before) / N`,
//! RSS read from `/proc/self/statm`. The parent prints a table, the troupe/ractor comparison
//! against the targets, and the raw numbers as one JSON line.
//!
//! Run with `cargo bench --bench actor_scale`. Without `--bench` (as `cargo test --benches`
//! runs it) and without `TROUPE_SCALE_N` it does a quick smoke run with 1,000 actors.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ractor::{ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde::{Deserialize, Serialize};
use troupe_runtime::{
    Actor, ActorError, Addr, ChildOptions, Ctx, Mesh, Message, Node, NodeConfig, Reply,
    SupervisorSpec,
};

const DEFAULT_N: usize = 100_000;
const SMOKE_N: usize = 1_000;
/// Time given to the runtime after the last spawn before RSS is read.
const SETTLE: Duration = Duration::from_millis(500);
/// Target from the issue: troupe may use at most this many bytes per idle actor over ractor.
const MEMORY_TARGET_BYTES: f64 = 1024.0;

// ---------------------------------------------------------------- the idle actors

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

struct RactorIdle;

impl ractor::Actor for RactorIdle {
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

/// A plain ractor supervisor: links its children and ignores their events.
struct RactorSupervisor;

impl ractor::Actor for RactorSupervisor {
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

// ---------------------------------------------------------------- measurement

/// Resident set size of this process in bytes: `/proc/self/statm` field 2 times the page size.
fn rss_bytes(page_size: u64) -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").context("read /proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .context("short /proc/self/statm")?
        .parse()
        .context("parse /proc/self/statm")?;
    Ok(pages * page_size)
}

/// The page size, from `getconf PAGESIZE` (no `unsafe` for `sysconf` in this workspace).
fn page_size() -> u64 {
    Command::new("getconf")
        .arg("PAGESIZE")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

/// What one side measured.
struct Sample {
    side: String,
    n: usize,
    spawn_secs: f64,
    rss_before: u64,
    rss_after: u64,
    /// Time to stop all of them afterwards (informational; not a target).
    shutdown_secs: f64,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.n as f64 / self.spawn_secs
    }

    fn bytes_per_actor(&self) -> f64 {
        (self.rss_after as f64 - self.rss_before as f64) / self.n as f64
    }

    fn to_line(&self) -> String {
        format!(
            "RESULT side={} n={} spawn_secs={} rss_before={} rss_after={} shutdown_secs={}",
            self.side, self.n, self.spawn_secs, self.rss_before, self.rss_after, self.shutdown_secs
        )
    }

    fn parse(line: &str) -> anyhow::Result<Self> {
        let mut side = None;
        let (mut n, mut spawn_secs, mut rss_before, mut rss_after) = (None, None, None, None);
        let mut shutdown_secs = None;
        for field in line.trim_start_matches("RESULT").split_whitespace() {
            let (key, value) = field.split_once('=').context("malformed field")?;
            match key {
                "side" => side = Some(value.to_string()),
                "n" => n = Some(value.parse()?),
                "spawn_secs" => spawn_secs = Some(value.parse()?),
                "rss_before" => rss_before = Some(value.parse()?),
                "rss_after" => rss_after = Some(value.parse()?),
                "shutdown_secs" => shutdown_secs = Some(value.parse()?),
                _ => {}
            }
        }
        Ok(Self {
            side: side.context("no side")?,
            n: n.context("no n")?,
            spawn_secs: spawn_secs.context("no spawn_secs")?,
            rss_before: rss_before.context("no rss_before")?,
            rss_after: rss_after.context("no rss_after")?,
            shutdown_secs: shutdown_secs.context("no shutdown_secs")?,
        })
    }
}

/// Reports progress on stderr every tenth of the run, with the rate of that tenth (a rate that
/// falls as the supervisor grows shows per-spawn costs that grow with its child count).
struct Progress {
    side: &'static str,
    n: usize,
    step: usize,
    start: Instant,
    last: Instant,
}

impl Progress {
    fn new(side: &'static str, n: usize) -> Self {
        let now = Instant::now();
        Self {
            side,
            n,
            step: (n / 10).max(1),
            start: now,
            last: now,
        }
    }

    fn tick(&mut self, done: usize) {
        if done.is_multiple_of(self.step) {
            let now = Instant::now();
            let chunk = (now - self.last).as_secs_f64();
            eprintln!(
                "  [{}] {done:>7}/{} spawned, {:6.2} s, last {} at {:>9.0} actors/s",
                self.side,
                self.n,
                (now - self.start).as_secs_f64(),
                self.step,
                self.step as f64 / chunk,
            );
            self.last = now;
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("build the tokio runtime")
}

// ---------------------------------------------------------------- the two sides

fn troupe_side(n: usize, page: u64) -> anyhow::Result<Sample> {
    let rt = runtime()?;
    rt.block_on(async {
        let node = Node::new("bench", &Mesh::new(), NodeConfig::default())?;
        let root = node.start(SupervisorSpec::one_for_one(), vec![]).await?;
        let mut addrs: Vec<Addr<Ping>> = Vec::with_capacity(n);
        let mut progress = Progress::new("troupe", n);

        let rss_before = rss_bytes(page)?;
        let start = Instant::now();
        for i in 0..n {
            let addr = root
                .spawn(&format!("a{i}"), ChildOptions::permanent(), || Idle)
                .await?;
            addrs.push(addr);
            progress.tick(i + 1);
        }
        let spawn_secs = start.elapsed().as_secs_f64();
        tokio::time::sleep(SETTLE).await;
        let rss_after = rss_bytes(page)?;

        // they are all alive, supervised and reachable
        let children = root.children().await?.len();
        if children != n {
            bail!("the root supervisor has {children} children, expected {n}");
        }
        for addr in [&addrs[0], &addrs[n / 2], &addrs[n - 1]] {
            addr.call(Ping, Duration::from_secs(10)).await?;
        }
        drop(addrs);
        let stopping = Instant::now();
        node.shutdown().await;
        let shutdown_secs = stopping.elapsed().as_secs_f64();
        Ok(Sample {
            side: "troupe".into(),
            n,
            spawn_secs,
            rss_before,
            rss_after,
            shutdown_secs,
        })
    })
}

fn ractor_side(n: usize, page: u64) -> anyhow::Result<Sample> {
    let rt = runtime()?;
    rt.block_on(async {
        let (supervisor, supervisor_join) =
            ractor::Actor::spawn(None, RactorSupervisor, ()).await?;
        let parent: ActorCell = supervisor.get_cell();
        let mut refs: Vec<ActorRef<Ping>> = Vec::with_capacity(n);
        let mut progress = Progress::new("ractor", n);

        let rss_before = rss_bytes(page)?;
        let start = Instant::now();
        for i in 0..n {
            let (actor, _join) =
                ractor::Actor::spawn_linked(None, RactorIdle, (), parent.clone()).await?;
            refs.push(actor);
            progress.tick(i + 1);
        }
        let spawn_secs = start.elapsed().as_secs_f64();
        tokio::time::sleep(SETTLE).await;
        let rss_after = rss_bytes(page)?;

        let children = parent.get_children().len();
        if children != n {
            bail!("the ractor supervisor has {children} children, expected {n}");
        }
        drop(refs);
        let stopping = Instant::now();
        supervisor
            .stop_children_and_wait(None, Some(Duration::from_secs(30)))
            .await;
        supervisor.stop(None);
        let _ = supervisor_join.await;
        let shutdown_secs = stopping.elapsed().as_secs_f64();
        Ok(Sample {
            side: "ractor".into(),
            n,
            spawn_secs,
            rss_before,
            rss_after,
            shutdown_secs,
        })
    })
}

// ---------------------------------------------------------------- parent

fn run_child(side: &str, n: usize) -> anyhow::Result<Sample> {
    eprintln!("spawning {n} {side} actors in a fresh process ...");
    let exe = std::env::current_exe().context("locate this benchmark binary")?;
    let out = Command::new(exe)
        .args(["--side", side])
        .env("TROUPE_SCALE_N", n.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("run the {side} side"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("the {side} side failed ({}): {stdout}", out.status);
    }
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .with_context(|| format!("the {side} side printed no result: {stdout}"))?;
    Sample::parse(line)
}

fn json(s: &Sample) -> String {
    format!(
        "{{\"spawn_secs\":{:.6},\"spawn_per_sec\":{:.1},\"rss_before\":{},\"rss_after\":{},\
         \"bytes_per_actor\":{:.1},\"shutdown_secs\":{:.6}}}",
        s.spawn_secs,
        s.rate(),
        s.rss_before,
        s.rss_after,
        s.bytes_per_actor(),
        s.shutdown_secs,
    )
}

fn report(n: usize, ractor: &Sample, troupe: &Sample) {
    println!();
    println!("actor_scale: {n} idle actors under one supervisor, 2 tokio workers");
    println!(
        "{:<8} {:>10} {:>14} {:>13} {:>13} {:>9} {:>13}",
        "side", "spawn (s)", "spawn (act/s)", "RSS before", "RSS after", "B/actor", "shutdown (s)"
    );
    for s in [ractor, troupe] {
        println!(
            "{:<8} {:>10.3} {:>14.0} {:>13} {:>13} {:>9.0} {:>13.3}",
            s.side,
            s.spawn_secs,
            s.rate(),
            s.rss_before,
            s.rss_after,
            s.bytes_per_actor(),
            s.shutdown_secs,
        );
    }
    let extra = troupe.bytes_per_actor() - ractor.bytes_per_actor();
    let rate_ratio = troupe.rate() / ractor.rate();
    let verdict = if extra <= MEMORY_TARGET_BYTES {
        "meets"
    } else {
        "MISSES"
    };
    println!(
        "memory: troupe - ractor = {extra:+.0} B per idle actor ({:.2}x); target <= +{MEMORY_TARGET_BYTES:.0} B: {verdict}",
        troupe.bytes_per_actor() / ractor.bytes_per_actor()
    );
    println!("spawn rate: troupe / ractor = {rate_ratio:.3}x");
    println!(
        "{{\"bench\":\"actor_scale\",\"n\":{n},\"troupe\":{},\"ractor\":{},\
         \"extra_bytes_per_actor\":{extra:.1},\"spawn_rate_ratio\":{rate_ratio:.4}}}",
        json(troupe),
        json(ractor),
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let configured = std::env::var("TROUPE_SCALE_N").ok();
    let n = match &configured {
        Some(v) => v
            .parse()
            .context("TROUPE_SCALE_N must be a positive integer")?,
        None if args.iter().any(|a| a == "--bench") => DEFAULT_N,
        None => SMOKE_N,
    };
    if n == 0 {
        bail!("TROUPE_SCALE_N must be a positive integer");
    }

    if let Some(i) = args.iter().position(|a| a == "--side") {
        let page = page_size();
        let sample = match args.get(i + 1).map(String::as_str) {
            Some("troupe") => troupe_side(n, page)?,
            Some("ractor") => ractor_side(n, page)?,
            other => bail!("unknown side {other:?}"),
        };
        println!("{}", sample.to_line());
        return Ok(());
    }

    if configured.is_none() && n == SMOKE_N {
        eprintln!("actor_scale: smoke run with {n} actors (pass --bench or set TROUPE_SCALE_N)");
    }
    let ractor = run_child("ractor", n)?;
    let troupe = run_child("troupe", n)?;
    report(n, &ractor, &troupe);
    Ok(())
}
