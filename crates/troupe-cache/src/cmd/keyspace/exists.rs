//! `EXISTS key [key ...]` (one key's part)

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Now, ReadThrough, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// One key's part of `EXISTS`: 1 if the key exists (a key named twice
/// counts twice)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exists {
    /// The key
    pub key: Bytes,
}

impl Unit for Exists {
    const READ_THROUGH: ReadThrough = ReadThrough::Cached;

    fn name(&self) -> &'static str {
        "exists"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        Frame::Integer(i64::from(store.exists(&self.key, now.at)))
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::{now, run, store};
    use crate::resp::Frame;

    #[test]
    fn counts_repeats() {
        let (mut s, now) = (store(), now());
        run(&mut s, &now, &["SET", "a", "1"]);
        run(&mut s, &now, &["RPUSH", "l", "1"]);
        assert_eq!(
            run(&mut s, &now, &["EXISTS", "a", "l", "x", "a"]),
            Frame::Integer(3)
        );
    }
}
