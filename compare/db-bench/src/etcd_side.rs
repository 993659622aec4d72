//! etcd: three members on 127.0.0.1 (static bootstrap, fresh data dirs), driven by
//! etcd-client over plain HTTP/2.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use etcd_client::{Client, ConnectOptions, GetOptions, KvClient};

use crate::load::{self, Bounds, PhaseResult};
use crate::procs::{Procs, free_ports};

/// What to run
pub struct EtcdRun<'a> {
    pub etcd: &'a Path,
    pub dir: &'a Path,
    pub bounds: Bounds,
    /// Send every request to the leader's endpoint only (default: all three members)
    pub leader_only: bool,
    /// Serializable gets instead of linearizable ones
    pub serializable_gets: bool,
}

/// The put and get phases' results
pub struct Phases {
    pub put: PhaseResult,
    pub get: PhaseResult,
    /// The endpoints the client used
    pub endpoints: Vec<String>,
}

/// `etcd --version`'s first line's version number
pub fn version(etcd: &Path) -> String {
    Command::new(etcd)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("etcd Version: "))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Starts three members, runs both phases, kills the members
pub async fn run(run: &EtcdRun<'_>, procs: &mut Procs) -> anyhow::Result<Phases> {
    let ports = free_ports(6)?;
    let (client_ports, peer_ports) = ports.split_at(3);
    let cluster = (0..3)
        .map(|i| format!("m{i}=http://127.0.0.1:{}", peer_ports[i]))
        .collect::<Vec<_>>()
        .join(",");
    for i in 0..3 {
        let client_url = format!("http://127.0.0.1:{}", client_ports[i]);
        let peer_url = format!("http://127.0.0.1:{}", peer_ports[i]);
        let mut cmd = Command::new(run.etcd);
        cmd.arg("--name")
            .arg(format!("m{i}"))
            .arg("--data-dir")
            .arg(run.dir.join(format!("m{i}")))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "db-bench"])
            .args(["--logger", "zap", "--log-outputs", "stderr"]);
        procs.spawn(
            &format!("etcd-{i}"),
            cmd,
            &run.dir.join(format!("m{i}.log")),
        )?;
    }
    let all: Vec<String> = client_ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();

    let leader = wait_healthy(&all, Duration::from_secs(60)).await?;
    let endpoints = if run.leader_only { vec![leader] } else { all };
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(run.bounds.op_timeout);
    let client = Client::connect(&endpoints, Some(options))
        .await
        .context("connecting to etcd")?;
    let kv = client.kv_client();
    // One write before the clock starts, as for troupe.
    kv.clone()
        .put("warm-up", "1", None)
        .await
        .context("first write")?;

    let value = load::value();
    let c = kv.clone();
    let put = load::run_phase(run.bounds, move |task, i| {
        let mut c: KvClient = c.clone();
        let value = value.to_vec();
        async move {
            c.put(load::key(task, i).to_vec(), value, None)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
    })
    .await?;

    let written = Arc::new(load::written_keys(&put));
    anyhow::ensure!(!written.is_empty(), "the put phase wrote nothing");
    let clients = run.bounds.clients;
    let c = kv.clone();
    let serializable = run.serializable_gets;
    let get = load::run_phase(run.bounds, move |task, i| {
        let mut c: KvClient = c.clone();
        let key = load::read_key(&written, clients, task, i);
        // No options: a linearizable range read (etcd's default).
        let options = serializable.then(|| GetOptions::new().with_serializable());
        async move {
            match c.get(key.to_vec(), options).await {
                Ok(resp) => match resp.kvs() {
                    [kv] if kv.value().len() == load::VALUE_LEN => Ok(()),
                    other => Err(format!(
                        "key {:?} read back as {} entries",
                        String::from_utf8_lossy(&key),
                        other.len()
                    )),
                },
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await?;
    Ok(Phases {
        put,
        get,
        endpoints,
    })
}

/// Waits until every member reports the same leader and a linearizable read succeeds;
/// returns the leader's client URL
async fn wait_healthy(endpoints: &[String], within: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + within;
    let mut last = String::from("not asked yet");
    while Instant::now() < deadline {
        match leader_url(endpoints).await {
            Ok(url) => return Ok(url),
            Err(err) => last = format!("{err:#}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("etcd not healthy after {within:?}: {last}")
}

async fn leader_url(endpoints: &[String]) -> anyhow::Result<String> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(2));
    let mut leaders = Vec::new();
    let mut leader_url = None;
    for url in endpoints {
        let mut c = Client::connect([url], Some(options.clone())).await?;
        let status = c.status().await?;
        let (me, leader) = status
            .header()
            .map(|h| h.member_id())
            .zip(Some(status.leader()))
            .context("status without a header")?;
        anyhow::ensure!(leader != 0, "{url} knows no leader");
        if me == leader {
            leader_url = Some(url.clone());
        }
        leaders.push(leader);
        c.get("health", None).await?;
    }
    anyhow::ensure!(
        leaders.windows(2).all(|w| w[0] == w[1]),
        "members disagree on the leader: {leaders:?}"
    );
    leader_url.context("no member says it leads")
}
