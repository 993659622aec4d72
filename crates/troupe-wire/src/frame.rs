//! Frames, the unit on a stream, and the codec that delimits them
//!
//! # Format
//!
//! ```text
//! u32    body length            big-endian, at most the codec's max_frame_len
//! u8     frame kind             1 Hello | 2 Envelope | 3 LargeMarker | 4 Control
//! ...    fields of that kind
//!          Hello:        see crate::envelope
//!          Envelope:     see crate::envelope
//!          LargeMarker:  u64 stream_seq
//!          Control:      u8 channel, bytes body (varint length + bytes)
//! ```
//!
//! A body must be exactly as long as its fields: a field running past the declared length is
//! [`WireError::Truncated`], bytes left after the last field are [`WireError::TrailingBytes`].
//! Every byte string carries its own length, so no strict prefix of a valid body is itself valid.

use std::ops::Range;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::WireError;
use crate::buf::{Reader, len_prefixed_len, put_len_prefixed};
use crate::envelope::{Envelope, Hello};

/// Default limit on a frame body: 8 MiB
pub const DEFAULT_MAX_FRAME_LEN: usize = 8 * 1024 * 1024;

/// Bytes of the length prefix in front of every body.
const PREFIX_LEN: usize = 4;

const KIND_HELLO: u8 = 1;
const KIND_ENVELOPE: u8 = 2;
const KIND_LARGE_MARKER: u8 = 3;
const KIND_CONTROL: u8 = 4;

/// One unit on a stream: a handshake, an envelope, a large-message marker or control traffic
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Frame {
    /// Connection handshake, the first frame on a connection.
    Hello(Hello),
    /// A message, call or reply.
    Envelope(Envelope),
    /// Marks that the next message for this lane travels on its own stream `stream_seq` (for
    /// messages too large for a lane).
    LargeMarker {
        /// Sequence number of the dedicated stream, as the runtime numbers them.
        stream_seq: u64,
    },
    /// Opaque control payload (gossip, node-left, etc.); `channel` says which subsystem.
    Control {
        /// Subsystem the body is for.
        channel: u8,
        /// Subsystem-defined bytes; on decode, a zero-copy slice of the received frame.
        body: Bytes,
    },
}

impl Frame {
    /// Bytes [`FrameCodec::encode`] appends for this frame, length prefix included
    ///
    /// Lets a sender decide, before encoding, whether a message belongs on a lane or on a stream
    /// of its own. Saturates at `usize::MAX` rather than overflowing.
    pub fn encoded_len(&self) -> usize {
        self.body_len().saturating_add(PREFIX_LEN)
    }

    fn body_len(&self) -> usize {
        let fields = match self {
            Self::Hello(hello) => hello.body_len(),
            Self::Envelope(envelope) => envelope.body_len(),
            Self::LargeMarker { .. } => 8,
            Self::Control { body, .. } => len_prefixed_len(body.len()).saturating_add(1),
        };
        fields.saturating_add(1)
    }

    fn write_body(&self, dst: &mut BytesMut) {
        match self {
            Self::Hello(hello) => {
                dst.put_u8(KIND_HELLO);
                hello.write(dst);
            }
            Self::Envelope(envelope) => {
                dst.put_u8(KIND_ENVELOPE);
                envelope.write(dst);
            }
            Self::LargeMarker { stream_seq } => {
                dst.put_u8(KIND_LARGE_MARKER);
                dst.put_u64(*stream_seq);
            }
            Self::Control { channel, body } => {
                dst.put_u8(KIND_CONTROL);
                dst.put_u8(*channel);
                put_len_prefixed(dst, body);
            }
        }
    }

    /// Parses a whole body; byte strings to be sliced out of the frame come back as a range of
    /// the body and an empty placeholder in the frame.
    fn read_body(body: &[u8]) -> Result<(Self, Option<Range<usize>>), WireError> {
        let mut r = Reader::new(body);
        let parsed = match r.u8("frame kind")? {
            KIND_HELLO => (Self::Hello(Hello::read(&mut r)?), None),
            KIND_ENVELOPE => {
                let (envelope, payload) = Envelope::read(&mut r)?;
                (Self::Envelope(envelope), Some(payload))
            }
            KIND_LARGE_MARKER => (
                Self::LargeMarker {
                    stream_seq: r.u64("large marker stream seq")?,
                },
                None,
            ),
            KIND_CONTROL => {
                let channel = r.u8("control channel")?;
                let bytes = r.len_prefixed("control body")?;
                let end = r.position();
                let range = end.saturating_sub(bytes.len())..end;
                (
                    Self::Control {
                        channel,
                        body: Bytes::new(),
                    },
                    Some(range),
                )
            }
            other => return Err(WireError::UnknownFrameKind(other)),
        };
        r.finish()?;
        Ok(parsed)
    }

    fn set_shared_bytes(&mut self, bytes: Bytes) {
        match self {
            Self::Envelope(envelope) => envelope.payload = bytes,
            Self::Control { body, .. } => *body = bytes,
            Self::Hello(_) | Self::LargeMarker { .. } => {}
        }
    }
}

/// Encodes frames into, and decodes them out of, a byte buffer, enforcing a size limit
///
/// Sans-IO: it never reads or writes a socket. The caller appends received bytes to a
/// [`BytesMut`] and calls [`decode`](Self::decode) until it returns `Ok(None)`; to send, it calls
/// [`encode`](Self::encode) for each frame and writes the buffer out (many frames per write).
///
/// # Allocation behavior
///
/// `encode` computes the frame's size first and reserves it once. `decode` rejects a length
/// prefix above the limit before it reserves anything; a partial frame within the limit makes it
/// reserve room for the rest. Strings of a decoded frame are copied into `String`s of exactly
/// their size; payload and control bodies share the received buffer.
#[derive(Clone, Copy, Debug)]
pub struct FrameCodec {
    max_frame_len: usize,
}

impl Default for FrameCodec {
    /// A codec with the [`DEFAULT_MAX_FRAME_LEN`] limit
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl FrameCodec {
    /// Creates a codec that accepts frame bodies of at most `max_frame_len` bytes
    ///
    /// A limit above `u32::MAX` (the largest length the prefix can express) is lowered to it
    /// (on 32-bit targets, to `usize::MAX - 4`).
    pub fn new(max_frame_len: usize) -> Self {
        // Keeps `PREFIX_LEN + max_frame_len` from overflowing on 32-bit targets too.
        let ceiling = usize::try_from(u32::MAX)
            .unwrap_or(usize::MAX)
            .min(usize::MAX - PREFIX_LEN);
        Self {
            max_frame_len: max_frame_len.min(ceiling),
        }
    }

    /// The largest frame body, in bytes (length prefix excluded), this codec encodes or decodes
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Appends one length-prefixed frame to `dst`
    ///
    /// Reserves the exact size once, then writes; apart from growing `dst` it does not allocate.
    ///
    /// # Errors
    ///
    /// [`WireError::FrameTooLarge`] if the frame body would exceed
    /// [`max_frame_len`](Self::max_frame_len); [`WireError::Malformed`] for a [`Hello`] with
    /// more than [`MAX_HELLO_ROLES`](crate::MAX_HELLO_ROLES) roles; `dst` is left unchanged.
    ///
    /// [`Hello`]: crate::Hello
    pub fn encode(&self, frame: &Frame, dst: &mut BytesMut) -> Result<(), WireError> {
        if let Frame::Hello(hello) = frame
            && hello.roles.len() > crate::MAX_HELLO_ROLES
        {
            return Err(WireError::Malformed {
                what: "hello role count",
            });
        }
        let len = frame.body_len();
        if len > self.max_frame_len {
            return Err(WireError::FrameTooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        let prefix = u32::try_from(len).expect("max_frame_len is at most u32::MAX");
        dst.reserve(PREFIX_LEN + len);
        let start = dst.len();
        dst.put_u32(prefix);
        frame.write_body(dst);
        assert_eq!(
            dst.len() - start,
            PREFIX_LEN + len,
            "body_len must match write_body"
        );
        Ok(())
    }

    /// Takes one frame off the front of `src`, if a whole one is there
    ///
    /// - `Ok(None)`: `src` holds less than one whole frame; nothing was consumed. Call again when
    ///   more bytes have arrived. (`src` may have reserved room for the rest of the frame.)
    /// - `Ok(Some(frame))`: exactly one frame was consumed from the front of `src`. Its payload or
    ///   control body is a zero-copy slice of the bytes `src` held.
    ///
    /// The length prefix is checked against the limit as soon as its 4 bytes are present, before
    /// any allocation and before the body arrives.
    ///
    /// # Errors
    ///
    /// Any error means the stream is corrupt or speaks another protocol; the caller should drop
    /// the peer and log the error. `src` is left unchanged. The variants are
    /// [`FrameTooLarge`](WireError::FrameTooLarge), [`Truncated`](WireError::Truncated),
    /// [`TrailingBytes`](WireError::TrailingBytes),
    /// [`UnknownFrameKind`](WireError::UnknownFrameKind),
    /// [`UnknownEnvelopeKind`](WireError::UnknownEnvelopeKind),
    /// [`UnknownErrorCode`](WireError::UnknownErrorCode),
    /// [`ProtocolVersion`](WireError::ProtocolVersion), [`InvalidUtf8`](WireError::InvalidUtf8)
    /// and [`Malformed`](WireError::Malformed).
    pub fn decode(&self, src: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        let Some(prefix) = src.first_chunk::<PREFIX_LEN>() else {
            return Ok(None);
        };
        // A u32 that does not fit a usize cannot be within the limit either.
        let len = usize::try_from(u32::from_be_bytes(*prefix)).unwrap_or(usize::MAX);
        if len > self.max_frame_len {
            return Err(WireError::FrameTooLarge {
                len,
                max: self.max_frame_len,
            });
        }
        let total = PREFIX_LEN + len;
        let Some(body) = src.get(PREFIX_LEN..total) else {
            src.reserve(total.saturating_sub(src.len()));
            return Ok(None);
        };
        let (mut frame, shared) = Frame::read_body(body)?;
        // Only now that the whole frame parsed is anything consumed, so an error leaves `src`
        // as it was.
        match shared {
            Some(range) => {
                assert!(
                    range.start <= range.end,
                    "the range comes from parsing the body"
                );
                assert!(range.end <= len, "the range comes from parsing the body");
                // Cut the frame down to the shared field in place: no reference count traffic
                // beyond the one split.
                let mut bytes = src.split_to(total);
                bytes.advance(PREFIX_LEN + range.start);
                bytes.truncate(range.end - range.start);
                frame.set_shared_bytes(bytes.freeze());
            }
            None => src.advance(total),
        }
        Ok(Some(frame))
    }
}
