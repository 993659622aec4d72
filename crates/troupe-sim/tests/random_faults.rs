//! The runtime under faults drawn from a seed: three server nodes, each with a supervised echo
//! actor and an actor that reports the node's view of the cluster, and a client node calling
//! every echo in turn, with a 500 ms timeout, while links are cut, lossy or slow, hosts pause,
//! crash or lose power, and echo actors panic. All faults end by 8 s.
//!
//! Checked for each seed:
//!
//! - no call outlives its timeout in simulated time (its answer, or its error, comes back
//!   within the timeout plus one tick);
//! - once the faults are over, every node sees every other node up within the detection bound
//!   ([`CONVERGED_WITHIN`]: the peer-down timeout, the longest reconnection pause and a margin);
//! - every echo actor, permanent under a one-for-one supervisor, answers again after the faults
//!   however many times it panicked, and a panic restarted it rather than stopping its node;
//! - supervision does what each policy says: each server also runs a one-for-all pair that
//!   escalates past two restarts a second, under its root; the client makes the pair's second
//!   actor fail, sometimes once, sometimes in bursts past the intensity, and every host's
//!   supervision reports are checked against a model of the policies (`supervised`): both
//!   children restarted in order, escalation exactly when the window holds too many restarts,
//!   the root restarting the pair and nothing else, each child started once per restart, and
//!   both answering after the faults.
//!
//! `TROUPE_SIM_SEEDS` (e.g. `1-500`) picks the seeds; default 1-3. `scripts/sim.sh --part
//! runtime` runs many.

use std::collections::BTreeSet;
use std::time::Duration;

mod echo;
mod supervised;

use echo::{Echo, EchoActor};
use serde::{Deserialize, Serialize};
use supervised::{
    Crasher, FAILING, PAIR, PAIR_CHILDREN, Poke, Seen, SupervisionLog, check_supervision, pair_spec,
};
use troupe_runtime::Restart;
use troupe_runtime::remote::{MemberStatus, NodeNet};
use troupe_runtime::{
    Actor, ActorError, Addr, Ask, ChildOptions, Ctx, Mesh, Node, NodeConfig, Reach, Request,
    SupervisorSpec,
};
use troupe_sim::{
    Draw, Plan, RunDigest, Schedule, Trace, addr, bind, run_with_faults, seeds_from_env, simulation,
};

const SERVERS: [&str; 3] = ["n0", "n1", "n2"];
const HOSTS: [&str; 4] = ["n0", "n1", "n2", "app"];
/// When faults may start and by when every one has ended
const FAULTS: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(8));
const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// A call that makes the pair's second actor fail
const POKE_TIMEOUT: Duration = Duration::from_millis(200);
const PEER_DOWN: Duration = Duration::from_secs(1);
/// After the last fault ends, every node sees every other up within this: the peer-down
/// timeout, the longest pause between reconnection attempts, and a margin for the handshake
const CONVERGED_WITHIN: Duration = Duration::from_secs(8);

/// Which members this node sees up
#[derive(Serialize, Deserialize)]
struct UpMembers;

impl Request for UpMembers {
    const NAME: &'static str = "sim.UpMembers";
    type Response = Vec<String>;
}

/// Answers with its node's view; holds the mesh, not the endpoint (see `Mesh::net`)
struct ViewActor(Mesh);

impl Actor for ViewActor {
    type Msg = Ask<UpMembers>;

    async fn handle(
        &mut self,
        ask: Ask<UpMembers>,
        ctx: &mut Ctx<Ask<UpMembers>>,
    ) -> Result<(), ActorError> {
        let up = self
            .0
            .net(ctx.node().name())
            .map(|net| up_members(&net))
            .unwrap_or_default();
        ask.reply.send(up.into_iter().collect());
        Ok(())
    }
}

fn up_members(net: &NodeNet) -> BTreeSet<String> {
    net.members()
        .into_iter()
        .filter(|(_, status, _)| *status == MemberStatus::Up)
        .map(|(name, _, _)| name)
        .collect()
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// Every node but `me`
fn others(me: &str) -> BTreeSet<String> {
    HOSTS
        .iter()
        .filter(|h| **h != me)
        .map(|h| (*h).to_string())
        .collect()
}

fn run(seed: u64) -> RunDigest {
    run_allowing(seed, 1)
}

/// [`run`], failing if more than `may_lose` calls after the faults are lost (per target)
fn run_allowing(seed: u64, may_lose: usize) -> RunDigest {
    // TROUPE_SIM_LOG=troupe_runtime=debug (say) prints log lines at simulated time
    let _log = troupe_sim::log::from_env();
    let ca = troupe_testkit::Cluster::new("sim-runtime");
    let mut sim = simulation(seed, Duration::from_secs(60));
    let trace = Trace::new();
    let plan = Plan {
        hosts: &HOSTS,
        crashable: &SERVERS,
        window: FAULTS,
        panics: &[("n0", "echo"), ("n1", "echo"), ("n2", "echo")],
        episodes: 8,
    };
    let mut schedule = Schedule::draw(seed, &plan);
    let faults = schedule.faults().len();

    let supervision = SupervisionLog::default();
    for name in SERVERS {
        let config = ca.config(name, &[]).peer_down_timeout(PEER_DOWN);
        let supervision = supervision.clone();
        sim.host(name, move || {
            let config = config.clone();
            let log = supervision.clone();
            async move {
                log.record(name, Seen::NodeStarted);
                let mesh = Mesh::new();
                let node = Node::new(name, &mesh, NodeConfig::default())?;
                let (echo, _) = node.child(
                    "echo",
                    ChildOptions::permanent().reachable_from(Reach::cluster()),
                    || EchoActor,
                )?;
                let mut pair = Vec::new();
                for child in PAIR_CHILDREN {
                    let log = log.clone();
                    let generation = std::sync::atomic::AtomicU64::new(0);
                    let (spec, _) = node.child(
                        child,
                        ChildOptions::permanent().reachable_from(Reach::cluster()),
                        move || {
                            log.record(name, Seen::Started(child));
                            let generation =
                                generation.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                            Crasher { generation }
                        },
                    )?;
                    pair.push(spec);
                }
                let (pair, _) = node.supervisor_child(PAIR, pair_spec(), Restart::Permanent, pair);
                log.subscribe(name, &node);
                node.start(SupervisorSpec::one_for_one(), vec![echo, pair])
                    .await?;
                let seeds = SERVERS.iter().filter(|s| **s != name).map(|s| addr(s));
                let _net = bind(&node, config.seeds(seeds)).await?;
                let (view, _) = node.child(
                    "view",
                    ChildOptions::permanent().reachable_from(Reach::cluster()),
                    move || ViewActor(mesh.clone()),
                )?;
                node.root().ok_or("no root supervisor")?.add(view).await?;
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }

    let app_trace = trace.clone();
    let app_config = ca.config("app", &[]).peer_down_timeout(PEER_DOWN);
    sim.client("app", async move {
        let trace = app_trace;
        let (node, net) =
            troupe_sim::start_node("app", app_config.seeds(SERVERS.iter().map(|s| addr(s))))
                .await?;
        let echoes: Vec<Addr<Ask<Echo>>> = SERVERS.iter().map(|s| node.addr(s, "echo")).collect();
        let failing: Vec<Addr<Ask<Poke>>> = SERVERS.iter().map(|s| node.addr(s, FAILING)).collect();
        let mut draw = Draw::new(seed ^ 0xfa11);
        let mut pokes = 0u64;

        // calls while the faults come and go: none may outlive its timeout
        let (mut answered, mut failed) = (0u64, 0u64);
        let start = tokio::time::Instant::now();
        let mut n = 0u64;
        while start.elapsed() < FAULTS.1 {
            n += 1;
            let target = (n % SERVERS.len() as u64) as usize;
            let invoked = now();
            let result = echoes[target].ask(Echo(n), CALL_TIMEOUT).await;
            let took = now() - invoked;
            assert!(
                took <= CALL_TIMEOUT + Duration::from_millis(1),
                "seed {seed}: call {n} to {} took {took:?}, past its {CALL_TIMEOUT:?} timeout",
                SERVERS[target]
            );
            match result {
                Ok(answer) => {
                    assert_eq!(answer, n, "seed {seed}: call {n} answered for another");
                    answered += 1;
                }
                Err(err) => {
                    failed += 1;
                    trace.record(format!("call {n} to {}: {err}", SERVERS[target]));
                }
            }
            // now and then the pair's second actor fails, once or in a burst (past the pair's
            // intensity from three on)
            if draw.below(30) == 0 {
                let server = draw.below(SERVERS.len() as u64) as usize;
                for _ in 0..=draw.below(4) {
                    let invoked = now();
                    let _ = failing[server].ask(Poke(true), POKE_TIMEOUT).await;
                    let took = now() - invoked;
                    assert!(
                        took <= POKE_TIMEOUT + Duration::from_millis(1),
                        "seed {seed}: a poke took {took:?}, past its {POKE_TIMEOUT:?} timeout"
                    );
                    pokes += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // faults over: every node sees every other up within the bound
        let healed = FAULTS.1;
        let views: Vec<Addr<Ask<UpMembers>>> =
            SERVERS.iter().map(|s| node.addr(s, "view")).collect();
        let mut missing: Vec<(String, BTreeSet<String>)>;
        loop {
            missing = Vec::new();
            let up = up_members(&net);
            let lacking: BTreeSet<String> = others("app").difference(&up).cloned().collect();
            if !lacking.is_empty() {
                missing.push(("app".into(), lacking));
            }
            for (server, view) in SERVERS.iter().zip(&views) {
                let up: BTreeSet<String> = match view.ask(UpMembers, CALL_TIMEOUT).await {
                    Ok(up) => up.into_iter().collect(),
                    Err(_) => BTreeSet::new(),
                };
                let lacking: BTreeSet<String> = others(server).difference(&up).cloned().collect();
                if !lacking.is_empty() {
                    missing.push(((*server).to_string(), lacking));
                }
            }
            if missing.is_empty() {
                break;
            }
            assert!(
                now() < healed + CONVERGED_WITHIN,
                "seed {seed}: {CONVERGED_WITHIN:?} after the faults ended, nodes still see \
                 others down (node, members not up): {missing:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let converged = now().saturating_sub(healed);
        trace.record(format!(
            "every node sees every other up, {converged:?} after the faults"
        ));

        // every echo answers, panics and crashes notwithstanding. A call may be lost once:
        // when both ends of a link redial at once after a fault, one connection is closed as
        // a duplicate and what was in flight on it is lost (delivery is at most once); the
        // call after it must be answered
        let mut lost = 0u64;
        for (server, echo) in SERVERS.iter().zip(&echoes) {
            let mut answer = Err(troupe_runtime::CallError::NoReply {
                target: String::new(),
            });
            for _ in 0..=may_lose {
                n += 1;
                answer = echo.ask(Echo(n), CALL_TIMEOUT).await;
                if answer.is_ok() {
                    break;
                }
                lost += 1;
            }
            assert!(
                matches!(answer, Ok(a) if a == n),
                "seed {seed}: {server}'s echo does not answer after the faults: {answer:?}"
            );
        }
        // and both of every pair, however often they failed and escalated
        for server in SERVERS {
            for child in PAIR_CHILDREN {
                let pair = node.addr::<Ask<Poke>>(server, child);
                let mut answer = pair.ask(Poke(false), CALL_TIMEOUT).await;
                for _ in 0..may_lose {
                    if answer.is_ok() {
                        break;
                    }
                    lost += 1;
                    answer = pair.ask(Poke(false), CALL_TIMEOUT).await;
                }
                assert!(
                    answer.is_ok(),
                    "seed {seed}: {server}'s {child} does not answer after the faults: {answer:?}"
                );
            }
        }
        println!(
            "SIM seed={seed} faults={faults} writes={} acked={answered} unknown={failed} \
             converged_ms={} pokes={pokes} lost_after={lost}",
            answered + failed,
            converged.as_millis()
        );
        Ok(())
    });

    let replay = format!("TROUPE_SIM_SEEDS={seed} cargo test -p troupe-sim --test random_faults");
    let digest = run_with_faults(&mut sim, &mut schedule, &trace, seed, &replay, |e| {
        e.starts_with("call ")
    });
    let mut decided = Vec::new();
    for server in SERVERS {
        match check_supervision(&supervision.of(server)) {
            Ok(d) => decided.push(format!(
                "{server}: {} pair restarts, {} escalations",
                d.pair_restarts, d.escalations
            )),
            Err(err) => panic!(
                "seed {seed}: {server}'s supervisors broke their policy: {err}\nreplay: {replay}\n\
                 what {server} saw: {:#?}",
                supervision.of(server)
            ),
        }
    }
    println!("SIM seed={seed} supervision: {}", decided.join("; "));
    digest
}

#[test]
fn random_faults_keep_call_deadlines_and_the_cluster_reconverges() {
    for seed in seeds_from_env(1..=3) {
        run(seed);
    }
}

/// Seeds that found a bug, kept as regressions. 675 and 973: after a partition healed, both
/// ends redialled at once and a call that came in on the connection closed as the duplicate
/// was answered into that closed connection, so it timed out (its reply now takes the
/// surviving connection). 28: the first fix held the call's connection strongly, so a call
/// parked in a crashed node's mailbox kept the endpoint's socket bound and the host could not
/// restart (it now holds it weakly, and finds the survivor by node and incarnation). 6244:
/// the client dialed a server twice (its seed by address, and a reconnection by name), the two
/// ends kept different ones of the two connections and closed the other, and the server was
/// unreachable after the faults (both ends now keep the later dial). 1043: the server closed
/// the client's connection as the duplicate of one the client had not registered yet, and a
/// call in between failed at once as unreachable (a call to a member that is up now waits,
/// within its timeout, for the connection).
#[test]
fn seeds_the_simulator_failed_on_pass() {
    if std::env::var_os("TROUPE_SIM_SEEDS").is_some() {
        return; // a run of chosen seeds
    }
    for seed in [675, 973, 28, 6244, 1043] {
        // no call lost: the calls these seeds lost had arrived, only their replies had not
        run_allowing(seed, 0);
    }
}

/// The supervision checker passes what the policies say and catches what they do not.
#[test]
fn the_supervision_checker_tells_policy_from_breach() {
    use troupe_runtime::{Exit, SupervisionAction, SupervisionReport};
    let ms = Duration::from_millis;
    let report = |supervisor: &str, child: &str, action: SupervisionAction| {
        Seen::Report(SupervisionReport {
            node: "n0".into(),
            supervisor: supervisor.into(),
            child: child.into(),
            exit: Exit::Failed,
            reason: None,
            action,
        })
    };
    let restarted = |children: &[&str]| SupervisionAction::Restarted {
        children: children.iter().map(|c| (*c).to_string()).collect(),
        delay: ms(10),
    };
    let escalated = || SupervisionAction::Escalated("restart intensity exceeded".into());
    let started = |at: u64| vec![(ms(at), Seen::Started("a")), (ms(at), Seen::Started("b"))];
    // three failures within a second: two restarts, then escalation and the root's restart
    let mut policy = vec![(ms(0), Seen::NodeStarted)];
    policy.extend(started(0));
    policy.push((ms(100), report(PAIR, "b", restarted(&["a", "b"]))));
    policy.extend(started(110));
    policy.push((ms(200), report(PAIR, "b", restarted(&["a", "b"]))));
    policy.extend(started(220));
    policy.push((ms(300), report(PAIR, "b", escalated())));
    policy.push((ms(300), report("root", PAIR, restarted(&[PAIR]))));
    policy.extend(started(310));
    // a second after the first two, the window is empty again
    policy.push((ms(1400), report(PAIR, "b", restarted(&["a", "b"]))));
    policy.extend(started(1410));
    let decided = check_supervision(&policy).expect("the policy followed");
    assert_eq!(
        (
            decided.pair_restarts,
            decided.escalations,
            decided.root_restarts
        ),
        (3, 1, 1)
    );

    let breach = |at: usize, seen: Seen| {
        let mut log = policy.clone();
        log[at].1 = seen;
        check_supervision(&log)
    };
    // the third failure in the window restarted instead of escalating
    assert!(breach(9, report(PAIR, "b", restarted(&["a", "b"]))).is_err());
    // the second escalated too early
    assert!(breach(6, report(PAIR, "b", escalated())).is_err());
    // one-for-all restarted only the failed child
    assert!(breach(3, report(PAIR, "b", restarted(&["b"]))).is_err());
    // the root restarted the pair though it had not escalated
    assert!(breach(3, report("root", PAIR, restarted(&[PAIR]))).is_err());
    // a restart that started `a` twice and `b` not at all
    assert!(breach(5, Seen::Started("a")).is_err());
    // an escalation the root never answered
    assert!(check_supervision(&policy[..10]).is_err());
    // lost reports
    assert!(breach(1, Seen::Lagged(1)).is_err());
}
