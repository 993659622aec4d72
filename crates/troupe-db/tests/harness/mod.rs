//! Three replicas on three in-process nodes over real QUIC on loopback (mutual TLS from a dev
//! CA), plus a client node, for the database's cluster tests in either mode (`cluster.rs`,
//! `raft.rs`).

#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use troupe_db::{DbClient, DbSpec, ReplicaStatus, Role};
use troupe_runtime::remote::NodeNet;
use troupe_runtime::{Mesh, Node, NodeConfig, SupervisorSpec};
use troupe_testkit::eventually;

pub(crate) const T: Duration = Duration::from_secs(20);

pub(crate) struct TestNode {
    pub(crate) node: Node,
    pub(crate) net: NodeNet,
}

impl TestNode {
    pub(crate) async fn start(
        ca: &troupe_testkit::Cluster,
        name: &str,
        seeds: &[SocketAddr],
    ) -> Self {
        let node = Node::new(name, &Mesh::new(), NodeConfig::default()).unwrap();
        node.start(SupervisorSpec::one_for_one(), vec![])
            .await
            .unwrap();
        let config = ca
            .config(name, seeds)
            .peer_down_timeout(Duration::from_millis(600));
        let net = ca.bind(&node, config).await;
        Self { node, net }
    }

    pub(crate) async fn spawn_replica(&self, spec: &DbSpec, index: usize) {
        let (child, _) = spec.child(&self.node, index).unwrap();
        self.node.root().unwrap().add(child).await.unwrap();
    }

    pub(crate) async fn stop(self) {
        self.net.shutdown().await;
        self.node.shutdown().await;
    }
}

pub(crate) struct Cluster {
    pub(crate) ca: troupe_testkit::Cluster,
    pub(crate) spec: DbSpec,
    /// `None` while stopped
    pub(crate) replicas: Vec<Option<TestNode>>,
    pub(crate) app: TestNode,
    pub(crate) client: DbClient,
}

impl Cluster {
    /// Three nodes with a replica of `spec` each and a client node, once one replica leads.
    pub(crate) async fn start(spec: DbSpec) -> Self {
        let ca = troupe_testkit::Cluster::new("db-test");
        let first = TestNode::start(&ca, "r0", &[]).await;
        let seed = [first.net.local_addr()];
        let mut replicas = vec![Some(first)];
        for name in ["r1", "r2"] {
            replicas.push(Some(TestNode::start(&ca, name, &seed).await));
        }
        let app = TestNode::start(&ca, "app", &seed).await;
        let nets: Vec<&NodeNet> = replicas
            .iter()
            .flatten()
            .chain([&app])
            .map(|n| &n.net)
            .collect();
        troupe_testkit::fully_connected(&nets, T).await;
        for (i, node) in replicas.iter().enumerate() {
            node.as_ref().unwrap().spawn_replica(&spec, i).await;
        }
        let client = spec.client(&app.node).with_timeout(T);
        let cluster = Self {
            ca,
            spec,
            replicas,
            app,
            client,
        };
        cluster.wait_for_leader().await;
        cluster
    }

    pub(crate) fn seed(&self) -> SocketAddr {
        self.app.net.local_addr()
    }

    pub(crate) async fn statuses(&self) -> Vec<Option<ReplicaStatus>> {
        self.client
            .statuses()
            .await
            .into_iter()
            .map(Result::ok)
            .collect()
    }

    pub(crate) async fn wait_for_leader(&self) -> usize {
        self.leader_and_term().await.0
    }

    /// The single leader and its term, read from one round of statuses
    pub(crate) async fn leader_and_term(&self) -> (usize, u64) {
        eventually("a single leader", T, async || {
            let leaders: Vec<(usize, u64)> = self
                .statuses()
                .await
                .into_iter()
                .flatten()
                .filter(|s| s.role == Role::Leader)
                .map(|s| (s.id as usize, s.epoch))
                .collect();
            match leaders[..] {
                [leader] => Ok(leader),
                _ => Err(leaders),
            }
        })
        .await
    }

    pub(crate) async fn stop_replica(&mut self, index: usize) {
        self.replicas[index].take().unwrap().stop().await;
    }

    pub(crate) async fn restart_replica(&mut self, index: usize) {
        let name = format!("r{index}");
        let node = TestNode::start(&self.ca, &name, &[self.seed()]).await;
        let net = &node.net;
        eventually("the restarted node to join", T, async || {
            net.connected().len() >= 2
        })
        .await;
        node.spawn_replica(&self.spec, index).await;
        self.replicas[index] = Some(node);
    }

    /// Waits until replica `index` has applied at least `upto`, and returns its status
    pub(crate) async fn wait_applied(&self, index: usize, upto: u64) -> ReplicaStatus {
        eventually(&format!("replica {index} to apply {upto}"), T, async || {
            let status = self.statuses().await[index].clone();
            match status {
                Some(s) if s.applied_index >= upto => Ok(s),
                other => Err(other),
            }
        })
        .await
    }

    pub(crate) async fn stop(self) {
        for node in self.replicas.into_iter().flatten() {
            node.stop().await;
        }
        self.app.stop().await;
    }
}

pub(crate) fn key(i: usize) -> Bytes {
    Bytes::from(format!("key-{i:04}"))
}

pub(crate) fn value(i: usize, round: usize) -> Bytes {
    Bytes::from(format!("value-{i}-{round}"))
}
