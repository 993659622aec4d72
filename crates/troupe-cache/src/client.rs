//! [`CacheClient`]: routes each key to its shard and combines the answers
//!
//! A key always goes to the same shard: FNV-1a of the key bytes modulo the
//! shard count. Multi-key operations are split per shard, sent to the shards
//! concurrently, and the answers put back in request order.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use troupe_runtime::{Addr, CallError, Pool, Reply, ReplyValue, time};

use crate::cmd::keyspace::ExpireOptions;
use crate::cmd::strings::SetCondition;
use crate::cmd::{KeyCommand, Now};
use crate::resp::Frame;
use crate::shard::{KeyTtl, SetResult, SetTtl, ShardConfig, ShardError, ShardMsg, ShardStats};
use crate::store::{EvictionPolicy, Kind};
use crate::table::{InPlace, ShardTable};

/// How long a [`CacheClient`] waits for each shard unless told otherwise
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// FNV-1a (64-bit) of the part of `key` that routes it: stable across
/// processes and releases, so every client routes a key to the same shard
///
/// As Redis Cluster's hash tags: if the key holds a `{`, and a `}` after it
/// with at least one byte between, only the bytes between route it, so
/// `{user:1}:name` and `{user:1}:mail` share a shard (and a multi-key
/// command on both is allowed).
pub fn key_hash(key: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    hash_tag(key)
        .iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The part of `key` that routes it: its hash tag, or all of it.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    match key[open + 1..].iter().position(|&b| b == b'}') {
        Some(len) if len > 0 => &key[open + 1..open + 1 + len],
        _ => key,
    }
}

/// Why a cache operation failed; `Display` is the Redis-style reply text
/// (with the cause, so the RESP front end can answer it as it is)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// A shard could not be reached, did not answer in time, or failed while
    /// handling the request (a write may or may not have been applied)
    #[error("ERR cache shard unavailable: {0}")]
    Unavailable(#[from] CallError),
    /// A shard refused the operation
    #[error(transparent)]
    Refused(#[from] ShardError),
}

/// A handle to a sharded cache: the shard addresses and a per-call timeout
///
/// Cheap to clone (one reference count); the shards may live on any node.
/// Built by [`CacheSpec::client`](crate::CacheSpec::client) when the cache
/// is placed, or from the shard handles with [`CacheClient::new`].
///
/// Each method sends one message per shard involved and waits for every
/// answer, at most the client's timeout ([`DEFAULT_TIMEOUT`], 5 s, unless set
/// with [`with_timeout`](Self::with_timeout)); [`run`](Self::run) and
/// [`get`](Self::get) instead run on the shard's table in place when the shard
/// is in this process and its table is free (see `docs/cache.md`, "Where
/// commands run").
///
/// # Cancel safety
///
/// Cancelling (dropping) any method's future abandons its calls, each as
/// [`Addr::call`]: a shard that has its request may still apply it (a write,
/// or on a read-through cache a fill from the backing store), and its answer
/// is discarded. Nothing is retried or undone.
#[derive(Clone, Debug)]
pub struct CacheClient {
    shards: Arc<[Addr<ShardMsg>]>,
    timeout: Duration,
}

impl CacheClient {
    /// A client over `shards` (in a fixed order: the order decides routing)
    /// with the [`DEFAULT_TIMEOUT`]
    ///
    /// # Panics
    ///
    /// If `shards` is empty.
    pub fn new(shards: impl IntoIterator<Item = Addr<ShardMsg>>) -> Self {
        let shards: Arc<[Addr<ShardMsg>]> = shards.into_iter().collect();
        assert!(!shards.is_empty(), "a cache needs at least one shard");
        Self {
            shards,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A client over the members of `pool`, in pool order
    ///
    /// # Panics
    ///
    /// If the pool is empty.
    pub fn from_pool(pool: &Pool<ShardMsg>) -> Self {
        Self::new(pool.members().iter().cloned())
    }

    /// A copy of this client whose calls wait up to `timeout` for each shard
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            shards: self.shards.clone(),
            timeout,
        }
    }

    /// How long each call waits for a shard
    pub fn call_timeout(&self) -> Duration {
        self.timeout
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

    async fn call<R: ReplyValue>(
        &self,
        shard: usize,
        make: impl FnOnce(Reply<R>) -> ShardMsg,
    ) -> Result<R, CallError> {
        self.shards[shard].call(make, self.timeout).await
    }

    /// Calls every shard with `make`, answers in shard order.
    async fn call_all<R: ReplyValue>(
        &self,
        make: impl Fn(Reply<R>) -> ShardMsg,
    ) -> Result<Vec<R>, CallError> {
        join_all((0..self.shards.len()).map(|i| self.call(i, &make)))
            .await
            .into_iter()
            .collect()
    }

    /// Splits `items` by the shard of `key(item)`: per shard, the items and
    /// their positions in `items`.
    fn split<T>(
        &self,
        items: Vec<T>,
        key: impl Fn(&T) -> &[u8],
    ) -> Vec<(usize, Vec<usize>, Vec<T>)> {
        let shard_of: Vec<usize> = items.iter().map(|item| self.shard_of(key(item))).collect();
        // all on one shard (always so with one shard): the items go as they are
        if let Some(&first) = shard_of.first()
            && shard_of.iter().all(|&s| s == first)
        {
            return vec![(first, (0..items.len()).collect(), items)];
        }
        let mut counts = vec![0usize; self.shards.len()];
        for &shard in &shard_of {
            counts[shard] += 1;
        }
        let mut groups: Vec<(Vec<usize>, Vec<T>)> = counts
            .iter()
            .map(|&n| (Vec::with_capacity(n), Vec::with_capacity(n)))
            .collect();
        for (i, (item, shard)) in items.into_iter().zip(shard_of).enumerate() {
            let group = &mut groups[shard];
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

    /// Sends one request per shard built from its share of `items`; per
    /// shard, the positions of its items and its answer.
    async fn scatter<T, R: ReplyValue>(
        &self,
        items: Vec<T>,
        key: impl Fn(&T) -> &[u8],
        make: impl Fn(Vec<T>, Reply<R>) -> ShardMsg,
    ) -> Result<Vec<(Vec<usize>, R)>, CacheError> {
        let groups = self.split(items, key);
        let make = &make;
        let calls = groups
            .into_iter()
            .map(|(shard, positions, items)| async move {
                let answer = self.call(shard, |reply| make(items, reply)).await?;
                Ok((positions, answer))
            });
        join_all(calls).await.into_iter().collect()
    }

    /// Runs `commands` as a pipeline sends them: per shard, that shard's
    /// commands in their order, on its table in place when the shard runs in
    /// this process and the table is free, else as one [`ShardMsg::Run`],
    /// every shard at once;
    /// the replies in `commands`' order. Commands on one key keep their
    /// order; commands on keys of different shards run concurrently, as
    /// separate commands from separate clients may. A command's every key
    /// must be on its key's shard.
    ///
    /// A shard that is unreachable, or refuses the run (a read-through
    /// shard refuses runs with commands that need its backing store: send
    /// those as the typed calls), answers each of its commands with the
    /// error.
    ///
    /// # Cancel safety
    ///
    /// Any share of the commands may or may not be applied.
    pub async fn run(&self, commands: Vec<KeyCommand>) -> Vec<Result<Frame, CacheError>> {
        let n = commands.len();
        if let Some(shard) = self.one_shard(&commands) {
            // every command on one shard (always so for one command): one run, no split
            let answer = self.run_on(shard, commands).await;
            return match answer {
                Ok(Ok(frames)) if frames.len() == n => frames.into_iter().map(Ok).collect(),
                Ok(Ok(_)) => vec![Err(short_answer()); n],
                Ok(Err(refused)) => vec![Err(CacheError::Refused(refused)); n],
                Err(err) => vec![Err(CacheError::Unavailable(err)); n],
            };
        }
        let groups = self.split(commands, |cmd| cmd.key());
        let calls = groups
            .into_iter()
            .map(|(shard, positions, commands)| async move {
                (positions, self.run_on(shard, commands).await)
            });
        let mut out: Vec<Option<Result<Frame, CacheError>>> = vec![None; n];
        for (positions, answer) in join_all(calls).await {
            match answer {
                Ok(Ok(frames)) => {
                    for (i, frame) in positions.into_iter().zip(frames) {
                        out[i] = Some(Ok(frame));
                    }
                }
                Ok(Err(refused)) => {
                    for i in positions {
                        out[i] = Some(Err(CacheError::Refused(refused.clone())));
                    }
                }
                Err(err) => {
                    for i in positions {
                        out[i] = Some(Err(CacheError::Unavailable(err.clone())));
                    }
                }
            }
        }
        // a shard that answered fewer replies than it was sent commands
        out.into_iter()
            .map(|reply| reply.unwrap_or_else(|| Err(short_answer())))
            .collect()
    }

    /// Runs `commands` on `shard`: in place on its table when the shard runs in this process
    /// and the table is free, else as one [`ShardMsg::Run`].
    async fn run_on(
        &self,
        shard: usize,
        commands: Vec<KeyCommand>,
    ) -> Result<Result<Vec<Frame>, ShardError>, CallError> {
        let addr = &self.shards[shard];
        let commands = match addr.shared::<ShardTable>() {
            Some(table) => match table.try_run(commands, &Now::at(time::now())) {
                InPlace::Ran(answer) => return Ok(answer),
                InPlace::Panicked(reason) => {
                    return Err(CallError::ActorFailed {
                        target: format!("{}/{}", addr.node(), addr.name()),
                        reason,
                    });
                }
                InPlace::Send(commands) => commands,
            },
            None => commands,
        };
        self.call(shard, |reply| ShardMsg::Run { commands, reply })
            .await
    }

    /// The shard every one of `commands` is on, if they share one.
    fn one_shard(&self, commands: &[KeyCommand]) -> Option<usize> {
        let (first, rest) = commands.split_first()?;
        let shard = self.shard_of(first.key());
        rest.iter()
            .all(|cmd| self.shard_of(cmd.key()) == shard)
            .then_some(shard)
    }

    /// Every live key matching the glob `pattern`, from every shard (`KEYS`)
    ///
    /// # Errors
    ///
    /// [`CacheError::Unavailable`] if a shard cannot be reached.
    pub async fn keys(&self, pattern: Bytes) -> Result<Vec<Bytes>, CacheError> {
        let per_shard = self
            .call_all(|reply| ShardMsg::Keys {
                pattern: pattern.clone(),
                reply,
            })
            .await?;
        Ok(per_shard.into_iter().flatten().collect())
    }

    /// One step of `SCAN` on shard `shard`: the matching keys among the next
    /// `count` from `position`, and where it goes on (`None`: done)
    ///
    /// # Errors
    ///
    /// [`CacheError::Unavailable`] if the shard cannot be reached.
    pub async fn scan_shard(
        &self,
        shard: usize,
        position: u64,
        count: usize,
        pattern: Option<Bytes>,
        kind: Option<Option<Kind>>,
    ) -> Result<(Vec<Bytes>, Option<u64>), CacheError> {
        let step = self
            .call(shard, |reply| ShardMsg::Scan {
                position,
                count,
                pattern,
                kind,
                reply,
            })
            .await?;
        Ok(step)
    }

    /// Changes every shard's memory settings (`None` keeps one):
    /// `max_bytes` is the whole cache's bound, split over the shards so the
    /// shares add up to it (`usize::MAX`: no bound).
    /// The settings of every shard afterwards, in shard order (with both
    /// `None`, just reads them).
    ///
    /// # Errors
    ///
    /// [`CacheError::Unavailable`] if a shard cannot be reached; the others
    /// may have changed.
    pub async fn configure(
        &self,
        max_bytes: Option<usize>,
        policy: Option<EvictionPolicy>,
    ) -> Result<Vec<ShardConfig>, CacheError> {
        let n = self.shards.len();
        // `usize::MAX` is no bound: each shard gets it whole; else the shares add up exactly
        let share = |i: usize| {
            max_bytes.map(|bytes| match bytes {
                usize::MAX => usize::MAX,
                bytes => bytes / n + usize::from(i < bytes % n),
            })
        };
        let calls = (0..n).map(|i| {
            self.call(i, move |reply| ShardMsg::Configure {
                max_bytes: share(i),
                policy,
                reply,
            })
        });
        let configs = join_all(calls)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        Ok(configs)
    }

    /// The value at `key` (`None` if absent or expired)
    ///
    /// On a read-through cache, a miss is read from the backing store.
    ///
    /// # Errors
    ///
    /// [`CacheError::Unavailable`] if the shard cannot be reached or does
    /// not answer in time; [`CacheError::Refused`] if a read-through shard's
    /// backing store fails.
    ///
    /// # Cancel safety
    ///
    /// Safe: the shard may still read a miss from the backing store and cache
    /// it, which a later read would have done as well.
    pub async fn get(&self, key: impl Into<Bytes>) -> Result<Option<Bytes>, CacheError> {
        let key = key.into();
        let shard = self.shard_of(&key);
        // answered in place when the shard is here (a read-through miss still goes to it)
        if let Some(table) = self.shards[shard].shared::<ShardTable>()
            && let Some(answer) = table.try_get(&key, time::now())
        {
            return Ok(answer?);
        }
        Ok(self
            .call(shard, |reply| ShardMsg::Get { key, reply })
            .await??)
    }

    /// The values at `keys`, in order (`None` for an absent key)
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), for any shard involved.
    ///
    /// # Cancel safety
    ///
    /// As [`get`](Self::get).
    pub async fn mget<K: Into<Bytes>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Vec<Option<Bytes>>, CacheError> {
        let keys: Vec<Bytes> = keys.into_iter().map(Into::into).collect();
        let mut out = vec![None; keys.len()];
        let answers = self
            .scatter(keys, |k| k, |keys, reply| ShardMsg::GetMany { keys, reply })
            .await?;
        for (positions, values) in answers {
            for (i, value) in positions.into_iter().zip(values?) {
                out[i] = value;
            }
        }
        Ok(out)
    }

    /// `SET key value`: stores `value` with no expiry (clearing any old one)
    ///
    /// `Ok` means the shard stored it; on a read-through cache, that the
    /// backing store has it and the cached copy was dropped, so every later
    /// read returns it (or a newer value).
    ///
    /// # Errors
    ///
    /// [`CacheError::Refused`] with [`ShardError::TooLarge`] if the entry is
    /// larger than the shard's byte bound, or a backing store failure;
    /// [`CacheError::Unavailable`] as for [`get`](Self::get) (the write may
    /// or may not have been applied).
    ///
    /// # Cancel safety
    ///
    /// The write may or may not be applied; on a read-through cache, a write
    /// the shard has started through to the backing store runs to its end
    /// (unless the shard itself stops or restarts).
    pub async fn set(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> Result<(), CacheError> {
        self.set_with(key, value, SetTtl::Clear, None).await?;
        Ok(())
    }

    /// `SET key value` with an expiry and an optional `NX`/`XX` condition;
    /// whether it was written, and the value it replaced
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set); a read-through cache refuses any expiry or
    /// condition with [`ShardError::ReadThroughUnsupported`].
    ///
    /// # Cancel safety
    ///
    /// The write may or may not be applied.
    pub async fn set_with(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
        ttl: SetTtl,
        condition: Option<SetCondition>,
    ) -> Result<SetResult, CacheError> {
        let (key, value) = (key.into(), value.into());
        let shard = self.shard_of(&key);
        let make = |reply| ShardMsg::Set {
            key,
            value,
            ttl,
            condition,
            reply,
        };
        Ok(self.call(shard, make).await??)
    }

    /// Sets every pair (no expiry); each shard applies its share in order,
    /// but shards are independent
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set), for any shard involved; the other shards'
    /// shares are applied.
    ///
    /// # Cancel safety
    ///
    /// Any share of the writes may or may not be applied.
    pub async fn mset<K: Into<Bytes>, V: Into<Bytes>>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<(), CacheError> {
        let pairs: Vec<(Bytes, Bytes)> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let answers = self
            .scatter(
                pairs,
                |(k, _)| k,
                |pairs, reply| ShardMsg::SetMany { pairs, reply },
            )
            .await?;
        for (_, done) in answers {
            done?;
        }
        Ok(())
    }

    /// Removes `keys`; how many live keys were removed (on a read-through
    /// cache: how many keys were deleted in the backing store, present or
    /// not)
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set), for any shard involved.
    ///
    /// # Cancel safety
    ///
    /// Any of the deletes may or may not be applied.
    pub async fn del<K: Into<Bytes>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<u64, CacheError> {
        let keys: Vec<Bytes> = keys.into_iter().map(Into::into).collect();
        let answers = self
            .scatter(keys, |k| k, |keys, reply| ShardMsg::Del { keys, reply })
            .await?;
        let mut total = 0;
        for (_, n) in answers {
            total += n?;
        }
        Ok(total)
    }

    /// How many of `keys` are live (a repeated key counts each time); on a
    /// read-through cache, only cached copies count
    ///
    /// # Errors
    ///
    /// [`CacheError::Unavailable`] as for [`get`](Self::get).
    ///
    /// # Cancel safety
    ///
    /// Safe.
    pub async fn exists<K: Into<Bytes>>(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<u64, CacheError> {
        let keys: Vec<Bytes> = keys.into_iter().map(Into::into).collect();
        let answers = self
            .scatter(keys, |k| k, |keys, reply| ShardMsg::Exists { keys, reply })
            .await?;
        Ok(answers.into_iter().map(|(_, n)| n).sum())
    }

    /// `PEXPIRE key millis [NX|XX|GT|LT]`: whether the expiry was set (zero
    /// or negative `millis` deletes the key)
    ///
    /// # Errors
    ///
    /// [`CacheError::Unavailable`] as for [`get`](Self::get).
    ///
    /// # Cancel safety
    ///
    /// The expiry may or may not be set.
    pub async fn expire(
        &self,
        key: impl Into<Bytes>,
        millis: i64,
        options: ExpireOptions,
    ) -> Result<bool, CacheError> {
        let key = key.into();
        let shard = self.shard_of(&key);
        let make = |reply| ShardMsg::Expire {
            key,
            millis,
            options,
            reply,
        };
        Ok(self.call(shard, make).await?)
    }

    /// The time to live of `key`
    ///
    /// # Errors
    ///
    /// [`CacheError::Unavailable`] as for [`get`](Self::get).
    ///
    /// # Cancel safety
    ///
    /// Safe.
    pub async fn ttl(&self, key: impl Into<Bytes>) -> Result<KeyTtl, CacheError> {
        let key = key.into();
        let shard = self.shard_of(&key);
        Ok(self
            .call(shard, |reply| ShardMsg::Ttl { key, reply })
            .await?)
    }

    /// Removes the expiry of `key`; whether it had one
    ///
    /// # Errors
    ///
    /// [`CacheError::Unavailable`] as for [`get`](Self::get).
    ///
    /// # Cancel safety
    ///
    /// The expiry may or may not be removed.
    pub async fn persist(&self, key: impl Into<Bytes>) -> Result<bool, CacheError> {
        let key = key.into();
        let shard = self.shard_of(&key);
        Ok(self
            .call(shard, |reply| ShardMsg::Persist { key, reply })
            .await?)
    }

    /// Adds `by` to the integer at `key` (absent counts as 0), keeping its
    /// expiry; the new value
    ///
    /// # Errors
    ///
    /// [`CacheError::Refused`] with [`ShardError::NotAnInteger`],
    /// [`ShardError::Overflow`] or (on a read-through cache)
    /// [`ShardError::ReadThroughUnsupported`]; [`CacheError::Unavailable`] as
    /// for [`get`](Self::get).
    ///
    /// # Cancel safety
    ///
    /// The increment may or may not be applied.
    pub async fn incr_by(&self, key: impl Into<Bytes>, by: i64) -> Result<i64, CacheError> {
        let key = key.into();
        let shard = self.shard_of(&key);
        Ok(self
            .call(shard, |reply| ShardMsg::IncrBy { key, by, reply })
            .await??)
    }

    /// Entries held over all shards
    ///
    /// # Errors
    ///
    /// [`CacheError::Unavailable`] if any shard cannot be reached.
    ///
    /// # Cancel safety
    ///
    /// Safe.
    pub async fn dbsize(&self) -> Result<u64, CacheError> {
        Ok(self.call_all(ShardMsg::DbSize).await?.into_iter().sum())
    }

    /// Removes every entry from every shard (on a read-through cache: every
    /// cached copy; the backing store keeps its data)
    ///
    /// # Errors
    ///
    /// [`CacheError::Unavailable`] if a shard cannot be reached (the others
    /// are flushed).
    ///
    /// # Cancel safety
    ///
    /// Any shard may or may not be flushed.
    pub async fn flushall(&self) -> Result<(), CacheError> {
        self.call_all(ShardMsg::FlushAll).await?;
        Ok(())
    }

    /// memcached's `flush_all <delay>`: every shard removes every entry once
    /// `delay` has passed (entries written meanwhile too), or now if `delay`
    /// is zero; either replaces a flush still pending
    ///
    /// # Errors
    ///
    /// [`CacheError::Unavailable`] if a shard cannot be reached (the others
    /// are flushed or scheduled).
    ///
    /// # Cancel safety
    ///
    /// Any shard may or may not be flushed or scheduled.
    pub async fn flush_all_after(&self, delay: Duration) -> Result<(), CacheError> {
        self.call_all(|reply| ShardMsg::FlushAfter { delay, reply })
            .await?;
        Ok(())
    }

    /// Counters summed over all shards
    ///
    /// # Errors
    ///
    /// [`CacheError::Unavailable`] if a shard cannot be reached.
    ///
    /// # Cancel safety
    ///
    /// Safe.
    pub async fn stats(&self) -> Result<ShardStats, CacheError> {
        let all = self.call_all(ShardMsg::Stats).await?;
        Ok(all
            .into_iter()
            .fold(ShardStats::default(), ShardStats::merge))
    }

    /// Whether the cache reads through a backing store, as the first shard to answer says
    /// (all shards of a cache are alike, so one down shard does not keep it from being known)
    ///
    /// # Errors
    ///
    /// [`CacheError::Unavailable`] if no shard answers in time.
    ///
    /// # Cancel safety
    ///
    /// Safe.
    pub async fn reads_through(&self) -> Result<bool, CacheError> {
        let asks = (0..self.shards.len())
            .map(|i| Box::pin(self.call(i, ShardMsg::Stats)))
            .collect::<Vec<_>>();
        let (stats, _) = futures::future::select_ok(asks).await?;
        Ok(stats.read_through)
    }
}

/// What a command gets when its shard answered fewer replies than it was sent commands.
fn short_answer() -> CacheError {
    CacheError::Unavailable(CallError::Decode(
        "the shard answered fewer replies than commands".into(),
    ))
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

    #[test]
    fn hash_tags_route_as_redis_cluster() {
        assert_eq!(key_hash(b"{user:1}:name"), key_hash(b"user:1"));
        assert_eq!(key_hash(b"{user:1}:mail"), key_hash(b"{user:1}:name"));
        // only the first `{`, up to the first `}` after it
        assert_eq!(key_hash(b"a{b}{c}"), key_hash(b"b"));
        assert_eq!(key_hash(b"a{{b}}"), key_hash(b"{b"));
        // an empty or unclosed tag routes the whole key
        assert_eq!(key_hash(b"a{}b"), key_hash(b"a{}b"));
        assert_ne!(key_hash(b"a{}b"), key_hash(b""));
        assert_ne!(key_hash(b"a{b"), key_hash(b"b"));
    }
}
