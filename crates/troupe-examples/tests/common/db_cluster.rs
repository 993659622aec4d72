//! `db_cluster` as three replica processes on loopback (certificates from a real CA directory,
//! data in real files), and this test process joining their cluster as node `tester`, a client
//! of the database.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use troupe::db::{AckMode, DbClient, DbSpec, Role};
use troupe::runtime::remote::{NetConfig, NodeNet};
use troupe::runtime::{Mesh, Node, NodeConfig, SupervisorSpec};
use troupe_testkit::eventually;

use super::Proc;

/// Generous: a loaded machine must not make live replicas look dead
pub(crate) const PEER_DOWN_MS: u64 = 2000;
pub(crate) const T: Duration = Duration::from_secs(30);

/// The three replica processes; replica `i` runs as node `db-i` with its files in `data/di`
pub(crate) struct Replicas {
    ca: PathBuf,
    data: PathBuf,
    ack: &'static str,
    promote_after_ms: u64,
    procs: Vec<Option<Proc>>,
    /// Where each running replica listens
    addrs: Vec<Option<SocketAddr>>,
}

impl Replicas {
    /// Starts replica `i` from its files (new ones the first time), on a new port
    pub(crate) fn start(&mut self, i: usize) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_db_cluster"));
        cmd.args(["--node", &format!("db-{i}"), "--listen", "127.0.0.1:0"])
            .args(["--peer-down-ms", &PEER_DOWN_MS.to_string()])
            .args(["--ack", self.ack])
            .args(["--promote-after-ms", &self.promote_after_ms.to_string()])
            .args(["--write-every-ms", "0", "--status-every-ms", "0"])
            .arg("--ca")
            .arg(&self.ca)
            .arg("--data")
            .arg(self.data.join(format!("d{i}")));
        // Join through a replica that is running (a restarted one listens on a new port).
        if let Some(seed) = self.seed() {
            cmd.args(["--seed", &seed.to_string()]);
        }
        let mut proc = Proc::spawn(cmd);
        self.addrs[i] = Some(proc.listening());
        self.procs[i] = Some(proc);
    }

    pub(crate) fn seed(&self) -> Option<SocketAddr> {
        self.addrs.iter().flatten().next().copied()
    }

    /// The UDP port replica `i` listens on (and sends from: one QUIC endpoint per node)
    ///
    /// # Panics
    ///
    /// If replica `i` is not running.
    pub(crate) fn port(&self, i: usize) -> u16 {
        self.addrs[i].expect("the replica is running").port()
    }

    pub(crate) fn kill9(&mut self, i: usize) {
        if let Some(mut proc) = self.procs[i].take() {
            proc.kill9();
        }
        self.addrs[i] = None;
    }

    /// SIGSTOP replica `i`'s process
    pub(crate) fn stop(&self, i: usize) {
        self.procs[i]
            .as_ref()
            .expect("the replica is running")
            .stop();
    }

    /// SIGCONT replica `i`'s process
    pub(crate) fn resume(&self, i: usize) {
        self.procs[i]
            .as_ref()
            .expect("the replica is running")
            .resume();
    }
}

/// A new CA under `dir` with certificates for the replicas and `tester`, and the three replicas
/// started
pub(crate) fn setup(dir: &Path, ack: &'static str, promote_after_ms: u64) -> Replicas {
    let ca = dir.join("ca");
    troupe_identity::init_ca(&ca, "db_cluster").expect("ca init");
    for node in ["db-0", "db-1", "db-2", "tester"] {
        troupe_identity::issue_node(&ca, node, &ca).expect("issue");
    }
    let mut replicas = Replicas {
        ca,
        data: dir.join("data"),
        ack,
        promote_after_ms,
        procs: (0..3).map(|_| None).collect(),
        addrs: vec![None; 3],
    };
    for i in 0..3 {
        replicas.start(i);
    }
    replicas
}

/// This test process as node `tester` of the cluster, and a client of its database
/// (`mode` `None`: the replicas run Raft, as `--ack raft`)
pub(crate) async fn join(replicas: &Replicas, mode: Option<AckMode>) -> (Node, NodeNet, DbClient) {
    let node = Node::new("tester", &Mesh::new(), NodeConfig::default()).unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    let identity = troupe_identity::NodeIdentity::load(&replicas.ca, "tester").unwrap();
    let config = NetConfig::new("db_cluster", identity)
        .seeds(replicas.seed())
        .peer_down_timeout(Duration::from_millis(PEER_DOWN_MS));
    let net = NodeNet::bind(&node, "127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let spec = DbSpec::new("db", "unused")
        .replica("db-0")
        .replica("db-1")
        .replica("db-2");
    let spec = match mode {
        Some(mode) => spec.ack(mode),
        None => spec,
    };
    let client = spec.client(&node).with_timeout(T);
    (node, net, client)
}

/// The one replica that leads, among those that answer
pub(crate) async fn leader(client: &DbClient) -> usize {
    eventually("a single leader", T, async || {
        let leaders: Vec<u64> = client
            .statuses()
            .await
            .into_iter()
            .flatten()
            .filter(|s| s.role == Role::Leader)
            .map(|s| s.id)
            .collect();
        match leaders[..] {
            [one] => Ok(one as usize),
            _ => Err(leaders),
        }
    })
    .await
}
