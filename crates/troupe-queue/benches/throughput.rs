//! Queue throughput: enqueue + take + ack per second through the queue ACTOR
//!
//! Every operation is a call through a [`QueueClient`] to a supervised [`QueueActor`] on
//! one node, from tokio tasks: 1 producer + 1 consumer, and 4 producers + 4 consumers; each in
//! memory and durable (a redb file in a temporary directory, every change committed with
//! `Durability::Immediate`, so the durable figure is bounded by fsync latency).
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench cargo bench -p troupe-queue --bench throughput
//! TROUPE_QUEUE_N=50000 cargo bench -p troupe-queue --bench throughput
//! ```
//!
//! Items per run: `TROUPE_QUEUE_N`, else 20,000 in memory and 2,000 durable; without a
//! `--bench` argument (a test run) a smoke run of 200 each. Prints a table, then one JSON line.
//!
//! [`QueueActor`]: troupe_queue::actor::QueueActor
//! [`QueueClient`]: troupe_queue::QueueClient

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use troupe_queue::actor::QueueSpec;
use troupe_queue::core::QueueConfig;
use troupe_queue::{Consumer, QueueClient};
use troupe_runtime::{ChildOptions, Mesh, Node, NodeConfig, SupervisorSpec};

/// The longest any one call may take
const CALL: Duration = Duration::from_secs(10);

/// The longest one run may take
const RUN: Duration = Duration::from_secs(300);

const PAYLOAD: &[u8] = b"0123456789abcdef0123456789abcdef";

struct Outcome {
    mode: &'static str,
    producers: usize,
    consumers: usize,
    items: u64,
    elapsed: Duration,
    empty_takes: u64,
}

impl Outcome {
    fn per_sec(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64()
    }
}

async fn run(
    mode: &'static str,
    spec: QueueSpec,
    producers: usize,
    consumers: usize,
    items: u64,
) -> Result<Outcome, String> {
    let node =
        Node::new("bench", &Mesh::new(), NodeConfig::default()).map_err(|e| e.to_string())?;
    let (child, queue) = node
        .child("queue", ChildOptions::permanent(), spec.factory())
        .map_err(|e| e.to_string())?;
    node.start(SupervisorSpec::one_for_one(), vec![child])
        .await
        .map_err(|e| e.to_string())?;
    let queue = QueueClient::new(queue).with_timeout(CALL);

    let started = Instant::now();
    let deadline = started + RUN;
    let acked = Arc::new(AtomicU64::new(0));
    let empty = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for p in 0..producers as u64 {
        let queue = queue.clone();
        let share = items / producers as u64 + u64::from(p < items % producers as u64);
        tasks.push(tokio::spawn(produce(queue, share)));
    }
    for c in 0..consumers as u64 {
        let (queue, acked, empty) = (queue.clone(), acked.clone(), empty.clone());
        tasks.push(tokio::spawn(consume(
            queue,
            c + 1,
            items,
            acked,
            empty,
            deadline,
        )));
    }
    let mut failure = None;
    for task in tasks {
        match tokio::time::timeout_at(deadline.into(), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => failure = Some(e),
            Ok(Err(e)) => failure = Some(e.to_string()),
            Err(_) => failure = Some(format!("run took longer than {RUN:?}")),
        }
    }
    let elapsed = started.elapsed();
    node.shutdown().await;
    if let Some(why) = failure {
        return Err(why);
    }
    let done = acked.load(Ordering::SeqCst);
    if done != items {
        return Err(format!("acked {done} of {items}"));
    }
    Ok(Outcome {
        mode,
        producers,
        consumers,
        items,
        elapsed,
        empty_takes: empty.load(Ordering::SeqCst),
    })
}

async fn produce(queue: QueueClient, items: u64) -> Result<(), String> {
    for _ in 0..items {
        queue
            .enqueue(Bytes::from_static(PAYLOAD))
            .await
            .map_err(|e| format!("enqueue: {e}"))?;
    }
    Ok(())
}

async fn consume(
    queue: QueueClient,
    consumer: u64,
    items: u64,
    acked: Arc<AtomicU64>,
    empty: Arc<AtomicU64>,
    deadline: Instant,
) -> Result<(), String> {
    let consumer = Consumer::new("bench", consumer);
    while acked.load(Ordering::SeqCst) < items {
        if Instant::now() > deadline {
            return Err("consumer ran out of time".into());
        }
        match queue
            .take(&consumer)
            .await
            .map_err(|e| format!("take: {e}"))?
        {
            Some(lease) => {
                queue
                    .ack(&consumer, lease.item)
                    .await
                    .map_err(|e| format!("ack: {e}"))?;
                acked.fetch_add(1, Ordering::SeqCst);
            }
            None => {
                // Ahead of the producers: back off a little.
                empty.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
    }
    Ok(())
}

fn config(items: u64) -> QueueConfig {
    QueueConfig {
        capacity: usize::try_from(items).unwrap_or(usize::MAX).max(1),
        max_attempts: 5,
        lease: Duration::from_secs(60),
        max_item_bytes: 1024,
        dlq_capacity: 100,
    }
}

fn items_from_env(default: u64) -> u64 {
    std::env::var("TROUPE_QUEUE_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bench = std::env::args().any(|a| a == "--bench");
    let (memory_n, durable_n) = if bench {
        (items_from_env(20_000), items_from_env(2_000))
    } else {
        (200, 200)
    };
    let dir = tempfile::tempdir()?;
    let mut outcomes = Vec::new();
    for (producers, consumers) in [(1, 1), (4, 4)] {
        let spec = QueueSpec::in_memory().config(config(memory_n));
        outcomes.push(run("memory", spec, producers, consumers, memory_n).await?);
        let path = dir
            .path()
            .join(format!("queue-{producers}x{consumers}.redb"));
        let spec = QueueSpec::durable(path).config(config(durable_n));
        outcomes.push(run("durable", spec, producers, consumers, durable_n).await?);
    }

    println!(
        "{:<8} {:>9} {:>9} {:>8} {:>10} {:>14} {:>12}",
        "mode", "producers", "consumers", "items", "secs", "items/s", "empty takes"
    );
    for o in &outcomes {
        println!(
            "{:<8} {:>9} {:>9} {:>8} {:>10.3} {:>14.0} {:>12}",
            o.mode,
            o.producers,
            o.consumers,
            o.items,
            o.elapsed.as_secs_f64(),
            o.per_sec(),
            o.empty_takes
        );
    }
    let rows: Vec<String> = outcomes
        .iter()
        .map(|o| {
            format!(
                "{{\"mode\":\"{}\",\"producers\":{},\"consumers\":{},\"items\":{},\"secs\":{:.4},\"items_per_sec\":{:.1},\"empty_takes\":{}}}",
                o.mode,
                o.producers,
                o.consumers,
                o.items,
                o.elapsed.as_secs_f64(),
                o.per_sec(),
                o.empty_takes
            )
        })
        .collect();
    println!(
        "{{\"bench\":\"troupe-queue/throughput\",\"unit\":\"enqueue+take+ack per second\",\"runs\":[{}]}}",
        rows.join(",")
    );
    Ok(())
}
