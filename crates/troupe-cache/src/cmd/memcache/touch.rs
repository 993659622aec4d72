//! `touch`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{expires_at, line, peek_str};
use crate::cmd::{Now, ReadThrough, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// `touch key exptime`: gives the item a new exptime (its CAS kept) and
/// makes it the most recently used: `TOUCHED`, or `NOT_FOUND`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touch {
    /// The key
    pub key: Bytes,
    /// memcached's exptime
    pub exptime: i64,
}

impl Unit for Touch {
    /// Refused by the memcached front end on a read-through cache.
    const READ_THROUGH: ReadThrough = ReadThrough::Backed;

    fn name(&self) -> &'static str {
        "touch"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        if peek_str(store, &self.key, now).is_none() {
            return line("NOT_FOUND");
        }
        store.touch(&self.key, now.at);
        store.set_expires_at(&self.key, expires_at(self.exptime, now), now.at);
        line("TOUCHED")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::memcache::StoreMode;
    use crate::cmd::memcache::testing_mc::{b, get, simple, store_cmd};
    use crate::cmd::testing::{later, now, store};

    #[test]
    fn touch_moves_the_expiry_and_keeps_the_cas() {
        let (mut s, now) = (store(), now());
        let touch = |exptime| Touch {
            key: b("k"),
            exptime,
        };
        assert_eq!(touch(10).apply(&mut s, &now), simple("NOT_FOUND"));
        store_cmd(StoreMode::Set, "k", 0, 1, "v").apply(&mut s, &now);
        let (_, _, cas) = get(&mut s, &now, "k").unwrap();
        assert_eq!(touch(10).apply(&mut s, &now), simple("TOUCHED"));
        assert_eq!(
            get(&mut s, &later(&now, 9_000), "k").map(|(_, _, c)| c),
            Some(cas)
        );
        assert_eq!(touch(0).apply(&mut s, &now), simple("TOUCHED"));
        assert!(get(&mut s, &later(&now, 99_000), "k").is_some());
        assert_eq!(touch(-1).apply(&mut s, &now), simple("TOUCHED"));
        assert!(get(&mut s, &now, "k").is_none());
    }
}
