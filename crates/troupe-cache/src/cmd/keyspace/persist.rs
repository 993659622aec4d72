//! `PERSIST key`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, ReadThrough, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// `PERSIST key`: remove the expiry; 1 if there was one
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persist {
    /// The key
    pub key: Bytes,
}

impl Persist {
    /// # Format
    /// `PERSIST key`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(2, "persist")?;
        Ok(Self { key: args.bytes()? })
    }
}

impl Unit for Persist {
    // on a read-through cache an expiry is the fill TTL's, which bounds how stale a
    // value filled before an outside write can be: not the client's to lift or extend
    const READ_THROUGH: ReadThrough = ReadThrough::Refused;

    fn name(&self) -> &'static str {
        "persist"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        Frame::Integer(i64::from(store.persist(&self.key, now.at)))
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::{now, run, store};
    use crate::resp::Frame;

    #[test]
    fn removes_an_expiry_once() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["PERSIST", "k"]), Frame::Integer(0));
        run(&mut s, &now, &["SET", "k", "v", "EX", "10"]);
        assert_eq!(run(&mut s, &now, &["PERSIST", "k"]), Frame::Integer(1));
        assert_eq!(run(&mut s, &now, &["PERSIST", "k"]), Frame::Integer(0));
        assert_eq!(run(&mut s, &now, &["TTL", "k"]), Frame::Integer(-1));
    }
}
