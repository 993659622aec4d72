//! `HLEN key`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, count};
use crate::resp::Frame;
use crate::store::Store;

/// `HLEN key`: how many fields, 0 if the key is absent
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HLen {
    /// The key
    pub key: Bytes,
}

impl HLen {
    /// # Format
    /// `HLEN key`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(2, "hlen")?;
        Ok(Self { key: args.bytes()? })
    }
}

impl Unit for HLen {
    fn name(&self) -> &'static str {
        "hlen"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        super::read(store, &self.key, now, |hash| {
            count(hash.map_or(0, |h| h.len()))
        })
        .unwrap_or_else(|err| err)
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{arity, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn fields_or_zero() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["HLEN", "h"]), Frame::Integer(0));
        run(&mut s, &now, &["HSET", "h", "a", "1", "b", "2"]);
        run(&mut s, &now, &["HSET", "h", "a", "3"]);
        assert_eq!(run(&mut s, &now, &["HLEN", "h"]), Frame::Integer(2));
        assert_eq!(run(&mut s, &now, &["HLEN"]), error(&arity("hlen")));
        run(&mut s, &now, &["SET", "s", "v"]);
        assert_eq!(run(&mut s, &now, &["HLEN", "s"]), error(WRONGTYPE));
    }
}
