//! `delete`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{line, peek_str};
use crate::cmd::{Now, ReadThrough, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// `delete key`: `DELETED`, or `NOT_FOUND` if there is no item (a key of
/// another type is left as it is)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delete {
    /// The key
    pub key: Bytes,
}

impl Unit for Delete {
    /// The memcached front end deletes through a read-through cache with the
    /// typed `CacheClient::del`.
    const READ_THROUGH: ReadThrough = ReadThrough::Backed;

    fn name(&self) -> &'static str {
        "delete"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        if peek_str(store, &self.key, now).is_some() && store.delete(&self.key, now.at) {
            line("DELETED")
        } else {
            line("NOT_FOUND")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::memcache::testing_mc::{b, simple};
    use crate::cmd::testing::{now, run, store};

    #[test]
    fn deletes_items_only() {
        let (mut s, now) = (store(), now());
        let delete = |key: &str| Delete { key: b(key) };
        assert_eq!(delete("k").apply(&mut s, &now), simple("NOT_FOUND"));
        run(&mut s, &now, &["SET", "k", "v"]);
        assert_eq!(delete("k").apply(&mut s, &now), simple("DELETED"));
        assert_eq!(delete("k").apply(&mut s, &now), simple("NOT_FOUND"));
        run(&mut s, &now, &["LPUSH", "l", "v"]);
        assert_eq!(delete("l").apply(&mut s, &now), simple("NOT_FOUND"));
        assert_eq!(run(&mut s, &now, &["EXISTS", "l"]), Frame::Integer(1));
    }
}
