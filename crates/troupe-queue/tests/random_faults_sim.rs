//! A durable queue on one simulated host, and a producer and a consumer on another, under
//! faults drawn from a seed (`troupe-sim`): partitions both ways and one way, lossy links,
//! latency spikes, paused hosts, and the queue's host crashing and restarting with its file or
//! losing power (and with it every write not synced). Checked for each seed: an item whose
//! ack was acknowledged is never delivered again, and once the faults are over every enqueue
//! that was acknowledged is delivered (at least once) as the consumer drains the queue.
//!
//! `TROUPE_SIM_SEEDS` (e.g. `1-500`) picks the seeds; default 1-3.

use std::collections::BTreeSet;
use std::time::Duration;

use troupe_queue::actor::QueueSpec;
use troupe_queue::{Consumer, QueueClient};
use troupe_runtime::{Addr, ChildOptions, Mesh, Node, NodeConfig, Reach, SupervisorSpec};
use troupe_sim::{Plan, Schedule, Trace, addr, bind, run_with_faults, simulation, volatile_file};

const HOSTS: [&str; 2] = ["q", "app"];
/// When faults may start and by when every one has ended
const FAULTS: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(6));
const LEASE: Duration = Duration::from_secs(1);

fn run(seed: u64) {
    // TROUPE_SIM_LOG=troupe_runtime=debug (say) prints log lines at simulated time
    let _log = troupe_sim::log::from_env();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.redb");
    let ca = troupe_testkit::Cluster::new("sim-queue");
    let mut sim = simulation(seed, Duration::from_secs(90));
    let trace = Trace::new();
    let plan = Plan {
        hosts: &HOSTS,
        crashable: &["q"],
        window: FAULTS,
        panics: &[("q", "jobs")],
        episodes: 8,
    };
    let mut schedule = Schedule::draw(seed, &plan);
    let faults = schedule.faults().len();
    volatile_file("q", &path);

    let config = ca
        .config("q", &[])
        .peer_down_timeout(Duration::from_secs(1));
    sim.host("q", move || {
        let (config, path) = (config.clone(), path.clone());
        async move {
            let node = Node::new("q", &Mesh::new(), NodeConfig::default())?;
            let (queue, _) = node.child(
                "jobs",
                ChildOptions::permanent().reachable_from(Reach::cluster()),
                QueueSpec::durable(path).lease(LEASE).factory(),
            )?;
            node.start(SupervisorSpec::one_for_one(), vec![queue])
                .await?;
            let _net = bind(&node, config).await?;
            std::future::pending::<()>().await;
            Ok(())
        }
    });

    let app_trace = trace.clone();
    let app_config = ca
        .config("app", &[])
        .peer_down_timeout(Duration::from_secs(1));
    sim.client("app", async move {
        let trace = app_trace;
        let (node, _net) = troupe_sim::start_node("app", app_config.seeds([addr("q")])).await?;
        let addr: Addr<_> = node.addr("q", "jobs");
        let queue = QueueClient::new(addr).with_timeout(Duration::from_millis(800));
        let worker = Consumer::new("app", 1);

        let mut enqueued: BTreeSet<String> = BTreeSet::new();
        let mut delivered: BTreeSet<String> = BTreeSet::new();
        let mut acked_items = BTreeSet::new();
        let start = tokio::time::Instant::now();
        let mut n = 0;
        // produce and consume while the faults come and go
        while start.elapsed() < FAULTS.1 + Duration::from_secs(1) {
            let payload = format!("job {n}");
            n += 1;
            match queue.enqueue(payload.clone()).await {
                Ok(item) => {
                    trace.record(format!("enqueued {payload} as {item:?}"));
                    enqueued.insert(payload);
                }
                Err(err) => trace.record(format!("enqueue {payload}: {err}")),
            }
            if n % 2 == 0 {
                take_one(
                    &queue,
                    &worker,
                    &mut delivered,
                    &mut acked_items,
                    seed,
                    &trace,
                )
                .await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // faults over: drain until nothing is left, leases expiring included
        let mut empty_since = None;
        while empty_since.is_none_or(|since: tokio::time::Instant| since.elapsed() < LEASE * 3) {
            match take_one(
                &queue,
                &worker,
                &mut delivered,
                &mut acked_items,
                seed,
                &trace,
            )
            .await
            {
                Some(true) => empty_since = None,
                Some(false) => {
                    empty_since.get_or_insert_with(tokio::time::Instant::now);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "seed {seed}: the queue did not drain"
            );
        }
        let lost: Vec<&String> = enqueued.difference(&delivered).collect();
        assert!(
            lost.is_empty(),
            "seed {seed}: acknowledged enqueues never delivered: {lost:?}"
        );
        println!(
            "SIM seed={seed} faults={faults} writes={} acked={} unknown={}",
            n,
            enqueued.len(),
            n - enqueued.len()
        );
        Ok(())
    });

    let replay =
        format!("TROUPE_SIM_SEEDS={seed} cargo test -p troupe-queue --test random_faults_sim");
    // the faults, and the operations that failed
    run_with_faults(&mut sim, &mut schedule, &trace, seed, &replay, |e| {
        e.starts_with("enqueued") || e.starts_with("took")
    });
}

/// Takes one item and acks it: `Some(true)` if one came, `Some(false)` if the queue was empty,
/// `None` if the queue did not answer. Fails the run if an item whose ack was acknowledged
/// comes again.
async fn take_one(
    queue: &QueueClient,
    worker: &Consumer,
    delivered: &mut BTreeSet<String>,
    acked: &mut BTreeSet<troupe_queue::ItemId>,
    seed: u64,
    trace: &Trace,
) -> Option<bool> {
    let lease = match queue.take(worker).await {
        Ok(Some(lease)) => lease,
        Ok(None) => return Some(false),
        Err(_) => return None,
    };
    assert!(
        !acked.contains(&lease.item),
        "seed {seed}: {:?} delivered again after its ack was acknowledged",
        lease.item
    );
    let payload = String::from_utf8_lossy(&lease.payload).into_owned();
    trace.record(format!(
        "took {payload} ({:?}, attempt {})",
        lease.item, lease.attempt
    ));
    delivered.insert(payload);
    if queue.ack(worker, lease.item).await.is_ok() {
        acked.insert(lease.item);
    }
    Some(true)
}

#[test]
fn random_faults_lose_no_acknowledged_enqueue_and_redeliver_no_acked_item() {
    for seed in troupe_sim::seeds_from_env(1..=3) {
        run(seed);
    }
}
