//! A Raft replica added to a database of `--mib` MiB: how long it takes to catch up (by
//! snapshot, since the leader keeps only `--log-retain` entries) and how much memory the
//! leader's and the new replica's processes reach meanwhile.
//!
//! Four `db_cluster` processes (`--replicas 4 --voters 3`): three voters and a spare. The
//! client fills the database with distinct keys and incompressible values, then asks for the
//! spare to be added ([`DbClient::add_replica`], what `troupe db add-replica 3` sends), which
//! returns once it is a voter: it has installed the snapshot and the log after it. Peak memory
//! is each process's `VmHWM`, reset (`/proc/PID/clear_refs`) just before the add.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use troupe_db::{DbClient, DbSpec, Role};

use crate::procs::Procs;
use crate::troupe_side;

/// What to run
pub struct SnapshotRun<'a> {
    pub db_cluster: &'a Path,
    pub dir: &'a Path,
    /// Database size to fill, in MiB of values
    pub mib: u64,
    /// Size of each value, in KiB
    pub value_kib: usize,
    /// Concurrent writers while filling
    pub clients: usize,
    /// The leader's `--log-retain`
    pub log_retain: u64,
}

/// What one run measured
pub struct Measured {
    pub fill_secs: f64,
    pub values: u64,
    /// Until the add returned (the new replica is a voter)
    pub add_secs: f64,
    /// Until the new replica had applied the leader's log as it stood before the add
    pub caught_up_secs: f64,
    /// (node, peak RSS in KiB during the add, RSS before it)
    pub leader: (String, u64, u64),
    pub joiner: (String, u64, u64),
    /// Bytes of the new replica's directory afterwards
    pub joiner_disk: u64,
    /// The index of the snapshot the new replica's log starts after
    pub snapshot_index: u64,
}

const REPLICAS: usize = 4;
const SPARE: u64 = 3;

pub async fn run(run: &SnapshotRun<'_>, procs: &mut Procs) -> anyhow::Result<Measured> {
    let args = [
        "--ack",
        "raft",
        "--replicas",
        "4",
        "--voters",
        "3",
        "--log-retain",
        &run.log_retain.to_string(),
    ]
    .map(String::from);
    let seed = troupe_side::start_replicas(run.db_cluster, run.dir, REPLICAS, &args, procs)?;
    let (node, net) = troupe_side::join(run.dir, seed).await?;
    let spec = (0..REPLICAS)
        .fold(DbSpec::new("db", "unused"), |spec, i| {
            spec.replica(format!("db-{i}"))
        })
        .voters(3);
    let client = spec.client(&node).with_timeout(Duration::from_secs(600));
    let result = measure(run, procs, &client).await;
    net.shutdown().await;
    node.shutdown().await;
    result
}

/// `len` pseudo-random bytes (xorshift), which no storage layer compresses away
fn noise(len: usize) -> Bytes {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

fn pid_of(procs: &Procs, node: &str) -> anyhow::Result<u32> {
    procs
        .iter()
        .find(|p| p.name == node)
        .map(|p| p.pid())
        .with_context(|| format!("no process for {node}"))
}

/// `VmHWM` and `VmRSS` of `pid`, in KiB
fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .with_context(|| format!("{name} of {pid}"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

fn disk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

async fn measure(
    run: &SnapshotRun<'_>,
    procs: &Procs,
    client: &DbClient,
) -> anyhow::Result<Measured> {
    // the spare answers its status too, as a non-voter
    let leader = troupe_side::wait_for_leader(client, REPLICAS, Duration::from_secs(60)).await?;
    let value_len = run.value_kib * 1024;
    let values = run.mib * 1024 / run.value_kib as u64;
    let pool = noise(4 * 1024 * 1024 + value_len);
    eprintln!(
        "# filling {} MiB: {values} values of {} KiB, {} writers; leader db.{leader}",
        run.mib, run.value_kib, run.clients
    );
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..run.clients {
        let (client, next, pool) = (client.clone(), next.clone(), pool.clone());
        writers.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= values {
                    return Ok::<_, anyhow::Error>(());
                }
                let at = (i as usize * 4099) % (pool.len() - value_len);
                let value = pool.slice(at..at + value_len);
                client
                    .put(format!("snap-{i:010}"), value)
                    .await
                    .with_context(|| format!("put {i}"))?;
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done??;
    }
    let fill_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "# filled in {fill_secs:.1} s ({:.1} MiB/s)",
        run.mib as f64 / fill_secs
    );
    let statuses = client.statuses().await;
    let leader = statuses
        .iter()
        .flatten()
        .find(|s| s.role == Role::Leader)
        .context("no leader after the fill")?;
    let leader_node = format!("db-{}", leader.id);
    let joiner_node = format!("db-{SPARE}");
    let (leader_pid, joiner_pid) = (pid_of(procs, &leader_node)?, pid_of(procs, &joiner_node)?);
    let mut before = Vec::new();
    for pid in [leader_pid, joiner_pid] {
        // resets VmHWM to the current RSS
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
            .with_context(|| format!("resetting the peak RSS of {pid}"))?;
        before.push(memory_kib(pid)?.1);
    }
    eprintln!(
        "# adding db.{SPARE} (leader db.{} at index {})",
        leader.id, leader.last_index
    );
    let started = Instant::now();
    let voters = client
        .add_replica(SPARE)
        .await
        .map_err(|e| anyhow::anyhow!("adding db.{SPARE}: {e}"))?;
    let add_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(voters.contains(&SPARE), "voters after the add: {voters:?}");
    // caught up to the leader's log as it stood, its base a snapshot it installed: polled,
    // as the commit index reaches a new voter with the leader's next message
    let deadline = Instant::now() + Duration::from_secs(600);
    let joined = loop {
        let status = client.statuses().await.into_iter().nth(SPARE as usize);
        match status {
            Some(Ok(s)) if s.applied_index >= leader.last_index => break s,
            other if Instant::now() >= deadline => {
                anyhow::bail!("db.{SPARE} has not caught up within 600 s: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let caught_up_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        joined.base_index > 0,
        "db.{SPARE} caught up by log, not by a snapshot: {joined:?}"
    );
    let (leader_peak, _) = memory_kib(leader_pid)?;
    let (joiner_peak, _) = memory_kib(joiner_pid)?;
    Ok(Measured {
        fill_secs,
        values,
        add_secs,
        caught_up_secs,
        leader: (leader_node, leader_peak, before[0]),
        joiner: (joiner_node, joiner_peak, before[1]),
        joiner_disk: disk_bytes(&run.dir.join(format!("d{SPARE}"))),
        snapshot_index: joined.base_index,
    })
}
