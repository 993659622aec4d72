//! memcached's text protocol in front of the same shards as RESP
//!
//! - [`parse`]: the pure, resumable [`Decoder`] from bytes to [`Request`]s,
//!   with its [`Limits`].
//! - `server.rs`: the connection loop: runs of requests on keys run on the
//!   shards' tables in place, or go to the shards as one message per shard
//!   per batch where they are elsewhere (memcached's units,
//!   [`crate::cmd::memcache`]), the replies written as memcached's text; on
//!   a read-through cache, `get`/`gets` read through, `set` without flags or
//!   exptime writes through and `delete` deletes through, as typed calls.
//! - `actor.rs`: [`MemcacheServer`], the configuration, and
//!   [`MemcacheServerActor`], the supervised actor owning the listener.

mod actor;
pub mod parse;
mod server;

pub use actor::{MemcacheServer, MemcacheServerActor, MemcacheServerMsg};
pub use parse::{DecodeError, Decoder, Limits, Request};
