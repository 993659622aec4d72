//! List commands: one file per command

mod llen;
mod lrange;
mod pop;
mod push;

pub use llen::LLen;
pub use lrange::LRange;
pub use pop::Pop;
pub use push::{End, Push};

use super::{Args, Command, CommandError, Now, unit::family, wrong_type};
use crate::resp::Frame;
use crate::store::{List, Store, Value};

family! {
    /// A list command
    ListCommand in List {
        /// `LPUSH`, `RPUSH`
        Push(Push),
        /// `LLEN`
        LLen(LLen),
        /// `LPOP`, `RPOP`
        Pop(Pop),
        /// `LRANGE`
        LRange(LRange),
    }
}

/// The list command `name` (lower-case) parsed from `args`, if it is one
pub(crate) fn parse(name: &[u8], args: &mut Args) -> Option<Result<Command, CommandError>> {
    Some(match name {
        b"lpush" => Push::parse(args, End::Head).map(Into::into),
        b"rpush" => Push::parse(args, End::Tail).map(Into::into),
        b"llen" => LLen::parse(args).map(Into::into),
        b"lpop" => Pop::parse(args, End::Head).map(Into::into),
        b"rpop" => Pop::parse(args, End::Tail).map(Into::into),
        b"lrange" => LRange::parse(args).map(Into::into),
        _ => return None,
    })
}

/// Reads the list at `key` with `f`: `f(None)` if absent, `WRONGTYPE` for
/// another type. Counts a hit or a miss.
pub(crate) fn read<T>(
    store: &mut Store,
    key: &[u8],
    now: &Now,
    f: impl FnOnce(Option<&List>) -> T,
) -> Result<T, Frame> {
    match store.get(key, now.at) {
        None => Ok(f(None)),
        Some(Value::List(list)) => Ok(f(Some(list))),
        Some(_) => Err(wrong_type()),
    }
}

/// Changes the list at `key` with `f`, creating it if absent; `grow` bounds
/// how many bytes `f` adds. `WRONGTYPE` for another type, OOM if there is
/// no room. A list `f` leaves empty is removed.
pub(crate) fn write<T>(
    store: &mut Store,
    key: &bytes::Bytes,
    grow: usize,
    now: &Now,
    f: impl FnOnce(&mut List) -> T,
) -> Result<T, Frame> {
    super::collection::write(
        store,
        key,
        grow,
        now,
        Value::List(List::default()),
        |value| match value {
            Value::List(list) => Some(list),
            _ => None,
        },
        f,
    )
}

/// Changes the list at `key` with `f` if it exists: `Ok(None)` if absent,
/// `WRONGTYPE` for another type. A list `f` leaves empty is removed.
pub(crate) fn modify<T>(
    store: &mut Store,
    key: &[u8],
    now: &Now,
    f: impl FnOnce(&mut List) -> T,
) -> Result<Option<T>, Frame> {
    super::collection::modify(
        store,
        key,
        now,
        |value| match value {
            Value::List(list) => Some(list),
            _ => None,
        },
        f,
    )
}
