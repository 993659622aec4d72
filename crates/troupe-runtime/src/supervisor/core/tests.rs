use super::*;
use proptest::prelude::{Just, any, prop_assert, prop_assert_eq, prop_oneof, proptest};
use proptest::strategy::Strategy as PropStrategy;

fn core_with(strategy: Strategy, kinds: &[Restart]) -> SupervisorCore {
    let mut core = SupervisorCore::new(
        strategy,
        Intensity {
            max_restarts: 3,
            within: Duration::from_secs(5),
        },
        None,
    );
    for (i, &k) in kinds.iter().enumerate() {
        core.add_child(ChildId(i as u64), k);
    }
    core
}

fn ids(v: &[u64]) -> Vec<ChildId> {
    v.iter().map(|&i| ChildId(i)).collect()
}

#[test]
fn one_for_one_restarts_only_the_failed_child() {
    let mut core = core_with(Strategy::OneForOne, &[Restart::Permanent; 3]);
    let now = Instant::now();
    let d = core.on_exit(ChildId(1), Exit::Failed, now);
    assert_eq!(
        d,
        Decision::Restart {
            stop: vec![],
            remove: vec![],
            start: ids(&[1]),
            delay: Duration::ZERO
        }
    );
}

#[test]
fn one_for_all_stops_siblings_in_reverse_and_restarts_all_in_order() {
    let mut core = core_with(Strategy::OneForAll, &[Restart::Permanent; 4]);
    let d = core.on_exit(ChildId(1), Exit::Failed, Instant::now());
    assert_eq!(
        d,
        Decision::Restart {
            stop: ids(&[3, 2, 0]),
            remove: vec![],
            start: ids(&[0, 1, 2, 3]),
            delay: Duration::ZERO
        }
    );
}

#[test]
fn rest_for_one_restarts_the_child_and_those_started_after_it() {
    let mut core = core_with(Strategy::RestForOne, &[Restart::Permanent; 4]);
    let d = core.on_exit(ChildId(1), Exit::Failed, Instant::now());
    assert_eq!(
        d,
        Decision::Restart {
            stop: ids(&[3, 2]),
            remove: vec![],
            start: ids(&[1, 2, 3]),
            delay: Duration::ZERO
        }
    );
}

#[test]
fn temporary_siblings_stopped_by_a_restart_are_removed() {
    let mut core = core_with(
        Strategy::OneForAll,
        &[Restart::Permanent, Restart::Temporary, Restart::Transient],
    );
    let d = core.on_exit(ChildId(0), Exit::Failed, Instant::now());
    assert_eq!(
        d,
        Decision::Restart {
            stop: ids(&[2, 1]),
            remove: ids(&[1]),
            start: ids(&[0, 2]),
            delay: Duration::ZERO
        }
    );
    assert_eq!(core.children().count(), 2);
}

#[test]
fn restart_types_decide_by_exit_kind() {
    let now = Instant::now();
    for (restart, exit, restarts) in [
        (Restart::Permanent, Exit::Normal, true),
        (Restart::Permanent, Exit::Failed, true),
        (Restart::Transient, Exit::Normal, false),
        (Restart::Transient, Exit::Failed, true),
        (Restart::Temporary, Exit::Normal, false),
        (Restart::Temporary, Exit::Failed, false),
    ] {
        let mut core = core_with(Strategy::OneForOne, &[restart]);
        let d = core.on_exit(ChildId(0), exit, now);
        if restarts {
            assert!(
                matches!(d, Decision::Restart { .. }),
                "{restart:?} {exit:?}: {d:?}"
            );
        } else {
            assert_eq!(d, Decision::Remove(ChildId(0)), "{restart:?} {exit:?}");
            assert_eq!(core.children().count(), 0);
        }
    }
}

#[test]
fn exits_of_children_being_restarted_are_ignored() {
    let mut core = core_with(Strategy::OneForAll, &[Restart::Permanent; 3]);
    let now = Instant::now();
    assert!(matches!(
        core.on_exit(ChildId(0), Exit::Failed, now),
        Decision::Restart { .. }
    ));
    // the siblings' own exit events arrive after the supervisor stopped them
    assert_eq!(
        core.on_exit(ChildId(1), Exit::Normal, now),
        Decision::Ignore
    );
    assert_eq!(
        core.on_exit(ChildId(2), Exit::Failed, now),
        Decision::Ignore
    );
    assert_eq!(
        core.on_exit(ChildId(9), Exit::Failed, now),
        Decision::Ignore
    );
    for id in 0..3 {
        core.started(ChildId(id));
    }
    assert!(matches!(
        core.on_exit(ChildId(2), Exit::Failed, now),
        Decision::Restart { .. }
    ));
}

#[test]
fn intensity_escalates_on_the_restart_past_the_limit() {
    let mut core = core_with(Strategy::OneForOne, &[Restart::Permanent]);
    let t0 = Instant::now();
    for i in 0..3 {
        let d = core.on_exit(
            ChildId(0),
            Exit::Failed,
            t0 + Duration::from_millis(i * 100),
        );
        assert!(matches!(d, Decision::Restart { .. }), "restart {i}: {d:?}");
        core.started(ChildId(0));
    }
    let d = core.on_exit(ChildId(0), Exit::Failed, t0 + Duration::from_millis(400));
    assert!(matches!(d, Decision::Escalate { .. }), "{d:?}");
}

#[test]
fn restarts_outside_the_window_are_forgotten() {
    let mut core = core_with(Strategy::OneForOne, &[Restart::Permanent]);
    let t0 = Instant::now();
    for i in 0..20u64 {
        let d = core.on_exit(ChildId(0), Exit::Failed, t0 + Duration::from_secs(2 * i));
        assert!(matches!(d, Decision::Restart { .. }), "restart {i}: {d:?}");
        core.started(ChildId(0));
    }
}

#[test]
fn backoff_doubles_inside_the_window_and_resets_after_it() {
    let mut core = SupervisorCore::new(
        Strategy::OneForOne,
        Intensity {
            max_restarts: 10,
            within: Duration::from_secs(10),
        },
        Some(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
        }),
    );
    core.add_child(ChildId(0), Restart::Permanent);
    let t0 = Instant::now();
    let mut delays = vec![];
    for i in 0..5 {
        match core.on_exit(ChildId(0), Exit::Failed, t0 + Duration::from_millis(i)) {
            Decision::Restart { delay, .. } => delays.push(delay.as_millis()),
            d => panic!("{d:?}"),
        }
        core.started(ChildId(0));
    }
    assert_eq!(delays, vec![10, 20, 40, 50, 50]);
    match core.on_exit(ChildId(0), Exit::Failed, t0 + Duration::from_secs(30)) {
        Decision::Restart { delay, .. } => assert_eq!(delay, Duration::from_millis(10)),
        d => panic!("{d:?}"),
    }
}

#[test]
fn backoff_saturates_instead_of_overflowing() {
    let b = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };
    assert_eq!(b.delay(0), Duration::from_secs(1));
    assert_eq!(b.delay(1), Duration::from_secs(1));
    assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
}

#[test]
fn shutdown_order_is_reverse_start_order() {
    let core = core_with(Strategy::OneForOne, &[Restart::Permanent; 4]);
    assert_eq!(core.shutdown_order(), ids(&[3, 2, 1, 0]));
}

fn strategy() -> impl PropStrategy<Value = super::Strategy> {
    prop_oneof![
        Just(super::Strategy::OneForOne),
        Just(super::Strategy::OneForAll),
        Just(super::Strategy::RestForOne),
    ]
}

fn restart_kind() -> impl PropStrategy<Value = Restart> {
    prop_oneof![
        Just(Restart::Permanent),
        Just(Restart::Transient),
        Just(Restart::Temporary)
    ]
}

proptest! {
    /// For any strategy and mix of children: a decided restart stops only running siblings,
    /// in reverse start order, restarts in start order, and never restarts a removed child;
    /// escalation happens exactly when the window holds more than `max_restarts` restarts.
    #[test]
    fn decisions_respect_order_and_intensity(
        strat in strategy(),
        kinds in proptest::collection::vec(restart_kind(), 1..8),
        exits in proptest::collection::vec((0usize..8, any::<bool>(), 0u64..3000), 1..40),
        max_restarts in 0u32..6,
    ) {
        let within = Duration::from_millis(1000);
        let mut core = SupervisorCore::new(strat, Intensity { max_restarts, within }, None);
        for (i, &k) in kinds.iter().enumerate() {
            core.add_child(ChildId(i as u64), k);
        }
        let t0 = Instant::now();
        let mut now = t0;
        let mut history: Vec<Instant> = vec![];
        for (who, failed, step) in exits {
            now += Duration::from_millis(step);
            let order: Vec<ChildId> = core.children().map(|(id, _)| id).collect();
            if order.is_empty() { break; }
            let id = order[who % order.len()];
            let exit = if failed { Exit::Failed } else { Exit::Normal };
            match core.on_exit(id, exit, now) {
                Decision::Ignore => prop_assert!(false, "running child ignored"),
                Decision::Remove(r) => prop_assert_eq!(r, id),
                Decision::Restart { stop, remove, start, delay } => {
                    prop_assert_eq!(delay, Duration::ZERO);
                    history.push(now);
                    prop_assert!(start.contains(&id));
                    prop_assert!(!stop.contains(&id));
                    let pos = |c: &ChildId| order.iter().position(|o| o == c);
                    let stop_pos: Vec<_> = stop.iter().map(pos).collect();
                    prop_assert!(stop_pos.windows(2).all(|w| w[0] > w[1]));
                    let start_pos: Vec<_> = start.iter().map(pos).collect();
                    prop_assert!(start_pos.windows(2).all(|w| w[0] < w[1]));
                    for r in &remove { prop_assert!(!start.contains(r)); }
                    for s in start { core.started(s); }
                }
                Decision::Escalate { .. } => {
                    history.push(now);
                    let in_window = history.iter().filter(|&&t| now.duration_since(t) < within).count();
                    prop_assert!(in_window > max_restarts as usize);
                    return Ok(());
                }
            }
            let in_window = history.iter().filter(|&&t| now.duration_since(t) < within).count();
            prop_assert!(in_window <= max_restarts as usize);
        }
    }
}
