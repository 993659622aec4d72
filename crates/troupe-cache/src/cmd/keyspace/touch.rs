//! `TOUCH key [key ...]` (one key's part)

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Now, ReadThrough, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// One key's part of `TOUCH`: makes the key the most recently used; 1 if
/// it exists
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touch {
    /// The key
    pub key: Bytes,
}

impl Unit for Touch {
    const READ_THROUGH: ReadThrough = ReadThrough::Cached;

    fn name(&self) -> &'static str {
        "touch"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        Frame::Integer(i64::from(store.touch(&self.key, now.at)))
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use crate::cmd::testing::{now, run};
    use crate::resp::Frame;
    use crate::store::Store;

    #[test]
    fn a_touched_key_outlives_colder_ones() {
        let now = now();
        let mut s = Store::new(NonZeroUsize::new(2).unwrap(), 1 << 10);
        run(&mut s, &now, &["SET", "a", "1"]);
        run(&mut s, &now, &["SET", "b", "1"]);
        assert_eq!(run(&mut s, &now, &["TOUCH", "a", "zz"]), Frame::Integer(1));
        run(&mut s, &now, &["SET", "c", "1"]);
        assert_eq!(run(&mut s, &now, &["EXISTS", "a", "b"]), Frame::Integer(1));
        assert_eq!(run(&mut s, &now, &["EXISTS", "a"]), Frame::Integer(1));
    }
}
