//! How the [`http`] types of the proxy's messages travel: as their text and bytes, each
//! checked on arrival, so a peer's invalid method, URI, header or status fails the decoding
//! with a reason instead of reaching a target or a client.

/// A [`http::Method`] as its name.
pub(crate) mod method {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(m: &http::Method, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(m.as_str())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<http::Method, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        http::Method::from_bytes(name.as_bytes())
            .map_err(|_| D::Error::custom(format_args!("invalid method {name:?}")))
    }
}

/// A [`http::Uri`] as its text.
pub(crate) mod uri {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(crate) fn serialize<S: Serializer>(u: &http::Uri, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(u)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<http::Uri, D::Error> {
        let text = String::deserialize(d)?;
        http::Uri::try_from(text).map_err(|e| D::Error::custom(format_args!("invalid uri: {e}")))
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

/// A [`http::HeaderMap`] as a list of (name, value bytes) pairs, in order, repeats kept.
pub(crate) mod headers {
    use http::{HeaderMap, HeaderName, HeaderValue};
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeSeq;
    use serde::{Deserializer, Serializer};

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

    struct Pairs;

    impl<'de> Visitor<'de> for Pairs {
        type Value = HeaderMap;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of header names and values")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<HeaderMap, A::Error> {
            // the hint is the peer's claim: capped, the map grows with what really arrives
            let mut headers = HeaderMap::with_capacity(seq.size_hint().unwrap_or(0).min(64));
            while let Some((name, value)) =
                seq.next_element::<(std::borrow::Cow<'de, str>, serde_bytes::ByteBuf)>()?
            {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| A::Error::custom(format_args!("invalid header name {name:?}")))?;
                let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(value.into_vec()))
                    .map_err(|_| {
                        A::Error::custom(format_args!("invalid header value for {name}"))
                    })?;
                headers.append(name, value);
            }
            Ok(headers)
        }
    }
}
