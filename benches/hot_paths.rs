//! Hot paths: the per-message and per-request work of troupe's parts, one criterion group each.
//!
//! - `frame_codec`: [`FrameCodec::encode`] of one cast [`Envelope`] frame into a fresh
//!   [`BytesMut`] (as the runtime encodes each outgoing frame), and [`FrameCodec::decode`] of
//!   that frame out of a receive buffer (as the lane reader does), with a 64 B and a 4 KiB
//!   payload. The payload is opaque bytes, so message serialization is not included. Filling
//!   the receive buffer and dropping the decoded frame are not timed. Throughput is the encoded
//!   frame's bytes, length prefix included.
//! - `handle_dispatch`: [`Addr::cast`] and [`Addr::call`] to a counter actor on one in-process
//!   node, as in `benches/local_messaging.rs`. `cast_1000` is 1,000 casts then one call that
//!   returns once all of them were handled (throughput per cast); `call` is one round trip.
//! - `lru`: troupe-cache's [`Store`] holding 10,000 entries (its entry bound): `get_hit` of a
//!   present key, `get_miss` of an absent key, `set_evict` of a new key that evicts the least
//!   recently used entry. Keys and values are built up front (a set clones two `Bytes`).
//! - `balancer_pick`: troupe-balancer's [`Balancer`] over 16 members, one `pick` per iteration
//!   per strategy, plus one `finished` of the oldest of 32 picks kept in flight (every pick must
//!   be finished once, and least-outstanding and power-of-two-choices then see real counts).
//!   Consistent hash picks with a key cycling over 1,024 keys.
//! - `log_append`: troupe-db's replication core. `leader_propose` is [`Leader::propose`] of a
//!   `Put` with a 100-byte value; `follower_append_64` is [`Follower::handle_append`] of an
//!   `AppendEntries` of 64 such puts built by a [`Leader`], which also applies the previous
//!   batch (its commit index lags one batch, as in steady-state replication). Committing and
//!   compacting the logs so they stay bounded happens outside the timed sections.
//!
//! Every group uses criterion's default sample size, 1 s of warm-up and 3 s of measurement.
//!
//! Run with `cargo bench --bench hot_paths`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;
use troupe_balancer::core::{Balancer, BreakerConfig, MemberId, Outcome, Pick, Strategy};
use troupe_cache::Store;
use troupe_db::core::{
    AckMode, AppendEntries, AppendReply, Follower, Leader, Limits, Log, Op, ReplicaId, WriteId,
};
use troupe_runtime::{
    Actor, ActorError, Addr, ChildOptions, Ctx, Mesh, Message, Node, NodeConfig, Reply,
    SupervisorSpec,
};
use troupe_wire::{ActorPath, Envelope, EnvelopeKind, Frame, FrameCodec, MessageType};

/// A group with this file's time bounds.
fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group
}

// ---------------------------------------------------------------- frame_codec

/// A cast envelope shaped as the runtime sends one (no sender, no trace), with `len` payload
/// bytes.
fn cast_frame(len: usize) -> Frame {
    Frame::Envelope(Envelope {
        kind: EnvelopeKind::Cast,
        target: ActorPath::new("node-b", "counter"),
        sender: None,
        msg_type: MessageType::new("bench.Counter", 1),
        trace: None,
        payload: Bytes::from(vec![0xa5; len]),
    })
}

fn frame_codec(c: &mut Criterion) {
    let codec = FrameCodec::default();
    let mut group = group(c, "frame_codec");
    for (label, len) in [("64B", 64), ("4KiB", 4096)] {
        let frame = cast_frame(len);
        let mut encoded = BytesMut::new();
        codec
            .encode(&frame, &mut encoded)
            .expect("the frame is within the limit");
        assert_eq!(encoded.len(), frame.encoded_len());
        let encoded = encoded.freeze();
        group.throughput(Throughput::Bytes(encoded.len() as u64));

        group.bench_function(format!("encode/{label}"), |b| {
            b.iter(|| {
                let mut buf = BytesMut::new();
                codec
                    .encode(black_box(&frame), &mut buf)
                    .expect("the frame is within the limit");
                buf
            });
        });
        group.bench_function(format!("decode/{label}"), |b| {
            b.iter_batched(
                || BytesMut::from(&encoded[..]),
                |mut buf| {
                    codec
                        .decode(black_box(&mut buf))
                        .expect("the frame is well formed")
                        .expect("the buffer holds one whole frame")
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

// ---------------------------------------------------------------- handle_dispatch

/// Casts per measured unit of `handle_dispatch/cast_1000`.
const CASTS: u64 = 1_000;
/// Generous: a call in this bench never comes close.
const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Serialize, Deserialize)]
enum CounterMsg {
    Add(u64),
    Get(Reply<u64>),
}

impl Message for CounterMsg {
    const NAME: &'static str = "bench.Counter";
}

#[derive(Default)]
struct Counter {
    total: u64,
}

impl Actor for Counter {
    type Msg = CounterMsg;

    async fn handle(
        &mut self,
        msg: CounterMsg,
        _ctx: &mut Ctx<CounterMsg>,
    ) -> Result<(), ActorError> {
        match msg {
            CounterMsg::Add(n) => self.total += n,
            CounterMsg::Get(reply) => {
                reply.send(self.total);
            }
        }
        Ok(())
    }
}

/// Runs `body(iters)` as a task on `rt` (the sender is a runtime worker, like an actor) and
/// returns the time it measured.
fn run_on<F, Fut>(rt: &Runtime, iters: u64, body: F) -> Duration
where
    F: FnOnce(u64) -> Fut,
    Fut: Future<Output = Duration> + Send + 'static,
{
    rt.block_on(rt.spawn(body(iters)))
        .expect("the benchmark task panicked")
}

async fn cast_bursts(addr: Addr<CounterMsg>, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        for _ in 0..CASTS {
            addr.cast(CounterMsg::Add(black_box(1)))
                .expect("cast failed");
        }
        let total = addr
            .call(CounterMsg::Get, TIMEOUT)
            .await
            .expect("sync call failed");
        black_box(total);
    }
    start.elapsed()
}

async fn calls(addr: Addr<CounterMsg>, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let total = addr
            .call(CounterMsg::Get, TIMEOUT)
            .await
            .expect("call failed");
        black_box(total);
    }
    start.elapsed()
}

fn handle_dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot build the tokio runtime");
    let node = Node::new("bench", &Mesh::new(), NodeConfig::default()).expect("node");
    let (spec, addr) = node
        .child("counter", ChildOptions::permanent(), Counter::default)
        .expect("register the counter");
    rt.block_on(node.start(SupervisorSpec::one_for_one(), vec![spec]))
        .expect("start the node");

    let mut group = group(c, "handle_dispatch");
    group.throughput(Throughput::Elements(CASTS));
    group.bench_function("cast_1000", |b| {
        b.iter_custom(|iters| run_on(&rt, iters, |n| cast_bursts(addr.clone(), n)));
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("call", |b| {
        b.iter_custom(|iters| run_on(&rt, iters, |n| calls(addr.clone(), n)));
    });
    group.finish();

    rt.block_on(node.shutdown());
}

// ---------------------------------------------------------------- lru

/// Entries the store holds (its entry bound) in the `lru` group.
const LRU_CAPACITY: usize = 10_000;

fn keys(prefix: &str, count: usize) -> Vec<Bytes> {
    (0..count)
        .map(|i| Bytes::from(format!("{prefix}:{i:08}")))
        .collect()
}

fn lru(c: &mut Criterion) {
    let now = Instant::now();
    let value = Bytes::from(vec![0x5a; 100]);
    // Twice the capacity: setting them in turn, each key was evicted before it comes round again.
    let present = keys("key", 2 * LRU_CAPACITY);
    let absent = keys("miss", LRU_CAPACITY);
    let capacity = NonZeroUsize::new(LRU_CAPACITY).expect("non-zero capacity");
    let full_store = || {
        let mut store = Store::new(capacity, usize::MAX);
        for key in &present[..LRU_CAPACITY] {
            store
                .set(key.clone(), value.clone(), None, now)
                .expect("entries are small");
        }
        assert_eq!(store.len(), LRU_CAPACITY);
        store
    };

    let mut group = group(c, "lru");
    group.throughput(Throughput::Elements(1));
    group.bench_function("get_hit", |b| {
        let mut store = full_store();
        let mut i = 0;
        b.iter(|| {
            let key = &present[i % LRU_CAPACITY];
            i += 1;
            black_box(store.get(black_box(key), now).is_some())
        });
        assert_eq!(store.misses(), 0);
    });
    group.bench_function("get_miss", |b| {
        let mut store = full_store();
        let mut i = 0;
        b.iter(|| {
            let key = &absent[i % absent.len()];
            i += 1;
            black_box(store.get(black_box(key), now).is_some())
        });
        assert_eq!(store.hits(), 0);
    });
    group.bench_function("set_evict", |b| {
        let mut store = full_store();
        // continues after the keys `full_store` set
        let mut i = LRU_CAPACITY;
        b.iter(|| {
            let key = present[i % present.len()].clone();
            i += 1;
            store
                .set(black_box(key), value.clone(), None, now)
                .expect("entries are small")
        });
        assert_eq!(store.len(), LRU_CAPACITY);
    });
    group.finish();
}

// ---------------------------------------------------------------- balancer_pick

/// Members of the pool in the `balancer_pick` group.
const MEMBERS: u64 = 16;
/// Picks kept outstanding: each iteration finishes the oldest once this many are in flight.
const IN_FLIGHT: usize = 32;

/// Picks one member and finishes the oldest pick beyond [`IN_FLIGHT`].
fn pick_one(
    balancer: &mut Balancer,
    in_flight: &mut VecDeque<Pick>,
    key: Option<&[u8]>,
    now: Instant,
    rng: &mut SmallRng,
) {
    let pick = balancer
        .pick(black_box(key), now, rng)
        .expect("every member is available");
    in_flight.push_back(pick);
    if in_flight.len() > IN_FLIGHT
        && let Some(oldest) = in_flight.pop_front()
    {
        black_box(balancer.finished(oldest, Outcome::Success, now));
    }
}

fn balancer_pick(c: &mut Criterion) {
    let now = Instant::now();
    let keys = keys("user", 1024);
    let strategies = [
        ("round_robin", Strategy::RoundRobin),
        ("smooth_weighted", Strategy::WeightedRoundRobin),
        ("least_outstanding", Strategy::LeastOutstanding),
        ("p2c", Strategy::PowerOfTwoChoices),
        ("consistent_hash", Strategy::consistent_hash()),
    ];

    let mut group = group(c, "balancer_pick");
    group.throughput(Throughput::Elements(1));
    for (name, strategy) in strategies {
        group.bench_function(name, |b| {
            let mut balancer = Balancer::new(strategy, BreakerConfig::default());
            for id in 1..=MEMBERS {
                // weights 1 to 4; only the weighted strategies look at them
                let weight = u32::try_from(id % 4 + 1).expect("small weight");
                balancer.add(MemberId(id), weight, Some(format!("node-{id}")));
            }
            let mut rng = SmallRng::seed_from_u64(7);
            let mut in_flight = VecDeque::with_capacity(IN_FLIGHT + 1);
            let hashed = matches!(strategy, Strategy::ConsistentHash { .. });
            let mut i = 0;
            b.iter(|| {
                let key = hashed.then(|| &keys[i % keys.len()][..]);
                i += 1;
                pick_one(&mut balancer, &mut in_flight, key, now, &mut rng);
            });
            assert_eq!(balancer.available() as u64, MEMBERS);
        });
    }
    group.finish();
}

// ---------------------------------------------------------------- log_append

/// Entries per `AppendEntries` in `log_append/follower_append_64`.
const BATCH: usize = 64;
/// Operations timed between two untimed commit-and-compact steps.
const CHUNK: u64 = 4096;
/// Distinct keys written, so the followers' state machine stays bounded.
const DB_KEYS: usize = 1024;

/// Builds `Put` operations with 100-byte values over [`DB_KEYS`] keys.
struct Puts {
    keys: Vec<Bytes>,
    value: Bytes,
    next: u64,
}

impl Puts {
    fn new() -> Self {
        Self {
            keys: keys("db", DB_KEYS),
            value: Bytes::from(vec![0x3c; 100]),
            next: 0,
        }
    }

    fn next(&mut self) -> (WriteId, Op) {
        let n = self.next;
        self.next += 1;
        let key = self.keys[usize::try_from(n).expect("fits") % DB_KEYS].clone();
        let op = Op::Put {
            key,
            value: self.value.clone(),
        };
        (WriteId(n), op)
    }
}

fn leader_propose(iters: u64) -> Duration {
    let mut leader = Leader::new(
        1,
        Log::new(),
        0,
        std::iter::empty::<ReplicaId>(),
        AckMode::LeaderOnly,
        Limits::default(),
    );
    let mut puts = Puts::new();
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = (iters - done).min(CHUNK);
        let ops: Vec<_> = (0..n).map(|_| puts.next()).collect();
        let start = Instant::now();
        for (write, op) in ops {
            black_box(leader.propose(write, op).expect("within the limits"));
        }
        elapsed += start.elapsed();
        // untimed: commit everything and drop it from the log
        black_box(leader.on_local_durable(leader.log().last_index()));
        leader.compact(leader.commit_index());
        done += n;
    }
    elapsed
}

/// A leader and one follower replicating a stream of puts.
struct Replication {
    leader: Leader,
    follower: Follower,
    id: ReplicaId,
    puts: Puts,
}

impl Replication {
    fn new() -> Self {
        let id = ReplicaId(1);
        let mut leader = Leader::new(1, Log::new(), 0, [id], AckMode::Majority, Limits::default());
        let mut follower = Follower::new(Limits::default());
        // the leader's no-op, so the batches below are pure puts
        let first = leader.append_request(id).expect("a known follower");
        let response = follower.handle_append(first).expect("well formed");
        assert!(matches!(response.reply, AppendReply::Success { .. }));
        let last = leader.log().last_index();
        leader.on_local_durable(last);
        leader.on_ack(id, last).expect("a known follower");
        Self {
            leader,
            follower,
            id,
            puts: Puts::new(),
        }
    }

    /// The next `count` batches of [`BATCH`] puts the leader sends its follower; the leader
    /// counts each as durable everywhere, so each batch commits the one before it.
    fn batches(&mut self, count: u64) -> Vec<AppendEntries> {
        (0..count)
            .map(|_| {
                for _ in 0..BATCH {
                    let (write, op) = self.puts.next();
                    self.leader.propose(write, op).expect("within the limits");
                }
                let last = self.leader.log().last_index();
                let req = self
                    .leader
                    .append_request(self.id)
                    .expect("the follower is not behind the log's base");
                assert_eq!(req.entries.len(), BATCH);
                self.leader.on_local_durable(last);
                self.leader.on_ack(self.id, last).expect("a known follower");
                req
            })
            .collect()
    }

    fn compact(&mut self) {
        self.leader.compact(self.leader.commit_index());
        self.follower.compact(self.follower.applied_index());
    }
}

fn follower_append(iters: u64) -> Duration {
    let mut replication = Replication::new();
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = (iters - done).min(CHUNK / BATCH as u64);
        let batches = replication.batches(n);
        let start = Instant::now();
        for req in batches {
            let response = replication
                .follower
                .handle_append(req)
                .expect("well formed");
            assert!(matches!(
                black_box(response).reply,
                AppendReply::Success { .. }
            ));
        }
        elapsed += start.elapsed();
        // each batch committed the one before it, and the follower applied up to there
        assert_eq!(
            replication.follower.applied_index() + BATCH as u64,
            replication.leader.commit_index()
        );
        replication.compact();
        done += n;
    }
    elapsed
}

fn log_append(c: &mut Criterion) {
    let mut group = group(c, "log_append");
    group.throughput(Throughput::Elements(1));
    group.bench_function("leader_propose", |b| b.iter_custom(leader_propose));
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("follower_append_64", |b| b.iter_custom(follower_append));
    group.finish();
}

criterion_group!(
    benches,
    frame_codec,
    handle_dispatch,
    lru,
    balancer_pick,
    log_append
);
criterion_main!(benches);
