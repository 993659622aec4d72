//! An LRU store of typed values, bounded by entry count and by bytes, with
//! an expiry per key and an eviction policy
//!
//! The store never reads a clock: every operation that can observe expiry
//! takes `now`, so tests drive time by hand and the actor shell passes the
//! runtime's clock once per message.

mod value;

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lru::LruCache;

pub use value::{Hash, Kind, List, MEMBER_OVERHEAD, Set, Value};

/// The full O(n) byte-accounting check runs in debug builds only while the
/// store holds at most this many entries, so a debug build with a large cache
/// is not made quadratic by its own assertions.
const FULL_CHECK_MAX_ENTRIES: usize = 4096;

/// Most of the least recently used keys `volatile-lru` (and `noeviction`,
/// looking for expired keys) examines to find one it may remove: like
/// Redis's sampling, the policy is approximate, and bounded in time.
pub const EVICTION_SEARCH: usize = 1024;

/// Why the store refused a write; it is then unchanged but for evictions
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The entry alone is larger than the store's byte bound, so no amount
    /// of eviction could make room
    #[error("entry of {size} bytes exceeds the cache limit of {max} bytes")]
    TooLarge {
        /// Key length plus value weight
        size: usize,
        /// The store's byte bound
        max: usize,
    },
    /// The eviction policy allows removing nothing more (`noeviction`, or
    /// `volatile-lru` without a key that has an expiry), and the write
    /// does not fit
    #[error("no room under the eviction policy")]
    OutOfMemory,
}

/// What the store does when a write does not fit, as Redis's
/// `maxmemory-policy` names it
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum EvictionPolicy {
    /// `allkeys-lru`: remove the least recently used keys (the default: a
    /// cache)
    #[default]
    AllKeysLru,
    /// `volatile-lru`: remove the least recently used keys that have an
    /// expiry; refuse the write if none is found
    VolatileLru,
    /// `noeviction`: refuse the write
    NoEviction,
}

impl EvictionPolicy {
    /// Every policy, for `CONFIG SET`'s error and tests
    pub const ALL: [Self; 3] = [Self::AllKeysLru, Self::VolatileLru, Self::NoEviction];

    /// Redis's name for it
    pub fn name(self) -> &'static str {
        match self {
            Self::AllKeysLru => "allkeys-lru",
            Self::VolatileLru => "volatile-lru",
            Self::NoEviction => "noeviction",
        }
    }

    /// The policy Redis calls `name` (case-insensitive), if supported
    pub fn from_name(name: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|policy| policy.name().as_bytes().eq_ignore_ascii_case(name))
    }
}

/// What [`Store::set`] did to make room
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetOutcome {
    /// Live entries evicted (least recently used first) to satisfy the bounds
    pub evicted: usize,
    /// Whether a live entry under the same key was replaced
    pub replaced: bool,
}

/// The time to live of a key, as Redis's `TTL`/`PTTL` distinguish it
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlState {
    /// The key is absent (or expired)
    NoKey,
    /// The key is present and never expires
    NoExpiry,
    /// The key is present and expires after this long
    Remaining(Duration),
}

/// A live entry with memcached's metadata, as [`Store::item`] and
/// [`Store::peek_item`] give it
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    /// The value
    pub value: &'a Value,
    /// memcached's client flags: 0 unless a memcached storage command gave
    /// others
    pub flags: u32,
    /// memcached's CAS unique: never 0, and different after every write of
    /// the entry (an insert or a [`Store::modify`]); a change of expiry or
    /// recency keeps it
    pub cas: u64,
}

/// One step of [`Store::scan`]
#[derive(Debug)]
pub struct ScanStep<'a> {
    /// The live entries examined, oldest key first
    pub entries: Vec<(&'a Bytes, &'a Value)>,
    /// Where the next step starts, or `None` when the whole store was seen
    pub next: Option<u64>,
}

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    expires_at: Option<Instant>,
    /// memcached's client flags (0 unless a memcached storage command set them)
    flags: u32,
    /// memcached's CAS unique: taken from the store's counter at every write of the entry
    cas: u64,
    /// The backing store's version this value was filled with (0 unless
    /// filled by a read-through shard)
    version: u64,
    /// The key's position in the scan order, fixed while the key exists
    seq: u64,
}

impl Entry {
    /// An entry is expired from its expiry instant on: with TTL `T` set at
    /// `t0` it is live at `t0 + T - 1ns` and gone at `t0 + T`.
    fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    fn size(&self, key: &[u8]) -> usize {
        key.len().saturating_add(self.value.weight())
    }

    fn item(&self) -> Item<'_> {
        Item {
            value: &self.value,
            flags: self.flags,
            cas: self.cas,
        }
    }
}

/// An LRU map from byte keys to typed values
///
/// Guarantees, after every operation:
/// - `len() <= max_entries()`
/// - `bytes() <= max_bytes()`, where an entry weighs its key length plus its
///   value's [`Value::weight`]
/// - `bytes()` equals the sum of those weights over the entries held
/// - no collection is empty (a collection emptied by a write is removed)
///
/// Expired entries are removed lazily (when touched), by
/// [`Store::purge_expired`], or to make room; until then they still count
/// towards `len()` and `bytes()` but are never returned.
///
/// [`Store::scan`] walks keys in the order they were created: a key keeps
/// its place while it exists (overwriting it keeps it too), so a scan
/// returns every key present for its whole duration exactly once.
///
/// Every entry also carries memcached's client flags and CAS unique
/// ([`Item`]): each write of an entry (an insert, or a [`Store::modify`])
/// gives it the next value of a store-wide counter, so two reads of a key
/// see the same CAS only if nothing wrote it between them.
#[derive(Debug)]
pub struct Store {
    // Unbounded inside `lru`: both bounds are enforced here, because the byte
    // bound needs the same evict-until-it-fits loop anyway.
    map: LruCache<Bytes, Entry>,
    /// Keys by their scan position (`Entry::seq`)
    order: BTreeMap<u64, Bytes>,
    /// The entries that have an expiry, soonest first (by their scan position, whose key
    /// `order` gives): expired keys are found and removed however cold they are, and
    /// `volatile-lru` always finds a key with an expiry if there is one
    expiring: BTreeSet<(Instant, u64)>,
    next_seq: u64,
    /// The CAS unique the next write takes (never 0: memcached's `cas` with 0
    /// never matches)
    next_cas: u64,
    max_entries: usize,
    max_bytes: usize,
    policy: EvictionPolicy,
    bytes: usize,
    hits: u64,
    misses: u64,
    evictions: u64,
    expirations: u64,
}

impl Store {
    /// Create an empty store holding at most `max_entries` entries and
    /// `max_bytes` bytes of keys plus values, evicting `allkeys-lru`
    pub fn new(max_entries: NonZeroUsize, max_bytes: usize) -> Self {
        Self {
            map: LruCache::unbounded(),
            order: BTreeMap::new(),
            expiring: BTreeSet::new(),
            next_seq: 1,
            next_cas: 1,
            max_entries: max_entries.get(),
            max_bytes,
            policy: EvictionPolicy::default(),
            bytes: 0,
            hits: 0,
            misses: 0,
            evictions: 0,
            expirations: 0,
        }
    }

    /// Look `key` up, making it the most recently used on a hit
    ///
    /// An expired entry is absent: it is removed, counted as an expiration
    /// and as a miss.
    pub fn get(&mut self, key: &[u8], now: Instant) -> Option<&Value> {
        if !self.live(key, now) {
            self.misses += 1;
            return None;
        }
        self.hits += 1;
        self.map.get(key).map(|entry| &entry.value)
    }

    /// The string at `key`, as [`Store::get`] finds it, in one lookup:
    /// `None` if absent (or expired), `Some(Err(kind))` if it holds another
    /// type. The fast path of `GET`.
    pub fn get_string(&mut self, key: &[u8], now: Instant) -> Option<Result<Bytes, Kind>> {
        self.read_string(key, now, Bytes::clone)
    }

    /// As [`get_string`](Self::get_string), handing the string to `read` where it lies
    /// instead of a reference to it: what `GET` writes its reply with.
    pub fn read_string<T>(
        &mut self,
        key: &[u8],
        now: Instant,
        read: impl FnOnce(&Bytes) -> T,
    ) -> Option<Result<T, Kind>> {
        self.read_item(key, now, |item| match item.value {
            Value::Str(bytes) => Ok(read(bytes)),
            other => Err(other.kind()),
        })
    }

    /// Look `key` up without touching recency or the hit/miss counters
    ///
    /// Expired entries are reported absent but not removed.
    pub fn peek(&self, key: &[u8], now: Instant) -> Option<&Value> {
        self.map
            .peek(key)
            .filter(|entry| !entry.is_expired(now))
            .map(|entry| &entry.value)
    }

    /// [`Store::get`], with the entry's flags and CAS unique
    pub fn item(&mut self, key: &[u8], now: Instant) -> Option<Item<'_>> {
        if !self.live(key, now) {
            self.misses += 1;
            return None;
        }
        self.hits += 1;
        self.map.get(key).map(Entry::item)
    }

    /// As [`item`](Self::item), handing the item to `read` where it lies: one lookup for a
    /// live key (`item` takes two), what memcached's retrievals read with.
    pub fn read_item<T>(
        &mut self,
        key: &[u8],
        now: Instant,
        read: impl FnOnce(Item<'_>) -> T,
    ) -> Option<T> {
        let found = match self.map.get(key) {
            None => None,
            Some(entry) if entry.is_expired(now) => Some(None),
            Some(entry) => Some(Some(read(entry.item()))),
        };
        match found {
            Some(Some(value)) => {
                self.hits += 1;
                Some(value)
            }
            Some(None) => {
                self.remove_entry(key, now);
                self.check_invariants();
                self.misses += 1;
                None
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// [`Store::peek`], with the entry's flags and CAS unique
    pub fn peek_item(&self, key: &[u8], now: Instant) -> Option<Item<'_>> {
        self.map
            .peek(key)
            .filter(|entry| !entry.is_expired(now))
            .map(Entry::item)
    }

    /// Store the string `value` under `key`, the most recently used from
    /// now on
    ///
    /// `ttl` of `None` means the entry never expires; `Some(d)` expires it at
    /// `now + d` (a zero `d` stores nothing and removes any old entry, as
    /// Redis does for a non-positive `EXPIRE`). A TTL too large to represent
    /// as an `Instant` is treated as no expiry. Entries are evicted under the
    /// policy until both bounds hold with the new entry in place.
    ///
    /// `Ok` does not promise the entry is still present later: any later
    /// write may evict it.
    ///
    /// # Errors
    ///
    /// [`StoreError::TooLarge`] if key plus value exceed the byte bound,
    /// [`StoreError::OutOfMemory`] if the policy cannot make room; an old
    /// entry under `key` is then kept.
    pub fn set(
        &mut self,
        key: Bytes,
        value: Bytes,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Result<SetOutcome, StoreError> {
        self.set_versioned(key, value, ttl, 0, now)
    }

    /// [`Store::set`], remembering that `value` is the backing store's copy
    /// at `version` (see [`Store::version`])
    ///
    /// # Errors
    ///
    /// As [`Store::set`].
    pub fn set_versioned(
        &mut self,
        key: Bytes,
        value: Bytes,
        ttl: Option<Duration>,
        version: u64,
        now: Instant,
    ) -> Result<SetOutcome, StoreError> {
        let size = key.len().saturating_add(value.len());
        if size > self.max_bytes {
            return Err(StoreError::TooLarge {
                size,
                max: self.max_bytes,
            });
        }
        if ttl == Some(Duration::ZERO) {
            let replaced = self.remove_entry(&key, now);
            self.check_invariants();
            return Ok(SetOutcome {
                evicted: 0,
                replaced,
            });
        }
        let expires_at = ttl.and_then(|ttl| now.checked_add(ttl));
        self.put(key, Value::Str(value), expires_at, 0, version, now)
    }

    /// Store `value` under `key` with the given expiry instant (`None`:
    /// never), replacing whatever was there; the most recently used from now
    /// on. An instant not after `now` removes the key instead.
    ///
    /// # Errors
    ///
    /// As [`Store::set`]; an empty collection is stored as nothing.
    pub fn insert(
        &mut self,
        key: Bytes,
        value: Value,
        expires_at: Option<Instant>,
        now: Instant,
    ) -> Result<SetOutcome, StoreError> {
        self.insert_flagged(key, value, 0, expires_at, now)
    }

    /// [`Store::insert`] with memcached's client `flags`
    ///
    /// # Errors
    ///
    /// As [`Store::insert`].
    pub fn insert_flagged(
        &mut self,
        key: Bytes,
        value: Value,
        flags: u32,
        expires_at: Option<Instant>,
        now: Instant,
    ) -> Result<SetOutcome, StoreError> {
        if expires_at.is_some_and(|at| at <= now) || value.is_empty_collection() {
            let replaced = self.remove_entry(&key, now);
            self.check_invariants();
            return Ok(SetOutcome {
                evicted: 0,
                replaced,
            });
        }
        self.put(key, value, expires_at, flags, 0, now)
    }

    fn put(
        &mut self,
        key: Bytes,
        value: Value,
        expires_at: Option<Instant>,
        flags: u32,
        version: u64,
        now: Instant,
    ) -> Result<SetOutcome, StoreError> {
        let size = key.len().saturating_add(value.weight());
        if size > self.max_bytes {
            return Err(StoreError::TooLarge {
                size,
                max: self.max_bytes,
            });
        }
        // copies of their own, not slices of a read buffer (see `value::detached`)
        let value = match value {
            Value::Str(bytes) => Value::Str(value::detached(bytes)),
            other => other,
        };
        let value = match self.replace_in_place(&key, value, size, expires_at, flags, version, now)
        {
            Ok(outcome) => return Ok(outcome),
            Err(value) => value,
        };
        let key = value::detached(key);
        // Out of the map while room is made, so it is never the one evicted;
        // put back as it was if no room can be made.
        let old = self.map.pop(&key);
        if let Some(old) = &old {
            self.bytes -= old.size(&key);
            if let Some(at) = old.expires_at {
                self.expiring.remove(&(at, old.seq));
            }
        }
        let evicted = match self.make_room(size, now) {
            Ok(evicted) => evicted,
            Err(err) => {
                if let Some(old) = old {
                    self.bytes += old.size(&key);
                    if let Some(at) = old.expires_at {
                        self.expiring.insert((at, old.seq));
                    }
                    self.map.push(key, old);
                }
                self.check_invariants();
                return Err(err);
            }
        };
        let replaced = match &old {
            Some(old) if old.is_expired(now) => {
                self.expirations += 1;
                false
            }
            Some(_) => true,
            None => false,
        };
        let seq = match old {
            Some(old) => old.seq,
            None => self.new_seq(&key),
        };
        if let Some(at) = expires_at {
            self.expiring.insert((at, seq));
        }
        self.bytes += size;
        let cas = self.take_cas();
        let previous = self.map.push(
            key,
            Entry {
                value,
                expires_at,
                flags,
                cas,
                version,
                seq,
            },
        );
        debug_assert!(previous.is_none(), "old entry was removed above");
        self.check_invariants();
        Ok(SetOutcome { evicted, replaced })
    }

    /// [`put`](Self::put) of a key the map holds, when no entry needs to make room: the entry
    /// takes the value where it is (most recently used, as after any write), keeping its key
    /// and place in the scan order. One lookup, nothing allocated; the value back if the key
    /// is absent or room must be made first.
    #[allow(clippy::too_many_arguments)]
    fn replace_in_place(
        &mut self,
        key: &[u8],
        value: Value,
        size: usize,
        expires_at: Option<Instant>,
        flags: u32,
        version: u64,
        now: Instant,
    ) -> Result<SetOutcome, Value> {
        let within_count = self.map.len() <= self.max_entries;
        let cas = self.next_cas;
        let Some(entry) = self.map.get_mut(key) else {
            return Err(value);
        };
        let bytes = self.bytes - entry.size(key) + size;
        if !within_count || bytes > self.max_bytes {
            return Err(value);
        }
        let replaced = if entry.is_expired(now) {
            self.expirations += 1;
            false
        } else {
            true
        };
        if entry.expires_at != expires_at {
            if let Some(at) = entry.expires_at {
                self.expiring.remove(&(at, entry.seq));
            }
            if let Some(at) = expires_at {
                self.expiring.insert((at, entry.seq));
            }
        }
        *entry = Entry {
            value,
            expires_at,
            flags,
            cas,
            version,
            seq: entry.seq,
        };
        self.bytes = bytes;
        self.take_cas();
        self.check_invariants();
        Ok(SetOutcome {
            evicted: 0,
            replaced,
        })
    }

    /// Start this store's CAS uniques at `base` (a shard gives its instance's epoch in the
    /// high bits, so a restarted shard never hands out a CAS its predecessor gave: a client
    /// holding an old one cannot match a new value)
    pub fn start_cas_at(&mut self, base: u64) {
        self.next_cas = base.max(1);
    }

    /// The next CAS unique.
    fn take_cas(&mut self) -> u64 {
        let cas = self.next_cas;
        // 2^64 writes never happen; wrapping would only skip 0
        self.next_cas = self.next_cas.checked_add(1).unwrap_or(1);
        cas
    }

    fn new_seq(&mut self, key: &Bytes) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, key.clone());
        seq
    }

    /// Makes room for a write to `key` that grows it by at most `grow`
    /// bytes (creating it if absent), evicting under the policy; `key` itself
    /// is made the most recently used first, so it is the last evicted.
    /// Returns how many live entries were evicted.
    ///
    /// A write that reserved first and grows the key by no more than it said
    /// keeps the store within its bounds.
    ///
    /// # Errors
    ///
    /// [`StoreError::TooLarge`] if the key would outgrow the byte bound
    /// alone, [`StoreError::OutOfMemory`] if the policy cannot make room.
    pub fn reserve(&mut self, key: &[u8], grow: usize, now: Instant) -> Result<usize, StoreError> {
        let _ = self.map.promote(key);
        let current = self
            .map
            .peek(key)
            .filter(|entry| !entry.is_expired(now))
            .map_or(key.len(), |entry| entry.size(key));
        let size = current.saturating_add(grow);
        if size > self.max_bytes {
            return Err(StoreError::TooLarge {
                size,
                max: self.max_bytes,
            });
        }
        let mut evicted = 0;
        loop {
            let new_key = usize::from(!self.map.contains(key));
            let fits = self.map.len() + new_key <= self.max_entries
                && self.bytes + grow + new_key * key.len() <= self.max_bytes;
            if fits {
                return Ok(evicted);
            }
            match self.evict_one(now, Some(key)) {
                Some(true) => evicted += 1,
                Some(false) => {}
                None => return Err(StoreError::OutOfMemory),
            }
        }
    }

    /// Applies `f` to the live value at `key` (most recently used from now
    /// on) and accounts for its change in weight; `None` if there is none.
    /// A collection `f` leaves empty is removed. The entry takes a new CAS
    /// unique and keeps its flags and expiry.
    ///
    /// `f` must not grow the value by more than a preceding
    /// [`Store::reserve`] allowed.
    pub fn modify<T>(
        &mut self,
        key: &[u8],
        now: Instant,
        f: impl FnOnce(&mut Value) -> T,
    ) -> Option<T> {
        if !self.live(key, now) {
            return None;
        }
        let cas = self.take_cas();
        let entry = self.map.get_mut(key)?;
        entry.cas = cas;
        let before = entry.value.weight();
        let out = f(&mut entry.value);
        let after = entry.value.weight();
        let emptied = entry.value.is_empty_collection();
        self.bytes = self.bytes - before + after;
        if emptied {
            self.remove_entry(key, now);
        }
        self.check_invariants();
        Some(out)
    }

    /// Removes the live entry at `key` and gives back its value and expiry
    pub fn take(&mut self, key: &[u8], now: Instant) -> Option<(Value, Option<Instant>)> {
        if !self.live(key, now) {
            return None;
        }
        let entry = self.detach(key)?;
        self.check_invariants();
        Some((entry.value, entry.expires_at))
    }

    /// The backing store's version of the live entry at `key`, if any
    pub fn version(&self, key: &[u8], now: Instant) -> Option<u64> {
        self.map
            .peek(key)
            .filter(|entry| !entry.is_expired(now))
            .map(|entry| entry.version)
    }

    /// Remove `key`; whether a live entry was removed
    pub fn delete(&mut self, key: &[u8], now: Instant) -> bool {
        let removed = self.remove_entry(key, now);
        self.check_invariants();
        removed
    }

    /// Whether a live entry exists at `key` (recency untouched)
    pub fn exists(&mut self, key: &[u8], now: Instant) -> bool {
        self.live(key, now)
    }

    /// Make `key` the most recently used; whether it is live (`TOUCH`)
    pub fn touch(&mut self, key: &[u8], now: Instant) -> bool {
        self.live(key, now) && self.map.get(key).is_some()
    }

    /// The time to live of `key`
    pub fn ttl(&mut self, key: &[u8], now: Instant) -> TtlState {
        match self.expires_at(key, now) {
            None => TtlState::NoKey,
            Some(None) => TtlState::NoExpiry,
            Some(Some(at)) => TtlState::Remaining(at.saturating_duration_since(now)),
        }
    }

    /// When the live entry at `key` expires: `None` if there is no entry,
    /// `Some(None)` if it never expires
    pub fn expires_at(&mut self, key: &[u8], now: Instant) -> Option<Option<Instant>> {
        if !self.live(key, now) {
            return None;
        }
        self.map.peek(key).map(|entry| entry.expires_at)
    }

    /// Give the live entry at `key` a new expiry instant (`None`: never); an
    /// instant not after `now` removes it. Whether there was an entry.
    pub fn set_expires_at(&mut self, key: &[u8], at: Option<Instant>, now: Instant) -> bool {
        if !self.live(key, now) {
            return false;
        }
        if at.is_some_and(|at| at <= now) {
            self.remove_entry(key, now);
        } else if let Some(entry) = self.map.peek_mut(key) {
            if let Some(old) = entry.expires_at {
                self.expiring.remove(&(old, entry.seq));
            }
            if let Some(at) = at {
                self.expiring.insert((at, entry.seq));
            }
            entry.expires_at = at;
        }
        self.check_invariants();
        true
    }

    /// Expire a live `key` after `ttl` (zero removes it at once); whether
    /// there was an entry
    pub fn expire(&mut self, key: &[u8], ttl: Duration, now: Instant) -> bool {
        let at = now.checked_add(ttl);
        if ttl.is_zero() {
            return self.set_expires_at(key, Some(now), now);
        }
        // too far to represent: never
        self.set_expires_at(key, at, now)
    }

    /// Remove the expiry of a live `key`; whether it had one
    pub fn persist(&mut self, key: &[u8], now: Instant) -> bool {
        if !self.live(key, now) {
            return false;
        }
        let Some(entry) = self.map.peek_mut(key) else {
            return false;
        };
        let Some(at) = entry.expires_at.take() else {
            return false;
        };
        self.expiring.remove(&(at, entry.seq));
        true
    }

    /// Entries held (expired ones not yet removed included)
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no entry is held
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes of keys plus value weights held
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The entry bound
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The byte bound
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The eviction policy
    pub fn policy(&self) -> EvictionPolicy {
        self.policy
    }

    /// Use `policy` from now on
    pub fn set_policy(&mut self, policy: EvictionPolicy) {
        self.policy = policy;
    }

    /// Bound the store to `max_bytes` from now on, evicting under the policy
    /// until it holds; returns how many live entries were evicted. Under a
    /// policy that cannot evict enough, the store keeps what it holds and
    /// refuses every write that does not fit until enough is deleted (the
    /// byte guarantee is then `bytes() <= max(max_bytes(), bytes held when
    /// the bound was lowered)`).
    pub fn set_max_bytes(&mut self, max_bytes: usize, now: Instant) -> usize {
        self.max_bytes = max_bytes;
        let mut evicted = 0;
        while self.bytes > self.max_bytes {
            match self.evict_one(now, None) {
                Some(true) => evicted += 1,
                Some(false) => {}
                None => break,
            }
        }
        evicted
    }

    /// Remove every entry (counters are kept)
    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.expiring.clear();
        self.bytes = 0;
        self.check_invariants();
    }

    /// Remove up to `max` expired entries, the longest expired first, however cold they are
    ///
    /// Does at most `max` removals, so the work is bounded whatever the store's size; returns
    /// how many were removed.
    pub fn purge_expired(&mut self, now: Instant, max: usize) -> usize {
        let mut removed = 0;
        while removed < max {
            let Some(key) = self.soonest_expired(now, None) else {
                break;
            };
            if self.detach(&key).is_some() {
                self.expirations += 1;
            }
            removed += 1;
        }
        self.check_invariants();
        removed
    }

    /// The key whose expiry comes soonest, other than `spare`, if it has expired by `now`.
    fn soonest_expired(&self, now: Instant, spare: Option<&[u8]>) -> Option<Bytes> {
        let key = self.soonest_expiring(spare)?;
        let expired = self
            .map
            .peek(&key)
            .is_some_and(|entry| entry.is_expired(now));
        expired.then_some(key)
    }

    /// The key with an expiry that comes soonest, other than `spare`.
    fn soonest_expiring(&self, spare: Option<&[u8]>) -> Option<Bytes> {
        self.expiring
            .iter()
            .filter_map(|(_, seq)| self.order.get(seq))
            .find(|key| spare.is_none_or(|spare| spare != &key[..]))
            .cloned()
    }

    /// Every live entry, in no particular order (recency untouched)
    pub fn entries(&self, now: Instant) -> impl Iterator<Item = (&Bytes, &Value)> {
        self.map
            .iter()
            .filter(move |(_, entry)| !entry.is_expired(now))
            .map(|(key, entry)| (key, &entry.value))
    }

    /// The live entries among the next `count` keys in scan order from
    /// position `from` (0 starts a scan), and where the next step starts
    ///
    /// Keys keep their position while they exist, so a scan that starts at
    /// 0 and follows `next` until `None` returns every key present for its
    /// whole duration exactly once; keys created meanwhile may or may not
    /// be returned. Each step costs O(log n + count).
    pub fn scan(&self, from: u64, count: usize, now: Instant) -> ScanStep<'_> {
        let mut entries = Vec::new();
        let mut next = None;
        for (i, (&seq, key)) in self.order.range(from..).enumerate() {
            if i == count.max(1) {
                next = Some(seq);
                break;
            }
            if let Some(entry) = self.map.peek(key).filter(|entry| !entry.is_expired(now)) {
                entries.push((key, &entry.value));
            }
        }
        ScanStep { entries, next }
    }

    /// Lookups that found a live entry
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Lookups that found nothing live
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Live entries evicted to satisfy a bound
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Expired entries removed
    pub fn expirations(&self) -> u64 {
        self.expirations
    }

    /// Whether `key` is live; an expired entry is removed and counted.
    fn live(&mut self, key: &[u8], now: Instant) -> bool {
        match self.map.peek(key) {
            None => false,
            Some(entry) if entry.is_expired(now) => {
                self.remove_entry(key, now);
                self.check_invariants();
                false
            }
            Some(_) => true,
        }
    }

    /// Removes `key`'s entry if any; whether it was live (an expired one is
    /// counted as an expiration).
    fn remove_entry(&mut self, key: &[u8], now: Instant) -> bool {
        let Some(entry) = self.detach(key) else {
            return false;
        };
        if entry.is_expired(now) {
            self.expirations += 1;
            false
        } else {
            true
        }
    }

    /// Takes `key`'s entry out of the map, the scan order and the byte count.
    fn detach(&mut self, key: &[u8]) -> Option<Entry> {
        let entry = self.map.pop(key)?;
        self.bytes -= entry.size(key);
        self.order.remove(&entry.seq);
        if let Some(at) = entry.expires_at {
            self.expiring.remove(&(at, entry.seq));
        }
        Some(entry)
    }

    /// Evicts or expires entries under the policy until one more entry of
    /// `size` fits; how many live entries were evicted.
    fn make_room(&mut self, size: usize, now: Instant) -> Result<usize, StoreError> {
        let mut evicted = 0;
        while self.map.len() + 1 > self.max_entries || self.bytes + size > self.max_bytes {
            match self.evict_one(now, None) {
                Some(true) => evicted += 1,
                Some(false) => {}
                None => return Err(StoreError::OutOfMemory),
            }
        }
        Ok(evicted)
    }

    /// Removes one entry the policy allows: `Some(true)` if it was live (an
    /// eviction), `Some(false)` if expired, `None` if the policy allows none.
    /// Under `volatile-lru`, `spare` (the key a write is making room for) is
    /// left for last: the write's new value was worked out from it.
    fn evict_one(&mut self, now: Instant, spare: Option<&[u8]>) -> Option<bool> {
        // an expired entry goes first, whatever the policy: it is dead already
        let victim = match self.soonest_expired(now, spare) {
            Some(expired) => expired,
            None => match self.policy {
                EvictionPolicy::AllKeysLru => self.map.peek_lru().map(|(key, _)| key.clone()),
                // the coldest with an expiry among the coldest keys, else the one that
                // expires soonest: never refused while some key has an expiry
                EvictionPolicy::VolatileLru => self
                    .coldest(|key, entry| {
                        entry.expires_at.is_some() && spare.is_none_or(|spare| spare != &key[..])
                    })
                    .or_else(|| self.soonest_expiring(spare)),
                EvictionPolicy::NoEviction => None,
            }?,
        };
        let entry = self.detach(&victim)?;
        if entry.is_expired(now) {
            self.expirations += 1;
            Some(false)
        } else {
            self.evictions += 1;
            Some(true)
        }
    }

    /// The least recently used key whose entry passes `eligible`, among the
    /// [`EVICTION_SEARCH`] least recently used.
    fn coldest(&self, eligible: impl Fn(&Bytes, &Entry) -> bool) -> Option<Bytes> {
        self.map
            .iter()
            .rev()
            .take(EVICTION_SEARCH)
            .find(|(key, entry)| eligible(key, entry))
            .map(|(key, _)| key.clone())
    }

    fn check_invariants(&self) {
        debug_assert!(self.map.len() <= self.max_entries);
        debug_assert_eq!(self.map.len(), self.order.len());
        debug_assert!(self.expiring.len() <= self.map.len());
        if cfg!(debug_assertions) && self.map.len() <= FULL_CHECK_MAX_ENTRIES {
            debug_assert_eq!(self.bytes, self.summed_bytes());
            debug_assert_eq!(self.bytes, self.recounted_bytes());
            let volatile = self
                .map
                .iter()
                .filter(|(_, e)| e.expires_at.is_some())
                .count();
            debug_assert_eq!(self.expiring.len(), volatile);
        }
    }

    fn summed_bytes(&self) -> usize {
        self.map.iter().map(|(key, entry)| entry.size(key)).sum()
    }

    /// The bytes held, every value's weight counted from its contents: what
    /// `bytes` must equal.
    pub(crate) fn recounted_bytes(&self) -> usize {
        self.map
            .iter()
            .map(|(key, entry)| key.len() + entry.value.recount())
            .sum()
    }

    #[cfg(test)]
    fn keys_mru(&self) -> Vec<Bytes> {
        self.map.iter().map(|(key, _)| key.clone()).collect()
    }

    /// The string at `key`, for tests
    #[cfg(test)]
    pub(crate) fn get_str(&mut self, key: &[u8], now: Instant) -> Option<&[u8]> {
        match self.get(key, now)? {
            Value::Str(bytes) => Some(bytes),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn store(entries: usize, bytes: usize) -> Store {
        Store::new(NonZeroUsize::new(entries).unwrap(), bytes)
    }

    fn k(i: u8) -> Bytes {
        Bytes::from(vec![b'k', i])
    }

    #[test]
    fn get_set_delete() {
        let now = Instant::now();
        let mut s = store(10, 1000);
        assert_eq!(s.get_str(b"a", now), None);
        let out = s
            .set(Bytes::from("a"), Bytes::from("1"), None, now)
            .unwrap();
        assert_eq!(out, SetOutcome::default());
        assert_eq!(s.get_str(b"a", now), Some(&b"1"[..]));
        assert_eq!(s.bytes(), 2);
        let out = s
            .set(Bytes::from("a"), Bytes::from("22"), None, now)
            .unwrap();
        assert!(out.replaced);
        assert_eq!(s.bytes(), 3);
        assert!(s.delete(b"a", now));
        assert!(!s.delete(b"a", now));
        assert_eq!((s.hits(), s.misses()), (1, 1));
        assert!(s.is_empty());
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn too_large_is_typed_and_keeps_old_value() {
        let now = Instant::now();
        let mut s = store(10, 8);
        s.set(Bytes::from("a"), Bytes::from("1"), None, now)
            .unwrap();
        let err = s
            .set(Bytes::from("a"), Bytes::from("12345678"), None, now)
            .unwrap_err();
        assert_eq!(err, StoreError::TooLarge { size: 9, max: 8 });
        assert_eq!(s.get_str(b"a", now), Some(&b"1"[..]));
    }

    #[test]
    fn evicts_by_bytes() {
        let now = Instant::now();
        let mut s = store(100, 10);
        s.set(k(1), Bytes::from("abc"), None, now).unwrap(); // 5
        s.set(k(2), Bytes::from("abc"), None, now).unwrap(); // 10
        let out = s.set(k(3), Bytes::from("a"), None, now).unwrap(); // 3
        assert_eq!(out.evicted, 1);
        assert!(!s.exists(&k(1), now));
        assert_eq!(s.bytes(), 8);
        assert_eq!(s.evictions(), 1);
    }

    #[test]
    fn ttl_expire_persist() {
        let t0 = Instant::now();
        let mut s = store(10, 1000);
        s.set(k(1), Bytes::from("v"), Some(Duration::from_secs(10)), t0)
            .unwrap();
        assert_eq!(
            s.ttl(&k(1), t0 + Duration::from_secs(4)),
            TtlState::Remaining(Duration::from_secs(6))
        );
        assert!(s.persist(&k(1), t0));
        assert!(!s.persist(&k(1), t0));
        assert_eq!(s.ttl(&k(1), t0), TtlState::NoExpiry);
        assert!(s.expire(&k(1), Duration::from_secs(1), t0));
        assert_eq!(s.ttl(&k(1), t0 + Duration::from_secs(1)), TtlState::NoKey);
        assert_eq!(s.expirations(), 1);
        assert!(!s.expire(&k(1), Duration::from_secs(1), t0));
        // A zero TTL deletes.
        s.set(k(2), Bytes::from("v"), None, t0).unwrap();
        assert!(s.expire(&k(2), Duration::ZERO, t0));
        assert!(!s.exists(&k(2), t0));
        s.set(k(3), Bytes::from("v"), Some(Duration::ZERO), t0)
            .unwrap();
        assert!(!s.exists(&k(3), t0));
        // An expired key is not resurrected by PERSIST.
        s.set(k(4), Bytes::from("v"), Some(Duration::from_secs(1)), t0)
            .unwrap();
        assert!(!s.persist(&k(4), t0 + Duration::from_secs(2)));
        assert_eq!(s.get_str(&k(4), t0), None);
    }

    #[test]
    fn a_write_over_a_key_replaces_it_where_it_is_with_its_expiry_and_counts() {
        let t0 = Instant::now();
        let mut s = store(2, 10);
        let ttl = Some(Duration::from_secs(10));
        s.set(k(1), Bytes::from("abc"), ttl, t0).unwrap(); // 5 bytes
        s.set(k(2), Bytes::from("a"), None, t0).unwrap(); // 3 bytes
        // over the live key: replaced, its expiry gone with the new value, k(1) now most recent
        let out = s.set(k(1), Bytes::from("ab"), None, t0).unwrap();
        assert_eq!(
            out,
            SetOutcome {
                evicted: 0,
                replaced: true
            }
        );
        assert_eq!((s.len(), s.bytes()), (2, 7));
        assert_eq!(s.ttl(&k(1), t0), TtlState::NoExpiry);
        // an expiry given to a replaced key is kept and comes due
        s.set(k(2), Bytes::from("b"), ttl, t0).unwrap();
        let later = t0 + Duration::from_secs(11);
        let out = s.set(k(2), Bytes::from("c"), None, later).unwrap();
        assert_eq!(
            out,
            SetOutcome {
                evicted: 0,
                replaced: false
            },
            "it had expired"
        );
        assert_eq!(s.expirations(), 1);
        assert_eq!(s.get_str(&k(2), later), Some(&b"c"[..]));
        // a replacement that does not fit makes room first: the coldest other key goes
        s.get_str(&k(2), later);
        let out = s.set(k(2), Bytes::from("12345678"), None, later).unwrap();
        assert_eq!(
            out,
            SetOutcome {
                evicted: 1,
                replaced: true
            }
        );
        assert_eq!((s.len(), s.bytes()), (1, 10));
        assert!(!s.exists(&k(1), later));
    }

    #[test]
    fn stored_bytes_do_not_keep_a_larger_buffer_alive() {
        let now = Instant::now();
        let mut s = store(10, 1000);
        // a key and value sliced out of a 64 KiB read, as the front ends decode them
        let read = Bytes::from(vec![b'x'; 64 * 1024]);
        let (key, value) = (read.slice(0..3), read.slice(3..8));
        s.set(key, value, None, now).unwrap();
        let mut hash = Hash::default();
        hash.insert(read.slice(8..9), read.slice(9..10));
        s.insert(Bytes::from("h"), Value::Hash(hash), None, now)
            .unwrap();
        // the store holds copies: the read's allocation is ours alone again
        assert!(
            read.try_into_mut().is_ok(),
            "a stored slice still holds the read buffer"
        );
    }

    #[test]
    fn expired_keys_are_reclaimed_however_cold_under_every_policy() {
        let t0 = Instant::now();
        for policy in [EvictionPolicy::NoEviction, EvictionPolicy::VolatileLru] {
            let mut s = store(10_000, 40_000);
            s.set_policy(policy);
            // 2,000 keys without expiry at the cold end, then keys that expire
            for i in 0..2000u32 {
                let key = Bytes::from(format!("p{i}"));
                s.set(key, Bytes::from("v"), None, t0).unwrap();
            }
            let mut i = 0u32;
            while s
                .set(
                    Bytes::from(format!("t{i}")),
                    Bytes::from(vec![b'x'; 100]),
                    Some(Duration::from_secs(10)),
                    t0,
                )
                .is_ok()
            {
                i += 1;
                if policy == EvictionPolicy::VolatileLru && i > 2000 {
                    break;
                }
            }
            // once they expired, writes get their room back
            let later = t0 + Duration::from_secs(10);
            for j in 0..100u32 {
                let key = Bytes::from(format!("n{j}"));
                let written = s.set(key, Bytes::from(vec![b'y'; 100]), None, later);
                assert!(written.is_ok(), "{policy:?}: write {j} refused");
            }
            assert_eq!(s.peek(b"p0", later), Some(&Value::Str(Bytes::from("v"))));
        }
    }

    #[test]
    fn volatile_lru_finds_a_key_with_an_expiry_behind_many_without() {
        let t0 = Instant::now();
        let mut s = store(10_000, 3_000 * 6 + 200);
        s.set_policy(EvictionPolicy::VolatileLru);
        s.set(
            Bytes::from("t"),
            Bytes::from(vec![b'x'; 100]),
            Some(Duration::from_secs(60)),
            t0,
        )
        .unwrap();
        // 3,000 keys without expiry, colder than nothing but pushing `t` past the search
        for i in 0..3000u32 {
            s.set(Bytes::from(format!("p{i:04}")), Bytes::from("v"), None, t0)
                .unwrap();
        }
        // `t` hotter than 2,000 keys without expiry: beyond the LRU search from the cold end
        let _ = s.get(b"t", t0);
        for i in 0..1000u32 {
            let _ = s.get(format!("p{i:04}").as_bytes(), t0);
        }
        // a write that needs room evicts `t`, the one key with an expiry
        assert!(
            s.set(Bytes::from("new"), Bytes::from(vec![b'y'; 150]), None, t0)
                .is_ok()
        );
        assert!(s.peek(b"t", t0).is_none());
        assert!(s.peek(b"p2999", t0).is_some());
    }

    #[test]
    fn purge_is_bounded_and_takes_the_longest_expired_first() {
        let t0 = Instant::now();
        let mut s = store(100, 10_000);
        for i in 0..10 {
            s.set(k(i), Bytes::from("v"), Some(Duration::from_secs(1)), t0)
                .unwrap();
        }
        let later = t0 + Duration::from_secs(1);
        assert_eq!(s.purge_expired(later, 3), 3);
        assert_eq!(s.len(), 7);
        assert!(s.peek(&k(3), t0).is_some());
        assert!(s.peek(&k(2), t0).is_none());
        assert_eq!(s.purge_expired(later, 100), 7);
        assert!(s.is_empty());
        assert_eq!(s.bytes(), 0);
        assert_eq!(s.expirations(), 10);
    }

    #[test]
    fn every_write_takes_a_new_cas_and_expiry_changes_keep_it() {
        let now = Instant::now();
        let mut s = store(10, 1000);
        s.insert_flagged(k(1), Value::Str(Bytes::from("v")), 7, None, now)
            .unwrap();
        let first = s.peek_item(&k(1), now).unwrap();
        assert_eq!(
            (first.flags, first.value),
            (7, &Value::Str(Bytes::from("v")))
        );
        assert_ne!(first.cas, 0, "0 is memcached's 'no CAS'");
        let cas = first.cas;
        // recency and expiry are not writes of the entry
        assert!(s.touch(&k(1), now));
        assert!(s.expire(&k(1), Duration::from_secs(10), now));
        assert!(s.persist(&k(1), now));
        assert_eq!(s.item(&k(1), now).map(|i| i.cas), Some(cas));
        // a modify is
        s.modify(&k(1), now, |v| *v = Value::Str(Bytes::from("w")));
        let modified = s.peek_item(&k(1), now).unwrap();
        assert!(modified.cas > cas);
        assert_eq!(modified.flags, 7, "a modify keeps the flags");
        let modified = modified.cas;
        // a plain insert (RESP's SET) gives flags 0 and a new CAS
        s.set(k(1), Bytes::from("x"), None, now).unwrap();
        let replaced = s.peek_item(&k(1), now).unwrap();
        assert_eq!(replaced.flags, 0);
        assert!(replaced.cas > modified);
        let replaced = replaced.cas;
        // another key's write moves the counter on too
        s.set(k(2), Bytes::from("y"), None, now).unwrap();
        assert!(s.peek_item(&k(2), now).unwrap().cas > replaced);
    }

    #[test]
    fn clear_keeps_counters() {
        let now = Instant::now();
        let mut s = store(10, 1000);
        s.set(k(1), Bytes::from("v"), None, now).unwrap();
        let _ = s.get(&k(1), now);
        s.clear();
        assert_eq!((s.len(), s.bytes(), s.hits()), (0, 0, 1));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Get(u8),
        Set(u8, usize),
        Delete(u8),
        Exists(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..16).prop_map(Op::Get),
            (0u8..16, 0usize..40).prop_map(|(key, len)| Op::Set(key, len)),
            (0u8..16).prop_map(Op::Delete),
            (0u8..16).prop_map(Op::Exists),
        ]
    }

    proptest! {
        /// A model list in MRU order predicts exactly which keys are evicted:
        /// always the least recently used among those present.
        #[test]
        fn lru_order_and_bounds(
            max_entries in 1usize..8,
            max_bytes in 2usize..120,
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let now = Instant::now();
            let mut s = store(max_entries, max_bytes);
            // (key, size), most recently used first.
            let mut model: Vec<(Bytes, usize)> = Vec::new();
            for op in ops {
                match op {
                    Op::Get(i) => {
                        let key = k(i);
                        let hit = s.get_str(&key, now).is_some();
                        let pos = model.iter().position(|(m, _)| *m == key);
                        prop_assert_eq!(hit, pos.is_some());
                        if let Some(pos) = pos {
                            let e = model.remove(pos);
                            model.insert(0, e);
                        }
                    }
                    Op::Set(i, len) => {
                        let key = k(i);
                        let size = key.len() + len;
                        let result = s.set(key.clone(), Bytes::from(vec![b'x'; len]), None, now);
                        if size > max_bytes {
                            prop_assert!(result.is_err());
                        } else {
                            let out = result.unwrap();
                            let pos = model.iter().position(|(m, _)| *m == key);
                            prop_assert_eq!(out.replaced, pos.is_some());
                            if let Some(pos) = pos {
                                model.remove(pos);
                            }
                            let mut evicted = 0;
                            while model.len() + 1 > max_entries
                                || model.iter().map(|(_, n)| n).sum::<usize>() + size > max_bytes
                            {
                                let (lru, _) = model.pop().unwrap();
                                prop_assert!(s.peek(&lru, now).is_none(), "LRU key survived");
                                evicted += 1;
                            }
                            prop_assert_eq!(out.evicted, evicted);
                            model.insert(0, (key, size));
                        }
                    }
                    Op::Delete(i) => {
                        let key = k(i);
                        let pos = model.iter().position(|(m, _)| *m == key);
                        prop_assert_eq!(s.delete(&key, now), pos.is_some());
                        if let Some(pos) = pos {
                            model.remove(pos);
                        }
                    }
                    Op::Exists(i) => {
                        let key = k(i);
                        prop_assert_eq!(s.exists(&key, now), model.iter().any(|(m, _)| *m == key));
                    }
                }
                prop_assert!(s.len() <= max_entries);
                prop_assert!(s.bytes() <= max_bytes);
                prop_assert_eq!(s.bytes(), s.summed_bytes());
                prop_assert_eq!(s.bytes(), model.iter().map(|(_, n)| n).sum::<usize>());
                let keys: Vec<Bytes> = model.iter().map(|(m, _)| m.clone()).collect();
                prop_assert_eq!(s.keys_mru(), keys);
            }
        }

        /// A key set with TTL `T` is present at `T - 1ns` and absent at `T`.
        #[test]
        fn ttl_boundary(ttl_ns in 1u64..10_000_000_000, offset_ns in 0u64..1_000_000) {
            let t0 = Instant::now() + Duration::from_nanos(offset_ns);
            let ttl = Duration::from_nanos(ttl_ns);
            let mut s = store(4, 100);
            s.set(k(1), Bytes::from("v"), Some(ttl), t0).unwrap();
            let before = t0 + ttl - Duration::from_nanos(1);
            prop_assert_eq!(s.ttl(&k(1), before), TtlState::Remaining(Duration::from_nanos(1)));
            prop_assert_eq!(s.get_str(&k(1), before), Some(&b"v"[..]));
            prop_assert_eq!(s.get_str(&k(1), t0 + ttl), None);
            prop_assert_eq!(s.expirations(), 1);
            prop_assert_eq!(s.bytes(), 0);
            prop_assert!(s.is_empty());
        }

        /// With a controlled clock advancing between operations, bounds and
        /// byte accounting hold and no expired value is ever returned.
        #[test]
        fn ttl_mixed_ops(
            ops in proptest::collection::vec((0u8..8, 0usize..20, proptest::option::of(1u64..50), 0u64..20), 0..150),
        ) {
            let mut now = Instant::now();
            let mut s = store(5, 60);
            // key -> expiry for keys the test last set with a TTL
            let mut expiry: std::collections::HashMap<u8, Option<Instant>> = Default::default();
            for (i, len, ttl, step) in ops {
                now += Duration::from_millis(step);
                if len % 3 == 0 {
                    let got = s.get_str(&k(i), now).is_some();
                    if got {
                        let exp = expiry.get(&i).copied().flatten();
                        prop_assert!(exp.is_none_or(|at| at > now));
                    }
                } else {
                    let ttl = ttl.map(Duration::from_millis);
                    if s.set(k(i), Bytes::from(vec![0; len]), ttl, now).is_ok() {
                        expiry.insert(i, ttl.map(|t| now + t));
                    }
                }
                if step % 5 == 0 {
                    let _ = s.purge_expired(now, 2);
                }
                prop_assert!(s.len() <= 5);
                prop_assert!(s.bytes() <= 60);
                prop_assert_eq!(s.bytes(), s.summed_bytes());
            }
        }
    }
}
