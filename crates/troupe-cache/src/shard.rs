//! [`CacheShard`]: the supervised actor that owns one [`Store`]
//!
//! The shard is a thin shell: it reads the clock once per message, applies
//! the operation to its store, and exports the store's counters through
//! `metrics`. A crash loses the shard's entries; the restarted instance
//! starts empty, which is all a cache promises.
//!
//! The store lives in a [`ShardTable`] that the shard shares with its
//! process ([`Ctx::share`]), where front ends run batches of commands in
//! place (`table.rs`); the shard locks it for each message too.
//!
//! # Read-through
//!
//! A shard made with [`CacheShard::with_backing`] sits in front of a
//! [`Backing`](crate::Backing) store:
//!
//! - A `GET` miss is read from the backing store by a task on the shard's
//!   context (the shard keeps serving), the caller gets the backing store's
//!   answer, and the task casts [`ShardMsg::Fill`] with the version it read
//!   back to the shard. The fill is dropped if a write of the key newer than
//!   that version was invalidated meanwhile ([`Fences`]).
//! - `SET`, `MSET` and `DEL` write through: a task writes to the backing
//!   store ([`Backing::put`](crate::Backing::put)), has the shard apply
//!   [`ShardMsg::Invalidate`] with the version the backing store returned,
//!   and only then answers. The written value is
//!   not cached: the next read fills it. (Caching it on the write path would
//!   need the same fence checks against concurrent writes; never caching a
//!   write is the simplest rule that is obviously safe.)
//! - So once a write is acknowledged, no read through the shard returns the
//!   value it replaced.
//! - Options that need the authoritative value or an expiry on the backing
//!   store (`SET` with `NX`/`XX`/`EX`/`PX`/`KEEPTTL`, `INCRBY`) are refused
//!   with [`ShardError::ReadThroughUnsupported`]; `EXPIRE`, `TTL`, `PERSIST`,
//!   `EXISTS`, `DBSIZE` and `FLUSHALL` act on the cached copies only.
//! - Fills carry the shard instance's epoch: a fill started by an instance
//!   that has since crashed is dropped by its restarted successor, whose
//!   fences start empty. (The tasks end with their instance, but a fill they
//!   cast may still wait in the mailbox, which the successor inherits.)
//! - At most [`CacheShard::max_backing_in_flight`] reads and writes wait on
//!   the backing store at once; past that, a request that needs the backing
//!   store is refused with [`ShardError::BackingBusy`].

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use troupe_runtime::{Actor, ActorError, Ctx, Message, Reply};

use crate::backing::{BackingError, SharedBacking, Versioned};
use crate::cmd::keyspace::{ExpireOptions, ExpireWhen};
use crate::cmd::strings::{IncrError, SetCondition, SetError, SetExpiry};
use crate::cmd::{KeyCommand, Now, all_shards};
use crate::readthrough::{Fences, FillOutcome};
use crate::resp::Frame;
use crate::store::{EvictionPolicy, Kind, Store, StoreError, TtlState, Value};
use crate::table::ShardTable;

pub use crate::cmd::strings::SetResult;

/// How often a shard sweeps the cold end of its LRU for expired entries
const PURGE_EVERY: Duration = Duration::from_millis(100);

/// Most entries one sweep looks at, so a sweep never stalls the shard
const PURGE_BATCH: usize = 64;

/// How long a read-through shard waits for its backing store, and for itself
/// to apply an invalidation, by default
const BACKING_TIMEOUT: Duration = Duration::from_secs(4);

/// Most backing-store operations (read-through reads, write-through writes)
/// one shard waits on at once, by default
const BACKING_IN_FLIGHT: usize = 1_024;

/// Source of shard instance epochs: every [`CacheShard`] value (so every
/// restart) gets its own.
static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);

/// The expiry a [`ShardMsg::Set`] gives its key
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetTtl {
    /// Never expire (and clear any old expiry), as a plain `SET`
    Clear,
    /// Expire this long after the write (`EX`/`PX`)
    After(Duration),
    /// Keep the old key's expiry (`KEEPTTL`)
    Keep,
}

/// A key's time to live, as `TTL`/`PTTL` report it
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyTtl {
    /// No such key (Redis: `-2`)
    Missing,
    /// The key never expires (Redis: `-1`)
    Persistent,
    /// The key expires after this long
    Remaining(Duration),
}

impl From<TtlState> for KeyTtl {
    fn from(state: TtlState) -> Self {
        match state {
            TtlState::NoKey => Self::Missing,
            TtlState::NoExpiry => Self::Persistent,
            TtlState::Remaining(d) => Self::Remaining(d),
        }
    }
}

/// Why a shard refused an operation; `Display` is Redis's reply text
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// `INCRBY` on a value that is not a decimal `i64`
    #[error("ERR value is not an integer or out of range")]
    NotAnInteger,
    /// `INCRBY` whose result does not fit an `i64`
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// A key plus value larger than the shard's byte bound, or no room
    /// under the eviction policy
    #[error("OOM command not allowed when used memory > 'maxmemory'.")]
    TooLarge,
    /// The key holds a value of another type
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    /// A read-through shard's backing store failed or did not answer in
    /// time; a write may or may not have been applied. The text is the
    /// backing error with its sources (the answer may cross nodes, so the
    /// chain travels as text).
    #[error("ERR backing store unavailable: {0}")]
    Backing(String),
    /// A read-through shard already waits on its backing store for this many
    /// operations; nothing was read or written
    #[error("ERR backing store busy: {limit} operations already in flight")]
    BackingBusy {
        /// The shard's limit
        limit: usize,
    },
    /// An operation a read-through shard cannot apply safely (it would need
    /// the backing store's value or an expiry there)
    #[error("ERR {0} is not supported on a read-through cache")]
    ReadThroughUnsupported(String),
}

impl From<SetError> for ShardError {
    fn from(err: SetError) -> Self {
        match err {
            SetError::WrongType => Self::WrongType,
            SetError::Store(err) => err.into(),
        }
    }
}

impl From<IncrError> for ShardError {
    fn from(err: IncrError) -> Self {
        match err {
            IncrError::NotAnInteger => Self::NotAnInteger,
            IncrError::Overflow => Self::Overflow,
            IncrError::WrongType => Self::WrongType,
            IncrError::Store(err) => err.into(),
        }
    }
}

impl From<StoreError> for ShardError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::TooLarge { .. } | StoreError::OutOfMemory => Self::TooLarge,
        }
    }
}

/// A shard's counters and size, for `INFO` and tests
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ShardStats {
    /// Entries held (expired ones not yet removed included)
    pub keys: u64,
    /// Bytes of keys plus values held
    pub bytes: u64,
    /// Lookups that found a live entry
    pub hits: u64,
    /// Lookups that found nothing live
    pub misses: u64,
    /// Live entries evicted to satisfy a bound
    pub evictions: u64,
    /// Expired entries removed
    pub expirations: u64,
    /// Whether the shard reads through a backing store
    pub read_through: bool,
}

impl ShardStats {
    /// Field-wise sum, for totals over shards
    pub fn merge(self, other: Self) -> Self {
        Self {
            keys: self.keys + other.keys,
            bytes: self.bytes + other.bytes,
            hits: self.hits + other.hits,
            misses: self.misses + other.misses,
            evictions: self.evictions + other.evictions,
            expirations: self.expirations + other.expirations,
            read_through: self.read_through || other.read_through,
        }
    }
}

/// A shard's memory settings, which `CONFIG SET` changes and a restarted
/// shard keeps
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardConfig {
    /// The byte bound of its store
    pub max_bytes: usize,
    /// What it does when a write does not fit
    pub policy: EvictionPolicy,
}

/// Settings a shard shares with the factory that restarts it, so a
/// restarted shard starts with what `CONFIG SET` last gave its predecessor
#[derive(Debug)]
pub struct SharedConfig(std::sync::Mutex<ShardConfig>);

impl SharedConfig {
    /// Settings starting at `config`
    pub fn new(config: ShardConfig) -> Arc<Self> {
        Arc::new(Self(std::sync::Mutex::new(config)))
    }

    /// The settings now
    pub fn get(&self) -> ShardConfig {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, config: ShardConfig) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
    }
}

/// What a [`CacheShard`] handles; every key in a message belongs to the
/// shard it is sent to (routing is [`CacheClient`](crate::CacheClient)'s job)
///
/// A request carries the [`Reply`] its answer goes to: call it with
/// `shard.call(|reply| ShardMsg::Get { key, reply }, timeout)` or
/// `shard.call(ShardMsg::DbSize, timeout)`. Operations a read-through shard
/// may fail answer a `Result` with [`ShardError`]; the others cannot fail.
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "troupe.cache.Shard")]
pub enum ShardMsg {
    /// The value at `key` (`None` if absent)
    Get {
        /// The key
        key: Bytes,
        /// The value
        reply: Reply<Result<Option<Bytes>, ShardError>>,
    },
    /// The values of `keys`, in order (`None` for a missing key)
    GetMany {
        /// The keys
        keys: Vec<Bytes>,
        /// The values
        reply: Reply<Result<Vec<Option<Bytes>>, ShardError>>,
    },
    /// `SET` with its options
    Set {
        /// The key
        key: Bytes,
        /// The value
        value: Bytes,
        /// The expiry to give it
        ttl: SetTtl,
        /// `NX`/`XX`
        condition: Option<SetCondition>,
        /// Whether it was written, and the old value
        reply: Reply<Result<SetResult, ShardError>>,
    },
    /// Set every pair, no conditions, no expiry
    SetMany {
        /// The pairs
        pairs: Vec<(Bytes, Bytes)>,
        /// Done (a refused entry fails the whole answer; the others are set)
        reply: Reply<Result<(), ShardError>>,
    },
    /// Remove `keys`
    Del {
        /// The keys
        keys: Vec<Bytes>,
        /// How many live keys were removed (on a read-through shard: how many
        /// keys were deleted in the backing store, present or not)
        reply: Reply<Result<u64, ShardError>>,
    },
    /// How many of `keys` are live (repeats count again)
    Exists {
        /// The keys
        keys: Vec<Bytes>,
        /// The count
        reply: Reply<u64>,
    },
    /// `EXPIRE`/`PEXPIRE`
    Expire {
        /// The key
        key: Bytes,
        /// Milliseconds from now; zero or negative deletes the key
        millis: i64,
        /// `NX`/`XX`/`GT`/`LT`
        options: ExpireOptions,
        /// Whether the expiry was set
        reply: Reply<bool>,
    },
    /// The time to live of `key`
    Ttl {
        /// The key
        key: Bytes,
        /// Its time to live
        reply: Reply<KeyTtl>,
    },
    /// Remove the expiry of `key`
    Persist {
        /// The key
        key: Bytes,
        /// Whether it had one
        reply: Reply<bool>,
    },
    /// Add `by` to the integer at `key` (absent counts as 0), keeping its
    /// expiry
    IncrBy {
        /// The key
        key: Bytes,
        /// The increment, negative to decrement
        by: i64,
        /// The new value
        reply: Reply<Result<i64, ShardError>>,
    },
    /// Commands from one pipeline, every key on this shard, run in order; one
    /// reply each, in order. A read-through shard refuses the whole run if
    /// one of them reads or writes through the backing store
    /// ([`ShardError::ReadThroughUnsupported`] naming "a pipelined batch"; send
    /// those as the typed messages), answers the ones that act on cached
    /// copies, and refuses the others one by one.
    Run {
        /// The commands
        commands: Vec<KeyCommand>,
        /// Their replies
        reply: Reply<Result<Vec<Frame>, ShardError>>,
    },
    /// The live keys matching a glob (`KEYS`)
    Keys {
        /// The glob
        pattern: Bytes,
        /// The keys
        reply: Reply<Vec<Bytes>>,
    },
    /// One step of `SCAN` on this shard
    Scan {
        /// Where in the shard's scan order to go on from
        position: u64,
        /// How many keys to look at
        count: usize,
        /// `MATCH`
        pattern: Option<Bytes>,
        /// `TYPE`
        kind: Option<Option<Kind>>,
        /// The matching keys, and where to go on from (`None`: done)
        reply: Reply<(Vec<Bytes>, Option<u64>)>,
    },
    /// Change the memory settings (`None` keeps one), evicting at once if
    /// the bound shrank; the settings now
    Configure {
        /// The new byte bound
        max_bytes: Option<usize>,
        /// The new policy
        policy: Option<EvictionPolicy>,
        /// The settings now
        reply: Reply<ShardConfig>,
    },
    /// Entries held
    DbSize(Reply<u64>),
    /// Remove every entry
    FlushAll(Reply<()>),
    /// memcached's `flush_all <delay>`: remove every entry once `delay` has
    /// passed (entries written meanwhile too, as memcached invalidates
    /// everything older than the deadline); a zero delay removes them now.
    /// Either replaces a flush still pending.
    FlushAfter {
        /// How long from now
        delay: Duration,
        /// Done (the flush is scheduled, or done if `delay` is zero)
        reply: Reply<()>,
    },
    /// The shard's counters
    Stats(Reply<ShardStats>),
    /// Sweep the cold end for expired entries (the shard's timer sends this
    /// every 100 ms)
    // self-message
    #[serde(skip)]
    PurgeExpired,
    /// Cache a value read from the backing store at `version` (a
    /// read-through shard's task casts this after a miss). Dropped if older
    /// than the key's last invalidation or than the entry present, or if
    /// `epoch` is not this shard instance's.
    // self-message
    #[serde(skip)]
    Fill {
        /// The key
        key: Bytes,
        /// The value read
        value: Bytes,
        /// The version the backing store's copy had when it was read
        version: u64,
        /// The epoch of the shard instance that started the read
        epoch: u64,
    },
    /// A write of `key` at `version` reached the backing store: drop the
    /// cached entry and refuse older fills (a read-through shard's task sends
    /// this before answering a write)
    // self-message
    #[serde(skip)]
    Invalidate {
        /// The key
        key: Bytes,
        /// The version the write created
        version: u64,
        /// Whether a live entry was removed
        reply: Reply<bool>,
    },
}

/// What a read-through shard names in refusing a run of commands.
pub(crate) const BATCH_REFUSED: &str = "a pipelined batch";

/// Where a read's answer goes: a `Get` answers one value, a `GetMany` all.
enum GetAnswer {
    One(Reply<Result<Option<Bytes>, ShardError>>),
    Many(Reply<Result<Vec<Option<Bytes>>, ShardError>>),
}

impl GetAnswer {
    fn send(self, values: Result<Vec<Option<Bytes>>, ShardError>) {
        match self {
            Self::One(reply) => {
                reply.send(values.map(|v| v.into_iter().next().flatten()));
            }
            Self::Many(reply) => {
                reply.send(values);
            }
        }
    }
}

/// A read-through shard's backing store and how it waits on it.
struct ReadThrough {
    backing: SharedBacking,
    timeout: Duration,
    fill_ttl: Option<Duration>,
    limit: usize,
    in_flight: Arc<Semaphore>,
}

/// The actor that owns one [`Store`]
///
/// Usually made by [`CacheSpec`](crate::CacheSpec), which places a cache's
/// shards and builds its client.
///
/// # Examples
///
/// ```no_run
/// # use std::num::NonZeroUsize;
/// # use troupe_cache::CacheShard;
/// # async fn demo(node: troupe_runtime::Node) {
/// let entries = NonZeroUsize::new(100_000).expect("non-zero");
/// let (spec, pool) = node
///     .pool_child("cache", 4, troupe_runtime::ChildOptions::permanent(), move |_| {
///         CacheShard::new(entries, 64 << 20)
///     })
///     .expect("names are free");
/// # let _ = (spec, pool);
/// # }
/// ```
pub struct CacheShard {
    /// The entries, shared with the front ends of this process
    table: Arc<ShardTable>,
    /// Store counters already exported: hits, misses, evictions, expirations
    reported: [u64; 4],
    /// Where they are exported, once registered
    metrics: Option<ShardMetrics>,
    fences: Fences,
    /// This instance's epoch, carried by the fills it starts
    epoch: u64,
    read_through: Option<ReadThrough>,
    config: Arc<SharedConfig>,
}

impl Drop for CacheShard {
    fn drop(&mut self) {
        // the instance has ended: runs in place go to its successor as messages
        self.table.close();
    }
}

impl CacheShard {
    /// An empty shard holding at most `max_entries` entries and `max_bytes`
    /// bytes of keys plus values
    pub fn new(max_entries: NonZeroUsize, max_bytes: usize) -> Self {
        Self::build(max_entries, max_bytes, None)
    }

    fn build(
        max_entries: NonZeroUsize,
        max_bytes: usize,
        read_through: Option<ReadThrough>,
    ) -> Self {
        let epoch = NEXT_EPOCH.fetch_add(1, Ordering::Relaxed);
        let mut store = Store::new(max_entries, max_bytes);
        // each instance its own range of CAS uniques (2^40 writes each)
        store.start_cas_at(epoch << 40);
        Self {
            table: Arc::new(ShardTable::new(store, read_through.is_some())),
            reported: [0; 4],
            metrics: None,
            fences: Fences::new(),
            epoch,
            read_through,
            config: SharedConfig::new(ShardConfig {
                max_bytes,
                policy: EvictionPolicy::default(),
            }),
        }
    }

    /// Shares its memory settings with `config`: it starts with them, and a
    /// `CONFIG SET` it applies is kept there for the instance that replaces
    /// it after a crash (give every instance of one shard the same `config`)
    pub fn with_config(mut self, config: Arc<SharedConfig>) -> Self {
        let ShardConfig { max_bytes, policy } = config.get();
        let now = troupe_runtime::time::now();
        let mut table = self.table.lock();
        table.store.set_max_bytes(max_bytes, now);
        table.store.set_policy(policy);
        drop(table);
        self.config = config;
        self
    }

    /// An empty read-through shard in front of `backing` (see the module
    /// docs): misses are filled from it and writes go through it
    ///
    /// `backing` must answer from its authoritative copy (for the DB: its
    /// leader).
    pub fn with_backing(
        max_entries: NonZeroUsize,
        max_bytes: usize,
        backing: SharedBacking,
    ) -> Self {
        let read_through = ReadThrough {
            backing,
            timeout: BACKING_TIMEOUT,
            fill_ttl: None,
            limit: BACKING_IN_FLIGHT,
            in_flight: Arc::new(Semaphore::new(BACKING_IN_FLIGHT)),
        };
        Self::build(max_entries, max_bytes, Some(read_through))
    }

    /// The expiry given to entries filled from the backing store (default:
    /// none; they stay until evicted or invalidated). No effect on a shard
    /// without a backing store.
    pub fn fill_ttl(mut self, ttl: Option<Duration>) -> Self {
        if let Some(rt) = &mut self.read_through {
            rt.fill_ttl = ttl;
        }
        self
    }

    /// How long to wait for the backing store (default 4 s; keep it below
    /// the [`CacheClient`](crate::CacheClient)'s call timeout). No effect on
    /// a shard without a backing store.
    pub fn backing_timeout(mut self, timeout: Duration) -> Self {
        if let Some(rt) = &mut self.read_through {
            rt.timeout = timeout;
        }
        self
    }

    /// Most reads and writes waiting on the backing store at once (default
    /// 1,024, at least 1); past it, requests that need the backing store are
    /// refused with [`ShardError::BackingBusy`]. No effect on a shard
    /// without a backing store.
    pub fn max_backing_in_flight(mut self, limit: usize) -> Self {
        if let Some(rt) = &mut self.read_through {
            rt.limit = limit.max(1);
            rt.in_flight = Arc::new(Semaphore::new(rt.limit));
        }
        self
    }

    /// This instance's epoch (a restarted shard gets a new one)
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The store's counters and size now
    pub fn stats(&self) -> ShardStats {
        let table = self.table.lock();
        let s = &table.store;
        ShardStats {
            keys: s.len() as u64,
            bytes: s.bytes() as u64,
            hits: s.hits(),
            misses: s.misses(),
            evictions: s.evictions(),
            expirations: s.expirations(),
            read_through: self.read_through.is_some(),
        }
    }

    /// The strings at `keys` (`None` for a missing key or one of another
    /// type, as `MGET` answers).
    fn get_many(&mut self, keys: &[Bytes], now: Instant) -> Vec<Option<Bytes>> {
        let store = &mut self.table.lock().store;
        keys.iter()
            .map(|k| store.get_string(k, now).and_then(Result::ok))
            .collect()
    }

    fn set(
        &mut self,
        key: Bytes,
        value: Bytes,
        ttl: SetTtl,
        condition: Option<SetCondition>,
        now: &Now,
    ) -> Result<SetResult, ShardError> {
        let expiry = match ttl {
            SetTtl::Clear => SetExpiry::Clear,
            SetTtl::After(d) => SetExpiry::After(d),
            SetTtl::Keep => SetExpiry::Keep,
        };
        let result = crate::cmd::strings::set(
            &mut self.table.lock().store,
            key,
            value,
            expiry,
            condition,
            crate::cmd::strings::Previous::Report,
            now,
        )?;
        Ok(result)
    }

    fn set_many(&mut self, pairs: Vec<(Bytes, Bytes)>, now: Instant) -> Result<(), ShardError> {
        let mut refused = Ok(());
        let store = &mut self.table.lock().store;
        for (key, value) in pairs {
            if let Err(err) = store.set(key, value, None, now) {
                refused = Err(err.into());
            }
        }
        refused
    }

    fn del(&mut self, keys: &[Bytes], now: Instant) -> u64 {
        let store = &mut self.table.lock().store;
        keys.iter().filter(|k| store.delete(k, now)).count() as u64
    }

    fn exists(&mut self, keys: &[Bytes], now: Instant) -> u64 {
        let store = &mut self.table.lock().store;
        keys.iter().filter(|k| store.exists(k, now)).count() as u64
    }

    /// Applies new memory settings, keeping them for a restarted successor.
    fn configure(
        &mut self,
        max_bytes: Option<usize>,
        policy: Option<EvictionPolicy>,
        now: Instant,
    ) -> ShardConfig {
        let mut config = self.config.get();
        let store = &mut self.table.lock().store;
        if let Some(policy) = policy {
            config.policy = policy;
            store.set_policy(policy);
        }
        if let Some(max_bytes) = max_bytes {
            config.max_bytes = max_bytes;
            store.set_max_bytes(max_bytes, now);
        }
        self.config.set(config);
        config
    }

    /// Caches a value the backing store had at `version`, unless the fill is
    /// another instance's, older than the key's fence or than the entry
    /// present; whether it was stored.
    fn fill(&mut self, key: Bytes, value: Bytes, version: u64, epoch: u64, now: Instant) -> bool {
        let ttl = self.read_through.as_ref().and_then(|rt| rt.fill_ttl);
        epoch == self.epoch
            && self
                .fences
                .fill(&mut self.table.lock().store, key, value, version, ttl, now)
                == FillOutcome::Stored
    }

    fn invalidate(&mut self, key: Bytes, version: u64, now: Instant) -> bool {
        self.fences
            .invalidate(&mut self.table.lock().store, key, version, now)
    }

    /// `GET`: a hit (or any answer of a plain shard) at once, a read-through
    /// miss from the backing store.
    fn get(
        &mut self,
        key: Bytes,
        reply: Reply<Result<Option<Bytes>, ShardError>>,
        ctx: &mut Ctx<ShardMsg>,
        now: Instant,
    ) {
        let found = self.table.lock().get(&key, now);
        let value = match found {
            Ok(value) => value,
            Err(wrong_type) => {
                reply.send(Err(wrong_type));
                return;
            }
        };
        if value.is_some() || self.read_through.is_none() {
            reply.send(Ok(value));
            return;
        }
        self.read_misses(vec![None], vec![(0, key)], GetAnswer::One(reply), ctx);
    }

    /// `MGET`: hits from the store, read-through misses from the backing
    /// store.
    fn get_many_through(
        &mut self,
        keys: Vec<Bytes>,
        reply: Reply<Result<Vec<Option<Bytes>>, ShardError>>,
        ctx: &mut Ctx<ShardMsg>,
        now: Instant,
    ) {
        let values = self.get_many(&keys, now);
        let misses: Vec<(usize, Bytes)> = match self.read_through {
            None => Vec::new(),
            Some(_) => keys
                .into_iter()
                .zip(&values)
                .enumerate()
                .filter(|(_, (_, value))| value.is_none())
                .map(|(i, (key, _))| (i, key))
                .collect(),
        };
        self.read_misses(values, misses, GetAnswer::Many(reply), ctx);
    }

    /// Answers `values` once the `misses` (position, key) are read from the
    /// backing store by a task on the shard's context, which casts the
    /// fills back before answering.
    fn read_misses(
        &self,
        values: Vec<Option<Bytes>>,
        misses: Vec<(usize, Bytes)>,
        answer: GetAnswer,
        ctx: &mut Ctx<ShardMsg>,
    ) {
        let Some(rt) = self.read_through.as_ref().filter(|_| !misses.is_empty()) else {
            answer.send(Ok(values));
            return;
        };
        let Ok(permit) = rt.in_flight.clone().try_acquire_owned() else {
            let limit = rt.limit;
            return answer.send(Err(ShardError::BackingBusy { limit }));
        };
        let (backing, timeout, epoch) = (rt.backing.clone(), rt.timeout, self.epoch);
        let me = ctx.myself().clone();
        ctx.spawn(async move {
            let _permit = permit;
            let mut values = values;
            for (i, key) in misses {
                let read = within(timeout, backing.get(key.clone(), timeout)).await;
                match read {
                    Ok(Versioned { value, version }) => {
                        if let Some(value) = value {
                            // A full mailbox just skips the fill.
                            let _ = me.cast(ShardMsg::Fill {
                                key,
                                value: value.clone(),
                                version,
                                epoch,
                            });
                            values[i] = Some(value);
                        }
                    }
                    Err(err) => {
                        answer.send(Err(err));
                        return Ok(());
                    }
                }
            }
            answer.send(Ok(values));
            Ok(())
        });
    }

    /// A write on a read-through shard: a task writes each key to the
    /// backing store, has the shard apply the invalidation with the version
    /// returned, and only then calls `done`.
    fn write_through(
        &mut self,
        writes: Vec<(Bytes, Option<Bytes>)>,
        ctx: &mut Ctx<ShardMsg>,
        done: impl FnOnce(Result<(), ShardError>) + Send + 'static,
    ) {
        let Some(rt) = self.read_through.as_ref() else {
            return done(Err(ShardError::Backing(
                "this shard has no backing store".into(),
            )));
        };
        let Ok(permit) = rt.in_flight.clone().try_acquire_owned() else {
            let limit = rt.limit;
            return done(Err(ShardError::BackingBusy { limit }));
        };
        let (backing, timeout) = (rt.backing.clone(), rt.timeout);
        let me = ctx.myself().clone();
        ctx.spawn(async move {
            let _permit = permit;
            for (key, value) in writes {
                let version = match within(timeout, backing.put(key.clone(), value, timeout)).await
                {
                    Ok(version) => version,
                    Err(err) => {
                        // The write may still land: at least drop the cached
                        // copy (a version-0 fence refuses nothing more), before
                        // answering, so no read after the answer (one in place
                        // included) returns the copy.
                        let dropped = me
                            .call(
                                |reply| ShardMsg::Invalidate {
                                    key,
                                    version: 0,
                                    reply,
                                },
                                timeout,
                            )
                            .await;
                        if let Err(cause) = dropped {
                            tracing::debug!(%cause, "the cached copy of a failed write was not dropped");
                        }
                        done(Err(err));
                        return Ok(());
                    }
                };
                let invalidated = me
                    .call(
                        |reply| ShardMsg::Invalidate {
                            key,
                            version,
                            reply,
                        },
                        timeout,
                    )
                    .await;
                if let Err(err) = invalidated {
                    done(Err(ShardError::Backing(format!(
                        "written, but the invalidation failed: {err}"
                    ))));
                    return Ok(());
                }
            }
            done(Ok(()));
            Ok(())
        });
    }

    /// Export counter growth since the last export, and the current size.
    fn export(&mut self, shard: &str) {
        let handles = self.metrics.get_or_insert_with(|| ShardMetrics::new(shard));
        let table = self.table.lock();
        let s = &table.store;
        let now = [s.hits(), s.misses(), s.evictions(), s.expirations()];
        for ((counter, now), reported) in handles.counters.iter().zip(now).zip(&mut self.reported) {
            if now > *reported {
                counter.increment(now - *reported);
                *reported = now;
            }
        }
        handles.keys.set(s.len() as f64);
        handles.bytes.set(s.bytes() as f64);
    }
}

/// A shard's metric handles, registered once: exporting after every message
/// then costs no registry lookup and no label string.
///
/// Made at the instance's first export, when the program's recorder is
/// installed (a recorder installed later sees no shard that exported before
/// it).
struct ShardMetrics {
    /// Hits, misses, evictions, expirations
    counters: [metrics::Counter; 4],
    keys: metrics::Gauge,
    bytes: metrics::Gauge,
}

impl ShardMetrics {
    fn new(shard: &str) -> Self {
        let counter = |name: &'static str| metrics::counter!(name, "shard" => shard.to_string());
        Self {
            counters: [
                counter("troupe_cache_hits_total"),
                counter("troupe_cache_misses_total"),
                counter("troupe_cache_evictions_total"),
                counter("troupe_cache_expirations_total"),
            ],
            keys: metrics::gauge!("troupe_cache_keys", "shard" => shard.to_string()),
            bytes: metrics::gauge!("troupe_cache_bytes", "shard" => shard.to_string()),
        }
    }
}

/// Waits up to `timeout` for a backing-store operation; its failure as the
/// shard answers it.
async fn within<T>(
    timeout: Duration,
    op: impl Future<Output = Result<T, BackingError>>,
) -> Result<T, ShardError> {
    match tokio::time::timeout(timeout, op).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => {
            let cause = err.chain();
            tracing::debug!(%cause, "backing store failed");
            Err(ShardError::Backing(cause))
        }
        Err(_) => Err(ShardError::Backing(format!("no answer within {timeout:?}"))),
    }
}

impl Actor for CacheShard {
    type Msg = ShardMsg;

    async fn started(&mut self, ctx: &mut Ctx<ShardMsg>) -> Result<(), ActorError> {
        // A full mailbox just skips a sweep.
        ctx.send_interval(PURGE_EVERY, || ShardMsg::PurgeExpired);
        ctx.share(self.table.clone());
        Ok(())
    }

    async fn handle(&mut self, msg: ShardMsg, ctx: &mut Ctx<ShardMsg>) -> Result<(), ActorError> {
        if !self.table.is_open() {
            return Err(
                "a command run in place panicked; starting again with an empty store".into(),
            );
        }
        let clock = Now::at(troupe_runtime::time::now());
        let now = clock.at;
        let table = self.table.clone();
        // before anything can observe the store: a delayed flush that is due
        table.lock().catch_up(now);
        let through = self.read_through.is_some();
        match msg {
            ShardMsg::Get { key, reply } => self.get(key, reply, ctx, now),
            ShardMsg::GetMany { keys, reply } => self.get_many_through(keys, reply, ctx, now),
            ShardMsg::Set {
                key,
                value,
                ttl,
                condition,
                reply,
            } if through => {
                if ttl != SetTtl::Clear || condition.is_some() {
                    let what = "SET with NX, XX, EX, PX or KEEPTTL".to_string();
                    reply.send(Err(ShardError::ReadThroughUnsupported(what)));
                } else {
                    // `SET ... GET` reports the cached copy, if any.
                    let old = match table.lock().store.peek(&key, now) {
                        Some(Value::Str(v)) => Some(v.clone()),
                        _ => None,
                    };
                    self.write_through(vec![(key, Some(value))], ctx, move |done| {
                        reply.send(done.map(|()| SetResult { written: true, old }));
                    });
                }
            }
            ShardMsg::Set {
                key,
                value,
                ttl,
                condition,
                reply,
            } => {
                reply.send(self.set(key, value, ttl, condition, &clock));
            }
            ShardMsg::SetMany { pairs, reply } if through => {
                let writes = pairs.into_iter().map(|(k, v)| (k, Some(v))).collect();
                self.write_through(writes, ctx, move |done| {
                    reply.send(done);
                });
            }
            ShardMsg::SetMany { pairs, reply } => {
                reply.send(self.set_many(pairs, now));
            }
            ShardMsg::Del { keys, reply } if through => {
                // The backing store does not say whether a key existed: the
                // count is of keys deleted there, present or not.
                let n = keys.len() as u64;
                let writes = keys.into_iter().map(|k| (k, None)).collect();
                self.write_through(writes, ctx, move |done| {
                    reply.send(done.map(|()| n));
                });
            }
            ShardMsg::Del { keys, reply } => {
                reply.send(Ok(self.del(&keys, now)));
            }
            ShardMsg::Exists { keys, reply } => {
                reply.send(self.exists(&keys, now));
            }
            ShardMsg::Expire {
                key,
                millis,
                options,
                reply,
            } => {
                let when = ExpireWhen::In(millis);
                let set = crate::cmd::keyspace::expire(
                    &mut table.lock().store,
                    &key,
                    when,
                    options,
                    &clock,
                );
                reply.send(set.unwrap_or(false));
            }
            ShardMsg::Ttl { key, reply } => {
                reply.send(table.lock().store.ttl(&key, now).into());
            }
            ShardMsg::Persist { key, reply } => {
                reply.send(table.lock().store.persist(&key, now));
            }
            ShardMsg::IncrBy { reply, .. } if through => {
                let what = "INCRBY".to_string();
                reply.send(Err(ShardError::ReadThroughUnsupported(what)));
            }
            ShardMsg::IncrBy { key, by, reply } => {
                let result =
                    crate::cmd::strings::incr_by(&mut table.lock().store, &key, by, &clock);
                reply.send(result.map_err(ShardError::from));
            }
            ShardMsg::Run { commands, reply } => {
                reply.send(table.run(commands, &clock));
            }
            ShardMsg::Keys { pattern, reply } => {
                reply.send(all_shards::keys_shard(&table.lock().store, &pattern, now));
            }
            ShardMsg::Scan {
                position,
                count,
                pattern,
                kind,
                reply,
            } => {
                let pattern = pattern.as_deref();
                let step = all_shards::scan_shard(
                    &table.lock().store,
                    position,
                    count,
                    pattern,
                    kind,
                    now,
                );
                reply.send(step);
            }
            ShardMsg::Configure {
                max_bytes,
                policy,
                reply,
            } => {
                reply.send(self.configure(max_bytes, policy, now));
            }
            ShardMsg::DbSize(reply) => {
                reply.send(table.lock().store.len() as u64);
            }
            ShardMsg::FlushAll(reply) => {
                table.lock().store.clear();
                reply.send(());
            }
            ShardMsg::FlushAfter { delay, reply } => {
                let mut table = table.lock();
                table.flush_at = None;
                if delay.is_zero() {
                    table.store.clear();
                } else {
                    // too far to represent: never
                    table.flush_at = now.checked_add(delay);
                }
                drop(table);
                reply.send(());
            }
            ShardMsg::Stats(reply) => {
                reply.send(self.stats());
            }
            ShardMsg::PurgeExpired => {
                table.lock().store.purge_expired(now, PURGE_BATCH);
            }
            ShardMsg::Fill {
                key,
                value,
                version,
                epoch,
            } => {
                self.fill(key, value, version, epoch, now);
            }
            ShardMsg::Invalidate {
                key,
                version,
                reply,
            } => {
                reply.send(self.invalidate(key, version, now));
            }
        }
        self.export(ctx.name());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard() -> CacheShard {
        CacheShard::new(NonZeroUsize::new(100).unwrap(), 1 << 20)
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn del_exists_and_stats() {
        let now = troupe_runtime::time::now();
        let mut s = shard();
        s.set_many(vec![(b("a"), b("1")), (b("b"), b("2"))], now)
            .unwrap();
        assert_eq!(s.exists(&[b("a"), b("a"), b("c")], now), 2);
        assert_eq!(s.del(&[b("a"), b("c")], now), 1);
        assert_eq!(s.table.lock().store.len(), 1);
        s.get_many(&[b("b"), b("a")], now);
        let stats = s.stats();
        assert_eq!((stats.keys, stats.hits, stats.misses), (1, 1, 1));
    }

    #[test]
    fn too_large_is_an_oom_error() {
        let now = troupe_runtime::time::now();
        let mut s = CacheShard::new(NonZeroUsize::new(10).unwrap(), 4);
        assert_eq!(
            s.set(b("key"), b("value"), SetTtl::Clear, None, &Now::at(now)),
            Err(ShardError::TooLarge)
        );
        assert_eq!(
            s.set_many(vec![(b("key"), b("value"))], now),
            Err(ShardError::TooLarge)
        );
    }

    #[test]
    fn fills_respect_epoch_and_invalidations() {
        let now = troupe_runtime::time::now();
        let mut s = shard();
        let epoch = s.epoch();
        // A fill started by another (crashed) instance is dropped.
        assert!(!s.fill(b("k"), b("v1"), 1, epoch + 1, now));
        assert!(s.fill(b("k"), b("v1"), 1, epoch, now));
        assert!(s.invalidate(b("k"), 3, now));
        assert!(!s.fill(b("k"), b("v2"), 2, epoch, now));
        assert_eq!(s.get_many(&[b("k")], now), vec![None]);
        assert!(s.fill(b("k"), b("v3"), 3, epoch, now));
        assert_eq!(s.get_many(&[b("k")], now), vec![Some(b("v3"))]);
        assert_ne!(shard().epoch(), epoch, "each instance has its own epoch");
    }
}
