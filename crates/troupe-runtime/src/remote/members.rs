//! The membership table, as plain logic: who is in the cluster, at which address and
//! incarnation, whether they are up, which names they publish, and what changed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::NodeEvent;

/// What nodes tell each other about a member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MemberInfo {
    pub(crate) name: String,
    pub(crate) addr: SocketAddr,
    pub(crate) incarnation: u64,
}

/// A member's state as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberStatus {
    /// Connected.
    Up,
    /// The link failed; reconnection is being attempted.
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
    /// Whether a connection to it ever completed its handshake (else it is only hearsay).
    seen_up: bool,
}

/// The longest registered name a member may announce.
pub(crate) const MAX_NAME_LEN: usize = 1024;

/// Gossip that cannot be taken in: a malformed node name, or more members than allowed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooManyOrMalformed;

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

    /// A connection to `name` completed its handshake.
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
            seen_up: true,
        });
        member.seen_up = true;
        let restarted = member.incarnation != incarnation;
        if restarted {
            // a new incarnation publishes its names afresh
            member.names.clear();
        }
        member.incarnation = incarnation;
        if addr.is_some() {
            member.addr = addr;
        }
        let was = member.status;
        member.status = MemberStatus::Up;
        if was == MemberStatus::Up && !restarted {
            return Vec::new();
        }
        vec![NodeEvent::Up {
            node: name.to_string(),
            incarnation,
        }]
    }

    /// The link to `name` failed.
    pub(crate) fn down(&mut self, name: &str, reason: &str) -> Option<NodeEvent> {
        let member = self.table.get_mut(name)?;
        if member.status != MemberStatus::Up {
            return None;
        }
        member.status = MemberStatus::Down;
        Some(NodeEvent::Down {
            node: name.to_string(),
            reason: reason.to_string(),
        })
    }

    /// `name` left gracefully.
    pub(crate) fn left(&mut self, name: &str) -> Option<NodeEvent> {
        let member = self.table.get_mut(name)?;
        if member.status == MemberStatus::Left {
            return None;
        }
        member.status = MemberStatus::Left;
        member.names.clear();
        Some(NodeEvent::Left {
            node: name.to_string(),
        })
    }

    /// Merges a peer's view; returns the members worth dialing (unknown to us, or known but
    /// not up at an address we had not tried), and whether our view changed.
    ///
    /// At most `max_members` are kept: gossip naming more new members, or a malformed name, is
    /// refused whole (nothing of it is taken in).
    pub(crate) fn learn(
        &mut self,
        infos: &[MemberInfo],
        max_members: usize,
    ) -> Result<(Vec<(String, SocketAddr)>, bool), TooManyOrMalformed> {
        let mut new = BTreeSet::new();
        for info in infos {
            if troupe_identity::validate_node_name(&info.name).is_err() {
                return Err(TooManyOrMalformed);
            }
            if info.name != self.me && !self.table.contains_key(&info.name) {
                new.insert(info.name.as_str());
            }
        }
        if self.table.len() + new.len() > max_members {
            return Err(TooManyOrMalformed);
        }
        let mut dial = Vec::new();
        let mut changed = false;
        for info in infos {
            if info.name == self.me {
                continue;
            }
            match self.table.get_mut(&info.name) {
                None => {
                    self.table.insert(
                        info.name.clone(),
                        Member {
                            addr: Some(info.addr),
                            incarnation: info.incarnation,
                            status: MemberStatus::Down,
                            names: BTreeSet::new(),
                            seen_up: false,
                        },
                    );
                    dial.push((info.name.clone(), info.addr));
                    changed = true;
                }
                Some(member) => {
                    let newer = info.incarnation != member.incarnation;
                    if member.status == MemberStatus::Up {
                        // a member that dialed us tells us where it listens
                        if !newer && member.addr != Some(info.addr) {
                            member.addr = Some(info.addr);
                            changed = true;
                        }
                    } else if newer || member.addr != Some(info.addr) {
                        member.addr = Some(info.addr);
                        member.status = MemberStatus::Down;
                        dial.push((info.name.clone(), info.addr));
                        changed = true;
                    }
                }
            }
        }
        Ok((dial, changed))
    }

    /// Forgets `name` if no connection to it ever completed (it was only named in gossip);
    /// returns whether it was forgotten.
    pub(crate) fn forget_hearsay(&mut self, name: &str) -> bool {
        if self.table.get(name).is_some_and(|m| !m.seen_up) {
            self.table.remove(name);
            true
        } else {
            false
        }
    }

    /// What to tell peers: ourselves and every member that is up.
    pub(crate) fn gossip(&self, my_addr: SocketAddr, my_incarnation: u64) -> Vec<MemberInfo> {
        let mut infos = vec![MemberInfo {
            name: self.me.clone(),
            addr: my_addr,
            incarnation: my_incarnation,
        }];
        for (name, m) in &self.table {
            if let (MemberStatus::Up, Some(addr)) = (m.status, m.addr) {
                infos.push(MemberInfo {
                    name: name.clone(),
                    addr,
                    incarnation: m.incarnation,
                });
            }
        }
        infos
    }

    /// The address we last knew for `name`.
    pub(crate) fn addr_of(&self, name: &str) -> Option<SocketAddr> {
        self.table.get(name).and_then(|m| m.addr)
    }

    /// `name`'s status, if known.
    pub(crate) fn status(&self, name: &str) -> Option<MemberStatus> {
        self.table.get(name).map(|m| m.status)
    }

    /// Every known member with its status, sorted by name.
    pub(crate) fn list(&self) -> Vec<(String, MemberStatus, u64)> {
        self.table
            .iter()
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

    /// Replaces `node`'s published names; returns new duplicate-name reports.
    pub(crate) fn set_names(
        &mut self,
        node: &str,
        names: impl IntoIterator<Item = String>,
    ) -> Vec<NodeEvent> {
        if let Some(m) = self.table.get_mut(node) {
            m.names = names.into_iter().collect();
        }
        self.duplicates()
    }

    /// Nodes (up, or this one) that publish `name`, sorted.
    pub(crate) fn whereis(&self, name: &str) -> Vec<String> {
        let mut nodes: Vec<String> = self
            .table
            .iter()
            .filter(|(_, m)| m.status == MemberStatus::Up && m.names.contains(name))
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
            if m.status == MemberStatus::Up {
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
            m.down("b", "timeout"),
            Some(NodeEvent::Down { .. })
        ));
        assert!(m.down("b", "timeout").is_none());
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
    fn learning_returns_only_members_worth_dialing() {
        let mut m = Members::new("a");
        m.up("b", 1, Some(addr(2)));
        let infos = vec![
            MemberInfo {
                name: "a".into(),
                addr: addr(1),
                incarnation: 1,
            },
            MemberInfo {
                name: "b".into(),
                addr: addr(2),
                incarnation: 1,
            },
            MemberInfo {
                name: "c".into(),
                addr: addr(3),
                incarnation: 1,
            },
        ];
        assert_eq!(
            m.learn(&infos, 1024).unwrap(),
            (vec![("c".to_string(), addr(3))], true)
        );
        // c is known now; hearing of it again neither dials twice nor counts as news
        assert_eq!(m.learn(&infos, 1024).unwrap(), (vec![], false));
        // a restarted c (new incarnation) is worth dialing again
        let restarted = vec![MemberInfo {
            name: "c".into(),
            addr: addr(3),
            incarnation: 2,
        }];
        assert_eq!(
            m.learn(&restarted, 1024).unwrap().0,
            vec![("c".to_string(), addr(3))]
        );
        // a member that dialed us (no address known) tells us where it listens
        m.up("d", 1, None);
        let d = vec![MemberInfo {
            name: "d".into(),
            addr: addr(4),
            incarnation: 1,
        }];
        assert_eq!(m.learn(&d, 1024).unwrap(), (vec![], true));
        assert_eq!(m.addr_of("d"), Some(addr(4)));
    }

    #[test]
    fn gossip_lists_self_and_up_members() {
        let mut m = Members::new("a");
        m.up("b", 1, Some(addr(2)));
        m.up("c", 1, Some(addr(3)));
        m.down("c", "gone");
        let names: Vec<String> = m.gossip(addr(1), 9).into_iter().map(|i| i.name).collect();
        assert_eq!(names, vec!["a", "b"]);
    }

    #[test]
    fn a_name_on_two_nodes_is_reported_once() {
        let mut m = Members::new("a");
        m.up("b", 1, None);
        assert!(
            m.set_my_names(["x".to_string(), "y".to_string()])
                .is_empty()
        );
        let events = m.set_names("b", ["y".to_string()]);
        assert_eq!(
            events,
            vec![NodeEvent::DuplicateName {
                name: "y".into(),
                nodes: vec!["a".into(), "b".into()]
            }]
        );
        assert!(m.set_names("b", ["y".to_string()]).is_empty());
        assert_eq!(m.whereis("y"), vec!["a", "b"]);
        assert_eq!(m.whereis("x"), vec!["a"]);
        // names of a node that left disappear
        m.left("b");
        assert_eq!(m.whereis("y"), vec!["a"]);
    }
}
