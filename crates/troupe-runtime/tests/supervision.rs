//! Supervision with real actors: strategies, restart types, intensity and escalation,
//! backoff, dynamic children, pools and shutdown order.

mod common;

use std::time::Duration;
use troupe_runtime::Reply;

use common::Started;
use common::*;
use troupe_runtime::{
    Addr, CallError, ChildOptions, Mesh, Node, NodeConfig, NodeExit, Restart, SupervisionAction,
    SupervisorSpec,
};

fn node(name: &str) -> Node {
    Node::new(name, &Mesh::new(), NodeConfig::default()).unwrap()
}

async fn starts(addrs: &[Addr<Probe>]) -> Vec<u32> {
    let mut out = vec![];
    for a in addrs {
        out.push(a.call(Probe::Starts, T).await.unwrap());
    }
    out
}

#[tokio::test]
async fn one_for_one_restarts_only_the_crashed_child() {
    let journal = Journal::default();
    let (node, addrs) = tree(SupervisorSpec::one_for_one(), 3, &journal).await;
    crash_and_settle(&addrs[1], &node).await;
    assert_eq!(starts(&addrs).await, vec![1, 2, 1]);
}

#[tokio::test]
async fn actor_counters_keep_their_counts_across_a_restart() {
    let journal = Journal::default();
    let (node, addrs) = tree(SupervisorSpec::one_for_one(), 2, &journal).await;
    let stats = |name: &str| {
        node.actor_stats()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} is reported"))
    };
    starts(&addrs).await; // one call each
    let before = stats("c1");
    assert_eq!((before.messages_handled, before.restarts), (1, 0));
    crash_and_settle(&addrs[1], &node).await;
    starts(&addrs).await;
    let after = stats("c1");
    // the call, the panic and the call after it, over two instances
    assert_eq!((after.messages_handled, after.restarts), (3, 1));
    assert_eq!(
        (after.mailbox_depth, after.dropped, after.parked),
        (0, 0, 0)
    );
    assert_eq!(stats("c0").restarts, 0);
    assert_eq!(
        node.actor_stats()
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        vec!["c0", "c1"]
    );
}

#[tokio::test]
async fn a_local_handle_reaches_what_the_current_instance_shares() {
    let journal = Journal::default();
    let (node, addrs) = tree(SupervisorSpec::one_for_one(), 2, &journal).await;
    let second = &addrs[1];
    let started = |n| async move {
        eventually(&format!("start {n} shares"), T, async || {
            second.shared::<Started>().as_deref() == Some(&Started(n))
        })
        .await;
    };
    started(1).await;
    assert!(
        addrs[1].shared::<String>().is_none(),
        "shared as another type"
    );
    crash_and_settle(&addrs[1], &node).await;
    // the restarted instance's, never the crashed one's again
    assert_ne!(addrs[1].shared::<Started>().as_deref(), Some(&Started(1)));
    started(2).await;
    assert_eq!(addrs[0].shared::<Started>().as_deref(), Some(&Started(1)));
    node.shutdown().await;
    assert!(addrs[1].shared::<Started>().is_none(), "a stopped actor");
}

#[tokio::test]
async fn one_for_all_restarts_every_child_in_start_order() {
    let journal = Journal::default();
    let (node, addrs) = tree(SupervisorSpec::one_for_all(), 3, &journal).await;
    assert_eq!(starts(&addrs).await, vec![1, 1, 1]);
    journal.events.lock().clear();
    crash_and_settle(&addrs[1], &node).await;
    assert_eq!(starts(&addrs).await, vec![2, 2, 2]);
    // siblings stopped in reverse start order, then all started in start order
    assert_eq!(
        journal.events(),
        vec!["stop c2", "stop c0", "start c0", "start c1", "start c2"]
    );
}

#[tokio::test]
async fn rest_for_one_restarts_the_child_and_later_ones() {
    let journal = Journal::default();
    let (node, addrs) = tree(SupervisorSpec::rest_for_one(), 4, &journal).await;
    crash_and_settle(&addrs[1], &node).await;
    assert_eq!(starts(&addrs).await, vec![1, 2, 2, 2]);
}

#[tokio::test]
async fn restart_types_follow_otp() {
    let journal = Journal::default();
    let node = node("n");
    let (p_spec, permanent) = probe(&node, &journal, "permanent", ChildOptions::permanent());
    let (t_spec, transient) = probe(&node, &journal, "transient", ChildOptions::transient());
    let (t2_spec, transient2) = probe(&node, &journal, "transient2", ChildOptions::transient());
    let (tmp_spec, temporary) = probe(&node, &journal, "temporary", ChildOptions::temporary());
    let root = node
        .start(
            SupervisorSpec::one_for_one().intensity(10, Duration::from_secs(5)),
            vec![p_spec, t_spec, t2_spec, tmp_spec],
        )
        .await
        .unwrap();
    let mut reports = node.supervision_reports();

    // permanent: restarted even after a normal stop
    permanent.call(Probe::Stop, T).await.unwrap();
    let r = reports.recv().await.unwrap();
    assert_eq!(r.child, "permanent");
    assert!(matches!(r.action, SupervisionAction::Restarted { .. }));
    eventually("permanent back", T, async || {
        permanent.call(Probe::Starts, T).await == Ok(2)
    })
    .await;

    // transient: restarted after a failure...
    transient.cast(Probe::Fail(Reply::none())).unwrap();
    let r = reports.recv().await.unwrap();
    assert_eq!(
        (r.child.as_str(), r.action.clone()),
        ("transient", r.action.clone())
    );
    assert!(matches!(r.action, SupervisionAction::Restarted { .. }));
    eventually("transient back after its backoff", T, async || {
        transient.call(Probe::Log, T).await.is_ok()
    })
    .await;
    // ...but removed after a normal stop
    transient2.call(Probe::Stop, T).await.unwrap();
    let r = reports.recv().await.unwrap();
    assert_eq!(r.child, "transient2");
    assert_eq!(r.action, SupervisionAction::Removed);
    assert!(matches!(
        transient2.call(Probe::Log, T).await,
        Err(CallError::NotFound { .. })
    ));

    // temporary: never restarted
    temporary.cast(Probe::Panic(Reply::none())).unwrap();
    let r = reports.recv().await.unwrap();
    assert_eq!(r.child, "temporary");
    assert_eq!(r.action, SupervisionAction::Removed);
    assert!(!node.is_registered("temporary"));

    assert_eq!(
        root.children().await.unwrap(),
        vec!["permanent", "transient"]
    );
}

#[tokio::test]
async fn exceeding_intensity_escalates_to_the_parent() {
    let journal = Journal::default();
    let node = node("n");
    let (inner_child, crashy) = probe(&node, &journal, "crashy", ChildOptions::permanent());
    let (sibling_spec, sibling) = probe(&node, &journal, "sibling", ChildOptions::permanent());
    let (inner_spec, _inner) = node.supervisor_child(
        "inner",
        SupervisorSpec::one_for_one()
            .intensity(2, Duration::from_secs(10))
            .escalate_when_exceeded(),
        Restart::Permanent,
        vec![inner_child],
    );
    node.start(
        SupervisorSpec::one_for_one().intensity(5, Duration::from_secs(10)),
        vec![inner_spec, sibling_spec],
    )
    .await
    .unwrap();
    let mut reports = node.supervision_reports();
    for round in 2..=3 {
        crashy.cast(Probe::Panic(Reply::none())).unwrap();
        eventually("crashy restarted", T, async || {
            crashy.call(Probe::Starts, T).await == Ok(round)
        })
        .await;
    }
    // the third crash exceeds inner's intensity (2 in 10 s): inner escalates, root restarts it
    crashy.cast(Probe::Panic(Reply::none())).unwrap();
    let mut saw_escalation = false;
    let mut saw_inner_restart = false;
    while !(saw_escalation && saw_inner_restart) {
        let r = tokio::time::timeout(T, reports.recv())
            .await
            .unwrap()
            .unwrap();
        match (&*r.supervisor, &*r.child, &r.action) {
            ("inner", "crashy", SupervisionAction::Escalated(_)) => saw_escalation = true,
            ("root", "inner", SupervisionAction::Restarted { .. }) => saw_inner_restart = true,
            _ => {}
        }
    }
    // the restarted inner supervisor started crashy afresh; the sibling was untouched
    eventually("crashy back", T, async || {
        crashy.call(Probe::Log, T).await.is_ok()
    })
    .await;
    assert_eq!(starts(&[sibling]).await, vec![1]);
    assert_eq!(node.exit_status(), NodeExit::Running);
}

#[tokio::test]
async fn escalation_past_the_root_ends_the_node_with_an_error() {
    let journal = Journal::default();
    let node = node("n");
    let (spec, crashy) = probe(&node, &journal, "crashy", ChildOptions::permanent());
    node.start(
        SupervisorSpec::one_for_one()
            .intensity(1, Duration::from_secs(10))
            .escalate_when_exceeded(),
        vec![spec],
    )
    .await
    .unwrap();
    crashy.cast(Probe::Panic(Reply::none())).unwrap();
    eventually("restart", T, async || {
        crashy.call(Probe::Log, T).await.is_ok()
    })
    .await;
    crashy.cast(Probe::Panic(Reply::none())).unwrap();
    let exit = tokio::time::timeout(T, node.wait()).await.unwrap();
    assert!(
        matches!(&exit, NodeExit::Failed(reason) if reason.contains("intensity")),
        "{exit:?}"
    );
}

#[tokio::test]
async fn backoff_delays_grow_between_restarts() {
    let journal = Journal::default();
    let node = node("n");
    let (spec, crashy) = probe(&node, &journal, "crashy", ChildOptions::permanent());
    node.start(
        SupervisorSpec::one_for_one()
            .intensity(10, Duration::from_secs(30))
            .backoff(Duration::from_millis(10), Duration::from_millis(35)),
        vec![spec],
    )
    .await
    .unwrap();
    let mut reports = node.supervision_reports();
    let mut delays = vec![];
    for round in 2..=5 {
        crashy.cast(Probe::Panic(Reply::none())).unwrap();
        let r = tokio::time::timeout(T, reports.recv())
            .await
            .unwrap()
            .unwrap();
        let SupervisionAction::Restarted { delay, .. } = r.action else {
            panic!("{r:?}")
        };
        delays.push(delay.as_millis());
        let started = tokio::time::Instant::now();
        // parked until the delayed restart
        assert_eq!(crashy.call(Probe::Starts, T).await.unwrap(), (round));
        assert!(started.elapsed() >= delay);
    }
    assert_eq!(delays, vec![10, 20, 35, 35]);
}

#[tokio::test]
async fn children_and_pools_can_be_added_to_a_running_supervisor() {
    let journal = Journal::default();
    let node = node("n");
    let root = node
        .start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    let j = journal.clone();
    let dynamic = root
        .spawn("late", ChildOptions::permanent(), move || {
            ProbeActor::new(&j)
        })
        .await
        .unwrap();
    assert_eq!(dynamic.call(|r| Probe::Push(1, r), T).await.unwrap(), 1);

    let j = journal.clone();
    let pool = root
        .spawn_pool("workers", 3, ChildOptions::permanent(), move |_i| {
            ProbeActor::new(&j)
        })
        .await
        .unwrap();
    assert_eq!(pool.len(), 3);
    assert_eq!(pool.member(2).unwrap().name(), "workers.2");
    assert_eq!(root.children().await.unwrap(), vec!["late", "workers"]);

    // round robin spreads calls over members; broadcasts reach each one
    for i in 0..6 {
        pool.call_next(|r| Probe::Push(i, r), T).await.unwrap();
    }
    let logs = pool.call_all(Probe::Log, T).await;
    assert_eq!(
        logs.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        vec![(vec![0, 3]), (vec![1, 4]), (vec![2, 5])]
    );
    // a crashed member is restarted by the pool's own supervisor, alone
    pool.member(1)
        .unwrap()
        .cast(Probe::Panic(Reply::none()))
        .unwrap();
    eventually("member back", T, async || {
        pool.member(1).unwrap().call(Probe::Starts, T).await == Ok(2)
    })
    .await;
    assert_eq!(starts(&pool.members()[..1]).await, vec![1]);
    assert!(
        pool.cast_all(|| Probe::Push(9, Reply::none()))
            .into_iter()
            .all(|r| r.is_ok())
    );
}

#[tokio::test]
async fn shutdown_stops_actors_in_reverse_start_order() {
    let journal = Journal::default();
    let node = node("n");
    let (a, _) = probe(&node, &journal, "a", ChildOptions::permanent());
    let (b1, _) = probe(&node, &journal, "b1", ChildOptions::permanent());
    let (b2, _) = probe(&node, &journal, "b2", ChildOptions::permanent());
    let (b, _) = node.supervisor_child(
        "b",
        SupervisorSpec::one_for_one(),
        Restart::Permanent,
        vec![b1, b2],
    );
    let (c, c_addr) = probe(&node, &journal, "c", ChildOptions::permanent());
    node.start(SupervisorSpec::one_for_one(), vec![a, b, c])
        .await
        .unwrap();
    eventually("all started", T, async || journal.events().len() == 4).await;
    journal.events.lock().clear();
    tokio::time::timeout(T, node.shutdown()).await.unwrap();
    assert_eq!(
        journal.events(),
        vec!["stop c", "stop b2", "stop b1", "stop a"]
    );
    assert_eq!(node.exit_status(), NodeExit::Stopped);
    // after shutdown, handles fail typed instead of waiting
    assert!(matches!(
        c_addr.call(Probe::Log, T).await,
        Err(CallError::NotFound { .. })
    ));
}

/// An actor whose `stopped` hook never finishes.
struct Stubborn;

impl troupe_runtime::Actor for Stubborn {
    type Msg = Probe;

    async fn handle(
        &mut self,
        msg: Probe,
        _ctx: &mut troupe_runtime::Ctx<Probe>,
    ) -> Result<(), troupe_runtime::ActorError> {
        if let Probe::Log(reply) = msg {
            reply.send(Vec::new());
        }
        Ok(())
    }

    async fn stopped(
        &mut self,
        _ctx: &mut troupe_runtime::Ctx<Probe>,
    ) -> Result<(), troupe_runtime::ActorError> {
        std::future::pending::<()>().await;
        Ok(())
    }
}

#[tokio::test]
async fn a_child_that_will_not_stop_is_killed_after_the_shutdown_timeout() {
    let journal = Journal::default();
    let node = node("n");
    let (first, _) = probe(&node, &journal, "first", ChildOptions::permanent());
    let (stubborn, stubborn_addr) = node
        .child("stubborn", ChildOptions::permanent(), || Stubborn)
        .unwrap();
    node.start(
        SupervisorSpec::one_for_one().shutdown_timeout(Duration::from_millis(100)),
        vec![first, stubborn],
    )
    .await
    .unwrap();
    stubborn_addr.call(Probe::Log, T).await.unwrap();
    // bounded: without the kill, shutdown would wait forever on `stopped`
    tokio::time::timeout(T, node.shutdown())
        .await
        .expect("shutdown is bounded by the shutdown timeout");
    // and the actors before it still stopped gracefully, after it
    assert_eq!(
        journal.events().last().map(String::as_str),
        Some("stop first")
    );
}

#[tokio::test]
async fn under_default_supervision_a_stream_of_panicking_requests_leaves_the_node_serving() {
    let journal = Journal::default();
    // the defaults a topology gets: nothing configured
    let (node, addr) = node_with_probe("n", &journal).await;
    let rounds = 8u64; // well past the default intensity of 3 restarts in 5 s
    for round in 0..rounds {
        // hold the actor so that the crashing request and the ones behind it queue up
        addr.cast(Probe::Sleep(20, Reply::none())).unwrap();
        let mut crash = Box::pin(addr.call(Probe::Panic, T));
        assert!(futures::poll!(&mut crash).is_pending());
        let mut behind = Vec::new();
        for i in 0..4 {
            let mut call = Box::pin(addr.call(move |r| Probe::Push(round * 10 + i, r), T));
            assert!(futures::poll!(&mut call).is_pending());
            behind.push(call);
        }
        // only the crashing request fails, with the panic message as its reason
        let err = crash.await.unwrap_err();
        assert!(
            matches!(&err, CallError::ActorFailed { reason, .. } if reason == "probe asked to panic"),
            "{err:?}"
        );
        // the ones queued behind it are handled, in order, by the restarted instance
        for (i, call) in behind.into_iter().enumerate() {
            assert_eq!(call.await.unwrap(), i + 1, "round {round}");
        }
        assert_eq!(node.exit_status(), NodeExit::Running);
    }
    assert_eq!(journal.starts("probe"), rounds as u32 + 1);
    assert_eq!(
        addr.call(Probe::Log, T).await.unwrap(),
        vec![
            (rounds - 1) * 10,
            (rounds - 1) * 10 + 1,
            (rounds - 1) * 10 + 2,
            (rounds - 1) * 10 + 3
        ]
    );
}

#[tokio::test]
async fn a_crash_loop_past_the_intensity_is_throttled_not_escalated_by_default() {
    let journal = Journal::default();
    let node = node("n");
    let (spec, crashy) = probe(&node, &journal, "crashy", ChildOptions::permanent());
    node.start(
        SupervisorSpec::one_for_one()
            .intensity(1, Duration::from_secs(10))
            .no_backoff(),
        vec![spec],
    )
    .await
    .unwrap();
    let mut reports = node.supervision_reports();
    crashy.cast(Probe::Panic(Reply::none())).unwrap();
    eventually("first restart", T, async || {
        crashy.call(Probe::Starts, T).await == Ok(2)
    })
    .await;
    crashy.cast(Probe::Panic(Reply::none())).unwrap();
    // over the intensity: restarted again, but only once the oldest restart leaves the window
    let r = tokio::time::timeout(T, async {
        loop {
            let r = reports.recv().await.unwrap();
            if r.exit == troupe_runtime::Exit::Failed
                && r.child == "crashy"
                && let SupervisionAction::Restarted { delay, .. } = r.action
                && delay > Duration::from_secs(5)
            {
                return delay;
            }
        }
    })
    .await
    .expect("a throttled restart is reported");
    assert!(r <= Duration::from_secs(10), "{r:?}");
    assert_eq!(node.exit_status(), NodeExit::Running);
}

/// An actor whose `started` hook fails: on its first start only, or always.
struct FlakyStart {
    journal: Journal,
    always: bool,
}

impl troupe_runtime::Actor for FlakyStart {
    type Msg = Probe;

    async fn started(
        &mut self,
        ctx: &mut troupe_runtime::Ctx<Probe>,
    ) -> Result<(), troupe_runtime::ActorError> {
        let n = {
            let mut starts = self.journal.starts.lock();
            let n = starts.entry(ctx.name().to_string()).or_default();
            *n += 1;
            *n
        };
        if self.always || n == 1 {
            return Err("refuses to start".into());
        }
        Ok(())
    }

    async fn handle(
        &mut self,
        msg: Probe,
        ctx: &mut troupe_runtime::Ctx<Probe>,
    ) -> Result<(), troupe_runtime::ActorError> {
        if let Probe::Starts(reply) = msg {
            reply.send(self.journal.starts(ctx.name()));
        }
        Ok(())
    }
}

// Children are started by the task that adds them and then recorded by their supervisor; a
// child that fails at once can be reported before it is recorded. Two workers make that race.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_that_fail_as_they_are_added_are_restarted_or_removed_by_policy() {
    let journal = Journal::default();
    let node = node("n");
    let root = node
        .start(
            SupervisorSpec::one_for_one().intensity(1_000, Duration::from_secs(60)),
            vec![],
        )
        .await
        .unwrap();
    let mut reports = node.supervision_reports();
    let n = 100;
    let mut flaky = Vec::new();
    for i in 0..n {
        let j = journal.clone();
        let addr = root
            .spawn(&format!("flaky{i}"), ChildOptions::permanent(), move || {
                FlakyStart {
                    journal: j.clone(),
                    always: false,
                }
            })
            .await
            .unwrap();
        flaky.push(addr);
        let j = journal.clone();
        root.spawn(
            &format!("doomed{i}"),
            ChildOptions::temporary(),
            move || FlakyStart {
                journal: j.clone(),
                always: true,
            },
        )
        .await
        .unwrap();
    }
    // every permanent child was restarted once and runs; every temporary one is gone
    for addr in &flaky {
        assert_eq!(addr.call(Probe::Starts, T).await.unwrap(), 2);
    }
    let mut restarted = 0;
    let mut removed = 0;
    while restarted + removed < 2 * n {
        let report = tokio::time::timeout(T, reports.recv())
            .await
            .unwrap()
            .unwrap();
        match report.action.clone() {
            SupervisionAction::Restarted { children, .. } => {
                assert_eq!(children, vec![report.child.clone()]);
                assert!(report.child.starts_with("flaky"), "{report:?}");
                restarted += 1;
            }
            SupervisionAction::Removed => {
                assert!(report.child.starts_with("doomed"), "{report:?}");
                assert!(!node.is_registered(&report.child));
                removed += 1;
            }
            SupervisionAction::Escalated(why) => panic!("escalated: {why}"),
        }
    }
    let expected: Vec<String> = (0..n).map(|i| format!("flaky{i}")).collect();
    assert_eq!(root.children().await.unwrap(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_added_from_many_tasks_are_all_recorded_each_in_its_order() {
    let journal = Journal::default();
    let node = node("n");
    let root = node
        .start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (root, j) = (root.clone(), journal.clone());
            tokio::spawn(async move {
                for i in 0..50 {
                    let j = j.clone();
                    root.spawn(&format!("t{t}.{i}"), ChildOptions::permanent(), move || {
                        ProbeActor::new(&j)
                    })
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        tokio::time::timeout(T, task).await.unwrap().unwrap();
    }
    let children = root.children().await.unwrap();
    assert_eq!(children.len(), 400);
    for t in 0..8 {
        let prefix = format!("t{t}.");
        let mine: Vec<&String> = children.iter().filter(|c| c.starts_with(&prefix)).collect();
        let expected: Vec<String> = (0..50).map(|i| format!("t{t}.{i}")).collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>());
    }
    // and stopped again, every one of them
    tokio::time::timeout(T, node.shutdown()).await.unwrap();
    assert!(node.names().is_empty(), "{:?}", node.names());
}

#[tokio::test]
async fn adding_to_a_stopped_supervisor_fails_and_releases_the_name() {
    let journal = Journal::default();
    let node = node("n");
    let root = node
        .start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    tokio::time::timeout(T, node.shutdown()).await.unwrap();
    let j = journal.clone();
    let added = root
        .spawn("late", ChildOptions::permanent(), move || {
            ProbeActor::new(&j)
        })
        .await;
    assert!(
        matches!(added, Err(troupe_runtime::SpawnError::SupervisorGone(_))),
        "{added:?}"
    );
    assert!(!node.is_registered("late"));
    assert_eq!(journal.starts("late"), 0);
}
