//! A three-replica database and a client under faults drawn from a seed (`troupe-sim`):
//! partitions both ways and one way, lossy links, latency spikes, paused hosts, replica hosts
//! crashing and restarting with their files or losing power (and with it every write not
//! synced), in episodes that overlap and all end by 8 s. The client puts, compare-and-sets and
//! reads eight keys (reads by every policy: the leader, any replica, read-your-writes),
//! recording each operation's invocation and completion in simulated time, its outcome
//! (unknown when the answer was lost) and the log index its answer named. The acknowledgement
//! mode comes from the seed ([`mode_for`]): `Majority`, `All` or `LeaderOnly`.
//!
//! Checked for each seed, as `docs/db.md` promises for the mode:
//!
//! - `Majority` and `All`: each key's history of writes, closed by a read once the faults are
//!   over, is linearizable (`troupe_sim::check_register`); and every read during the faults,
//!   by any policy, shows the key as the log up to the answering replica's applied index left
//!   it (`troupe_sim::check_prefix_read`: possibly stale — a deposed leader and a lagging
//!   replica may serve old state — but never a value from beyond its index, never an
//!   overwritten one, never one nobody wrote); a read-your-writes read comes from an index at
//!   or past the client's last acknowledged write;
//! - `LeaderOnly`: the same linearizability, except that an acknowledged write may be lost
//!   when a replica took the lead after the write was invoked (the promoted follower may not
//!   have had it) — such writes count as of unknown outcome;
//! - every mode: exactly one replica leads once the faults are over, every replica has applied
//!   the same index, and no two replicas ever took the lead in one epoch (from their `leading`
//!   log events).
//!
//! Raft mode runs under the same schedule and checks (reads from the leader are part of each
//! key's history there), and once more with a fourth replica while an operator adds it to the
//! voters and removes the first, each change tried until made.
//!
//! `TROUPE_SIM_SEEDS` (e.g. `1-500`) picks the seeds; default 1-3 (one of each mode).
//! `scripts/sim.sh` runs many.

mod simulated;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use simulated::{Leaderships, Mode, replica_file, replica_hosts};
use troupe_db::{
    AckMode, DbClient, MembershipChange, ReadPolicy, ReplicaStatus, Role, WriteOutcome,
};
use troupe_sim::{
    LoggedRead, LoggedWrite, Operation, Plan, RegisterOp, RunDigest, Schedule, Trace,
    check_prefix_read, check_register, run_with_faults, simulation, volatile_file,
};

/// Each replica's host and actor, for panics
const PANICS: [(&str, &str); 4] = [
    ("r0", "db.0"),
    ("r1", "db.1"),
    ("r2", "db.2"),
    ("r3", "db.3"),
];
/// When faults may start and by when every one has ended
const FAULTS: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(8));
const READ_POLICIES: [ReadPolicy; 3] = [
    ReadPolicy::Leader,
    ReadPolicy::AnyReplica,
    ReadPolicy::ReadYourWrites,
];

/// Now in simulated time
fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

fn text(value: Option<&Bytes>) -> Option<String> {
    value.map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The acknowledgement mode a seed runs: half the seeds `Majority`, a quarter each `All` and
/// `LeaderOnly` (CI's seeds 1-3 run one of each)
fn mode_for(seed: u64) -> AckMode {
    match seed % 4 {
        1 => AckMode::LeaderOnly,
        3 => AckMode::All,
        _ => AckMode::Majority,
    }
}

/// What the client saw, checked once the simulation is over (the leaderships it is checked
/// against are known only then)
#[derive(Default)]
struct Recorded {
    /// Per key: writes and the final read, for the linearizability check
    history: BTreeMap<String, Vec<Operation>>,
    /// Per key: writes with the log indexes their answers named
    logged: BTreeMap<String, Vec<LoggedWrite>>,
    /// Per key: reads during the faults, with the answering replica's applied index
    reads: BTreeMap<String, Vec<LoggedRead>>,
    /// Reads answered and failed
    answered_reads: u64,
}

fn run(seed: u64) -> RunDigest {
    run_in(seed, mode_for(seed))
}

fn run_in(seed: u64, mode: impl Into<Mode>) -> RunDigest {
    let mode: Mode = mode.into();
    // what the mode promises: LeaderOnly may lose acknowledged writes on a failover; every
    // other mode keeps them, and reads may be stale only in the single-leader modes, where
    // they are checked as prefix reads; in Raft mode a read from the leader is linearizable
    let leader_only = mode == Mode::Ack(AckMode::LeaderOnly);
    let raft = matches!(mode, Mode::Raft | Mode::RaftResizing);
    let resizing = mode == Mode::RaftResizing;
    let replicas = mode.replicas();
    let hosts: Vec<&str> = replicas.iter().copied().chain(["app"]).collect();
    let dir = tempfile::tempdir().unwrap();
    let ca = troupe_testkit::Cluster::new("sim-db");
    let mut sim = simulation(seed, Duration::from_secs(90));
    let trace = Trace::new();
    let plan = Plan {
        hosts: &hosts,
        crashable: replicas,
        window: FAULTS,
        panics: &PANICS[..replicas.len()],
        episodes: 8,
    };
    let mut schedule = Schedule::draw(seed, &plan);
    let faults = schedule.faults().len();

    for (i, host) in replicas.iter().enumerate() {
        volatile_file(host, &replica_file(&simulated::spec(dir.path(), mode), i));
    }
    replica_hosts(&mut sim, &ca, dir.path(), mode);

    let recorded = Arc::new(Mutex::new(Recorded::default()));
    let client_recorded = recorded.clone();
    let client_trace = trace.clone();
    let client_config = ca.config("app", &[]);
    let client_dir = dir.path().to_path_buf();
    sim.client("app", async move {
        let trace = client_trace;
        let (_node, _net, client) =
            simulated::client(client_config, &client_dir, Duration::from_secs(2), mode).await?;
        // where the group is resized, an operator adds r3 and then removes r0 (which usually
        // leads) while the faults go on, each change tried until it is made
        let operator = resizing.then(|| {
            let (client, trace) = (client.clone(), trace.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let added = change_until_made(&client, &trace, MembershipChange::Add(3)).await;
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let removed = change_until_made(&client, &trace, MembershipChange::Remove(0)).await;
                (added, removed)
            })
        });

        let mut rec = Recorded::default();
        // what the client last saw each key hold, for its compare-and-sets
        let mut believed: BTreeMap<String, Option<String>> = BTreeMap::new();
        let (mut acked, mut unknown) = (0u64, 0u64);
        let start = tokio::time::Instant::now();
        let mut i = 0u64;
        while start.elapsed() < FAULTS.1 + Duration::from_secs(1) {
            // every key meets every kind of operation as the rounds go on
            let key = format!("k{}", (i + i / 8) % 8);
            let value = format!("v{i}");
            let invoked = now();
            if i % 4 == 3 {
                let policy = READ_POLICIES[(i / 4 % 3) as usize];
                let floor = client.last_write_index();
                if let Ok(read) = client.get_with(key.clone(), policy).await {
                    // LeaderOnly promises no more once a failover has lost the session's
                    // last write: the new leader's log may end before it
                    if policy == ReadPolicy::ReadYourWrites && !leader_only {
                        assert!(
                            read.index >= floor,
                            "seed {seed}: a read-your-writes read of {key} came from index {} \
                             before the client's last write at {floor}",
                            read.index
                        );
                    }
                    rec.answered_reads += 1;
                    if raft && policy == ReadPolicy::Leader {
                        // linearizable: part of the key's history
                        rec.history.entry(key.clone()).or_default().push(Operation {
                            invoked,
                            completed: Some(now()),
                            op: RegisterOp::Read(text(read.value.as_ref())),
                        });
                    }
                    rec.reads.entry(key).or_default().push(LoggedRead {
                        invoked,
                        completed: now(),
                        index: read.index,
                        value: text(read.value.as_ref()),
                    });
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
                continue;
            }
            let (op, index) = if i % 4 == 2 {
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
                (op, result.ok().map(|w| w.index))
            } else {
                let result = client.put(key.clone(), value.clone()).await;
                if let Ok(written) = &result {
                    believed.insert(key.clone(), Some(value.clone()));
                    trace.record(format!("{key}: {value} at index {}", written.index));
                }
                (
                    RegisterOp::Write(Some(value.clone())),
                    result.ok().map(|w| w.index),
                )
            };
            let completed = index.map(|_| now());
            match completed {
                Some(_) => acked += 1,
                None => unknown += 1,
            }
            trace.record(format!("{key}: {op:?} -> {completed:?}"));
            rec.logged
                .entry(key.clone())
                .or_default()
                .push(LoggedWrite {
                    invoked,
                    index,
                    op: op.clone(),
                });
            rec.history.entry(key).or_default().push(Operation {
                invoked,
                completed,
                op,
            });
            i += 1;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }

        let mut voters: Vec<u64> = (0..3).collect();
        let mut changes = String::new();
        if let Some(operator) = operator {
            let made = operator.await.map_err(|e| e.to_string())?;
            let (Some(added), Some(removed)) = made else {
                panic!("seed {seed}: the membership changes were not made: {made:?}");
            };
            voters = vec![1, 2, 3];
            changes = format!(
                " added_ms={} removed_ms={}",
                added.as_millis(),
                removed.as_millis()
            );
        }
        // faults over: a leader, every voter at one index
        let mut statuses: Vec<ReplicaStatus> = Vec::new();
        let settled = async {
            for _ in 0..150 {
                statuses = client.statuses().await.into_iter().flatten().collect();
                let leaders: Vec<&ReplicaStatus> =
                    statuses.iter().filter(|s| s.role == Role::Leader).collect();
                let applied: Vec<u64> = statuses
                    .iter()
                    .filter(|s| voters.contains(&s.id))
                    .map(|s| s.applied_index)
                    .collect();
                if let [leader] = leaders[..]
                    && (!resizing || leader.voters == voters)
                    && applied.len() == voters.len()
                    && applied.iter().all(|a| *a == applied[0])
                {
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

        // each key's history closed by a read from the leader
        for (key, ops) in &mut rec.history {
            let invoked = now();
            let read = read_leader(&client, key).await;
            ops.push(Operation {
                invoked,
                completed: Some(now()),
                op: RegisterOp::Read(read),
            });
        }
        // the line scripts/sim.sh sums up
        println!(
            "SIM seed={seed} mode={mode:?} faults={faults} writes={} acked={acked} \
             unknown={unknown} reads={} keys={}{changes}",
            acked + unknown,
            rec.answered_reads,
            rec.history.len()
        );
        if let Ok(mut shared) = client_recorded.lock() {
            *shared = rec;
        }
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
    let fail = |what: String| -> ! { panic!("seed {seed} ({mode:?}): {what}\nreplay: {replay}") };
    if let Err(violation) = leaderships.one_leader_per_epoch() {
        fail(violation);
    }
    let recorded = std::mem::take(&mut *recorded.lock().unwrap());
    let last_leadership = leaderships.last_change();
    for (key, ops) in &recorded.history {
        let ops: Vec<Operation> = if leader_only {
            ops.iter().map(|op| lossy(op, last_leadership)).collect()
        } else {
            ops.clone()
        };
        if let Err(violation) = check_register(&ops, None) {
            fail(format!("key {key}: {violation}"));
        }
    }
    if !leader_only {
        for (key, reads) in &recorded.reads {
            let writes = recorded.logged.get(key).map_or(&[][..], Vec::as_slice);
            for read in reads {
                if let Err(violation) = check_prefix_read(writes, read) {
                    fail(format!("key {key}: {violation}"));
                }
            }
        }
    }
    println!("LEADERS seed={seed} leaderships={}", leaderships.count());
    digest
}

/// In `LeaderOnly` mode an acknowledged write is lost when a follower that had not received it
/// takes the lead, and so is one a deposed leader acknowledges before it learns of its
/// successor (seed 8277: cut off from both followers, it went on acknowledging for 1.7 s): a
/// write invoked before leadership last changed hands (see `Leaderships::last_change`) counts
/// as of unknown outcome (it may have taken effect, or not), and so does a compare-and-set's
/// answer then (what it compared against may have been lost)
fn lossy(op: &Operation, last_leadership: Option<Duration>) -> Operation {
    if last_leadership.is_none_or(|taken| op.invoked > taken) {
        return op.clone();
    }
    match &op.op {
        RegisterOp::Write(_) => Operation {
            completed: None,
            ..op.clone()
        },
        RegisterOp::Cas { expected, new, .. } => Operation {
            completed: None,
            op: RegisterOp::Cas {
                expected: expected.clone(),
                new: new.clone(),
                swapped: None,
            },
            ..op.clone()
        },
        RegisterOp::Read(_) => op.clone(),
    }
}

/// Makes `change`, trying again every 300 ms while it fails, until 20 s of simulated time
/// have passed since the faults began to end; answers when it was made, or `None`
async fn change_until_made(
    client: &DbClient,
    trace: &Trace,
    change: MembershipChange,
) -> Option<Duration> {
    while now() < FAULTS.1 + Duration::from_secs(20) {
        let made = match change {
            MembershipChange::Add(n) => client.add_replica(n).await,
            MembershipChange::Remove(n) => client.remove_replica(n).await,
        };
        trace.record(format!("{change:?}: {made:?}"));
        if made.is_ok() {
            return Some(now());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    None
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
        run_in(seed, AckMode::Majority);
    }
}

/// Seeds of the first run with reads and every mode, each fixed:
///
/// - 23 (`All`), 77 (`LeaderOnly`): with the leader gone and the followers cut apart, each
///   coordinated a promotion, fenced itself alone (one candidate sufficed in those modes) and
///   led at the same epoch (promotion now needs a majority fenced in every mode);
/// - 5676 (`Majority`): two coordinators, both judging the silent leader gone, fenced the
///   third replica at the same epoch, each counted it in its majority, and each promoted a
///   leader at the next (a replica now takes one coordinator's fence per epoch);
/// - 103 (`All`): a read-your-writes read fell back to a just-promoted leader, which answered
///   before applying the session's write, acknowledged under the old leader (a new leader now
///   reads only once its first entry is applied);
/// - 6482 (`Majority`): the first leader, paused while the others went on to index 99, was
///   told of their epoch by an append it could not match, still counted as a leader that may
///   resume, and on its restart led at the next epoch with its log at 64 (a replica now
///   resumes only with a log no answering peer's is newer than, and stops trying once a
///   leader of its epoch writes to it);
/// - 8277 (`LeaderOnly`): the leader, cut off from both followers, went on acknowledging
///   writes for 1.7 s after a follower was promoted; the checker had counted only writes
///   invoked before the last leadership was taken as possibly lost (not a database fault:
///   the mode's documented loss, which the checker now states exactly);
/// - 1904 (`Majority`): a read-your-writes read fell back to the leader the client knew, which
///   had been deposed while paused and answered from index 64, before the session's write at
///   101 (the client now takes no answer from below the session's last write).
#[test]
fn seeds_of_the_other_modes_and_reads_pass() {
    if std::env::var_os("TROUPE_SIM_SEEDS").is_some() {
        return; // a run of chosen seeds
    }
    run_in(23, AckMode::All);
    run_in(77, AckMode::LeaderOnly);
    run_in(8277, AckMode::LeaderOnly);
    run_in(5676, AckMode::Majority);
    run_in(103, AckMode::All);
    run_in(6482, AckMode::Majority);
    run_in(1904, AckMode::Majority);
}

/// Raft mode under the same faults: each key's history, its reads from the leader included,
/// is linearizable; reads from any replica are prefix reads; one leader per term.
/// `TROUPE_SIM_SEEDS` picks the seeds (default 1-3); `scripts/sim.sh --part db-raft` runs
/// many.
#[test]
fn raft_mode_stays_linearizable_under_random_faults() {
    for seed in troupe_sim::seeds_from_env(1..=3) {
        run_in(seed, Mode::Raft);
    }
}

/// Raft mode while an operator resizes the group under the same faults: four replicas, three
/// voters at first; the fourth is added and the first (usually the leader) removed, each
/// change tried until made. The same checks, and the group settles on the new voters.
/// `TROUPE_SIM_SEEDS` picks the seeds (default 1-2); `scripts/sim.sh --part db-raft-members`
/// runs many.
#[test]
fn raft_membership_changes_stay_linearizable_under_random_faults() {
    for seed in troupe_sim::seeds_from_env(1..=2) {
        run_in(seed, Mode::RaftResizing);
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

/// A seed replays in a fresh process, as `scripts/sim.sh --seed` replays it: the same events
/// at the same simulated times. What broke it before: sends to every peer and sweeps of a
/// peer's calls followed a hash map's per-process order. The seed runs in two fresh
/// processes, each alone.
///
/// The datagrams' digest is printed but not compared: after a node restarts, packets of its
/// old connections reach its new endpoint, and whether quinn reads such a packet as a
/// connection attempt with bad reserved bits or as an Initial that fails authentication
/// depends on its bytes, which TLS's keys (ring's system randomness, which rustls's ring
/// provider cannot be given a seed for) make random. So about one process in three sends an
/// acknowledgement more or less, at the same simulated time, without changing any event.
#[test]
fn a_seed_replays_exactly_in_another_process() {
    if std::env::var_os("TROUPE_SIM_SEEDS").is_some() {
        return; // a run of chosen seeds (or this test's own child)
    }
    let replay = || {
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
        let stdout = String::from_utf8_lossy(&child.stdout).into_owned();
        assert!(child.status.success(), "the replay failed: {stdout}");
        let line = stdout
            .lines()
            .find(|l| l.starts_with("TRACE seed=2 "))
            .unwrap_or_else(|| panic!("no TRACE line in the replay's output: {stdout}"))
            .to_string();
        // `TRACE seed=2 events=N hash=H`, without the datagrams
        let events: Vec<&str> = line.split_whitespace().take(4).collect();
        (events.join(" "), line)
    };
    let (first, second) = (replay(), replay());
    assert_eq!(first.0, second.0, "{} / {}", first.1, second.1);
}
