//! `incr`, `decr`

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{NON_NUMERIC, line, parse_u64, peek_str};
use crate::cmd::{Now, ReadThrough, Unit};
use crate::resp::Frame;
use crate::store::{Store, Value};

/// `incr`/`decr key delta`: the item's data read as a decimal `u64` (as
/// memcached's `safe_strtoull` reads it), plus `delta` wrapping at 2^64, or
/// minus `delta` stopping at 0; the new value, written in decimal and padded
/// with spaces to the old length if shorter (memcached's in-place update),
/// flags and exptime kept. `NOT_FOUND` without an item; memcached's
/// `CLIENT_ERROR` for data that is not a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arith {
    /// The key
    pub key: Bytes,
    /// `incr` (else `decr`)
    pub incr: bool,
    /// How much to add or take away
    pub delta: u64,
}

impl Unit for Arith {
    /// Refused by the memcached front end on a read-through cache.
    const READ_THROUGH: ReadThrough = ReadThrough::Backed;

    fn name(&self) -> &'static str {
        if self.incr { "incr" } else { "decr" }
    }

    fn key(&self) -> &Bytes {
        &self.key
    }

    fn apply(self, store: &mut Store, now: &Now) -> Frame {
        let Some((old, _, _)) = peek_str(store, &self.key, now) else {
            return line("NOT_FOUND");
        };
        let Some(current) = parse_u64(&old) else {
            return Frame::Error(NON_NUMERIC.into());
        };
        let next = if self.incr {
            current.wrapping_add(self.delta)
        } else {
            current.saturating_sub(self.delta)
        };
        let digits = next.to_string();
        let mut text = digits.clone().into_bytes();
        if text.len() < old.len() {
            text.resize(old.len(), b' ');
        }
        let grow = text.len().saturating_sub(old.len());
        if store.reserve(&self.key, grow, now.at).is_err() {
            return Frame::Error("SERVER_ERROR out of memory".into());
        }
        let text = Bytes::from(text);
        store.modify(&self.key, now.at, |value| *value = Value::Str(text));
        Frame::Simple(digits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::memcache::StoreMode;
    use crate::cmd::memcache::testing_mc::{b, get, simple, store_cmd};
    use crate::cmd::testing::{now, run, store};

    fn arith(incr: bool, delta: u64) -> Arith {
        Arith {
            key: b("n"),
            incr,
            delta,
        }
    }

    #[test]
    fn counts_wraps_floors_and_pads() {
        let (mut s, now) = (store(), now());
        assert_eq!(arith(true, 1).apply(&mut s, &now), simple("NOT_FOUND"));
        store_cmd(StoreMode::Set, "n", 3, 100, "10").apply(&mut s, &now);
        assert_eq!(arith(true, 5).apply(&mut s, &now), simple("15"));
        assert_eq!(arith(false, 6).apply(&mut s, &now), simple("9"));
        // shorter: padded to the old length, as memcached's in-place update
        assert_eq!(
            get(&mut s, &now, "n").map(|(v, f, _)| (v, f)),
            Some(("9 ".into(), 3))
        );
        assert_eq!(arith(false, 100).apply(&mut s, &now), simple("0"));
        assert_eq!(run(&mut s, &now, &["TTL", "n"]), Frame::Integer(100));
        run(&mut s, &now, &["SET", "n", "18446744073709551615"]);
        assert_eq!(arith(true, 2).apply(&mut s, &now), simple("1"));
        run(&mut s, &now, &["SET", "n", "12 apples"]);
        assert_eq!(arith(true, 1).apply(&mut s, &now), simple("13"));
        assert_eq!(
            get(&mut s, &now, "n").map(|(v, _, _)| v),
            Some("13       ".into())
        );
    }

    #[test]
    fn what_is_not_a_number() {
        let (mut s, now) = (store(), now());
        for value in ["", "abc", "12abc", "-1", "18446744073709551616", " "] {
            run(&mut s, &now, &["SET", "n", value]);
            assert_eq!(
                arith(true, 1).apply(&mut s, &now),
                Frame::Error(NON_NUMERIC.into()),
                "{value:?}"
            );
        }
        run(&mut s, &now, &["DEL", "n"]);
        run(&mut s, &now, &["RPUSH", "n", "1"]);
        assert_eq!(arith(true, 1).apply(&mut s, &now), simple("NOT_FOUND"));
    }
}
