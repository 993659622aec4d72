//! `HMGET key field [field ...]`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, bulk_or_null};
use crate::resp::Frame;
use crate::store::Store;

/// `HMGET key field [field ...]`: each field's value in the order asked,
/// nil for a field that is absent, all nils if the key is absent
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HMGet {
    /// The key
    pub key: Bytes,
    /// The fields, in the order of the reply
    pub fields: Vec<Bytes>,
}

impl HMGet {
    /// # Format
    /// `HMGET key field [field ...]`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.at_least(3, "hmget")?;
        Ok(Self {
            key: args.bytes()?,
            fields: args.rest()?,
        })
    }
}

impl Unit for HMGet {
    fn name(&self) -> &'static str {
        "hmget"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        super::read(store, &self.key, now, |hash| {
            Frame::Array(
                self.fields
                    .iter()
                    .map(|field| bulk_or_null(hash.and_then(|h| h.get(field)).cloned()))
                    .collect(),
            )
        })
        .unwrap_or_else(|err| err)
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{arity, bulk, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn values_in_order_with_nils() {
        let (mut s, now) = (store(), now());
        assert_eq!(
            run(&mut s, &now, &["HMGET", "h", "a", "b"]),
            Frame::Array(vec![Frame::Null, Frame::Null])
        );
        run(&mut s, &now, &["HSET", "h", "a", "1", "c", "3"]);
        assert_eq!(
            run(&mut s, &now, &["HMGET", "h", "c", "b", "a", "c"]),
            Frame::Array(vec![bulk("3"), Frame::Null, bulk("1"), bulk("3")])
        );
        assert_eq!(run(&mut s, &now, &["HMGET", "h"]), error(&arity("hmget")));
        run(&mut s, &now, &["SET", "s", "v"]);
        assert_eq!(run(&mut s, &now, &["HMGET", "s", "a"]), error(WRONGTYPE));
    }
}
