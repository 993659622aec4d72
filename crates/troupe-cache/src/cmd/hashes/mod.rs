//! Hash commands: one file per command

mod hdel;
mod hexists;
mod hget;
mod hgetall;
mod hincrby;
mod hkeys;
mod hlen;
mod hmget;
mod hset;
mod hsetnx;
mod hvals;

pub use hdel::HDel;
pub use hexists::HExists;
pub use hget::HGet;
pub use hgetall::HGetAll;
pub use hincrby::HIncrBy;
pub use hkeys::HKeys;
pub use hlen::HLen;
pub use hmget::HMGet;
pub use hset::HSet;
pub use hsetnx::HSetNx;
pub use hvals::HVals;

use super::{Args, Command, CommandError, Now, unit::family, wrong_type};
use crate::resp::Frame;
use crate::store::{Hash, Store, Value};

family! {
    /// A hash command
    HashCommand in Hash {
        /// `HSET`, `HMSET`
        HSet(HSet),
        /// `HGET`
        HGet(HGet),
        /// `HMGET`
        HMGet(HMGet),
        /// `HDEL`
        HDel(HDel),
        /// `HGETALL`
        HGetAll(HGetAll),
        /// `HEXISTS`
        HExists(HExists),
        /// `HINCRBY`
        HIncrBy(HIncrBy),
        /// `HKEYS`
        HKeys(HKeys),
        /// `HVALS`
        HVals(HVals),
        /// `HLEN`
        HLen(HLen),
        /// `HSETNX`
        HSetNx(HSetNx),
    }
}

/// The hash command `name` (lower-case) parsed from `args`, if it is one
pub(crate) fn parse(name: &[u8], args: &mut Args) -> Option<Result<Command, CommandError>> {
    Some(match name {
        b"hset" => HSet::parse(args, false).map(Into::into),
        b"hmset" => HSet::parse(args, true).map(Into::into),
        b"hget" => HGet::parse(args).map(Into::into),
        b"hmget" => HMGet::parse(args).map(Into::into),
        b"hdel" => HDel::parse(args).map(Into::into),
        b"hgetall" => HGetAll::parse(args).map(Into::into),
        b"hexists" => HExists::parse(args).map(Into::into),
        b"hincrby" => HIncrBy::parse(args).map(Into::into),
        b"hkeys" => HKeys::parse(args).map(Into::into),
        b"hvals" => HVals::parse(args).map(Into::into),
        b"hlen" => HLen::parse(args).map(Into::into),
        b"hsetnx" => HSetNx::parse(args).map(Into::into),
        _ => return None,
    })
}

/// Reads the hash at `key` with `f`: `f(None)` if absent, `WRONGTYPE` for
/// another type. Counts a hit or a miss.
pub(crate) fn read<T>(
    store: &mut Store,
    key: &[u8],
    now: &Now,
    f: impl FnOnce(Option<&Hash>) -> T,
) -> Result<T, Frame> {
    match store.get(key, now.at) {
        None => Ok(f(None)),
        Some(Value::Hash(hash)) => Ok(f(Some(hash))),
        Some(_) => Err(wrong_type()),
    }
}

/// Changes the hash at `key` with `f`, creating it if absent; `grow` bounds
/// how many bytes `f` adds (see [`Store::reserve`]). `WRONGTYPE` for another
/// type, OOM if there is no room. A hash `f` leaves empty is removed.
pub(crate) fn write<T>(
    store: &mut Store,
    key: &bytes::Bytes,
    grow: usize,
    now: &Now,
    f: impl FnOnce(&mut Hash) -> T,
) -> Result<T, Frame> {
    super::collection::write(
        store,
        key,
        grow,
        now,
        Value::Hash(Hash::default()),
        |value| match value {
            Value::Hash(hash) => Some(hash),
            _ => None,
        },
        f,
    )
}

/// Changes the hash at `key` with `f` if it exists: `Ok(None)` if absent,
/// `WRONGTYPE` for another type. A hash `f` leaves empty is removed.
pub(crate) fn modify<T>(
    store: &mut Store,
    key: &[u8],
    now: &Now,
    f: impl FnOnce(&mut Hash) -> T,
) -> Result<Option<T>, Frame> {
    super::collection::modify(
        store,
        key,
        now,
        |value| match value {
            Value::Hash(hash) => Some(hash),
            _ => None,
        },
        f,
    )
}
