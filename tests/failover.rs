//! Failover children in one process routed over QUIC: a child on `app-1` moves to `app-2`
//! when `app-1` crashes (its actors killed, then cut off from every node), under a lease in
//! the metadata group on `data-1..3`; the caller's handle is unchanged; with takeover it
//! moves back once `app-1` returns.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use troupe::faults::Faults;
use troupe::prelude::*;
use troupe_testkit::{eventually, within};

const T: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "failover-test.Svc")]
enum SvcMsg {
    /// Answered with the node it runs on
    Where(Reply<String>),
    /// Recorded, with the node it was handled on
    Push(u64),
}

/// What every instance of `svc` handled, in order, wherever it ran
type Handled = std::sync::Arc<parking_lot::Mutex<Vec<(String, u64)>>>;

struct Svc {
    handled: Handled,
}

impl Actor for Svc {
    type Msg = SvcMsg;

    async fn handle(&mut self, msg: SvcMsg, ctx: &mut Ctx<SvcMsg>) -> Result<(), ActorError> {
        match msg {
            SvcMsg::Where(reply) => {
                reply.send(ctx.node().name().to_string());
            }
            SvcMsg::Push(n) => self.handled.lock().push((ctx.node().name().to_string(), n)),
        };
        Ok(())
    }
}

fn topology(
    dir: &std::path::Path,
    takeover: bool,
    handled: &Handled,
) -> (Topology, Faults, Addr<SvcMsg>) {
    let mut t = Topology::new("failover-test");
    let data: Vec<_> = ["data-1", "data-2", "data-3"]
        .iter()
        .map(|n| t.node(n))
        .collect();
    let (app1, app2, edge) = (t.node("app-1"), t.node("app-2"), t.node("edge"));
    let _ = edge;
    t.metadata(data, dir);
    let handled = handled.clone();
    let svc = (move || Svc {
        handled: handled.clone(),
    })
    .failover_to([app2]);
    let svc = if takeover { svc.takeover() } else { svc };
    let svc = t.add(app1, "svc", svc.reachable_from(Reach::cluster()));
    let faults = Faults::on_every_node(&mut t);
    (t, faults, svc)
}

fn args() -> LaunchArgs {
    LaunchArgs::try_parse_from(["test", "--no-admin", "--quic", "--peer-down-ms", "1000"])
        .expect("flags")
}

async fn runs_on(svc: &Addr<SvcMsg>, node: &str) -> bool {
    svc.call(SvcMsg::Where, Duration::from_millis(500))
        .await
        .is_ok_and(|at| at == node)
}

async fn fail_over_and_back(takeover: bool) {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let handled = Handled::default();
    let (t, faults, svc) = topology(dir.path(), takeover, &handled);
    let run = async {
        eventually("svc runs on app-1, first in its order", T, async || {
            runs_on(&svc, "app-1").await
        })
        .await;
        faults.crash("app-1").await.expect("crash app-1");
        eventually(
            "svc runs on app-2 once app-1's lease ran out",
            T,
            async || runs_on(&svc, "app-2").await,
        )
        .await;
        faults.heal().await;
        if takeover {
            // casts throughout the move back: app-2 works off what reached it, later ones
            // wait for app-1, and every one is handled once, in order
            const CASTS: u64 = 1500;
            let caster = tokio::spawn({
                let svc = svc.clone();
                async move {
                    for n in 1..=CASTS {
                        svc.cast(SvcMsg::Push(n)).expect("parked or sent");
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            });
            eventually("svc moves back to app-1", T, async || {
                runs_on(&svc, "app-1").await
            })
            .await;
            caster.await.expect("the casts were sent");
            eventually("every cast handled", T, async || {
                let n = handled.lock().len() as u64;
                if n >= CASTS { Ok(()) } else { Err(n) }
            })
            .await;
            let handled = handled.lock().clone();
            let numbers: Vec<u64> = handled.iter().map(|(_, n)| *n).collect();
            assert_eq!(
                numbers,
                (1..=CASTS).collect::<Vec<_>>(),
                "once each, in order"
            );
            let on_app2 = handled.iter().filter(|(node, _)| node == "app-2").count();
            assert!(
                on_app2 > 0 && handled.last().is_some_and(|(node, _)| node == "app-1"),
                "the move happened while the casts went on ({on_app2} on app-2)"
            );
        } else {
            // app-1 is back in app-2's view; the child stays where it runs
            eventually("app-2 sees app-1 again", T, async || {
                faults
                    .status("app-2")
                    .await
                    .is_ok_and(|s| s.cut_from.is_empty())
            })
            .await;
            for _ in 0..10 {
                assert!(runs_on(&svc, "app-2").await, "the child stays on app-2");
            }
        }
    };
    within(
        "the test",
        Duration::from_secs(120),
        launch_until(t, args(), run),
    )
    .await
    .expect("launch");
}

/// Asked of a member of the pool in the failover group: answered with its node
#[derive(Debug, Serialize, Deserialize, Request)]
#[request(name = "failover-test.WhereAreYou", response = String)]
struct WhereAreYou;

struct Member;

impl Actor for Member {
    type Msg = Ask<WhereAreYou>;

    async fn handle(
        &mut self,
        ask: Ask<WhereAreYou>,
        ctx: &mut Ctx<Ask<WhereAreYou>>,
    ) -> Result<(), ActorError> {
        ask.reply.send(ctx.node().name().to_string());
        Ok(())
    }
}

/// A pool and the balancer over it, in one failover group: the whole group moves together,
/// and the handle to the balancer follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_group_of_a_pool_and_its_balancer_moves_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Topology::new("failover-test");
    let data: Vec<_> = ["data-1", "data-2", "data-3"]
        .iter()
        .map(|n| t.node(n))
        .collect();
    let (app1, app2, _edge) = (t.node("app-1"), t.node("app-2"), t.node("edge"));
    t.metadata(data, dir.path());
    let app = t.failover_group("app", [app1, app2], SupervisorSpec::one_for_one());
    let pool = t.pool(app, "members", 3, |_| Member);
    let lb = t.add(
        app,
        "lb",
        Balancer::least_outstanding(&pool).reachable_from(Reach::cluster()),
    );
    let faults = Faults::on_every_node(&mut t);
    let answers = async |node: &str| {
        for _ in 0..6 {
            match lb.ask(WhereAreYou, Duration::from_millis(500)).await {
                Ok(at) if at == node => {}
                _ => return false,
            }
        }
        true
    };
    let run = async {
        eventually("the group runs on app-1", T, async || {
            answers("app-1").await
        })
        .await;
        faults.crash("app-1").await.expect("crash app-1");
        eventually("the group runs on app-2", T, async || {
            answers("app-2").await
        })
        .await;
    };
    within(
        "the test",
        Duration::from_secs(120),
        launch_until(t, args(), run),
    )
    .await
    .expect("launch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_child_moves_when_its_node_crashes_and_stays() {
    fail_over_and_back(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_child_with_takeover_moves_back_when_its_node_returns() {
    fail_over_and_back(true).await;
}
