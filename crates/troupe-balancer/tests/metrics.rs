//! Picks, ejections and each member's breaker reach the `metrics` facade. (Its own test binary: the recorder is process-global.)

use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde::{Deserialize, Serialize};
use troupe_balancer::Balancer;
use troupe_balancer::core::BreakerConfig;
use troupe_runtime::{
    Actor, ActorError, Ask, CallError, ChildOptions, Ctx, Mesh, Node, NodeConfig, Request,
    SupervisorSpec,
};

#[derive(Serialize, Deserialize, Request)]
#[request(name = "balancer-metrics.Ping", response = ())]
struct Ping;

struct Broken;

impl Actor for Broken {
    type Msg = Ask<Ping>;
    async fn handle(&mut self, ask: Ask<Ping>, _: &mut Ctx<Ask<Ping>>) -> Result<(), ActorError> {
        ask.reply.fail(CallError::ActorFailed {
            target: "broken".into(),
            reason: "always".into(),
        });
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picks_and_ejections_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("first recorder in this process");

    let node = Node::new("m", &Mesh::new(), NodeConfig::default()).unwrap();
    let (spec, pool) = node
        .pool_child("b", 2, ChildOptions::permanent(), |_| Broken)
        .unwrap();
    let root = node
        .start(SupervisorSpec::one_for_one(), vec![spec])
        .await
        .unwrap();
    let breaker = BreakerConfig {
        consecutive_failures: 2,
        open_for: Duration::from_secs(60),
        ..BreakerConfig::default()
    };
    let lb = root
        .spawn(
            "lb",
            ChildOptions::permanent(),
            Balancer::round_robin(&pool)
                .named("edge-lb")
                .breaker(breaker)
                .factory(),
        )
        .await
        .unwrap();
    for _ in 0..6 {
        let _ = lb.ask(Ping, Duration::from_secs(5)).await;
    }
    let snapshot = snapshotter.snapshot().into_vec();
    let ejections =
        snapshot
            .iter()
            .find_map(|(key, _, _, value)| match (key.key().name(), value) {
                ("troupe_balancer_ejections_total", DebugValue::Counter(n)) => Some(*n),
                _ => None,
            });
    assert_eq!(ejections, Some(2));
    // every request picked a member (round robin: half each) until both were ejected
    let mut picks: Vec<(String, u64)> = snapshot
        .iter()
        .filter_map(|(key, _, _, value)| match (key.key().name(), value) {
            ("troupe_balancer_picks_total", DebugValue::Counter(n)) => {
                let member = key.key().labels().find(|l| l.key() == "member")?;
                Some((member.value().to_string(), *n))
            }
            _ => None,
        })
        .collect();
    picks.sort();
    assert_eq!(
        picks,
        vec![("m/b.0".to_string(), 2), ("m/b.1".to_string(), 2)]
    );
    // both breakers open: each member shown ejected
    let mut ejected: Vec<(String, f64)> = snapshot
        .iter()
        .filter_map(|(key, _, _, value)| match (key.key().name(), value) {
            ("troupe_balancer_member_ejected", DebugValue::Gauge(v)) => {
                let member = key.key().labels().find(|l| l.key() == "member")?;
                Some((member.value().to_string(), v.into_inner()))
            }
            _ => None,
        })
        .collect();
    ejected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        ejected,
        vec![("m/b.0".to_string(), 1.0), ("m/b.1".to_string(), 1.0)]
    );
}
