//! troupe's replicated DB: three `db_cluster` processes on loopback (fresh CA, fresh data
//! dirs), this process joining their cluster as client node `bench`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use troupe_db::{AckMode, DbClient, DbSpec, Role};
use troupe_runtime::remote::{NetConfig, NodeNet};
use troupe_runtime::{Mesh, Node, NodeConfig, SupervisorSpec};

use crate::load::{self, Bounds, PhaseResult};
use crate::procs::Procs;

/// The cluster name `db_cluster` runs under
const CLUSTER: &str = "db_cluster";
/// Nodes of the three replicas, in replica order
const NODES: [&str; 3] = ["db-0", "db-1", "db-2"];
/// This process's node
const ME: &str = "bench";

/// What to run
pub struct TroupeRun<'a> {
    pub db_cluster: &'a Path,
    pub ack: &'a str,
    pub dir: &'a Path,
    pub bounds: Bounds,
}

/// The put and get phases' results
pub struct Phases {
    pub put: PhaseResult,
    pub get: PhaseResult,
    /// The leader's PID and replica index
    pub leader: (u32, usize),
}

/// The single-leader mode `ack` names; `None` for `raft`
fn mode(ack: &str) -> anyhow::Result<Option<AckMode>> {
    Ok(match ack {
        "raft" => None,
        "leader-only" => Some(AckMode::LeaderOnly),
        "majority" => Some(AckMode::Majority),
        "all" => Some(AckMode::All),
        other => anyhow::bail!("unknown replication mode {other:?}"),
    })
}

/// Starts the three replicas, runs both phases, kills the replicas
pub async fn run(run: &TroupeRun<'_>, procs: &mut Procs) -> anyhow::Result<Phases> {
    let mode = mode(run.ack)?;
    let args = ["--ack", run.ack].map(String::from);
    let seed = start_replicas(run.db_cluster, run.dir, NODES.len(), &args, procs)?;
    let (node, net) = join(run.dir, seed).await?;
    let spec = NODES
        .iter()
        .fold(DbSpec::new("db", "unused"), |spec, n| spec.replica(*n));
    let spec = match mode {
        Some(mode) => spec.ack(mode),
        None => spec,
    };
    let client = spec.client(&node).with_timeout(run.bounds.op_timeout);

    let result = phases(run, procs, &client).await;
    net.shutdown().await;
    node.shutdown().await;
    result
}

/// Makes a CA under `dir` with certificates for `db-0..db-{replicas-1}` and this process's
/// node, and starts that many `db_cluster` processes (no writer, no status lines) with `args`
/// added, each with its data under `dir/d{i}`; answers the first one's address
pub fn start_replicas(
    db_cluster: &Path,
    dir: &Path,
    replicas: usize,
    args: &[String],
    procs: &mut Procs,
) -> anyhow::Result<SocketAddr> {
    let ca = dir.join("ca");
    troupe_identity::init_ca(&ca, CLUSTER).context("creating the CA")?;
    let nodes: Vec<String> = (0..replicas).map(|i| format!("db-{i}")).collect();
    for node in nodes.iter().map(String::as_str).chain([ME]) {
        troupe_identity::issue_node(&ca, node, &ca)
            .with_context(|| format!("issuing a certificate for {node}"))?;
    }
    let mut seed = None;
    for (i, node) in nodes.iter().enumerate() {
        let mut cmd = Command::new(db_cluster);
        cmd.args(["--node", node, "--listen", "127.0.0.1:0"])
            .args(args)
            .args(["--write-every-ms", "0", "--status-every-ms", "0"])
            .arg("--ca")
            .arg(&ca)
            .arg("--data")
            .arg(dir.join(format!("d{i}")));
        if let Some(seed) = seed {
            cmd.args(["--seed", &format!("{seed}")]);
        }
        let log = dir.join(format!("{node}.log"));
        let addr = procs.spawn_listening(node, cmd, &log, Duration::from_secs(30))?;
        seed.get_or_insert(addr);
    }
    seed.context("no replica started")
}

/// Joins the cluster whose CA is under `dir` (see [`start_replicas`]) through `seed`, as
/// client node `bench`
pub async fn join(dir: &Path, seed: SocketAddr) -> anyhow::Result<(Node, NodeNet)> {
    let node = Node::new(ME, &Mesh::new(), NodeConfig::default())
        .map_err(|e| anyhow::anyhow!("client node: {e}"))?;
    node.start(SupervisorSpec::one_for_one(), vec![])
        .await
        .map_err(|e| anyhow::anyhow!("starting the client node: {e}"))?;
    let identity =
        troupe_identity::NodeIdentity::load(&dir.join("ca"), ME).context("client identity")?;
    let config = NetConfig::new(CLUSTER, identity).seeds([seed]);
    let net = NodeNet::bind(&node, "127.0.0.1:0".parse()?, config)
        .await
        .map_err(|e| anyhow::anyhow!("client network: {e}"))?;
    Ok((node, net))
}

async fn phases(run: &TroupeRun<'_>, procs: &Procs, client: &DbClient) -> anyhow::Result<Phases> {
    let leader = wait_for_leader(client, NODES.len(), Duration::from_secs(60)).await?;
    let leader_pid = procs
        .iter()
        .find(|p| p.name == NODES[leader])
        .map_or(0, |p| p.pid());
    eprintln!(
        "# troupe {}: leader db.{leader} (pid {leader_pid})",
        run.ack
    );
    // One write through the client, so it knows the leader before the clock starts.
    client
        .put("warm-up", "1")
        .await
        .map_err(|e| anyhow::anyhow!("first write: {e}"))?;

    let value = load::value();
    let c = client.clone();
    let put = load::run_phase(run.bounds, move |task, i| {
        let (c, value) = (c.clone(), value.clone());
        async move {
            c.put(load::key(task, i), value)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
    })
    .await?;

    let written = Arc::new(load::written_keys(&put));
    anyhow::ensure!(!written.is_empty(), "the put phase wrote nothing");
    let clients = run.bounds.clients;
    let c = client.clone();
    let get = load::run_phase(run.bounds, move |task, i| {
        let c = c.clone();
        let key = load::read_key(&written, clients, task, i);
        async move {
            match c.get(key.clone()).await {
                Ok(Some(v)) if v.len() == load::VALUE_LEN => Ok(()),
                Ok(other) => Err(format!(
                    "key {:?} read back as {:?}",
                    String::from_utf8_lossy(&key),
                    other.map(|v| v.len())
                )),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await?;
    Ok(Phases {
        put,
        get,
        leader: (leader_pid, leader),
    })
}

/// Waits until all `replicas` answer and exactly one leads; returns its index
pub async fn wait_for_leader(
    client: &DbClient,
    replicas: usize,
    within: Duration,
) -> anyhow::Result<usize> {
    let deadline = Instant::now() + within;
    loop {
        let statuses = client.statuses().await;
        let up = statuses.iter().filter(|s| s.is_ok()).count();
        let leaders: Vec<u64> = statuses
            .iter()
            .flatten()
            .filter(|s| s.role == Role::Leader)
            .map(|s| s.id)
            .collect();
        if let [one] = leaders[..]
            && up == replicas
        {
            return usize::try_from(one).context("leader index");
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "after {within:?}: {up} of {replicas} replicas answer, leaders {leaders:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The default db_cluster binary: beside the workspace's release build
pub fn default_db_cluster() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from("../../target"), PathBuf::from);
    target.join("release").join("db_cluster")
}
