//! `DEL key [key ...]`, `UNLINK key [key ...]` (one key's part)

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Now, ReadThrough, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// One key's part of `DEL`/`UNLINK`: 1 if a key was removed
///
/// `UNLINK` is `DEL` here: freeing a value is never deferred, as values are
/// reference-counted and dropped where the last reference goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Del {
    /// The key
    pub key: Bytes,
}

impl Unit for Del {
    const READ_THROUGH: ReadThrough = ReadThrough::Backed;

    fn name(&self) -> &'static str {
        "del"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        Frame::Integer(i64::from(store.delete(&self.key, now.at)))
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::{arity, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn counts_the_keys_removed() {
        let (mut s, now) = (store(), now());
        run(&mut s, &now, &["SET", "a", "1"]);
        run(&mut s, &now, &["SADD", "b", "m"]);
        assert_eq!(
            run(&mut s, &now, &["DEL", "a", "b", "c", "a"]),
            Frame::Integer(2)
        );
        run(&mut s, &now, &["SET", "a", "1"]);
        assert_eq!(run(&mut s, &now, &["UNLINK", "a", "c"]), Frame::Integer(1));
        assert_eq!(run(&mut s, &now, &["DEL"]), error(&arity("del")));
        assert_eq!(run(&mut s, &now, &["UNLINK"]), error(&arity("unlink")));
    }
}
