//! troupe's wire format: length-prefixed frames carrying versioned envelopes
//!
//! This crate is a pure codec. It has no networking code, no async and no clock: the runtime
//! hands it bytes and gets frames back, or hands it frames and gets bytes. That is what lets the
//! codec be property-tested and fuzzed on its own (the `fuzz/` package at the repository root
//! has a `frame_decode` target).
//!
//! # Guarantees
//!
//! - Decoding never panics and never allocates beyond the bytes present, whatever the input. A
//!   length prefix above the limit is rejected as soon as its 4 bytes arrive.
//! - [`FrameCodec::decode`] returns `Ok(None)` while a frame is incomplete (nothing consumed),
//!   `Ok(Some(_))` for exactly one whole frame, and `Err` when the stream is corrupt (the caller
//!   drops the peer).
//! - Each frame has one encoding: decoding a frame and encoding it again gives the same bytes.
//! - Payloads are rmp-serde MessagePack with structs as positional arrays; see `docs/wire.md` for
//!   how to evolve a message type without breaking nodes running the previous release.
//!
//! # Format
//!
//! All integers are big-endian. `str` and `bytes` are a varint length (minimal unsigned LEB128,
//! at most 5 bytes, fitting a `u32`) followed by that many bytes (UTF-8 for `str`).
//!
//! ```text
//! frame       = u32 body_len, body                    body_len <= max_frame_len
//! body        = u8 kind, fields                       no bytes after the last field
//! kind 1 Hello        u16 protocol, u64 incarnation, str cluster, str node
//! kind 2 Envelope     u16 protocol, u8 envelope_kind, [kind fields], u8 flags,
//!                     str target.node, str target.name,
//!                     [str sender.node, str sender.name]        if flags bit 0
//!                     str msg_type.name, u16 msg_type.version,
//!                     [str traceparent, str tracestate]         if flags bit 1
//!                     bytes payload
//!   envelope_kind 0 Cast       (no fields)
//!   envelope_kind 1 Call       u64 request_id, u32 timeout_ms
//!   envelope_kind 2 Reply Ok   u64 request_id
//!   envelope_kind 3 Reply Err  u64 request_id, u8 error_code, str detail
//! kind 3 LargeMarker  u64 stream_seq
//! kind 4 Control      u8 channel, bytes body
//! ```
//!
//! An envelope's sender and trace context are reserved: the codec reads and writes them, but
//! this version of the runtime never sets them and ignores them on receipt.
//!
//! # Layout
//!
//! - `frame.rs`: [`Frame`] and [`FrameCodec`], the length prefix, the size limit and the frame
//!   kinds.
//! - `envelope.rs`: [`Envelope`] and its parts ([`EnvelopeKind`], [`ActorPath`],
//!   [`MessageType`], [`TraceContext`], [`RemoteErrorCode`]) and the [`Hello`] handshake.
//! - `payload.rs`: [`encode_payload`], [`decode_payload`], [`decode_payload_compat`] and
//!   [`KnownTypes`].
//! - `error.rs`: [`WireError`].
//! - `buf.rs`: bounds-checked readers and size-first writers of the primitive field types.
//!
//! # Examples
//!
//! ```
//! use bytes::BytesMut;
//! use troupe_wire::{
//!     ActorPath, Envelope, EnvelopeKind, Frame, FrameCodec, MessageType, decode_payload,
//!     encode_payload,
//! };
//!
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Get {
//!     key: String,
//! }
//! let get_v1 = MessageType::new("cache.Get", 1);
//!
//! let envelope = Envelope {
//!     kind: EnvelopeKind::Call { request_id: 42, timeout_ms: 500 },
//!     target: ActorPath::new("app", "cache"),
//!     sender: Some(ActorPath::new("edge", "gateway")),
//!     msg_type: get_v1.clone(),
//!     trace: None,
//!     payload: encode_payload(&Get { key: "user:7".into() })?,
//! };
//!
//! let codec = FrameCodec::default();
//! let mut buf = BytesMut::new();
//! codec.encode(&Frame::Envelope(envelope.clone()), &mut buf)?;
//!
//! // The receiver: bytes arrive, frames come out.
//! let Some(Frame::Envelope(received)) = codec.decode(&mut buf)? else {
//!     panic!("expected one whole envelope");
//! };
//! assert_eq!(received, envelope);
//! assert!(buf.is_empty());
//!
//! let get: Get = decode_payload(&received.msg_type, &get_v1, &received.payload)?;
//! assert_eq!(get.key, "user:7");
//! # Ok::<(), troupe_wire::WireError>(())
//! ```

mod buf;
mod envelope;
mod error;
mod frame;
mod payload;

pub use envelope::{
    ActorPath, Envelope, EnvelopeKind, Hello, MAX_HELLO_ROLES, MessageType, PROTOCOL_VERSION,
    RemoteErrorCode, ReplyOutcome, TraceContext,
};
pub use error::WireError;
pub use frame::{DEFAULT_MAX_FRAME_LEN, Frame, FrameCodec};
pub use payload::{KnownTypes, decode_payload, decode_payload_compat, encode_payload};
