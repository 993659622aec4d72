//! What every system's side shares: the counting logic, the result record, RSS, the runtime.

use std::hint::black_box;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// Generous timeout for every timed call (troupe's `call` always carries one; 30 s as in
/// `benches/local_messaging.rs`).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Time given to the runtime after the last spawn before RSS is read (as `actor_scale`).
pub const SETTLE: Duration = Duration::from_millis(500);

/// What one child measures, for one (bench, system, variant).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sample {
    pub bench: String,
    pub system: String,
    pub variant: String,
    pub n: u64,
    /// Measured seconds: cast = first send until the N-th handled; call = M round trips;
    /// scale = N spawns (until all N are running).
    pub secs: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes_per_actor: Option<f64>,
    /// cast: seconds until the sender had queued all N.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub send_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rss_before: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rss_after: Option<u64>,
    /// scale: time to stop them all afterwards (bounded by 30 s; over it the sample fails).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shutdown_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub round: Option<u32>,
}

impl Sample {
    pub fn rate(bench: &str, system: &str, variant: &str, n: u64, secs: f64) -> Self {
        Self {
            bench: bench.into(),
            system: system.into(),
            variant: variant.into(),
            n,
            secs,
            per_sec: Some(n as f64 / secs),
            bytes_per_actor: None,
            send_secs: None,
            rss_before: None,
            rss_after: None,
            shutdown_secs: None,
            round: None,
        }
    }
}

/// The counter every system's actor runs: adds each `Add(u64)` to a total and wakes `done`
/// when the count of handled adds reaches the next mark (the end of the warm-up, then the end
/// of the measured run). One compare per message, the same on every system.
pub struct Tally {
    pub total: u64,
    count: u64,
    next_mark: u64,
    /// Remaining marks, last first.
    marks: Vec<u64>,
    done: Arc<Notify>,
}

impl Tally {
    pub fn new(marks: &[u64], done: Arc<Notify>) -> Self {
        let mut marks: Vec<u64> = marks.iter().rev().copied().collect();
        let next_mark = marks.pop().unwrap_or(u64::MAX);
        Self {
            total: 0,
            count: 0,
            next_mark,
            marks,
            done,
        }
    }

    #[inline]
    pub fn add(&mut self, n: u64) {
        self.total += n;
        self.count += 1;
        if self.count == self.next_mark {
            self.next_mark = self.marks.pop().unwrap_or(u64::MAX);
            self.done.notify_one();
        }
    }
}

/// Everything a cast child needs to build its counter.
#[derive(Clone)]
pub struct CastPlan {
    pub warm: u64,
    pub n: u64,
    pub done: Arc<Notify>,
    pub limit: Duration,
    /// Releases an actor held by its `Hold` message (the `drain` bench).
    pub gate: Arc<Notify>,
}

impl CastPlan {
    pub fn new(n: u64, limit: Duration) -> Self {
        Self {
            warm: (n / 10).max(1),
            n,
            done: Arc::new(Notify::new()),
            limit,
            gate: Arc::new(Notify::new()),
        }
    }

    pub fn tally(&self) -> Tally {
        Tally::new(&[self.warm, self.warm + self.n], self.done.clone())
    }

    /// Waits for the actor to signal its next mark, bounded by the plan's limit.
    pub async fn wait(&self, what: &str) -> anyhow::Result<()> {
        tokio::time::timeout(self.limit, self.done.notified())
            .await
            .with_context(|| format!("{what}: not all casts handled within {:?}", self.limit))
    }
}

/// The measured part of a cast run, shared by every system: `send(v)` casts one `Add(v)`
/// (v = 1, through `black_box`) without waiting. Returns (seconds until the N-th was handled,
/// seconds until all N were queued).
pub async fn timed_casts<F>(plan: &CastPlan, send: F) -> anyhow::Result<(f64, f64)>
where
    F: FnMut(u64) -> anyhow::Result<()>,
{
    run_casts(plan, None, send).await
}

/// The cast run split in two halves that never overlap: after the warm-up, `hold()` sends the
/// actor a message whose handler waits on `plan.gate`; the N casts then queue while it is held
/// (the sending half, timed alone), and the gate opens (the handling half, timed alone from
/// the release to the N-th handled). Returns (handling seconds, sending seconds).
pub async fn timed_held_casts<F>(
    plan: &CastPlan,
    mut hold: impl FnMut() -> anyhow::Result<()> + Send,
    send: F,
) -> anyhow::Result<(f64, f64)>
where
    F: FnMut(u64) -> anyhow::Result<()>,
{
    run_casts(plan, Some(&mut hold), send).await
}

async fn run_casts<F>(
    plan: &CastPlan,
    hold: Option<&mut (dyn FnMut() -> anyhow::Result<()> + Send)>,
    mut send: F,
) -> anyhow::Result<(f64, f64)>
where
    F: FnMut(u64) -> anyhow::Result<()>,
{
    for _ in 0..plan.warm {
        send(black_box(1))?;
    }
    plan.wait("warm-up").await?;
    let held = hold.is_some();
    if let Some(hold) = hold {
        hold()?;
        // the actor reaches the gate (were it not there yet, the release below would leave a
        // permit and the casts would be handled while they are sent)
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start = Instant::now();
    for _ in 0..plan.n {
        send(black_box(1))?;
    }
    let sent = start.elapsed().as_secs_f64();
    let handling_from = if held {
        plan.gate.notify_one();
        Instant::now()
    } else {
        start
    };
    plan.wait("cast").await?;
    Ok((handling_from.elapsed().as_secs_f64(), sent))
}

/// As [`timed_casts`] for a send that must be awaited (a bounded mailbox that pushes back).
pub async fn timed_casts_async<F, Fut>(plan: &CastPlan, mut send: F) -> anyhow::Result<(f64, f64)>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    for _ in 0..plan.warm {
        send(black_box(1)).await?;
    }
    plan.wait("warm-up").await?;
    let start = Instant::now();
    for _ in 0..plan.n {
        send(black_box(1)).await?;
    }
    let sent = start.elapsed().as_secs_f64();
    plan.wait("cast").await?;
    Ok((start.elapsed().as_secs_f64(), sent))
}

/// The measured part of a call run: M sequential round trips after M/10 warm-up ones; `call`
/// returns the counter's total. Returns the seconds for the M.
pub async fn timed_calls<F, Fut>(m: u64, limit: Duration, mut call: F) -> anyhow::Result<f64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<u64>>,
{
    let deadline = Instant::now() + limit;
    for _ in 0..(m / 10).max(1) {
        black_box(call().await?);
    }
    let start = Instant::now();
    for i in 0..m {
        black_box(call().await?);
        if i.is_multiple_of(1024) && Instant::now() > deadline {
            bail!("{i} of {m} calls done when the time limit ran out");
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

/// The tokio runtime every tokio-based side runs on: multi-thread, 2 workers, all drivers
/// (as `benches/local_messaging.rs` and `benches/actor_scale.rs`).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("build the tokio runtime")
}

/// Resident set size of this process in bytes: `/proc/self/statm` field 2 times the page size.
pub fn rss_bytes(page_size: u64) -> anyhow::Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").context("read /proc/self/statm")?;
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .context("short /proc/self/statm")?
        .parse()
        .context("parse /proc/self/statm")?;
    Ok(pages * page_size)
}

/// The page size, from `getconf PAGESIZE`.
pub fn page_size() -> u64 {
    Command::new("getconf")
        .arg("PAGESIZE")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

/// Measures a scale run: `rss_before` is read by the caller right before the first spawn.
pub struct ScaleRun {
    page: u64,
    rss_before: u64,
    start: Instant,
    deadline: Instant,
    n: u64,
    step: u64,
    last: Instant,
    label: String,
}

impl ScaleRun {
    pub fn begin(label: &str, n: u64, limit: Duration) -> anyhow::Result<Self> {
        let page = page_size();
        let rss_before = rss_bytes(page)?;
        let now = Instant::now();
        Ok(Self {
            page,
            rss_before,
            start: now,
            deadline: now + limit,
            n,
            step: (n / 10).max(1),
            last: now,
            label: label.into(),
        })
    }

    /// Progress on stderr every tenth, and the time bound.
    pub fn tick(&mut self, done: u64) -> anyhow::Result<()> {
        if done.is_multiple_of(self.step) {
            let now = Instant::now();
            eprintln!(
                "  [{}] {done:>7}/{} spawned, {:6.2} s, last {} at {:>9.0} actors/s",
                self.label,
                self.n,
                (now - self.start).as_secs_f64(),
                self.step,
                self.step as f64 / (now - self.last).as_secs_f64(),
            );
            self.last = now;
            if now > self.deadline {
                bail!(
                    "{}: {done} of {} spawned when the time limit ran out",
                    self.label,
                    self.n
                );
            }
        }
        Ok(())
    }

    /// Stops the clock (call once all N are running), settles, reads RSS.
    pub async fn finish(self, bench_system: (&str, &str)) -> anyhow::Result<Sample> {
        let secs = self.start.elapsed().as_secs_f64();
        tokio::time::sleep(SETTLE).await;
        let rss_after = rss_bytes(self.page)?;
        let (system, variant) = bench_system;
        let mut s = Sample::rate("scale", system, variant, self.n, secs);
        s.rss_before = Some(self.rss_before);
        s.rss_after = Some(rss_after);
        s.bytes_per_actor = Some((rss_after as f64 - self.rss_before as f64) / self.n as f64);
        Ok(s)
    }
}

/// Runs `fut` with a time bound; informational steps (shutdown) report `None` on timeout.
pub async fn timed_bounded<F: Future<Output = ()>>(limit: Duration, fut: F) -> Option<f64> {
    let start = Instant::now();
    tokio::time::timeout(limit, fut)
        .await
        .ok()
        .map(|()| start.elapsed().as_secs_f64())
}
