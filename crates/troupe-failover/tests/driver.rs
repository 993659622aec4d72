//! The placement driver on one node, with its lease register on a real troupe database: it
//! claims the lease and starts the failover group, and the group's own supervision applies
//! where it runs — a child that keeps failing to start is restarted with the supervisor's
//! growing backoff, as on any node — until it runs.

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
    Actor, ActorError, ChildOptions, Ctx, Mesh, Message, Node, NodeConfig, Reply, Restart,
    SupervisorSpec,
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
