//! `APPEND key value`

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit, count, store_error, wrong_type};
use crate::resp::Frame;
use crate::resp::frame::DEFAULT_MAX_BULK_LEN;
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

/// Edits the string at `key` in place with `edit`, keeping its expiry, or creates it from
/// an empty one; `WRONGTYPE` for another type, OOM if it does not fit (`grow` bounds the bytes
/// `edit` adds). The new string's length.
///
/// The string's buffer is reused when nothing else holds it (a reply still being written
/// may), and grows with spare room, so appending is amortised O(1) per byte as in Redis,
/// not a copy of the whole string per command.
pub(crate) fn rewrite(
    store: &mut Store,
    key: &Bytes,
    grow: usize,
    now: &Now,
    edit: impl FnOnce(&mut BytesMut),
) -> Result<usize, Frame> {
    if let Some(value) = store.peek(key, now.at)
        && !matches!(value, Value::Str(_))
    {
        return Err(wrong_type());
    }
    store
        .reserve(key, grow, now.at)
        .map_err(|e| store_error(&e))?;
    let mut edit = Some(edit);
    let changed = store.modify(key, now.at, |value| match value {
        Value::Str(old) => {
            let mut buf = std::mem::take(old)
                .try_into_mut()
                .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
            if let Some(edit) = edit.take() {
                edit(&mut buf);
            }
            let len = buf.len();
            *old = buf.freeze();
            len
        }
        _ => 0,
    });
    if let Some(len) = changed {
        return Ok(len);
    }
    let Some(edit) = edit else {
        return Ok(0);
    };
    let mut buf = BytesMut::new();
    edit(&mut buf);
    let len = buf.len();
    store
        .insert(key.clone(), Value::Str(buf.freeze()), None, now.at)
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
        let current = match super::peek(store, &self.key, now) {
            Ok(current) => current.map_or(0, |v| v.len()),
            Err(err) => return err,
        };
        if current.saturating_add(self.value.len()) > DEFAULT_MAX_BULK_LEN {
            return Frame::Error(
                "ERR string exceeds maximum allowed size (proto-max-bulk-len)".into(),
            );
        }
        let suffix = self.value;
        rewrite(store, &self.key, suffix.len(), now, |buf| {
            buf.extend_from_slice(&suffix);
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

    #[test]
    fn appending_reuses_the_buffer() {
        let (mut s, now) = (store(), now());
        run(&mut s, &now, &["APPEND", "k", "a"]);
        let address = |s: &mut crate::store::Store| match s.peek(b"k", now.at) {
            Some(crate::store::Value::Str(b)) => b.as_ptr() as usize,
            _ => 0,
        };
        run(&mut s, &now, &["APPEND", "k", "b"]);
        let first = address(&mut s);
        // grown with spare room: the next appends land in the same buffer
        for _ in 0..3 {
            run(&mut s, &now, &["APPEND", "k", "c"]);
        }
        assert_eq!(address(&mut s), first);
        assert_eq!(run(&mut s, &now, &["GET", "k"]), bulk("abccc"));
    }
}
