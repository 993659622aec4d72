//! troupe's cache: a sharded, Redis-compatible LRU cache with TTLs
//!
//! The core holds no actors, sockets or clocks: every operation that can
//! observe time takes `now: Instant`, and every decoder works on bytes
//! already read. A thin actor per shard and the TCP server sit on top.
//!
//! A shard is a plain cache, or a read-through cache in front of any
//! [`Backing`] store (e.g. the DB's leader): misses are filled from it,
//! writes go through it and invalidate, and versioned fills keep a slow read
//! from re-caching a value an acknowledged write replaced.
//!
//! A whole cache is one declaration, [`CacheSpec`]:
//! `CacheSpec::lru(100_000).shards(2).read_through(backing).resp("127.0.0.1:6380")`
//! (and `.memcached("127.0.0.1:11211")` for memcached's clients);
//! placing it gives a [`CacheClient`].
//!
//! # Layout
//!
//! - `store/`: [`Store`], an LRU of typed values ([`Value`]: strings,
//!   hashes, lists, sets, each keeping its weight) bounded by entry count and
//!   by bytes under an [`EvictionPolicy`], with an expiry per key, a scan
//!   position per key, memcached's flags and CAS unique per key ([`Item`]), hit/miss/eviction/expiration counters, and the backing
//!   store's version each entry was filled with.
//! - `readthrough.rs`: [`Fences`], the sans-IO read-through rules: per-key
//!   invalidation fences (bounded by [`MAX_FENCES`], with a global low-water
//!   fence for evicted ones) and [`Fences::fill`], which drops a fill older
//!   than the key's last invalidation or than the entry present.
//! - `backing.rs`: [`Backing`] and [`Versioned`], what a read-through
//!   cache needs of the store behind it (versioned reads from its
//!   authoritative copy, versioned writes), and [`BackingMsg`], the message
//!   of an actor that backs a cache (`Addr<BackingMsg>` is a [`Backing`]).
//! - `resp/frame.rs`: [`resp::Frame`], RESP2 frames with two-phase decoding
//!   (check, then parse), limits checked before allocating, and inline
//!   commands as telnet and `redis-cli` send them.
//! - `resp/parse.rs`: [`resp::Parse`], a cursor over a command's arguments.
//! - `resp/request.rs`: [`resp::Requests`], what clients send decoded straight into
//!   argument ranges and handed on as decoded (no frame built for an array of bulk
//!   strings).
//! - `cmd/`: [`cmd::Command`], every supported command parsed from its arguments;
//!   one unit per command (`cmd/<family>/<command>.rs`: parsing beside
//!   execution against a [`Store`], with Redis's replies and error texts),
//!   and the commands run on every shard or on the connection. The list, and
//!   how each behaves across shards and on a read-through cache:
//!   `docs/cache.md`.
//! - `config.rs`: `CONFIG GET`/`CONFIG SET`.
//! - `shard.rs`: [`CacheShard`], the supervised actor owning one [`Store`]
//!   (the clock is read here), and its message [`ShardMsg`], each request
//!   with its own reply port; counters go to `metrics`. With
//!   [`CacheShard::with_backing`] it reads through on a miss (from a task on
//!   its context, filling by a versioned [`ShardMsg::Fill`]) and writes
//!   through (the backing store's write, then [`ShardMsg::Invalidate`], then
//!   the answer), so no read after an acknowledged write returns the value
//!   it replaced.
//! - `table.rs`: a shard's entries behind a lock, which the shard shares
//!   with its own process (as an Erlang process owns an ETS table): a front
//!   end there runs a batch of commands on the tables in place, with no
//!   message to the shard and no reply to wait for.
//! - `client.rs`: [`CacheClient`], routing each key to a shard by FNV-1a (of
//!   its `{hash tag}` if it has one), splitting multi-key operations across
//!   shards, and running a pipeline's commands on each shard's table in
//!   place, or as one message per shard where the shard is elsewhere.
//! - `spec.rs`: [`CacheSpec`], a whole cache in one declaration (bounds,
//!   shards, read-through, RESP), and what a topology needs to place it.
//! - `server.rs`: the RESP2 connection loop (pipelining, protocol errors,
//!   connection limit): runs of commands on keys on the shards' tables in
//!   place (every shard here and plain), else one message per shard per
//!   batch, and the connection's own commands.
//! - `actor.rs`: [`RespServer`], the front end's configuration, and
//!   [`RespServerActor`], the supervised actor owning the listener.
//! - `memcache/`: memcached's text protocol on the same shards:
//!   [`memcache::Decoder`], a pure, resumable decoder with limits; the
//!   connection loop, sending runs of requests to the shards as batches of
//!   memcached's units (`cmd/memcache/`); [`MemcacheServer`] and
//!   [`MemcacheServerActor`], as for RESP.
//!
//! # Examples
//!
//! ```
//! use std::num::NonZeroUsize;
//! use std::time::{Duration, Instant};
//!
//! use bytes::{Bytes, BytesMut};
//! use troupe_cache::cmd::{Command, Now};
//! use troupe_cache::resp::{Frame, Limits};
//! use troupe_cache::{Store, TtlState, Value};
//!
//! // Bytes as a client sends them, pipelined.
//! let mut input = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\nGET k\r\n"[..]);
//! let limits = Limits::default();
//! let set = Frame::decode_from(&mut input, &limits)?.expect("complete");
//! let get = Frame::decode_from(&mut input, &limits)?.expect("complete");
//! let (Command::Key(set), Command::Key(get)) = (Command::from_frame(set)?, Command::from_frame(get)?)
//! else {
//!     panic!("commands on a key");
//! };
//!
//! // A shard runs them against its store.
//! let now = Now::at(Instant::now());
//! let mut store = Store::new(NonZeroUsize::new(1000).expect("non-zero"), 1 << 20);
//! assert_eq!(set.apply(&mut store, &now), Frame::Simple("OK".into()));
//! assert_eq!(get.apply(&mut store, &now), Frame::Bulk(Bytes::from("v")));
//!
//! // The store alone.
//! let now = now.at;
//! let _ = store.set(Bytes::from("t"), Bytes::from("v"), Some(Duration::from_secs(5)), now)?;
//! assert_eq!(store.get(b"t", now), Some(&Value::Str(Bytes::from("v"))));
//! assert_eq!(store.ttl(b"t", now), TtlState::Remaining(Duration::from_secs(5)));
//! assert_eq!(store.get(b"t", now + Duration::from_secs(5)), None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod actor;
mod backing;
mod client;
pub mod cmd;
mod config;
pub mod memcache;
mod readthrough;
pub mod resp;
mod server;
mod shard;
mod spec;
mod store;
mod table;

pub use actor::{
    DEFAULT_QUERY_BUFFER_LIMIT, DEFAULT_SEND_TIMEOUT, RespServer, RespServerActor, RespServerMsg,
};
pub use backing::{Backing, BackingError, BackingMsg, SharedBacking, Versioned};
pub use client::{CacheClient, CacheError, DEFAULT_TIMEOUT, key_hash};
pub use memcache::{MemcacheServer, MemcacheServerActor, MemcacheServerMsg};
pub use readthrough::{Fences, FillOutcome, MAX_FENCES};
pub use shard::{
    CacheShard, KeyTtl, SetResult, SetTtl, ShardConfig, ShardError, ShardMsg, ShardStats,
    SharedConfig,
};
pub use spec::{CacheSpec, DEFAULT_MAX_BYTES};
pub use store::{
    EVICTION_SEARCH, EvictionPolicy, Hash, Item, Kind, List, MEMBER_OVERHEAD, Set, SetOutcome,
    Store, StoreError, TtlState, Value,
};
