//! [`Placement`]: which nodes may run a failover child, in which order, and whether it moves
//! back when an earlier node returns

use serde::{Deserialize, Serialize};

/// Where a failover child may run: nodes in failover order, then any node playing one of its
/// roles, and whether the child moves back to an earlier node when that node is live again
/// (takeover)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    nodes: Vec<String>,
    takeover: bool,
    /// After `nodes`, the nodes playing any of these roles may run it too
    #[serde(default)]
    roles: Vec<String>,
}

impl Placement {
    /// The child runs on the first live node of `nodes`; with `takeover`, it moves back to an
    /// earlier node as soon as that node is live again (else it stays where it runs)
    pub fn new<N: Into<String>>(nodes: impl IntoIterator<Item = N>, takeover: bool) -> Self {
        Self {
            nodes: nodes.into_iter().map(Into::into).collect(),
            takeover,
            roles: Vec::new(),
        }
    }

    /// This placement, and after its nodes any node playing one of `roles` (a node that joins
    /// the cluster with such a role, its certificate proving it, without being declared):
    /// see [`Placement::with_members`]
    #[must_use]
    pub fn with_roles<R: Into<String>>(mut self, roles: impl IntoIterator<Item = R>) -> Self {
        for role in roles {
            let role = role.into();
            if !self.roles.contains(&role) {
                self.roles.push(role);
            }
        }
        self
    }

    /// The nodes, in failover order (for a placement by roles, those named; the nodes playing
    /// the roles come in with [`Placement::with_members`])
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The roles whose nodes may run it after [`Placement::nodes`]
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// Whether node `node`, playing `roles`, may ever run it: it is named, or plays one of
    /// its roles
    pub fn admits(&self, node: &str, roles: &dyn Fn(&str) -> bool) -> bool {
        self.nodes.iter().any(|n| n == node) || self.roles.iter().any(|r| roles(r))
    }

    /// The order as it stands with `members` playing its roles: the named nodes first, then
    /// the members not named, by name, so that every node that knows the same members
    /// computes the same order (which node tries first; the lease alone keeps the child on
    /// one node at a time, whatever the order). The roles are kept.
    pub fn with_members<N: AsRef<str>>(&self, members: impl IntoIterator<Item = N>) -> Self {
        let mut extra: Vec<String> = members
            .into_iter()
            .map(|m| m.as_ref().to_string())
            .filter(|m| !self.nodes.contains(m))
            .collect();
        extra.sort();
        extra.dedup();
        let mut placement = self.clone();
        placement.nodes.extend(extra);
        placement
    }

    /// Whether the child moves back to an earlier node that returns
    pub fn takeover(&self) -> bool {
        self.takeover
    }

    /// The first node of the order that `live` holds live: the one that claims a lease nobody
    /// renews
    pub fn first_live(&self, live: &dyn Fn(&str) -> bool) -> Option<&str> {
        self.nodes.iter().map(String::as_str).find(|n| live(n))
    }

    /// Whether `holder`, running the child, should give it up now: when it is no longer in
    /// the order (drained) and a node of it is live; else only with takeover, when a node
    /// before it in the order is live
    pub fn gives_way(&self, holder: &str, live: &dyn Fn(&str) -> bool) -> bool {
        if !self.nodes.iter().any(|n| n == holder) {
            return self.nodes.iter().any(|n| live(n));
        }
        self.takeover
            && self
                .nodes
                .iter()
                .take_while(|n| n.as_str() != holder)
                .any(|n| live(n))
    }

    /// This placement as operators direct it: `moved_to` (one of its nodes) first, with
    /// takeover, so that the child moves there as soon as that node is live; and without the
    /// nodes `drained` says are being emptied, so that a child running on one moves off.
    /// A move to a node outside the order, or to a drained one, is ignored.
    pub fn directed(&self, moved_to: Option<&str>, drained: &dyn Fn(&str) -> bool) -> Self {
        let moved_to = moved_to.filter(|m| self.nodes.iter().any(|n| n == m) && !drained(m));
        let mut nodes: Vec<String> = moved_to.map(str::to_string).into_iter().collect();
        nodes.extend(
            self.nodes
                .iter()
                .filter(|n| Some(n.as_str()) != moved_to && !drained(n))
                .cloned(),
        );
        Self {
            nodes,
            takeover: self.takeover || moved_to.is_some(),
            roles: self.roles.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_live_in_order_and_takeover() {
        let p = Placement::new(["a", "b", "c"], false);
        assert_eq!(p.first_live(&|_| true), Some("a"));
        assert_eq!(p.first_live(&|n| n != "a"), Some("b"));
        assert_eq!(p.first_live(&|_| false), None);
        assert!(!p.gives_way("b", &|_| true), "no takeover: it stays");
        let t = Placement::new(["a", "b", "c"], true);
        assert!(t.gives_way("b", &|_| true));
        assert!(!t.gives_way("b", &|n| n != "a"));
        assert!(!t.gives_way("a", &|_| true));
        // a holder outside the list gives way to any live node of it, takeover or not
        assert!(t.gives_way("z", &|n| n == "c"));
        assert!(p.gives_way("z", &|n| n == "c"));
        assert!(!p.gives_way("z", &|_| false));
    }

    #[test]
    fn members_of_its_roles_follow_the_named_nodes_by_name() {
        let p = Placement::new(["b", "a"], false).with_roles(["spare", "spare"]);
        assert_eq!(p.roles(), ["spare"]);
        assert!(p.admits("a", &|_| false));
        assert!(p.admits("z", &|r| r == "spare"));
        assert!(!p.admits("z", &|r| r == "db"));
        assert!(!Placement::new(["a"], false).admits("z", &|_| true));
        let with = p.with_members(["d", "a", "c", "d"]);
        assert_eq!(with.nodes(), ["b", "a", "c", "d"]);
        assert_eq!(with.roles(), ["spare"]);
        // the same members in any order give the same order
        assert_eq!(p.with_members(["c", "d"]), p.with_members(["d", "c"]));
        // directed as any order: moved to a member, or a drained member left out
        let moved = with.directed(Some("d"), &|_| false);
        assert_eq!(moved.nodes(), ["d", "b", "a", "c"]);
        assert_eq!(with.directed(None, &|n| n == "c").nodes(), ["b", "a", "d"]);
    }

    #[test]
    fn directions_move_a_node_first_and_drop_drained_ones() {
        let p = Placement::new(["a", "b", "c"], false);
        let none = |_: &str| false;
        assert_eq!(p.directed(None, &none), p);
        let moved = p.directed(Some("c"), &none);
        assert_eq!(moved.nodes(), ["c", "a", "b"]);
        assert!(moved.takeover() && moved.gives_way("a", &|_| true));
        let drained = p.directed(None, &|n| n == "a");
        assert_eq!(drained.nodes(), ["b", "c"]);
        assert!(!drained.takeover());
        assert!(
            drained.gives_way("a", &|n| n == "b"),
            "a drained holder moves off"
        );
        assert!(!drained.gives_way("b", &|_| true), "no takeover otherwise");
        // a move to a drained node or outside the order is ignored
        assert_eq!(p.directed(Some("a"), &|n| n == "a").nodes(), ["b", "c"]);
        assert_eq!(p.directed(Some("z"), &none), p);
    }
}
