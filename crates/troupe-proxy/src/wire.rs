//! How the [`http`] types of the proxy's messages travel: as their text and bytes, each
//! checked on arrival, so a peer's invalid method, URI, header or status — or more headers
//! than [`MAX_HEADERS`] — fails the decoding with a reason instead of reaching a target or a
//! client.

use std::fmt;

use serde::de::{Error, Visitor};

/// The most headers a message from a peer may carry: ten times what the gateway takes from a
/// client (100), so a message's memory stays within a small multiple of its size.
pub(crate) const MAX_HEADERS: usize = 1_000;

/// A visitor for a string or bytes, checked by `parse` (which names what was expected).
struct Parsed<T> {
    expecting: &'static str,
    parse: fn(&[u8]) -> Option<T>,
}

impl<'de, T> Visitor<'de> for Parsed<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<T, E> {
        self.visit_bytes(v.as_bytes())
    }

    fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<T, E> {
        (self.parse)(v).ok_or_else(|| {
            E::custom(format_args!(
                "invalid {} {:?}",
                self.expecting,
                String::from_utf8_lossy(&v[..v.len().min(64)])
            ))
        })
    }
}

/// A [`http::Method`] as its name.
pub(crate) mod method {
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(m: &http::Method, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(m.as_str())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<http::Method, D::Error> {
        d.deserialize_str(super::Parsed {
            expecting: "method",
            parse: |v| http::Method::from_bytes(v).ok(),
        })
    }
}

/// A [`http::Uri`] as its text.
pub(crate) mod uri {
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(u: &http::Uri, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(u)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<http::Uri, D::Error> {
        d.deserialize_str(super::Parsed {
            expecting: "uri",
            parse: |v| http::Uri::try_from(v).ok(),
        })
    }
}

/// A [`http::StatusCode`] as its number.
pub(crate) mod status {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(c: &http::StatusCode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(c.as_u16())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<http::StatusCode, D::Error> {
        let code = u16::deserialize(d)?;
        http::StatusCode::from_u16(code)
            .map_err(|_| D::Error::custom(format_args!("invalid status {code}")))
    }
}

/// A [`http::HeaderMap`] as a list of (name, value bytes) pairs, in order, repeats kept; at
/// most [`MAX_HEADERS`](super::MAX_HEADERS) of them.
pub(crate) mod headers {
    use std::fmt;

    use http::{HeaderMap, HeaderName, HeaderValue};
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::{MAX_HEADERS, Parsed};

    pub(crate) fn serialize<S: Serializer>(h: &HeaderMap, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(h.len()))?;
        for (name, value) in h {
            seq.serialize_element(&(name.as_str(), serde_bytes::Bytes::new(value.as_bytes())))?;
        }
        seq.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<HeaderMap, D::Error> {
        d.deserialize_seq(Pairs)
    }

    /// A header name, checked as it is read (no string kept on the way).
    struct Name(HeaderName);

    impl<'de> Deserialize<'de> for Name {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_str(Parsed {
                expecting: "header name",
                parse: |v| HeaderName::from_bytes(v).ok(),
            })
            .map(Name)
        }
    }

    /// A header value, checked as it is read.
    struct Value(HeaderValue);

    impl<'de> Deserialize<'de> for Value {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_bytes(Parsed {
                expecting: "header value",
                parse: |v| HeaderValue::from_bytes(v).ok(),
            })
            .map(Value)
        }
    }

    struct Pairs;

    impl<'de> Visitor<'de> for Pairs {
        type Value = HeaderMap;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "at most {MAX_HEADERS} header names and values")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HeaderMap, A::Error> {
            // the hint is the peer's claim: capped, the map grows with what really arrives
            let mut headers = HeaderMap::with_capacity(seq.size_hint().unwrap_or(0).min(64));
            while let Some((Name(name), Value(value))) = seq.next_element()? {
                if headers.len() == MAX_HEADERS {
                    return Err(A::Error::custom(format_args!(
                        "more than {MAX_HEADERS} headers"
                    )));
                }
                headers
                    .try_append(name, value)
                    .map_err(|_| A::Error::custom("too many headers"))?;
            }
            Ok(headers)
        }
    }
}
