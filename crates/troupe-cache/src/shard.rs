//! [`CacheShard`]: the supervised actor that owns one [`Store`]
//!
//! The shard is a thin shell: it reads the clock once per message, applies
//! the operation to its store, and exports the store's counters through
//! `metrics`. A crash loses the shard's entries; the restarted instance
//! starts empty, which is all a cache promises.
//!
//! # Read-through
//!
//! A shard made with [`CacheShard::with_backing`] sits in front of a backing
//! actor answering [`BackingMsg`]:
//!
//! - A `GET` miss is read from the backing store by a spawned task (the shard
//!   keeps serving), the caller gets the backing store's answer, and the task
//!   casts [`ShardMsg::Fill`] with the version it read back to the shard. The
//!   fill is dropped if a write of the key newer than that version was
//!   invalidated meanwhile ([`Fences`]).
//! - `SET`, `MSET` and `DEL` write through: a spawned task sends
//!   [`BackingMsg::Put`], applies [`ShardMsg::Invalidate`] with the version
//!   the backing store returned, and only then answers. The written value is
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
//!   fences start empty.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use troupe_runtime::{Actor, ActorError, Addr, Ctx, Message, ReplyTo};

use crate::backing::{BackingMsg, Versioned};
use crate::cmd::{ExpireOptions, SetCondition};
use crate::readthrough::{Fences, FillOutcome};
use crate::resp::frame::parse_i64;
use crate::store::{Store, StoreError, TtlState};

/// How often a shard sweeps the cold end of its LRU for expired entries
const PURGE_EVERY: Duration = Duration::from_millis(100);

/// Most entries one sweep looks at, so a sweep never stalls the shard
const PURGE_BATCH: usize = 64;

/// How long a read-through shard waits for its backing store, and for itself
/// to apply an invalidation, by default
const BACKING_TIMEOUT: Duration = Duration::from_secs(4);

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
pub enum ShardError {
    /// `INCRBY` on a value that is not a decimal `i64`
    #[error("ERR value is not an integer or out of range")]
    NotAnInteger,
    /// `INCRBY` whose result does not fit an `i64`
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    /// A key plus value larger than the shard's byte bound
    #[error("OOM command not allowed when used memory > 'maxmemory'.")]
    TooLarge,
    /// A read-through shard's backing store failed or did not answer in
    /// time; a write may or may not have been applied
    #[error("ERR backing store unavailable: {0}")]
    Backing(String),
    /// An operation a read-through shard cannot apply safely (it would need
    /// the backing store's value or an expiry there)
    #[error("ERR {0} is not supported on a read-through cache")]
    ReadThroughUnsupported(String),
}

impl From<StoreError> for ShardError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::TooLarge { .. } => Self::TooLarge,
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
        }
    }
}

/// What a [`CacheShard`] handles; every key in a message belongs to the
/// shard it is sent to (routing is [`CacheClient`](crate::CacheClient)'s job)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardMsg {
    /// The values of `keys`, in order → [`ShardReply::Values`]
    Get(Vec<Bytes>),
    /// `SET` with its options → [`ShardReply::Set`]
    Set {
        /// The key
        key: Bytes,
        /// The value
        value: Bytes,
        /// The expiry to give it
        ttl: SetTtl,
        /// `NX`/`XX`
        condition: Option<SetCondition>,
    },
    /// Set every pair, no conditions, no expiry → [`ShardReply::Done`]
    SetMany(Vec<(Bytes, Bytes)>),
    /// Remove `keys` → [`ShardReply::Count`] of live keys removed
    Del(Vec<Bytes>),
    /// → [`ShardReply::Count`] of `keys` that are live (repeats count again)
    Exists(Vec<Bytes>),
    /// `EXPIRE`/`PEXPIRE` → [`ShardReply::Flag`]: whether the expiry was set
    Expire {
        /// The key
        key: Bytes,
        /// Milliseconds from now; zero or negative deletes the key
        millis: i64,
        /// `NX`/`XX`/`GT`/`LT`
        options: ExpireOptions,
    },
    /// → [`ShardReply::Ttl`]
    Ttl(Bytes),
    /// Remove the key's expiry → [`ShardReply::Flag`]: whether it had one
    Persist(Bytes),
    /// Add `by` to the integer at `key` (absent counts as 0), keeping its
    /// expiry → [`ShardReply::Int`]
    IncrBy {
        /// The key
        key: Bytes,
        /// The increment, negative to decrement
        by: i64,
    },
    /// Entries held → [`ShardReply::Count`]
    DbSize,
    /// Remove every entry → [`ShardReply::Done`]
    FlushAll,
    /// → [`ShardReply::Stats`]
    Stats,
    /// Sweep the cold end for expired entries (the shard casts this to
    /// itself periodically) → [`ShardReply::Count`] removed
    PurgeExpired,
    /// Cache a value read from the backing store at `version` (a
    /// read-through shard casts this to itself after a miss) →
    /// [`ShardReply::Flag`]: whether it was stored. Dropped if older than the
    /// key's last invalidation or than the entry present, or if `epoch` is
    /// not this shard instance's.
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
    /// cached entry and refuse older fills → [`ShardReply::Flag`]: whether a
    /// live entry was removed
    Invalidate {
        /// The key
        key: Bytes,
        /// The version the write created
        version: u64,
    },
}

/// What a [`CacheShard`] answers
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardReply {
    /// Values in request order, `None` for a missing key
    Values(Vec<Option<Bytes>>),
    /// The outcome of a `SET`
    Set {
        /// Whether the value was written (`false` when `NX`/`XX` failed)
        written: bool,
        /// The live value before the operation, for `SET ... GET`
        old: Option<Bytes>,
    },
    /// A count
    Count(u64),
    /// A yes/no outcome
    Flag(bool),
    /// A time to live
    Ttl(KeyTtl),
    /// An integer result
    Int(i64),
    /// The operation is done
    Done,
    /// The shard's counters
    Stats(ShardStats),
    /// The operation was refused
    Error(ShardError),
}

impl Message for ShardMsg {
    const NAME: &'static str = "troupe.cache.Shard";
    type Reply = ShardReply;
}

/// Aborts the periodic purge when the shard goes away (stop or crash).
struct Ticker(JoinHandle<()>);

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The actor that owns one [`Store`]
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
    store: Store,
    /// Store counters already exported: hits, misses, evictions, expirations
    reported: [u64; 4],
    ticker: Option<Ticker>,
    fences: Fences,
    /// This instance's epoch, carried by the fills it starts
    epoch: u64,
    backing: Option<Addr<BackingMsg>>,
    backing_timeout: Duration,
    fill_ttl: Option<Duration>,
}

impl CacheShard {
    /// An empty shard holding at most `max_entries` entries and `max_bytes`
    /// bytes of keys plus values
    pub fn new(max_entries: NonZeroUsize, max_bytes: usize) -> Self {
        Self {
            store: Store::new(max_entries, max_bytes),
            reported: [0; 4],
            ticker: None,
            fences: Fences::new(),
            epoch: NEXT_EPOCH.fetch_add(1, Ordering::Relaxed),
            backing: None,
            backing_timeout: BACKING_TIMEOUT,
            fill_ttl: None,
        }
    }

    /// An empty read-through shard in front of `backing` (see the module
    /// docs): misses are filled from it and writes go through it
    ///
    /// `backing` must answer from its authoritative copy (for the DB: its
    /// leader).
    pub fn with_backing(
        max_entries: NonZeroUsize,
        max_bytes: usize,
        backing: Addr<BackingMsg>,
    ) -> Self {
        Self {
            backing: Some(backing),
            ..Self::new(max_entries, max_bytes)
        }
    }

    /// The expiry given to entries filled from the backing store (default:
    /// none; they stay until evicted or invalidated)
    pub fn fill_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.fill_ttl = ttl;
        self
    }

    /// How long to wait for the backing store (default 4 s; keep it below
    /// the [`CacheClient`](crate::CacheClient)'s call timeout)
    pub fn backing_timeout(mut self, timeout: Duration) -> Self {
        self.backing_timeout = timeout;
        self
    }

    /// This instance's epoch (a restarted shard gets a new one)
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Apply `msg` at time `now` (the actor passes `Instant::now()`)
    pub fn apply(&mut self, msg: ShardMsg, now: Instant) -> ShardReply {
        let store = &mut self.store;
        match msg {
            ShardMsg::Get(keys) => ShardReply::Values(
                keys.iter()
                    .map(|k| store.get(k, now).map(Bytes::copy_from_slice))
                    .collect(),
            ),
            ShardMsg::Set {
                key,
                value,
                ttl,
                condition,
            } => set(store, key, value, ttl, condition, now),
            ShardMsg::SetMany(pairs) => {
                let mut refused = None;
                for (key, value) in pairs {
                    if let Err(err) = store.set(key, value, None, now) {
                        refused = Some(err.into());
                    }
                }
                refused.map_or(ShardReply::Done, ShardReply::Error)
            }
            ShardMsg::Del(keys) => {
                ShardReply::Count(keys.iter().filter(|k| store.delete(k, now)).count() as u64)
            }
            ShardMsg::Exists(keys) => {
                ShardReply::Count(keys.iter().filter(|k| store.exists(k, now)).count() as u64)
            }
            ShardMsg::Expire {
                key,
                millis,
                options,
            } => ShardReply::Flag(expire(store, &key, millis, options, now)),
            ShardMsg::Ttl(key) => ShardReply::Ttl(store.ttl(&key, now).into()),
            ShardMsg::Persist(key) => ShardReply::Flag(store.persist(&key, now)),
            ShardMsg::IncrBy { key, by } => match incr_by(store, key, by, now) {
                Ok(n) => ShardReply::Int(n),
                Err(err) => ShardReply::Error(err),
            },
            ShardMsg::DbSize => ShardReply::Count(store.len() as u64),
            ShardMsg::FlushAll => {
                store.clear();
                ShardReply::Done
            }
            ShardMsg::Stats => ShardReply::Stats(self.stats()),
            ShardMsg::PurgeExpired => {
                ShardReply::Count(store.purge_expired(now, PURGE_BATCH) as u64)
            }
            ShardMsg::Fill {
                key,
                value,
                version,
                epoch,
            } => {
                let stored = epoch == self.epoch
                    && self
                        .fences
                        .fill(store, key, value, version, self.fill_ttl, now)
                        == FillOutcome::Stored;
                ShardReply::Flag(stored)
            }
            ShardMsg::Invalidate { key, version } => {
                ShardReply::Flag(self.fences.invalidate(store, key, version, now))
            }
        }
    }

    /// A `GET` on a read-through shard: hits are answered from the store,
    /// misses by a spawned task reading the backing store, which casts the
    /// fills back.
    fn read_through(
        &mut self,
        backing: Addr<BackingMsg>,
        keys: Vec<Bytes>,
        reply: ReplyTo<ShardReply>,
        ctx: &Ctx<ShardMsg>,
        now: Instant,
    ) {
        let mut values = Vec::with_capacity(keys.len());
        let mut misses = Vec::new();
        for (i, key) in keys.into_iter().enumerate() {
            let value = self.store.get(&key, now).map(Bytes::copy_from_slice);
            if value.is_none() {
                misses.push((i, key));
            }
            values.push(value);
        }
        if misses.is_empty() {
            reply.send(ShardReply::Values(values));
            return;
        }
        let me = ctx.myself().clone();
        let (epoch, timeout) = (self.epoch, self.backing_timeout);
        tokio::spawn(async move {
            for (i, key) in misses {
                let read = backing
                    .call(BackingMsg::Get { key: key.to_vec() }, timeout)
                    .await;
                match read {
                    Ok(Versioned { value, version }) => {
                        if let Some(value) = value.map(Bytes::from) {
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
                        reply.send(ShardReply::Error(ShardError::Backing(err.to_string())));
                        return;
                    }
                }
            }
            reply.send(ShardReply::Values(values));
        });
    }

    /// A write on a read-through shard: a spawned task puts each key to the
    /// backing store, has the shard apply the invalidation with the version
    /// returned, and only then answers.
    fn write_through(
        &mut self,
        backing: Addr<BackingMsg>,
        msg: ShardMsg,
        reply: ReplyTo<ShardReply>,
        ctx: &Ctx<ShardMsg>,
        now: Instant,
    ) {
        let (writes, answer) = match msg {
            ShardMsg::Set {
                key,
                value,
                ttl,
                condition,
            } => {
                if ttl != SetTtl::Clear || condition.is_some() {
                    let what = "SET with NX, XX, EX, PX or KEEPTTL".to_string();
                    reply.send(ShardReply::Error(ShardError::ReadThroughUnsupported(what)));
                    return;
                }
                // `SET ... GET` reports the cached copy, if any.
                let old = self.store.peek(&key, now).map(Bytes::copy_from_slice);
                let answer = ShardReply::Set { written: true, old };
                (vec![(key, Some(value))], answer)
            }
            ShardMsg::SetMany(pairs) => (
                pairs.into_iter().map(|(k, v)| (k, Some(v))).collect(),
                ShardReply::Done,
            ),
            ShardMsg::Del(keys) => {
                // The backing store does not say whether a key existed: the
                // count is of keys deleted there, present or not.
                let n = keys.len() as u64;
                (
                    keys.into_iter().map(|k| (k, None)).collect(),
                    ShardReply::Count(n),
                )
            }
            ShardMsg::IncrBy { .. } => {
                let what = "INCRBY".to_string();
                reply.send(ShardReply::Error(ShardError::ReadThroughUnsupported(what)));
                return;
            }
            other => {
                reply.send(self.apply(other, now));
                return;
            }
        };
        let me = ctx.myself().clone();
        let timeout = self.backing_timeout;
        tokio::spawn(async move {
            for (key, value) in writes {
                let put = BackingMsg::Put {
                    key: key.to_vec(),
                    value: value.map(|v| v.to_vec()),
                };
                let version = match backing.call(put, timeout).await {
                    Ok(Versioned { version, .. }) => version,
                    Err(err) => {
                        // The write may still land: at least drop the cached
                        // copy (a version-0 fence refuses nothing more).
                        let _ = me.cast(ShardMsg::Invalidate { key, version: 0 });
                        reply.send(ShardReply::Error(ShardError::Backing(err.to_string())));
                        return;
                    }
                };
                if let Err(err) = me
                    .call(ShardMsg::Invalidate { key, version }, timeout)
                    .await
                {
                    reply.send(ShardReply::Error(ShardError::Backing(format!(
                        "written, but the invalidation failed: {err}"
                    ))));
                    return;
                }
            }
            reply.send(answer);
        });
    }

    /// The store's counters and size now
    pub fn stats(&self) -> ShardStats {
        let s = &self.store;
        ShardStats {
            keys: s.len() as u64,
            bytes: s.bytes() as u64,
            hits: s.hits(),
            misses: s.misses(),
            evictions: s.evictions(),
            expirations: s.expirations(),
        }
    }

    /// Export counter growth since the last export, and the current size.
    fn export(&mut self, shard: &str) {
        let s = &self.store;
        let now = [s.hits(), s.misses(), s.evictions(), s.expirations()];
        let names = [
            "troupe_cache_hits_total",
            "troupe_cache_misses_total",
            "troupe_cache_evictions_total",
            "troupe_cache_expirations_total",
        ];
        for ((name, now), reported) in names.into_iter().zip(now).zip(&mut self.reported) {
            if now > *reported {
                metrics::counter!(name, "shard" => shard.to_string()).increment(now - *reported);
                *reported = now;
            }
        }
        metrics::gauge!("troupe_cache_keys", "shard" => shard.to_string()).set(s.len() as f64);
        metrics::gauge!("troupe_cache_bytes", "shard" => shard.to_string()).set(s.bytes() as f64);
    }
}

fn set(
    store: &mut Store,
    key: Bytes,
    value: Bytes,
    ttl: SetTtl,
    condition: Option<SetCondition>,
    now: Instant,
) -> ShardReply {
    let old = store.peek(&key, now).map(Bytes::copy_from_slice);
    let allowed = match condition {
        None => true,
        Some(SetCondition::IfAbsent) => old.is_none(),
        Some(SetCondition::IfPresent) => old.is_some(),
    };
    if !allowed {
        return ShardReply::Set {
            written: false,
            old,
        };
    }
    let ttl = match ttl {
        SetTtl::Clear => None,
        SetTtl::After(d) => Some(d),
        SetTtl::Keep => match store.ttl(&key, now) {
            TtlState::Remaining(d) => Some(d),
            TtlState::NoKey | TtlState::NoExpiry => None,
        },
    };
    match store.set(key, value, ttl, now) {
        Ok(_) => ShardReply::Set { written: true, old },
        Err(err) => ShardReply::Error(err.into()),
    }
}

/// `EXPIRE` with Redis 7's options: a key without expiry counts as an
/// infinite TTL for `GT`/`LT`.
fn expire(
    store: &mut Store,
    key: &[u8],
    millis: i64,
    options: ExpireOptions,
    now: Instant,
) -> bool {
    let current = match store.ttl(key, now) {
        TtlState::NoKey => return false,
        TtlState::NoExpiry => None,
        TtlState::Remaining(d) => Some(d),
    };
    let new = Duration::from_millis(u64::try_from(millis).unwrap_or(0));
    let refused = (options.nx && current.is_some())
        || (options.xx && current.is_none())
        || (options.gt && current.is_none_or(|c| new <= c))
        || (options.lt && current.is_some_and(|c| new >= c));
    if refused {
        return false;
    }
    store.expire(key, new, now)
}

fn incr_by(store: &mut Store, key: Bytes, by: i64, now: Instant) -> Result<i64, ShardError> {
    let current = match store.peek(&key, now) {
        None => 0,
        Some(v) => parse_i64(v).ok_or(ShardError::NotAnInteger)?,
    };
    let next = current.checked_add(by).ok_or(ShardError::Overflow)?;
    let ttl = match store.ttl(&key, now) {
        TtlState::Remaining(d) => Some(d),
        TtlState::NoKey | TtlState::NoExpiry => None,
    };
    store.set(key, Bytes::from(next.to_string()), ttl, now)?;
    Ok(next)
}

impl Actor for CacheShard {
    type Msg = ShardMsg;

    async fn started(&mut self, ctx: &Ctx<ShardMsg>) -> Result<(), ActorError> {
        let me = ctx.myself().clone();
        self.ticker = Some(Ticker(tokio::spawn(async move {
            let mut every = tokio::time::interval(PURGE_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                // A full mailbox just skips a sweep.
                let _ = me.cast(ShardMsg::PurgeExpired);
            }
        })));
        Ok(())
    }

    async fn handle(
        &mut self,
        msg: ShardMsg,
        reply: ReplyTo<ShardReply>,
        ctx: &Ctx<ShardMsg>,
    ) -> Result<(), ActorError> {
        let now = Instant::now();
        match (self.backing.clone(), msg) {
            (Some(backing), ShardMsg::Get(keys)) => {
                self.read_through(backing, keys, reply, ctx, now);
            }
            (
                Some(backing),
                msg @ (ShardMsg::Set { .. }
                | ShardMsg::SetMany(_)
                | ShardMsg::Del(_)
                | ShardMsg::IncrBy { .. }),
            ) => self.write_through(backing, msg, reply, ctx, now),
            (_, msg) => {
                let answer = self.apply(msg, now);
                reply.send(answer);
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

    fn set_msg(key: &str, value: &str, ttl: SetTtl, condition: Option<SetCondition>) -> ShardMsg {
        ShardMsg::Set {
            key: b(key),
            value: b(value),
            ttl,
            condition,
        }
    }

    #[test]
    fn set_conditions_and_get() {
        let now = Instant::now();
        let mut s = shard();
        let nx = set_msg("k", "1", SetTtl::Clear, Some(SetCondition::IfAbsent));
        assert_eq!(
            s.apply(nx.clone(), now),
            ShardReply::Set {
                written: true,
                old: None
            }
        );
        assert_eq!(
            s.apply(nx, now),
            ShardReply::Set {
                written: false,
                old: Some(b("1"))
            }
        );
        let xx = set_msg("missing", "1", SetTtl::Clear, Some(SetCondition::IfPresent));
        assert_eq!(
            s.apply(xx, now),
            ShardReply::Set {
                written: false,
                old: None
            }
        );
        assert_eq!(
            s.apply(ShardMsg::Get(vec![b("k"), b("missing")]), now),
            ShardReply::Values(vec![Some(b("1")), None])
        );
    }

    #[test]
    fn keepttl_and_expire_options() {
        let now = Instant::now();
        let mut s = shard();
        let ten = Duration::from_secs(10);
        s.apply(set_msg("k", "1", SetTtl::After(ten), None), now);
        s.apply(set_msg("k", "2", SetTtl::Keep, None), now);
        assert_eq!(
            s.apply(ShardMsg::Ttl(b("k")), now),
            ShardReply::Ttl(KeyTtl::Remaining(ten))
        );
        let expire = |millis, options| ShardMsg::Expire {
            key: b("k"),
            millis,
            options,
        };
        let gt = ExpireOptions {
            gt: true,
            ..ExpireOptions::default()
        };
        let nx = ExpireOptions {
            nx: true,
            ..ExpireOptions::default()
        };
        assert_eq!(s.apply(expire(5_000, gt), now), ShardReply::Flag(false));
        assert_eq!(s.apply(expire(20_000, gt), now), ShardReply::Flag(true));
        assert_eq!(s.apply(expire(1_000, nx), now), ShardReply::Flag(false));
        assert_eq!(
            s.apply(ShardMsg::Persist(b("k")), now),
            ShardReply::Flag(true)
        );
        assert_eq!(
            s.apply(ShardMsg::Ttl(b("k")), now),
            ShardReply::Ttl(KeyTtl::Persistent)
        );
        assert_eq!(
            s.apply(expire(-1, ExpireOptions::default()), now),
            ShardReply::Flag(true)
        );
        assert_eq!(
            s.apply(ShardMsg::Ttl(b("k")), now),
            ShardReply::Ttl(KeyTtl::Missing)
        );
    }

    #[test]
    fn incr_by_follows_redis() {
        let now = Instant::now();
        let mut s = shard();
        let incr = |by| ShardMsg::IncrBy { key: b("n"), by };
        assert_eq!(s.apply(incr(5), now), ShardReply::Int(5));
        assert_eq!(s.apply(incr(-7), now), ShardReply::Int(-2));
        s.apply(
            set_msg("n", &i64::MAX.to_string(), SetTtl::Clear, None),
            now,
        );
        assert_eq!(
            s.apply(incr(1), now),
            ShardReply::Error(ShardError::Overflow)
        );
        for bad in ["x", " 1", "01", "1.5", ""] {
            s.apply(set_msg("n", bad, SetTtl::Clear, None), now);
            assert_eq!(
                s.apply(incr(1), now),
                ShardReply::Error(ShardError::NotAnInteger),
                "{bad:?}"
            );
        }
        // The expiry survives an increment.
        s.apply(
            set_msg("t", "1", SetTtl::After(Duration::from_secs(3)), None),
            now,
        );
        s.apply(ShardMsg::IncrBy { key: b("t"), by: 1 }, now);
        assert_eq!(
            s.apply(ShardMsg::Ttl(b("t")), now),
            ShardReply::Ttl(KeyTtl::Remaining(Duration::from_secs(3)))
        );
    }

    #[test]
    fn del_exists_dbsize_flush_stats() {
        let now = Instant::now();
        let mut s = shard();
        s.apply(
            ShardMsg::SetMany(vec![(b("a"), b("1")), (b("b"), b("2"))]),
            now,
        );
        assert_eq!(
            s.apply(ShardMsg::Exists(vec![b("a"), b("a"), b("c")]), now),
            ShardReply::Count(2)
        );
        assert_eq!(
            s.apply(ShardMsg::Del(vec![b("a"), b("c")]), now),
            ShardReply::Count(1)
        );
        assert_eq!(s.apply(ShardMsg::DbSize, now), ShardReply::Count(1));
        s.apply(ShardMsg::Get(vec![b("b"), b("a")]), now);
        let ShardReply::Stats(stats) = s.apply(ShardMsg::Stats, now) else {
            panic!("stats");
        };
        assert_eq!((stats.keys, stats.hits, stats.misses), (1, 1, 1));
        assert_eq!(s.apply(ShardMsg::FlushAll, now), ShardReply::Done);
        assert_eq!(s.apply(ShardMsg::DbSize, now), ShardReply::Count(0));
    }

    #[test]
    fn too_large_is_an_oom_error() {
        let now = Instant::now();
        let mut s = CacheShard::new(NonZeroUsize::new(10).unwrap(), 4);
        assert_eq!(
            s.apply(set_msg("key", "value", SetTtl::Clear, None), now),
            ShardReply::Error(ShardError::TooLarge)
        );
    }

    #[test]
    fn fills_respect_epoch_and_invalidations() {
        let now = Instant::now();
        let mut s = shard();
        let fill = |value: &str, version, epoch| ShardMsg::Fill {
            key: b("k"),
            value: b(value),
            version,
            epoch,
        };
        let epoch = s.epoch();
        // A fill started by another (crashed) instance is dropped.
        assert_eq!(
            s.apply(fill("v1", 1, epoch + 1), now),
            ShardReply::Flag(false)
        );
        assert_eq!(s.apply(fill("v1", 1, epoch), now), ShardReply::Flag(true));
        let invalidate = ShardMsg::Invalidate {
            key: b("k"),
            version: 3,
        };
        assert_eq!(s.apply(invalidate, now), ShardReply::Flag(true));
        assert_eq!(s.apply(fill("v2", 2, epoch), now), ShardReply::Flag(false));
        assert_eq!(
            s.apply(ShardMsg::Get(vec![b("k")]), now),
            ShardReply::Values(vec![None])
        );
        assert_eq!(s.apply(fill("v3", 3, epoch), now), ShardReply::Flag(true));
        assert_eq!(
            s.apply(ShardMsg::Get(vec![b("k")]), now),
            ShardReply::Values(vec![Some(b("v3"))])
        );
        assert_ne!(shard().epoch(), epoch, "each instance has its own epoch");
    }
}
