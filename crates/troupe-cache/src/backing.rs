//! [`BackingMsg`]: what a read-through cache asks of the store behind it
//!
//! Any actor that answers [`BackingMsg`] can back a
//! [`CacheShard`](crate::CacheShard) (see
//! [`CacheShard::with_backing`](crate::CacheShard::with_backing)): a
//! database, another service, or the versioned map the tests use.
//!
//! # The contract
//!
//! - Every answer is a [`Versioned`]: the value and the version the backing
//!   store's copy had when it was read or written. Versions increase
//!   monotonically, per key or globally: a later write to a key always gets a
//!   higher version than every earlier read or write of that key.
//! - A `Get` must be answered from the **authoritative copy** (for the DB:
//!   its leader, never a follower that may lag). The cache refuses a fill
//!   older than the last write it invalidated, but it cannot tell a lagging
//!   replica's old value at a new-looking version from a fresh one.
//! - A backing store that cannot answer fails the call
//!   ([`ReplyTo::fail`](troupe_runtime::ReplyTo::fail)) or lets it time out;
//!   the cache turns that into an error reply, never into a cached value.

use serde::{Deserialize, Serialize};
use troupe_runtime::Message;

/// A request to the store behind a read-through cache → [`Versioned`]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackingMsg {
    /// Read `key` from the authoritative copy → its value (`None` if absent)
    /// and the version that copy had when it was read
    Get {
        /// The key
        key: Vec<u8>,
    },
    /// Write `key` (`None` deletes it) → the version of this write
    Put {
        /// The key
        key: Vec<u8>,
        /// The new value, or `None` to delete
        value: Option<Vec<u8>>,
    },
}

/// A value with the version of the backing store's copy it came from
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// The value (`None`: absent, or deleted by this `Put`)
    pub value: Option<Vec<u8>>,
    /// The version the authoritative copy had at the read, or the version the
    /// write created; monotonically increasing per key or globally
    pub version: u64,
}

impl Message for BackingMsg {
    const NAME: &'static str = "troupe.cache.Backing";
    type Reply = Versioned;
}
