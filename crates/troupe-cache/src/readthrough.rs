//! The rules that keep a read-through cache from serving a value older than
//! an acknowledged write: invalidation fences and versioned fills
//!
//! Sans-IO like [`Store`]: no actors and no clock (`now` is passed in). The
//! race they close: a reader misses, reads version `v` from the backing
//! store, and is slow to fill; meanwhile a writer writes version `v' > v`,
//! invalidates the key and is acknowledged. When the reader's fill finally
//! arrives it must be dropped, or every later read would return the value
//! the write replaced.
//!
//! - [`Fences::invalidate`] removes the entry and records the write's version
//!   as the key's *fence*.
//! - [`Fences::fill`] drops a fill older than the key's fence, or older than
//!   the entry already present (entries remember the version they were
//!   filled with).
//! - Fences are bounded: at most [`MAX_FENCES`] keys keep one, least
//!   recently invalidated first out. An evicted fence raises the
//!   [`Fences::global_fence`], which then fences every key without its own
//!   fence, so an old fill is still refused (at the price of also refusing
//!   some fills that would have been safe, until a newer version is read).

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use bytes::Bytes;
use lru::LruCache;

use crate::store::Store;

/// Most keys that keep their own invalidation fence; beyond this the least
/// recently invalidated key's fence folds into [`Fences::global_fence`]
pub const MAX_FENCES: usize = 65_536;

/// What [`Fences::fill`] did with a value read from the backing store
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillOutcome {
    /// The value is cached
    Stored,
    /// The value is older than the key's fence or than the entry present,
    /// and was dropped
    Stale,
    /// The value is larger than the store's byte bound, and was dropped
    TooLarge,
}

/// Per-key invalidation fences, bounded, with a global low-water fence for
/// keys whose fence was evicted
#[derive(Debug)]
pub struct Fences {
    // Unbounded inside `lru` (so no up-front allocation); the limit is
    // enforced in `invalidate`.
    fences: LruCache<Bytes, u64>,
    limit: usize,
    global_fence: u64,
}

impl Default for Fences {
    fn default() -> Self {
        Self::new()
    }
}

impl Fences {
    /// No fences yet, keeping at most [`MAX_FENCES`] per-key fences
    pub fn new() -> Self {
        Self::with_limit(NonZeroUsize::new(MAX_FENCES).expect("non-zero"))
    }

    /// No fences yet, keeping at most `limit` per-key fences
    pub fn with_limit(limit: NonZeroUsize) -> Self {
        Self {
            fences: LruCache::unbounded(),
            limit: limit.get(),
            global_fence: 0,
        }
    }

    /// The oldest version a fill of `key` may carry: its own fence, or the
    /// global fence if it has none
    pub fn threshold(&self, key: &[u8]) -> u64 {
        self.fences.peek(key).copied().unwrap_or(self.global_fence)
    }

    /// The highest fence evicted so far: fills older than this are refused
    /// for every key without its own fence
    pub fn global_fence(&self) -> u64 {
        self.global_fence
    }

    /// Keys with their own fence
    pub fn len(&self) -> usize {
        self.fences.len()
    }

    /// Whether no key has its own fence
    pub fn is_empty(&self) -> bool {
        self.fences.is_empty()
    }

    /// A write of `key` at `version` was applied to the backing store: remove
    /// the cached entry and refuse fills older than `version` from now on.
    /// Returns whether a live entry was removed.
    ///
    /// Fences only rise: an invalidation that arrives after a newer one
    /// keeps the newer fence, and a new fence starts no lower than the global
    /// fence (the key's old fence may be folded in there).
    pub fn invalidate(
        &mut self,
        store: &mut Store,
        key: Bytes,
        version: u64,
        now: Instant,
    ) -> bool {
        let removed = store.delete(&key, now);
        if let Some(fence) = self.fences.get_mut(&key) {
            *fence = (*fence).max(version);
            return removed;
        }
        let fence = version.max(self.global_fence);
        self.fences.push(key, fence);
        while self.fences.len() > self.limit {
            let Some((_, evicted)) = self.fences.pop_lru() else {
                break;
            };
            self.global_fence = self.global_fence.max(evicted);
        }
        removed
    }

    /// Cache `value`, read from the backing store at `version`, unless it is
    /// older than the key's fence or than the entry present
    pub fn fill(
        &self,
        store: &mut Store,
        key: Bytes,
        value: Bytes,
        version: u64,
        ttl: Option<Duration>,
        now: Instant,
    ) -> FillOutcome {
        if version < self.threshold(&key) {
            return FillOutcome::Stale;
        }
        if store
            .version(&key, now)
            .is_some_and(|present| version < present)
        {
            return FillOutcome::Stale;
        }
        match store.set_versioned(key, value, ttl, version, now) {
            Ok(_) => FillOutcome::Stored,
            Err(_) => FillOutcome::TooLarge,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use proptest::prelude::*;

    fn store() -> Store {
        Store::new(NonZeroUsize::new(4).unwrap(), 1 << 10)
    }

    fn k(i: u8) -> Bytes {
        Bytes::from(vec![b'k', i])
    }

    /// The backing store: a versioned map with one global version counter.
    #[derive(Default)]
    struct Backing {
        map: HashMap<Bytes, Bytes>,
        version: u64,
    }

    impl Backing {
        fn get(&self, key: &Bytes) -> (Option<Bytes>, u64) {
            (self.map.get(key).cloned(), self.version)
        }

        /// Each write stores its own version as the value, so a cached value
        /// tells which write it came from.
        fn put(&mut self, key: &Bytes, delete: bool) -> u64 {
            self.version += 1;
            if delete {
                self.map.remove(key);
            } else {
                self.map
                    .insert(key.clone(), Bytes::from(self.version.to_string()));
            }
            self.version
        }
    }

    fn version_of(value: &[u8]) -> u64 {
        std::str::from_utf8(value).unwrap().parse().unwrap()
    }

    #[test]
    fn slow_fill_after_acknowledged_write_is_refused() {
        let now = troupe_runtime::time::now();
        let mut s = store();
        let mut f = Fences::new();
        let mut db = Backing::default();
        let key = k(1);
        db.put(&key, false); // v1
        // Reader misses and reads v1 ...
        assert_eq!(s.get(&key, now), None);
        let (old, v_old) = db.get(&key);
        // ... writer writes v2, invalidates, and is acknowledged ...
        let v_new = db.put(&key, false);
        f.invalidate(&mut s, key.clone(), v_new, now);
        // ... then the reader's fill arrives: dropped.
        let out = f.fill(&mut s, key.clone(), old.unwrap(), v_old, None, now);
        assert_eq!(out, FillOutcome::Stale);
        assert_eq!(s.get(&key, now), None);
        // A fresh read fills the new value.
        let (new, v) = db.get(&key);
        assert_eq!(
            f.fill(&mut s, key.clone(), new.unwrap(), v, None, now),
            FillOutcome::Stored
        );
        assert_eq!(version_of(s.get_str(&key, now).unwrap()), v_new);
    }

    #[test]
    fn fill_older_than_present_entry_is_dropped() {
        let now = troupe_runtime::time::now();
        let mut s = store();
        let f = Fences::new();
        let out = f.fill(&mut s, k(1), Bytes::from("new"), 5, None, now);
        assert_eq!(out, FillOutcome::Stored);
        let out = f.fill(&mut s, k(1), Bytes::from("old"), 4, None, now);
        assert_eq!(out, FillOutcome::Stale);
        assert_eq!(s.get_str(&k(1), now), Some(&b"new"[..]));
        assert_eq!(s.version(&k(1), now), Some(5));
    }

    #[test]
    fn evicted_fence_folds_into_global_fence() {
        let now = troupe_runtime::time::now();
        let mut s = store();
        let mut f = Fences::with_limit(NonZeroUsize::new(2).unwrap());
        f.invalidate(&mut s, k(1), 10, now);
        f.invalidate(&mut s, k(2), 7, now);
        f.invalidate(&mut s, k(3), 3, now); // evicts k1's fence (10)
        assert_eq!(f.len(), 2);
        assert_eq!(f.global_fence(), 10);
        assert_eq!(f.threshold(&k(1)), 10);
        let out = f.fill(&mut s, k(1), Bytes::from("old"), 9, None, now);
        assert_eq!(out, FillOutcome::Stale);
        let out = f.fill(&mut s, k(1), Bytes::from("new"), 10, None, now);
        assert_eq!(out, FillOutcome::Stored);
        // A late, older invalidation never lowers a fence.
        f.invalidate(&mut s, k(2), 1, now);
        assert_eq!(f.threshold(&k(2)), 7);
        // A new fence starts at the global fence.
        f.invalidate(&mut s, k(4), 2, now);
        assert_eq!(f.threshold(&k(4)), 10);
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// A read through the cache: a hit is checked, a miss starts a
        /// backing read.
        Read(u8),
        /// A write (or delete) to the backing store; its invalidation is
        /// pending.
        Write(u8, bool),
        /// Run one pending task (backing read, fill or invalidation), chosen
        /// by index.
        Run(usize),
    }

    #[derive(Debug)]
    enum Task {
        BackingRead(Bytes),
        Fill(Bytes, Bytes, u64),
        Invalidate(Bytes, u64),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            2 => (0u8..6).prop_map(Step::Read),
            1 => (0u8..6, proptest::bool::weighted(0.2)).prop_map(|(i, d)| Step::Write(i, d)),
            3 => any::<usize>().prop_map(Step::Run),
        ]
    }

    proptest! {
        /// Over any interleaving of reader misses, backing reads, writes,
        /// invalidations and fills: once a write's invalidation is applied
        /// (the write is acknowledged), no read through the cache returns a
        /// value older than that write. Few fences and a small store make
        /// fence and entry eviction frequent.
        #[test]
        fn no_read_older_than_an_acknowledged_write(
            fence_limit in 1usize..4,
            steps in proptest::collection::vec(step(), 0..300),
        ) {
            let now = troupe_runtime::time::now();
            let mut s = store();
            let mut f = Fences::with_limit(NonZeroUsize::new(fence_limit).unwrap());
            let mut db = Backing::default();
            let mut pending: Vec<Task> = Vec::new();
            // key -> version of its last acknowledged write
            let mut acked: HashMap<Bytes, u64> = HashMap::new();
            for step in steps {
                match step {
                    Step::Read(i) => {
                        let key = k(i);
                        match s.get_str(&key, now) {
                            Some(value) => {
                                let floor = acked.get(&key).copied().unwrap_or(0);
                                prop_assert!(
                                    version_of(value) >= floor,
                                    "read {:?} at v{} after write v{} was acknowledged",
                                    key, version_of(value), floor
                                );
                            }
                            None => pending.push(Task::BackingRead(key)),
                        }
                    }
                    Step::Write(i, delete) => {
                        let key = k(i);
                        let v = db.put(&key, delete);
                        pending.push(Task::Invalidate(key, v));
                    }
                    Step::Run(n) => {
                        if pending.is_empty() {
                            continue;
                        }
                        match pending.remove(n % pending.len()) {
                            Task::BackingRead(key) => {
                                let (value, v) = db.get(&key);
                                if let Some(value) = value {
                                    pending.push(Task::Fill(key, value, v));
                                }
                            }
                            Task::Fill(key, value, v) => {
                                let _ = f.fill(&mut s, key, value, v, None, now);
                            }
                            Task::Invalidate(key, v) => {
                                f.invalidate(&mut s, key.clone(), v, now);
                                let a = acked.entry(key).or_insert(0);
                                *a = (*a).max(v);
                            }
                        }
                    }
                }
                prop_assert!(f.len() <= fence_limit);
            }
        }
    }
}
