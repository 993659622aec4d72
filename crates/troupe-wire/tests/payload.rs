//! Payload encoding, type checks, and the rules for evolving a message type (`docs/wire.md`).
//!
//! The evolution tests pin down what rmp-serde 1.3's default configuration actually does, so a
//! dependency upgrade that changes it fails here rather than in a rolling upgrade.

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use troupe_wire::{
    KnownTypes, MessageType, WireError, decode_payload, decode_payload_compat, encode_payload,
};

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Put {
    key: String,
    #[serde(with = "serde_bytes")]
    value: Vec<u8>,
    ttl_ms: Option<u64>,
    tags: Vec<(u8, String)>,
}

fn put_v1() -> MessageType {
    MessageType::new("kv.Put", 1)
}

proptest! {
    #[test]
    fn any_struct_round_trips(
        key in any::<String>(),
        value in prop::collection::vec(any::<u8>(), 0..200),
        ttl_ms in any::<Option<u64>>(),
        tags in prop::collection::vec((any::<u8>(), any::<String>()), 0..4),
    ) {
        let put = Put { key, value, ttl_ms, tags };
        let payload = encode_payload(&put).expect("encodes");
        let decoded: Put = decode_payload(&put_v1(), &put_v1(), &payload).expect("decodes");
        prop_assert_eq!(decoded, put);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_payload_decoder(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_payload::<Put>(&put_v1(), &put_v1(), &bytes);
        let _ = decode_payload::<serde_json_like::Value>(&put_v1(), &put_v1(), &bytes);
    }
}

/// A self-describing value, so arbitrary MessagePack is accepted as far as it is well formed.
mod serde_json_like {
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Deserialize, Debug)]
    #[serde(untagged)]
    #[allow(dead_code, reason = "only decoded, to exercise the deserializer")]
    pub(crate) enum Value {
        Nil(()),
        Bool(bool),
        Int(i64),
        UInt(u64),
        Float(f64),
        Str(String),
        Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
        Array(Vec<Self>),
        Map(BTreeMap<String, Self>),
    }
}

#[test]
fn structs_are_written_as_positional_arrays() {
    #[derive(Serialize)]
    struct Pair {
        a: u32,
        b: String,
    }
    let payload = encode_payload(&Pair {
        a: 1,
        b: "x".into(),
    })
    .expect("encodes");
    // fixarray of 2, positive fixint 1, fixstr "x": no field names.
    assert_eq!(&payload[..], &[0x92, 0x01, 0xa1, b'x']);
}

#[test]
fn a_payload_of_another_type_name_is_rejected_before_decoding() {
    let payload = encode_payload(&1u8).expect("encodes");
    assert_eq!(
        decode_payload::<u8>(&MessageType::new("kv.Get", 1), &put_v1(), &payload),
        Err(WireError::UnknownMessageType {
            name: "kv.Get".into()
        })
    );
}

#[test]
fn a_payload_of_another_version_is_rejected() {
    let payload = encode_payload(&1u8).expect("encodes");
    assert_eq!(
        decode_payload::<u8>(&MessageType::new("kv.Put", 2), &put_v1(), &payload),
        Err(WireError::UnsupportedVersion {
            name: "kv.Put".into(),
            got: 2,
            supported: "1".into()
        })
    );
    assert_eq!(
        decode_payload_compat::<u8>(&MessageType::new("kv.Put", 4), "kv.Put", 2..=3, &payload),
        Err(WireError::UnsupportedVersion {
            name: "kv.Put".into(),
            got: 4,
            supported: "2..=3".into()
        })
    );
    assert_eq!(
        decode_payload_compat::<u8>(&MessageType::new("kv.Put", 2), "kv.Put", 2..=3, &payload),
        Ok(1)
    );
}

#[test]
fn garbage_and_leftover_bytes_are_decode_errors() {
    for garbage in [
        &[][..],
        &[0xc1],
        &[0x92, 0x01],
        &[0xdb, 0xff, 0xff, 0xff, 0xff],
    ] {
        let result = decode_payload::<Put>(&put_v1(), &put_v1(), garbage);
        assert!(
            matches!(result, Err(WireError::Decode(_))),
            "{garbage:x?}: {result:?}"
        );
    }
    let mut payload = encode_payload(&7u32).expect("encodes").to_vec();
    payload.push(0);
    assert_eq!(
        decode_payload::<u32>(&put_v1(), &put_v1(), &payload),
        Err(WireError::Decode("1 bytes left after the value".into()))
    );
}

#[test]
fn a_failing_serialize_impl_is_an_encode_error() {
    struct Fails;
    impl Serialize for Fails {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("nope"))
        }
    }
    assert!(matches!(encode_payload(&Fails), Err(WireError::Encode(msg)) if msg.contains("nope")));
}

#[test]
fn known_types_reject_unknown_names_and_versions_outside_the_range() {
    let mut known = KnownTypes::new();
    known.register("kv.Put", 1, 2);
    assert_eq!(known.check(&MessageType::new("kv.Put", 1)), Ok(()));
    assert_eq!(known.check(&MessageType::new("kv.Put", 2)), Ok(()));
    assert_eq!(
        known.check(&MessageType::new("kv.Put", 3)),
        Err(WireError::UnsupportedVersion {
            name: "kv.Put".into(),
            got: 3,
            supported: "1..=2".into()
        })
    );
    assert_eq!(
        known.check(&MessageType::new("kv.Put", 0)),
        Err(WireError::UnsupportedVersion {
            name: "kv.Put".into(),
            got: 0,
            supported: "1..=2".into()
        })
    );
    assert_eq!(
        known.check(&MessageType::new("kv.Del", 1)),
        Err(WireError::UnknownMessageType {
            name: "kv.Del".into()
        })
    );
    assert_eq!(known.versions("kv.Put"), Some(1..=2));
    known.register("kv.Put", 2, 2);
    assert!(known.check(&MessageType::new("kv.Put", 1)).is_err());
}

#[test]
#[should_panic(expected = "empty version range")]
fn registering_an_empty_range_is_a_bug() {
    KnownTypes::new().register("kv.Put", 2, 1);
}

// ---------------------------------------------------------------------------------------------
// Evolving a message type: what rmp-serde 1.3 (default config) actually accepts.

mod v1 {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub(crate) struct Msg {
        pub(crate) a: u32,
        pub(crate) b: String,
    }
}

mod v2 {
    use serde::{Deserialize, Serialize};

    /// v1 with a field appended at the end, defaulted when absent.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub(crate) struct Msg {
        pub(crate) a: u32,
        pub(crate) b: String,
        #[serde(default)]
        pub(crate) c: Option<u64>,
    }
}

fn v1_msg() -> v1::Msg {
    v1::Msg {
        a: 7,
        b: "seven".into(),
    }
}

/// The append rule of `docs/wire.md`: a receiver on v2 reads what a v1 sender wrote.
#[test]
fn appended_default_field_reads_old_payloads() {
    let old = encode_payload(&v1_msg()).expect("encodes");
    let read = decode_payload_compat::<v2::Msg>(&MessageType::new("m", 1), "m", 1..=2, &old);
    assert_eq!(
        read,
        Ok(v2::Msg {
            a: 7,
            b: "seven".into(),
            c: None
        })
    );
}

/// ...but not the other way round: a v1 receiver rejects the longer array, which is why
/// receivers upgrade before senders and why the version is bumped.
#[test]
fn old_receivers_reject_payloads_with_appended_fields() {
    let new = encode_payload(&v2::Msg {
        a: 7,
        b: "seven".into(),
        c: Some(1),
    })
    .expect("encodes");
    let read =
        decode_payload::<v1::Msg>(&MessageType::new("m", 1), &MessageType::new("m", 1), &new);
    assert!(matches!(read, Err(WireError::Decode(_))), "{read:?}");
    // Even when the appended field holds its default: the array is still one element longer.
    let new = encode_payload(&v2::Msg {
        a: 7,
        b: "seven".into(),
        c: None,
    })
    .expect("encodes");
    assert!(rmp_serde::from_slice::<v1::Msg>(&new).is_err());
}

/// Without `#[serde(default)]`, even an `Option` field cannot be missing from an array.
#[test]
fn appended_field_without_default_breaks_old_payloads() {
    #[derive(Deserialize, Debug)]
    #[allow(dead_code, reason = "only decoded")]
    struct NoDefault {
        a: u32,
        b: String,
        c: Option<u64>,
    }
    let old = encode_payload(&v1_msg()).expect("encodes");
    assert!(rmp_serde::from_slice::<NoDefault>(&old).is_err());
}

/// How a node that reads v2 keeps writing the v1 layout during a rolling upgrade: the appended
/// field is skipped when `None`, and since it is the last field nothing after it shifts.
#[test]
fn trailing_field_skipped_when_none_writes_the_v1_layout() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Transitional {
        a: u32,
        b: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        c: Option<u64>,
    }
    let v1_bytes = encode_payload(&v1_msg()).expect("encodes");
    let unset = Transitional {
        a: 7,
        b: "seven".into(),
        c: None,
    };
    assert_eq!(encode_payload(&unset).expect("encodes"), v1_bytes);
    assert_eq!(
        rmp_serde::from_slice::<Transitional>(&v1_bytes).ok(),
        Some(unset)
    );
}

/// Skipping a field that is not last shifts every later field: never do it.
#[test]
fn skipping_a_field_that_is_not_last_breaks() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Skips {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        a: Option<u32>,
        b: u32,
    }
    let bytes = encode_payload(&Skips { a: None, b: 5 }).expect("encodes");
    assert_eq!(&bytes[..], &[0x91, 0x05], "b was written where a belongs");
    assert_ne!(
        rmp_serde::from_slice::<Skips>(&bytes).ok(),
        Some(Skips { a: None, b: 5 })
    );
}

/// Field names are not on the wire, so renaming a field is free.
#[test]
fn renaming_a_field_is_free() {
    #[derive(Deserialize, Debug, PartialEq)]
    struct Renamed {
        count: u32,
        label: String,
    }
    let old = encode_payload(&v1_msg()).expect("encodes");
    assert_eq!(
        rmp_serde::from_slice::<Renamed>(&old).ok(),
        Some(Renamed {
            count: 7,
            label: "seven".into()
        })
    );
}

/// Reordering fails when the types differ, and silently swaps values when they match.
#[test]
fn reordering_fields_breaks() {
    #[derive(Deserialize, Debug)]
    #[allow(dead_code, reason = "only decoded")]
    struct Reordered {
        b: String,
        a: u32,
    }
    let old = encode_payload(&v1_msg()).expect("encodes");
    assert!(rmp_serde::from_slice::<Reordered>(&old).is_err());

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Range {
        start: u32,
        end: u32,
    }
    #[derive(Deserialize, Debug, PartialEq)]
    struct Swapped {
        end: u32,
        start: u32,
    }
    let old = encode_payload(&Range { start: 1, end: 2 }).expect("encodes");
    assert_eq!(
        rmp_serde::from_slice::<Swapped>(&old).ok(),
        Some(Swapped { end: 1, start: 2 }),
        "the values arrive in the wrong fields without any error"
    );
}

/// Removing a field (even the last) makes old payloads too long.
#[test]
fn removing_a_field_breaks() {
    #[derive(Deserialize, Debug)]
    #[allow(dead_code, reason = "only decoded")]
    struct Removed {
        a: u32,
    }
    let old = encode_payload(&v1_msg()).expect("encodes");
    assert!(rmp_serde::from_slice::<Removed>(&old).is_err());
}

mod shape_v1 {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub(crate) enum Shape {
        Dot,
        Circle(u32),
        Rect { w: u32, h: u32 },
    }
}

/// Enum variants are written by name: unit variants as a string, others as a one-entry map
/// from the name to the data.
#[test]
fn enum_variants_are_written_by_name() {
    use shape_v1::Shape;
    assert_eq!(
        &encode_payload(&Shape::Dot).expect("encodes")[..],
        b"\xa3Dot"
    );
    assert_eq!(
        &encode_payload(&Shape::Circle(5)).expect("encodes")[..],
        b"\x81\xa6Circle\x05"
    );
    assert_eq!(
        &encode_payload(&Shape::Rect { w: 1, h: 2 }).expect("encodes")[..],
        b"\x81\xa4Rect\x92\x01\x02"
    );
}

/// So reordering and appending variants are free for values the receiver knows, while renaming
/// a variant breaks, and a variant the receiver lacks fails to decode.
#[test]
fn enum_variants_can_be_reordered_and_appended_but_not_renamed() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum ShapeV2 {
        Triangle,
        Rect { w: u32, h: u32 },
        Circle(u32),
        Dot,
    }
    #[derive(Deserialize, Debug, PartialEq)]
    enum Renamed {
        Point,
        Circle(u32),
        Rect { w: u32, h: u32 },
    }
    for (old, new) in [
        (shape_v1::Shape::Dot, ShapeV2::Dot),
        (shape_v1::Shape::Circle(5), ShapeV2::Circle(5)),
        (
            shape_v1::Shape::Rect { w: 1, h: 2 },
            ShapeV2::Rect { w: 1, h: 2 },
        ),
    ] {
        let bytes = encode_payload(&old).expect("encodes");
        assert_eq!(rmp_serde::from_slice::<ShapeV2>(&bytes).ok(), Some(new));
    }
    let triangle = encode_payload(&ShapeV2::Triangle).expect("encodes");
    assert!(rmp_serde::from_slice::<shape_v1::Shape>(&triangle).is_err());

    let dot = encode_payload(&shape_v1::Shape::Dot).expect("encodes");
    assert!(rmp_serde::from_slice::<Renamed>(&dot).is_err());
}
