//! [`CacheClient`]: routes each key to its shard and combines the answers
//!
//! A key always goes to the same shard: FNV-1a of the key bytes modulo the
//! shard count. Multi-key operations are split per shard, sent to the shards
//! concurrently, and the answers put back in request order.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use troupe_runtime::{Addr, CallError, Pool};

use crate::cmd::SetCondition;
use crate::shard::{KeyTtl, SetTtl, ShardError, ShardMsg, ShardReply, ShardStats};

/// FNV-1a (64-bit) of `key`: stable across processes and releases, so every
/// client routes a key to the same shard
pub fn key_hash(key: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    key.iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Why a cache operation failed; `Display` is the Redis-style reply text
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// A shard could not be reached or did not answer in time
    #[error("ERR cache shard unavailable: {0}")]
    Unavailable(CallError),
    /// A shard refused the operation
    #[error("{0}")]
    Refused(ShardError),
    /// A shard answered with a reply of the wrong kind (a bug)
    #[error("ERR unexpected reply from a cache shard")]
    Unexpected,
}

/// The result of a [`CacheClient::set`]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetResult {
    /// Whether the value was written (`false` when `NX`/`XX` failed)
    pub written: bool,
    /// The live value before the operation
    pub old: Option<Bytes>,
}

/// A handle to a sharded cache: the shard addresses and a call timeout
///
/// Cheap to clone; shards may live on any node.
#[derive(Clone, Debug)]
pub struct CacheClient {
    shards: Arc<[Addr<ShardMsg>]>,
    timeout: Duration,
}

impl CacheClient {
    /// A client over `shards` (in a fixed order: the order decides routing)
    /// with a 5 s call timeout
    ///
    /// # Panics
    ///
    /// If `shards` is empty.
    pub fn new(shards: Vec<Addr<ShardMsg>>) -> Self {
        assert!(!shards.is_empty(), "a cache needs at least one shard");
        Self {
            shards: shards.into(),
            timeout: Duration::from_secs(5),
        }
    }

    /// A client over the members of `pool`, in pool order
    ///
    /// # Panics
    ///
    /// If the pool is empty.
    pub fn from_pool(pool: &Pool<ShardMsg>) -> Self {
        Self::new(pool.members().to_vec())
    }

    /// How long each shard gets to answer
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The shard addresses, in routing order
    pub fn shards(&self) -> &[Addr<ShardMsg>] {
        &self.shards
    }

    /// The index of the shard that owns `key`
    pub fn shard_of(&self, key: &[u8]) -> usize {
        // The remainder is below the shard count, so it fits a usize.
        (key_hash(key) % self.shards.len() as u64) as usize
    }

    async fn call(&self, shard: usize, msg: ShardMsg) -> Result<ShardReply, CacheError> {
        match self.shards[shard].call(msg, self.timeout).await {
            Ok(ShardReply::Error(err)) => Err(CacheError::Refused(err)),
            Ok(reply) => Ok(reply),
            Err(err) => Err(CacheError::Unavailable(err)),
        }
    }

    async fn call_key(&self, key: &[u8], msg: ShardMsg) -> Result<ShardReply, CacheError> {
        self.call(self.shard_of(key), msg).await
    }

    /// Call every shard with `msg`, answers in shard order.
    async fn call_all(&self, msg: &ShardMsg) -> Result<Vec<ShardReply>, CacheError> {
        join_all((0..self.shards.len()).map(|i| self.call(i, msg.clone())))
            .await
            .into_iter()
            .collect()
    }

    /// Split `items` by the shard of `key(item)`: per shard, the items and
    /// their positions in `items`.
    fn split<T>(
        &self,
        items: Vec<T>,
        key: impl Fn(&T) -> &[u8],
    ) -> Vec<(usize, Vec<usize>, Vec<T>)> {
        let mut groups: Vec<(Vec<usize>, Vec<T>)> = (0..self.shards.len())
            .map(|_| (Vec::new(), Vec::new()))
            .collect();
        for (i, item) in items.into_iter().enumerate() {
            let group = &mut groups[self.shard_of(key(&item))];
            group.0.push(i);
            group.1.push(item);
        }
        groups
            .into_iter()
            .enumerate()
            .filter(|(_, (positions, _))| !positions.is_empty())
            .map(|(shard, (positions, items))| (shard, positions, items))
            .collect()
    }

    /// Send one message per shard built from its share of `items`.
    async fn scatter<T>(
        &self,
        items: Vec<T>,
        key: impl Fn(&T) -> &[u8],
        msg: impl Fn(Vec<T>) -> ShardMsg,
    ) -> Result<Vec<(Vec<usize>, ShardReply)>, CacheError> {
        let groups = self.split(items, key);
        let calls = groups.into_iter().map(|(shard, positions, items)| {
            let msg = msg(items);
            async move { Ok((positions, self.call(shard, msg).await?)) }
        });
        join_all(calls).await.into_iter().collect()
    }

    /// The value at `key`
    ///
    /// # Errors
    ///
    /// [`CacheError`] if the shard cannot be reached.
    pub async fn get(&self, key: Bytes) -> Result<Option<Bytes>, CacheError> {
        let mut values = self.mget(vec![key]).await?;
        Ok(values.pop().flatten())
    }

    /// The values at `keys`, in order
    ///
    /// # Errors
    ///
    /// [`CacheError`] if any shard involved cannot be reached.
    pub async fn mget(&self, keys: Vec<Bytes>) -> Result<Vec<Option<Bytes>>, CacheError> {
        let mut out = vec![None; keys.len()];
        for (positions, reply) in self.scatter(keys, |k| k, ShardMsg::Get).await? {
            let ShardReply::Values(values) = reply else {
                return Err(CacheError::Unexpected);
            };
            for (i, value) in positions.into_iter().zip(values) {
                out[i] = value;
            }
        }
        Ok(out)
    }

    /// `SET key value` with an expiry and an optional `NX`/`XX` condition
    ///
    /// # Errors
    ///
    /// [`CacheError`] if the shard cannot be reached or the entry is larger
    /// than the shard's byte bound.
    pub async fn set(
        &self,
        key: Bytes,
        value: Bytes,
        ttl: SetTtl,
        condition: Option<SetCondition>,
    ) -> Result<SetResult, CacheError> {
        let shard = self.shard_of(&key);
        let msg = ShardMsg::Set {
            key,
            value,
            ttl,
            condition,
        };
        match self.call(shard, msg).await? {
            ShardReply::Set { written, old } => Ok(SetResult { written, old }),
            _ => Err(CacheError::Unexpected),
        }
    }

    /// Set every pair (no expiry); each shard applies its share atomically,
    /// but shards are independent
    ///
    /// # Errors
    ///
    /// [`CacheError`] if a shard cannot be reached or refuses an entry.
    pub async fn mset(&self, pairs: Vec<(Bytes, Bytes)>) -> Result<(), CacheError> {
        self.scatter(pairs, |(k, _)| k, ShardMsg::SetMany).await?;
        Ok(())
    }

    /// Remove `keys`; how many live keys were removed
    ///
    /// # Errors
    ///
    /// [`CacheError`] if a shard cannot be reached.
    pub async fn del(&self, keys: Vec<Bytes>) -> Result<u64, CacheError> {
        self.count(keys, ShardMsg::Del).await
    }

    /// How many of `keys` are live (a repeated key counts each time)
    ///
    /// # Errors
    ///
    /// [`CacheError`] if a shard cannot be reached.
    pub async fn exists(&self, keys: Vec<Bytes>) -> Result<u64, CacheError> {
        self.count(keys, ShardMsg::Exists).await
    }

    async fn count(
        &self,
        keys: Vec<Bytes>,
        msg: impl Fn(Vec<Bytes>) -> ShardMsg,
    ) -> Result<u64, CacheError> {
        let mut total = 0;
        for (_, reply) in self.scatter(keys, |k| k, msg).await? {
            let ShardReply::Count(n) = reply else {
                return Err(CacheError::Unexpected);
            };
            total += n;
        }
        Ok(total)
    }

    /// `PEXPIRE key millis [NX|XX|GT|LT]`; whether the expiry was set
    ///
    /// # Errors
    ///
    /// [`CacheError`] if the shard cannot be reached.
    pub async fn expire(
        &self,
        key: Bytes,
        millis: i64,
        options: crate::cmd::ExpireOptions,
    ) -> Result<bool, CacheError> {
        let shard = self.shard_of(&key);
        let msg = ShardMsg::Expire {
            key,
            millis,
            options,
        };
        flag(self.call(shard, msg).await?)
    }

    /// The time to live of `key`
    ///
    /// # Errors
    ///
    /// [`CacheError`] if the shard cannot be reached.
    pub async fn ttl(&self, key: Bytes) -> Result<KeyTtl, CacheError> {
        match self.call_key(&key.clone(), ShardMsg::Ttl(key)).await? {
            ShardReply::Ttl(ttl) => Ok(ttl),
            _ => Err(CacheError::Unexpected),
        }
    }

    /// Remove the expiry of `key`; whether it had one
    ///
    /// # Errors
    ///
    /// [`CacheError`] if the shard cannot be reached.
    pub async fn persist(&self, key: Bytes) -> Result<bool, CacheError> {
        flag(self.call_key(&key.clone(), ShardMsg::Persist(key)).await?)
    }

    /// Add `by` to the integer at `key` (absent counts as 0); the new value
    ///
    /// # Errors
    ///
    /// [`CacheError::Refused`] with [`ShardError::NotAnInteger`] or
    /// [`ShardError::Overflow`], or [`CacheError::Unavailable`].
    pub async fn incr_by(&self, key: Bytes, by: i64) -> Result<i64, CacheError> {
        let msg = ShardMsg::IncrBy {
            key: key.clone(),
            by,
        };
        match self.call_key(&key, msg).await? {
            ShardReply::Int(n) => Ok(n),
            _ => Err(CacheError::Unexpected),
        }
    }

    /// Entries held over all shards
    ///
    /// # Errors
    ///
    /// [`CacheError`] if a shard cannot be reached.
    pub async fn dbsize(&self) -> Result<u64, CacheError> {
        let mut total = 0;
        for reply in self.call_all(&ShardMsg::DbSize).await? {
            let ShardReply::Count(n) = reply else {
                return Err(CacheError::Unexpected);
            };
            total += n;
        }
        Ok(total)
    }

    /// Remove every entry from every shard
    ///
    /// # Errors
    ///
    /// [`CacheError`] if a shard cannot be reached (the others are flushed).
    pub async fn flushall(&self) -> Result<(), CacheError> {
        self.call_all(&ShardMsg::FlushAll).await?;
        Ok(())
    }

    /// Counters summed over all shards
    ///
    /// # Errors
    ///
    /// [`CacheError`] if a shard cannot be reached.
    pub async fn stats(&self) -> Result<ShardStats, CacheError> {
        let mut total = ShardStats::default();
        for reply in self.call_all(&ShardMsg::Stats).await? {
            let ShardReply::Stats(stats) = reply else {
                return Err(CacheError::Unexpected);
            };
            total = total.merge(stats);
        }
        Ok(total)
    }
}

fn flag(reply: ShardReply) -> Result<bool, CacheError> {
    match reply {
        ShardReply::Flag(b) => Ok(b),
        _ => Err(CacheError::Unexpected),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_values() {
        assert_eq!(key_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(key_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(key_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
