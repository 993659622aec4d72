//! A read-through cache under faults drawn from a seed (`troupe-sim`): its two shards on host
//! `cache`, the store behind it (a versioned map answering `BackingMsg`, each read 0-49 ms
//! after it took its copy, so fills race writes) on host `store`, and
//! two clients on host `app` writing and reading four keys through the cache. Faults:
//! partitions both ways and one way, lossy links, latency spikes that reorder, paused hosts,
//! the cache's host crashing or losing power and restarting empty, and panics of a shard or
//! of the store's actor (whose map outlives it, as a database's file would). All end by 8 s.
//!
//! Checked for each seed: each key's history — every write, and every read that was answered,
//! during the faults and after — is linearizable (`troupe_sim::check_register`): in
//! particular, no read returns a value older than the last acknowledged write, which is what
//! the cache's invalidation fences and versioned fills promise (`docs/cache.md`). A write whose
//! answer was lost may take effect or not. Once the faults are over, a read of each key closes
//! its history.
//!
//! `TROUPE_SIM_SEEDS` (e.g. `1-500`) picks the seeds; default 1-3. `scripts/sim.sh --part cache`
//! runs many.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use troupe_cache::{BackingMsg, CacheClient, CacheSpec, Versioned};
use troupe_runtime::{
    Actor, ActorError, Addr, ChildOptions, Ctx, Mesh, Node, NodeConfig, Reach, SupervisorSpec,
};
use troupe_sim::{
    Operation, Plan, RegisterOp, RunDigest, Schedule, Trace, addr, bind, check_register,
    run_with_faults, simulation,
};

const HOSTS: [&str; 3] = ["store", "cache", "app"];
/// When faults may start and by when every one has ended
const FAULTS: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(8));
const PEER_DOWN: Duration = Duration::from_secs(1);
const SHARDS: usize = 2;
const KEYS: usize = 4;
const CLIENTS: usize = 2;

/// The store's state: a map and one version bumped by every write. Shared by every instance
/// of the store's actor, so a panic loses nothing written (as a database's file would not).
type Map = Arc<Mutex<(HashMap<Bytes, Bytes>, u64)>>;

struct Store(Map);

impl Actor for Store {
    type Msg = BackingMsg;

    async fn handle(
        &mut self,
        msg: BackingMsg,
        ctx: &mut Ctx<BackingMsg>,
    ) -> Result<(), ActorError> {
        let mut map = self.0.lock().map_err(|_| ActorError::from("poisoned"))?;
        match msg {
            BackingMsg::Get { key, reply } => {
                let answer = Versioned {
                    value: map.0.get(&key).cloned(),
                    version: map.1,
                };
                // A read is answered 0-49 ms after it is taken (a slow disk, a busy store),
                // without holding up later requests: the fill it leads to races the writes
                // behind it, the race the cache's fences are there for.
                let delay = Duration::from_millis(map.1.wrapping_mul(37) % 50);
                ctx.spawn(async move {
                    tokio::time::sleep(delay).await;
                    reply.send(answer);
                    Ok(())
                });
            }
            BackingMsg::Put { key, value, reply } => {
                map.1 += 1;
                match value {
                    Some(value) => map.0.insert(key, value),
                    None => map.0.remove(&key),
                };
                reply.send(map.1);
            }
        }
        Ok(())
    }
}

fn spec(store: Addr<BackingMsg>) -> CacheSpec {
    CacheSpec::lru(1_000)
        .shards(SHARDS)
        .read_through(store)
        .backing_timeout(Duration::from_millis(500))
        .reachable_from(Reach::cluster())
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

fn text(value: Option<&Bytes>) -> Option<String> {
    value.map(|v| String::from_utf8_lossy(v).into_owned())
}

/// splitmix64's finalizer: a well-mixed number from `x`
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One client's operations until the faults are over, recorded per key
async fn client(
    seed: u64,
    id: usize,
    cache: CacheClient,
    history: Arc<Mutex<BTreeMap<String, Vec<Operation>>>>,
    trace: Trace,
) -> (u64, u64) {
    let (mut acked, mut unknown) = (0, 0);
    let start = tokio::time::Instant::now();
    let mut i = 0usize;
    while start.elapsed() < FAULTS.1 + Duration::from_secs(1) {
        // a read or a write of one of the keys, drawn from the seed: the two clients' reads and
        // writes of a key overlap in every order
        let draw = mix(seed ^ ((id as u64) << 32) ^ i as u64);
        let write = draw.is_multiple_of(2);
        let key = format!("k{}", (draw / 2) % KEYS as u64);
        let invoked = now();
        let op = if write {
            // unique values, so the checker can tell every write apart
            let value = format!("c{id}-{i}");
            let result = cache.set(key.clone(), value.clone()).await;
            let completed = result.is_ok().then(now);
            match result {
                Ok(()) => acked += 1,
                Err(err) => {
                    unknown += 1;
                    trace.record(format!("c{id} {key}: set {value}: {err}"));
                }
            }
            Some((completed, RegisterOp::Write(Some(value))))
        } else {
            // a read that got no answer says nothing
            match cache.get(key.clone()).await {
                Ok(value) => Some((Some(now()), RegisterOp::Read(text(value.as_ref())))),
                Err(_) => None,
            }
        };
        if let Some((completed, op)) = op {
            trace.record(format!("c{id} {key}: {op:?} -> {completed:?}"));
            if let Ok(mut history) = history.lock() {
                history.entry(key).or_default().push(Operation {
                    invoked,
                    completed,
                    op,
                });
            }
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    (acked, unknown)
}

fn run(seed: u64) -> RunDigest {
    // TROUPE_SIM_LOG=troupe_runtime=debug (say) prints log lines at simulated time
    let _log = troupe_sim::log::from_env();
    let ca = troupe_testkit::Cluster::new("sim-cache");
    let mut sim = simulation(seed, Duration::from_secs(60));
    let trace = Trace::new();
    let plan = Plan {
        hosts: &HOSTS,
        crashable: &["cache"],
        window: FAULTS,
        panics: &[
            ("cache", "cache.0"),
            ("cache", "cache.1"),
            ("store", "store"),
        ],
        episodes: 8,
    };
    let mut schedule = Schedule::draw(seed, &plan);
    let faults = schedule.faults().len();

    let map: Map = Arc::default();
    let store_config = ca.config("store", &[]).peer_down_timeout(PEER_DOWN);
    sim.host("store", move || {
        let (config, map) = (store_config.clone(), map.clone());
        async move {
            let node = Node::new("store", &Mesh::new(), NodeConfig::default())?;
            let (child, _) = node.child(
                "store",
                ChildOptions::permanent().reachable_from(Reach::cluster()),
                move || Store(map.clone()),
            )?;
            node.start(SupervisorSpec::one_for_one(), vec![child])
                .await?;
            let _net = bind(&node, config).await?;
            std::future::pending::<()>().await;
            Ok(())
        }
    });

    let cache_config = ca.config("cache", &[]).peer_down_timeout(PEER_DOWN);
    sim.host("cache", move || {
        let config = cache_config.clone();
        async move {
            let node = Node::new("cache", &Mesh::new(), NodeConfig::default())?;
            let (children, _) = spec(node.addr("store", "store")).children(&node, "cache")?;
            node.start(SupervisorSpec::one_for_one(), children).await?;
            let _net = bind(&node, config.seeds([addr("store")])).await?;
            std::future::pending::<()>().await;
            Ok(())
        }
    });

    let app_trace = trace.clone();
    let app_config = ca.config("app", &[]).peer_down_timeout(PEER_DOWN);
    sim.client("app", async move {
        let trace = app_trace;
        let (node, _net) =
            troupe_sim::start_node("app", app_config.seeds([addr("cache"), addr("store")])).await?;
        let shards = (0..SHARDS).map(|i| node.addr("cache", &CacheSpec::shard_name("cache", i)));
        let cache = spec(node.addr("store", "store"))
            .client(shards)
            .with_timeout(Duration::from_secs(1));

        let history: Arc<Mutex<BTreeMap<String, Vec<Operation>>>> = Arc::default();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|id| tokio::spawn(client(seed, id, cache.clone(), history.clone(), trace.clone())))
            .collect();
        let (mut acked, mut unknown) = (0, 0);
        for task in clients {
            let (a, u) = task.await?;
            acked += a;
            unknown += u;
        }

        // faults over: a read of each key closes its history
        let mut history = Arc::try_unwrap(history)
            .map_err(|_| "the clients still hold the history")?
            .into_inner()?;
        let mut reads = 0;
        for key in (0..KEYS).map(|k| format!("k{k}")) {
            let invoked = now();
            let mut value = None;
            for _ in 0..50 {
                if let Ok(read) = cache.get(key.clone()).await {
                    value = Some(read);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let value = value.ok_or_else(|| format!("{key} could not be read after the faults"))?;
            let ops = history.entry(key.clone()).or_default();
            ops.push(Operation {
                invoked,
                completed: Some(now()),
                op: RegisterOp::Read(text(value.as_ref())),
            });
            reads += ops
                .iter()
                .filter(|o| matches!(o.op, RegisterOp::Read(_)))
                .count();
            ops.sort_by_key(|o| o.invoked);
            if let Err(violation) = check_register(ops, None) {
                panic!("seed {seed}: key {key}: {violation}");
            }
        }
        println!(
            "SIM seed={seed} faults={faults} writes={} acked={acked} unknown={unknown} reads={reads} keys={KEYS}",
            acked + unknown
        );
        Ok(())
    });

    let replay =
        format!("TROUPE_SIM_SEEDS={seed} cargo test -p troupe-cache --test random_faults_sim");
    // the faults, and the writes whose outcome was lost
    run_with_faults(&mut sim, &mut schedule, &trace, seed, &replay, |e| {
        e.contains("-> Some(")
    })
}

#[test]
fn random_faults_never_serve_a_read_older_than_an_acknowledged_write() {
    for seed in troupe_sim::seeds_from_env(1..=3) {
        run(seed);
    }
}
