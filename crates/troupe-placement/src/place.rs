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

    /// Whether `holder`, running the child, should give it up now: only with takeover, when
    /// a node before it in the order is live
    pub fn gives_way(&self, holder: &str, live: &dyn Fn(&str) -> bool) -> bool {
        self.takeover
            && self
                .nodes
                .iter()
                .take_while(|n| n.as_str() != holder)
                .any(|n| live(n))
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
        // a holder outside the list gives way to any live node of it
        assert!(t.gives_way("z", &|n| n == "c"));
    }
}
