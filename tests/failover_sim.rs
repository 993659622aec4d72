//! A failover child under the simulator: never two instances at once, whatever the faults.
//!
//! Every simulated host declares the same topology and starts its own node with
//! `Topology::start_node_with` on a simulated socket, as `tests/topology_sim.rs` does: the
//! cluster's metadata group (a Raft database) on `data-1`..`data-3`, one failover child `svc`
//! placed on `app-1`, then `app-2`, then `app-3`, and a `client` node that calls it. So the
//! real placement driver, the real Raft group and the real runtime (its gate on the lease
//! included) run. Odd seeds use the default lease (a 3 s term, renewed every second, stopped
//! 500 ms early, claimed 500 ms late), even seeds one half as long, so that outages outlast
//! it more often; seeds 2, 3, 6, 7, ... place the child with takeover.
//!
//! The child acts densely: it sends itself a tick every 10 ms of simulated time and logs
//! each one it handles (and each call it answers) with the simulated time, its node and its
//! instance (every start, on any node, is a new one). Faults come from the seed
//! (`troupe_sim::Schedule`, three episodes of each kind): partitions both ways and one way,
//! lossy and slow links, paused hosts (their links held while their timers run on, as a
//! process stopped by a long pause comes back), crashes and power losses of the app hosts and
//! of one data host at a time, and panics of the child, of the placement driver and of the
//! metadata replicas; `app-1`, where the child runs first, is drawn most.
//!
//! Checked for each seed:
//! - safety: no two instances act at overlapping times: each instance's acting interval,
//!   from its first logged act to its last, is disjoint from every other's;
//! - liveness: from [`settled_within`] after the faults end, exactly one instance acts,
//!   without a gap longer than [`MAX_GAP`], and the client's calls reach it.
//!
//! Replay is not checked by default: the metadata group's Raft mode does not replay under
//! turmoil (see [`a_seed_replays_to_the_same_run`]).
//!
//! `TROUPE_SIM_SEEDS` picks the seeds (default 1-2); `scripts/sim.sh --part failover` runs
//! many. `TROUPE_SIM_LOG=troupe_failover=debug` (say) prints log lines at simulated time.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use troupe::db::DbSpec;
use troupe::failover::METADATA_NAME;
use troupe::prelude::*;
use troupe_failover::LeaseConfig;
use troupe_sim::{Plan, Schedule, Trace, addr, bind, run_with_faults, simulation, volatile_file};

const DATA: [&str; 3] = ["data-1", "data-2", "data-3"];
const HOSTS: [&str; 7] = [
    "data-1", "data-2", "data-3", "app-1", "app-2", "app-3", "client",
];
/// What partitions, losses, delays and pauses are drawn among: every host, and `app-1`, the
/// child's first choice, three times, so that it is drawn three times as often (a pause of
/// another host holds its link to `app-1` three times over, and its resume releases it as
/// often)
const FAULTED: [&str; 9] = [
    "data-1", "data-2", "data-3", "app-1", "app-1", "app-1", "app-2", "app-3", "client",
];
/// Where crashes and power losses fall, one host at a time: the app hosts (`app-1` three
/// times as often) and the data hosts
const CRASHABLE: [&str; 8] = [
    "app-1", "app-1", "app-1", "app-2", "app-3", "data-1", "data-2", "data-3",
];
/// Actors made to panic: the child where it may run, the placement driver that starts and
/// stops it, and the metadata group's replicas
const PANICS: [(&str, &str); 8] = [
    ("app-1", "svc"),
    ("app-2", "svc"),
    ("app-3", "svc"),
    ("app-1", "troupe.placement"),
    ("app-2", "troupe.placement"),
    ("data-1", "troupe.meta.0"),
    ("data-2", "troupe.meta.1"),
    ("data-3", "troupe.meta.2"),
];
/// When faults may start, and by when every one has ended
const FAULTS: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(7));
/// Three episodes of each kind of fault per seed
const EPISODES: usize = 24;
/// How long one instance is checked to act alone once settled
const STEADY: Duration = Duration::from_secs(3);
/// A peer is reported down after this long without a word
const PEER_DOWN: Duration = Duration::from_secs(1);
/// How often the child acts
const TICK: Duration = Duration::from_millis(10);
/// The longest gap between two acts of a settled child
const MAX_GAP: Duration = Duration::from_millis(100);
/// How often the client calls the child
const CALL_EVERY: Duration = Duration::from_millis(200);

/// The lease of odd seeds: the default, and of even seeds one half as long, so that the
/// faults' outages (crashes of 0.2-3 s, pauses of 0.5-4.5 s) outlast it more often
fn lease_for(seed: u64) -> LeaseConfig {
    if seed % 2 == 1 {
        return LeaseConfig::default();
    }
    LeaseConfig {
        term: Duration::from_millis(1500),
        stop_margin: Duration::from_millis(250),
        claim_grace: Duration::from_millis(250),
        renew_after: Duration::from_millis(500),
        ..LeaseConfig::default()
    }
}

/// Whether the child moves back to an earlier node of its order that returns: for seeds 2,
/// 3, 6, 7, ... (so CI's seeds 1 and 2 run without and with it)
fn takeover_for(seed: u64) -> bool {
    seed % 4 >= 2
}

/// How long after the faults end one instance must act, under `lease`. The worst case adds
/// up: the metadata group elects a leader (its longest election timeout, 1.2 s, and a lease
/// wait as long again: 2.4 s); views converge (a peer silent for [`PEER_DOWN`] is down);
/// the next node in the order reads the record left by a holder that no longer runs the
/// child (a read every renewal period, each answered within one), waits it out (the term and
/// the claim grace) and claims it (answered within a renewal period). For the default lease
/// 2.4 + 1 + 2 + 3.5 + 1 = 9.9 s; for the short one 6.65 s.
fn settled_within(lease: &LeaseConfig) -> Duration {
    Duration::from_millis(2400) + PEER_DOWN + lease.renew_after * 3 + lease.term + lease.claim_grace
}

#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "failover-sim.Svc")]
enum SvcMsg {
    /// The child's own clock: it acts on each
    Tick,
    /// Answered with the instance that handled it
    Which(Reply<u64>),
}

/// One instance of the child: where it ran and when it started
#[derive(Clone, Debug, PartialEq, Eq)]
struct Instance {
    node: String,
    started: Duration,
}

/// What every instance of the child did, at simulated times; shared by every host (turmoil
/// runs them all on this thread)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Log {
    /// Indexed by instance id
    instances: Vec<Instance>,
    /// (when, instance): each tick handled and each call answered
    acts: Vec<(Duration, usize)>,
}

type SharedLog = Arc<Mutex<Log>>;

fn sim_now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// The failover child: acts every [`TICK`], logging each act
struct Svc {
    log: SharedLog,
    trace: Trace,
    id: usize,
}

impl Svc {
    fn act(&self) {
        self.log.lock().unwrap().acts.push((sim_now(), self.id));
    }
}

impl Actor for Svc {
    type Msg = SvcMsg;

    async fn started(&mut self, ctx: &mut Ctx<SvcMsg>) -> Result<(), ActorError> {
        let node = ctx.node().name().to_string();
        {
            let mut log = self.log.lock().unwrap();
            self.id = log.instances.len();
            log.instances.push(Instance {
                node: node.clone(),
                started: sim_now(),
            });
        }
        self.trace
            .record(format!("svc #{} started on {node}", self.id));
        ctx.send_interval(TICK, || SvcMsg::Tick);
        Ok(())
    }

    async fn handle(&mut self, msg: SvcMsg, _: &mut Ctx<SvcMsg>) -> Result<(), ActorError> {
        self.act();
        match msg {
            SvcMsg::Tick => {}
            SvcMsg::Which(reply) => {
                reply.send(self.id as u64);
            }
        }
        Ok(())
    }

    async fn stopped(&mut self, ctx: &mut Ctx<SvcMsg>) -> Result<(), ActorError> {
        self.trace
            .record(format!("svc #{} stopped on {}", self.id, ctx.node().name()));
        Ok(())
    }
}

/// The metadata group's database as `Topology::metadata` declares it, for its file names
fn metadata_spec(dir: &Path) -> DbSpec {
    DATA.iter()
        .fold(DbSpec::new(METADATA_NAME, dir).raft(), |spec, node| {
            spec.replica(*node)
        })
}

/// The topology every host declares alike, and the child's handle
fn topology(
    dir: &Path,
    (lease, takeover): (LeaseConfig, bool),
    log: &SharedLog,
    trace: &Trace,
) -> (Topology, Addr<SvcMsg>) {
    let mut t = Topology::new("sim-failover");
    let data: Vec<_> = DATA.iter().map(|n| t.node(n)).collect();
    let (app1, app2, app3) = (t.node("app-1"), t.node("app-2"), t.node("app-3"));
    t.node("client");
    t.metadata(data, dir);
    t.lease(lease);
    let (log, trace) = (log.clone(), trace.clone());
    let svc = move || Svc {
        log: log.clone(),
        trace: trace.clone(),
        id: usize::MAX,
    };
    let svc = svc.failover_to([app2, app3]);
    let svc = if takeover { svc.takeover() } else { svc };
    let svc = t.add(app1, "svc", svc.reachable_from(Reach::cluster()));
    (t, svc)
}

/// Each instance's acting interval: (first act, last act, acts), by instance id
fn intervals(log: &Log) -> Vec<Option<(Duration, Duration, usize)>> {
    let mut spans: Vec<Option<(Duration, Duration, usize)>> = vec![None; log.instances.len()];
    for &(at, id) in &log.acts {
        let span = spans[id].get_or_insert((at, at, 0));
        span.0 = span.0.min(at);
        span.1 = span.1.max(at);
        span.2 += 1;
    }
    spans
}

/// The trace's events but the client's calls: the faults, and the child's starts and stops
fn what_happened(trace: &Trace) -> String {
    trace
        .events()
        .iter()
        .filter(|(_, event)| !event.starts_with("call "))
        .map(|(at, event)| format!("\n  {at:?} {event}"))
        .collect()
}

/// Panics, naming the seed and the instances, if two instances acted at overlapping times
fn check_one_at_a_time(seed: u64, log: &Log, trace: &Trace) {
    let spans = intervals(log);
    let mut order: Vec<(usize, (Duration, Duration, usize))> = spans
        .iter()
        .enumerate()
        .filter_map(|(id, span)| span.map(|s| (id, s)))
        .collect();
    order.sort_by_key(|(id, (first, _, _))| (*first, *id));
    let describe = |id: usize, (first, last, acts): (Duration, Duration, usize)| {
        let i = &log.instances[id];
        format!(
            "#{id} on {} (started at {:?}) acting {first:?}..={last:?} ({acts} acts)",
            i.node, i.started
        )
    };
    // sorted by first act, an instance overlaps an earlier one iff it starts before the
    // latest end so far
    let mut latest: Option<(usize, (Duration, Duration, usize))> = None;
    for &(id, span) in &order {
        if let Some((before, earlier)) = latest
            && span.0 <= earlier.1
        {
            panic!(
                "seed {seed}: two instances of svc acted at once: {} and {}\n\
                 replay: TROUPE_SIM_SEEDS={seed} TROUPE_SIM_TRACE=1 cargo test --test failover_sim\n\
                 what happened:{}",
                describe(before, earlier),
                describe(id, span),
                what_happened(trace)
            );
        }
        if latest.is_none_or(|(_, earlier)| span.1 > earlier.1) {
            latest = Some((id, span));
        }
    }
}

/// Panics unless exactly one instance acted from `from` to `to`, never pausing longer than
/// [`MAX_GAP`]; returns it
fn check_settled(seed: u64, log: &Log, trace: &Trace, from: Duration, to: Duration) -> usize {
    let acts: Vec<(Duration, usize)> = log
        .acts
        .iter()
        .copied()
        .filter(|(at, _)| *at >= from && *at <= to)
        .collect();
    let mut ids: Vec<usize> = acts.iter().map(|(_, id)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    let who = |id: &usize| format!("#{id} on {}", log.instances[*id].node);
    assert_eq!(
        ids.len(),
        1,
        "seed {seed}: {} instances of svc acted from {from:?} to {to:?} (faults over at {:?}): \
         {:?}\nwhat happened:{}",
        ids.len(),
        FAULTS.1,
        ids.iter().map(who).collect::<Vec<_>>(),
        what_happened(trace)
    );
    let mut last = from;
    for &(at, _) in acts.iter().chain([(to, ids[0])].iter()) {
        assert!(
            at - last <= MAX_GAP,
            "seed {seed}: svc ({}) did not act from {last:?} to {at:?}, after the faults\n\
             what happened:{}",
            who(&ids[0]),
            what_happened(trace)
        );
        last = at;
    }
    ids[0]
}

/// What the client saw of its calls: (when, answering instance or `None` for a failure)
type Calls = Arc<Mutex<Vec<(Duration, Option<usize>)>>>;

fn run(seed: u64) -> (troupe_sim::RunDigest, Trace, Log) {
    let _log = troupe_sim::log::from_env();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ca = troupe_testkit::Cluster::new("sim-failover");
    let lease = lease_for(seed);
    let placement = (lease, takeover_for(seed));
    let settled = FAULTS.1 + settled_within(&lease);
    let end = settled + STEADY;
    let mut sim = simulation(seed, end + Duration::from_secs(10));
    let trace = Trace::new();
    let log = SharedLog::default();
    let plan = Plan {
        hosts: &FAULTED,
        crashable: &CRASHABLE,
        window: FAULTS,
        panics: &PANICS,
        episodes: EPISODES,
    };
    let mut schedule = Schedule::draw(seed, &plan);
    let faults = schedule.faults().len();
    let meta = metadata_spec(dir.path());
    for (i, host) in DATA.iter().enumerate() {
        volatile_file(host, &meta.raft_path(i));
    }

    for name in &HOSTS[..HOSTS.len() - 1] {
        let name = *name;
        let config = ca.config(name, &[]).peer_down_timeout(PEER_DOWN);
        let (dir, log, trace) = (dir.path().to_path_buf(), log.clone(), trace.clone());
        sim.host(name, move || {
            let (config, dir, log, trace) =
                (config.clone(), dir.clone(), log.clone(), trace.clone());
            async move {
                // addresses are looked up inside the simulation
                let config = config.seeds(DATA.iter().filter(|d| **d != name).map(|d| addr(d)));
                let (t, _) = topology(&dir, placement, &log, &trace);
                let _running = t
                    .start_node_with(name, |node| async move { bind(&node, config).await })
                    .await?;
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }

    let calls = Calls::default();
    let (client_calls, client_trace, client_log) = (calls.clone(), trace.clone(), log.clone());
    let client_config = ca.config("client", &[]).peer_down_timeout(PEER_DOWN);
    let client_dir = dir.path().to_path_buf();
    sim.client("client", async move {
        let config = client_config.seeds(DATA.iter().map(|d| addr(d)));
        let (t, svc) = topology(&client_dir, placement, &client_log, &client_trace);
        let _running = t
            .start_node_with("client", |node| async move { bind(&node, config).await })
            .await?;
        while sim_now() < end {
            let answer = svc.call(SvcMsg::Which, CALL_EVERY * 2).await;
            let answer = answer.ok().map(|id| id as usize);
            client_trace.record(match answer {
                Some(id) => format!("call answered by #{id}"),
                None => "call failed".to_string(),
            });
            client_calls.lock().unwrap().push((sim_now(), answer));
            tokio::time::sleep(CALL_EVERY).await;
        }
        Ok(())
    });

    let replay = format!("TROUPE_SIM_SEEDS={seed} cargo test --test failover_sim");
    let digest = run_with_faults(&mut sim, &mut schedule, &trace, seed, &replay, |e| {
        e.starts_with("call ")
    });
    let log = log.lock().unwrap().clone();
    // safety first: a second instance may well keep the first from settling
    check_one_at_a_time(seed, &log, &trace);
    let holder = check_settled(seed, &log, &trace, settled, end - MAX_GAP);
    let calls = calls.lock().unwrap().clone();
    let late: Vec<_> = calls
        .iter()
        .filter(|(at, _)| *at >= settled + CALL_EVERY * 2)
        .collect();
    assert!(!late.is_empty(), "seed {seed}: no call after settling");
    for (at, answer) in &late {
        assert_eq!(
            *answer,
            Some(holder),
            "seed {seed}: the call at {at:?} was not answered by the settled instance #{holder} on {}",
            log.instances[holder].node
        );
    }
    let answered = calls.iter().filter(|(_, a)| a.is_some()).count();
    // how long after the faults the settled instance began acting (0: it acted through them)
    let began = intervals(&log)[holder].map_or(settled, |(first, _, _)| first);
    // instances that started on another node than the one before
    let moves = log
        .instances
        .windows(2)
        .filter(|w| w[0].node != w[1].node)
        .count();
    println!(
        "SIM seed={seed} lease={}ms takeover={} faults={faults} instances={} moves={moves} \
         acts={} calls={} answered={answered} settled_after_ms={} holder={}",
        lease.term.as_millis(),
        if placement.1 { "yes" } else { "no" },
        log.instances.len(),
        log.acts.len(),
        calls.len(),
        began.saturating_sub(FAULTS.1).as_millis(),
        log.instances[holder].node
    );
    (digest, trace, log)
}

#[test]
fn a_failover_child_never_runs_twice_under_faults() {
    for seed in troupe_sim::seeds_from_env(1..=2) {
        run(seed);
    }
}

/// Seed 1 run twice in one process: the same trace, the same datagrams, the same acts.
///
/// Not run by default: the metadata group's Raft mode does not replay under turmoil (nor
/// does the database's own Raft-mode simulation, `troupe-db random_faults_sim`, in another
/// process; its single-leader modes and `tests/topology_sim.rs` do). See
/// `docs/reliability.md`, "Replay"; `cargo test --test failover_sim -- --ignored` runs it.
#[test]
#[ignore = "the Raft metadata group does not replay under turmoil (docs/reliability.md, Replay)"]
fn a_seed_replays_to_the_same_run() {
    let (digest, trace, log) = run(1);
    let (again, again_trace, again_log) = run(1);
    assert_eq!(
        trace.hash(),
        again_trace.hash(),
        "seed 1 replays to another trace"
    );
    assert_eq!(digest, again, "seed 1 replays to other datagrams");
    assert!(log == again_log, "seed 1 replays to other acts");
}
