//! Keyspace commands on one key (or on keys sharing a shard): one file per
//! command. `KEYS`, `SCAN`, `DBSIZE` and the flushes run on every shard
//! ([`all_shards`](super::all_shards)).

mod del;
mod exists;
mod expire;
mod expiretime;
mod persist;
mod rename;
mod touch;
mod ttl;
mod type_;

pub use del::Del;
pub use exists::Exists;
pub use expire::{Expire, ExpireOptions, ExpireWhen, expire};
pub use expiretime::ExpireTime;
pub use persist::Persist;
pub use rename::Rename;
pub use touch::Touch;
pub use ttl::Ttl;
pub use type_::Type;

use bytes::Bytes;

use super::{Args, Combine, Command, CommandError, KeyCommand, Multi, unit::family};

family! {
    /// A keyspace command on one key
    KeyspaceCommand in Keyspace {
        /// `DEL`/`UNLINK`, one key's part
        Del(Del),
        /// `EXISTS`, one key's part
        Exists(Exists),
        /// `TOUCH`, one key's part
        Touch(Touch),
        /// `TYPE`
        Type(Type),
        /// `RENAME`, `RENAMENX`
        Rename(Rename),
        /// `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT`
        Expire(Expire),
        /// `TTL`, `PTTL`
        Ttl(Ttl),
        /// `EXPIRETIME`, `PEXPIRETIME`
        ExpireTime(ExpireTime),
        /// `PERSIST`
        Persist(Persist),
    }
}

/// The keyspace command `name` (lower-case) parsed from `args`, if it is one
pub(crate) fn parse(name: &[u8], args: &mut Args) -> Option<Result<Command, CommandError>> {
    Some(match name {
        b"del" => per_key(args, "del", |key| Del { key }.into()),
        b"unlink" => per_key(args, "unlink", |key| Del { key }.into()),
        b"exists" => per_key(args, "exists", |key| Exists { key }.into()),
        b"touch" => per_key(args, "touch", |key| Touch { key }.into()),
        b"type" => Type::parse(args).map(Into::into),
        b"rename" => Rename::parse(args, false).map(Into::into),
        b"renamenx" => Rename::parse(args, true).map(Into::into),
        b"expire" => Expire::parse(args, "expire", 1000, false).map(Into::into),
        b"pexpire" => Expire::parse(args, "pexpire", 1, false).map(Into::into),
        b"expireat" => Expire::parse(args, "expireat", 1000, true).map(Into::into),
        b"pexpireat" => Expire::parse(args, "pexpireat", 1, true).map(Into::into),
        b"ttl" => Ttl::parse(args, "ttl", false).map(Into::into),
        b"pttl" => Ttl::parse(args, "pttl", true).map(Into::into),
        b"expiretime" => ExpireTime::parse(args, "expiretime", false).map(Into::into),
        b"pexpiretime" => ExpireTime::parse(args, "pexpiretime", true).map(Into::into),
        b"persist" => Persist::parse(args).map(Into::into),
        _ => return None,
    })
}

/// # Format
/// `NAME key [key ...]`: one part per key, their integer replies summed
fn per_key(
    args: &mut Args,
    name: &'static str,
    part: impl Fn(Bytes) -> KeyCommand,
) -> Result<Command, CommandError> {
    args.at_least(2, name)?;
    let parts = args.rest()?.into_iter().map(part).collect();
    Ok(Command::Multi(Multi {
        parts,
        combine: Combine::Sum,
    }))
}
