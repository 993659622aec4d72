//! [`Placement`]: which nodes may run a failover child, in which order, and whether it moves
//! back when an earlier node returns

use serde::{Deserialize, Serialize};

/// Where a failover child may run: nodes in failover order, and whether the child moves back
/// to an earlier node when that node is live again (takeover)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    nodes: Vec<String>,
    takeover: bool,
}

impl Placement {
    /// The child runs on the first live node of `nodes`; with `takeover`, it moves back to an
    /// earlier node as soon as that node is live again (else it stays where it runs)
    pub fn new<N: Into<String>>(nodes: impl IntoIterator<Item = N>, takeover: bool) -> Self {
        Self {
            nodes: nodes.into_iter().map(Into::into).collect(),
            takeover,
        }
    }

    /// The nodes, in failover order
    pub fn nodes(&self) -> &[String] {
        &self.nodes
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
