//! Set commands: one file per command

mod sadd;
mod scard;
mod sismember;
mod smembers;
mod srem;

pub use sadd::SAdd;
pub use scard::SCard;
pub use sismember::SIsMember;
pub use smembers::SMembers;
pub use srem::SRem;

use super::{Args, Command, CommandError, Now, unit::family, wrong_type};
use crate::resp::Frame;
use crate::store::{Set, Store, Value};

family! {
    /// A set command
    SetCommand in Set {
        /// `SADD`
        SAdd(SAdd),
        /// `SCARD`
        SCard(SCard),
        /// `SREM`
        SRem(SRem),
        /// `SMEMBERS`
        SMembers(SMembers),
        /// `SISMEMBER`
        SIsMember(SIsMember),
    }
}

/// The set command `name` (lower-case) parsed from `args`, if it is one
pub(crate) fn parse(name: &[u8], args: &mut Args) -> Option<Result<Command, CommandError>> {
    Some(match name {
        b"sadd" => SAdd::parse(args).map(Into::into),
        b"scard" => SCard::parse(args).map(Into::into),
        b"srem" => SRem::parse(args).map(Into::into),
        b"smembers" => SMembers::parse(args).map(Into::into),
        b"sismember" => SIsMember::parse(args).map(Into::into),
        _ => return None,
    })
}

/// Reads the set at `key` with `f`: `f(None)` if absent, `WRONGTYPE` for
/// another type. Counts a hit or a miss.
pub(crate) fn read<T>(
    store: &mut Store,
    key: &[u8],
    now: &Now,
    f: impl FnOnce(Option<&Set>) -> T,
) -> Result<T, Frame> {
    match store.get(key, now.at) {
        None => Ok(f(None)),
        Some(Value::Set(set)) => Ok(f(Some(set))),
        Some(_) => Err(wrong_type()),
    }
}

/// Changes the set at `key` with `f`, creating it if absent; `grow` bounds
/// how many bytes `f` adds. `WRONGTYPE` for another type, OOM if there is
/// no room. A set `f` leaves empty is removed.
pub(crate) fn write<T>(
    store: &mut Store,
    key: &bytes::Bytes,
    grow: usize,
    now: &Now,
    f: impl FnOnce(&mut Set) -> T,
) -> Result<T, Frame> {
    super::collection::write(
        store,
        key,
        grow,
        now,
        Value::Set(Set::default()),
        |value| match value {
            Value::Set(set) => Some(set),
            _ => None,
        },
        f,
    )
}

/// Changes the set at `key` with `f` if it exists: `Ok(None)` if absent,
/// `WRONGTYPE` for another type. A set `f` leaves empty is removed.
pub(crate) fn modify<T>(
    store: &mut Store,
    key: &[u8],
    now: &Now,
    f: impl FnOnce(&mut Set) -> T,
) -> Result<Option<T>, Frame> {
    super::collection::modify(
        store,
        key,
        now,
        |value| match value {
            Value::Set(set) => Some(set),
            _ => None,
        },
        f,
    )
}
