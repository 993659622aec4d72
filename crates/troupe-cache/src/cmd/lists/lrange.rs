//! `LRANGE key start stop`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// `LRANGE key start stop`: the elements from `start` to `stop` inclusive,
/// 0 the head and negative offsets counting from the tail, clamped to the
/// list; empty if nothing is in range or the key is absent
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LRange {
    /// The key
    pub key: Bytes,
    /// The first offset
    pub start: i64,
    /// The last offset
    pub stop: i64,
}

impl LRange {
    /// # Format
    /// `LRANGE key start stop`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(4, "lrange")?;
        Ok(Self {
            key: args.bytes()?,
            start: args.int()?,
            stop: args.int()?,
        })
    }
}

/// The inclusive positions `start..=stop` of a list of `len` elements, as
/// Redis's `LRANGE` clamps them; `None` if empty.
///
/// Not `GETRANGE`'s clamp: a `stop` before the head makes the range empty
/// here, where `GETRANGE` clamps it to the first byte.
fn list_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let start = if start < 0 { len + start } else { start }.max(0);
    let stop = if stop < 0 { len + stop } else { stop };
    if start > stop || start >= len {
        return None;
    }
    let stop = stop.min(len - 1);
    Some((usize::try_from(start).ok()?, usize::try_from(stop).ok()?))
}

impl Unit for LRange {
    fn name(&self) -> &'static str {
        "lrange"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        super::read(store, &self.key, now, |list| {
            let items = list.and_then(|list| {
                let (start, stop) = list_range(self.start, self.stop, list.len())?;
                Some(list.range(start, stop).cloned().map(Frame::Bulk).collect())
            });
            Frame::Array(items.unwrap_or_default())
        })
        .unwrap_or_else(|err| err)
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{arity, bulks, error, now, run, store};

    #[test]
    fn ranges_as_redis_documents() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["LRANGE", "l", "0", "-1"]), bulks(&[]));
        run(&mut s, &now, &["RPUSH", "l", "a", "b", "c", "d", "e"]);
        for (start, stop, want) in [
            ("0", "-1", &["a", "b", "c", "d", "e"][..]),
            ("0", "0", &["a"]),
            ("-2", "-1", &["d", "e"]),
            ("1", "3", &["b", "c", "d"]),
            ("2", "-1", &["c", "d", "e"]),
            ("-100", "100", &["a", "b", "c", "d", "e"]),
            ("-100", "-5", &["a"]),
            ("-100", "-6", &[]),
            ("-100", "-50", &[]),
            ("3", "1", &[]),
            ("-1", "-2", &[]),
            ("4", "4", &["e"]),
            ("5", "10", &[]),
            (
                "-9223372036854775808",
                "9223372036854775807",
                &["a", "b", "c", "d", "e"],
            ),
        ] {
            assert_eq!(
                run(&mut s, &now, &["LRANGE", "l", start, stop]),
                bulks(want),
                "{start} {stop}"
            );
        }
        assert_eq!(
            run(&mut s, &now, &["LRANGE", "l", "a", "1"]),
            error("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(&mut s, &now, &["LRANGE", "l", "0"]),
            error(&arity("lrange"))
        );
        run(&mut s, &now, &["SET", "s", "v"]);
        assert_eq!(
            run(&mut s, &now, &["LRANGE", "s", "0", "-1"]),
            error(WRONGTYPE)
        );
    }
}
