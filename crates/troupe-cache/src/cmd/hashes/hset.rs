//! `HSET key field value [field value ...]`, `HMSET` (the same, replying OK)

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, count, ok};
use crate::resp::Frame;
use crate::store::{MEMBER_OVERHEAD, Store};

/// `HSET key field value [field value ...]`: set the fields, creating the
/// hash if absent; how many fields are new (`HMSET`: `OK`)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HSet {
    /// The key
    pub key: Bytes,
    /// The fields and their values
    pub pairs: Vec<(Bytes, Bytes)>,
    /// `HMSET`: reply `OK`
    pub ok_reply: bool,
}

impl HSet {
    /// # Format
    /// `HSET key field value [field value ...]`, `HMSET` alike
    pub(crate) fn parse(args: &mut Args, hmset: bool) -> Result<Self, CommandError> {
        let name = if hmset { "hmset" } else { "hset" };
        if args.argc() < 4 || !args.argc().is_multiple_of(2) {
            return Err(CommandError::WrongArity(name));
        }
        let key = args.bytes()?;
        let mut pairs = Vec::with_capacity(args.argc() / 2 - 1);
        while args.remaining() > 0 {
            pairs.push((args.bytes()?, args.bytes()?));
        }
        Ok(Self {
            key,
            pairs,
            ok_reply: hmset,
        })
    }
}

impl Unit for HSet {
    fn name(&self) -> &'static str {
        if self.ok_reply { "hmset" } else { "hset" }
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        let grow = self
            .pairs
            .iter()
            .map(|(f, v)| f.len() + v.len() + MEMBER_OVERHEAD)
            .sum();
        let ok_reply = self.ok_reply;
        let added = super::write(store, &self.key, grow, now, |hash| {
            self.pairs
                .into_iter()
                .filter(|(field, value)| hash.insert(field.clone(), value.clone()))
                .count()
        });
        match added {
            Ok(_) if ok_reply => ok(),
            Ok(n) => count(n),
            Err(err) => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::{arity, bulk, error, now, run, store};
    use crate::cmd::{WRONGTYPE, ok};
    use crate::resp::Frame;

    #[test]
    fn counts_new_fields() {
        let (mut s, now) = (store(), now());
        assert_eq!(
            run(&mut s, &now, &["HSET", "h", "a", "1", "b", "2"]),
            Frame::Integer(2)
        );
        assert_eq!(
            run(&mut s, &now, &["HSET", "h", "a", "9", "c", "3"]),
            Frame::Integer(1)
        );
        assert_eq!(run(&mut s, &now, &["HGET", "h", "a"]), bulk("9"));
        assert_eq!(run(&mut s, &now, &["HMSET", "h", "d", "4"]), ok());
        assert_eq!(
            run(&mut s, &now, &["HSET", "h", "a"]),
            error(&arity("hset"))
        );
        assert_eq!(run(&mut s, &now, &["HSET", "h"]), error(&arity("hset")));
        run(&mut s, &now, &["SET", "s", "v"]);
        assert_eq!(
            run(&mut s, &now, &["HSET", "s", "a", "1"]),
            error(WRONGTYPE)
        );
    }
}
