//! `GETRANGE key start end`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::cmd::{Args, CommandError, Now, Unit};
use crate::resp::Frame;
use crate::store::Store;

/// `GETRANGE key start end`: the bytes from `start` to `end` inclusive,
/// negative offsets counting from the end, clamped to the string; empty if
/// absent, `WRONGTYPE` for another type
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRange {
    /// The key
    pub key: Bytes,
    /// The first offset
    pub start: i64,
    /// The last offset
    pub end: i64,
}

impl GetRange {
    /// # Format
    /// `GETRANGE key start end`
    pub(crate) fn parse(args: &mut Args) -> Result<Self, CommandError> {
        args.exactly(4, "getrange")?;
        Ok(Self {
            key: args.bytes()?,
            start: args.int()?,
            end: args.int()?,
        })
    }
}

/// The inclusive range `start..=end` of a sequence of `len` elements,
/// negative offsets from the end, as Redis clamps it; `None` if empty.
pub(crate) fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    if (start < 0 && end < 0 && start > end) || len == 0 {
        return None;
    }
    let start = if start < 0 { len + start } else { start }.max(0);
    let end = if end < 0 { len + end } else { end }.max(0).min(len - 1);
    if start > end {
        return None;
    }
    // both within 0..len
    Some((start as usize, end as usize))
}

impl Unit for GetRange {
    fn name(&self) -> &'static str {
        "getrange"
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        match super::read(store, &self.key, now) {
            Err(err) => err,
            Ok(None) => Frame::Bulk(Bytes::new()),
            Ok(Some(value)) => match clamp_range(self.start, self.end, value.len()) {
                None => Frame::Bulk(Bytes::new()),
                Some((start, end)) => Frame::Bulk(value.slice(start..=end)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::WRONGTYPE;
    use crate::cmd::testing::{bulk, error, now, run, store};

    #[test]
    fn ranges_as_redis_documents() {
        let (mut s, now) = (store(), now());
        assert_eq!(run(&mut s, &now, &["GETRANGE", "k", "0", "-1"]), bulk(""));
        run(&mut s, &now, &["SET", "k", "This is a string"]);
        for (start, end, want) in [
            ("0", "3", "This"),
            ("-3", "-1", "ing"),
            ("0", "-1", "This is a string"),
            ("10", "100", "string"),
            ("5", "3", ""),
            ("-1", "-5", ""),
            ("-100", "2", "Thi"),
            ("100", "200", ""),
        ] {
            assert_eq!(
                run(&mut s, &now, &["GETRANGE", "k", start, end]),
                bulk(want),
                "{start} {end}"
            );
        }
        assert_eq!(run(&mut s, &now, &["SUBSTR", "k", "0", "3"]), bulk("This"));
        assert_eq!(
            run(&mut s, &now, &["GETRANGE", "k", "a", "1"]),
            error("ERR value is not an integer or out of range")
        );
        run(&mut s, &now, &["HSET", "h", "f", "v"]);
        assert_eq!(
            run(&mut s, &now, &["GETRANGE", "h", "0", "1"]),
            error(WRONGTYPE)
        );
    }
}
