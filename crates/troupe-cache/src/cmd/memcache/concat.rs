//! `append`, `prepend`

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::{OUT_OF_MEMORY, line, peek_str};
use crate::cmd::{Now, ReadThrough, Unit};
use crate::resp::Frame;
use crate::store::{Store, Value};

/// `append`/`prepend key flags exptime bytes`, with its data: the item's
/// data grown at its end or start, its flags and exptime kept (the ones
/// given are ignored, as memcached ignores them); `STORED`, or
/// `NOT_STORED` if there is no item or the result would be over
/// `max_item_size` (memcached's answer when it cannot allocate the longer
/// item)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Concat {
    /// The key
    pub key: Bytes,
    /// The data to add
    pub value: Bytes,
    /// `prepend` (else `append`)
    pub prepend: bool,
    /// The longest data an item may hold
    pub max_item_size: usize,
}

impl Unit for Concat {
    /// Refused by the memcached front end on a read-through cache.
    const READ_THROUGH: ReadThrough = ReadThrough::Backed;

    fn name(&self) -> &'static str {
        if self.prepend { "prepend" } else { "append" }
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        let Some((old, _, _)) = peek_str(store, &self.key, now) else {
            return line("NOT_STORED");
        };
        let len = old.len().saturating_add(self.value.len());
        if len > self.max_item_size {
            return line("NOT_STORED");
        }
        if store.reserve(&self.key, self.value.len(), now.at).is_err() {
            return Frame::Error(OUT_OF_MEMORY.into());
        }
        let mut joined = BytesMut::with_capacity(len);
        if self.prepend {
            joined.extend_from_slice(&self.value);
            joined.extend_from_slice(&old);
        } else {
            joined.extend_from_slice(&old);
            joined.extend_from_slice(&self.value);
        }
        let joined = joined.freeze();
        store.modify(&self.key, now.at, |value| *value = Value::Str(joined));
        line("STORED")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::memcache::StoreMode;
    use crate::cmd::memcache::testing_mc::{b, get, simple, store_cmd};
    use crate::cmd::testing::{now, run, store};

    fn concat(key: &str, value: &str, prepend: bool) -> Concat {
        Concat {
            key: b(key),
            value: b(value),
            prepend,
            max_item_size: 8,
        }
    }

    #[test]
    fn grows_the_data_keeping_flags_and_expiry() {
        let (mut s, now) = (store(), now());
        assert_eq!(
            concat("k", "x", false).apply(&mut s, &now),
            simple("NOT_STORED")
        );
        store_cmd(StoreMode::Set, "k", 9, 100, "mid").apply(&mut s, &now);
        let (_, _, cas) = get(&mut s, &now, "k").unwrap();
        assert_eq!(
            concat("k", ">", false).apply(&mut s, &now),
            simple("STORED")
        );
        assert_eq!(concat("k", "<", true).apply(&mut s, &now), simple("STORED"));
        let (value, flags, new_cas) = get(&mut s, &now, "k").unwrap();
        assert_eq!((value.as_str(), flags), ("<mid>", 9));
        assert!(new_cas > cas);
        assert_eq!(run(&mut s, &now, &["TTL", "k"]), Frame::Integer(100));
        // over the item size: not stored, unchanged
        assert_eq!(
            concat("k", "1234", false).apply(&mut s, &now),
            simple("NOT_STORED")
        );
        assert_eq!(
            get(&mut s, &now, "k").map(|(v, _, _)| v),
            Some("<mid>".into())
        );
        // another type is no item
        run(&mut s, &now, &["SADD", "set", "m"]);
        assert_eq!(
            concat("set", "x", false).apply(&mut s, &now),
            simple("NOT_STORED")
        );
    }
}
