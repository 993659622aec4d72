//! `HEXISTS key field`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// `HEXISTS key field`: 1 if the hash has the field, 0 if not or if the
/// key is absent
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HExists {
    /// The key
    pub key: Bytes,
    /// The field
    pub field: Bytes,
}

impl HExists {
    /// # Format
    /// `HEXISTS key field`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(3, "hexists")?;
        Ok(Self {
            key: args.bytes()?,
            field: args.bytes()?,
        })
    }
}

impl Unit for HExists {
    fn name(&self) -> &'static str {
        "hexists"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        super::read(store, &self.key, now, |hash| {
            Frame::Integer(i64::from(
                hash.is_some_and(|h| h.get(&self.field).is_some()),
            ))
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
    fn one_or_zero() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["HEXISTS", "h", "a"]), Frame::Integer(0));
        run(&mut s, &now, &["HSET", "h", "a", ""]);
        assert_eq!(run(&mut s, &now, &["HEXISTS", "h", "a"]), Frame::Integer(1));
        assert_eq!(run(&mut s, &now, &["HEXISTS", "h", "b"]), Frame::Integer(0));
        assert_eq!(
            run(&mut s, &now, &["HEXISTS", "h"]),
            error(&arity("hexists"))
        );
        run(&mut s, &now, &["SET", "s", "v"]);
        assert_eq!(run(&mut s, &now, &["HEXISTS", "s", "a"]), error(WRONGTYPE));
    }
}
