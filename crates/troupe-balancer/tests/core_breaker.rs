//! The circuit breaker: each transition of the state machine, and ejection in the balancer

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use troupe_balancer::core::breaker::{Admission, Breaker, BreakerConfig, BreakerState, Transition};
use troupe_balancer::core::{
    Balancer, HealthChange, MemberId, Outcome, Pick, Strategy as BalancerStrategy,
};

const OPEN_FOR: Duration = Duration::from_secs(5);
const NANO: Duration = Duration::from_nanos(1);

fn config(consecutive_failures: u32) -> BreakerConfig {
    BreakerConfig {
        consecutive_failures,
        open_for: OPEN_FOR,
        max_open_for: Duration::from_secs(60),
    }
}

/// A breaker tripped open at the returned instant
fn tripped() -> (Breaker, Instant) {
    let mut breaker = Breaker::new(config(3));
    let t0 = Instant::now();
    breaker.on_failure(t0);
    breaker.on_failure(t0);
    breaker.on_failure(t0);
    assert_eq!(breaker.state(), BreakerState::Open);
    (breaker, t0)
}

const OPENED: Transition = Transition {
    from: BreakerState::Closed,
    to: BreakerState::Open,
};
const PROBING: Transition = Transition {
    from: BreakerState::Open,
    to: BreakerState::HalfOpen,
};
const CLOSED: Transition = Transition {
    from: BreakerState::HalfOpen,
    to: BreakerState::Closed,
};
const REOPENED: Transition = Transition {
    from: BreakerState::HalfOpen,
    to: BreakerState::Open,
};

// ---- the state machine, one test per row of the transition table ----

#[test]
fn closed_passes_and_counts_failures_below_the_threshold() {
    let mut breaker = Breaker::new(config(3));
    let t0 = Instant::now();
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.can_pass(t0), Admission::Pass);
    assert_eq!(breaker.on_failure(t0), None);
    assert_eq!(breaker.on_failure(t0), None);
    assert_eq!(breaker.consecutive_failures(), 2);
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.can_pass(t0), Admission::Pass);
}

#[test]
fn a_success_in_closed_resets_the_count() {
    let mut breaker = Breaker::new(config(3));
    let t0 = Instant::now();
    breaker.on_failure(t0);
    breaker.on_failure(t0);
    assert_eq!(breaker.on_success(t0), None);
    assert_eq!(breaker.consecutive_failures(), 0);
    breaker.on_failure(t0);
    breaker.on_failure(t0);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn the_threshold_failure_opens() {
    let mut breaker = Breaker::new(config(3));
    let t0 = Instant::now();
    breaker.on_failure(t0);
    breaker.on_failure(t0);
    assert_eq!(breaker.on_failure(t0), Some(OPENED));
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(breaker.probe_at(), Some(t0 + OPEN_FOR));
}

#[test]
fn open_rejects_until_the_period_ends_then_admits_a_probe() {
    let (breaker, t0) = tripped();
    assert_eq!(breaker.can_pass(t0), Admission::Reject);
    assert_eq!(breaker.can_pass(t0 + OPEN_FOR - NANO), Admission::Reject);
    assert_eq!(breaker.can_pass(t0 + OPEN_FOR), Admission::Probe);
    assert_eq!(breaker.can_pass(t0 + OPEN_FOR * 10), Admission::Probe);
    // asking changes nothing
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[test]
fn a_probe_sent_too_early_is_refused() {
    let (mut breaker, t0) = tripped();
    assert_eq!(breaker.on_probe_sent(t0 + OPEN_FOR - NANO), None);
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[test]
fn sending_the_probe_half_opens_and_rejects_everything_else() {
    let (mut breaker, t0) = tripped();
    let due = t0 + OPEN_FOR;
    assert_eq!(breaker.on_probe_sent(due), Some(PROBING));
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert_eq!(breaker.can_pass(due), Admission::Reject);
    assert_eq!(breaker.can_pass(due + OPEN_FOR * 100), Admission::Reject);
    // a second probe cannot be sent
    assert_eq!(breaker.on_probe_sent(due), None);
    assert_eq!(breaker.probe_at(), None);
}

#[test]
fn a_successful_probe_closes_and_resets_the_count() {
    let (mut breaker, t0) = tripped();
    let due = t0 + OPEN_FOR;
    breaker.on_probe_sent(due);
    assert_eq!(breaker.on_success(due), Some(CLOSED));
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.can_pass(due), Admission::Pass);
    assert_eq!(breaker.consecutive_failures(), 0);
    // a full threshold of failures is needed to open again
    breaker.on_failure(due);
    breaker.on_failure(due);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn a_failed_probe_reopens_for_a_doubled_period_capped() {
    let (mut breaker, t0) = tripped();
    let mut now = t0 + OPEN_FOR;
    let mut expected = OPEN_FOR;
    for _ in 0..8 {
        assert_eq!(breaker.on_probe_sent(now), Some(PROBING));
        assert_eq!(breaker.on_failure(now), Some(REOPENED));
        expected = (expected * 2).min(Duration::from_secs(60));
        assert_eq!(breaker.probe_at(), Some(now + expected));
        assert_eq!(breaker.can_pass(now + expected - NANO), Admission::Reject);
        now += expected;
        assert_eq!(breaker.can_pass(now), Admission::Probe);
    }
    assert_eq!(expected, Duration::from_secs(60));
    // a success resets the growth: the next ejection is for `open_for` again
    breaker.on_probe_sent(now);
    breaker.on_success(now);
    for _ in 0..3 {
        breaker.on_failure(now);
    }
    assert_eq!(breaker.probe_at(), Some(now + OPEN_FOR));
}

#[test]
fn open_ignores_stale_outcomes() {
    let (mut breaker, t0) = tripped();
    let later = t0 + OPEN_FOR / 2;
    assert_eq!(breaker.on_success(later), None);
    assert_eq!(breaker.on_failure(later), None);
    assert_eq!(breaker.state(), BreakerState::Open);
    // the period is not extended by a late failure
    assert_eq!(breaker.probe_at(), Some(t0 + OPEN_FOR));
}

#[test]
fn config_is_normalized() {
    let breaker = Breaker::new(BreakerConfig {
        consecutive_failures: 0,
        open_for: OPEN_FOR,
        max_open_for: Duration::ZERO,
    });
    assert_eq!(breaker.config().consecutive_failures, 1);
    assert_eq!(breaker.config().max_open_for, OPEN_FOR);
    let mut breaker = breaker;
    let t0 = Instant::now();
    assert_eq!(breaker.on_failure(t0), Some(OPENED));
    breaker.on_probe_sent(t0 + OPEN_FOR);
    breaker.on_failure(t0 + OPEN_FOR);
    // max_open_for == open_for: the period does not grow
    assert_eq!(breaker.probe_at(), Some(t0 + OPEN_FOR * 2));
}

#[test]
fn defaults_are_five_failures_and_five_seconds() {
    let config = BreakerConfig::default();
    assert_eq!(config.consecutive_failures, 5);
    assert_eq!(config.open_for, Duration::from_secs(5));
}

#[test]
fn a_clock_going_backwards_keeps_it_open() {
    let (breaker, t0) = tripped();
    if let Some(earlier) = t0.checked_sub(Duration::from_secs(1)) {
        assert_eq!(breaker.can_pass(earlier), Admission::Reject);
    }
}

#[test]
fn zero_open_for_admits_a_probe_at_once() {
    let mut breaker = Breaker::new(BreakerConfig {
        consecutive_failures: 1,
        open_for: Duration::ZERO,
        max_open_for: Duration::ZERO,
    });
    let t0 = Instant::now();
    breaker.on_failure(t0);
    assert_eq!(breaker.can_pass(t0), Admission::Probe);
}

#[test]
fn huge_periods_do_not_panic() {
    let mut breaker = Breaker::new(BreakerConfig {
        consecutive_failures: 1,
        open_for: Duration::MAX,
        max_open_for: Duration::MAX,
    });
    let t0 = Instant::now();
    breaker.on_failure(t0);
    assert_eq!(breaker.probe_at(), None); // not representable
    assert_eq!(
        breaker.can_pass(t0 + Duration::from_secs(1_000_000)),
        Admission::Reject
    );
}

// ---- the breaker inside the balancer ----

fn balancer(strategy: BalancerStrategy, members: u64) -> Balancer {
    let mut balancer = Balancer::new(strategy, config(3));
    for id in 0..members {
        balancer.add(MemberId(id), 1, None);
    }
    balancer
}

#[test]
fn a_failing_member_is_ejected_probed_and_readmitted() {
    let mut balancer = balancer(BalancerStrategy::RoundRobin, 1);
    let mut rng = SmallRng::seed_from_u64(0);
    let t0 = Instant::now();
    let mut change = None;
    for outcome in [Outcome::Error, Outcome::Timeout, Outcome::Error] {
        let pick = balancer.pick(None, t0, &mut rng).expect("closed");
        assert!(!pick.probe);
        change = balancer.finished(pick, outcome, t0);
    }
    assert_eq!(
        change,
        Some(HealthChange {
            member: MemberId(0),
            from: BreakerState::Closed,
            to: BreakerState::Open
        })
    );
    assert_eq!(balancer.available(), 0);
    assert_eq!(balancer.pick(None, t0 + OPEN_FOR - NANO, &mut rng), None);

    let due = t0 + OPEN_FOR;
    let probe = balancer.pick(None, due, &mut rng).expect("probe due");
    assert!(probe.probe);
    assert_eq!(balancer.members()[0].state, BreakerState::HalfOpen);
    assert_eq!(
        balancer.pick(None, due, &mut rng),
        None,
        "one probe at a time"
    );

    let change = balancer.finished(probe, Outcome::Success, due);
    assert_eq!(change.map(|change| change.to), Some(BreakerState::Closed));
    assert_eq!(balancer.available(), 1);
    let pick = balancer.pick(None, due, &mut rng).expect("readmitted");
    assert!(!pick.probe);
}

#[test]
fn an_abandoned_request_says_nothing_of_its_member_but_an_abandoned_probe_fails() {
    let mut balancer = balancer(BalancerStrategy::RoundRobin, 1);
    let mut rng = SmallRng::seed_from_u64(0);
    let t0 = Instant::now();
    // abandoned requests between failures neither count as failures nor reset the count
    for outcome in [
        Outcome::Error,
        Outcome::Abandoned,
        Outcome::Error,
        Outcome::Abandoned,
    ] {
        let pick = balancer.pick(None, t0, &mut rng).expect("closed");
        assert_eq!(balancer.finished(pick, outcome, t0), None);
        assert_eq!(balancer.members()[0].outstanding, 0, "the request ended");
    }
    let pick = balancer.pick(None, t0, &mut rng).expect("closed");
    let change = balancer.finished(pick, Outcome::Error, t0);
    assert_eq!(
        change.map(|c| c.to),
        Some(BreakerState::Open),
        "the third failure"
    );
    let due = t0 + OPEN_FOR;
    let probe = balancer.pick(None, due, &mut rng).expect("probe due");
    let change = balancer.finished(probe, Outcome::Abandoned, due);
    assert_eq!(
        change.map(|c| (c.from, c.to)),
        Some((BreakerState::HalfOpen, BreakerState::Open)),
        "nobody would probe it again otherwise"
    );
}

#[test]
fn a_failed_probe_ejects_again_for_longer() {
    let mut balancer = balancer(BalancerStrategy::LeastOutstanding, 1);
    let mut rng = SmallRng::seed_from_u64(0);
    let t0 = Instant::now();
    for _ in 0..3 {
        let pick = balancer.pick(None, t0, &mut rng).expect("closed");
        let _ = balancer.finished(pick, Outcome::Error, t0);
    }
    let due = t0 + OPEN_FOR;
    let probe = balancer.pick(None, due, &mut rng).expect("probe due");
    let change = balancer.finished(probe, Outcome::Timeout, due);
    assert_eq!(
        change.map(|change| (change.from, change.to)),
        Some((BreakerState::HalfOpen, BreakerState::Open))
    );
    assert_eq!(
        balancer.pick(None, due + OPEN_FOR, &mut rng),
        None,
        "period doubled"
    );
    assert!(
        balancer
            .pick(None, due + OPEN_FOR * 2, &mut rng)
            .is_some_and(|pick| pick.probe)
    );
}

#[test]
fn ejected_members_traffic_goes_to_the_others() {
    let mut balancer = balancer(BalancerStrategy::RoundRobin, 3);
    let mut rng = SmallRng::seed_from_u64(0);
    let t0 = Instant::now();
    // member 1 fails every request until ejected
    while balancer
        .member(MemberId(1))
        .is_some_and(|view| view.state == BreakerState::Closed)
    {
        let pick = balancer.pick(None, t0, &mut rng).expect("available");
        let outcome = if pick.member == MemberId(1) {
            Outcome::Error
        } else {
            Outcome::Success
        };
        let _ = balancer.finished(pick, outcome, t0);
    }
    for _ in 0..20 {
        let pick = balancer.pick(None, t0, &mut rng).expect("available");
        assert_ne!(pick.member, MemberId(1));
        let _ = balancer.finished(pick, Outcome::Success, t0);
    }
}

#[test]
fn stale_outcomes_do_not_feed_the_breaker() {
    let mut balancer = balancer(BalancerStrategy::RoundRobin, 1);
    let mut rng = SmallRng::seed_from_u64(0);
    let t0 = Instant::now();
    // six requests in flight; three fail and eject the member
    let picks: Vec<Pick> = (0..6)
        .map(|_| balancer.pick(None, t0, &mut rng).expect("closed"))
        .collect();
    for &pick in &picks[..3] {
        let _ = balancer.finished(pick, Outcome::Error, t0);
    }
    assert_eq!(balancer.members()[0].state, BreakerState::Open);
    // a late success while open does not close it, a late failure does not extend it
    assert_eq!(
        balancer.finished(picks[3], Outcome::Success, t0 + OPEN_FOR / 2),
        None
    );
    assert_eq!(
        balancer.finished(picks[4], Outcome::Error, t0 + OPEN_FOR / 2),
        None
    );
    assert_eq!(balancer.members()[0].state, BreakerState::Open);
    let due = t0 + OPEN_FOR;
    let probe = balancer.pick(None, due, &mut rng).expect("probe due");
    let _ = balancer.finished(probe, Outcome::Success, due);
    // the last request, sent before the ejection, fails after the readmission: ignored
    assert_eq!(balancer.finished(picks[5], Outcome::Timeout, due), None);
    let view = &balancer.members()[0];
    assert_eq!((view.state, view.outstanding), (BreakerState::Closed, 0));
}

#[test]
fn only_the_probe_decides_while_half_open() {
    let mut balancer = balancer(BalancerStrategy::RoundRobin, 1);
    let mut rng = SmallRng::seed_from_u64(0);
    let t0 = Instant::now();
    let picks: Vec<Pick> = (0..4)
        .map(|_| balancer.pick(None, t0, &mut rng).expect("closed"))
        .collect();
    for &pick in &picks[..3] {
        let _ = balancer.finished(pick, Outcome::Error, t0);
    }
    let due = t0 + OPEN_FOR;
    let probe = balancer.pick(None, due, &mut rng).expect("probe due");
    // an older request succeeding does not stand in for the probe
    assert_eq!(balancer.finished(picks[3], Outcome::Success, due), None);
    assert_eq!(balancer.members()[0].state, BreakerState::HalfOpen);
    let change = balancer.finished(probe, Outcome::Success, due);
    assert_eq!(change.map(|change| change.to), Some(BreakerState::Closed));
}

// ---- properties ----

#[derive(Debug, Clone)]
enum Op {
    Pick(Option<u8>),
    Finish(usize, Outcome),
    NodeDown(u8),
    NodeUp(u8),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = prop_oneof![
        2 => Just(Outcome::Success),
        2 => Just(Outcome::Error),
        1 => Just(Outcome::Timeout),
        1 => Just(Outcome::Abandoned),
    ];
    prop_oneof![
        8 => proptest::option::of(any::<u8>()).prop_map(Op::Pick),
        6 => (any::<usize>(), outcome).prop_map(|(index, outcome)| Op::Finish(index, outcome)),
        1 => (0u8..3).prop_map(Op::NodeDown),
        1 => (0u8..3).prop_map(Op::NodeUp),
        2 => (0u64..4_000).prop_map(Op::Advance),
    ]
}

fn strategy() -> impl Strategy<Value = BalancerStrategy> {
    prop_oneof![
        Just(BalancerStrategy::RoundRobin),
        Just(BalancerStrategy::WeightedRoundRobin),
        Just(BalancerStrategy::LeastOutstanding),
        Just(BalancerStrategy::PowerOfTwoChoices),
        (1u32..20)
            .prop_map(|vnodes_per_weight| BalancerStrategy::ConsistentHash { vnodes_per_weight }),
    ]
}

proptest! {
    /// Whatever the strategy and the sequence of picks, outcomes, node events and time: a member
    /// ejected at `t` gets no pick before `t + open_for`; then the first pick is its probe; no
    /// other pick reaches it while the probe is outstanding; and a member is half-open exactly
    /// while its probe is outstanding
    #[test]
    fn ejected_members_get_only_one_probe_and_only_when_due(
        strategy in strategy(),
        members in 1u64..6,
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let mut balancer = Balancer::new(strategy, config(2));
        for id in 0..members {
            balancer.add(MemberId(id), 1 + id as u32 % 2, Some(format!("node-{}", id % 3)));
        }
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut now = Instant::now();
        let mut outstanding: Vec<Pick> = Vec::new();
        // when each ejected member was (last) opened, and whether its probe is outstanding
        let mut opened_at: HashMap<MemberId, Instant> = HashMap::new();
        let mut probing: HashMap<MemberId, bool> = HashMap::new();
        for op in ops {
            match op {
                Op::Pick(key) => {
                    let key = key.map(|byte| [byte]);
                    let Some(pick) = balancer.pick(key.as_ref().map(|key| &key[..]), now, &mut rng) else {
                        continue;
                    };
                    match opened_at.get(&pick.member) {
                        Some(&since) => {
                            prop_assert!(now.duration_since(since) >= OPEN_FOR, "picked {} too early", pick.member);
                            prop_assert!(pick.probe, "an ordinary request reached ejected {}", pick.member);
                            let was_probing = probing.insert(pick.member, true).unwrap_or(false);
                            prop_assert!(!was_probing, "second probe to {}", pick.member);
                        }
                        None => prop_assert!(!pick.probe),
                    }
                    outstanding.push(pick);
                }
                Op::Finish(index, outcome) => {
                    if outstanding.is_empty() {
                        continue;
                    }
                    let pick = outstanding.swap_remove(index % outstanding.len());
                    if pick.probe {
                        probing.insert(pick.member, false);
                    }
                    if let Some(change) = balancer.finished(pick, outcome, now) {
                        match change.to {
                            BreakerState::Open => { opened_at.insert(change.member, now); }
                            BreakerState::Closed => { opened_at.remove(&change.member); }
                            BreakerState::HalfOpen => prop_assert!(false, "finished never half-opens"),
                        }
                    }
                }
                Op::NodeDown(node) => balancer.node_down(&format!("node-{node}")),
                Op::NodeUp(node) => balancer.node_up(&format!("node-{node}")),
                Op::Advance(millis) => now += Duration::from_millis(millis),
            }
            for view in balancer.members() {
                let half_open = view.state == BreakerState::HalfOpen;
                prop_assert_eq!(half_open, probing.get(&view.id).copied().unwrap_or(false));
                prop_assert_eq!(view.state != BreakerState::Closed, opened_at.contains_key(&view.id));
            }
        }
    }
}
