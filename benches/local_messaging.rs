//! Local messaging: the same workload through a troupe [`Addr`] and through a raw ractor
//! [`ActorRef`], in one criterion run.
//!
//! - `cast`: 10,000 casts of a small message to a counter actor, then one call that waits until
//!   all of them were handled (so it measures handled messages, not just enqueued ones).
//! - `call`: the round trip of one call. `ractor` is `ractor::call!` (no timeout, the cheapest
//!   ractor call); `ractor_timeout` passes a timeout as troupe's `Addr::call` always does.
//!
//! Both counters do the same work (add to a `u64`). The sending loop runs as a task on the same
//! two-worker tokio runtime as the actors, as an actor sending to another actor would.
//!
//! Run with `cargo bench --bench local_messaging`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ractor::{ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;
use troupe_runtime::{
    Actor, ActorError, Addr, ChildOptions, Ctx, Mesh, Message, Node, NodeConfig, Reply,
    SupervisorSpec,
};

/// Casts per measured unit of the `cast` group.
const BURST: u64 = 10_000;
/// Generous: a call in these benches never comes close.
const TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- troupe counter

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

// ---------------------------------------------------------------- ractor counter

enum RactorCounterMsg {
    Add(u64),
    Get(RpcReplyPort<u64>),
}

struct RactorCounter;

impl ractor::Actor for RactorCounter {
    type Msg = RactorCounterMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<RactorCounterMsg>,
        _args: (),
    ) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _myself: ActorRef<RactorCounterMsg>,
        msg: RactorCounterMsg,
        total: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RactorCounterMsg::Add(n) => *total += n,
            RactorCounterMsg::Get(port) => {
                let _ = port.send(*total);
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- harness

/// Runs `body(iters)` as a task on `rt` (so the sender is a runtime worker, like an actor) and
/// returns the time it measured.
fn run_on<F, Fut>(rt: &Runtime, iters: u64, body: F) -> Duration
where
    F: FnOnce(u64) -> Fut,
    Fut: Future<Output = Duration> + Send + 'static,
{
    rt.block_on(rt.spawn(body(iters)))
        .expect("the benchmark task panicked")
}

async fn troupe_bursts(addr: Addr<CounterMsg>, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        for _ in 0..BURST {
            addr.cast(CounterMsg::Add(black_box(1)))
                .expect("troupe cast failed");
        }
        let total = addr
            .call(CounterMsg::Get, TIMEOUT)
            .await
            .expect("troupe sync call failed");
        black_box(total);
    }
    start.elapsed()
}

async fn ractor_bursts(actor: ActorRef<RactorCounterMsg>, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        for _ in 0..BURST {
            actor
                .cast(RactorCounterMsg::Add(black_box(1)))
                .expect("ractor cast failed");
        }
        let total = ractor::call!(actor, RactorCounterMsg::Get).expect("ractor sync call failed");
        black_box(total);
    }
    start.elapsed()
}

async fn troupe_calls(addr: Addr<CounterMsg>, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let total = addr
            .call(CounterMsg::Get, TIMEOUT)
            .await
            .expect("troupe call failed");
        black_box(total);
    }
    start.elapsed()
}

async fn ractor_calls(actor: ActorRef<RactorCounterMsg>, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let total = ractor::call!(actor, RactorCounterMsg::Get).expect("ractor call failed");
        black_box(total);
    }
    start.elapsed()
}

async fn ractor_calls_with_timeout(actor: ActorRef<RactorCounterMsg>, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let reply = actor
            .call(RactorCounterMsg::Get, Some(TIMEOUT))
            .await
            .expect("ractor call failed");
        let ractor::rpc::CallResult::Success(total) = reply else {
            panic!("ractor call did not succeed");
        };
        black_box(total);
    }
    start.elapsed()
}

fn local_messaging(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot build the tokio runtime");

    let node = Node::new("bench", &Mesh::new(), NodeConfig::default()).expect("node");
    let (spec, addr) = node
        .child("counter", ChildOptions::permanent(), Counter::default)
        .expect("register the troupe counter");
    rt.block_on(node.start(SupervisorSpec::one_for_one(), vec![spec]))
        .expect("start the troupe node");
    let (actor, ractor_join) = rt
        .block_on(ractor::Actor::spawn(None, RactorCounter, ()))
        .expect("spawn the ractor counter");

    let mut group = c.benchmark_group("cast");
    group.throughput(Throughput::Elements(BURST));
    group.bench_function("troupe", |b| {
        b.iter_custom(|iters| run_on(&rt, iters, |n| troupe_bursts(addr.clone(), n)));
    });
    group.bench_function("ractor", |b| {
        b.iter_custom(|iters| run_on(&rt, iters, |n| ractor_bursts(actor.clone(), n)));
    });
    group.finish();

    let mut group = c.benchmark_group("call");
    group.bench_function("troupe", |b| {
        b.iter_custom(|iters| run_on(&rt, iters, |n| troupe_calls(addr.clone(), n)));
    });
    group.bench_function("ractor", |b| {
        b.iter_custom(|iters| run_on(&rt, iters, |n| ractor_calls(actor.clone(), n)));
    });
    group.bench_function("ractor_timeout", |b| {
        b.iter_custom(|iters| run_on(&rt, iters, |n| ractor_calls_with_timeout(actor.clone(), n)));
    });
    group.finish();

    actor.stop(None);
    rt.block_on(async {
        let _ = ractor_join.await;
        node.shutdown().await;
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    targets = local_messaging
}
criterion_main!(benches);
