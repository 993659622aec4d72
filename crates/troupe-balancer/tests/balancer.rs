//! The balancer actor in front of real actors: strategies, ejection and re-admission,
//! members on a node that goes down, and a crash under supervision.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use troupe_balancer::core::{BreakerConfig, Strategy};
use troupe_balancer::{Balancer, Forwarder};
use troupe_runtime::remote::NodeNet;
use troupe_runtime::{
    Actor, ActorError, Addr, Ask, CallError, ChildOptions, Ctx, Mesh, Node, NodeConfig, Pool,
    Reach, Request, SupervisorSpec,
};
use troupe_testkit::{Cluster, eventually, within};

const T: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize, Deserialize, Request)]
#[request(name = "balancer-test.Work", response = usize)]
enum Work {
    /// Answered with the member's index (after `ms` milliseconds).
    Who { ms: u64 },
}

struct Member {
    index: usize,
    healthy: Arc<AtomicBool>,
}

impl Actor for Member {
    type Msg = Ask<Work>;
    async fn handle(
        &mut self,
        Ask {
            request: Work::Who { ms },
            reply,
        }: Ask<Work>,
        _: &mut Ctx<Ask<Work>>,
    ) -> Result<(), ActorError> {
        if !self.healthy.load(Ordering::SeqCst) {
            reply.fail(CallError::ActorFailed {
                target: format!("m{}", self.index),
                reason: "unhealthy".into(),
            });
            return Ok(());
        }
        let index = self.index;
        // answer from a task so a slow request does not hold up the member's mailbox
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            reply.send(index);
        });
        Ok(())
    }
}

struct Setup {
    node: Node,
    pool: Pool<Ask<Work>>,
    health: Vec<Arc<AtomicBool>>,
}

async fn setup(n: usize) -> Setup {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let health: Vec<_> = (0..n).map(|_| Arc::new(AtomicBool::new(true))).collect();
    let h = health.clone();
    let (spec, pool) = node
        .pool_child("m", n, ChildOptions::permanent(), move |i| Member {
            index: i,
            healthy: h[i].clone(),
        })
        .unwrap();
    node.start(
        SupervisorSpec::one_for_one().intensity(20, Duration::from_secs(10)),
        vec![spec],
    )
    .await
    .unwrap();
    Setup { node, pool, health }
}

async fn balancer(s: &Setup, name: &str, config: Balancer<Work>) -> Addr<Ask<Work>> {
    s.node
        .root()
        .unwrap()
        .spawn(name, ChildOptions::permanent(), config.factory())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_calls_evenly() {
    let s = setup(3).await;
    let lb = balancer(&s, "lb", Balancer::round_robin(&s.pool)).await;
    let mut counts = [0; 3];
    for _ in 0..30 {
        counts[lb.ask(Work::Who { ms: 0 }, T).await.unwrap()] += 1;
    }
    assert_eq!(counts, [10, 10, 10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_sends_a_key_to_the_same_member_every_time() {
    let s = setup(3).await;
    let by_delay = |work: &Work| match work {
        Work::Who { ms } => Some(ms.to_le_bytes().to_vec()),
    };
    let lb = balancer(&s, "lb", Balancer::consistent_hash(&s.pool, by_delay)).await;
    for ms in 0..4 {
        let first = lb.ask(Work::Who { ms }, T).await.unwrap();
        for _ in 0..5 {
            assert_eq!(
                lb.ask(Work::Who { ms }, T).await.unwrap(),
                first,
                "key {ms}"
            );
        }
    }
}

// a paused clock: the sleep below ends only once every task is idle, that is once the slow
// call is outstanding at its member
#[tokio::test(start_paused = true)]
async fn least_outstanding_avoids_a_busy_member() {
    let s = setup(3).await;
    let lb = balancer(&s, "lb", Balancer::least_outstanding(&s.pool)).await;
    // one slow call occupies some member...
    let slow = {
        let lb = lb.clone();
        tokio::spawn(async move { lb.ask(Work::Who { ms: 1_000 }, T).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ...and while it is outstanding, no quick call goes to that member
    let mut quick = [0; 3];
    for _ in 0..6 {
        quick[lb.ask(Work::Who { ms: 0 }, T).await.unwrap()] += 1;
    }
    let busy = slow.await.unwrap().unwrap();
    assert_eq!(quick[busy], 0, "{quick:?} (busy member {busy})");
    assert_eq!(quick.iter().sum::<i32>(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_member_is_ejected_and_readmitted_after_a_good_probe() {
    let s = setup(3).await;
    let breaker = BreakerConfig {
        consecutive_failures: 3,
        open_for: Duration::from_millis(300),
        ..BreakerConfig::default()
    };
    let lb = balancer(&s, "lb", Balancer::round_robin(&s.pool).breaker(breaker)).await;
    s.health[1].store(false, Ordering::SeqCst);
    let mut failures = 0;
    for _ in 0..30 {
        if lb.ask(Work::Who { ms: 0 }, T).await.is_err() {
            failures += 1;
        }
    }
    // three failures eject member 1; after that every call is answered by 0 or 2
    assert_eq!(failures, 3);
    for _ in 0..10 {
        assert_ne!(lb.ask(Work::Who { ms: 0 }, T).await.unwrap(), 1);
    }
    // healed: after the open period one probe goes to it, succeeds, and it is back
    s.health[1].store(true, Ordering::SeqCst);
    eventually("member 1 re-admitted", T, async || {
        lb.ask(Work::Who { ms: 0 }, T).await.unwrap() == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_member_available_calls_fail_typed() {
    let s = setup(2).await;
    let breaker = BreakerConfig {
        consecutive_failures: 1,
        open_for: Duration::from_secs(60),
        ..BreakerConfig::default()
    };
    let lb = balancer(&s, "lb", Balancer::round_robin(&s.pool).breaker(breaker)).await;
    for h in &s.health {
        h.store(false, Ordering::SeqCst);
    }
    let _ = lb.ask(Work::Who { ms: 0 }, T).await;
    let _ = lb.ask(Work::Who { ms: 0 }, T).await;
    let err = lb.ask(Work::Who { ms: 0 }, T).await.unwrap_err();
    assert!(matches!(err, CallError::NotFound { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_balancer_crashed_under_supervision_serves_again() {
    let s = setup(2).await;
    let lb = balancer(
        &s,
        "lb",
        Balancer::new(
            Strategy::PowerOfTwoChoices,
            s.pool.members().iter().cloned(),
        ),
    )
    .await;
    assert!(lb.ask(Work::Who { ms: 0 }, T).await.is_ok());
    let mut reports = s.node.supervision_reports();
    assert!(s.node.kill("lb"));
    let r = tokio::time::timeout(T, reports.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.child, "lb");
    eventually("the restarted balancer answers", T, async || {
        lb.ask(Work::Who { ms: 0 }, T).await
    })
    .await;
}

/// A node in its own mesh with a pool `m` of two members, on the network.
async fn remote_pool(
    cluster: &Cluster,
    name: &str,
    base: usize,
    seeds: &[SocketAddr],
) -> (Node, NodeNet) {
    let node = Node::new(name, &Mesh::new(), NodeConfig::default()).unwrap();
    let (spec, _) = node
        .pool_child(
            "m",
            2,
            ChildOptions::permanent().reachable_from(Reach::nodes(["edge"])),
            move |i| Member {
                index: base + i,
                healthy: Arc::new(AtomicBool::new(true)),
            },
        )
        .unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![spec])
        .await
        .unwrap();
    let net = cluster.join(&node, seeds).await;
    (node, net)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_a_node_reported_down_are_skipped_until_it_returns() {
    let cluster = Cluster::new("t");
    let edge = Node::new("edge", &Mesh::new(), NodeConfig::default()).unwrap();
    edge.start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    let edge_net = cluster.join(&edge, &[]).await;
    let (_x, x_net) = remote_pool(&cluster, "x", 10, &[edge_net.local_addr()]).await;
    let (_y, y_net) = remote_pool(&cluster, "y", 20, &[edge_net.local_addr()]).await;
    eventually("edge connected to x and y", T, async || {
        let connected = edge_net.connected();
        if connected.len() == 2 {
            Ok(())
        } else {
            Err(connected)
        }
    })
    .await;
    let members: Vec<Addr<Ask<Work>>> = ["x", "y"]
        .iter()
        .flat_map(|n| (0..2).map(move |i| (n, i)))
        .map(|(n, i)| edge.addr::<Ask<Work>>(n, &format!("m.{i}")))
        .collect();
    let lb = edge
        .root()
        .unwrap()
        .spawn(
            "lb",
            ChildOptions::permanent(),
            Balancer::new(Strategy::RoundRobin, members).factory(),
        )
        .await
        .unwrap();
    for _ in 0..8 {
        lb.ask(Work::Who { ms: 0 }, T).await.unwrap();
    }
    let mut events = edge_net.events();
    x_net.shutdown().await;
    within("x reported left", T, async {
        loop {
            if let troupe_runtime::remote::NodeEvent::Left { node } = events.recv().await.unwrap() {
                assert_eq!(node, "x");
                break;
            }
        }
    })
    .await;
    // once the balancer has the report, every call goes to y's members and succeeds
    eventually("a call answered by y after x left", T, async || {
        match lb.ask(Work::Who { ms: 0 }, T).await {
            Ok(who) if who >= 20 => Ok(()),
            other => Err(other),
        }
    })
    .await;
    for _ in 0..20 {
        assert!(lb.ask(Work::Who { ms: 0 }, T).await.unwrap() >= 20);
    }
    // x comes back (a new incarnation): its members take calls again
    let (_x2, _x2_net) = remote_pool(&cluster, "x", 10, &[edge_net.local_addr()]).await;
    eventually("x's members back", T, async || {
        lb.ask(Work::Who { ms: 0 }, T).await.unwrap() < 20
    })
    .await;
    drop(y_net);
}

/// The balancer's in-place picker, once its instance has shared it.
async fn forwarder(lb: &Addr<Ask<Work>>) -> Arc<Forwarder<Work>> {
    eventually("the balancer shares its picker", T, async || {
        lb.shared::<Forwarder<Work>>().ok_or("not yet")
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_in_the_process_picks_in_place_with_the_balancers_rules() {
    let s = setup(3).await;
    let breaker = BreakerConfig {
        consecutive_failures: 2,
        open_for: Duration::from_secs(60),
        ..BreakerConfig::default()
    };
    let lb = balancer(&s, "lb", Balancer::round_robin(&s.pool).breaker(breaker)).await;
    let picker = forwarder(&lb).await;
    let handled = || {
        s.node
            .actor_stats()
            .into_iter()
            .find(|a| a.name == "lb")
            .map(|a| a.messages_handled)
    };
    let before = handled();
    let mut counts = [0; 3];
    for _ in 0..30 {
        counts[picker.ask(Work::Who { ms: 0 }, T).await.unwrap()] += 1;
    }
    assert_eq!(counts, [10, 10, 10], "round robin, as through the balancer");
    assert_eq!(handled(), before, "no message went through the balancer");

    // the breaker sees what runs in place, and so does the balancer's own path
    s.health[1].store(false, Ordering::SeqCst);
    for _ in 0..6 {
        let _ = picker.ask(Work::Who { ms: 0 }, T).await;
    }
    let views = picker.members();
    assert!(!views[1].available, "member 1 ejected: {views:?}");
    for _ in 0..6 {
        assert_ne!(lb.ask(Work::Who { ms: 0 }, T).await.unwrap(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_gives_up_leaves_nothing_outstanding_and_no_verdict() {
    let s = setup(1).await;
    let lb = balancer(&s, "lb", Balancer::least_outstanding(&s.pool)).await;
    let picker = forwarder(&lb).await;
    // cancelled: the caller's future is dropped while the member works
    let cancelled = tokio::time::timeout(
        Duration::from_millis(50),
        picker.ask(Work::Who { ms: 2_000 }, T),
    )
    .await;
    assert!(cancelled.is_err());
    // the caller's own deadline, shorter than the balancer's member timeout
    for _ in 0..8 {
        let err = picker
            .ask(Work::Who { ms: 2_000 }, Duration::from_millis(20))
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Timeout { .. }), "{err}");
    }
    let view = &picker.members()[0];
    assert_eq!(view.outstanding, 0, "{view:?}");
    assert!(
        view.available,
        "the caller's deadlines are not the member's failures"
    );
}
