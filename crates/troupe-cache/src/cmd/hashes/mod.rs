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

use super::{Args, Command, CommandError, unit::family};
use crate::store::Hash;

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

super::collection::typed_access!(Hash);
