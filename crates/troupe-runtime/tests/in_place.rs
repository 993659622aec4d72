//! Answers in place (`Ctx::answer_in_place`): asks from the actor's own process run the answer
//! on the caller's task, without the mailbox; requests it hands back, and asks from other nodes
//! over real QUIC, go through the mailbox; a panic fails one call, not the actor.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use troupe_runtime::{
    Actor, ActorError, Addr, Ask, CallError, ChildOptions, Ctx, InPlace, Mesh, Node, NodeConfig,
    Reach, SupervisorSpec,
};
use troupe_testkit::{Cluster, fully_connected, within};

const T: Duration = Duration::from_secs(5);

#[derive(Debug, serde::Serialize, serde::Deserialize, troupe_runtime::Request)]
#[request(name = "test.Twice", response = u64, crate = "troupe_runtime")]
struct Twice(u64);

/// Answers `n` below 1,000 in place with `2n`; panics in place on 666; hands every other request
/// to its mailbox, whose handler answers `2n + 1` (so a test tells the paths apart), waiting
/// for `release` first on 2,000.
struct Twicer {
    handled: Arc<AtomicUsize>,
    release: Arc<Notify>,
}

impl Actor for Twicer {
    type Msg = Ask<Twice>;

    async fn started(&mut self, ctx: &mut Ctx<Ask<Twice>>) -> Result<(), ActorError> {
        assert!(ctx.answer_in_place(|Twice(n)| match n {
            666 => panic!("666 is refused in place"),
            n if n < 1_000 => Ok(2 * n),
            n => Err(Twice(n)),
        }));
        Ok(())
    }

    async fn handle(&mut self, ask: Ask<Twice>, _: &mut Ctx<Ask<Twice>>) -> Result<(), ActorError> {
        self.handled.fetch_add(1, Ordering::SeqCst);
        if ask.request.0 == 2_000 {
            self.release.notified().await;
        }
        ask.reply.send(2 * ask.request.0 + 1);
        Ok(())
    }
}

struct Running {
    node: Node,
    twicer: Addr<Ask<Twice>>,
    handled: Arc<AtomicUsize>,
    release: Arc<Notify>,
}

async fn running(name: &str) -> Running {
    let node = Node::new(name, &Mesh::new(), NodeConfig::default()).unwrap();
    let handled = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let (h, r) = (handled.clone(), release.clone());
    let (spec, twicer) = node
        .child(
            "twicer",
            ChildOptions::permanent().reachable_from(Reach::cluster()),
            move || Twicer {
                handled: h.clone(),
                release: r.clone(),
            },
        )
        .unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![spec])
        .await
        .unwrap();
    // the instance shares its answer from its `started` on; until then asks are messages
    troupe_testkit::eventually("the answer in place shared", T, async || {
        twicer.shared::<InPlace<Twice>>().is_some()
    })
    .await;
    Running {
        node,
        twicer,
        handled,
        release,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asks_run_in_place_and_what_is_handed_back_goes_through_the_mailbox() {
    let r = running("a").await;
    assert_eq!(r.twicer.ask(Twice(21), T).await.unwrap(), 42);
    assert_eq!(
        r.handled.load(Ordering::SeqCst),
        0,
        "no message for an answer in place"
    );
    assert_eq!(r.twicer.ask(Twice(5_000), T).await.unwrap(), 10_001);
    assert_eq!(
        r.handled.load(Ordering::SeqCst),
        1,
        "a request handed back is a message"
    );

    // while the actor is busy with a message, answers in place go on
    let busy = tokio::spawn({
        let twicer = r.twicer.clone();
        async move { twicer.ask(Twice(2_000), T).await }
    });
    troupe_testkit::eventually("the actor busy", T, async || {
        r.handled.load(Ordering::SeqCst) == 2
    })
    .await;
    let answered = within("an answer in place while the actor is busy", T, async {
        r.twicer.ask(Twice(7), T).await
    })
    .await;
    assert_eq!(answered.unwrap(), 14);
    assert!(
        !busy.is_finished(),
        "the message still waits for its release"
    );
    r.release.notify_one();
    assert_eq!(busy.await.unwrap().unwrap(), 4_001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_place_fails_that_call_and_not_the_actor() {
    let r = running("a").await;
    let err = r.twicer.ask(Twice(666), T).await.unwrap_err();
    match err {
        CallError::ActorFailed { target, reason } => {
            assert_eq!(target, "a/twicer");
            assert!(reason.contains("666 is refused in place"), "{reason}");
        }
        other => panic!("expected ActorFailed, got {other:?}"),
    }
    // the same instance answers on, in place and through its mailbox
    assert_eq!(r.twicer.ask(Twice(1), T).await.unwrap(), 2);
    assert_eq!(r.twicer.ask(Twice(3_000), T).await.unwrap(), 6_001);
    assert_eq!(r.handled.load(Ordering::SeqCst), 1);
    drop(r.node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asks_from_another_node_go_through_the_mailbox() {
    let cluster = Cluster::new("in-place");
    let a = running("a").await;
    let b = running("b").await;
    let a_net = cluster.join(&a.node, &[]).await;
    let b_net = cluster.join(&b.node, &[a_net.local_addr()]).await;
    fully_connected(&[&a_net, &b_net], T).await;

    let on_b = a.node.addr::<Ask<Twice>>("b", "twicer");
    assert_eq!(on_b.ask(Twice(21), T).await.unwrap(), 43, "b's handler");
    assert_eq!(b.handled.load(Ordering::SeqCst), 1);
    // b's own callers still answer in place
    assert_eq!(b.twicer.ask(Twice(21), T).await.unwrap(), 42);
    assert_eq!(b.handled.load(Ordering::SeqCst), 1);
    assert_eq!(a.handled.load(Ordering::SeqCst), 0);
}
