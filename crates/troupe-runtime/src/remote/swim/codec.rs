//! The membership packets' bytes: foca's header and member updates in troupe's own layout
//! (`docs/wire.md`, "Membership datagrams"), decoded with every length checked and never a
//! panic on what a peer sent.
//!
//! ```text
//! identity  u8 name length (1..=63), name (a valid node name), u64 generation, u16 bump,
//!           u8 family (4 | 6), 4 or 16 bytes of IP, u16 port
//! header    identity src, u16 src incarnation, identity dst, u8 message kind, then
//!             Ping, Ack:                                       u8 probe number
//!             PingReq, IndirectPing, IndirectAck, ForwardedAck: identity, u8 probe number
//!             Announce, Feed, Gossip, Broadcast, TurnUndead:   nothing
//! update    identity, u16 incarnation, u8 state (0 alive, 1 suspect, 2 down)
//! packet    header, then (foca's part) an optional u16 count and that many updates
//! ```
//!
//! Integers are big-endian.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use bytes::{Buf, BufMut};
use foca::{Header, Member, Message, State};

use super::id::SwimId;

/// Why bytes are not a membership packet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CodecError {
    /// The bytes end in the middle of an item.
    #[error("truncated")]
    Truncated,
    /// A node name that is not one.
    #[error("bad node name")]
    BadName,
    /// An unknown message kind, member state or address family.
    #[error("unknown {0} {1}")]
    Unknown(&'static str, u8),
    /// Bytes left over, or a tail this runtime never sends (custom broadcasts).
    #[error("malformed packet")]
    Malformed,
    /// No room in the buffer for the item.
    #[error("no room")]
    NoRoom,
}

const ALIVE: u8 = 0;
const SUSPECT: u8 = 1;
const DOWN: u8 = 2;

/// The codec foca encodes and decodes with. Stateless apart from a scratch buffer.
#[derive(Default)]
pub(crate) struct SwimCodec {
    scratch: Vec<u8>,
}

fn need(buf: &impl Buf, n: usize) -> Result<(), CodecError> {
    if buf.remaining() < n {
        Err(CodecError::Truncated)
    } else {
        Ok(())
    }
}

fn get_u8(buf: &mut impl Buf) -> Result<u8, CodecError> {
    need(buf, 1)?;
    Ok(buf.get_u8())
}

fn get_u16(buf: &mut impl Buf) -> Result<u16, CodecError> {
    need(buf, 2)?;
    Ok(buf.get_u16())
}

fn get_u64(buf: &mut impl Buf) -> Result<u64, CodecError> {
    need(buf, 8)?;
    Ok(buf.get_u64())
}

pub(crate) fn decode_id(buf: &mut impl Buf) -> Result<SwimId, CodecError> {
    let len = usize::from(get_u8(buf)?);
    need(buf, len)?;
    let mut name = vec![0u8; len];
    buf.copy_to_slice(&mut name);
    let name = String::from_utf8(name).map_err(|_| CodecError::BadName)?;
    if troupe_identity::validate_node_name(&name).is_err() {
        return Err(CodecError::BadName);
    }
    let generation = get_u64(buf)?;
    let bump = get_u16(buf)?;
    let ip = match get_u8(buf)? {
        4 => {
            need(buf, 4)?;
            let mut octets = [0u8; 4];
            buf.copy_to_slice(&mut octets);
            IpAddr::V4(Ipv4Addr::from(octets))
        }
        6 => {
            need(buf, 16)?;
            let mut octets = [0u8; 16];
            buf.copy_to_slice(&mut octets);
            IpAddr::V6(Ipv6Addr::from(octets))
        }
        other => return Err(CodecError::Unknown("address family", other)),
    };
    let port = get_u16(buf)?;
    Ok(SwimId {
        name: Arc::from(name),
        generation,
        bump,
        addr: SocketAddr::new(ip, port),
    })
}

pub(crate) fn put_id(out: &mut Vec<u8>, id: &SwimId) {
    // names are valid node names (at most 63 bytes) wherever an identity is made
    let name = id.name.as_bytes();
    out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&name[..name.len().min(usize::from(u8::MAX))]);
    out.extend_from_slice(&id.generation.to_be_bytes());
    out.extend_from_slice(&id.bump.to_be_bytes());
    match id.addr.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&id.addr.port().to_be_bytes());
}

pub(crate) fn decode_header(buf: &mut impl Buf) -> Result<Header<SwimId>, CodecError> {
    let src = decode_id(buf)?;
    let src_incarnation = get_u16(buf)?;
    let dst = decode_id(buf)?;
    let message = match get_u8(buf)? {
        0 => Message::Ping(get_u8(buf)?),
        1 => Message::Ack(get_u8(buf)?),
        2 => Message::PingReq {
            target: decode_id(buf)?,
            probe_number: get_u8(buf)?,
        },
        3 => Message::IndirectPing {
            origin: decode_id(buf)?,
            probe_number: get_u8(buf)?,
        },
        4 => Message::IndirectAck {
            target: decode_id(buf)?,
            probe_number: get_u8(buf)?,
        },
        5 => Message::ForwardedAck {
            origin: decode_id(buf)?,
            probe_number: get_u8(buf)?,
        },
        6 => Message::Announce,
        7 => Message::Feed,
        8 => Message::Gossip,
        9 => Message::Broadcast,
        10 => Message::TurnUndead,
        other => return Err(CodecError::Unknown("message kind", other)),
    };
    Ok(Header {
        src,
        src_incarnation,
        dst,
        message,
    })
}

pub(crate) fn put_header(out: &mut Vec<u8>, header: &Header<SwimId>) {
    put_id(out, &header.src);
    out.extend_from_slice(&header.src_incarnation.to_be_bytes());
    put_id(out, &header.dst);
    match &header.message {
        Message::Ping(n) => out.extend_from_slice(&[0, *n]),
        Message::Ack(n) => out.extend_from_slice(&[1, *n]),
        Message::PingReq {
            target,
            probe_number,
        } => {
            out.push(2);
            put_id(out, target);
            out.push(*probe_number);
        }
        Message::IndirectPing {
            origin,
            probe_number,
        } => {
            out.push(3);
            put_id(out, origin);
            out.push(*probe_number);
        }
        Message::IndirectAck {
            target,
            probe_number,
        } => {
            out.push(4);
            put_id(out, target);
            out.push(*probe_number);
        }
        Message::ForwardedAck {
            origin,
            probe_number,
        } => {
            out.push(5);
            put_id(out, origin);
            out.push(*probe_number);
        }
        Message::Announce => out.push(6),
        Message::Feed => out.push(7),
        Message::Gossip => out.push(8),
        Message::Broadcast => out.push(9),
        Message::TurnUndead => out.push(10),
    }
}

pub(crate) fn decode_member(buf: &mut impl Buf) -> Result<Member<SwimId>, CodecError> {
    let id = decode_id(buf)?;
    let incarnation = get_u16(buf)?;
    let state = match get_u8(buf)? {
        ALIVE => State::Alive,
        SUSPECT => State::Suspect,
        DOWN => State::Down,
        other => return Err(CodecError::Unknown("member state", other)),
    };
    Ok(Member::new(id, incarnation, state))
}

pub(crate) fn put_member(out: &mut Vec<u8>, member: &Member<SwimId>) {
    put_id(out, member.id());
    out.extend_from_slice(&member.incarnation().to_be_bytes());
    out.push(match member.state() {
        State::Alive => ALIVE,
        State::Suspect => SUSPECT,
        State::Down => DOWN,
    });
}

/// A whole packet as a peer sent it: its header and the member updates it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Packet {
    pub(crate) header: Header<SwimId>,
    /// `None` when the packet has no update count at all (an `Announce`, say).
    pub(crate) updates: Option<Vec<Member<SwimId>>>,
}

/// The most updates one packet may claim: more than fit in the largest packet accepted.
const MAX_UPDATES: u16 = 128;

/// Decodes a packet the way foca reads one (`Foca::handle_data`): a header, then, unless
/// nothing follows, a `u16` count and that many updates. A tail after them (custom broadcasts,
/// which this runtime never sends) is refused.
pub(crate) fn decode_packet(mut data: &[u8]) -> Result<Packet, CodecError> {
    let header = decode_header(&mut data)?;
    let remaining = data.remaining();
    if remaining == 0 {
        return Ok(Packet {
            header,
            updates: None,
        });
    }
    if remaining == 1
        || matches!(
            header.message,
            Message::Announce | Message::Broadcast | Message::TurnUndead
        )
    {
        return Err(CodecError::Malformed);
    }
    let count = get_u16(&mut data)?;
    if count > MAX_UPDATES {
        return Err(CodecError::Malformed);
    }
    let mut updates = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        updates.push(decode_member(&mut data)?);
    }
    if data.has_remaining() {
        return Err(CodecError::Malformed);
    }
    Ok(Packet {
        header,
        updates: Some(updates),
    })
}

/// Encodes a packet in the layout [`decode_packet`] reads.
pub(crate) fn encode_packet(packet: &Packet) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    put_header(&mut out, &packet.header);
    if let Some(updates) = &packet.updates {
        let count = u16::try_from(updates.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for m in updates.iter().take(usize::from(count)) {
            put_member(&mut out, m);
        }
    }
    out
}

impl SwimCodec {
    /// Writes what `fill` puts in the scratch buffer into `buf` whole, or nothing (foca asks
    /// that a member that does not fit leave the buffer as it was).
    fn put(
        &mut self,
        mut buf: impl BufMut,
        fill: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), CodecError> {
        self.scratch.clear();
        fill(&mut self.scratch);
        if buf.remaining_mut() < self.scratch.len() {
            return Err(CodecError::NoRoom);
        }
        buf.put_slice(&self.scratch);
        Ok(())
    }
}

impl foca::Codec<SwimId> for SwimCodec {
    type Error = CodecError;

    fn encode_header(
        &mut self,
        header: &Header<SwimId>,
        buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        self.put(buf, |out| put_header(out, header))
    }

    fn decode_header(&mut self, mut buf: impl Buf) -> Result<Header<SwimId>, Self::Error> {
        decode_header(&mut buf)
    }

    fn encode_member(
        &mut self,
        member: &Member<SwimId>,
        buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        self.put(buf, |out| put_member(out, member))
    }

    fn decode_member(&mut self, mut buf: impl Buf) -> Result<Member<SwimId>, Self::Error> {
        decode_member(&mut buf)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn id(name: &str, generation: u64) -> SwimId {
        SwimId::new(
            Arc::from(name),
            generation,
            SocketAddr::from(([10, 0, 0, 1], 4433)),
        )
    }

    fn every_message() -> Vec<Message<SwimId>> {
        vec![
            Message::Ping(1),
            Message::Ack(2),
            Message::PingReq {
                target: id("c", 3),
                probe_number: 3,
            },
            Message::IndirectPing {
                origin: id("c", 3),
                probe_number: 4,
            },
            Message::IndirectAck {
                target: id("c", 3),
                probe_number: 5,
            },
            Message::ForwardedAck {
                origin: id("c", 3),
                probe_number: 6,
            },
            Message::Announce,
            Message::Feed,
            Message::Gossip,
            Message::Broadcast,
            Message::TurnUndead,
        ]
    }

    #[test]
    fn every_message_round_trips_and_every_truncation_is_refused() {
        for message in every_message() {
            let updates = match message {
                Message::Announce | Message::Broadcast | Message::TurnUndead => None,
                _ => Some(vec![
                    Member::new(id("d", 9), 2, State::Suspect),
                    Member::new(
                        SwimId {
                            addr: "[::1]:7".parse().unwrap(),
                            ..id("e", 1)
                        },
                        0,
                        State::Down,
                    ),
                ]),
            };
            let packet = Packet {
                header: Header {
                    src: id("a", 1),
                    src_incarnation: 7,
                    dst: id("b", 2),
                    message,
                },
                updates,
            };
            let bytes = encode_packet(&packet);
            assert_eq!(decode_packet(&bytes), Ok(packet.clone()));
            for cut in 0..bytes.len() {
                let shorter = &bytes[..cut];
                // a packet cut right after its header is a valid packet with no updates
                if let Ok(p) = decode_packet(shorter) {
                    assert_eq!(p.updates, None, "{cut}");
                    assert_eq!(p.header, packet.header);
                }
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode_packet(&longer).is_err());
        }
    }

    #[test]
    fn an_identity_has_the_documented_bytes() {
        let mut out = Vec::new();
        put_id(
            &mut out,
            &SwimId {
                bump: 2,
                ..id("ab", 0x0102_0304_0506_0708)
            },
        );
        #[rustfmt::skip]
        let expected: &[u8] = &[
            2, b'a', b'b',
            1, 2, 3, 4, 5, 6, 7, 8,
            0, 2,
            4, 10, 0, 0, 1,
            0x11, 0x51,
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn bad_names_families_kinds_and_states_are_refused() {
        let mut out = Vec::new();
        put_id(&mut out, &id("Bad_Name", 1));
        assert_eq!(decode_id(&mut &out[..]), Err(CodecError::BadName));
        let mut out = Vec::new();
        put_id(&mut out, &id("ok", 1));
        let family = 1 + 2 + 8 + 2;
        out[family] = 5;
        assert_eq!(
            decode_id(&mut &out[..]),
            Err(CodecError::Unknown("address family", 5))
        );
        let mut header = Vec::new();
        put_header(
            &mut header,
            &Header {
                src: id("a", 1),
                src_incarnation: 0,
                dst: id("b", 1),
                message: Message::Gossip,
            },
        );
        let kind = header.len() - 1;
        header[kind] = 11;
        assert!(matches!(
            decode_packet(&header),
            Err(CodecError::Unknown("message kind", 11))
        ));
        let mut member = Vec::new();
        put_member(&mut member, &Member::alive(id("a", 1)));
        let state = member.len() - 1;
        member[state] = 3;
        assert!(decode_member(&mut &member[..]).is_err());
    }

    #[test]
    fn a_member_that_does_not_fit_leaves_the_buffer_untouched() {
        use foca::Codec;
        let mut codec = SwimCodec::default();
        let mut buf = Vec::new();
        let mut limited = (&mut buf).limit(10);
        assert_eq!(
            codec.encode_member(&Member::alive(id("abc", 1)), &mut limited),
            Err(CodecError::NoRoom)
        );
        assert!(buf.is_empty());
    }
}
