//! Encoding and decoding of [`Message`]s for the remote path, with wire errors mapped to
//! [`CallError`]s.

use bytes::Bytes;
use troupe_wire::{MessageType, WireError, decode_payload_compat, encode_payload};

use crate::addr::with_decode_context;
use crate::error::CallError;
use crate::message::Message;
use crate::node::Node;

/// The wire identity of `M`: its stable name and the version this node writes.
pub fn message_type<M: Message>() -> MessageType {
    MessageType::new(M::NAME, M::VERSION)
}

/// Encodes `msg` as a payload of at most `max_len` bytes.
///
/// # Errors
/// [`CallError::TooLarge`] if the encoding exceeds `max_len`, [`CallError::Decode`] if
/// serialization itself fails (a type serde cannot encode).
pub fn encode_message<T: serde::Serialize + ?Sized>(
    msg: &T,
    max_len: usize,
) -> Result<Bytes, CallError> {
    let bytes = encode_payload(msg).map_err(|e| CallError::Decode(e.to_string()))?;
    if bytes.len() > max_len {
        return Err(CallError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    Ok(bytes)
}

/// Decodes a payload that claims to be `actual` as an `M`, resolving any [`Addr`](crate::Addr)
/// inside it on `node`.
///
/// # Errors
/// [`CallError::Decode`] if the type name differs, the version is outside
/// `M::MIN_VERSION..=M::VERSION`, or the bytes do not decode as `M`.
pub fn decode_message<M: Message>(
    node: &Node,
    actual: &MessageType,
    payload: &[u8],
) -> Result<M, CallError> {
    with_decode_context(node, || {
        decode_payload_compat::<M>(actual, M::NAME, M::MIN_VERSION..=M::VERSION, payload)
    })
    .map_err(|e: WireError| CallError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Mesh, NodeConfig};
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Ping {
        seq: u64,
        note: String,
    }
    impl Message for Ping {
        const NAME: &'static str = "test.Ping";
        const VERSION: u16 = 2;
        const MIN_VERSION: u16 = 1;
    }

    fn node() -> Node {
        Node::new("n", &Mesh::new(), NodeConfig::default()).expect("fresh mesh")
    }

    #[test]
    fn round_trip_and_accepted_versions() {
        let node = node();
        let msg = Ping {
            seq: 7,
            note: "hi".into(),
        };
        let bytes = encode_message(&msg, 1024).expect("small");
        assert_eq!(message_type::<Ping>(), MessageType::new("test.Ping", 2));
        for version in [1, 2] {
            let t = MessageType::new("test.Ping", version);
            assert_eq!(
                decode_message::<Ping>(&node, &t, &bytes),
                Ok(Ping {
                    seq: 7,
                    note: "hi".into()
                })
            );
        }
    }

    #[test]
    fn unknown_types_versions_and_garbage_are_decode_errors() {
        let node = node();
        let bytes = encode_message(
            &Ping {
                seq: 1,
                note: String::new(),
            },
            1024,
        )
        .expect("small");
        for t in [
            MessageType::new("test.Pong", 2),
            MessageType::new("test.Ping", 3),
            MessageType::new("test.Ping", 0),
        ] {
            assert!(matches!(
                decode_message::<Ping>(&node, &t, &bytes),
                Err(CallError::Decode(_))
            ));
        }
        let t = message_type::<Ping>();
        assert!(matches!(
            decode_message::<Ping>(&node, &t, &[0xc1, 0xff, 0x00]),
            Err(CallError::Decode(_))
        ));
    }

    #[test]
    fn oversized_messages_are_too_large() {
        let msg = Ping {
            seq: 1,
            note: "x".repeat(100),
        };
        assert!(matches!(
            encode_message(&msg, 64),
            Err(CallError::TooLarge { max: 64, .. })
        ));
    }
}
