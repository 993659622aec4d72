//! What the database's simulation tests share: three replicas, each on a simulated host, and
//! a client node on another.

use std::path::Path;
use std::time::Duration;

use troupe_db::{AckMode, DbClient, DbSpec};
use troupe_runtime::{Mesh, Node, NodeConfig, Reach, SupervisorSpec};
use troupe_sim::{addr, bind};

/// The replicas' hosts (and node names)
pub(crate) const REPLICAS: [&str; 3] = ["r0", "r1", "r2"];

/// A peer is reported down after this long without a word
const PEER_DOWN: Duration = Duration::from_secs(1);

/// The database: majority acknowledgements, promotion 300 ms after the leader's node is down
pub(crate) fn spec(dir: &Path) -> DbSpec {
    let mut spec = DbSpec::new("db", dir)
        .reachable_from(Reach::cluster())
        .ack(AckMode::Majority)
        .promote_after(Some(Duration::from_millis(300)));
    for name in REPLICAS {
        spec = spec.replica(name);
    }
    spec
}

/// Adds a host per replica to `sim`, each joining through the others (so a restarted one
/// finds them) and running its replica, with files under `dir`
pub(crate) fn replica_hosts(sim: &mut turmoil::Sim<'_>, ca: &troupe_testkit::Cluster, dir: &Path) {
    for (i, name) in REPLICAS.into_iter().enumerate() {
        let spec = spec(dir);
        let config = ca.config(name, &[]).peer_down_timeout(PEER_DOWN);
        sim.host(name, move || {
            let (spec, config) = (spec.clone(), config.clone());
            async move {
                let node = Node::new(name, &Mesh::new(), NodeConfig::default())?;
                node.start(SupervisorSpec::one_for_one(), vec![]).await?;
                let seeds = REPLICAS.iter().filter(|r| **r != name).map(|r| addr(r));
                let _net = bind(&node, config.seeds(seeds)).await?;
                let (child, _) = spec.child(&node, i)?;
                node.root().ok_or("no root supervisor")?.add(child).await?;
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }
}

/// Starts the client node `app` on the simulated host this runs in, joined through every
/// replica; returns the node (keep it) and a client with `timeout` per operation
pub(crate) async fn client(
    ca_config: troupe_runtime::remote::NetConfig,
    dir: &Path,
    timeout: Duration,
) -> Result<(Node, troupe_runtime::remote::NodeNet, DbClient), Box<dyn std::error::Error>> {
    let node = Node::new("app", &Mesh::new(), NodeConfig::default())?;
    node.start(SupervisorSpec::one_for_one(), vec![]).await?;
    let seeds = REPLICAS.iter().map(|r| addr(r));
    let net = bind(&node, ca_config.peer_down_timeout(PEER_DOWN).seeds(seeds)).await?;
    let client = spec(dir).client(&node).with_timeout(timeout);
    Ok((node, net, client))
}
