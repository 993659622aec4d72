//! A whole `Topology`, declared once, under the simulator: every simulated host declares the
//! same topology (a replicated database on `db-0`..`db-2`, and an `app` node) and starts its
//! own node with `Topology::start_node_with` on a simulated socket, as a deployment would start
//! each node with `launch --node`. Faults come from the seed (`troupe_sim::Schedule`), the
//! replicas' files are volatile (a power loss drops what was not synced), and the `app` node's
//! code writes through the handle `Topology::add` returned.
//!
//! Checked for each seed: once the faults are over, exactly one replica leads, and every write
//! the database acknowledged reads back with its value; a seed replays to the same trace.
//!
//! `TROUPE_SIM_SEEDS` picks the seeds; default 1-2.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use troupe::Topology;
use troupe::db::{AckMode, DbClient, DbSpec, Role};
use troupe::runtime::Reach;
use troupe_sim::{Plan, Schedule, Trace, addr, bind, run_with_faults, simulation, volatile_file};

const REPLICAS: [&str; 3] = ["db-0", "db-1", "db-2"];
const HOSTS: [&str; 4] = ["db-0", "db-1", "db-2", "app"];
const FAULTS: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(6));

fn spec(dir: &Path) -> DbSpec {
    DbSpec::new("db", dir)
        .replica("db-0")
        .replica("db-1")
        .replica("db-2")
        .ack(AckMode::Majority)
        .promote_after(Some(Duration::from_millis(300)))
        .reachable_from(Reach::cluster())
}

/// The topology every host declares alike, and the database's handle
fn topology(dir: &Path) -> (Topology, DbClient) {
    let mut t = Topology::new("sim-topology");
    let first = t.node("db-0");
    for name in &HOSTS[1..] {
        t.node(name);
    }
    let db = t.add(first, "db", spec(dir));
    (t, db.with_timeout(Duration::from_secs(2)))
}

fn run(seed: u64) -> Trace {
    // TROUPE_SIM_LOG=troupe_runtime=debug (say) prints log lines at simulated time
    let _log = troupe_sim::log::from_env();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ca = troupe_testkit::Cluster::new("sim-topology");
    let mut sim = simulation(seed, Duration::from_secs(60));
    let trace = Trace::new();
    let plan = Plan {
        hosts: &HOSTS,
        crashable: &REPLICAS,
        window: FAULTS,
        panics: &[("db-0", "db.0"), ("db-1", "db.1"), ("db-2", "db.2")],
        episodes: 8,
    };
    let mut schedule = Schedule::draw(seed, &plan);
    for (i, host) in REPLICAS.iter().enumerate() {
        volatile_file(host, &spec(dir.path()).replica_path(i));
    }

    for name in REPLICAS {
        let config = ca
            .config(name, &[])
            .peer_down_timeout(Duration::from_secs(1));
        let dir = dir.path().to_path_buf();
        sim.host(name, move || {
            let (config, dir) = (config.clone(), dir.clone());
            async move {
                // addresses are looked up inside the simulation
                let config = config.seeds(REPLICAS.iter().filter(|r| **r != name).map(|r| addr(r)));
                let (t, _) = topology(&dir);
                let _running = t
                    .start_node_with(name, |node| async move { bind(&node, config).await })
                    .await?;
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }

    let app_trace = trace.clone();
    let app_config = ca
        .config("app", &[])
        .peer_down_timeout(Duration::from_secs(1));
    let app_dir = dir.path().to_path_buf();
    sim.client("app", async move {
        let trace = app_trace;
        let app_config = app_config.seeds(REPLICAS.iter().map(|r| addr(r)));
        let (t, db) = topology(&app_dir);
        let _running = t
            .start_node_with("app", |node| async move { bind(&node, app_config).await })
            .await?;
        let mut acked: BTreeMap<String, String> = BTreeMap::new();
        let start = tokio::time::Instant::now();
        let mut i = 0;
        while start.elapsed() < FAULTS.1 + Duration::from_secs(1) {
            let (key, value) = (format!("k{i}"), format!("v{i}"));
            match db.put(key.clone(), value.clone()).await {
                Ok(written) => {
                    trace.record(format!("{key} at {}", written.index));
                    acked.insert(key, value);
                }
                Err(err) => trace.record(format!("{key}: {err}")),
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        let mut leaders = 0;
        for _ in 0..150 {
            leaders = db
                .statuses()
                .await
                .into_iter()
                .flatten()
                .filter(|s| s.role == Role::Leader)
                .count();
            if leaders == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(leaders, 1, "seed {seed}: no single leader after the faults");
        for (key, value) in &acked {
            let mut read = None;
            for _ in 0..20 {
                if let Ok(got) = db.get(key.clone()).await {
                    read = Some(got);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let got = read.ok_or_else(|| format!("{key} could not be read"))?;
            assert_eq!(
                got.as_deref(),
                Some(value.as_bytes()),
                "seed {seed}: acknowledged {key} lost"
            );
        }
        println!("SIM seed={seed} writes={i} acked={}", acked.len());
        Ok(())
    });

    let replay = format!("TROUPE_SIM_SEEDS={seed} cargo test --test topology_sim");
    run_with_faults(&mut sim, &mut schedule, &trace, seed, &replay, |e| {
        e.contains(" at ")
    });
    trace
}

#[test]
fn a_topology_runs_under_the_simulator_and_keeps_acknowledged_writes() {
    for seed in troupe_sim::seeds_from_env(1..=2) {
        let first = run(seed);
        if seed == 1 {
            assert_eq!(
                first.hash(),
                run(seed).hash(),
                "seed 1 replays to another trace"
            );
        }
    }
}
