//! An LRU store bounded by entry count and by bytes, with a TTL per entry
//!
//! The store never reads a clock: every operation that can observe expiry
//! takes `now`, so tests drive time by hand and the actor shell passes
//! `Instant::now()` once per message.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lru::LruCache;

/// The full O(n) byte-accounting check runs in debug builds only while the
/// store holds at most this many entries, so a debug build with a large cache
/// is not made quadratic by its own assertions.
const FULL_CHECK_MAX_ENTRIES: usize = 4096;

/// Why [`Store::set`] refused a value
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Key and value together are larger than the store's byte bound, so no
    /// amount of eviction could make room
    #[error("entry of {size} bytes exceeds the cache limit of {max} bytes")]
    TooLarge {
        /// Key length plus value length
        size: usize,
        /// The store's byte bound
        max: usize,
    },
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

#[derive(Debug, Clone)]
struct Entry {
    value: Bytes,
    expires_at: Option<Instant>,
    /// The backing store's version this value was filled with (0 for a
    /// plain [`Store::set`])
    version: u64,
}

impl Entry {
    /// An entry is expired from its expiry instant on: with TTL `T` set at
    /// `t0` it is live at `t0 + T - 1ns` and gone at `t0 + T`.
    fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

fn entry_size(key: &[u8], value: &[u8]) -> usize {
    key.len().saturating_add(value.len())
}

/// An LRU map from byte keys to byte values
///
/// Guarantees, after every operation:
/// - `len() <= max_entries()`
/// - `bytes() <= max_bytes()`, where an entry weighs its key length plus its
///   value length
/// - `bytes()` equals the sum of those weights over the entries held
///
/// Expired entries are removed lazily (when touched) or by
/// [`Store::purge_expired`]; until then they still count towards `len()` and
/// `bytes()` but are never returned.
#[derive(Debug)]
pub struct Store {
    // Unbounded inside `lru`: both bounds are enforced here, because the byte
    // bound needs the same evict-until-it-fits loop anyway.
    map: LruCache<Bytes, Entry>,
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    hits: u64,
    misses: u64,
    evictions: u64,
    expirations: u64,
}

impl Store {
    /// Create an empty store holding at most `max_entries` entries and
    /// `max_bytes` bytes of keys plus values
    pub fn new(max_entries: NonZeroUsize, max_bytes: usize) -> Self {
        Self {
            map: LruCache::unbounded(),
            max_entries: max_entries.get(),
            max_bytes,
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
    pub fn get(&mut self, key: &[u8], now: Instant) -> Option<&[u8]> {
        if !self.live(key, now) {
            self.misses += 1;
            return None;
        }
        self.hits += 1;
        self.map.get(key).map(|entry| &entry.value[..])
    }

    /// Look `key` up without touching recency or the hit/miss counters
    ///
    /// Expired entries are reported absent but not removed.
    pub fn peek(&self, key: &[u8], now: Instant) -> Option<&[u8]> {
        self.map
            .peek(key)
            .filter(|entry| !entry.is_expired(now))
            .map(|entry| &entry.value[..])
    }

    /// Store `value` under `key`, the most recently used from now on
    ///
    /// `ttl` of `None` means the entry never expires; `Some(d)` expires it at
    /// `now + d` (a zero `d` stores nothing and removes any old entry, as
    /// Redis does for a non-positive `EXPIRE`). A TTL too large to represent
    /// as an `Instant` is treated as no expiry. Least recently used entries
    /// are evicted until both bounds hold with the new entry in place.
    ///
    /// `Ok` does not promise the entry is still present later: any later
    /// `set` may evict it.
    ///
    /// # Errors
    ///
    /// [`StoreError::TooLarge`] if key plus value exceed the byte bound; the
    /// store is then unchanged (an old entry under `key` is kept).
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
        let size = entry_size(&key, &value);
        if size > self.max_bytes {
            return Err(StoreError::TooLarge {
                size,
                max: self.max_bytes,
            });
        }
        let replaced = self.remove_entry(&key, now);
        let mut outcome = SetOutcome {
            evicted: 0,
            replaced,
        };
        if ttl == Some(Duration::ZERO) {
            self.check_invariants();
            return Ok(outcome);
        }
        let expires_at = ttl.and_then(|ttl| now.checked_add(ttl));
        // Bounded: each pass removes one entry, and the loop stops when the
        // map is empty (an empty map always fits since `size <= max_bytes`
        // and `max_entries >= 1`).
        while self.map.len() + 1 > self.max_entries || self.bytes + size > self.max_bytes {
            let Some((old_key, old)) = self.map.pop_lru() else {
                break;
            };
            self.bytes -= entry_size(&old_key, &old.value);
            if old.is_expired(now) {
                self.expirations += 1;
            } else {
                self.evictions += 1;
                outcome.evicted += 1;
            }
        }
        self.bytes += size;
        let previous = self.map.push(
            key,
            Entry {
                value,
                expires_at,
                version,
            },
        );
        debug_assert!(previous.is_none(), "old entry was removed above");
        self.check_invariants();
        Ok(outcome)
    }

    /// The version a live `key` was stored with ([`Store::set_versioned`];
    /// 0 for [`Store::set`]); does not touch recency or counters
    pub fn version(&self, key: &[u8], now: Instant) -> Option<u64> {
        self.map
            .peek(key)
            .filter(|entry| !entry.is_expired(now))
            .map(|entry| entry.version)
    }

    /// Remove `key`; `true` if a live entry was removed
    pub fn delete(&mut self, key: &[u8], now: Instant) -> bool {
        let removed = self.remove_entry(key, now);
        self.check_invariants();
        removed
    }

    /// Whether `key` is present and live; does not touch recency
    ///
    /// An expired entry is removed and counted as an expiration.
    pub fn exists(&mut self, key: &[u8], now: Instant) -> bool {
        self.live(key, now)
    }

    /// The time to live of `key`; does not touch recency
    pub fn ttl(&mut self, key: &[u8], now: Instant) -> TtlState {
        if !self.live(key, now) {
            return TtlState::NoKey;
        }
        match self.map.peek(key).and_then(|entry| entry.expires_at) {
            None => TtlState::NoExpiry,
            Some(at) => TtlState::Remaining(at.saturating_duration_since(now)),
        }
    }

    /// Make a live `key` expire `ttl` from `now`; `false` if it is absent
    ///
    /// A zero `ttl` deletes the key (and still returns `true`), as Redis's
    /// `EXPIRE` does for a non-positive time.
    pub fn expire(&mut self, key: &[u8], ttl: Duration, now: Instant) -> bool {
        if !self.live(key, now) {
            return false;
        }
        if ttl.is_zero() {
            self.remove_entry(key, now);
        } else if let Some(entry) = self.map.peek_mut(key) {
            entry.expires_at = now.checked_add(ttl);
        }
        self.check_invariants();
        true
    }

    /// Remove the expiry of a live `key`; `true` if it had one
    ///
    /// Takes `now` so that an already expired key is not brought back.
    pub fn persist(&mut self, key: &[u8], now: Instant) -> bool {
        if !self.live(key, now) {
            return false;
        }
        self.map
            .peek_mut(key)
            .is_some_and(|entry| entry.expires_at.take().is_some())
    }

    /// Entries held, including expired ones not yet removed
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the store holds no entries
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes held: the sum of key plus value lengths over all entries
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The entry-count bound
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The byte bound
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Remove every entry; counters are kept
    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
        self.check_invariants();
    }

    /// Remove expired entries among the `max` least recently used; returns
    /// how many were removed
    ///
    /// The work is bounded by `max` so a periodic sweep cannot stall the
    /// shard. Cold entries are the likeliest to have expired unnoticed, which
    /// is why the sweep starts at the LRU end.
    pub fn purge_expired(&mut self, now: Instant, max: usize) -> usize {
        let expired: Vec<Bytes> = self
            .map
            .iter()
            .rev()
            .take(max)
            .filter(|(_, entry)| entry.is_expired(now))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &expired {
            if let Some(entry) = self.map.pop(key) {
                self.bytes -= entry_size(key, &entry.value);
                self.expirations += 1;
            }
        }
        self.check_invariants();
        expired.len()
    }

    /// Lookups by [`Store::get`] that found a live entry
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Lookups by [`Store::get`] that found nothing live
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Live entries removed to satisfy a bound
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Expired entries removed (on access, by eviction or by a purge)
    pub fn expirations(&self) -> u64 {
        self.expirations
    }

    /// Whether `key` is present and live; an expired entry is removed and
    /// counted. Does not touch recency.
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

    /// Remove `key` with its bytes; `true` if it was live. An expired entry
    /// is counted as an expiration.
    fn remove_entry(&mut self, key: &[u8], now: Instant) -> bool {
        let Some(entry) = self.map.pop(key) else {
            return false;
        };
        self.bytes -= entry_size(key, &entry.value);
        if entry.is_expired(now) {
            self.expirations += 1;
            false
        } else {
            true
        }
    }

    fn check_invariants(&self) {
        debug_assert!(self.map.len() <= self.max_entries);
        debug_assert!(self.bytes <= self.max_bytes);
        if cfg!(debug_assertions) && self.map.len() <= FULL_CHECK_MAX_ENTRIES {
            debug_assert_eq!(self.bytes, self.summed_bytes());
        }
    }

    /// The byte accounting recomputed from scratch (O(n))
    fn summed_bytes(&self) -> usize {
        self.map
            .iter()
            .map(|(key, entry)| entry_size(key, &entry.value))
            .sum()
    }

    /// Keys from most to least recently used (tests only)
    #[cfg(test)]
    fn keys_mru(&self) -> Vec<Bytes> {
        self.map.iter().map(|(key, _)| key.clone()).collect()
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
        assert_eq!(s.get(b"a", now), None);
        let out = s
            .set(Bytes::from("a"), Bytes::from("1"), None, now)
            .unwrap();
        assert_eq!(out, SetOutcome::default());
        assert_eq!(s.get(b"a", now), Some(&b"1"[..]));
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
        assert_eq!(s.get(b"a", now), Some(&b"1"[..]));
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
        assert_eq!(s.get(&k(4), t0), None);
    }

    #[test]
    fn purge_is_bounded_and_starts_at_lru() {
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
                        let hit = s.get(&key, now).is_some();
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
            prop_assert_eq!(s.get(&k(1), before), Some(&b"v"[..]));
            prop_assert_eq!(s.get(&k(1), t0 + ttl), None);
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
                    let got = s.get(&k(i), now).is_some();
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
