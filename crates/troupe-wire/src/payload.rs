//! Message payloads: rmp-serde encoding, type checks and the table of known types
//!
//! Payloads are MessagePack written by rmp-serde's default configuration: structs as arrays
//! (positional, no field names), enum variants by name. Field order is therefore the schema;
//! `docs/wire.md` ("Evolving a message type") gives the rules for changing a type.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{MessageType, WireError};

/// Initial capacity of a payload buffer; most messages fit without regrowing.
const PAYLOAD_CAPACITY: usize = 128;

/// Encodes a value as an rmp-serde payload, structs as positional arrays
///
/// # Errors
///
/// [`WireError::Encode`] if the value's `Serialize` implementation fails (e.g. a map whose keys
/// are not serializable, or a custom impl returning an error).
///
/// # Examples
///
/// ```
/// let payload = troupe_wire::encode_payload(&(7u32, "seven"))?;
/// assert_eq!(&payload[..], b"\x92\x07\xa5seven");
/// # Ok::<(), troupe_wire::WireError>(())
/// ```
pub fn encode_payload<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, WireError> {
    let mut buf = Vec::with_capacity(PAYLOAD_CAPACITY);
    rmp_serde::encode::write(&mut buf, value).map_err(|e| WireError::Encode(e.to_string()))?;
    Ok(Bytes::from(buf))
}

/// Decodes a payload of exactly the type and version `expected`
///
/// Checks the envelope's `actual` type against `expected` before looking at the bytes, then
/// requires the bytes to hold one value and nothing more. For a receiver that also reads older
/// versions during a rolling upgrade, use [`decode_payload_compat`].
///
/// # Errors
///
/// - [`WireError::UnknownMessageType`] if the names differ;
/// - [`WireError::UnsupportedVersion`] if the versions differ;
/// - [`WireError::Decode`] if the bytes do not decode as `T` or bytes remain after the value.
pub fn decode_payload<T: DeserializeOwned>(
    actual: &MessageType,
    expected: &MessageType,
    payload: &[u8],
) -> Result<T, WireError> {
    decode_payload_compat(
        actual,
        &expected.name,
        expected.version..=expected.version,
        payload,
    )
}

/// Decodes a payload whose type is `name` in any version within `supported`
///
/// The receiving type `T` must read every version in `supported`; with the append-only rule of
/// `docs/wire.md` a type at version N reads versions written before fields were appended.
///
/// # Errors
///
/// - [`WireError::UnknownMessageType`] if `actual.name` is not `name`;
/// - [`WireError::UnsupportedVersion`] if `actual.version` is outside `supported`;
/// - [`WireError::Decode`] if the bytes do not decode as `T` or bytes remain after the value.
pub fn decode_payload_compat<T: DeserializeOwned>(
    actual: &MessageType,
    name: &str,
    supported: RangeInclusive<u16>,
    payload: &[u8],
) -> Result<T, WireError> {
    if actual.name != name {
        return Err(WireError::UnknownMessageType {
            name: actual.name.clone(),
        });
    }
    check_version(actual, &supported)?;
    // Reading from a slice (not `from_slice`) leaves the unread rest in `rest`, for the
    // trailing-bytes check. rmp-serde never reserves more than the bytes present for a length
    // read from the input, and caps nesting depth, so hostile payloads cannot exhaust memory.
    let mut rest = payload;
    let mut de = rmp_serde::Deserializer::new(&mut rest);
    let value = T::deserialize(&mut de).map_err(|e| WireError::Decode(e.to_string()))?;
    drop(de);
    if !rest.is_empty() {
        return Err(WireError::Decode(format!(
            "{} bytes left after the value",
            rest.len()
        )));
    }
    Ok(value)
}

fn check_version(actual: &MessageType, supported: &RangeInclusive<u16>) -> Result<(), WireError> {
    if supported.contains(&actual.version) {
        return Ok(());
    }
    let supported = if supported.start() == supported.end() {
        supported.start().to_string()
    } else {
        format!("{}..={}", supported.start(), supported.end())
    };
    Err(WireError::UnsupportedVersion {
        name: actual.name.clone(),
        got: actual.version,
        supported,
    })
}

/// The message types a node accepts: each name with the range of versions it reads
///
/// The runtime checks each incoming envelope here before routing it, so an envelope of a type
/// nobody on this node handles is answered early with a typed error.
///
/// # Examples
///
/// ```
/// use troupe_wire::{KnownTypes, MessageType, WireError};
///
/// let mut known = KnownTypes::new();
/// known.register("cache.Get", 1, 2);
/// assert!(known.check(&MessageType::new("cache.Get", 2)).is_ok());
/// assert!(matches!(
///     known.check(&MessageType::new("cache.Get", 3)),
///     Err(WireError::UnsupportedVersion { .. })
/// ));
/// ```
#[derive(Default, Clone, Debug)]
pub struct KnownTypes {
    types: HashMap<String, RangeInclusive<u16>>,
}

impl KnownTypes {
    /// Creates an empty table; every type is unknown
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts type `name` in versions `min_version..=max_version`, replacing any earlier range
    /// for that name
    ///
    /// # Panics
    ///
    /// If `min_version > max_version`: an empty range is a programming error, not a way to
    /// unregister a type.
    pub fn register(&mut self, name: &str, min_version: u16, max_version: u16) {
        assert!(
            min_version <= max_version,
            "empty version range {min_version}..={max_version} for message type `{name}`"
        );
        self.types
            .insert(name.to_owned(), min_version..=max_version);
    }

    /// The versions accepted for `name`, if it is registered
    pub fn versions(&self, name: &str) -> Option<RangeInclusive<u16>> {
        self.types.get(name).cloned()
    }

    /// Succeeds if `t`'s name is registered and its version is in the registered range
    ///
    /// # Errors
    ///
    /// - [`WireError::UnknownMessageType`] if the name is not registered;
    /// - [`WireError::UnsupportedVersion`] if the version is outside the registered range.
    pub fn check(&self, t: &MessageType) -> Result<(), WireError> {
        let supported =
            self.types
                .get(t.name.as_str())
                .ok_or_else(|| WireError::UnknownMessageType {
                    name: t.name.clone(),
                })?;
        check_version(t, supported)
    }
}
