//! The one error type of the wire format.

/// Why a frame could not be encoded or decoded, or why a payload was rejected
///
/// Every decoding failure is one of these variants; decoding never panics. A frame-level error
/// (everything but [`UnknownMessageType`](Self::UnknownMessageType),
/// [`UnsupportedVersion`](Self::UnsupportedVersion), [`Encode`](Self::Encode) and
/// [`Decode`](Self::Decode)) means the byte stream is corrupt or speaks another protocol: the
/// caller drops the peer and logs the error. The payload-level errors concern one message only;
/// the stream is still in sync and the caller can answer the one message with an error.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// A frame body is longer than the codec's limit (or than `u32::MAX`)
    ///
    /// On decode this is reported from the 4-byte length prefix alone, before anything is
    /// allocated; on encode nothing is written.
    #[error("frame body of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Declared (decode) or computed (encode) body length in bytes.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// A frame body ended in the middle of a field
    #[error("frame body ends inside {what}")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// The first body byte names no known frame kind
    #[error("unknown frame kind {0}")]
    UnknownFrameKind(u8),
    /// The envelope kind byte names no known envelope kind
    #[error("unknown envelope kind {0}")]
    UnknownEnvelopeKind(u8),
    /// A reply carries an error code this node does not know
    #[error("unknown remote error code {0}")]
    UnknownErrorCode(u8),
    /// The peer speaks another version of the wire protocol
    #[error("peer speaks wire protocol {got}, this node speaks {supported}")]
    ProtocolVersion {
        /// Version found in the frame.
        got: u16,
        /// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) of this node.
        supported: u16,
    },
    /// A string field is not valid UTF-8
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        what: &'static str,
    },
    /// A frame body is longer than the fields it carries
    #[error("{len} unexpected bytes after the last field of a frame")]
    TrailingBytes {
        /// Number of bytes left over.
        len: usize,
    },
    /// A field has a value no encoder produces: an over-long or non-minimal varint, or reserved
    /// flag bits set
    #[error("malformed {what}")]
    Malformed {
        /// The field being read.
        what: &'static str,
    },
    /// The message type's name is not one this receiver knows
    #[error("unknown message type `{name}`")]
    UnknownMessageType {
        /// The name found in the envelope.
        name: String,
    },
    /// The message type is known but not in the version the envelope carries
    #[error("message type `{name}` version {got} is not supported (supported: {supported})")]
    UnsupportedVersion {
        /// The name found in the envelope.
        name: String,
        /// The version found in the envelope.
        got: u16,
        /// The versions the receiver accepts, e.g. `1` or `1..=2`.
        supported: String,
    },
    /// The serializer failed to encode a payload
    #[error("cannot encode payload: {0}")]
    Encode(String),
    /// A payload does not decode as the expected type, or has bytes left over
    #[error("cannot decode payload: {0}")]
    Decode(String),
}
