//! db-bench: writes/s and reads/s of troupe's replicated DB (three `db_cluster` processes) and
//! of etcd (three members), on loopback, under the same client load.
//!
//! ```text
//! db-bench troupe --db-cluster PATH --ack raft --clients 64 --secs 10
//! db-bench etcd --clients 64 --secs 10
//! ```
//!
//! Each run starts its three servers (fresh data directories, and for troupe a fresh CA),
//! waits for a leader, then runs a put phase (`--clients` tasks, each putting distinct 16-byte
//! keys with 100-byte values, one at a time) and a get phase (the same tasks reading keys the
//! put phase wrote: troupe at the leader, etcd linearizable). Both phases stop after `--secs`
//! or `--max-ops` operations, whichever comes first. One JSON line per phase goes to standard
//! output, with a `#` line for people; the servers are killed by PID at the end, on error, and
//! on Ctrl-C.

mod etcd_side;
mod load;
mod procs;
mod snapshot;
mod table;
mod troupe_side;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::load::{Bounds, PhaseResult};
use crate::procs::Procs;

#[derive(Debug, Parser)]
#[command(
    about = "troupe's replicated DB vs etcd: writes/s and reads/s, three replicas on loopback"
)]
struct Cli {
    #[command(subcommand)]
    system: System,
}

#[derive(Debug, Subcommand)]
enum System {
    /// Three db_cluster processes; this process joins as client node `bench`
    Troupe {
        /// The db_cluster binary (default: $CARGO_TARGET_DIR/release/db_cluster)
        #[arg(long)]
        db_cluster: Option<PathBuf>,
        /// Replication: raft, or single-leader acknowledged by leader-only, majority or all
        #[arg(long, default_value = "raft", value_parser = ["raft", "leader-only", "majority", "all"])]
        ack: String,
        #[command(flatten)]
        common: Common,
    },
    /// Three etcd members on 127.0.0.1
    Etcd {
        /// The etcd binary
        #[arg(long, default_value = "/usr/bin/etcd")]
        etcd: PathBuf,
        /// Send every request to the leader's endpoint (default: all three members)
        #[arg(long)]
        leader_endpoint: bool,
        /// Serializable gets (answered by the member from its local state) instead of the
        /// default linearizable ones
        #[arg(long)]
        serializable_gets: bool,
        #[command(flatten)]
        common: Common,
    },
    /// A fourth replica added to a Raft database of `--mib` MiB: the time until it is a voter
    /// (caught up by snapshot) and the peak memory of the leader's and its process
    Snapshot {
        /// The db_cluster binary (default: $CARGO_TARGET_DIR/release/db_cluster)
        #[arg(long)]
        db_cluster: Option<PathBuf>,
        /// MiB of values to fill the database with first
        #[arg(long, default_value_t = 1024)]
        mib: u64,
        /// KiB per value
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
        value_kib: u64,
        /// Concurrent writers while filling
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// The replicas' `--log-retain`: entries kept past a snapshot
        #[arg(long, default_value_t = 256)]
        log_retain: u64,
        /// Where to make the run's temporary directory (default: the system's)
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Keep the temporary directory afterwards
        #[arg(long)]
        keep: bool,
    },
    /// Prints the markdown table for a results file (a JSON array of phase lines, or one
    /// JSON line per phase)
    Table {
        /// The results file
        file: PathBuf,
    },
}

#[derive(Debug, Args)]
struct Common {
    /// Concurrent client tasks
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Length of each phase, in seconds
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Most operations per phase
    #[arg(long, default_value_t = 2_000_000)]
    max_ops: u64,
    /// An operation not answered within this many milliseconds counts as an error
    #[arg(long, default_value_t = 10_000)]
    op_timeout_ms: u64,
    /// Where to make the run's temporary directory (default: the system's; use the same disk
    /// for both systems)
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the temporary directory (data and server logs) afterwards
    #[arg(long)]
    keep: bool,
    /// Count operations slower than this many milliseconds (`slow_ops`), and list each stall
    /// on standard error
    #[arg(long, default_value_t = 100)]
    slow_ms: u64,
    /// A label copied into the JSON lines as `run`
    #[arg(long)]
    tag: Option<String>,
}

impl Common {
    fn bounds(&self) -> anyhow::Result<Bounds> {
        anyhow::ensure!(
            (1..=999).contains(&self.clients),
            "--clients must be 1..=999"
        );
        anyhow::ensure!(
            self.secs > 0.0 && self.secs.is_finite(),
            "--secs must be > 0"
        );
        Ok(Bounds {
            clients: self.clients,
            duration: Duration::from_secs_f64(self.secs),
            max_ops: self.max_ops,
            op_timeout: Duration::from_millis(self.op_timeout_ms.max(1)),
            slow: (self.slow_ms > 0).then(|| Duration::from_millis(self.slow_ms)),
        })
    }

    fn tempdir(&self) -> anyhow::Result<tempfile::TempDir> {
        tempdir_in(self.dir.as_deref())
    }
}

/// A fresh `db-bench-*` directory under `parent`, or the system's temporary directory
fn tempdir_in(parent: Option<&std::path::Path>) -> anyhow::Result<tempfile::TempDir> {
    let builder = tempfile::Builder::new().prefix("db-bench-").clone();
    Ok(match parent {
        Some(parent) => {
            std::fs::create_dir_all(parent)?;
            builder.tempdir_in(parent)?
        }
        None => builder.tempdir()?,
    })
}

/// The db_cluster binary given, or the default one; an error if it is not there
fn db_cluster_bin(given: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    let bin = given
        .cloned()
        .unwrap_or_else(troupe_side::default_db_cluster);
    anyhow::ensure!(bin.is_file(), "no db_cluster binary at {}", bin.display());
    Ok(bin)
}

fn report(
    system: &str,
    mode: &str,
    phase: &str,
    common: &Common,
    r: &PhaseResult,
    extra: serde_json::Value,
) {
    let mut line = serde_json::json!({
        "system": system,
        "mode": mode,
        "phase": phase,
        "clients": common.clients,
        "secs": (r.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        "ops": r.ops,
        "ops_per_sec": r.ops_per_sec().round(),
        "p50_us": r.percentile_us(50.0),
        "p99_us": r.percentile_us(99.0),
        "max_us": r.max_us(),
        "errors": r.errors,
        "stalled_secs": r.stalled_secs,
        "slowest_at_ms": r.slowest_at.as_millis(),
        "slow_ops": r.slow_ops,
        "slow_ms": common.slow_ms,
        "per_sec": r.timeline,
    });
    if let (Some(line), Some(tag)) = (line.as_object_mut(), &common.tag) {
        line.insert("run".into(), tag.clone().into());
    }
    if let (Some(line), serde_json::Value::Object(extra)) = (line.as_object_mut(), extra) {
        line.extend(extra);
    }
    println!("{line}");
    println!(
        "# {system} {mode} {phase}: {} ops in {:.2} s = {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms (started at {:.2} s), {} errors, {} stalled s",
        r.ops,
        r.elapsed.as_secs_f64(),
        r.ops_per_sec(),
        f64::from(r.percentile_us(50.0)) / 1000.0,
        f64::from(r.percentile_us(99.0)) / 1000.0,
        f64::from(r.max_us()) / 1000.0,
        r.slowest_at.as_secs_f64(),
        r.errors,
        r.stalled_secs,
    );
    for err in &r.first_errors {
        eprintln!("# {system} {mode} {phase} error: {err}");
    }
}

async fn run(cli: &Cli) -> anyhow::Result<()> {
    let mut procs = Procs::default();
    match &cli.system {
        System::Troupe {
            db_cluster,
            ack,
            common,
        } => {
            let bin = db_cluster_bin(db_cluster.as_ref())?;
            let dir = common.tempdir()?;
            let run = troupe_side::TroupeRun {
                db_cluster: &bin,
                ack,
                dir: dir.path(),
                bounds: common.bounds()?,
            };
            let result = troupe_side::run(&run, &mut procs).await;
            finish(&mut procs, dir, common.keep, result.is_err());
            let phases = result?;
            let extra = serde_json::json!({ "leader": phases.leader.1 });
            report("troupe", ack, "put", common, &phases.put, extra.clone());
            report("troupe", ack, "get", common, &phases.get, extra);
        }
        System::Etcd {
            etcd,
            leader_endpoint,
            serializable_gets,
            common,
        } => {
            let version = etcd_side::version(etcd);
            let dir = common.tempdir()?;
            let run = etcd_side::EtcdRun {
                etcd,
                dir: dir.path(),
                bounds: common.bounds()?,
                leader_only: *leader_endpoint,
                serializable_gets: *serializable_gets,
            };
            let result = etcd_side::run(&run, &mut procs).await;
            finish(&mut procs, dir, common.keep, result.is_err());
            let phases = result?;
            let extra = serde_json::json!({
                "version": version,
                "endpoints": phases.endpoints.len(),
            });
            let mut mode = String::from("raft");
            if *leader_endpoint {
                mode.push_str(", leader endpoint");
            }
            if *serializable_gets {
                mode.push_str(", serializable gets");
            }
            report("etcd", &mode, "put", common, &phases.put, extra.clone());
            report("etcd", &mode, "get", common, &phases.get, extra);
        }
        System::Snapshot {
            db_cluster,
            mib,
            value_kib,
            clients,
            log_retain,
            dir,
            keep,
        } => {
            let bin = db_cluster_bin(db_cluster.as_ref())?;
            anyhow::ensure!((1..=999).contains(clients), "--clients must be 1..=999");
            let dir = tempdir_in(dir.as_deref())?;
            let run = snapshot::SnapshotRun {
                db_cluster: &bin,
                dir: dir.path(),
                mib: *mib,
                value_kib: usize::try_from(*value_kib)?,
                clients: *clients,
                log_retain: *log_retain,
            };
            let result = snapshot::run(&run, &mut procs).await;
            finish(&mut procs, dir, *keep, result.is_err());
            let m = result?;
            println!(
                "{}",
                serde_json::json!({
                    "system": "troupe", "mode": "raft", "phase": "add-replica",
                    "mib": mib, "value_kib": value_kib, "values": m.values,
                    "fill_secs": m.fill_secs, "add_secs": m.add_secs, "caught_up_secs": m.caught_up_secs,
                    "snapshot_index": m.snapshot_index,
                    "leader": m.leader.0, "leader_peak_kib": m.leader.1, "leader_rss_before_kib": m.leader.2,
                    "joiner": m.joiner.0, "joiner_peak_kib": m.joiner.1, "joiner_rss_before_kib": m.joiner.2,
                    "joiner_disk_bytes": m.joiner_disk,
                })
            );
            let mib_of = |kib: u64| kib as f64 / 1024.0;
            println!(
                "# {mib} MiB filled in {:.1} s; db.3 a voter in {:.1} s, caught up in {:.1} s (from a snapshot at index {}); peak RSS during the add: leader {} {:.0} MiB (from {:.0}), new replica {} {:.0} MiB (from {:.0}); its directory {:.0} MiB",
                m.fill_secs,
                m.add_secs,
                m.caught_up_secs,
                m.snapshot_index,
                m.leader.0,
                mib_of(m.leader.1),
                mib_of(m.leader.2),
                m.joiner.0,
                mib_of(m.joiner.1),
                mib_of(m.joiner.2),
                m.joiner_disk as f64 / (1024.0 * 1024.0),
            );
        }
        System::Table { file } => print!("{}", table::markdown(file)?),
    }
    Ok(())
}

/// Kills the servers (showing their logs' ends if one had died on its own or the run failed)
/// and removes the directory, or keeps it if asked to or the run failed
fn finish(procs: &mut Procs, dir: tempfile::TempDir, keep: bool, failed: bool) {
    let died: Vec<String> = procs
        .exited()
        .into_iter()
        .filter_map(|(name, status)| status.map(|s| format!("{name} ({s})")))
        .collect();
    if !died.is_empty() {
        eprintln!("# servers that exited during the run: {}", died.join(", "));
    }
    if failed || !died.is_empty() {
        eprintln!("{}", procs.log_tails(20));
    }
    procs.kill_all();
    if keep || failed {
        eprintln!("# kept {}", dir.keep().display());
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        tokio::select! {
            result = run(&cli) => result,
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
        }
    })
}
