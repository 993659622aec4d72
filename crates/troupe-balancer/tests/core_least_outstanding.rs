//! Least outstanding requests: never a busier member while an idler one is available

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use troupe_balancer::core::{
    Balancer, BreakerConfig, MemberId, MemberView, Outcome, Pick, Strategy as BalancerStrategy,
};

#[derive(Debug, Clone)]
enum Op {
    Pick,
    /// Finish the outstanding pick at this index (modulo their count) with this outcome
    Finish(usize, Outcome),
    NodeDown(u8),
    NodeUp(u8),
    Advance(u64),
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        6 => Just(Outcome::Success),
        1 => Just(Outcome::Error),
        1 => Just(Outcome::Timeout),
        1 => Just(Outcome::Abandoned),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => Just(Op::Pick),
        6 => (any::<usize>(), outcome()).prop_map(|(index, outcome)| Op::Finish(index, outcome)),
        1 => (0u8..3).prop_map(Op::NodeDown),
        1 => (0u8..3).prop_map(Op::NodeUp),
        1 => (0u64..3_000).prop_map(Op::Advance),
    ]
}

fn outstanding_by_id(views: &[MemberView]) -> HashMap<MemberId, usize> {
    views
        .iter()
        .map(|view| (view.id, view.outstanding))
        .collect()
}

proptest! {
    /// For any sequence of picks, finishes (with any outcome), node events and time passing,
    /// every pick's member had no more outstanding requests than any available member at pick
    /// time, and a pick is `None` only when no member is available
    #[test]
    fn never_picks_busier_than_an_available_member(
        members in 1u64..8,
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let config = BreakerConfig { consecutive_failures: 3, ..BreakerConfig::default() };
        let mut balancer = Balancer::new(BalancerStrategy::LeastOutstanding, config);
        for id in 0..members {
            balancer.add(MemberId(id), 1 + id as u32 % 3, Some(format!("node-{}", id % 3)));
        }
        let mut rng = SmallRng::seed_from_u64(0);
        let mut now = Instant::now();
        let mut outstanding: Vec<Pick> = Vec::new();
        for op in ops {
            match op {
                Op::Pick => {
                    let before = balancer.members();
                    let loads = outstanding_by_id(&before);
                    match balancer.pick(None, now, &mut rng) {
                        Some(pick) => {
                            let picked = loads[&pick.member];
                            for view in before.iter().filter(|view| view.available) {
                                prop_assert!(
                                    picked <= view.outstanding,
                                    "picked {} with {} outstanding over available {} with {}",
                                    pick.member, picked, view.id, view.outstanding
                                );
                            }
                            outstanding.push(pick);
                        }
                        None => prop_assert!(before.iter().all(|view| !view.available)),
                    }
                }
                Op::Finish(index, outcome) => {
                    if !outstanding.is_empty() {
                        let pick = outstanding.swap_remove(index % outstanding.len());
                        let _ = balancer.finished(pick, outcome, now);
                    }
                }
                Op::NodeDown(node) => balancer.node_down(&format!("node-{node}")),
                Op::NodeUp(node) => balancer.node_up(&format!("node-{node}")),
                Op::Advance(millis) => now += Duration::from_millis(millis),
            }
        }
    }
}

#[test]
fn prefers_the_idle_member() {
    let mut balancer = Balancer::new(BalancerStrategy::LeastOutstanding, BreakerConfig::default());
    balancer.add(MemberId(1), 1, None);
    balancer.add(MemberId(2), 1, None);
    balancer.add(MemberId(3), 1, None);
    let mut rng = SmallRng::seed_from_u64(0);
    let now = Instant::now();
    let a = balancer.pick(None, now, &mut rng).expect("available");
    let b = balancer.pick(None, now, &mut rng).expect("available");
    let c = balancer.pick(None, now, &mut rng).expect("available");
    let mut members = [a.member, b.member, c.member];
    members.sort();
    assert_eq!(members, [MemberId(1), MemberId(2), MemberId(3)]);
    // free member 2: it is now the only idle one, whatever the rotation says
    balancer.finished(b, Outcome::Success, now);
    let d = balancer.pick(None, now, &mut rng).expect("available");
    assert_eq!(d.member, b.member);
}

#[test]
fn ties_rotate_round_robin() {
    let mut balancer = Balancer::new(BalancerStrategy::LeastOutstanding, BreakerConfig::default());
    for id in 1..=4 {
        balancer.add(MemberId(id), 1, None);
    }
    let mut rng = SmallRng::seed_from_u64(0);
    let now = Instant::now();
    let mut counts: HashMap<MemberId, usize> = HashMap::new();
    for _ in 0..40 {
        let pick = balancer.pick(None, now, &mut rng).expect("available");
        balancer.finished(pick, Outcome::Success, now);
        *counts.entry(pick.member).or_default() += 1;
    }
    assert!(counts.values().all(|&count| count == 10), "{counts:?}");
}
