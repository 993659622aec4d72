//! lessons: the seed talk's path from one server to a distributed system, one small topology
//! per lesson, each run in one process or across three, and broken on purpose from the
//! console. The guide is `docs/guide/`; each lesson's page says what to try and why.
//!
//! ```text
//! cargo run --example lessons -- monolith        # lesson 1, every node in this process
//! cargo run --example lessons -- 2               # lessons by number, too
//! cargo run --example lessons -- cache --inject "5:race on"
//! ```
//!
//! Lessons: 1 `monolith`, 2 `scale-out`, 3 `cache`, 4 `queue`, 5 `replicas`, 6 `failure`,
//! 7 `partition`, 8 `flood`. Each prints what happens in the lesson's own terms while it runs;
//! type `help` for the faults it takes (`kill`, `partition`, `heal`, `flood`, and its own).

mod cache;
mod failure;
mod flood;
mod harness;
mod monolith;
mod partition;
mod queue;
mod replicas;
mod scale_out;
mod service;

use clap::{Parser, Subcommand};
use harness::LessonArgs;

#[derive(Debug, Parser)]
#[command(about = "The seed talk's lessons: run a distributed system, break it, watch it")]
struct Cli {
    #[command(subcommand)]
    lesson: Which,
}

#[derive(Debug, Subcommand)]
enum Which {
    /// 1. One server: the service and its data in one actor
    #[command(alias = "1")]
    Monolith(LessonArgs),
    /// 2. Scale out: a balancer over a pool on two nodes; crash a member, lose a node
    #[command(alias = "2")]
    ScaleOut(LessonArgs),
    /// 3. A cache in front of the database: hit rates, and the stale read of naive
    ///    invalidation that read-through prevents
    #[command(alias = "3")]
    Cache(LessonArgs),
    /// 4. A queue for slow work: answered at once, done later, redelivered after a crash,
    ///    poison to the dead letters
    #[command(alias = "4")]
    Queue(LessonArgs),
    /// 5. Replicas: reads split from writes, replication lag, read-your-writes
    #[command(alias = "5")]
    Replicas(LessonArgs),
    /// 6. Failure: a node lost (detection, 502s, recovery) and a leader lost (promotion)
    #[command(alias = "6")]
    Failure(LessonArgs),
    /// 7. The partition and CAP: the database refuses in the minority, a leaderless store
    ///    answers on both sides, and they converge after healing
    #[command(alias = "7")]
    Partition(LessonArgs),
    /// 8. A flood: load shedding with 429s while a well-behaved client keeps its 200s
    #[command(alias = "8")]
    Flood(LessonArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // the lessons narrate on standard output; the faults they inject would fill standard
    // error with warnings, so it shows errors only unless RUST_LOG says otherwise
    let telemetry = troupe::telemetry::init_with("lessons", "error");
    // crashes on purpose are part of the lessons: one line, not a backtrace
    std::panic::set_hook(Box::new(|info| {
        tracing::debug!("{info}");
    }));
    let (lesson, args, scratch) = match Cli::parse().lesson {
        Which::Monolith(args) => (monolith::lesson(&args), args, None),
        Which::ScaleOut(args) => (scale_out::lesson(&args), args, None),
        Which::Cache(args) => {
            let (dir, scratch) = harness::data_dir(&args, "cache");
            (cache::lesson(&args, &dir), args, scratch.then_some(dir))
        }
        Which::Queue(args) => {
            let (dir, scratch) = harness::data_dir(&args, "queue");
            (queue::lesson(&args, &dir), args, scratch.then_some(dir))
        }
        Which::Replicas(args) => {
            let (dir, scratch) = harness::data_dir(&args, "replicas");
            (replicas::lesson(&args, &dir), args, scratch.then_some(dir))
        }
        Which::Failure(args) => {
            let (dir, scratch) = harness::data_dir(&args, "failure");
            (failure::lesson(&args, &dir), args, scratch.then_some(dir))
        }
        Which::Partition(args) => {
            let (dir, scratch) = harness::data_dir(&args, "partition");
            (partition::lesson(&args, &dir), args, scratch.then_some(dir))
        }
        Which::Flood(args) => (flood::lesson(&args), args, None),
    };
    let outcome = harness::run(lesson, args).await;
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    telemetry.shutdown().await;
    outcome
}
