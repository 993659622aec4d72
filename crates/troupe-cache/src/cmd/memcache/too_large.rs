//! A storage command over the item size limit

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{TOO_LARGE, peek_str};
use crate::cmd::{Now, ReadThrough, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// A storage command whose data was over the item size limit (the front end
/// read past the data without keeping it): memcached's
/// `SERVER_ERROR object too large for cache`; for a `set`, the old item is
/// dropped too, as memcached does rather than leave a value the client
/// meant to replace
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TooLarge {
    /// The key
    pub key: Bytes,
    /// Whether the command was a `set`
    pub set: bool,
}

impl Unit for TooLarge {
    /// Answered by the memcached front end itself on a read-through cache,
    /// changing nothing.
    const READ_THROUGH: ReadThrough = ReadThrough::Backed;

    fn name(&self) -> &'static str {
        "set"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        if self.set && peek_str(store, &self.key, now).is_some() {
            store.delete(&self.key, now.at);
        }
        Frame::Error(TOO_LARGE.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::memcache::testing_mc::b;
    use crate::cmd::testing::{now, run, store};

    #[test]
    fn a_set_too_large_drops_the_old_item() {
        let (mut s, now) = (store(), now());
        run(&mut s, &now, &["SET", "k", "v"]);
        let add = TooLarge {
            key: b("k"),
            set: false,
        };
        assert_eq!(add.apply(&mut s, &now), Frame::Error(TOO_LARGE.into()));
        assert_eq!(run(&mut s, &now, &["EXISTS", "k"]), Frame::Integer(1));
        let set = TooLarge {
            key: b("k"),
            set: true,
        };
        assert_eq!(set.apply(&mut s, &now), Frame::Error(TOO_LARGE.into()));
        assert_eq!(run(&mut s, &now, &["EXISTS", "k"]), Frame::Integer(0));
    }
}
