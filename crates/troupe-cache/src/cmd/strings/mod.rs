//! String commands: one file per command

mod append;
mod get;
mod getdel;
mod getex;
mod getrange;
mod getset;
mod incr;
mod incrbyfloat;
mod mget;
mod mset;
mod set;
mod setnx;
mod setrange;
mod strlen;

pub use append::Append;
pub use get::Get;
pub use getdel::GetDel;
pub use getex::{GetEx, GetExExpiry};
pub use getrange::GetRange;
pub use getset::GetSet;
pub use incr::{IncrBy, IncrError, incr_by};
pub use incrbyfloat::IncrByFloat;
pub use mget::MGetPart;
pub use mset::{MSet, MSetNx};
pub use set::{Previous, Set, SetCondition, SetError, SetExpiry, SetResult, set};
pub use setnx::SetNx;
pub use setrange::SetRange;
pub use strlen::StrLen;

use bytes::Bytes;

use super::{Args, Command, CommandError, unit::family};
use crate::store::{Store, Value};

family! {
    /// A string command
    StringCommand in String {
        /// `GET`
        Get(Get),
        /// `MGET`, one key's part
        MGetPart(MGetPart),
        /// `SET`, `SETEX`, `PSETEX`
        Set(Set),
        /// `SETNX`
        SetNx(SetNx),
        /// `GETSET`
        GetSet(GetSet),
        /// `GETDEL`
        GetDel(GetDel),
        /// `GETEX`
        GetEx(GetEx),
        /// `APPEND`
        Append(Append),
        /// `STRLEN`
        StrLen(StrLen),
        /// `GETRANGE`
        GetRange(GetRange),
        /// `SETRANGE`
        SetRange(SetRange),
        /// `INCR`, `DECR`, `INCRBY`, `DECRBY`
        IncrBy(IncrBy),
        /// `INCRBYFLOAT`
        IncrByFloat(IncrByFloat),
        /// `MSET` with every key on one shard
        MSet(MSet),
        /// `MSETNX` with every key on one shard
        MSetNx(MSetNx),
    }
}

/// The string command `name` (lower-case) parsed from `args`, if it is one
pub(crate) fn parse(name: &[u8], args: &mut Args) -> Option<Result<Command, CommandError>> {
    Some(match name {
        b"get" => Get::parse(args).map(Into::into),
        b"mget" => mget::parse(args),
        b"set" => Set::parse(args).map(Into::into),
        b"setex" => Set::parse_setex(args, "setex", 1000).map(Into::into),
        b"psetex" => Set::parse_setex(args, "psetex", 1).map(Into::into),
        b"setnx" => SetNx::parse(args).map(Into::into),
        b"getset" => GetSet::parse(args).map(Into::into),
        b"getdel" => GetDel::parse(args).map(Into::into),
        b"getex" => GetEx::parse(args).map(Into::into),
        b"append" => Append::parse(args).map(Into::into),
        b"strlen" => StrLen::parse(args).map(Into::into),
        b"getrange" | b"substr" => GetRange::parse(args).map(Into::into),
        b"setrange" => SetRange::parse(args).map(Into::into),
        b"incr" => IncrBy::parse_step(args, "incr", 1).map(Into::into),
        b"decr" => IncrBy::parse_step(args, "decr", -1).map(Into::into),
        b"incrby" => IncrBy::parse_by(args, "incrby", false).map(Into::into),
        b"decrby" => IncrBy::parse_by(args, "decrby", true).map(Into::into),
        b"incrbyfloat" => IncrByFloat::parse(args).map(Into::into),
        b"mset" => MSet::parse(args).map(Into::into),
        b"msetnx" => MSetNx::parse(args).map(Into::into),
        _ => return None,
    })
}

/// The string at `key` if it holds one: `Ok(None)` if absent, `Err` with
/// `WRONGTYPE` if it holds another type. Counts a hit or a miss.
pub(crate) fn read(
    store: &mut Store,
    key: &[u8],
    now: &super::Now,
) -> Result<Option<Bytes>, crate::resp::Frame> {
    match store.get_string(key, now.at) {
        None => Ok(None),
        Some(Ok(bytes)) => Ok(Some(bytes)),
        Some(Err(_)) => Err(super::wrong_type()),
    }
}

/// The string at `key` without counting a lookup, as [`read`].
pub(crate) fn peek(
    store: &Store,
    key: &[u8],
    now: &super::Now,
) -> Result<Option<Bytes>, crate::resp::Frame> {
    match store.peek(key, now.at) {
        None => Ok(None),
        Some(Value::Str(bytes)) => Ok(Some(bytes.clone())),
        Some(_) => Err(super::wrong_type()),
    }
}
