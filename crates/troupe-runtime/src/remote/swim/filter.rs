//! The identity filter in front of foca, as plain logic: a membership packet from a peer is
//! taken in only as far as what it says is vouched for by certificate-checked connections.
//!
//! foca trusts a packet's `src` and applies every member update it carries. troupe does not:
//!
//! 1. The sender must be the peer the packet came from: its name is the one in the peer's
//!    certificate, its generation the one in the peer's `Hello`.
//! 2. Identities a message names (whom to probe, whom an ack is for) must be vouched for:
//!    a name this node authenticated itself, at the generation it authenticated, at most one
//!    rejoin past the latest it heard from the node itself.
//! 3. A member update about the sender is kept at the sender's generation; about this node at
//!    this node's; about a third node only if vouched for as in 2. Every other update is taken
//!    out of the packet: an unknown name, or a later generation of a known one, becomes a
//!    *dial hint* (name and address) that the node may dial with the name expected, so the
//!    certificate check decides; nothing of it enters the view.
//!
//! So no identity and no address enters the membership view unless that node presented it
//! over a certificate-checked connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use foca::Message;

use super::codec::{CodecError, decode_packet, encode_packet};
use super::id::SwimId;

/// A peer as its connection authenticated it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sender {
    /// The name in its certificate (and its `Hello`).
    pub(crate) name: Arc<str>,
    /// The generation in its `Hello`.
    pub(crate) generation: u64,
    /// Where its datagrams come from.
    pub(crate) remote: SocketAddr,
}

/// What this node saw of one name over its own connections.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Known {
    generation: u64,
    /// The latest rejoin count the node itself used as a sender.
    bump: u16,
    /// The best address to dial it at.
    addr: SocketAddr,
}

/// Why a packet was dropped whole.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Dropped {
    /// Not a membership packet.
    #[error("malformed: {0}")]
    Malformed(#[from] CodecError),
    /// Its `src` is not the peer it came from.
    #[error("sent as {claimed} by {sender}")]
    Spoofed {
        /// Who the packet says sent it.
        claimed: String,
        /// Who did.
        sender: String,
    },
    /// Addressed to another node.
    #[error("addressed to {0}")]
    Misaddressed(String),
    /// It names an identity this node cannot vouch for.
    #[error("names {0}, which this node cannot vouch for")]
    Unvouched(String),
}

/// A packet let through, rewritten.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Passed {
    /// The packet to hand foca.
    pub(crate) packet: Vec<u8>,
    /// Updates taken out.
    pub(crate) stripped: usize,
    /// Nodes named that this node may dial to learn of them (by name, so the certificate
    /// check decides).
    pub(crate) hints: Vec<(Arc<str>, SocketAddr)>,
}

/// The identities this node vouches for, and the rules.
#[derive(Debug)]
pub(crate) struct Filter {
    me: Arc<str>,
    my_generation: u64,
    known: BTreeMap<Arc<str>, Known>,
}

/// An address that says "every address" takes the IP the peer's datagrams come from.
fn dialable(mut addr: SocketAddr, seen_from: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(seen_from.ip());
    }
    addr
}

impl Filter {
    pub(crate) fn new(me: Arc<str>, my_generation: u64) -> Self {
        Self {
            me,
            my_generation,
            known: BTreeMap::new(),
        }
    }

    /// A connection to `name` at `generation` passed the certificate and `Hello` checks;
    /// `addr` is where to dial it. Whether it is news (a name or generation not seen before).
    pub(crate) fn authenticated(
        &mut self,
        name: &Arc<str>,
        generation: u64,
        addr: SocketAddr,
    ) -> bool {
        match self.known.get_mut(name) {
            Some(k) if k.generation > generation => false,
            Some(k) if k.generation == generation => {
                if !k.addr.ip().is_unspecified() || addr.ip().is_unspecified() {
                    return false;
                }
                k.addr = addr;
                false
            }
            _ => {
                self.known.insert(
                    name.clone(),
                    Known {
                        generation,
                        bump: 0,
                        addr,
                    },
                );
                true
            }
        }
    }

    /// The address this node knows `name` at, if it authenticated it.
    pub(crate) fn addr_of(&self, name: &str) -> Option<SocketAddr> {
        self.known.get(name).map(|k| k.addr)
    }

    /// Names authenticated so far.
    pub(crate) fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether `id` is vouched for, and if so the identity with its address made dialable.
    fn vouch(&self, id: &SwimId) -> Option<SwimId> {
        if *id.name == *self.me {
            return (id.generation == self.my_generation).then(|| id.clone());
        }
        let k = self.known.get(&id.name)?;
        if id.generation != k.generation || id.bump > k.bump.saturating_add(1) {
            return None;
        }
        let mut id = id.clone();
        if id.addr.ip().is_unspecified() {
            id.addr = k.addr;
        }
        Some(id)
    }

    /// Checks a packet `from` a peer; what of it to hand foca, or why none of it.
    pub(crate) fn check(&mut self, from: &Sender, data: &[u8]) -> Result<Passed, Dropped> {
        let mut packet = decode_packet(data)?;
        let header = &mut packet.header;
        if header.src.name != from.name || header.src.generation != from.generation {
            return Err(Dropped::Spoofed {
                claimed: format!("{}@{}", header.src.name, header.src.generation),
                sender: format!("{}@{}", from.name, from.generation),
            });
        }
        if header.dst.name != self.me {
            return Err(Dropped::Misaddressed(header.dst.name.to_string()));
        }
        header.src.addr = dialable(header.src.addr, from.remote);
        // the sender's own word about where it listens and how often it rejoined
        let k = self
            .known
            .entry(from.name.clone())
            .or_insert_with(|| Known {
                generation: from.generation,
                bump: 0,
                addr: header.src.addr,
            });
        if k.generation < from.generation {
            *k = Known {
                generation: from.generation,
                bump: 0,
                addr: header.src.addr,
            };
        }
        if k.generation == from.generation {
            k.bump = k.bump.max(header.src.bump);
            k.addr = header.src.addr;
        }
        match &mut header.message {
            Message::PingReq { target: id, .. }
            | Message::IndirectPing { origin: id, .. }
            | Message::IndirectAck { target: id, .. }
            | Message::ForwardedAck { origin: id, .. } => {
                *id = self
                    .vouch(id)
                    .ok_or_else(|| Dropped::Unvouched(format!("{}@{}", id.name, id.generation)))?;
            }
            _ => {}
        }
        let mut stripped = 0;
        let mut hints: Vec<(Arc<str>, SocketAddr)> = Vec::new();
        if let Some(updates) = packet.updates.take() {
            let mut kept = Vec::with_capacity(updates.len());
            for update in updates {
                let id = update.id();
                let keep = if id.name == from.name {
                    (id.generation == from.generation).then(|| {
                        let mut id = id.clone();
                        id.addr = dialable(id.addr, from.remote);
                        id
                    })
                } else {
                    self.vouch(id)
                };
                match keep {
                    Some(id) => {
                        kept.push(foca::Member::new(id, update.incarnation(), update.state()))
                    }
                    None => {
                        stripped += 1;
                        let later = self
                            .known
                            .get(&id.name)
                            .is_none_or(|k| id.generation > k.generation);
                        if later
                            && *id.name != *self.me
                            && update.state() != foca::State::Down
                            && !id.addr.ip().is_unspecified()
                            && !hints.iter().any(|(n, _)| *n == id.name)
                        {
                            hints.push((id.name.clone(), id.addr));
                        }
                    }
                }
            }
            packet.updates = Some(kept);
        }
        Ok(Passed {
            packet: encode_packet(&packet),
            stripped,
            hints,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::swim::codec::Packet;

    fn decode(p: &Passed) -> Packet {
        decode_packet(&p.packet).unwrap()
    }
    use crate::remote::swim::codec::tests::id;
    use foca::{Header, Member, State};

    fn sender(name: &str, generation: u64) -> Sender {
        Sender {
            name: Arc::from(name),
            generation,
            remote: SocketAddr::from(([192, 168, 1, 7], 4433)),
        }
    }

    fn packet(src: SwimId, message: Message<SwimId>, updates: Vec<Member<SwimId>>) -> Vec<u8> {
        encode_packet(&Packet {
            header: Header {
                src,
                src_incarnation: 0,
                dst: id("a", 1),
                message,
            },
            updates: Some(updates),
        })
    }

    /// Node `a` (generation 1) that authenticated `b` and `c` at generation 5.
    fn filter() -> Filter {
        let mut f = Filter::new(Arc::from("a"), 1);
        for name in ["b", "c"] {
            assert!(f.authenticated(&Arc::from(name), 5, "10.0.0.9:4433".parse().unwrap()));
        }
        f
    }

    #[test]
    fn a_packet_sent_as_another_node_or_generation_is_dropped_whole() {
        let mut f = filter();
        for src in [id("c", 5), id("b", 4), id("b", 6)] {
            assert!(matches!(
                f.check(&sender("b", 5), &packet(src, Message::Gossip, vec![])),
                Err(Dropped::Spoofed { .. })
            ));
        }
        assert!(
            f.check(
                &sender("b", 5),
                &packet(id("b", 5), Message::Gossip, vec![])
            )
            .is_ok()
        );
        assert!(matches!(
            f.check(&sender("b", 5), b"\x00garbage"),
            Err(Dropped::Malformed(_))
        ));
    }

    #[test]
    fn updates_about_unvouched_identities_are_stripped_and_unknown_names_become_hints() {
        let mut f = filter();
        let fake = SwimId {
            addr: "10.9.9.9:1".parse().unwrap(),
            ..id("fake", 3)
        };
        let updates = vec![
            Member::alive(id("c", 5)), // vouched
            Member::alive(id("c", 4)), // an older generation: stale
            Member::alive(id("c", 6)), // a later one: a hint
            Member::alive(SwimId {
                bump: 2,
                ..id("c", 5)
            }), // two rejoins ahead
            Member::alive(fake.clone()), // unknown: a hint
            Member::new(id("b", 5), 3, State::Suspect), // the sender about itself
            Member::alive(id("b", 4)), // the sender at another generation
            Member::new(id("a", 1), 0, State::Suspect), // about us
            Member::alive(id("a", 2)), // about another generation of us
        ];
        let passed = f
            .check(
                &sender("b", 5),
                &packet(id("b", 5), Message::Gossip, updates),
            )
            .unwrap();
        let kept: Vec<(String, u64)> = decode(&passed)
            .updates
            .unwrap()
            .iter()
            .map(|m| (m.id().name.to_string(), m.id().generation))
            .collect();
        assert_eq!(kept, [("c".into(), 5), ("b".into(), 5), ("a".into(), 1)]);
        assert_eq!(passed.stripped, 6);
        let hints: Vec<&str> = passed.hints.iter().map(|(n, _)| &**n).collect();
        assert_eq!(hints, ["c", "fake"]);
        assert_eq!(passed.hints[1].1, fake.addr);
    }

    #[test]
    fn a_probe_through_an_unvouched_identity_is_dropped() {
        let mut f = filter();
        let ok = Message::PingReq {
            target: id("c", 5),
            probe_number: 1,
        };
        assert!(
            f.check(&sender("b", 5), &packet(id("b", 5), ok, vec![]))
                .is_ok()
        );
        for target in [
            id("x", 5),
            id("c", 4),
            SwimId {
                bump: 2,
                ..id("c", 5)
            },
        ] {
            let m = Message::IndirectPing {
                origin: target,
                probe_number: 1,
            };
            assert!(matches!(
                f.check(&sender("b", 5), &packet(id("b", 5), m, vec![])),
                Err(Dropped::Unvouched(_))
            ));
        }
    }

    #[test]
    fn the_senders_rejoins_vouch_one_more_and_an_unspecified_ip_is_taken_from_the_link() {
        let mut f = filter();
        let bound_everywhere = SwimId {
            bump: 3,
            addr: "0.0.0.0:4433".parse().unwrap(),
            ..id("b", 5)
        };
        let passed = f
            .check(
                &sender("b", 5),
                &packet(bound_everywhere, Message::Gossip, vec![]),
            )
            .unwrap();
        assert_eq!(
            decode(&passed).header.src.addr,
            "192.168.1.7:4433".parse().unwrap()
        );
        assert_eq!(f.addr_of("b"), Some("192.168.1.7:4433".parse().unwrap()));
        // b said it is at bump 3, so c may speak of b's bump 4, not 5
        for (bump, kept) in [(4, 1), (5, 0)] {
            let about_b = vec![Member::alive(SwimId { bump, ..id("b", 5) })];
            let passed = f
                .check(
                    &sender("c", 5),
                    &packet(id("c", 5), Message::Gossip, about_b),
                )
                .unwrap();
            assert_eq!(decode(&passed).updates.unwrap().len(), kept, "{bump}");
        }
    }

    #[test]
    fn a_later_generation_authenticated_replaces_the_earlier_and_never_the_reverse() {
        let mut f = filter();
        let addr: SocketAddr = "10.0.0.9:4433".parse().unwrap();
        assert!(!f.authenticated(&Arc::from("b"), 5, addr));
        assert!(!f.authenticated(&Arc::from("b"), 4, addr));
        assert!(f.authenticated(&Arc::from("b"), 6, addr));
        let stale = vec![Member::alive(id("b", 5))];
        let passed = f
            .check(&sender("c", 5), &packet(id("c", 5), Message::Gossip, stale))
            .unwrap();
        assert_eq!(passed.stripped, 1);
        assert!(passed.hints.is_empty());
        assert_eq!(f.len(), 2);
    }
}
