//! The membership table, as plain logic: who is in the cluster, at which address and
//! incarnation, whether they are up (as the membership protocol decided, `swim/`), which names
//! they publish, and what changed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::NodeEvent;

/// A member's state as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberStatus {
    /// Alive, as the cluster's membership protocol holds it: it answers probes, directly or
    /// through other members.
    Up,
    /// Declared down by the membership protocol (it answered no probe, direct or indirect, and
    /// did not refute the suspicion in time); reconnection is being attempted.
    Down,
    /// Left the cluster gracefully.
    Left,
}

#[derive(Clone, Debug)]
struct Member {
    addr: Option<SocketAddr>,
    incarnation: u64,
    status: MemberStatus,
    names: BTreeSet<String>,
    /// The incarnation that published `names` (they may arrive before the membership protocol
    /// holds that incarnation up).
    names_of: u64,
    /// Whether its link was reported lost while it was up (`NodeEvent::Unreachable`).
    link_lost: bool,
    /// Whether the membership protocol ever held it up (before that, it is only a peer whose
    /// connection completed its handshake, and is not listed).
    seen_up: bool,
}

/// The longest registered name a member may announce.
pub(crate) const MAX_NAME_LEN: usize = 1024;

/// This node's view of the cluster.
#[derive(Debug)]
pub(crate) struct Members {
    me: String,
    my_names: BTreeSet<String>,
    table: BTreeMap<String, Member>,
    reported_duplicates: BTreeSet<(String, Vec<String>)>,
}

impl Members {
    pub(crate) fn new(me: &str) -> Self {
        Self {
            me: me.to_string(),
            my_names: BTreeSet::new(),
            table: BTreeMap::new(),
            reported_duplicates: BTreeSet::new(),
        }
    }

    /// The membership protocol holds `name` at `incarnation` up.
    pub(crate) fn up(
        &mut self,
        name: &str,
        incarnation: u64,
        addr: Option<SocketAddr>,
    ) -> Vec<NodeEvent> {
        let member = self.table.entry(name.to_string()).or_insert(Member {
            addr,
            incarnation,
            status: MemberStatus::Down,
            names: BTreeSet::new(),
            names_of: incarnation,
            link_lost: false,
            seen_up: true,
        });
        member.seen_up = true;
        let restarted = member.incarnation != incarnation;
        if member.names_of != incarnation {
            // a new incarnation publishes its names afresh
            member.names.clear();
            member.names_of = incarnation;
        }
        member.incarnation = incarnation;
        if restarted {
            member.link_lost = false;
        }
        if addr.is_some() {
            member.addr = addr;
        }
        let was = member.status;
        member.status = MemberStatus::Up;
        if was == MemberStatus::Up && !restarted {
            return Vec::new();
        }
        let mut events = vec![NodeEvent::Up {
            node: name.to_string(),
            incarnation,
        }];
        // names it published before it was up count now
        events.extend(self.duplicates());
        events
    }

    /// A connection to `name` (at `incarnation`) completed its handshake: remembers where to
    /// dial it if nothing better is known, and nothing else (whether it is up is the membership
    /// protocol's word, [`Members::up`]).
    pub(crate) fn connected(&mut self, name: &str, incarnation: u64, addr: SocketAddr) {
        let member = self.table.entry(name.to_string()).or_insert(Member {
            addr: Some(addr),
            incarnation,
            status: MemberStatus::Down,
            names: BTreeSet::new(),
            names_of: incarnation,
            link_lost: false,
            seen_up: false,
        });
        if member.addr.is_none() || !member.seen_up {
            member.addr = Some(addr);
        }
    }

    /// `name` at `incarnation` says peers dial it at `addr`.
    pub(crate) fn set_addr(&mut self, name: &str, incarnation: u64, addr: SocketAddr) {
        if let Some(m) = self.table.get_mut(name)
            && m.incarnation == incarnation
        {
            m.addr = Some(addr);
        }
    }

    /// The membership protocol declared `name` at `incarnation` down.
    pub(crate) fn down(&mut self, name: &str, incarnation: u64, reason: &str) -> Option<NodeEvent> {
        let member = self.table.get_mut(name)?;
        if member.status != MemberStatus::Up || member.incarnation != incarnation {
            return None;
        }
        member.status = MemberStatus::Down;
        member.link_lost = false;
        Some(NodeEvent::Down {
            node: name.to_string(),
            reason: reason.to_string(),
        })
    }

    /// `name` at `incarnation` left gracefully.
    pub(crate) fn left(&mut self, name: &str, incarnation: u64) -> Option<NodeEvent> {
        let member = self.table.get_mut(name)?;
        if member.status == MemberStatus::Left || member.incarnation != incarnation {
            return None;
        }
        member.status = MemberStatus::Left;
        member.link_lost = false;
        member.names.clear();
        Some(NodeEvent::Left {
            node: name.to_string(),
        })
    }

    /// This node's last connection to `name` (at `incarnation`) ended while the membership
    /// protocol holds it up: reported once, until a connection is back.
    pub(crate) fn link_lost(
        &mut self,
        name: &str,
        incarnation: u64,
        reason: &str,
    ) -> Option<NodeEvent> {
        let member = self.table.get_mut(name)?;
        if member.status != MemberStatus::Up
            || member.incarnation != incarnation
            || member.link_lost
        {
            return None;
        }
        member.link_lost = true;
        Some(NodeEvent::Unreachable {
            node: name.to_string(),
            reason: reason.to_string(),
        })
    }

    /// A connection to `name` completed its handshake: reachable again if it was reported lost.
    pub(crate) fn link_back(&mut self, name: &str) -> Option<NodeEvent> {
        let member = self.table.get_mut(name)?;
        if !member.link_lost {
            return None;
        }
        member.link_lost = false;
        Some(NodeEvent::Reachable {
            node: name.to_string(),
        })
    }

    /// The address we last knew for `name`.
    pub(crate) fn addr_of(&self, name: &str) -> Option<SocketAddr> {
        self.table.get(name).and_then(|m| m.addr)
    }

    /// `name`'s status, if known.
    pub(crate) fn status(&self, name: &str) -> Option<MemberStatus> {
        self.table.get(name).map(|m| m.status)
    }

    /// The members up now, sorted.
    pub(crate) fn up_names(&self) -> Vec<String> {
        self.table
            .iter()
            .filter(|(_, m)| m.status == MemberStatus::Up)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Every member the membership protocol ever held up, with its status, sorted by name.
    pub(crate) fn list(&self) -> Vec<(String, MemberStatus, u64)> {
        self.table
            .iter()
            .filter(|(_, m)| m.seen_up)
            .map(|(n, m)| (n.clone(), m.status, m.incarnation))
            .collect()
    }

    /// Replaces our own published names; returns new duplicate-name reports.
    pub(crate) fn set_my_names(
        &mut self,
        names: impl IntoIterator<Item = String>,
    ) -> Vec<NodeEvent> {
        self.my_names = names.into_iter().collect();
        self.duplicates()
    }

    /// Replaces the names `node` at `incarnation` publishes; returns new duplicate-name
    /// reports. They count once the membership protocol holds that incarnation up.
    pub(crate) fn set_names(
        &mut self,
        node: &str,
        incarnation: u64,
        names: impl IntoIterator<Item = String>,
    ) -> Vec<NodeEvent> {
        if let Some(m) = self.table.get_mut(node) {
            m.names = names.into_iter().collect();
            m.names_of = incarnation;
        }
        self.duplicates()
    }

    /// Nodes (up, or this one) that publish `name`, sorted.
    pub(crate) fn whereis(&self, name: &str) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .table
            .iter()
            .filter(|(_, m)| {
                m.status == MemberStatus::Up
                    && m.names_of == m.incarnation
                    && m.names.contains(name)
            })
            .map(|(n, _)| n.clone())
            .collect();
        if self.my_names.contains(name) {
            nodes.push(self.me.clone());
        }
        nodes.sort();
        nodes
    }

    fn duplicates(&mut self) -> Vec<NodeEvent> {
        let mut owners: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for name in &self.my_names {
            owners.entry(name).or_default().push(self.me.clone());
        }
        for (node, m) in &self.table {
            if m.status == MemberStatus::Up && m.names_of == m.incarnation {
                for name in &m.names {
                    owners.entry(name).or_default().push(node.clone());
                }
            }
        }
        let mut events = Vec::new();
        for (name, mut nodes) in owners {
            if nodes.len() < 2 {
                continue;
            }
            nodes.sort();
            if self
                .reported_duplicates
                .insert((name.to_string(), nodes.clone()))
            {
                events.push(NodeEvent::DuplicateName {
                    name: name.to_string(),
                    nodes,
                });
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn up_down_up_reports_each_transition_once() {
        let mut m = Members::new("a");
        assert_eq!(m.up("b", 1, Some(addr(1))).len(), 1);
        assert!(m.up("b", 1, Some(addr(1))).is_empty());
        assert!(matches!(
            m.down("b", 1, "timeout"),
            Some(NodeEvent::Down { .. })
        ));
        assert!(m.down("b", 1, "timeout").is_none());
        assert_eq!(m.status("b"), Some(MemberStatus::Down));
        assert_eq!(
            m.up("b", 2, Some(addr(1))),
            vec![NodeEvent::Up {
                node: "b".into(),
                incarnation: 2
            }]
        );
    }

    #[test]
    fn a_new_incarnation_while_up_is_reported_as_up_again() {
        let mut m = Members::new("a");
        m.up("b", 1, None);
        assert_eq!(m.up("b", 7, None).len(), 1);
    }

    #[test]
    fn a_connected_peer_is_listed_only_once_membership_holds_it_up() {
        let mut m = Members::new("a");
        m.connected("b", 1, addr(2));
        assert!(m.list().is_empty());
        assert_eq!(m.addr_of("b"), Some(addr(2)));
        assert_eq!(m.status("b"), Some(MemberStatus::Down));
        m.up("b", 1, Some(addr(3)));
        assert_eq!(m.list(), vec![("b".to_string(), MemberStatus::Up, 1)]);
        assert_eq!(m.up_names(), vec!["b"]);
        // a later handshake does not move the address it said to dial
        m.connected("b", 1, addr(4));
        assert_eq!(m.addr_of("b"), Some(addr(3)));
        m.set_addr("b", 1, addr(5));
        assert_eq!(m.addr_of("b"), Some(addr(5)));
        // a down of an earlier incarnation changes nothing
        assert!(m.down("b", 0, "old").is_none());
        assert_eq!(m.status("b"), Some(MemberStatus::Up));
    }

    #[test]
    fn a_lost_link_to_an_up_member_is_reported_once_and_its_return_once() {
        let mut m = Members::new("a");
        assert!(m.link_lost("b", 1, "idle").is_none(), "unknown");
        m.up("b", 1, None);
        assert!(m.link_lost("b", 0, "idle").is_none(), "another incarnation");
        assert!(matches!(
            m.link_lost("b", 1, "idle"),
            Some(NodeEvent::Unreachable { .. })
        ));
        assert!(m.link_lost("b", 1, "idle").is_none());
        assert_eq!(m.status("b"), Some(MemberStatus::Up));
        assert_eq!(
            m.link_back("b"),
            Some(NodeEvent::Reachable { node: "b".into() })
        );
        assert!(m.link_back("b").is_none());
        // a member declared down has no link to lose
        m.down("b", 1, "gone");
        assert!(m.link_lost("b", 1, "idle").is_none());
    }

    #[test]
    fn a_name_on_two_nodes_is_reported_once() {
        let mut m = Members::new("a");
        m.up("b", 1, None);
        assert!(
            m.set_my_names(["x".to_string(), "y".to_string()])
                .is_empty()
        );
        let events = m.set_names("b", 1, ["y".to_string()]);
        assert_eq!(
            events,
            vec![NodeEvent::DuplicateName {
                name: "y".into(),
                nodes: vec!["a".into(), "b".into()]
            }]
        );
        assert!(m.set_names("b", 1, ["y".to_string()]).is_empty());
        assert_eq!(m.whereis("y"), vec!["a", "b"]);
        assert_eq!(m.whereis("x"), vec!["a"]);
        // names of a node that left disappear
        m.left("b", 1);
        assert_eq!(m.whereis("y"), vec!["a"]);
    }

    #[test]
    fn names_published_before_membership_holds_a_restart_up_are_kept() {
        let mut m = Members::new("a");
        m.up("b", 1, None);
        m.set_names("b", 1, ["old".to_string()]);
        // b restarted: its new connection sent its names before the protocol said so
        m.connected("b", 2, addr(2));
        m.set_names("b", 2, ["new".to_string()]);
        assert_eq!(m.whereis("new"), Vec::<String>::new());
        assert_eq!(m.whereis("old"), Vec::<String>::new());
        m.up("b", 2, None);
        assert_eq!(m.whereis("new"), vec!["b"]);
    }
}
