//! [`Reach`]: who may send a registered actor messages from other nodes.
//!
//! Mutual TLS decides which nodes belong to the cluster; a `Reach` decides, per registered
//! name, which of them may talk to it. Names are local-only unless declared otherwise, so a
//! part's internal actors (and anything a user did not mean to expose) refuse every message
//! that arrives over the network with [`CallError::Forbidden`](crate::CallError::Forbidden),
//! and are not announced to peers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The roles each node of the cluster plays (`"db"`, `"edge"`), as every node's configuration
/// states them ([`NodeConfig::node_roles`](crate::NodeConfig::node_roles)): a node's roles come
/// from this table, never from the peer, whose name its certificate proves.
pub type NodeRoles = Arc<BTreeMap<String, BTreeSet<String>>>;

/// Which nodes may send messages to a registered actor over the network.
///
/// Actors on the actor's own node always reach it; a `Reach` only governs messages that
/// arrive from other nodes over the network. In one process, messages between its nodes are
/// handed over in memory and not checked, unless the mesh routes them through QUIC
/// ([`Mesh::route_through_quic`](crate::Mesh::route_through_quic), `--quic`), which checks
/// them as across hosts. A peer's name is the one its certificate was issued for, so a node
/// cannot claim another's.
///
/// # Examples
///
/// ```
/// use troupe_runtime::{ChildOptions, Reach};
///
/// // reachable by every node of the cluster
/// let public = ChildOptions::permanent().reachable_from(Reach::cluster());
/// // reachable only by the replicas' own nodes
/// let peers = ChildOptions::permanent().reachable_from(Reach::nodes(["db-1", "db-2", "db-3"]));
/// assert!(peers.reach.allows("db-2"));
/// assert!(!peers.reach.allows("app"));
/// # let _ = public;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Reach {
    /// Only from its own node (the default): every message from another node is refused.
    #[default]
    Local,
    /// From any node of the cluster.
    Cluster,
    /// From the listed nodes only, by name.
    Nodes(Arc<[Arc<str>]>),
    /// From the nodes that play any of the listed roles (see [`NodeRoles`]).
    Roles(Arc<[Arc<str>]>),
}

impl Reach {
    /// Only from the actor's own node.
    pub fn local() -> Self {
        Self::Local
    }

    /// From any node of the cluster.
    pub fn cluster() -> Self {
        Self::Cluster
    }

    /// From the named nodes only (an empty list is the same as [`Reach::local`]).
    pub fn nodes<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        let names: Arc<[Arc<str>]> = names.into_iter().map(|n| Arc::from(n.as_ref())).collect();
        if names.is_empty() {
            Self::Local
        } else {
            Self::Nodes(names)
        }
    }

    /// From the nodes playing any of `roles` (an empty list is the same as [`Reach::local`]).
    pub fn roles<S: AsRef<str>>(roles: impl IntoIterator<Item = S>) -> Self {
        let roles: Arc<[Arc<str>]> = roles.into_iter().map(|r| Arc::from(r.as_ref())).collect();
        if roles.is_empty() {
            Self::Local
        } else {
            Self::Roles(roles)
        }
    }

    /// Whether a message from node `peer` is accepted (no node plays a role here: use
    /// [`allows_with`](Self::allows_with) for a reach by roles).
    pub fn allows(&self, peer: &str) -> bool {
        self.allows_with(peer, &NodeRoles::default())
    }

    /// Whether a message from node `peer` is accepted, with `roles` saying which roles each
    /// node plays.
    pub fn allows_with(&self, peer: &str, roles: &NodeRoles) -> bool {
        match self {
            Self::Local => false,
            Self::Cluster => true,
            Self::Nodes(names) => names.iter().any(|n| &**n == peer),
            Self::Roles(wanted) => roles
                .get(peer)
                .is_some_and(|has| wanted.iter().any(|r| has.contains(&**r))),
        }
    }

    /// Whether any other node may reach it (only such names are announced to peers).
    pub fn is_exposed(&self) -> bool {
        !matches!(self, Self::Local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_refuses_everyone_and_cluster_accepts_everyone() {
        assert!(!Reach::local().allows("a"));
        assert!(!Reach::local().is_exposed());
        assert!(Reach::cluster().allows("a"));
        assert!(Reach::cluster().is_exposed());
        assert_eq!(Reach::default(), Reach::Local);
    }

    #[test]
    fn roles_come_from_the_table() {
        let roles: NodeRoles = Arc::new(BTreeMap::from([
            ("db-1".to_string(), BTreeSet::from(["db".to_string()])),
            (
                "app".to_string(),
                BTreeSet::from(["app".to_string(), "ops".to_string()]),
            ),
        ]));
        let reach = Reach::roles(["db", "ops"]);
        assert!(reach.allows_with("db-1", &roles) && reach.allows_with("app", &roles));
        assert!(!reach.allows_with("edge", &roles));
        assert!(!reach.allows("db-1"), "no table, no roles");
        assert_eq!(Reach::roles(Vec::<String>::new()), Reach::Local);
    }

    #[test]
    fn listed_nodes_only() {
        let reach = Reach::nodes(["db-1", "db-2"]);
        assert!(reach.allows("db-1") && reach.allows("db-2"));
        assert!(!reach.allows("db-3") && !reach.allows("db-") && !reach.allows(""));
        assert_eq!(Reach::nodes(Vec::<String>::new()), Reach::Local);
    }
}
