//! Envelopes (one message, call or reply between two actors) and the connection handshake
//!
//! # Format
//!
//! The envelope body follows the frame kind byte `0x02` (see [`crate::frame`]). Integers are
//! big-endian; `str` and `bytes` are a varint length (minimal unsigned LEB128, at most 5 bytes,
//! fitting a `u32`) followed by that many bytes, UTF-8 for `str`.
//!
//! ```text
//! u16    protocol               must equal PROTOCOL_VERSION
//! u8     envelope kind          0 Cast | 1 Call | 2 Reply Ok | 3 Reply Err
//!          Call:      u64 request_id, u32 timeout_ms
//!          Reply Ok:  u64 request_id
//!          Reply Err: u64 request_id, u8 error code, str detail
//! u8     flags                  bit 0: sender present, bit 1: trace present, others zero
//! str    target.node
//! str    target.name
//! [str   sender.node, str sender.name]      if flag bit 0
//! str    msg_type.name
//! u16    msg_type.version
//! [str   traceparent, str tracestate]       if flag bit 1
//! bytes  payload                            rmp-serde encoded message or reply
//! ```
//!
//! The handshake body follows the frame kind byte `0x01`:
//!
//! ```text
//! u16    protocol               must equal PROTOCOL_VERSION
//! u64    incarnation
//! u64    dial                   the dialer's count of its dials; 0 in the acceptor's answer
//! str    cluster
//! str    node
//! u8     role count             at most MAX_HELLO_ROLES
//! str    role                   that many times: roles the sender's certificate carries
//! ```
//!
//! The `sender` and `trace` fields are reserved: they are part of the format (encoded, decoded
//! and checked like any other field), but this version of the runtime never sets them and
//! ignores them when a peer does.
//!
//! The protocol field comes first in both, so a peer of another protocol version is always
//! reported as [`WireError::ProtocolVersion`], whatever the rest of its frame looks like.

use std::fmt;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use crate::WireError;
use crate::buf::{Reader, len_prefixed_len, put_len_prefixed};

/// Version of the frame and envelope layout described in this crate
///
/// Written into every [`Hello`] and [`Envelope`]; a frame carrying another version is rejected
/// with [`WireError::ProtocolVersion`].
pub const PROTOCOL_VERSION: u16 = 4;

/// The most roles a [`Hello`] may claim; a hello with more does not decode
pub const MAX_HELLO_ROLES: usize = 16;

/// Stable identity of a message type: its name and version
///
/// The name is the type's identity across nodes and releases (not its Rust path); the version
/// says which layout of the payload the sender wrote. See `docs/wire.md`, "Evolving a message
/// type".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MessageType {
    /// Stable name, e.g. `"cache.Get"`.
    pub name: String,
    /// Layout version of the payload.
    pub version: u16,
}

impl MessageType {
    /// Creates a message type identity from a name and version
    pub fn new(name: impl Into<String>, version: u16) -> Self {
        Self {
            name: name.into(),
            version,
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} v{}", self.name, self.version)
    }
}

/// An actor's address on the wire: the node it runs on and its registered name
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ActorPath {
    /// Node name, as in the node's certificate.
    pub node: String,
    /// Name the actor is registered under in that node's registry.
    pub name: String,
}

impl ActorPath {
    /// Creates an actor path from a node name and an actor name
    pub fn new(node: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ActorPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.node)
    }
}

/// What an envelope is: a one-way message, a request, or the answer to one
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvelopeKind {
    /// Fire-and-forget message; no reply is expected.
    Cast,
    /// Request expecting a [`Reply`](Self::Reply) with the same `request_id`.
    Call {
        /// Identifies the call among the caller node's pending calls.
        request_id: u64,
        /// How long the caller waits; the receiver may drop the work after it.
        timeout_ms: u32,
    },
    /// Answer to a [`Call`](Self::Call).
    Reply {
        /// The `request_id` of the call answered.
        request_id: u64,
        /// Whether the call succeeded.
        outcome: ReplyOutcome,
    },
}

/// How a call ended on the remote side
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// The call succeeded; the envelope's payload holds the reply.
    Ok,
    /// The call failed; the payload is empty or ignored.
    Err {
        /// Category of failure, for the caller's typed error.
        code: RemoteErrorCode,
        /// Human-readable detail for logs.
        detail: String,
    },
}

/// Why a remote call failed, as carried in a [`ReplyOutcome::Err`]
///
/// Encoded as one byte (the value in parentheses); a byte this node does not know decodes to
/// [`WireError::UnknownErrorCode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteErrorCode {
    /// No actor is registered under the target name (0).
    NotFound,
    /// The receiver could not decode the payload (1).
    Decode,
    /// The actor failed while handling the call (2).
    ActorFailed,
    /// The actor's mailbox is full (3).
    Overloaded,
    /// The message or reply exceeded a size limit (4).
    TooLarge,
    /// The receiver gave up on the call (5).
    Timeout,
    /// The receiver does not know the message type or version (6).
    UnknownType,
    /// Any other failure (7).
    Other,
    /// The receiver does not accept this message from the sending node: the target is not
    /// reachable from other nodes, or not from this one (8).
    Forbidden,
}

impl From<RemoteErrorCode> for u8 {
    fn from(code: RemoteErrorCode) -> Self {
        match code {
            RemoteErrorCode::NotFound => 0,
            RemoteErrorCode::Decode => 1,
            RemoteErrorCode::ActorFailed => 2,
            RemoteErrorCode::Overloaded => 3,
            RemoteErrorCode::TooLarge => 4,
            RemoteErrorCode::Timeout => 5,
            RemoteErrorCode::UnknownType => 6,
            RemoteErrorCode::Other => 7,
            RemoteErrorCode::Forbidden => 8,
        }
    }
}

impl TryFrom<u8> for RemoteErrorCode {
    type Error = WireError;

    /// Maps a wire byte back to its code
    ///
    /// # Errors
    ///
    /// [`WireError::UnknownErrorCode`] for a byte no code is encoded as.
    fn try_from(byte: u8) -> Result<Self, WireError> {
        Ok(match byte {
            0 => Self::NotFound,
            1 => Self::Decode,
            2 => Self::ActorFailed,
            3 => Self::Overloaded,
            4 => Self::TooLarge,
            5 => Self::Timeout,
            6 => Self::UnknownType,
            7 => Self::Other,
            8 => Self::Forbidden,
            other => return Err(WireError::UnknownErrorCode(other)),
        })
    }
}

/// W3C trace context that a message may carry, so that a request's span can continue on the
/// receiver
///
/// Reserved in the format: the codec encodes and decodes it, but this version of the runtime
/// never sets it and ignores it when it arrives (the observability work will fill it).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TraceContext {
    /// The `traceparent` header value.
    pub traceparent: String,
    /// The `tracestate` header value; empty when there is none.
    pub tracestate: String,
}

/// One message between two actors, with its routing, type and trace metadata
///
/// The wire protocol version is not a field: the encoder always writes
/// [`PROTOCOL_VERSION`] and the decoder rejects any other.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// Cast, call or reply.
    pub kind: EnvelopeKind,
    /// The receiving actor.
    pub target: ActorPath,
    /// The sending actor, if the sender is one.
    ///
    /// Reserved in the format: the codec encodes and decodes it, but this version of the
    /// runtime always sends `None` and ignores it on receipt. A call's reply does not depend
    /// on it: it goes back to the connection the call came in on, matched by `request_id`.
    pub sender: Option<ActorPath>,
    /// Identity of the payload's type.
    pub msg_type: MessageType,
    /// Trace context of the sender's span, if any.
    ///
    /// Reserved in the format: the codec encodes and decodes it, but this version of the
    /// runtime always sends `None` and ignores it on receipt.
    pub trace: Option<TraceContext>,
    /// rmp-serde encoded message or reply; on decode, a zero-copy slice of the received frame.
    pub payload: Bytes,
}

/// The connection handshake: the first frame each side sends
///
/// Decoding rejects a `protocol` other than [`PROTOCOL_VERSION`] with
/// [`WireError::ProtocolVersion`], so a decoded `Hello` always speaks this node's protocol.
/// Checking `cluster` and `node` (against the peer's certificate) is the runtime's job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Name of the cluster the sender belongs to.
    pub cluster: String,
    /// The sender's node name.
    pub node: String,
    /// The sender's wire protocol version.
    pub protocol: u16,
    /// Distinguishes restarts of the same node name (e.g. start time or a random number).
    pub incarnation: u64,
    /// Which of the dialer's connection attempts this is (it counts them from 1); 0 in the
    /// acceptor's answer. Of two connections one node dialed to another, both ends keep the
    /// higher, so they agree without talking.
    pub dial: u64,
    /// The roles the sender claims (at most [`MAX_HELLO_ROLES`]): each must be in its
    /// certificate, which the receiver checks.
    pub roles: Vec<String>,
}

impl Hello {
    /// Creates a handshake for this node speaking [`PROTOCOL_VERSION`]
    pub fn new(cluster: impl Into<String>, node: impl Into<String>, incarnation: u64) -> Self {
        Self {
            cluster: cluster.into(),
            node: node.into(),
            protocol: PROTOCOL_VERSION,
            incarnation,
            dial: 0,
            roles: Vec::new(),
        }
    }

    /// This handshake, sent as dial number `dial` (see [`Hello::dial`])
    #[must_use]
    pub fn dialing(mut self, dial: u64) -> Self {
        self.dial = dial;
        self
    }

    /// This handshake, claiming `roles` (see [`Hello::roles`])
    #[must_use]
    pub fn with_roles(mut self, roles: Vec<String>) -> Self {
        self.roles = roles;
        self
    }

    pub(crate) fn body_len(&self) -> usize {
        (2 + 8 + 8 + 1usize)
            .saturating_add(len_prefixed_len(self.cluster.len()))
            .saturating_add(len_prefixed_len(self.node.len()))
            .saturating_add(
                self.roles
                    .iter()
                    .map(|r| len_prefixed_len(r.len()))
                    .fold(0usize, usize::saturating_add),
            )
    }

    pub(crate) fn write(&self, dst: &mut BytesMut) {
        dst.put_u16(self.protocol);
        dst.put_u64(self.incarnation);
        dst.put_u64(self.dial);
        put_len_prefixed(dst, self.cluster.as_bytes());
        put_len_prefixed(dst, self.node.as_bytes());
        // the encoder refuses more (see `Frame::encode`), so the count fits
        dst.put_u8(u8::try_from(self.roles.len()).unwrap_or(u8::MAX));
        for role in &self.roles {
            put_len_prefixed(dst, role.as_bytes());
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let protocol = read_protocol(r)?;
        let incarnation = r.u64("hello incarnation")?;
        let dial = r.u64("hello dial")?;
        let cluster = r.string("hello cluster")?;
        let node = r.string("hello node")?;
        let count = usize::from(r.u8("hello role count")?);
        if count > MAX_HELLO_ROLES {
            return Err(WireError::Malformed {
                what: "hello role count",
            });
        }
        let roles = (0..count)
            .map(|_| r.string("hello role"))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            cluster,
            node,
            protocol,
            incarnation,
            dial,
            roles,
        })
    }
}

const KIND_CAST: u8 = 0;
const KIND_CALL: u8 = 1;
const KIND_REPLY_OK: u8 = 2;
const KIND_REPLY_ERR: u8 = 3;

const FLAG_SENDER: u8 = 0b01;
const FLAG_TRACE: u8 = 0b10;

fn read_protocol(r: &mut Reader<'_>) -> Result<u16, WireError> {
    let got = r.u16("protocol version")?;
    if got != PROTOCOL_VERSION {
        return Err(WireError::ProtocolVersion {
            got,
            supported: PROTOCOL_VERSION,
        });
    }
    Ok(got)
}

fn path_len(path: &ActorPath) -> usize {
    len_prefixed_len(path.node.len()).saturating_add(len_prefixed_len(path.name.len()))
}

fn put_path(dst: &mut BytesMut, path: &ActorPath) {
    put_len_prefixed(dst, path.node.as_bytes());
    put_len_prefixed(dst, path.name.as_bytes());
}

fn read_path(
    r: &mut Reader<'_>,
    node: &'static str,
    name: &'static str,
) -> Result<ActorPath, WireError> {
    let node = r.string(node)?;
    let name = r.string(name)?;
    Ok(ActorPath { node, name })
}

impl Envelope {
    pub(crate) fn body_len(&self) -> usize {
        let kind = match &self.kind {
            EnvelopeKind::Cast => 0,
            EnvelopeKind::Call { .. } => 8 + 4,
            EnvelopeKind::Reply {
                outcome: ReplyOutcome::Ok,
                ..
            } => 8,
            EnvelopeKind::Reply {
                outcome: ReplyOutcome::Err { detail, .. },
                ..
            } => (8 + 1usize).saturating_add(len_prefixed_len(detail.len())),
        };
        let sender = self.sender.as_ref().map_or(0, path_len);
        let trace = self.trace.as_ref().map_or(0, |t| {
            len_prefixed_len(t.traceparent.len())
                .saturating_add(len_prefixed_len(t.tracestate.len()))
        });
        // protocol + kind + flags + msg_type.version
        (2 + 1 + 1 + 2usize)
            .saturating_add(kind)
            .saturating_add(path_len(&self.target))
            .saturating_add(sender)
            .saturating_add(len_prefixed_len(self.msg_type.name.len()))
            .saturating_add(trace)
            .saturating_add(len_prefixed_len(self.payload.len()))
    }

    pub(crate) fn write(&self, dst: &mut BytesMut) {
        dst.put_u16(PROTOCOL_VERSION);
        match &self.kind {
            EnvelopeKind::Cast => dst.put_u8(KIND_CAST),
            EnvelopeKind::Call {
                request_id,
                timeout_ms,
            } => {
                dst.put_u8(KIND_CALL);
                dst.put_u64(*request_id);
                dst.put_u32(*timeout_ms);
            }
            EnvelopeKind::Reply {
                request_id,
                outcome: ReplyOutcome::Ok,
            } => {
                dst.put_u8(KIND_REPLY_OK);
                dst.put_u64(*request_id);
            }
            EnvelopeKind::Reply {
                request_id,
                outcome: ReplyOutcome::Err { code, detail },
            } => {
                dst.put_u8(KIND_REPLY_ERR);
                dst.put_u64(*request_id);
                dst.put_u8(u8::from(*code));
                put_len_prefixed(dst, detail.as_bytes());
            }
        }
        let mut flags = 0;
        if self.sender.is_some() {
            flags |= FLAG_SENDER;
        }
        if self.trace.is_some() {
            flags |= FLAG_TRACE;
        }
        dst.put_u8(flags);
        put_path(dst, &self.target);
        if let Some(sender) = &self.sender {
            put_path(dst, sender);
        }
        put_len_prefixed(dst, self.msg_type.name.as_bytes());
        dst.put_u16(self.msg_type.version);
        if let Some(trace) = &self.trace {
            put_len_prefixed(dst, trace.traceparent.as_bytes());
            put_len_prefixed(dst, trace.tracestate.as_bytes());
        }
        put_len_prefixed(dst, &self.payload);
    }

    /// Reads an envelope body; the returned envelope has an empty payload and the range says
    /// where in the body the payload lies, so the caller can slice it out without copying.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<(Self, Range<usize>), WireError> {
        read_protocol(r)?;
        let kind = match r.u8("envelope kind")? {
            KIND_CAST => EnvelopeKind::Cast,
            KIND_CALL => EnvelopeKind::Call {
                request_id: r.u64("call request id")?,
                timeout_ms: r.u32("call timeout")?,
            },
            KIND_REPLY_OK => EnvelopeKind::Reply {
                request_id: r.u64("reply request id")?,
                outcome: ReplyOutcome::Ok,
            },
            KIND_REPLY_ERR => {
                let request_id = r.u64("reply request id")?;
                let code = RemoteErrorCode::try_from(r.u8("reply error code")?)?;
                let detail = r.string("reply error detail")?;
                EnvelopeKind::Reply {
                    request_id,
                    outcome: ReplyOutcome::Err { code, detail },
                }
            }
            other => return Err(WireError::UnknownEnvelopeKind(other)),
        };
        let flags = r.u8("envelope flags")?;
        if flags & !(FLAG_SENDER | FLAG_TRACE) != 0 {
            return Err(WireError::Malformed {
                what: "envelope flags",
            });
        }
        let target = read_path(r, "target node", "target name")?;
        let sender = if flags & FLAG_SENDER != 0 {
            Some(read_path(r, "sender node", "sender name")?)
        } else {
            None
        };
        let msg_type = MessageType {
            name: r.string("message type name")?,
            version: r.u16("message type version")?,
        };
        let trace = if flags & FLAG_TRACE != 0 {
            Some(TraceContext {
                traceparent: r.string("traceparent")?,
                tracestate: r.string("tracestate")?,
            })
        } else {
            None
        };
        let payload = r.len_prefixed("payload")?;
        let end = r.position();
        let payload = end.saturating_sub(payload.len())..end;
        let envelope = Self {
            kind,
            target,
            sender,
            msg_type,
            trace,
            payload: Bytes::new(),
        };
        Ok((envelope, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_maps_to_its_byte_and_back() {
        let codes = [
            RemoteErrorCode::NotFound,
            RemoteErrorCode::Decode,
            RemoteErrorCode::ActorFailed,
            RemoteErrorCode::Overloaded,
            RemoteErrorCode::TooLarge,
            RemoteErrorCode::Timeout,
            RemoteErrorCode::UnknownType,
            RemoteErrorCode::Other,
            RemoteErrorCode::Forbidden,
        ];
        for (byte, code) in codes.into_iter().enumerate() {
            assert_eq!(usize::from(u8::from(code)), byte);
            assert_eq!(RemoteErrorCode::try_from(u8::from(code)), Ok(code));
        }
        for byte in 9..=u8::MAX {
            assert_eq!(
                RemoteErrorCode::try_from(byte),
                Err(WireError::UnknownErrorCode(byte))
            );
        }
    }

    #[test]
    fn display_names_paths_and_types() {
        assert_eq!(ActorPath::new("app", "cache").to_string(), "cache@app");
        assert_eq!(MessageType::new("cache.Get", 2).to_string(), "cache.Get v2");
    }
}
