//! `troupe status`, `top` and `graph` as an operator runs them: the binary against a real admin endpoint over TCP
//! on loopback, for two nodes joined over QUIC.

mod common;

use std::net::SocketAddr;

use common::{text, troupe};
use troupe_admin::{AdminServer, ProcessState, Readiness};
use troupe_runtime::{Mesh, Node, NodeConfig, SupervisorSpec};
use troupe_testkit::{Cluster, T, fully_connected};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_nodes_their_actors_and_members() {
    let cluster = Cluster::new("status");
    let mesh = Mesh::new();
    let a = Node::new("front", &mesh, NodeConfig::default()).unwrap();
    a.start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    let b = Node::new("back", &Mesh::new(), NodeConfig::default()).unwrap();
    let a_net = cluster.join(&a, &[]).await;
    let b_net = cluster.join(&b, &[a_net.local_addr()]).await;
    fully_connected(&[&a_net, &b_net], T).await;
    let readiness = Readiness::new();
    readiness.set_ready();
    let admin = AdminServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), mesh, readiness)
        .await
        .unwrap();
    let addr = admin.local_addr().to_string();

    let out = troupe(&["status", "--admin", &addr]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("process: ready, 1 node(s)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("NODE"), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("front "))
        .unwrap_or_else(|| panic!("a row for front: {stdout}"));
    assert!(row.contains(&a_net.local_addr().to_string()), "{row}");
    assert!(row.contains("back up"), "{row}");

    let out = troupe(&["status", "--admin", &addr, "--json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let state: ProcessState = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(state.nodes[0].name, "front");

    let out = troupe(&[
        "top",
        "--admin",
        &addr,
        "--interval-ms",
        "100",
        "--count",
        "2",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.matches("NODE").count(),
        2,
        "two screens of top: {stdout}"
    );

    let out = troupe(&["graph", "--admin", &addr]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("digraph troupe {")
            && stdout.contains(r#""front" -> "back" [label="up", style=solid];"#),
        "{stdout}"
    );

    // nobody there: exit 1, and what to do about it
    admin.stop().await;
    let out = troupe(&["status", "--admin", &addr]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot reach the admin endpoint at {addr}"))
            && stderr.contains("--admin"),
        "{stderr}"
    );
    b_net.shutdown().await;
    a_net.shutdown().await;
}
