//! List commands: one file per command

mod llen;
mod lrange;
mod pop;
mod push;

pub use llen::LLen;
pub use lrange::LRange;
pub use pop::Pop;
pub use push::{End, Push};

use super::{Args, Command, CommandError, unit::family};
use crate::store::List;

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

super::collection::typed_access!(List);
