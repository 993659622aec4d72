//! [`CacheSpec`]: a whole cache in one declaration: its bounds, its shards,
//! its read-through backing store and its RESP and memcached front ends
//!
//! The spec says what to run; whoever places it (the `troupe` facade's
//! topology, or [`CacheSpec::children`] on a bare node) registers the shards
//! as `name.0`, `name.1`, ... under a one-for-one supervisor named `name`,
//! the RESP server (if any) as `name.resp`, the memcached server (if any) as
//! `name.memcached`, and hands out the
//! [`CacheClient`] built from the shard handles.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use troupe_runtime::{Addr, ChildOptions, ChildSpec, Node, Pool, Reach, RegistryError};

use crate::actor::{RespServer, RespServerActor};
use crate::backing::{Backing, SharedBacking};
use crate::client::{CacheClient, DEFAULT_TIMEOUT};
use crate::memcache::{MemcacheServer, MemcacheServerActor};
use crate::shard::{CacheShard, ShardConfig, ShardMsg, SharedConfig};
use crate::store::EvictionPolicy;

/// Bytes of keys plus values a cache holds over all its shards unless told
/// otherwise: 64 MiB
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

/// A sharded LRU cache, optionally read-through and served over RESP and
/// memcached's text protocol
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// use troupe_cache::CacheSpec;
///
/// // 100,000 entries and 64 MiB over two shards, served to redis-cli on 6380
/// let spec = CacheSpec::lru(100_000)
///     .shards(2)
///     .max_bytes(64 << 20)
///     .resp("127.0.0.1:6380")
///     .memcached("127.0.0.1:11211")
///     .call_timeout(Duration::from_secs(2));
/// assert_eq!(spec.shard_count(), 2);
/// assert_eq!(CacheSpec::shard_name("cache", 1), "cache.1");
/// assert_eq!(CacheSpec::resp_name("cache"), "cache.resp");
/// assert_eq!(CacheSpec::memcached_name("cache"), "cache.memcached");
/// ```
///
/// Read-through, in front of any [`Backing`] store (an `Addr<BackingMsg>`
/// of an actor answering [`BackingMsg`](crate::BackingMsg) is one):
///
/// ```no_run
/// # use troupe_cache::{BackingMsg, CacheSpec};
/// # fn wire(db: troupe_runtime::Addr<BackingMsg>) {
/// let spec = CacheSpec::lru(100_000).shards(2).read_through(db);
/// # let _ = spec;
/// # }
/// ```
///
/// On a bare node (the facade's `Topology::add` does the same):
///
/// ```no_run
/// # use troupe_cache::CacheSpec;
/// # use troupe_runtime::{Node, SupervisorSpec};
/// # async fn run(node: Node) -> Result<(), Box<dyn std::error::Error>> {
/// let (children, cache) = CacheSpec::lru(10_000).shards(4).children(&node, "cache")?;
/// node.start(SupervisorSpec::one_for_one(), children).await?;
/// cache.set("greeting", "hello").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CacheSpec {
    capacity: NonZeroUsize,
    max_bytes: usize,
    shards: NonZeroUsize,
    backing: Option<SharedBacking>,
    backing_timeout: Option<Duration>,
    fill_ttl: Option<Duration>,
    max_backing_in_flight: Option<usize>,
    resp: Option<RespServer>,
    memcached: Option<MemcacheServer>,
    call_timeout: Duration,
    reach: Reach,
}

impl CacheSpec {
    /// A cache of at most `capacity` entries over all its shards (each shard
    /// holds `capacity / shards`, rounded up), evicting the least recently
    /// used; one shard, [`DEFAULT_MAX_BYTES`], no backing store, no RESP or
    /// memcached server, and clients waiting [`DEFAULT_TIMEOUT`] for a shard
    ///
    /// # Panics
    ///
    /// If `capacity` is zero.
    pub fn lru(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).expect("a cache holds at least one entry");
        Self {
            capacity,
            max_bytes: DEFAULT_MAX_BYTES,
            shards: NonZeroUsize::MIN,
            backing: None,
            backing_timeout: None,
            fill_ttl: None,
            max_backing_in_flight: None,
            resp: None,
            memcached: None,
            call_timeout: DEFAULT_TIMEOUT,
            reach: Reach::Local,
        }
    }

    /// Splits the cache over `n` shards (actors, each owning its share of the
    /// keys, so `n` cores can serve it)
    ///
    /// # Panics
    ///
    /// If `n` is zero.
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = NonZeroUsize::new(n).expect("a cache has at least one shard");
        self
    }

    /// Most bytes of keys plus values over all shards (each shard holds
    /// `bytes / shards`, rounded up); an entry larger than a shard's share is
    /// refused
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Puts the cache in front of `backing`: misses are read from it and
    /// cached, writes go through it (see the crate docs for what a
    /// read-through cache promises and refuses)
    ///
    /// `backing` must answer from its authoritative copy (for a replicated
    /// database: its leader).
    pub fn read_through(mut self, backing: impl Backing) -> Self {
        self.backing = Some(SharedBacking::new(backing));
        self
    }

    /// How long a read-through shard waits for its backing store (default
    /// 4 s; keep it below [`call_timeout`](Self::call_timeout)); no effect
    /// without [`read_through`](Self::read_through)
    pub fn backing_timeout(mut self, timeout: Duration) -> Self {
        self.backing_timeout = Some(timeout);
        self
    }

    /// The expiry of entries filled from the backing store (default: none;
    /// they stay until evicted or invalidated); no effect without
    /// [`read_through`](Self::read_through)
    pub fn fill_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.fill_ttl = ttl;
        self
    }

    /// Most reads and writes one shard waits on the backing store for at once
    /// (default 1,024); no effect without [`read_through`](Self::read_through)
    pub fn max_backing_in_flight(mut self, limit: usize) -> Self {
        self.max_backing_in_flight = Some(limit);
        self
    }

    /// Serves the cache over RESP2 too: `.resp("127.0.0.1:6380")`, or a
    /// [`RespServer`] with its own limits
    pub fn resp(mut self, server: impl Into<RespServer>) -> Self {
        self.resp = Some(server.into());
        self
    }

    /// Serves the cache over memcached's text protocol too, on the same
    /// shards: `.memcached("127.0.0.1:11211")`, or a [`MemcacheServer`]
    /// with its own limits (see [`crate::cmd::memcache`] for what a memcached
    /// client sees of RESP's values, and on a read-through cache)
    pub fn memcached(mut self, server: impl Into<MemcacheServer>) -> Self {
        self.memcached = Some(server.into());
        self
    }

    /// How long the cache's clients wait for a shard (default
    /// [`DEFAULT_TIMEOUT`]); a client can change it with
    /// [`CacheClient::with_timeout`]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Lets clients on other nodes reach the shards as `reach` says (by default only
    /// clients on the cache's own node may: a shard is local-only unless declared)
    pub fn reachable_from(mut self, reach: Reach) -> Self {
        self.reach = reach;
        self
    }

    /// Who may reach the shards from other nodes
    pub fn reach(&self) -> &Reach {
        &self.reach
    }

    /// How many shards to place
    pub fn shard_count(&self) -> usize {
        self.shards.get()
    }

    /// The name of shard `index` of the cache `name`: `name.index` (the
    /// member names of a [`Pool`] named `name`)
    pub fn shard_name(name: &str, index: usize) -> String {
        Pool::<ShardMsg>::member_name(name, index)
    }

    /// The name of the RESP server of the cache `name`: `name.resp`
    pub fn resp_name(name: &str) -> String {
        format!("{name}.resp")
    }

    /// The name of the memcached server of the cache `name`: `name.memcached`
    pub fn memcached_name(name: &str) -> String {
        format!("{name}.memcached")
    }

    /// The memcached front end, if the cache has one
    pub fn memcached_server(&self) -> Option<&MemcacheServer> {
        self.memcached.as_ref()
    }

    /// The RESP front end, if the cache has one
    pub fn resp_server(&self) -> Option<&RespServer> {
        self.resp.as_ref()
    }

    /// Whether the cache reads through a backing store
    pub fn is_read_through(&self) -> bool {
        self.backing.is_some()
    }

    /// A factory making shard `index` at every (re)start (each start is an
    /// empty shard, with the memory settings `CONFIG SET` last gave that
    /// shard): for `Topology::pool(place, name, spec.shard_count(), ..)`
    /// or `Node::pool_child`
    pub fn shard_factory(&self) -> impl Fn(usize) -> CacheShard + Send + Sync + 'static {
        let shards = self.shards.get();
        let entries = self.capacity.get().div_ceil(shards);
        let entries = NonZeroUsize::new(entries).unwrap_or(NonZeroUsize::MIN);
        let bytes = self.max_bytes.div_ceil(shards);
        // one per shard, shared by its every instance: `CONFIG SET` outlives a restart
        let configs: Vec<Arc<SharedConfig>> = (0..shards)
            .map(|_| {
                SharedConfig::new(ShardConfig {
                    max_bytes: bytes,
                    policy: EvictionPolicy::default(),
                })
            })
            .collect();
        let spec = self.clone();
        move |index| {
            let config = configs
                .get(index)
                .cloned()
                .unwrap_or_else(|| SharedConfig::new(configs[0].get()));
            let Some(backing) = &spec.backing else {
                return CacheShard::new(entries, bytes).with_config(config);
            };
            let mut shard = CacheShard::with_backing(entries, bytes, backing.clone())
                .fill_ttl(spec.fill_ttl)
                .with_config(config);
            if let Some(timeout) = spec.backing_timeout {
                shard = shard.backing_timeout(timeout);
            }
            if let Some(limit) = spec.max_backing_in_flight {
                shard = shard.max_backing_in_flight(limit);
            }
            shard
        }
    }

    /// The client of the cache whose shards are `shards` (in index order),
    /// with this spec's call timeout
    ///
    /// # Panics
    ///
    /// If `shards` is empty.
    pub fn client(&self, shards: impl IntoIterator<Item = Addr<ShardMsg>>) -> CacheClient {
        CacheClient::new(shards).with_timeout(self.call_timeout)
    }

    /// A factory for the RESP server actor in front of `client` (to place as
    /// [`resp_name`](Self::resp_name)), if the cache has one
    pub fn resp_factory(
        &self,
        client: &CacheClient,
    ) -> Option<impl Fn() -> RespServerActor + Send + Sync + 'static> {
        self.resp
            .as_ref()
            .map(|server| server.factory(client.clone()))
    }

    /// A factory for the memcached server actor in front of `client` (to
    /// place as [`memcached_name`](Self::memcached_name)), if the cache has
    /// one
    pub fn memcached_factory(
        &self,
        client: &CacheClient,
    ) -> Option<impl Fn() -> MemcacheServerActor + Send + Sync + 'static> {
        self.memcached
            .as_ref()
            .map(|server| server.factory(client.clone()))
    }

    /// Registers the cache `name` on `node` (shards `name.0..` under a
    /// one-for-one supervisor `name`, reachable from other nodes as
    /// [`reachable_from`](Self::reachable_from) says, the RESP server
    /// `name.resp` and the memcached server `name.memcached` if any), all
    /// permanent: the child specs to start, and the client
    ///
    /// # Errors
    ///
    /// [`RegistryError::AlreadyRegistered`] if a name is taken on `node`
    /// (nothing stays registered).
    pub fn children(
        &self,
        node: &Node,
        name: &str,
    ) -> Result<(Vec<ChildSpec>, CacheClient), RegistryError> {
        let (shards, pool) = node.pool_child(
            name,
            self.shard_count(),
            ChildOptions::permanent().reachable_from(self.reach.clone()),
            self.shard_factory(),
        )?;
        let client = self.client(pool.members().iter().cloned());
        let mut children = vec![shards];
        if let Some(factory) = self.resp_factory(&client) {
            match node.child(&Self::resp_name(name), ChildOptions::permanent(), factory) {
                Ok((server, _)) => children.push(server),
                Err(err) => {
                    children.into_iter().for_each(ChildSpec::discard);
                    return Err(err);
                }
            }
        }
        if let Some(factory) = self.memcached_factory(&client) {
            let named = Self::memcached_name(name);
            match node.child(&named, ChildOptions::permanent(), factory) {
                Ok((server, _)) => children.push(server),
                Err(err) => {
                    children.into_iter().for_each(ChildSpec::discard);
                    return Err(err);
                }
            }
        }
        Ok((children, client))
    }
}
