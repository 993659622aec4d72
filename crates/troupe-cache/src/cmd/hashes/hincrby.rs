//! `HINCRBY key field increment`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, wrong_type};
use crate::resp::Frame;
use crate::resp::frame::parse_i64;
use crate::store::{MEMBER_OVERHEAD, Store, Value};

/// `HINCRBY key field increment`: add to the integer in the field (an
/// absent field or key counts as 0, and is created), keeping the key's
/// expiry; the new value. The hash is unchanged if the field is not a
/// decimal `i64` or the sum would overflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HIncrBy {
    /// The key
    pub key: Bytes,
    /// The field
    pub field: Bytes,
    /// The increment
    pub by: i64,
}

impl HIncrBy {
    /// # Format
    /// `HINCRBY key field increment`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(4, "hincrby")?;
        Ok(Self {
            key: args.bytes()?,
            field: args.bytes()?,
            by: args.int()?,
        })
    }
}

impl Unit for HIncrBy {
    fn name(&self) -> &'static str {
        "hincrby"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        // The new value is known before anything is reserved, so a refusal
        // evicts nothing and the reservation is exact.
        let current = match store.peek(&self.key, now.at) {
            None => None,
            Some(Value::Hash(hash)) => hash.get(&self.field).cloned(),
            Some(_) => return wrong_type(),
        };
        let (value, old_len) = match current {
            None => (0, None),
            Some(old) => match parse_i64(&old) {
                Some(n) => (n, Some(old.len())),
                None => return Frame::Error("ERR hash value is not an integer".into()),
            },
        };
        let Some(next) = value.checked_add(self.by) else {
            return Frame::Error("ERR increment or decrement would overflow".into());
        };
        let text = Bytes::from(next.to_string());
        let grow = match old_len {
            Some(old_len) => text.len().saturating_sub(old_len),
            None => self.field.len() + text.len() + MEMBER_OVERHEAD,
        };
        super::write(store, &self.key, grow, now, |hash| {
            hash.insert(self.field, text);
        })
        .map_or_else(|err| err, |()| Frame::Integer(next))
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::{arity, bulk, error, now, run, store};
    use crate::cmd::{OOM, WRONGTYPE};
    use crate::resp::Frame;
    use crate::store::EvictionPolicy;

    #[test]
    fn adds_from_zero_and_keeps_the_expiry() {
        let (mut s, now) = (store(), now());
        assert_eq!(
            run(&mut s, &now, &["HINCRBY", "h", "n", "5"]),
            Frame::Integer(5)
        );
        assert_eq!(
            run(&mut s, &now, &["HINCRBY", "h", "n", "-7"]),
            Frame::Integer(-2)
        );
        assert_eq!(run(&mut s, &now, &["HGET", "h", "n"]), bulk("-2"));
        assert_eq!(
            run(&mut s, &now, &["HINCRBY", "h", "m", "0"]),
            Frame::Integer(0)
        );
        assert_eq!(run(&mut s, &now, &["HGET", "h", "m"]), bulk("0"));
        run(&mut s, &now, &["EXPIRE", "h", "100"]);
        assert_eq!(
            run(&mut s, &now, &["HINCRBY", "h", "n", "1"]),
            Frame::Integer(-1)
        );
        assert_eq!(run(&mut s, &now, &["TTL", "h"]), Frame::Integer(100));
    }

    #[test]
    fn errors_are_redis_texts() {
        let (mut s, now) = (store(), now());
        let not_int = error("ERR hash value is not an integer");
        for value in [
            "abc",
            " 1",
            "1 ",
            "01",
            "+1",
            "-0",
            "1.5",
            "",
            "99999999999999999999",
        ] {
            run(&mut s, &now, &["HSET", "h", "f", value]);
            assert_eq!(
                run(&mut s, &now, &["HINCRBY", "h", "f", "1"]),
                not_int,
                "{value:?}"
            );
            assert_eq!(run(&mut s, &now, &["HGET", "h", "f"]), bulk(value));
        }
        let overflow = error("ERR increment or decrement would overflow");
        run(&mut s, &now, &["HSET", "h", "max", "9223372036854775807"]);
        assert_eq!(run(&mut s, &now, &["HINCRBY", "h", "max", "1"]), overflow);
        run(&mut s, &now, &["HSET", "h", "min", "-9223372036854775808"]);
        assert_eq!(run(&mut s, &now, &["HINCRBY", "h", "min", "-1"]), overflow);
        assert_eq!(
            run(&mut s, &now, &["HGET", "h", "min"]),
            bulk("-9223372036854775808")
        );
        let bad_arg = error("ERR value is not an integer or out of range");
        assert_eq!(run(&mut s, &now, &["HINCRBY", "h", "f", "x"]), bad_arg);
        assert_eq!(run(&mut s, &now, &["HINCRBY", "h", "f", "1.0"]), bad_arg);
        assert_eq!(
            run(&mut s, &now, &["HINCRBY", "h", "f"]),
            error(&arity("hincrby"))
        );
        run(&mut s, &now, &["SET", "s", "v"]);
        assert_eq!(
            run(&mut s, &now, &["HINCRBY", "s", "f", "1"]),
            error(WRONGTYPE)
        );
        // the increment is checked before the key, as Redis does
        assert_eq!(run(&mut s, &now, &["HINCRBY", "s", "f", "x"]), bad_arg);
    }

    #[test]
    fn a_new_field_must_fit() {
        let (mut s, now) = (store(), now());
        s.set_policy(EvictionPolicy::NoEviction);
        s.set_max_bytes(100, now.at);
        run(&mut s, &now, &["HSET", "h", "a", "1"]);
        let big = "x".repeat(60);
        run(&mut s, &now, &["SET", "s", &big]);
        assert_eq!(run(&mut s, &now, &["HINCRBY", "h", "b", "1"]), error(OOM));
        assert_eq!(run(&mut s, &now, &["HLEN", "h"]), Frame::Integer(1));
        assert_eq!(
            run(&mut s, &now, &["HINCRBY", "h", "a", "1"]),
            Frame::Integer(2)
        );
        assert!(s.bytes() <= 100);
    }
}
