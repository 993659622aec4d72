//! cache_server: the cache's shards behind a RESP front end that stock Redis clients talk to,
//! and, with `--memcached ADDR`, memcached's text protocol on the same shards.
//!
//! ```text
//! cargo run --example cache_server                     # RESP on 127.0.0.1:6380
//! redis-cli -p 6380 set greeting hello
//! redis-cli -p 6380 get greeting
//! redis-benchmark -p 6380 -t get,set -n 100000 -q
//!
//! cargo run --example cache_server -- --memcached 127.0.0.1:11211
//! printf 'get greeting\r\n' | nc -q1 127.0.0.1 11211   # the value RESP set, flags 0
//! memcstat --servers=127.0.0.1:11211
//! ```

use clap::Parser;
use troupe::cache::{MemcacheServer, RespServer};
use troupe::prelude::*;

#[derive(Debug, Parser)]
#[command(
    about = "A sharded LRU cache served over RESP (redis-cli works against it) and, with \
             --memcached, memcached's text protocol"
)]
struct Args {
    /// Address of the RESP front end.
    #[arg(long, default_value = "127.0.0.1:6380")]
    resp: String,
    /// Also serve memcached's text protocol on this address, over the same shards (memcached
    /// clients, memcstat, memcaslap work against it).
    #[arg(long)]
    memcached: Option<String>,
    /// Largest item a memcached client may store, in bytes (memcached's `-I`).
    #[arg(long, default_value_t = troupe::cache::memcache::parse::DEFAULT_MAX_ITEM_SIZE)]
    max_item_size: usize,
    /// Require clients of the RESP port to authenticate with this password (Redis's
    /// `requirepass`; `redis-cli -a PASSWORD`); also read from TROUPE_REQUIREPASS.
    #[arg(long, env = "TROUPE_REQUIREPASS", hide_env_values = true)]
    requirepass: Option<String>,
    /// Close a client that sends nothing for this many seconds (Redis's `timeout`; 0: never).
    #[arg(long, default_value_t = 0)]
    timeout: u64,
    /// Most clients served at once (Redis's `maxclients`); more get
    /// `-ERR max number of clients reached`.
    #[arg(long, default_value_t = 10_000)]
    maxclients: usize,
    /// Most request bytes one client may have buffered before it is cut off (Redis's
    /// `client-query-buffer-limit`).
    #[arg(long, default_value_t = troupe::cache::DEFAULT_QUERY_BUFFER_LIMIT)]
    client_query_buffer_limit: usize,
    /// Number of shard actors (keys are spread over them by hash).
    #[arg(long, default_value_t = 2)]
    shards: usize,
    /// Entries the cache keeps (over all shards) before evicting the least recently used.
    #[arg(long, default_value_t = 200_000)]
    entries: usize,
    /// Bytes (keys + values, over all shards) the cache keeps before evicting.
    #[arg(long, default_value_t = 512 << 20)]
    bytes: usize,
    #[command(flatten)]
    launch: LaunchArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = troupe::telemetry::init("cache");
    let args = Args::parse();
    anyhow::ensure!(args.entries > 0, "--entries must be at least 1");
    let mut t = Topology::new("cache");
    let node = t.node("cache");
    let idle = std::time::Duration::from_secs(args.timeout);
    let mut spec = CacheSpec::lru(args.entries)
        .shards(args.shards.max(1))
        .max_bytes(args.bytes)
        .resp(
            RespServer::new(args.resp.as_str())
                .requirepass(args.requirepass.as_deref().unwrap_or_default())
                .idle_timeout(idle)
                .max_connections(args.maxclients.max(1))
                .query_buffer_limit(args.client_query_buffer_limit),
        );
    if let Some(addr) = &args.memcached {
        spec = spec.memcached(
            MemcacheServer::new(addr.as_str())
                .idle_timeout(idle)
                .max_connections(args.maxclients.max(1))
                .max_item_size(args.max_item_size),
        );
    }
    t.add(node, "cache", spec);
    println!(
        "cache_server: RESP on {} — try: redis-cli -p {} ping",
        args.resp,
        args.resp.rsplit(':').next().unwrap_or("6380")
    );
    if let Some(addr) = &args.memcached {
        println!("cache_server: memcached on {addr} — try: memcstat --servers={addr}");
    }
    let outcome = launch(t, args.launch).await;
    telemetry.shutdown().await;
    Ok(outcome?)
}
