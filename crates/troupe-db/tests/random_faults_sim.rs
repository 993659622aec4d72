//! A three-replica database and a client under faults drawn from a seed (`troupe-sim`):
//! partitions both ways and one way, lossy links, latency spikes, paused hosts, replica hosts
//! crashing and restarting with their files or losing power (and with it every write not
//! synced), in episodes that overlap and all end by 8 s. The client puts and
//! compare-and-sets eight keys, recording each operation's invocation and completion in
//! simulated time and its outcome (unknown when the answer was lost). Checked for each seed:
//! each key's history, closed by a read once the faults are over, is linearizable
//! (`troupe_sim::check_register`; reads during the faults are left out, as a deposed leader may
//! serve stale reads in this mode, `docs/db.md`); exactly one replica leads; every replica has
//! applied the same index; and no two replicas ever took the lead in one epoch (from their
//! `leading` log events).
//!
//! `TROUPE_SIM_SEEDS` (e.g. `1-500`) picks the seeds; default 1-3. `scripts/sim.sh` runs many.

mod simulated;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use simulated::{Leaderships, REPLICAS, replica_hosts};
use troupe_db::{DbClient, ReplicaStatus, Role, WriteOutcome};
use troupe_sim::{
    Operation, Plan, RegisterOp, RunDigest, Schedule, Trace, check_register, run_with_faults,
    simulation, volatile_file,
};

const HOSTS: [&str; 4] = ["r0", "r1", "r2", "app"];
/// When faults may start and by when every one has ended
const FAULTS: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(8));

/// Now in simulated time
fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

fn text(value: Option<&Bytes>) -> Option<String> {
    value.map(|v| String::from_utf8_lossy(v).into_owned())
}

fn run(seed: u64) -> RunDigest {
    let dir = tempfile::tempdir().unwrap();
    let ca = troupe_testkit::Cluster::new("sim-db");
    let mut sim = simulation(seed, Duration::from_secs(90));
    let trace = Trace::new();
    let plan = Plan {
        hosts: &HOSTS,
        crashable: &REPLICAS,
        window: FAULTS,
        panics: &[("r0", "db.0"), ("r1", "db.1"), ("r2", "db.2")],
        episodes: 8,
    };
    let mut schedule = Schedule::draw(seed, &plan);
    let faults = schedule.faults().len();

    for (i, host) in REPLICAS.iter().enumerate() {
        volatile_file(host, &simulated::spec(dir.path()).replica_path(i));
    }
    replica_hosts(&mut sim, &ca, dir.path());

    let client_trace = trace.clone();
    let client_config = ca.config("app", &[]);
    let client_dir = dir.path().to_path_buf();
    sim.client("app", async move {
        let trace = client_trace;
        let (_node, _net, client) =
            simulated::client(client_config, &client_dir, Duration::from_secs(2)).await?;

        let mut history: BTreeMap<String, Vec<Operation>> = BTreeMap::new();
        // what the client last saw each key hold, for its compare-and-sets
        let mut believed: BTreeMap<String, Option<String>> = BTreeMap::new();
        let (mut acked, mut unknown) = (0u64, 0u64);
        let start = tokio::time::Instant::now();
        let mut i = 0;
        while start.elapsed() < FAULTS.1 + Duration::from_secs(1) {
            let key = format!("k{}", i % 8);
            let value = format!("v{i}");
            let invoked = now();
            let (op, completed) = if i % 3 == 2 {
                let expected = believed.get(&key).cloned().flatten();
                let result = client
                    .cas(
                        key.clone(),
                        expected.clone().map(Bytes::from),
                        Some(Bytes::from(value.clone())),
                    )
                    .await;
                let swapped = match &result {
                    Ok(written) => match &written.outcome {
                        WriteOutcome::Swapped => {
                            believed.insert(key.clone(), Some(value.clone()));
                            Some(true)
                        }
                        WriteOutcome::CasFailed { actual } => {
                            believed.insert(key.clone(), text(actual.as_ref()));
                            Some(false)
                        }
                        other => panic!("a compare-and-set answered {other:?}"),
                    },
                    Err(_) => None,
                };
                let op = RegisterOp::Cas {
                    expected,
                    new: Some(value.clone()),
                    swapped,
                };
                (op, result.is_ok().then(now))
            } else {
                let result = client.put(key.clone(), value.clone()).await;
                if let Ok(written) = &result {
                    believed.insert(key.clone(), Some(value.clone()));
                    trace.record(format!("{key}: {value} at index {}", written.index));
                }
                (
                    RegisterOp::Write(Some(value.clone())),
                    result.is_ok().then(now),
                )
            };
            match completed {
                Some(_) => acked += 1,
                None => unknown += 1,
            }
            trace.record(format!("{key}: {op:?} -> {completed:?}"));
            history.entry(key).or_default().push(Operation {
                invoked,
                completed,
                op,
            });
            i += 1;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }

        // faults over: a leader, every replica at one index
        let mut statuses: Vec<ReplicaStatus> = Vec::new();
        let settled = async {
            for _ in 0..150 {
                statuses = client.statuses().await.into_iter().flatten().collect();
                let leaders = statuses.iter().filter(|s| s.role == Role::Leader).count();
                let applied: Vec<u64> = statuses.iter().map(|s| s.applied_index).collect();
                if leaders == 1 && applied.len() == 3 && applied.iter().all(|a| *a == applied[0]) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        };
        let settled = settled.await;
        assert!(
            settled,
            "seed {seed}: no single leader with converged replicas: {statuses:?}"
        );
        trace.record(format!("settled at {}", statuses[0].applied_index));

        for (key, ops) in &mut history {
            let invoked = now();
            let read = read_leader(&client, key).await;
            ops.push(Operation {
                invoked,
                completed: Some(now()),
                op: RegisterOp::Read(read),
            });
            if let Err(violation) = check_register(ops, None) {
                panic!("seed {seed}: key {key}: {violation}");
            }
        }
        // the line scripts/sim.sh sums up
        println!(
            "SIM seed={seed} faults={faults} writes={} acked={acked} unknown={unknown} keys={}",
            acked + unknown,
            history.len()
        );
        Ok(())
    });

    let replay =
        format!("TROUPE_SIM_SEEDS={seed} cargo test -p troupe-db --test random_faults_sim");
    let leaderships = Leaderships::default();
    // the faults, and the operations whose outcome was lost
    let collecting = leaderships.collect_until_dropped();
    let digest = run_with_faults(&mut sim, &mut schedule, &trace, seed, &replay, |e| {
        e.contains("-> Some(")
    });
    drop(collecting);
    if let Err(violation) = leaderships.one_leader_per_epoch() {
        panic!("seed {seed}: {violation}\nreplay: {replay}");
    }
    println!("LEADERS seed={seed} leaderships={}", leaderships.count());
    digest
}

async fn read_leader(client: &DbClient, key: &str) -> Option<String> {
    for _ in 0..20 {
        if let Ok(value) = client.get(key.to_string()).await {
            return value.map(|v| String::from_utf8_lossy(&v).into_owned());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{key} could not be read from the leader");
}

#[test]
fn random_faults_lose_no_acknowledged_write() {
    for seed in troupe_sim::seeds_from_env(1..=3) {
        run(seed);
    }
}

/// Seeds `scripts/sim.sh --seeds 10000` failed on, each fixed:
///
/// - 546: a restarted leader resumed at the epoch a concurrent promotion had fenced the
///   others at; a fenced follower took its write, which was acknowledged and then overwritten
///   by the promoted leader (fenced replicas now refuse the fenced epoch's leaders);
/// - 5438: after the faults no replica led: the lowest live replica, the one to coordinate a
///   promotion, kept waiting for the leader it knew, whose node was up but which had stepped
///   down (a known leader silent for 4 × `promote_after` now counts as none);
/// - 153: after the fix for 546, a replica fenced at the epoch a concurrent promotion's leader
///   took refused that leader for good, and never caught up (the fence is now kept in the
///   file, and a leader refused at its own epoch steps down for a promotion to settle it).
#[test]
fn seeds_the_simulator_failed_on_pass() {
    if std::env::var_os("TROUPE_SIM_SEEDS").is_some() {
        return; // a run of chosen seeds
    }
    for seed in [546, 5438, 153] {
        run(seed);
    }
}

#[test]
fn the_leadership_check_tells_a_second_leader_in_an_epoch_from_a_resumed_one() {
    let seen = Leaderships::default();
    let s = Duration::from_secs;
    seen.taken(s(1), 0, 1);
    seen.taken(s(2), 1, 2);
    seen.taken(s(3), 1, 2); // the same replica again (a resume after a restart)
    assert_eq!(seen.one_leader_per_epoch(), Ok(()));
    seen.taken(s(4), 2, 2);
    let err = seen.one_leader_per_epoch().unwrap_err();
    assert!(err.contains("two leaders in epoch 2"), "{err}");
}

/// A seed replays exactly in a fresh process, as `scripts/sim.sh --seed` replays it: the same
/// events at the same simulated times, and the same datagrams (times, destinations, lengths)
/// in the same order. What broke it before: sends to every peer and sweeps of a peer's calls
/// followed a hash map's per-process order.
#[test]
fn a_seed_replays_exactly_in_another_process() {
    if std::env::var_os("TROUPE_SIM_SEEDS").is_some() {
        return; // a run of chosen seeds (or this test's own child)
    }
    let here = run(2);
    let exe = std::env::current_exe().expect("the test binary");
    let child = std::process::Command::new(exe)
        .args([
            "--exact",
            "random_faults_lose_no_acknowledged_write",
            "--nocapture",
        ])
        .env("TROUPE_SIM_SEEDS", "2")
        .output()
        .expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(child.status.success(), "the replay failed: {stdout}");
    let replayed = stdout
        .lines()
        .find(|l| l.starts_with("TRACE seed=2 "))
        .unwrap_or_else(|| panic!("no TRACE line in the replay's output: {stdout}"));
    assert_eq!(replayed, here.to_string());
}
