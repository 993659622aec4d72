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
    /// Answered with its fencing token
    Token(Reply<Option<u64>>),
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
            SvcMsg::Token(reply) => {
                reply.send(ctx.fencing_token());
            }
        };
        Ok(())
    }
}

/// The test cluster before anything is placed: the metadata group on `data-1..3` (its
/// client returned), `app-1` and `app-2` to place on, and `edge`, which runs nothing
fn cluster(dir: &std::path::Path) -> (Topology, [NodeId; 2], DbClient) {
    let mut t = Topology::new("failover-test");
    let data: Vec<_> = ["data-1", "data-2", "data-3"]
        .iter()
        .map(|n| t.node(n))
        .collect();
    let apps = [t.node("app-1"), t.node("app-2")];
    t.node("edge");
    let meta = t.metadata(data, dir);
    (t, apps, meta)
}

fn topology(
    dir: &std::path::Path,
    takeover: bool,
    handled: &Handled,
) -> (Topology, Faults, Addr<SvcMsg>) {
    let (t, faults, svc, _) = topology_with(dir, takeover, handled, &[]);
    (t, faults, svc)
}

/// The test topology, `svc` failing over from app-1 to app-2 then to `more` nodes; and the
/// metadata group's client
fn topology_with(
    dir: &std::path::Path,
    takeover: bool,
    handled: &Handled,
    more: &[&str],
) -> (Topology, Faults, Addr<SvcMsg>, DbClient) {
    let (mut t, [app1, app2], meta) = cluster(dir);
    let others: Vec<NodeId> = std::iter::once(app2)
        .chain(more.iter().map(|n| t.node(n)))
        .collect();
    let handled = handled.clone();
    let svc = (move || Svc {
        handled: handled.clone(),
    })
    .failover_to(others);
    let svc = if takeover { svc.takeover() } else { svc };
    let svc = t.add(app1, "svc", svc.reachable_from(Reach::cluster()));
    let faults = Faults::on_every_node(&mut t);
    (t, faults, svc, meta)
}

/// Launches `t` (all its nodes in this process, over QUIC) and runs `run` against it, within
/// two minutes; the topology shuts down when `run` ends
async fn run_while_launched(t: Topology, run: impl std::future::Future<Output = ()>) {
    within(
        "the test",
        Duration::from_secs(120),
        launch_until(t, args(), run),
    )
    .await
    .expect("launch");
}

fn args() -> LaunchArgs {
    LaunchArgs::try_parse_from(["test", "--no-admin", "--quic", "--peer-down-ms", "1000"])
        .expect("flags")
}

/// The fencing token of the instance `svc` reaches now; it has one
async fn token(svc: &Addr<SvcMsg>) -> u64 {
    svc.call(SvcMsg::Token, Duration::from_secs(5))
        .await
        .expect("an answer")
        .expect("a failover child has a fencing token")
}

async fn runs_on(svc: &Addr<SvcMsg>, node: &str) -> bool {
    svc.call(SvcMsg::Where, Duration::from_millis(500))
        .await
        .is_ok_and(|at| at == node)
}

/// Casts numbered pushes to `svc` every 5 ms while `moving` runs and checks that every one
/// was handled once, in order, some on `from` before the move and the last after it
async fn casts_through_a_move(
    svc: &Addr<SvcMsg>,
    handled: &Handled,
    from: &str,
    moving: impl AsyncFnOnce(),
) {
    const CASTS: u64 = 1500;
    let before = handled.lock().len();
    let caster = tokio::spawn({
        let svc = svc.clone();
        async move {
            for n in 1..=CASTS {
                svc.cast(SvcMsg::Push(n)).expect("parked or sent");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    moving().await;
    caster.await.expect("the casts were sent");
    eventually("every cast handled", T, async || {
        let n = (handled.lock().len() - before) as u64;
        if n >= CASTS { Ok(()) } else { Err(n) }
    })
    .await;
    let handled = handled.lock()[before..].to_vec();
    if let Some(at) =
        (0..CASTS as usize).find(|&i| handled.get(i).map(|h| h.1) != Some(i as u64 + 1))
    {
        let around = &handled[at.saturating_sub(3)..(at + 3).min(handled.len())];
        panic!(
            "not once each, in order: at {at} of {}: {around:?}",
            handled.len()
        );
    }
    assert_eq!(handled.len() as u64, CASTS, "once each");
    let on_from = handled.iter().filter(|(node, _)| node == from).count();
    assert!(
        on_from > 0 && handled.last().is_some_and(|(node, _)| node != from),
        "the move happened while the casts went on ({on_from} on {from})"
    );
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
        let on_app1 = token(&svc).await;
        faults.crash("app-1").await.expect("crash app-1");
        eventually(
            "svc runs on app-2 once app-1's lease ran out",
            T,
            async || runs_on(&svc, "app-2").await,
        )
        .await;
        // a later holder's fencing token is larger than any the earlier one had
        let on_app2 = token(&svc).await;
        assert!(on_app2 > on_app1, "{on_app2} after {on_app1}");
        faults.heal().await;
        if takeover {
            // casts throughout the move back: app-2 works off what reached it, later ones
            // wait for app-1, and every one is handled once, in order
            casts_through_a_move(&svc, &handled, "app-2", async || {
                eventually("svc moves back to app-1", T, async || {
                    runs_on(&svc, "app-1").await
                })
                .await;
            })
            .await;
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
    run_while_launched(t, run).await;
}

/// An operator moves the child (`troupe move`), in order, then drains the node it runs on
/// (`troupe drain`): it moves off; undrained, nothing moves back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_moves_a_child_in_order_and_drains_its_node() {
    let dir = tempfile::tempdir().unwrap();
    let handled = Handled::default();
    let (t, _faults, svc, meta) = topology_with(dir.path(), false, &handled, &["app-3"]);
    let register = troupe::failover::DbRegister::new(&meta, Duration::from_secs(2));
    let run = async {
        eventually("svc runs on app-1", T, async || {
            runs_on(&svc, "app-1").await
        })
        .await;
        casts_through_a_move(&svc, &handled, "app-1", async || {
            register
                .move_child("svc.failover", Some("app-3"))
                .await
                .expect("moved");
            eventually("svc moves to app-3", T, async || {
                runs_on(&svc, "app-3").await
            })
            .await;
        })
        .await;
        casts_through_a_move(&svc, &handled, "app-3", async || {
            register.drain_node("app-3", true).await.expect("drained");
            eventually("svc moves off app-3, to app-1", T, async || {
                runs_on(&svc, "app-1").await
            })
            .await;
        })
        .await;
        // the move cleared before app-3 is back in service: the other way round, a driver
        // reading the directions in between sees app-3 undrained with the move to it still
        // on, and hands the child over to it
        register
            .move_child("svc.failover", None)
            .await
            .expect("cleared");
        register
            .drain_node("app-3", false)
            .await
            .expect("undrained");
        // the child stays where it runs (no takeover)
        eventually("the directions read everywhere", T, async || {
            register
                .lease("svc.failover")
                .await
                .is_ok_and(|l| l.is_some_and(|l| l.holder == "app-1" && !l.draining))
        })
        .await;
        for _ in 0..10 {
            assert!(runs_on(&svc, "app-1").await);
        }
    };
    run_while_launched(t, run).await;
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
    let (mut t, [app1, app2], _) = cluster(dir.path());
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
    run_while_launched(t, run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_child_moves_when_its_node_crashes_and_stays() {
    fail_over_and_back(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_child_with_takeover_moves_back_when_its_node_returns() {
    fail_over_and_back(true).await;
}

/// Crashes as it starts on app-1, and runs anywhere else
struct CrashesOnApp1;

impl Actor for CrashesOnApp1 {
    type Msg = SvcMsg;

    async fn started(&mut self, ctx: &mut Ctx<SvcMsg>) -> Result<(), ActorError> {
        match ctx.node().name() {
            "app-1" => Err("cannot run on app-1".into()),
            _ => Ok(()),
        }
    }

    async fn handle(&mut self, msg: SvcMsg, ctx: &mut Ctx<SvcMsg>) -> Result<(), ActorError> {
        if let SvcMsg::Where(reply) = msg {
            reply.send(ctx.node().name().to_string());
        }
        Ok(())
    }
}

/// `.failover_to(..).supervised(spec)` with escalation: a child that crashes past its
/// group's intensity on its node moves to the next, app-1's other actors untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_crashing_past_its_intensity_moves_to_the_next_node() {
    let dir = tempfile::tempdir().unwrap();
    let (mut t, [app1, app2], _) = cluster(dir.path());
    let escalating = SupervisorSpec::one_for_one()
        .intensity(2, Duration::from_secs(10))
        .escalate_when_exceeded();
    let svc = t.add(
        app1,
        "svc",
        (|| CrashesOnApp1)
            .failover_to([app2])
            .supervised(escalating)
            .reachable_from(Reach::cluster()),
    );
    let handled = Handled::default();
    let neighbour = t.add(app1, "neighbour", move || Svc {
        handled: handled.clone(),
    });
    let run = async {
        eventually("svc runs on app-2", T, async || {
            runs_on(&svc, "app-2").await
        })
        .await;
        let at = neighbour
            .call(SvcMsg::Where, Duration::from_secs(5))
            .await
            .expect("app-1's other actor answers");
        assert_eq!(at, "app-1");
        let token = neighbour
            .call(SvcMsg::Token, Duration::from_secs(5))
            .await
            .expect("an answer");
        assert_eq!(token, None, "a pinned actor has no fencing token");
    };
    run_while_launched(t, run).await;
}
