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

use super::{Args, Command, CommandError, unit::family};
use crate::store::Set;

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

super::collection::typed_access!(Set);
