//! `HDEL key field [field ...]`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, count};
use crate::resp::Frame;
use crate::store::Store;

/// `HDEL key field [field ...]`: remove the fields; how many were there
/// (0 if the key is absent). A hash left without fields is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HDel {
    /// The key
    pub key: Bytes,
    /// The fields to remove
    pub fields: Vec<Bytes>,
}

impl HDel {
    /// # Format
    /// `HDEL key field [field ...]`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.at_least(3, "hdel")?;
        Ok(Self {
            key: args.bytes()?,
            fields: args.rest()?,
        })
    }
}

impl Unit for HDel {
    fn name(&self) -> &'static str {
        "hdel"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        super::modify(store, &self.key, now, |hash| {
            self.fields.iter().filter(|f| hash.remove(f)).count()
        })
        .map_or_else(|err| err, |removed| count(removed.unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{arity, bulk, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn counts_removed_fields_and_drops_an_empty_hash() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["HDEL", "h", "a"]), Frame::Integer(0));
        run(&mut s, &now, &["HSET", "h", "a", "1", "b", "2", "c", "3"]);
        assert_eq!(
            run(&mut s, &now, &["HDEL", "h", "a", "x", "a"]),
            Frame::Integer(1)
        );
        assert_eq!(run(&mut s, &now, &["HGET", "h", "a"]), Frame::Null);
        assert_eq!(run(&mut s, &now, &["HGET", "h", "b"]), bulk("2"));
        assert_eq!(
            run(&mut s, &now, &["HDEL", "h", "b", "c"]),
            Frame::Integer(2)
        );
        assert_eq!(run(&mut s, &now, &["EXISTS", "h"]), Frame::Integer(0));
        assert_eq!(run(&mut s, &now, &["HDEL", "h"]), error(&arity("hdel")));
        run(&mut s, &now, &["SET", "s", "v"]);
        assert_eq!(run(&mut s, &now, &["HDEL", "s", "a"]), error(WRONGTYPE));
        assert_eq!(run(&mut s, &now, &["EXISTS", "s"]), Frame::Integer(1));
    }
}
