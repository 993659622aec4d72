//! Who a member is to foca: a node name at one generation (one start of its process) and one
//! rejoin count, with the address it says it listens on riding along.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;

/// One member's identity in the membership protocol.
///
/// Two identities are the same member when their name, generation and bump are; the address is
/// a hint for dialling that rides along, and each node may hold another one for the same member
/// (a node bound to `0.0.0.0` is known by the IP its connections come from), so it takes no part
/// in equality.
#[derive(Clone, Debug)]
pub(crate) struct SwimId {
    /// The node's name: the one in its certificate.
    pub(crate) name: Arc<str>,
    /// The process's start (`NodeNet::incarnation`, sent in its `Hello`); larger is newer.
    pub(crate) generation: u64,
    /// How many times this process rejoined after the cluster declared it down.
    pub(crate) bump: u16,
    /// Where it says peers dial it.
    pub(crate) addr: SocketAddr,
}

impl SwimId {
    pub(crate) fn new(name: Arc<str>, generation: u64, addr: SocketAddr) -> Self {
        Self {
            name,
            generation,
            bump: 0,
            addr,
        }
    }

    /// Whether `self` is a later identity of the same name than `other`.
    fn newer_than(&self, other: &Self) -> bool {
        (self.generation, self.bump) > (other.generation, other.bump)
    }
}

impl PartialEq for SwimId {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.generation == other.generation && self.bump == other.bump
    }
}

impl Eq for SwimId {}

impl Hash for SwimId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.generation.hash(state);
        self.bump.hash(state);
    }
}

impl foca::Identity for SwimId {
    /// One member slot per node name: a restarted node (a later generation) replaces the old.
    type Addr = Arc<str>;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            bump: self.bump.checked_add(1)?,
            ..self.clone()
        })
    }

    fn addr(&self) -> Arc<str> {
        self.name.clone()
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.newer_than(adversary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn id(generation: u64, bump: u16, port: u16) -> SwimId {
        SwimId {
            name: Arc::from("b"),
            generation,
            bump,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    #[test]
    fn the_address_takes_no_part_in_equality() {
        assert_eq!(id(1, 0, 1), id(1, 0, 2));
        assert_ne!(id(1, 0, 1), id(1, 1, 1));
        assert_ne!(id(1, 0, 1), id(2, 0, 1));
    }

    #[test]
    fn a_later_generation_or_rejoin_wins_and_renewing_makes_one() {
        assert!(id(2, 0, 1).win_addr_conflict(&id(1, 9, 1)));
        assert!(id(1, 1, 1).win_addr_conflict(&id(1, 0, 1)));
        assert!(!id(1, 0, 1).win_addr_conflict(&id(1, 1, 1)));
        let renewed = id(1, 0, 1).renew().unwrap();
        assert!(renewed.win_addr_conflict(&id(1, 0, 1)));
        assert_eq!(id(1, u16::MAX, 1).renew(), None);
    }
}
