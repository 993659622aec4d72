//! `set`, `add`, `replace`, `cas`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{OUT_OF_MEMORY, expires_at, line, peek_str};
use crate::cmd::{Now, ReadThrough, Unit};
use crate::resp::Frame;
use crate::store::{Store, Value};

/// Which storage command, and so when it writes
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreMode {
    /// `set`: always
    Set,
    /// `add`: only if there is no item (an existing one is made the most
    /// recently used, as memcached does)
    Add,
    /// `replace`: only if there is an item
    Replace,
    /// `cas`: only if the item's CAS unique is this one (0 never matches)
    Cas(u64),
}

/// `set`/`add`/`replace`/`cas key flags exptime bytes [cas unique]`, with
/// its data: `STORED`, `NOT_STORED` (`add`, `replace`), `EXISTS` or
/// `NOT_FOUND` (`cas`), or memcached's out-of-memory error if the store
/// refuses the write (a refused `set` also drops the old item, as memcached
/// does rather than leave a value the client meant to replace)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Storage {
    /// Which command
    pub mode: StoreMode,
    /// The key
    pub key: Bytes,
    /// The client flags to store
    pub flags: u32,
    /// memcached's exptime (see [`expires_at`](super::expires_at))
    pub exptime: i64,
    /// The data
    pub value: Bytes,
}

impl Unit for Storage {
    /// The memcached front end writes a read-through cache's `set` (without
    /// flags or exptime) with the typed `CacheClient::set` and refuses the
    /// others there.
    const READ_THROUGH: ReadThrough = ReadThrough::Backed;

    fn name(&self) -> &'static str {
        match self.mode {
            StoreMode::Set => "set",
            StoreMode::Add => "add",
            StoreMode::Replace => "replace",
            StoreMode::Cas(_) => "cas",
        }
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        let existing = peek_str(store, &self.key, now).map(|(_, _, cas)| cas);
        match (self.mode, existing) {
            (StoreMode::Add, Some(_)) => {
                store.touch(&self.key, now.at);
                return line("NOT_STORED");
            }
            (StoreMode::Replace, None) => return line("NOT_STORED"),
            (StoreMode::Cas(_), None) => return line("NOT_FOUND"),
            (StoreMode::Cas(wanted), Some(cas)) if wanted != cas => return line("EXISTS"),
            _ => {}
        }
        let expiry = expires_at(self.exptime, now);
        match store.insert_flagged(
            self.key.clone(),
            Value::Str(self.value),
            self.flags,
            expiry,
            now.at,
        ) {
            Ok(_) => line("STORED"),
            Err(_) => {
                if self.mode == StoreMode::Set && existing.is_some() {
                    store.delete(&self.key, now.at);
                }
                Frame::Error(OUT_OF_MEMORY.into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;
    use crate::cmd::memcache::testing_mc::{get, simple, store_cmd};
    use crate::cmd::testing::{later, now, run, store};

    #[test]
    fn add_replace_and_set_as_memcached() {
        let (mut s, now) = (store(), now());
        let stored = simple("STORED");
        let not_stored = simple("NOT_STORED");
        assert_eq!(
            store_cmd(StoreMode::Replace, "k", 0, 0, "a").apply(&mut s, &now),
            not_stored
        );
        assert_eq!(
            store_cmd(StoreMode::Add, "k", 1, 0, "a").apply(&mut s, &now),
            stored
        );
        assert_eq!(
            store_cmd(StoreMode::Add, "k", 2, 0, "b").apply(&mut s, &now),
            not_stored
        );
        assert_eq!(
            get(&mut s, &now, "k").map(|(v, f, _)| (v, f)),
            Some(("a".into(), 1))
        );
        assert_eq!(
            store_cmd(StoreMode::Replace, "k", 3, 0, "c").apply(&mut s, &now),
            stored
        );
        assert_eq!(
            store_cmd(StoreMode::Set, "k", 4, 0, "d").apply(&mut s, &now),
            stored
        );
        assert_eq!(
            get(&mut s, &now, "k").map(|(v, f, _)| (v, f)),
            Some(("d".into(), 4))
        );
        // RESP sees a string
        assert_eq!(run(&mut s, &now, &["GET", "k"]), Frame::Bulk("d".into()));
        // a set over a list replaces it; add over a hash adds
        run(&mut s, &now, &["RPUSH", "l", "x"]);
        assert_eq!(
            store_cmd(StoreMode::Replace, "l", 0, 0, "v").apply(&mut s, &now),
            not_stored
        );
        assert_eq!(
            store_cmd(StoreMode::Set, "l", 0, 0, "v").apply(&mut s, &now),
            stored
        );
        assert_eq!(
            run(&mut s, &now, &["TYPE", "l"]),
            Frame::Simple("string".into())
        );
        run(&mut s, &now, &["HSET", "h", "f", "v"]);
        assert_eq!(
            store_cmd(StoreMode::Add, "h", 0, 0, "v").apply(&mut s, &now),
            stored
        );
    }

    #[test]
    fn cas_compares_the_unique() {
        let (mut s, now) = (store(), now());
        assert_eq!(
            store_cmd(StoreMode::Cas(1), "k", 0, 0, "a").apply(&mut s, &now),
            simple("NOT_FOUND")
        );
        store_cmd(StoreMode::Set, "k", 0, 0, "a").apply(&mut s, &now);
        let (_, _, cas) = get(&mut s, &now, "k").unwrap();
        let cas = u64::try_from(cas).unwrap();
        assert_eq!(
            store_cmd(StoreMode::Cas(0), "k", 0, 0, "b").apply(&mut s, &now),
            simple("EXISTS")
        );
        assert_eq!(
            store_cmd(StoreMode::Cas(cas + 1), "k", 0, 0, "b").apply(&mut s, &now),
            simple("EXISTS")
        );
        assert_eq!(
            store_cmd(StoreMode::Cas(cas), "k", 5, 0, "b").apply(&mut s, &now),
            simple("STORED")
        );
        assert_eq!(
            store_cmd(StoreMode::Cas(cas), "k", 5, 0, "c").apply(&mut s, &now),
            simple("EXISTS")
        );
        assert_eq!(
            get(&mut s, &now, "k").map(|(v, f, _)| (v, f)),
            Some(("b".into(), 5))
        );
    }

    #[test]
    fn exptimes_and_refusals() {
        let (mut s, now) = (store(), now());
        store_cmd(StoreMode::Set, "k", 0, 2, "v").apply(&mut s, &now);
        assert!(get(&mut s, &later(&now, 1_999), "k").is_some());
        assert!(get(&mut s, &later(&now, 2_000), "k").is_none());
        // negative: stored, and gone at once
        assert_eq!(
            store_cmd(StoreMode::Set, "k", 0, -1, "v").apply(&mut s, &now),
            simple("STORED")
        );
        assert!(get(&mut s, &now, "k").is_none());
        // a set the store refuses drops the old item
        let mut small = Store::new(NonZeroUsize::new(10).unwrap(), 8);
        store_cmd(StoreMode::Set, "k", 0, 0, "v").apply(&mut small, &now);
        assert_eq!(
            store_cmd(StoreMode::Set, "k", 0, 0, "123456789").apply(&mut small, &now),
            Frame::Error(OUT_OF_MEMORY.into())
        );
        assert!(get(&mut small, &now, "k").is_none());
        // a refused replace keeps it
        store_cmd(StoreMode::Set, "k", 0, 0, "v").apply(&mut small, &now);
        store_cmd(StoreMode::Replace, "k", 0, 0, "123456789").apply(&mut small, &now);
        assert!(get(&mut small, &now, "k").is_some());
    }
}
