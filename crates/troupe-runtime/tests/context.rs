//! The actor's context: timers and tasks tied to one instance, and actors with no messages.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use common::{T, eventually};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use troupe_runtime::{
    Actor, ActorError, Addr, ChildOptions, Ctx, Mesh, Message, NoMessages, Node, NodeConfig, Reply,
    SupervisorSpec,
};

#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "test.Ticker")]
enum TickerMsg {
    /// A tick from the interval started by instance number `0`.
    Tick(u32),
    /// The one-shot timer fired.
    Later,
    /// Crash this instance.
    Crash,
    /// Start a task that fails.
    FailTask,
    /// (ticks handled from this instance's own ticker, from older ones, and `Later`s seen)
    Seen(Reply<(u64, u64, u64)>),
}

#[derive(Clone, Default)]
struct Shared {
    starts: Arc<AtomicU32>,
    /// set when a task of an instance is dropped (cancelled)
    task_dropped: Arc<Mutex<Vec<u32>>>,
}

struct Ticker {
    shared: Shared,
    instance: u32,
    own: u64,
    stale: u64,
    later: u64,
}

struct DropFlag(Arc<Mutex<Vec<u32>>>, u32);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.lock().push(self.1);
    }
}

impl Actor for Ticker {
    type Msg = TickerMsg;

    async fn started(&mut self, ctx: &mut Ctx<TickerMsg>) -> Result<(), ActorError> {
        self.instance = self.shared.starts.fetch_add(1, Ordering::SeqCst) + 1;
        let instance = self.instance;
        ctx.send_interval(Duration::from_millis(5), move || TickerMsg::Tick(instance));
        ctx.send_after(Duration::from_millis(30), TickerMsg::Later);
        let flag = DropFlag(self.shared.task_dropped.clone(), instance);
        ctx.spawn(async move {
            let _flag = flag;
            std::future::pending::<()>().await;
            Ok(())
        });
        Ok(())
    }

    async fn handle(&mut self, msg: TickerMsg, ctx: &mut Ctx<TickerMsg>) -> Result<(), ActorError> {
        match msg {
            TickerMsg::Tick(from) if from == self.instance => self.own += 1,
            TickerMsg::Tick(_) => self.stale += 1,
            TickerMsg::Later => self.later += 1,
            TickerMsg::Crash => panic!("asked to crash"),
            TickerMsg::FailTask => {
                ctx.spawn(async { Err("the task gave up".into()) });
            }
            TickerMsg::Seen(reply) => {
                reply.send((self.own, self.stale, self.later));
            }
        }
        Ok(())
    }
}

async fn ticker() -> (Node, Addr<TickerMsg>, Shared) {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let shared = Shared::default();
    let s = shared.clone();
    let (spec, addr) = node
        .child("ticker", ChildOptions::permanent(), move || Ticker {
            shared: s.clone(),
            instance: 0,
            own: 0,
            stale: 0,
            later: 0,
        })
        .unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![spec])
        .await
        .unwrap();
    (node, addr, shared)
}

#[tokio::test]
async fn timers_and_tasks_end_with_their_instance_so_a_restart_never_duplicates_them() {
    let (_node, addr, shared) = ticker().await;
    for crash in 1..=3u32 {
        eventually(
            "ticks and the one-shot timer",
            T,
            async || matches!(addr.call(TickerMsg::Seen, T).await, Ok((own, _, 1)) if own >= 3),
        )
        .await;
        addr.cast(TickerMsg::Crash).unwrap();
        eventually("the instance's task dropped", T, async || {
            shared.task_dropped.lock().contains(&crash)
        })
        .await;
    }
    // the fourth instance: once its own ticker runs, no older ticker's tick ever arrives
    eventually(
        "the new instance ticks",
        T,
        async || matches!(addr.call(TickerMsg::Seen, T).await, Ok((own, _, _)) if own >= 3),
    )
    .await;
    let (_, stale_before, _) = addr.call(TickerMsg::Seen, T).await.unwrap();
    eventually(
        "twenty more ticks",
        T,
        async || matches!(addr.call(TickerMsg::Seen, T).await, Ok((own, _, _)) if own >= 23),
    )
    .await;
    let (_, stale_after, later) = addr.call(TickerMsg::Seen, T).await.unwrap();
    assert_eq!(
        stale_after, stale_before,
        "an old instance's ticker is still running"
    );
    assert_eq!(later, 1, "the one-shot timer fired once for this instance");
    assert_eq!(shared.starts.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_failing_task_fails_its_actor_which_is_restarted() {
    let (_node, addr, shared) = ticker().await;
    addr.cast(TickerMsg::FailTask).unwrap();
    eventually("restarted after its task failed", T, async || {
        shared.starts.load(Ordering::SeqCst) == 2
    })
    .await;
    eventually("the first instance's other task cancelled", T, async || {
        shared.task_dropped.lock().contains(&1)
    })
    .await;
}

/// An actor with no messages of its own: it works from its context alone.
struct Heartbeat(Arc<AtomicU64>, Arc<Mutex<Vec<u32>>>);

impl Actor for Heartbeat {
    type Msg = NoMessages;

    async fn started(&mut self, ctx: &mut Ctx<NoMessages>) -> Result<(), ActorError> {
        let beats = self.0.clone();
        let flag = DropFlag(self.1.clone(), 1);
        ctx.spawn(async move {
            let _flag = flag;
            loop {
                beats.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Ok(())
    }
}

#[tokio::test]
async fn an_actor_with_no_messages_needs_no_message_type_of_its_own() {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let beats = Arc::new(AtomicU64::new(0));
    let ended = Arc::new(Mutex::new(Vec::new()));
    let (b, e) = (beats.clone(), ended.clone());
    let (spec, _addr) = node
        .child("heartbeat", ChildOptions::permanent(), move || {
            Heartbeat(b.clone(), e.clone())
        })
        .unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![spec])
        .await
        .unwrap();
    eventually("beats", T, async || beats.load(Ordering::SeqCst) >= 3).await;
    assert!(ended.lock().is_empty());
    node.shutdown().await;
    eventually("the task ended with its actor", T, async || {
        ended.lock().contains(&1)
    })
    .await;
}
