//! `HGET key field`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, bulk_or_null};
use crate::resp::Frame;
use crate::store::Store;

/// `HGET key field`: the field's value, nil if the key or field is absent
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HGet {
    /// The key
    pub key: Bytes,
    /// The field
    pub field: Bytes,
}

impl HGet {
    /// # Format
    /// `HGET key field`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(3, "hget")?;
        Ok(Self {
            key: args.bytes()?,
            field: args.bytes()?,
        })
    }
}

impl Unit for HGet {
    fn name(&self) -> &'static str {
        "hget"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        super::read(store, &self.key, now, |hash| {
            bulk_or_null(hash.and_then(|h| h.get(&self.field)).cloned())
        })
        .unwrap_or_else(|err| err)
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{bulk, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn value_or_nil() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["HGET", "h", "a"]), Frame::Null);
        run(&mut s, &now, &["HSET", "h", "a", "1"]);
        assert_eq!(run(&mut s, &now, &["HGET", "h", "a"]), bulk("1"));
        assert_eq!(run(&mut s, &now, &["HGET", "h", "b"]), Frame::Null);
        run(&mut s, &now, &["SET", "s", "v"]);
        assert_eq!(run(&mut s, &now, &["HGET", "s", "a"]), error(WRONGTYPE));
    }
}
