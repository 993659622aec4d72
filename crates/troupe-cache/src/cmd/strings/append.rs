//! `APPEND key value`

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, count, store_error, wrong_type};
use crate::resp::Frame;
use crate::store::{Store, Value};

/// `APPEND key value`: the string grown by `value` (created if absent,
/// expiry kept); the new length
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Append {
    /// The key
    pub key: Bytes,
    /// What to append
    pub value: Bytes,
}

impl Append {
    /// # Format
    /// `APPEND key value`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(3, "append")?;
        Ok(Self {
            key: args.bytes()?,
            value: args.bytes()?,
        })
    }
}

/// Replaces the string at `key` by `make(old)`, keeping its expiry, or
/// creates it from `make(empty)`; `WRONGTYPE` for another type, OOM if it
/// does not fit. The new string's length.
pub(crate) fn rewrite(
    store: &mut Store,
    key: &Bytes,
    grow: usize,
    now: &Now,
    make: impl FnOnce(&[u8]) -> Bytes,
) -> Result<usize, Frame> {
    if let Some(value) = store.peek(key, now.at)
        && !matches!(value, Value::Str(_))
    {
        return Err(wrong_type());
    }
    store
        .reserve(key, grow, now.at)
        .map_err(|e| store_error(&e))?;
    let mut make = Some(make);
    let changed = store.modify(key, now.at, |value| match value {
        Value::Str(old) => {
            let new = make.take().map(|make| make(old)).unwrap_or_default();
            let len = new.len();
            *old = new;
            len
        }
        _ => 0,
    });
    if let Some(len) = changed {
        return Ok(len);
    }
    let Some(make) = make else {
        return Ok(0);
    };
    let new = make(&[]);
    let len = new.len();
    store
        .insert(key.clone(), Value::Str(new), None, now.at)
        .map_err(|e| store_error(&e))?;
    Ok(len)
}

impl Unit for Append {
    fn name(&self) -> &'static str {
        "append"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        let suffix = self.value;
        let grow = suffix.len();
        rewrite(store, &self.key, grow, now, |old| {
            let mut new = BytesMut::with_capacity(old.len() + suffix.len());
            new.extend_from_slice(old);
            new.extend_from_slice(&suffix);
            new.freeze()
        })
        .map_or_else(|err| err, count)
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{bulk, error, now, run, store};
    use crate::resp::Frame;

    #[test]
    fn appends_and_keeps_the_expiry() {
        let (mut s, now) = (store(), now());
        assert_eq!(
            run(&mut s, &now, &["APPEND", "k", "Hello"]),
            Frame::Integer(5)
        );
        run(&mut s, &now, &["EXPIRE", "k", "10"]);
        assert_eq!(
            run(&mut s, &now, &["APPEND", "k", " World"]),
            Frame::Integer(11)
        );
        assert_eq!(run(&mut s, &now, &["GET", "k"]), bulk("Hello World"));
        assert_eq!(run(&mut s, &now, &["TTL", "k"]), Frame::Integer(10));
        assert_eq!(run(&mut s, &now, &["APPEND", "e", ""]), Frame::Integer(0));
        assert_eq!(run(&mut s, &now, &["EXISTS", "e"]), Frame::Integer(1));
        run(&mut s, &now, &["LPUSH", "l", "x"]);
        assert_eq!(run(&mut s, &now, &["APPEND", "l", "x"]), error(WRONGTYPE));
    }
}
