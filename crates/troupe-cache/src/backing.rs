//! [`Backing`]: what a read-through cache asks of the store behind it
//!
//! Anything that implements [`Backing`] can sit behind a read-through cache
//! ([`CacheSpec::read_through`](crate::CacheSpec::read_through)): a database
//! client, another service, or the versioned map the tests use. An actor
//! answering [`BackingMsg`] is one already: `Addr<BackingMsg>` implements
//! [`Backing`] by calling it, so the store may also sit on another node.
//!
//! The contract on versions and on the authoritative copy is on the trait.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use troupe_runtime::{Addr, CallError, Message, Reply};

/// The store behind a read-through cache
///
/// # The contract
///
/// - Every read answers a [`Versioned`] and every write the version it
///   created: versions increase monotonically, per key or globally, so a
///   later write to a key always gets a higher version than every earlier
///   read or write of that key.
/// - A read must be answered from the **authoritative copy** (for the DB:
///   its leader, never a follower that may lag): the cache refuses a fill
///   older than the last write it invalidated, but it cannot tell a lagging
///   replica's old value at a new-looking version from a fresh one.
/// - A store that cannot answer returns a [`BackingError`]; the cache turns
///   it into an error reply, never into a cached value.
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use std::time::Duration;
///
/// use bytes::Bytes;
/// use troupe_cache::{Backing, BackingError, CacheSpec, Versioned};
///
/// /// A map with one global version, bumped by every write
/// #[derive(Default)]
/// struct MapBacking(Mutex<(HashMap<Bytes, Bytes>, u64)>);
///
/// impl Backing for MapBacking {
///     async fn get(&self, key: Bytes, _timeout: Duration) -> Result<Versioned, BackingError> {
///         let map = self.0.lock().map_err(|_| BackingError::store("poisoned"))?;
///         Ok(Versioned { value: map.0.get(&key).cloned(), version: map.1 })
///     }
///
///     async fn put(
///         &self,
///         key: Bytes,
///         value: Option<Bytes>,
///         _timeout: Duration,
///     ) -> Result<u64, BackingError> {
///         let mut map = self.0.lock().map_err(|_| BackingError::store("poisoned"))?;
///         map.1 += 1;
///         match value {
///             Some(value) => map.0.insert(key, value),
///             None => map.0.remove(&key),
///         };
///         Ok(map.1)
///     }
/// }
///
/// let spec = CacheSpec::lru(10_000).shards(2).read_through(MapBacking::default());
/// # let _ = spec;
/// ```
pub trait Backing: Send + Sync + 'static {
    /// Reads `key` from the authoritative copy: its value (`None` if absent)
    /// and the version that copy had when it was read
    ///
    /// `timeout` is how long the cache waits for the answer; an
    /// implementation may use it for its own calls (the cache stops waiting
    /// then in any case).
    ///
    /// # Errors
    /// Whatever kept the store from answering.
    ///
    /// # Cancel safety
    /// The cache drops the future when it stops waiting (after `timeout`), or
    /// when the shard instance waiting on it stops or restarts; a read has no
    /// effect to undo.
    fn get(
        &self,
        key: Bytes,
        timeout: Duration,
    ) -> impl Future<Output = Result<Versioned, BackingError>> + Send;

    /// Writes `key` (`None` deletes it): the version this write created
    ///
    /// `timeout` as for [`get`](Backing::get).
    ///
    /// # Errors
    /// Whatever kept the store from writing or from confirming the write (the
    /// write may still have been applied).
    ///
    /// # Cancel safety
    /// The cache drops the future when it stops waiting (after `timeout`); the
    /// write may or may not have been applied, and the cache treats it as
    /// unknown (it drops its copy of the key and answers an error). It is also
    /// dropped when the shard instance waiting on it stops or restarts: the
    /// write's caller then gets an error, and the instance's cached copies go
    /// with it (a restarted shard starts empty).
    fn put(
        &self,
        key: Bytes,
        value: Option<Bytes>,
        timeout: Duration,
    ) -> impl Future<Output = Result<u64, BackingError>> + Send;
}

/// A value with the version of the backing store's copy it came from
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// The value (`None`: absent)
    pub value: Option<Bytes>,
    /// The version the authoritative copy had at the read; monotonically
    /// increasing per key or globally
    pub version: u64,
}

/// Why a [`Backing`] store did not answer
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackingError {
    /// Calling the backing actor failed (it was unreachable, did not answer in
    /// time, or failed the call)
    #[error("the call to the backing store failed")]
    Call(#[from] CallError),
    /// The backing store failed
    #[error("the backing store failed")]
    Store(#[source] Box<dyn StdError + Send + Sync>),
}

impl BackingError {
    /// A failure of the store itself, with `cause` as its source
    pub fn store(cause: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Store(cause.into())
    }

    /// This error and its sources, joined by `": "` (what a shard answers
    /// its callers, who may be on another node)
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = self.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// A request to an actor that backs a read-through cache, under the
/// [`Backing`] contract; `Addr<BackingMsg>` implements [`Backing`] by
/// calling it. An actor that cannot answer fails the call
/// ([`Reply::fail`]) or lets it time out.
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "troupe.cache.Backing")]
pub enum BackingMsg {
    /// Read `key` from the authoritative copy → its value (`None` if absent)
    /// and the version that copy had when it was read
    Get {
        /// The key
        key: Bytes,
        /// The answer
        reply: Reply<Versioned>,
    },
    /// Write `key` (`None` deletes it) → the version of this write
    Put {
        /// The key
        key: Bytes,
        /// The new value, or `None` to delete
        value: Option<Bytes>,
        /// The version the write created
        reply: Reply<u64>,
    },
}

impl Backing for Addr<BackingMsg> {
    async fn get(&self, key: Bytes, timeout: Duration) -> Result<Versioned, BackingError> {
        Ok(self
            .call(|reply| BackingMsg::Get { key, reply }, timeout)
            .await?)
    }

    async fn put(
        &self,
        key: Bytes,
        value: Option<Bytes>,
        timeout: Duration,
    ) -> Result<u64, BackingError> {
        Ok(self
            .call(|reply| BackingMsg::Put { key, value, reply }, timeout)
            .await?)
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// [`Backing`] with boxed futures, so shards can share one behind an `Arc`.
trait DynBacking: Send + Sync {
    fn get(&self, key: Bytes, timeout: Duration) -> BoxFuture<Result<Versioned, BackingError>>;
    fn put(
        &self,
        key: Bytes,
        value: Option<Bytes>,
        timeout: Duration,
    ) -> BoxFuture<Result<u64, BackingError>>;
}

struct Erased<B>(Arc<B>);

impl<B: Backing> DynBacking for Erased<B> {
    fn get(&self, key: Bytes, timeout: Duration) -> BoxFuture<Result<Versioned, BackingError>> {
        let backing = self.0.clone();
        Box::pin(async move { backing.get(key, timeout).await })
    }

    fn put(
        &self,
        key: Bytes,
        value: Option<Bytes>,
        timeout: Duration,
    ) -> BoxFuture<Result<u64, BackingError>> {
        let backing = self.0.clone();
        Box::pin(async move { backing.put(key, value, timeout).await })
    }
}

/// A [`Backing`] store shared by the shards of one cache: cheap to clone
/// (one reference count), and the same store for every shard and restart
#[derive(Clone)]
pub struct SharedBacking(Arc<dyn DynBacking>);

impl SharedBacking {
    /// Shares `backing`
    pub fn new(backing: impl Backing) -> Self {
        Self(Arc::new(Erased(Arc::new(backing))))
    }

    pub(crate) fn get(
        &self,
        key: Bytes,
        timeout: Duration,
    ) -> BoxFuture<Result<Versioned, BackingError>> {
        self.0.get(key, timeout)
    }

    pub(crate) fn put(
        &self,
        key: Bytes,
        value: Option<Bytes>,
        timeout: Duration,
    ) -> BoxFuture<Result<u64, BackingError>> {
        self.0.put(key, value, timeout)
    }
}

impl fmt::Debug for SharedBacking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedBacking")
    }
}
