//! memcached's commands on one key, one unit per command, run on the shard
//! that owns the key like any other [`KeyCommand`](super::KeyCommand)
//!
//! The memcached front end (`crate::memcache`) parses the text protocol
//! and builds these units; a multi-key `get k1 k2 ...` is one [`Get`] per
//! key, split over the shards as RESP's `MGET` is. Each unit replies a
//! [`Frame`] that the front end writes as memcached's text:
//!
//! | unit | reply |
//! |---|---|
//! | [`Get`] | `Array[Bulk value, Integer flags, Integer cas]` for a hit, `Null` for a miss |
//! | [`Storage`], [`Concat`] | `Simple("STORED" / "NOT_STORED" / "EXISTS" / "NOT_FOUND")` |
//! | [`Delete`] | `Simple("DELETED" / "NOT_FOUND")` |
//! | [`Arith`] | `Simple(the new value in decimal)` or `Simple("NOT_FOUND")` |
//! | [`Touch`] | `Simple("TOUCHED" / "NOT_FOUND")` |
//! | [`TooLarge`] | `Error("SERVER_ERROR object too large for cache")` |
//!
//! and `Error(line)` for any other error line, written as it is.
//!
//! # Semantics
//!
//! As memcached 1.6's `doc/protocol.txt` and its code: an exptime of 0
//! never expires, up to 30 days (2,592,000) is seconds from now, above that
//! a Unix time, and a negative one (or a Unix time already past) expires the
//! item at once; `cas` compares the entry's CAS unique ([`crate::Item`]);
//! `append`/`prepend` keep the entry's flags and exptime; `incr`/`decr`
//! work on a decimal `u64` (`incr` wraps at 2^64, `decr` stops at 0) and
//! leave a shorter result padded with spaces to the old length, as
//! memcached's in-place update does.
//!
//! Across protocols: a memcached write is a string to RESP, and a RESP
//! string is an item with flags 0 to memcached. A key holding a hash, list
//! or set is absent to memcached: reads miss, commands that need an item
//! (`replace`, `append`, `prepend`, `cas`, `incr`, `decr`, `touch`,
//! `delete`) answer as for a missing key and leave it, and `set`/`add`
//! replace it.

mod arith;
mod concat;
mod delete;
mod get;
mod storage;
mod too_large;
mod touch;

pub use arith::Arith;
pub use concat::Concat;
pub use delete::Delete;
pub use get::Get;
pub use storage::{Storage, StoreMode};
pub use too_large::TooLarge;
pub use touch::Touch;

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Now, unit::family};
use crate::resp::Frame;
use crate::store::{Store, Value};

family! {
    /// A memcached command on one key
    MemcacheCommand in Memcache {
        /// `get`, `gets`, `gat`, `gats`: one key's part
        Get(Get),
        /// `set`, `add`, `replace`, `cas`
        Storage(Storage),
        /// `append`, `prepend`
        Concat(Concat),
        /// `delete`
        Delete(Delete),
        /// `incr`, `decr`
        Arith(Arith),
        /// `touch`
        Touch(Touch),
        /// A storage command whose data is over the item size limit
        TooLarge(TooLarge),
    }
}

/// Longest exptime memcached reads as seconds from now (30 days); longer
/// ones are Unix times
pub const MAX_RELATIVE_EXPTIME: i64 = 60 * 60 * 24 * 30;

/// What memcached answers a write the store refused for memory
pub const OUT_OF_MEMORY: &str = "SERVER_ERROR out of memory storing object";

/// What memcached answers a storage command over the item size limit
pub const TOO_LARGE: &str = "SERVER_ERROR object too large for cache";

/// What memcached answers `incr`/`decr` on a value that is not a number
pub const NON_NUMERIC: &str = "CLIENT_ERROR cannot increment or decrement non-numeric value";

/// The expiry instant of memcached's `exptime` at `now`: `None` never,
/// `Some(now.at)` (or earlier) at once
pub fn expires_at(exptime: i64, now: &Now) -> Option<Instant> {
    match exptime {
        0 => None,
        ..0 => Some(now.at),
        1..=MAX_RELATIVE_EXPTIME => {
            // 30 days always fits an `Instant`; a clock that cannot add it never expires
            now.at
                .checked_add(Duration::from_secs(exptime.unsigned_abs()))
        }
        unix => match now.instant_of(unix.saturating_mul(1000)) {
            Err(()) => Some(now.at),
            Ok(at) => at,
        },
    }
}

/// The live string at `key` with its flags and CAS, without counting a
/// lookup; `None` if absent or of another type (which memcached never sees).
fn peek_str(store: &Store, key: &[u8], now: &Now) -> Option<(Bytes, u32, u64)> {
    match store.peek_item(key, now.at)? {
        crate::Item {
            value: Value::Str(value),
            flags,
            cas,
        } => Some((value.clone(), flags, cas)),
        _ => None,
    }
}

/// A reply line: `Frame::Simple(text)`.
fn line(text: &str) -> Frame {
    Frame::Simple(text.into())
}

/// Whether `b` is a space to C's `isspace`.
fn c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The sign and digits of a number as C's `strtoull`/`strtol` read them:
/// leading spaces, an optional sign, at least one digit, then the end or a
/// space (what memcached's `safe_strto*` accept); whether it was negative
/// and its magnitude, `None` past `u64` or malformed.
fn c_number(text: &[u8]) -> Option<(bool, u64)> {
    let mut i = text.iter().take_while(|&&b| c_space(b)).count();
    let negative = match text.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits = text[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut magnitude: u64 = 0;
    for &d in &text[i..i + digits] {
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(u64::from(d - b'0'))?;
    }
    match text.get(i + digits) {
        None => Some((negative, magnitude)),
        Some(&b) if c_space(b) => Some((negative, magnitude)),
        Some(_) => None,
    }
}

/// An unsigned 64-bit number as memcached's `safe_strtoull` reads it: a
/// negative number is refused unless it wraps to one that looks positive
/// as a signed number (so `-0` is 0, as in C)
pub fn parse_u64(text: &[u8]) -> Option<u64> {
    let (negative, magnitude) = c_number(text)?;
    let value = if negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    };
    // memcached refuses a '-' only where the result is negative as an i64
    if negative && i64::from_ne_bytes(value.to_ne_bytes()) < 0 {
        return None;
    }
    Some(value)
}

/// A 32-bit flags field as memcached 1.6's `safe_strtoul` reads it: as
/// [`parse_u64`], then cut to its low 32 bits (memcached stores an
/// `unsigned long` into a `uint32_t`)
pub fn parse_flags(text: &[u8]) -> Option<u32> {
    parse_u64(text).map(|v| (v & u64::from(u32::MAX)) as u32)
}

/// A signed 32-bit field (exptime, data length) as memcached 1.6's
/// `safe_strtol` reads it: C's `strtol` over 64 bits, then cut to its low
/// 32 bits, two's complement (memcached stores a `long` into an `int32_t`)
pub fn parse_i32(text: &[u8]) -> Option<i32> {
    let (negative, magnitude) = c_number(text)?;
    let value: i64 = if negative {
        // down to i64::MIN, as strtol
        0i64.checked_sub_unsigned(magnitude)?
    } else {
        i64::try_from(magnitude).ok()?
    };
    Some(value as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::testing;

    #[test]
    fn numbers_parse_as_memcached_parses_them() {
        assert_eq!(parse_u64(b"42"), Some(42));
        assert_eq!(parse_u64(b"+42"), Some(42));
        assert_eq!(parse_u64(b" 42"), Some(42));
        assert_eq!(parse_u64(b"42\t"), Some(42));
        assert_eq!(parse_u64(b"42\tjunk"), Some(42));
        assert_eq!(parse_u64(b"42x"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"-"), None);
        assert_eq!(parse_u64(b"-0"), Some(0));
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_flags(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_flags(b"4294967296"), Some(0));
        assert_eq!(parse_flags(b"-1"), None);
        assert_eq!(parse_i32(b"-1"), Some(-1));
        assert_eq!(parse_i32(b"2147483648"), Some(i32::MIN));
        assert_eq!(parse_i32(b"4294967297"), Some(1));
        assert_eq!(parse_i32(b"9223372036854775808"), None);
        assert_eq!(parse_i32(b"-9223372036854775808"), Some(0));
        assert_eq!(parse_i32(b"1e3"), None);
    }

    #[test]
    fn exptimes_are_relative_up_to_30_days_then_unix_times() {
        let now = testing::now();
        assert_eq!(expires_at(0, &now), None);
        assert_eq!(expires_at(-1, &now), Some(now.at));
        assert_eq!(expires_at(10, &now), Some(now.at + Duration::from_secs(10)));
        let month = MAX_RELATIVE_EXPTIME;
        assert_eq!(
            expires_at(month, &now),
            Some(now.at + Duration::from_secs(2_592_000))
        );
        // just past 30 days: a Unix time in 1970, long gone
        assert_eq!(expires_at(month + 1, &now), Some(now.at));
        let unix = now.unix_ms / 1000 + 100;
        assert_eq!(
            expires_at(unix, &now),
            Some(now.at + Duration::from_secs(100))
        );
        assert_eq!(expires_at(now.unix_ms / 1000, &now), Some(now.at));
    }
}

#[cfg(test)]
pub(crate) mod testing_mc {
    //! Builds memcached units for the units' tests.

    use bytes::Bytes;

    use super::*;
    use crate::cmd::Unit;

    pub(crate) fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// `set`/`add`/`replace`/`cas` of `value` with `flags` and `exptime`.
    pub(crate) fn store_cmd(
        mode: StoreMode,
        key: &str,
        flags: u32,
        exptime: i64,
        value: &str,
    ) -> Storage {
        Storage {
            mode,
            key: b(key),
            flags,
            exptime,
            value: b(value),
        }
    }

    /// A hit's value, flags and CAS, or `None` for a miss.
    pub(crate) fn get(store: &mut Store, now: &Now, key: &str) -> Option<(String, i64, i64)> {
        match (Get {
            key: b(key),
            touch: None,
        })
        .apply(store, now)
        {
            Frame::Array(parts) => match parts.as_slice() {
                [Frame::Bulk(v), Frame::Integer(flags), Frame::Integer(cas)] => {
                    Some((String::from_utf8_lossy(v).into_owned(), *flags, *cas))
                }
                other => panic!("not a get reply: {other:?}"),
            },
            Frame::Null => None,
            other => panic!("not a get reply: {other:?}"),
        }
    }

    pub(crate) fn simple(text: &str) -> Frame {
        Frame::Simple(text.into())
    }
}
