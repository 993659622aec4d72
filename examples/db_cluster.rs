//! db_cluster: a database replicated three ways — one leader, two followers — that you can
//! break and watch recover.
//!
//! ```text
//! cargo run --example db_cluster                      # all three replicas in this process
//! cargo run --example db_cluster -- --ack all --data /tmp/db
//! ```
//!
//! Replica `db.0` runs on node `db-0`, `db.1` on `db-1`, `db.2` on `db-2`, each in its own
//! redb file under `--data`. A writer increments a counter once per `--write-every-ms` with
//! compare-and-set through the leader; every second each process prints the replicas' status
//! (role, term or epoch, last log index, applied index, and in Raft mode the voters).
//!
//! By default (`--ack raft`) the replicas are a Raft group: kill the process holding the leader
//! and the others elect one of themselves within two election timeouts (the log says `leading`
//! with the new term); the writer goes on; start the process again and it rejoins as a follower.
//! With `--ack leader-only|majority|all` the replicas use single-leader replication instead: a
//! follower is promoted after the peer-down timeout plus `--promote-after-ms`.
//!
//! `--replicas N` places more replicas (`db.3` on `db-3`, ...); with `--voters 3` the extra ones
//! start as spares, outside the Raft group, until `troupe db add-replica 3` makes one a voter
//! (it catches up by snapshot and log first) — and `remove-replica` takes one out again.
//!
//! The same topology as three processes (see the README, "Running across hosts"):
//!
//! ```text
//! troupe ca init ca && for n in db-0 db-1 db-2; do troupe ca issue ca $n; done
//! cargo run --example db_cluster -- --node db-0 --listen 127.0.0.1:7101 --ca ca --data d0
//! cargo run --example db_cluster -- --node db-1 --listen 127.0.0.1:7102 --seed 127.0.0.1:7101 --ca ca --data d1
//! cargo run --example db_cluster -- --node db-2 --listen 127.0.0.1:7103 --seed 127.0.0.1:7101 --ca ca --data d2
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use troupe::db::{DbClient, WriteOutcome};
use troupe::prelude::*;

/// How the replicas replicate, as flags
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Ack {
    /// A Raft group: elected by vote, a majority acknowledges, linearizable reads
    Raft,
    /// The leader's own durable copy acknowledges a write
    LeaderOnly,
    /// Two of the three replicas
    Majority,
    /// All three
    All,
}

#[derive(Debug, Parser)]
#[command(about = "A database replicated three ways: kill the leader, watch a follower take over")]
struct Args {
    #[command(flatten)]
    launch: LaunchArgs,
    /// Directory for the replicas' files
    #[arg(long, default_value = "./troupe-data/db_cluster")]
    data: PathBuf,
    /// How the replicas replicate: Raft, or single-leader acknowledged by the leader only, a
    /// majority or all
    #[arg(long, value_enum, default_value = "raft")]
    ack: Ack,
    /// Promote a follower this long after the leader's node is reported down (0: never on
    /// its own)
    #[arg(long, default_value_t = 1000)]
    promote_after_ms: u64,
    /// Increment the counter this often (0: no writer)
    #[arg(long, default_value_t = 1000)]
    write_every_ms: u64,
    /// Print the replicas' status this often (0: never)
    #[arg(long, default_value_t = 1000)]
    status_every_ms: u64,
    /// Replicas, `db.i` on node `db-i`; every process must be given the same number
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=9))]
    replicas: u8,
    /// Raft mode: how many of the replicas (the first ones) a fresh database starts with as
    /// voters; add the others with `troupe db add-replica N` (default: all of them)
    #[arg(long)]
    voters: Option<u8>,
    /// Raft mode: log entries kept past a snapshot, and taken between two snapshots; a
    /// replica further behind catches up by snapshot
    #[arg(long, default_value_t = 10_000)]
    log_retain: u64,
}

/// The database every process declares alike, so the replicas find each other by name
fn spec(args: &Args) -> DbSpec {
    let promote = (args.promote_after_ms > 0).then(|| Duration::from_millis(args.promote_after_ms));
    let mut spec = (0..args.replicas)
        .fold(DbSpec::new("db", &args.data), |spec, i| {
            spec.replica(format!("db-{i}"))
        })
        .log_retain(args.log_retain)
        .promote_after(promote)
        // every process runs a client
        .reachable_from(Reach::cluster());
    if let Some(voters) = args.voters {
        spec = spec.voters(voters.into());
    }
    match args.ack {
        Ack::Raft => spec,
        Ack::LeaderOnly => spec.ack(AckMode::LeaderOnly),
        Ack::Majority => spec.ack(AckMode::Majority),
        Ack::All => spec.ack(AckMode::All),
    }
}

/// Increments `counter` by compare-and-set: read at the leader, swap if unchanged
async fn increment(db: &DbClient) -> Result<(u64, u64), troupe::db::DbError> {
    loop {
        let current = db.get("counter").await?;
        let n = current
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        let next = Bytes::from((n + 1).to_string());
        let written = db.cas("counter", current, Some(next)).await?;
        if written.outcome == WriteOutcome::Swapped {
            return Ok((n + 1, written.index));
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn print_status(db: &DbClient) {
    let mut parts = Vec::new();
    for (i, status) in db.statuses().await.into_iter().enumerate() {
        parts.push(match status {
            Ok(s) => {
                let voters: Vec<String> = s.voters.iter().map(u64::to_string).collect();
                format!(
                    "db.{i} {:?} epoch={} last={} applied={} voters={}",
                    s.role,
                    s.epoch,
                    s.last_index,
                    s.applied_index,
                    voters.join(",")
                )
                .to_lowercase()
            }
            Err(_) => format!("db.{i} unreachable"),
        });
    }
    say(&format!("status {}", parts.join(" | ")));
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = troupe::telemetry::init_with("db_cluster", "warn,troupe_db=info");
    let args = Args::parse();
    let spec = spec(&args);
    let mut t = Topology::new("db_cluster");
    let first = t.node("db-0");
    let db = t
        .add(first, "db", spec)
        .with_timeout(Duration::from_secs(10));
    let (write_every, status_every) = (args.write_every_ms, args.status_every_ms);
    let work = async move {
        let mut write = tokio::time::interval(Duration::from_millis(write_every.max(1)));
        let mut status = tokio::time::interval(Duration::from_millis(status_every.max(1)));
        loop {
            tokio::select! {
                _ = write.tick(), if write_every > 0 => match increment(&db).await {
                    Ok((n, index)) => say(&format!("counter {n} at index {index}")),
                    Err(err) => say(&format!("write failed: {err}")),
                },
                _ = status.tick(), if status_every > 0 => print_status(&db).await,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
    };
    let outcome = troupe::launch_until(t, args.launch, work).await;
    telemetry.shutdown().await;
    Ok(outcome?)
}
