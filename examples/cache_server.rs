//! cache_server: the cache's shards behind a RESP front end that stock Redis clients talk to.
//!
//! ```text
//! cargo run --example cache_server                     # RESP on 127.0.0.1:6380
//! redis-cli -p 6380 set greeting hello
//! redis-cli -p 6380 get greeting
//! redis-benchmark -p 6380 -t get,set -n 100000 -q
//! ```

use std::num::NonZeroUsize;

use clap::Parser;
use troupe::cache::{CacheClient, CacheShard, RespServer};
use troupe::prelude::*;

#[derive(Debug, Parser)]
#[command(about = "A sharded LRU cache served over RESP (redis-cli works against it)")]
struct Args {
    /// Address of the RESP front end.
    #[arg(long, default_value = "127.0.0.1:6380")]
    resp: String,
    /// Number of shard actors (keys are spread over them by hash).
    #[arg(long, default_value_t = 2)]
    shards: usize,
    /// Entries each shard keeps before evicting the least recently used.
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    /// Bytes (keys + values) each shard keeps before evicting.
    #[arg(long, default_value_t = 256 << 20)]
    bytes: usize,
    #[command(flatten)]
    launch: LaunchArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let entries = NonZeroUsize::new(args.entries)
        .ok_or_else(|| anyhow::anyhow!("--entries must be at least 1"))?;
    let bytes = args.bytes;
    let mut t = Topology::new("cache");
    let node = t.node("cache");
    let shards = t.pool(node, "cache", args.shards.max(1), move |_| {
        CacheShard::new(entries, bytes)
    });
    let client = CacheClient::from_pool(&shards);
    t.add(node, "resp", RespServer::new(&args.resp, client).factory());
    println!(
        "cache_server: RESP on {} — try: redis-cli -p {} ping",
        args.resp,
        args.resp.rsplit(':').next().unwrap_or("6380")
    );
    launch(t, args.launch).await?;
    Ok(())
}
