//! The placement driver on one node, with its lease register on a real troupe database: it
//! claims the lease and starts the failover group, and the group's own supervision applies
//! where it runs — a child that keeps failing to start is restarted with the supervisor's
//! growing backoff, as on any node — until it runs.
//!
//! With two nodes in one process: a group that gives up on a node (past its supervisor's
//! restart intensity, or failing to start) moves to the next node of its order, and the node
//! it left keeps running. Over QUIC, a node that has just joined waits for its membership view
//! to settle before it takes a group ahead of a node it may not have heard of yet.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use troupe_db::DbSpec;
use troupe_failover::driver::MakeChild;
use troupe_failover::{
    DbRegister, FailoverChild, FailoverUnit, LeaseConfig, PlacementDriver, Prepared,
};
use troupe_placement::Placement;
use troupe_runtime::placed::Gate;
use troupe_runtime::{
    Actor, ActorError, ChildOptions, Ctx, Mesh, Message, Node, NodeConfig, NodeExit, Reach, Reply,
    Restart, SupervisorRef, SupervisorSpec,
};

#[derive(Serialize, Deserialize)]
struct Ping(Reply<()>);

impl Message for Ping {
    const NAME: &'static str = "driver-test.Ping";
}

/// Fails to start while fewer than `fail` starts were tried
struct Flaky {
    attempts: Arc<Mutex<Vec<Instant>>>,
    fail: usize,
}

impl Actor for Flaky {
    type Msg = Ping;

    async fn started(&mut self, _: &mut Ctx<Ping>) -> Result<(), ActorError> {
        let mut attempts = self.attempts.lock();
        attempts.push(Instant::now());
        if attempts.len() <= self.fail {
            return Err("not yet".into());
        }
        Ok(())
    }

    async fn handle(&mut self, Ping(reply): Ping, _: &mut Ctx<Ping>) -> Result<(), ActorError> {
        reply.send(());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placed_group_restarts_a_failing_child_with_its_supervisors_backoff() {
    const FAILS: usize = 7;
    let dir = tempfile::tempdir().unwrap();
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let db = DbSpec::new("meta", dir.path()).replica("n");
    let (db_child, _) = db.child(&node, 0).unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![db_child])
        .await
        .unwrap();
    let register = Arc::new(DbRegister::new(&db.client(&node), Duration::from_secs(1)));

    let attempts = Arc::new(Mutex::new(Vec::new()));
    let made = attempts.clone();
    let make: MakeChild = Arc::new(move |node: &Node| {
        let made = made.clone();
        let (flaky, _) = node.child("flaky", ChildOptions::permanent(), move || Flaky {
            attempts: made.clone(),
            fail: FAILS,
        })?;
        let (group, _) = node.supervisor_child(
            "group",
            SupervisorSpec::one_for_one(),
            Restart::Permanent,
            vec![flaky],
        );
        Ok(group)
    });
    let group = make(&node).unwrap();
    let handle = node.lookup::<Ping>("flaky").unwrap();
    let gate = Gate::new();
    assert!(node.gate("flaky", gate.clone()));
    let unit = FailoverUnit {
        child: FailoverChild::new(
            "group",
            ["flaky".to_string()],
            Placement::new(["n"], false),
            64,
        ),
        here: Some(Prepared {
            spec: group,
            gate,
            make,
        }),
    };
    node.mesh().place("flaky", 64);
    let (driver, _) = node
        .child("driver", ChildOptions::permanent(), move || {
            PlacementDriver::new(register.clone(), LeaseConfig::default(), vec![unit.clone()])
        })
        .unwrap();
    node.root().unwrap().add(driver).await.unwrap();

    troupe_testkit::eventually("the group runs", Duration::from_secs(20), async || {
        handle.call(Ping, Duration::from_millis(200)).await
    })
    .await;
    let attempts = attempts.lock().clone();
    assert_eq!(attempts.len(), FAILS + 1, "{attempts:?}");
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    // the group's supervisor's default backoff, doubling from 10 ms: the seventh restart
    // waits 640 ms
    assert!(gaps[FAILS - 1] >= Duration::from_millis(600), "{gaps:?}");
    node.shutdown().await;
}

#[derive(Serialize, Deserialize)]
struct Where(Reply<String>);

impl Message for Where {
    const NAME: &'static str = "driver-test.Where";
}

/// Answers where it runs, and records where and when (on the runtime's clock) it started; on
/// node `bad` it crashes as it starts, every time
struct NotOn {
    bad: &'static str,
    starts: Starts,
}

impl Actor for NotOn {
    type Msg = Where;

    async fn started(&mut self, ctx: &mut Ctx<Where>) -> Result<(), ActorError> {
        let here = ctx.node().name().to_string();
        self.starts
            .lock()
            .push((here.clone(), troupe_runtime::time::now()));
        if here == self.bad {
            return Err(format!("cannot run on {here}").into());
        }
        Ok(())
    }

    async fn handle(
        &mut self,
        Where(reply): Where,
        ctx: &mut Ctx<Where>,
    ) -> Result<(), ActorError> {
        reply.send(ctx.node().name().to_string());
        Ok(())
    }
}

/// Where and when (on the runtime's clock) an actor started
type Starts = Arc<Mutex<Vec<(String, std::time::Instant)>>>;

/// Makes group `group`: a [`NotOn`] actor `svc` (crashing on node `bad`) any node of the
/// cluster may reach, under a supervisor by `spec`; and the record of the actor's starts
fn group_not_on(bad: &'static str, spec: SupervisorSpec) -> (MakeChild, Starts) {
    let starts = Starts::default();
    let made = starts.clone();
    let make: MakeChild = Arc::new(move |node: &Node| {
        let starts = made.clone();
        let options = ChildOptions::permanent().reachable_from(Reach::cluster());
        let (svc, _) = node.child("svc", options, move || NotOn {
            bad,
            starts: starts.clone(),
        })?;
        Ok(node
            .supervisor_child("group", spec.clone(), Restart::Permanent, vec![svc])
            .0)
    });
    (make, starts)
}

/// Answers where it runs, on every node: a bystander beside the failover group
struct Bystander;

impl Actor for Bystander {
    type Msg = Where;

    async fn handle(
        &mut self,
        Where(reply): Where,
        ctx: &mut Ctx<Where>,
    ) -> Result<(), ActorError> {
        reply.send(ctx.node().name().to_string());
        Ok(())
    }
}

/// Nodes `a` and `b` in one process, each with a bystander and a placement driver for failover
/// group `group` (placed on `a`, then `b`) made by `make`; the lease register on node `m`.
/// Returns the nodes, `m` last.
async fn two_nodes(dir: &std::path::Path, make: MakeChild) -> Vec<Node> {
    let mesh = Mesh::new();
    // handles to `svc` follow the group from the start
    mesh.place("svc", 64);
    let m = Node::new("m", &mesh, NodeConfig::default()).unwrap();
    let db = DbSpec::new("meta", dir).replica("m");
    let (db_child, _) = db.child(&m, 0).unwrap();
    m.start(SupervisorSpec::one_for_one(), vec![db_child])
        .await
        .unwrap();
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let node = Node::new(name, &mesh, NodeConfig::default()).unwrap();
        let (bystander, _) = node
            .child("bystander", ChildOptions::permanent(), || Bystander)
            .unwrap();
        let root = node
            .start(SupervisorSpec::one_for_one(), vec![bystander])
            .await
            .unwrap();
        drive_group(&node, &root, &db, &make).await;
        nodes.push(node);
    }
    nodes.push(m);
    nodes
}

/// Places group `group` (made by `make`, answering as `svc`, ordered `a` then `b`) on `node`
/// under `root`, with a placement driver whose lease register is `db`.
async fn drive_group(node: &Node, root: &SupervisorRef, db: &DbSpec, make: &MakeChild) {
    let gate = Gate::new();
    let group = make(node).unwrap();
    assert!(node.gate("svc", gate.clone()));
    let unit = FailoverUnit {
        child: FailoverChild::new(
            "group",
            ["svc".to_string()],
            Placement::new(["a", "b"], false),
            64,
        ),
        here: Some(Prepared {
            spec: group,
            gate,
            make: make.clone(),
        }),
    };
    let register = Arc::new(DbRegister::new(&db.client(node), Duration::from_secs(1)));
    let (driver, _) = node
        .child("driver", ChildOptions::permanent(), move || {
            PlacementDriver::new(register.clone(), LeaseConfig::default(), vec![unit.clone()])
        })
        .unwrap();
    root.add(driver).await.unwrap();
}

/// Where `svc` answers from, through a handle on `node` that follows the group
async fn runs_on(node: &Node, want: &str) -> Result<(), String> {
    let svc = node.addr::<Where>("a", "svc");
    match svc.call(Where, Duration::from_millis(500)).await {
        Ok(at) if at == want => Ok(()),
        Ok(at) => Err(format!("runs on {at}")),
        Err(error) => Err(error.to_string()),
    }
}

/// The group's supervisor gives up on `a` (its child crashes there as it starts, past the
/// group's restart intensity): `a` gives the group up, `b` runs it, and `a`'s root and its
/// other actors keep running (before, the root restarted the group on `a` for ever)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_past_its_intensity_on_one_node_moves_to_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let spec = SupervisorSpec::one_for_one()
        .intensity(2, Duration::from_secs(10))
        .escalate_when_exceeded();
    let (make, starts) = group_not_on("a", spec);
    let nodes = two_nodes(dir.path(), make).await;
    let (a, b) = (&nodes[0], &nodes[1]);

    troupe_testkit::eventually("the group runs on b", Duration::from_secs(30), async || {
        runs_on(a, "b").await
    })
    .await;
    let on_a = starts.lock().iter().filter(|(n, _)| n == "a").count();
    // the first start and two restarts: the third crash exceeds the intensity
    assert_eq!(on_a, 3, "{:?}", starts.lock());
    assert_eq!(a.exit_status(), NodeExit::Running);
    let bystander = a.lookup::<Where>("bystander").unwrap();
    let at = bystander.call(Where, Duration::from_secs(1)).await.unwrap();
    assert_eq!(at, "a");
    let children = a.root().unwrap().children().await.unwrap();
    assert!(!children.contains(&"group".to_string()), "{children:?}");
    // b keeps it (no takeover), from both nodes' handles
    runs_on(b, "b").await.unwrap();
    for node in nodes.iter().rev() {
        node.shutdown().await;
    }
}

/// The group cannot even start on `a` (its actor's factory panics there):
/// after three failed starts in a row `a` gives it up and `b` runs it (before, `a` kept its
/// lease and retried for ever)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_fails_to_start_on_one_node_moves_to_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let tries = Arc::new(Mutex::new(Vec::new()));
    let made = tries.clone();
    let make: MakeChild = Arc::new(move |node: &Node| {
        let (tries, here) = (made.clone(), node.name().to_string());
        let options = ChildOptions::permanent().reachable_from(Reach::cluster());
        let (svc, _) = node.child("svc", options, move || {
            tries.lock().push(here.clone());
            assert!(here != "a", "cannot be made on a");
            Bystander
        })?;
        Ok(node
            .supervisor_child(
                "group",
                SupervisorSpec::one_for_one(),
                Restart::Permanent,
                vec![svc],
            )
            .0)
    });
    let nodes = two_nodes(dir.path(), make).await;
    let (a, b) = (&nodes[0], &nodes[1]);

    troupe_testkit::eventually("the group runs on b", Duration::from_secs(30), async || {
        runs_on(a, "b").await
    })
    .await;
    let on_a = tries.lock().iter().filter(|n| *n == "a").count();
    assert_eq!(
        on_a,
        troupe_placement::GIVE_UP_AFTER_FAILED_STARTS as usize,
        "{:?}",
        tries.lock()
    );
    assert_eq!(a.exit_status(), NodeExit::Running);
    runs_on(b, "b").await.unwrap();
    for node in nodes.iter().rev() {
        node.shutdown().await;
    }
}

/// A node that has just joined the cluster has not heard of every member yet: it takes a
/// group whose order puts another node first only once its membership view has settled, so
/// that it does not take the group from under a live node it has not heard of (before, `b`
/// claimed at its first read of the absent lease, as the spare joining a running cluster did
/// in `failover_operator_processes` now and then)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_just_joined_claims_ahead_of_others_only_once_its_view_settles() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = troupe_testkit::Cluster::new("driver-test");
    // the register on `m`, its own process as far as the runtime knows (its own mesh)
    let m = Node::new("m", &Mesh::new(), NodeConfig::default()).unwrap();
    let db = DbSpec::new("meta", dir.path())
        .replica("m")
        .reachable_from(Reach::cluster());
    let (db_child, _) = db.child(&m, 0).unwrap();
    m.start(SupervisorSpec::one_for_one(), vec![db_child])
        .await
        .unwrap();
    let m_net = cluster.join(&m, &[]).await;

    let mesh = Mesh::new();
    mesh.place("svc", 64);
    let b = Node::new("b", &mesh, NodeConfig::default()).unwrap();
    let root = b
        .start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    let config = cluster
        .config("b", &[m_net.local_addr()])
        .peer_down_timeout(Duration::from_secs(2));
    let b_net = cluster.bind(&b, config).await;
    let (make, starts) = group_not_on("", SupervisorSpec::one_for_one());
    // `a` comes first and never joins: `b` cannot tell it from a node it has not heard of yet
    drive_group(&b, &root, &db, &make).await;

    troupe_testkit::eventually("the group runs on b", Duration::from_secs(30), async || {
        runs_on(&b, "b").await
    })
    .await;
    let (on, first) = starts.lock()[0].clone();
    assert_eq!(on, "b");
    let settles = b_net.view_settles_at();
    assert!(
        first >= settles,
        "started {:?} before b's view settled",
        settles - first
    );
    b.shutdown().await;
    m.shutdown().await;
}
