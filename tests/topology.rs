//! Topologies in one process: wiring by handle across nodes, groups, pools, launch errors,
//! escalation past the root and graceful shutdown order.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use troupe::prelude::*;
use troupe::runtime::{Mesh, NodeConfig, RegistryError};
use troupe_testkit::eventually;

const T: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "topology-test.Cmd")]
enum Cmd {
    /// Adds to the total; replies with it.
    Add(u64, Reply<u64>),
    /// Asks `peer` to add, and replies with the peer's answer.
    Relay(u64, Reply<u64>),
    Panic,
}

type Log = Arc<Mutex<Vec<String>>>;

struct Worker {
    total: u64,
    peer: Option<Addr<Cmd>>,
    log: Log,
}

impl Actor for Worker {
    type Msg = Cmd;

    async fn started(&mut self, ctx: &mut Ctx<Cmd>) -> Result<(), ActorError> {
        self.log
            .lock()
            .push(format!("start {}/{}", ctx.node().name(), ctx.name()));
        Ok(())
    }

    async fn handle(&mut self, msg: Cmd, _: &mut Ctx<Cmd>) -> Result<(), ActorError> {
        match msg {
            Cmd::Add(n, reply) => {
                self.total += n;
                reply.send(self.total);
            }
            Cmd::Relay(n, reply) => {
                let peer = self.peer.as_ref().ok_or("no peer")?;
                reply.send(peer.call(|r| Cmd::Add(n, r), T).await?);
            }
            Cmd::Panic => panic!("asked to"),
        }
        Ok(())
    }

    async fn stopped(&mut self, ctx: &mut Ctx<Cmd>) -> Result<(), ActorError> {
        self.log
            .lock()
            .push(format!("stop {}/{}", ctx.node().name(), ctx.name()));
        Ok(())
    }
}

fn worker(log: &Log, peer: Option<Addr<Cmd>>) -> impl Fn() -> Worker + Send + Sync + 'static {
    let log = log.clone();
    move || Worker {
        total: 0,
        peer: peer.clone(),
        log: log.clone(),
    }
}

#[tokio::test]
async fn handles_declared_before_start_work_across_nodes_groups_and_pools() {
    let log = Log::default();
    let mut t = Topology::new("test");
    let (edge, app, data) = (t.node("edge"), t.node("app"), t.node("data"));
    // declared before its target exists in the topology: handles resolve at start
    let back = Addr::<Cmd>::clone(&t.add(data, "store", worker(&log, None)));
    let group = t.group(app, "services", SupervisorSpec::one_for_all());
    let svc = t.add(group, "svc", worker(&log, Some(back.clone())));
    let pool = t.pool(edge, "front", 3, {
        let log = log.clone();
        let svc = svc.clone();
        move |_| Worker {
            total: 0,
            peer: Some(svc.clone()),
            log: log.clone(),
        }
    });
    let running = t.start().await.unwrap();
    assert_eq!(running.nodes().len(), 3);
    // edge pool member → app service, and app service → data store: each hop crosses nodes
    assert_eq!(pool.call_next(|r| Cmd::Relay(2, r), T).await.unwrap(), 2);
    assert_eq!(pool.call_next(|r| Cmd::Relay(2, r), T).await.unwrap(), 4);
    assert_eq!(svc.call(|r| Cmd::Relay(3, r), T).await.unwrap(), 3);
    assert_eq!(back.call(|r| Cmd::Add(0, r), T).await.unwrap(), 3);
    assert_eq!(
        running
            .node("app")
            .unwrap()
            .root()
            .unwrap()
            .children()
            .await
            .unwrap(),
        vec!["services"]
    );
    assert_eq!(
        running.node("edge").unwrap().names(),
        vec!["front.0", "front.1", "front.2"]
    );
    running.shutdown().await;
}

#[tokio::test]
async fn a_name_declared_twice_on_one_node_is_a_launch_error() {
    let log = Log::default();
    let mut t = Topology::new("dup");
    let n = t.node("n");
    let m = t.node("m");
    t.add(n, "same", worker(&log, None));
    t.add(m, "same", worker(&log, None)); // another node: fine
    t.add(n, "same", worker(&log, None));
    match t.start().await {
        Err(LaunchError::Registry(RegistryError::AlreadyRegistered { node, name })) => {
            assert_eq!((node.as_str(), name.as_str()), ("n", "same"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn launch_rejects_a_node_the_topology_lacks() {
    let mut t = Topology::new("x");
    t.node("a");
    let args = LaunchArgs {
        nodes: vec!["b".into()],
        ..LaunchArgs::default()
    };
    let err = launch_until(t, args, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        matches!(err, LaunchError::UnknownNode(ref n, _) if n == "b"),
        "{err}"
    );
}

#[tokio::test]
async fn a_role_joins_one_undeclared_node_and_only_that() {
    let launch = async |nodes: &[&str], roles: &[&str]| {
        let mut t = Topology::new("x");
        t.node("a");
        let args = LaunchArgs {
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..LaunchArgs::default()
        };
        launch_until(t, args, std::future::pending())
            .await
            .unwrap_err()
            .to_string()
    };
    let err = launch(&["a"], &["spare"]).await;
    assert!(err.contains("declared in the topology"), "{err}");
    let err = launch(&["j", "k"], &["spare"]).await;
    assert!(err.contains("exactly one --node"), "{err}");
    let err = launch(&[], &["spare"]).await;
    assert!(err.contains("exactly one --node"), "{err}");
    // an undeclared node with no role: unknown, and told how to join
    let err = launch(&["j"], &[]).await;
    assert!(
        err.contains("unknown node \"j\"") && err.contains("--role"),
        "{err}"
    );
    // with a role but no identity to prove it
    let err = launch(&["j"], &["spare"]).await;
    assert!(err.contains("--ca"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_nodes_of_a_topology_share_one_process_on_the_network() {
    let log = Log::default();
    let mut t = Topology::new("pair");
    let (a, b) = (t.node("a"), t.node("b"));
    t.node("c"); // runs elsewhere (here: nowhere)
    let on_a = t.add(a, "on-a", worker(&log, None));
    let on_b = t.add(b, "on-b", worker(&log, None));
    let args = LaunchArgs {
        nodes: vec!["a".into(), "b".into()],
        dev_ca: true,
        listen: Some("127.0.0.1:0".parse().unwrap()),
        ..LaunchArgs::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(launch_until(t, args, async move {
        let _ = stop_rx.await;
    }));
    for addr in [&on_a, &on_b] {
        eventually(&format!("{} answering", addr.name()), T, async || {
            addr.call(|r| Cmd::Add(1, r), T).await
        })
        .await;
    }
    stop_tx.send(()).unwrap();
    tokio::time::timeout(T, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn escalation_past_a_root_makes_launch_return_the_failure() {
    let log = Log::default();
    let mut t = Topology::new("fragile");
    let a = t.node("a");
    let b = t.node("b");
    t.supervise(
        b,
        SupervisorSpec::one_for_one()
            .intensity(2, Duration::from_secs(30))
            .escalate_when_exceeded(),
    );
    let healthy = t.add(a, "healthy", worker(&log, None));
    let crashy = t.add(b, "crashy", worker(&log, None));
    let task = tokio::spawn(launch_until(
        t,
        LaunchArgs::default(),
        std::future::pending(),
    ));
    for _ in 0..3 {
        // retry until the (restarted) actor takes the next crash
        eventually("crashy answering", T, async || {
            crashy.call(|r| Cmd::Add(0, r), T).await
        })
        .await;
        crashy.cast(Cmd::Panic).unwrap();
    }
    let result = tokio::time::timeout(T, task).await.unwrap().unwrap();
    match result {
        Err(LaunchError::NodeFailed { node, reason }) => {
            assert_eq!(node, "b");
            assert!(reason.contains("intensity"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // launch shut the healthy node down too instead of leaving it half alive
    assert!(healthy.call(|r| Cmd::Add(1, r), T).await.is_err());
    assert!(log.lock().contains(&"stop a/healthy".to_string()));
}

#[tokio::test]
async fn launch_shuts_down_in_reverse_start_order_when_told_to() {
    let log = Log::default();
    let mut t = Topology::new("orderly");
    let a = t.node("a");
    let b = t.node("b");
    let first = t.add(a, "first", worker(&log, None));
    let g = t.group(a, "g", SupervisorSpec::one_for_one());
    t.add(g, "inner", worker(&log, None));
    let last = t.add(b, "last", worker(&log, None));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(launch_until(t, LaunchArgs::default(), async move {
        let _ = stop_rx.await;
    }));
    // handles made by a topology answer `Unreachable` until launch has started its nodes
    eventually("first answering", T, async || {
        first.call(|r| Cmd::Add(1, r), T).await
    })
    .await;
    last.call(|r| Cmd::Add(1, r), T).await.unwrap();
    eventually("three starts logged", T, async || {
        let log = log.lock().clone();
        if log.len() >= 3 { Ok(()) } else { Err(log) }
    })
    .await;
    stop_tx.send(()).unwrap();
    tokio::time::timeout(T, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let stops: Vec<String> = log
        .lock()
        .iter()
        .filter(|l| l.starts_with("stop"))
        .cloned()
        .collect();
    assert_eq!(stops, vec!["stop b/last", "stop a/inner", "stop a/first"]);
}

#[tokio::test]
async fn nodes_in_separate_meshes_do_not_see_each_other() {
    let one = Mesh::new();
    let two = Mesh::new();
    let a = Node::new("a", &one, NodeConfig::default()).unwrap();
    let _a_again = Node::new("a", &two, NodeConfig::default()).unwrap();
    assert_eq!(one.node_names(), vec!["a"]);
    assert!(
        a.addr::<Cmd>("b", "x")
            .cast(Cmd::Add(1, Reply::none()))
            .is_err()
    );
}
