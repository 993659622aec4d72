//! `HSETNX key field value`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, wrong_type};
use crate::resp::Frame;
use crate::store::{MEMBER_OVERHEAD, Store, Value};

/// `HSETNX key field value`: set the field only if it is absent, creating
/// the hash if the key is absent; 1 if set, 0 if the field was there (its
/// value untouched)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HSetNx {
    /// The key
    pub key: Bytes,
    /// The field
    pub field: Bytes,
    /// The value
    pub value: Bytes,
}

impl HSetNx {
    /// # Format
    /// `HSETNX key field value`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(4, "hsetnx")?;
        Ok(Self {
            key: args.bytes()?,
            field: args.bytes()?,
            value: args.bytes()?,
        })
    }
}

impl Unit for HSetNx {
    fn name(&self) -> &'static str {
        "hsetnx"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        // A field already there is a no-op: it must neither evict nor be
        // refused for memory.
        match store.peek(&self.key, now.at) {
            Some(Value::Hash(hash)) if hash.get(&self.field).is_some() => {
                return Frame::Integer(0);
            }
            Some(Value::Hash(_)) | None => {}
            Some(_) => return wrong_type(),
        }
        let grow = self.field.len() + self.value.len() + MEMBER_OVERHEAD;
        super::write(store, &self.key, grow, now, |hash| {
            hash.get(&self.field).is_none() && hash.insert(self.field, self.value)
        })
        .map_or_else(|err| err, |set| Frame::Integer(i64::from(set)))
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::{arity, bulk, error, now, run, store};
    use crate::cmd::{OOM, WRONGTYPE};
    use crate::resp::Frame;
    use crate::store::EvictionPolicy;

    #[test]
    fn sets_only_an_absent_field() {
        let (mut s, now) = (store(), now());
        assert_eq!(
            run(&mut s, &now, &["HSETNX", "h", "a", "1"]),
            Frame::Integer(1)
        );
        assert_eq!(
            run(&mut s, &now, &["HSETNX", "h", "a", "2"]),
            Frame::Integer(0)
        );
        assert_eq!(run(&mut s, &now, &["HGET", "h", "a"]), bulk("1"));
        assert_eq!(
            run(&mut s, &now, &["HSETNX", "h", "b", "3"]),
            Frame::Integer(1)
        );
        assert_eq!(run(&mut s, &now, &["HLEN", "h"]), Frame::Integer(2));
        assert_eq!(
            run(&mut s, &now, &["HSETNX", "h", "a"]),
            error(&arity("hsetnx"))
        );
        assert_eq!(
            run(&mut s, &now, &["HSETNX", "h", "a", "1", "2"]),
            error(&arity("hsetnx"))
        );
        run(&mut s, &now, &["SET", "s", "v"]);
        assert_eq!(
            run(&mut s, &now, &["HSETNX", "s", "a", "1"]),
            error(WRONGTYPE)
        );
    }

    #[test]
    fn a_new_field_must_fit() {
        let (mut s, now) = (store(), now());
        s.set_policy(EvictionPolicy::NoEviction);
        s.set_max_bytes(100, now.at);
        run(&mut s, &now, &["HSET", "h", "a", "1"]);
        let big = "x".repeat(60);
        run(&mut s, &now, &["SET", "s", &big]);
        assert_eq!(run(&mut s, &now, &["HSETNX", "h", "b", "1"]), error(OOM));
        assert_eq!(run(&mut s, &now, &["HEXISTS", "h", "b"]), Frame::Integer(0));
        assert_eq!(
            run(&mut s, &now, &["HSETNX", "h", "a", "2"]),
            Frame::Integer(0)
        );
        assert!(s.bytes() <= 100);
    }
}
