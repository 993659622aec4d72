//! `get`/`gets`/`gat`/`gats`: one key's part

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::expires_at;
use crate::cmd::{Now, ReadThrough, Unit};
use crate::resp::Frame;
use crate::store::{Item, Store, Value};

/// One key of `get`/`gets` (and, with `touch`, `gat`/`gats`): the value,
/// flags and CAS unique of a hit (`Array[Bulk, Integer, Integer]`), or
/// `Null` for a miss; a hit is the most recently used from now on
///
/// `gets` and `get` differ only in what the front end writes of the reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Get {
    /// The key
    pub key: Bytes,
    /// `gat`/`gats`: the exptime a hit gets (its CAS is kept)
    pub touch: Option<i64>,
}

impl Unit for Get {
    /// The memcached front end reads a read-through cache with the typed
    /// `CacheClient::get` (and refuses `gat`/`gats` there).
    const READ_THROUGH: ReadThrough = ReadThrough::Backed;

    fn name(&self) -> &'static str {
        if self.touch.is_some() { "gat" } else { "get" }
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        let hit = store
            .read_item(&self.key, now.at, |item| match item {
                Item {
                    value: Value::Str(value),
                    flags,
                    cas,
                } => Some((value.clone(), flags, cas)),
                _ => None,
            })
            .flatten();
        let Some((value, flags, cas)) = hit else {
            return Frame::Null;
        };
        if let Some(exptime) = self.touch {
            store.set_expires_at(&self.key, expires_at(exptime, now), now.at);
        }
        Frame::Array(vec![
            Frame::Bulk(value),
            Frame::Integer(i64::from(flags)),
            Frame::Integer(i64::try_from(cas).unwrap_or(i64::MAX)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::memcache::StoreMode;
    use crate::cmd::memcache::testing_mc::{b, get, store_cmd};
    use crate::cmd::testing::{later, now, run, store};

    #[test]
    fn hits_give_value_flags_and_cas_and_other_types_miss() {
        let (mut s, now) = (store(), now());
        assert_eq!(get(&mut s, &now, "k"), None);
        store_cmd(StoreMode::Set, "k", 42, 0, "v").apply(&mut s, &now);
        let (value, flags, cas) = get(&mut s, &now, "k").unwrap();
        assert_eq!((value.as_str(), flags), ("v", 42));
        assert!(cas > 0);
        // a RESP string is an item with flags 0
        run(&mut s, &now, &["SET", "r", "from resp"]);
        assert_eq!(
            get(&mut s, &now, "r").map(|(v, f, _)| (v, f)),
            Some(("from resp".into(), 0))
        );
        // a hash is a miss
        run(&mut s, &now, &["HSET", "h", "f", "v"]);
        assert_eq!(get(&mut s, &now, "h"), None);
    }

    #[test]
    fn gat_sets_the_expiry_and_keeps_the_cas() {
        let (mut s, now) = (store(), now());
        store_cmd(StoreMode::Set, "k", 0, 0, "v").apply(&mut s, &now);
        let (_, _, cas) = get(&mut s, &now, "k").unwrap();
        let gat = Get {
            key: b("k"),
            touch: Some(10),
        };
        assert!(matches!(gat.apply(&mut s, &now), Frame::Array(_)));
        assert_eq!(get(&mut s, &now, "k").map(|(_, _, c)| c), Some(cas));
        assert_eq!(
            get(&mut s, &later(&now, 9_999), "k").map(|(_, _, c)| c),
            Some(cas)
        );
        assert_eq!(get(&mut s, &later(&now, 10_000), "k"), None);
        // a negative exptime: the value is returned, then gone
        store_cmd(StoreMode::Set, "k", 0, 0, "v").apply(&mut s, &now);
        let gat = Get {
            key: b("k"),
            touch: Some(-1),
        };
        assert!(matches!(gat.apply(&mut s, &now), Frame::Array(_)));
        assert_eq!(get(&mut s, &now, "k"), None);
    }
}
