//! A database's replicas on nodes of one process, shared by the tests that need no network.

use troupe_db::DbSpec;
use troupe_runtime::{Mesh, Node, NodeConfig, SupervisorSpec};

/// Starts replica `i` of `spec` on a node named `names[i]`, all in one mesh (messages between
/// them handed over in memory), and returns the nodes in replica order.
pub(crate) async fn start_replicas(spec: &DbSpec, names: &[&str]) -> Vec<Node> {
    let mesh = Mesh::new();
    let mut nodes = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let node = Node::new(name, &mesh, NodeConfig::default()).unwrap();
        let (child, _) = spec.child(&node, i).unwrap();
        node.start(SupervisorSpec::one_for_one(), vec![child])
            .await
            .unwrap();
        nodes.push(node);
    }
    nodes
}
