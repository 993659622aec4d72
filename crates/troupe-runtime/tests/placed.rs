//! Handles to a name the cluster places (a failover child): each send reaches whoever holds it
//! now; while nobody does, casts park within the limit and go to the next holder first, in
//! order, and calls wait for a holder within their timeout. In one process and across two
//! processes' worth of nodes over QUIC.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use troupe_runtime::remote::NodeNet;
use troupe_runtime::{
    CallError, ChildOptions, Mesh, Node, NodeConfig, Reach, Reply, SupervisorSpec,
};

async fn started(mesh: &Mesh, name: &str) -> Node {
    let node = Node::new(name, mesh, NodeConfig::default()).unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    node
}

/// Starts the placed child `svc` on `node`.
async fn run_svc(node: &Node, journal: &Journal) {
    let (spec, _) = probe(
        node,
        journal,
        "svc",
        ChildOptions::permanent().reachable_from(Reach::cluster()),
    );
    node.root().unwrap().add(spec).await.unwrap();
}

#[tokio::test]
async fn sends_follow_the_holder_and_park_while_there_is_none() {
    let mesh = Mesh::new();
    let (a, b) = (started(&mesh, "a").await, started(&mesh, "b").await);
    let placed = mesh.place("svc", 4);
    // a handle as a topology hands it out: nominally on the first node of the order
    let svc = a.addr::<Probe>("a", "svc");
    let journal = Journal::default();

    // nobody holds it: casts park, up to the limit
    for n in 1..=4 {
        svc.cast(Probe::Push(n, Reply::none())).unwrap();
    }
    assert!(matches!(
        svc.cast(Probe::Push(99, Reply::none())),
        Err(CallError::Overloaded { limit: 4, .. })
    ));
    assert_eq!((placed.parked(), placed.dropped()), (4, 1));
    // a call waits within its timeout, then fails typed
    assert!(matches!(
        svc.call(Probe::Log, Duration::from_millis(50)).await,
        Err(CallError::Timeout { .. })
    ));

    // b takes it: the parked casts reach it first, in order, then later sends
    run_svc(&b, &journal).await;
    assert!(placed.observe(Some("b"), 1));
    assert_eq!(placed.parked(), 0);
    svc.cast(Probe::Push(5, Reply::none())).unwrap();
    assert_eq!(svc.call(Probe::Log, T).await.unwrap(), vec![1, 2, 3, 4, 5]);

    // an older record changes nothing
    assert!(!placed.observe(None, 0));
    assert_eq!(placed.holder().as_deref(), Some("b"));

    // b goes; a call made meanwhile is answered by the next holder, a
    assert!(placed.observe(None, 1));
    b.root().unwrap().remove("svc").await.unwrap();
    let waiting = tokio::spawn({
        let svc = svc.clone();
        async move { svc.call(|r| Probe::Push(7, r), T).await }
    });
    svc.cast(Probe::Push(6, Reply::none())).unwrap();
    run_svc(&a, &journal).await;
    assert!(placed.observe(Some("a"), 2));
    assert_eq!(waiting.await.unwrap().unwrap(), 2);
    assert_eq!(svc.call(Probe::Log, T).await.unwrap(), vec![6, 7]);
    assert_eq!(journal.starts("svc"), 2);
}

/// A holder learnt before its child serves there (another node read the lease's claim first)
/// is not routed to: the parked casts, and later ones, wait for it to serve, then reach it in
/// order, none refused as absent.
#[tokio::test]
async fn casts_wait_for_a_holder_that_does_not_serve_yet() {
    let mesh = Mesh::new();
    let (a, b) = (started(&mesh, "a").await, started(&mesh, "b").await);
    let placed = mesh.place("svc", 16);
    let svc = a.addr::<Probe>("a", "svc");
    let journal = Journal::default();
    for n in 1..=3 {
        svc.cast(Probe::Push(n, Reply::none())).unwrap();
    }
    // b claimed the lease but has not started the child behind its gate yet
    let gate = troupe_runtime::placed::Gate::new();
    let (spec, _) = probe(
        &b,
        &journal,
        "svc",
        ChildOptions::permanent()
            .reachable_from(Reach::cluster())
            .gated(gate.clone()),
    );
    assert!(placed.observe(Some("b"), 1));
    assert_eq!(placed.holder(), None, "not routed to before it serves");
    svc.cast(Probe::Push(4, Reply::none())).unwrap();
    assert_eq!((placed.parked(), placed.dropped()), (4, 0));
    // it starts and opens its gate; the next observation (its own, once started) routes there
    b.root().unwrap().add(spec).await.unwrap();
    gate.open_until(troupe_runtime::time::now() + Duration::from_secs(3600));
    assert!(placed.observe(Some("b"), 1));
    assert_eq!(placed.holder().as_deref(), Some("b"));
    svc.cast(Probe::Push(5, Reply::none())).unwrap();
    assert_eq!(svc.call(Probe::Log, T).await.unwrap(), vec![1, 2, 3, 4, 5]);
    assert_eq!(placed.dropped(), 0);
}

const LOOPBACK: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_in_another_process_follows_the_child_across_nodes() {
    let ca = troupe_identity::DevCa::new("test").unwrap();
    let config = |name: &str, seeds: &[SocketAddr]| {
        troupe_runtime::remote::NetConfig::new("test", ca.identity(name).unwrap())
            .seeds(seeds.iter().copied())
    };
    // three processes' worth of nodes: each mesh declares the placement, as a topology would
    let meshes = [Mesh::new(), Mesh::new(), Mesh::new()];
    let entries: Vec<_> = meshes.iter().map(|m| m.place("svc", 64)).collect();
    let caller = started(&meshes[0], "caller").await;
    let (x, y) = (
        started(&meshes[1], "x").await,
        started(&meshes[2], "y").await,
    );
    let caller_net = NodeNet::bind(&caller, LOOPBACK, config("caller", &[]))
        .await
        .unwrap();
    let seed = [caller_net.local_addr()];
    let x_net = NodeNet::bind(&x, LOOPBACK, config("x", &seed))
        .await
        .unwrap();
    let y_net = NodeNet::bind(&y, LOOPBACK, config("y", &seed))
        .await
        .unwrap();
    troupe_testkit::fully_connected(&[&caller_net, &x_net, &y_net], T).await;
    let journal = Journal::default();
    let svc = caller.addr::<Probe>("x", "svc");

    svc.cast(Probe::Push(1, Reply::none())).unwrap();
    run_svc(&x, &journal).await;
    for entry in &entries {
        entry.observe(Some("x"), 1);
    }
    assert_eq!(svc.call(|r| Probe::Push(2, r), T).await.unwrap(), 2);

    // moved to y: the same handle reaches the new instance
    for entry in &entries {
        entry.observe(None, 1);
    }
    x.root().unwrap().remove("svc").await.unwrap();
    svc.cast(Probe::Push(3, Reply::none())).unwrap();
    run_svc(&y, &journal).await;
    for entry in &entries {
        entry.observe(Some("y"), 2);
    }
    svc.cast(Probe::Push(4, Reply::none())).unwrap();
    assert_eq!(svc.call(Probe::Log, T).await.unwrap(), vec![3, 4]);
    for net in [caller_net, x_net, y_net] {
        net.shutdown().await;
    }
}

#[tokio::test]
async fn a_gated_actor_handles_messages_only_while_its_gate_is_open() {
    let mesh = Mesh::new();
    let node = started(&mesh, "a").await;
    let journal = Journal::default();
    let gate = troupe_runtime::placed::Gate::new();
    let (spec, probe) = probe(
        &node,
        &journal,
        "gated",
        ChildOptions::permanent().gated(gate.clone()),
    );
    node.root().unwrap().add(spec).await.unwrap();

    // closed when made: refused, as an actor that is not here
    assert!(matches!(
        probe.call(|r| Probe::Push(1, r), T).await,
        Err(CallError::NotFound { .. })
    ));
    let now = troupe_runtime::time::now();
    gate.open_until(now + Duration::from_secs(3600));
    assert_eq!(probe.call(|r| Probe::Push(2, r), T).await.unwrap(), 1);
    // a lease that ran out: the cast is not handled
    gate.open_until(now);
    probe.cast(Probe::Push(3, Reply::none())).unwrap();
    // refused after the cast, in mailbox order: the cast met the closed gate too
    assert!(probe.call(Probe::Log, T).await.is_err());
    gate.open_until(troupe_runtime::time::now() + Duration::from_secs(3600));
    assert_eq!(probe.call(Probe::Log, T).await.unwrap(), vec![2]);
    gate.close();
    assert!(probe.call(Probe::Log, T).await.is_err());
}

#[tokio::test]
async fn a_terminated_group_keeps_its_names_and_starts_again_from_the_same_spec() {
    let mesh = Mesh::new();
    let node = started(&mesh, "a").await;
    let journal = Journal::default();
    let (inner, probe) = probe(&node, &journal, "inner", ChildOptions::permanent());
    let (group, _) = node.supervisor_child(
        "group",
        SupervisorSpec::one_for_one(),
        troupe_runtime::Restart::Permanent,
        vec![inner],
    );
    let root = node.root().unwrap();
    root.add(group.clone()).await.unwrap();
    probe.cast(Probe::Push(1, Reply::none())).unwrap();
    assert_eq!(probe.call(Probe::Log, T).await.unwrap(), vec![1]);

    assert!(root.terminate("group").await.unwrap());
    assert!(node.is_registered("inner"));
    // parked in the slot meanwhile, delivered to the next instance
    probe.cast(Probe::Push(2, Reply::none())).unwrap();
    let gate = troupe_runtime::placed::Gate::new();
    assert!(node.gate("inner", gate.clone()));
    assert!(!node.gate("inner", gate.clone()), "gated once");
    assert!(!node.gate("nobody", gate.clone()));
    gate.open_until(troupe_runtime::time::now() + Duration::from_secs(3600));

    root.add(group).await.unwrap();
    assert_eq!(probe.call(Probe::Log, T).await.unwrap(), vec![2]);
    assert_eq!(journal.starts("inner"), 2);
    gate.close();
    assert!(matches!(
        probe.call(Probe::Log, T).await,
        Err(CallError::NotFound { .. })
    ));
}

/// Every node of a failover child's order registers its names, so a placed name on two nodes
/// is expected and not reported; any other name on two nodes still is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placed_name_on_several_nodes_is_not_reported_as_a_duplicate() {
    let ca = troupe_identity::DevCa::new("test").unwrap();
    let config = |name: &str, seeds: &[SocketAddr]| {
        troupe_runtime::remote::NetConfig::new("test", ca.identity(name).unwrap())
            .seeds(seeds.iter().copied())
    };
    let journal = Journal::default();
    let meshes = [Mesh::new(), Mesh::new()];
    let mut nodes = Vec::new();
    for (mesh, name) in meshes.iter().zip(["x", "y"]) {
        // `a-placed` sorts before `z-dup`: had it been reported, it would come first
        mesh.place("a-placed", 64);
        let node = started(mesh, name).await;
        for child in ["a-placed", "z-dup"] {
            let (spec, _) = probe(
                &node,
                &journal,
                child,
                ChildOptions::permanent().reachable_from(Reach::cluster()),
            );
            node.root().unwrap().add(spec).await.unwrap();
        }
        nodes.push(node);
    }
    let mut events = nodes[0].cluster_events();
    let x_net = NodeNet::bind(&nodes[0], LOOPBACK, config("x", &[]))
        .await
        .unwrap();
    let y_net = NodeNet::bind(&nodes[1], LOOPBACK, config("y", &[x_net.local_addr()]))
        .await
        .unwrap();
    let duplicate = troupe_testkit::within("a duplicate name reported", T, async {
        loop {
            match events.recv().await {
                Ok(troupe_runtime::remote::NodeEvent::DuplicateName { name, .. }) => {
                    return name;
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => panic!("closed"),
            }
        }
    })
    .await;
    assert_eq!(duplicate, "z-dup");
    for net in [x_net, y_net] {
        net.shutdown().await;
    }
}
