//! Nodes joining a running cluster through every member as a seed, under simulation: each
//! newcomer dials every member as a seed and again as gossip names it, while the members dial
//! it as they hear of it, so pairs meet on duplicate connections that the two ends must resolve
//! alike. For every seed, every node ends connected to every other, and no node lists a member
//! as up without a connection to it.

use std::time::Duration;

use troupe_runtime::remote::{MemberStatus, NodeNet};
use troupe_runtime::{Mesh, Node, NodeConfig, SupervisorSpec};
use troupe_sim::{addr, bind, simulation};

const MEMBERS: [&str; 3] = ["a", "b", "c"];
const NEWCOMERS: [&str; 3] = ["j0", "j1", "j2"];

/// Up members without a connection, as `node -> member` lines (empty: consistent)
fn up_without_connection(net: &NodeNet) -> Vec<String> {
    let connected = net.connected();
    net.members()
        .into_iter()
        .filter(|(name, status, _)| *status == MemberStatus::Up && !connected.contains(name))
        .map(|(name, _, _)| format!("{} -> {name}", net.node_name()))
        .collect()
}

fn run(seed: u64) {
    let ca = troupe_testkit::Cluster::new("sim-join");
    let mut sim = simulation(seed, Duration::from_secs(60));
    let all: Vec<&str> = MEMBERS.iter().chain(NEWCOMERS.iter()).copied().collect();
    for (i, name) in all.iter().copied().enumerate() {
        let config = ca.config(name, &[]);
        let others = all.clone();
        sim.host(name, move || {
            let (config, others) = (config.clone(), others.clone());
            async move {
                // the members start first; each newcomer joins through all of them at once
                if i >= MEMBERS.len() {
                    tokio::time::sleep(Duration::from_millis(500 + 7 * i as u64)).await;
                }
                let seeds: Vec<_> = if i == 0 {
                    vec![]
                } else if i < MEMBERS.len() {
                    vec![addr("a")]
                } else {
                    MEMBERS.iter().map(|m| addr(m)).collect()
                };
                let node = Node::new(name, &Mesh::new(), NodeConfig::default())?;
                node.start(SupervisorSpec::one_for_one(), vec![]).await?;
                let net = bind(&node, config.seeds(seeds)).await?;
                // settle, then check this node's view
                tokio::time::sleep(Duration::from_secs(2)).await;
                let missing: Vec<&str> = others
                    .iter()
                    .copied()
                    .filter(|o| *o != name && !net.connected().iter().any(|c| c == o))
                    .collect();
                let inconsistent = up_without_connection(&net);
                assert!(
                    missing.is_empty() && inconsistent.is_empty(),
                    "seed {seed}: {name} not connected to {missing:?}; up without a connection: \
                     {inconsistent:?}"
                );
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }
    sim.client("clock", async {
        tokio::time::sleep(Duration::from_secs(4)).await;
        Ok(())
    });
    if let Err(err) = sim.run() {
        panic!("seed {seed}: {err}");
    }
}

#[test]
fn nodes_joining_through_every_member_end_fully_connected() {
    for seed in 1..=5 {
        run(seed);
    }
}
