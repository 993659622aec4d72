//! `INCR key`, `DECR key`, `INCRBY key n`, `DECRBY key n`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, store_error, wrong_type};
use crate::resp::Frame;
use crate::resp::frame::parse_i64;
use crate::store::{Store, StoreError, Value};

/// Why [`incr_by`] refused
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncrError {
    /// The value is not a decimal `i64`
    NotAnInteger,
    /// The result does not fit an `i64`
    Overflow,
    /// The key holds another type
    WrongType,
    /// The store refused the write
    Store(StoreError),
}

impl IncrError {
    /// The reply Redis gives
    pub fn reply(&self) -> Frame {
        match self {
            Self::NotAnInteger => {
                Frame::Error("ERR value is not an integer or out of range".into())
            }
            Self::Overflow => Frame::Error("ERR increment or decrement would overflow".into()),
            Self::WrongType => wrong_type(),
            Self::Store(err) => store_error(err),
        }
    }
}

/// Adds `by` to the integer at `key` (absent counts as 0), keeping its
/// expiry; the new value. Shared by the command and the shard's typed
/// message.
///
/// # Errors
///
/// [`IncrError`]; the store is then unchanged.
pub fn incr_by(store: &mut Store, key: &Bytes, by: i64, now: &Now) -> Result<i64, IncrError> {
    let current = match store.peek(key, now.at) {
        None => 0,
        Some(Value::Str(v)) => parse_i64(v).ok_or(IncrError::NotAnInteger)?,
        Some(_) => return Err(IncrError::WrongType),
    };
    let next = current.checked_add(by).ok_or(IncrError::Overflow)?;
    let text = Bytes::from(next.to_string());
    // at most 20 digits and a sign
    store.reserve(key, 21, now.at).map_err(IncrError::Store)?;
    let mut text = Some(text);
    let replaced = store.modify(key, now.at, |value| {
        if let Some(text) = text.take() {
            *value = Value::Str(text);
        }
    });
    if replaced.is_none()
        && let Some(text) = text
    {
        store
            .insert(key.clone(), Value::Str(text), None, now.at)
            .map_err(IncrError::Store)?;
    }
    Ok(next)
}

/// `INCR`, `DECR`, `INCRBY`, `DECRBY`: add to the integer at `key`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncrBy {
    /// The key
    pub key: Bytes,
    /// The increment (negated for `DECR`/`DECRBY`)
    pub by: i64,
}

impl IncrBy {
    /// # Format
    /// `INCR key`, `DECR key`
    pub(crate) fn parse_step(
        args: &mut Args,
        name: &'static str,
        by: i64,
    ) -> Result<Self, CommandError> {
        args.exactly(2, name)?;
        Ok(Self {
            key: args.bytes()?,
            by,
        })
    }

    /// # Format
    /// `INCRBY key increment`, `DECRBY key decrement`
    pub(crate) fn parse_by(
        args: &mut Args,
        name: &'static str,
        negate: bool,
    ) -> Result<Self, CommandError> {
        args.exactly(3, name)?;
        let key = args.bytes()?;
        let n = args.int()?;
        let by = if negate {
            n.checked_neg()
                .ok_or(CommandError::Invalid("decrement would overflow"))?
        } else {
            n
        };
        Ok(Self { key, by })
    }
}

impl Unit for IncrBy {
    fn name(&self) -> &'static str {
        "incrby"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        incr_by(store, &self.key, self.by, now).map_or_else(|err| err.reply(), Frame::Integer)
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{arity, bulk, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn counts_and_keeps_the_expiry() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["INCR", "n"]), Frame::Integer(1));
        assert_eq!(
            run(&mut s, &now, &["INCRBY", "n", "10"]),
            Frame::Integer(11)
        );
        assert_eq!(run(&mut s, &now, &["DECR", "n"]), Frame::Integer(10));
        assert_eq!(
            run(&mut s, &now, &["DECRBY", "n", "-5"]),
            Frame::Integer(15)
        );
        run(&mut s, &now, &["EXPIRE", "n", "100"]);
        assert_eq!(run(&mut s, &now, &["INCR", "n"]), Frame::Integer(16));
        assert_eq!(run(&mut s, &now, &["TTL", "n"]), Frame::Integer(100));
        assert_eq!(run(&mut s, &now, &["GET", "n"]), bulk("16"));
    }

    #[test]
    fn making_room_never_evicts_the_counter_being_written() {
        let now = now();
        let mut s = crate::store::Store::new(std::num::NonZeroUsize::new(100).unwrap(), 40);
        s.set_policy(crate::store::EvictionPolicy::VolatileLru);
        run(&mut s, &now, &["SET", "n", "9", "EX", "100"]);
        run(&mut s, &now, &["SET", "p1", "xxxxxxxxxxxxxxxx"]);
        // full: INCR needs room, and the only key with an expiry is the counter itself
        assert_eq!(
            run(&mut s, &now, &["SET", "p2", "xxxxxxxxxxxx"]),
            crate::cmd::ok()
        );
        let reply = run(&mut s, &now, &["INCR", "n"]);
        // refused, or done on the counter as it was: never 10 without its expiry
        if reply == Frame::Integer(10) {
            assert_eq!(run(&mut s, &now, &["TTL", "n"]), Frame::Integer(100));
        } else {
            assert_eq!(reply, error(crate::cmd::OOM));
            assert_eq!(run(&mut s, &now, &["GET", "n"]), bulk("9"));
        }
    }

    #[test]
    fn errors_are_redis_texts() {
        let (mut s, now) = (store(), now());
        let not_int = error("ERR value is not an integer or out of range");
        for value in [
            "abc",
            " 1",
            "1 ",
            "01",
            "+1",
            "1.5",
            "",
            "99999999999999999999",
        ] {
            run(&mut s, &now, &["SET", "k", value]);
            assert_eq!(run(&mut s, &now, &["INCR", "k"]), not_int, "{value:?}");
        }
        run(&mut s, &now, &["SET", "k", "9223372036854775807"]);
        assert_eq!(
            run(&mut s, &now, &["INCR", "k"]),
            error("ERR increment or decrement would overflow")
        );
        run(&mut s, &now, &["SET", "k", "-9223372036854775808"]);
        assert_eq!(
            run(&mut s, &now, &["DECR", "k"]),
            error("ERR increment or decrement would overflow")
        );
        assert_eq!(
            run(&mut s, &now, &["DECRBY", "k", "-9223372036854775808"]),
            error("ERR decrement would overflow")
        );
        assert_eq!(run(&mut s, &now, &["INCRBY", "k", "x"]), not_int);
        assert_eq!(run(&mut s, &now, &["INCR"]), error(&arity("incr")));
        run(&mut s, &now, &["RPUSH", "l", "1"]);
        assert_eq!(run(&mut s, &now, &["INCR", "l"]), error(WRONGTYPE));
    }
}
