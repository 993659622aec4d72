//! Power of two choices: the less loaded of two distinct sampled members

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use troupe_balancer::core::{
    Balancer, BreakerConfig, MemberId, Outcome, Pick, Strategy as BalancerStrategy,
};

#[derive(Debug, Clone)]
enum Op {
    Pick,
    Finish(usize, Outcome),
    NodeDown(u8),
    NodeUp(u8),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = prop_oneof![
        6 => Just(Outcome::Success),
        1 => Just(Outcome::Error),
        1 => Just(Outcome::Timeout),
    ];
    prop_oneof![
        8 => Just(Op::Pick),
        6 => (any::<usize>(), outcome).prop_map(|(index, outcome)| Op::Finish(index, outcome)),
        1 => (0u8..3).prop_map(Op::NodeDown),
        1 => (0u8..3).prop_map(Op::NodeUp),
        1 => (0u64..3_000).prop_map(Op::Advance),
    ]
}

proptest! {
    /// Every pick with at least two eligible members samples two distinct eligible members and
    /// takes the one with fewer outstanding requests (the first sampled on a tie); with one
    /// eligible member it takes that one without sampling
    #[test]
    fn picks_the_less_loaded_of_the_sampled_pair(
        members in 1u64..8,
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let config = BreakerConfig { consecutive_failures: 3, ..BreakerConfig::default() };
        let mut balancer = Balancer::new(BalancerStrategy::PowerOfTwoChoices, config);
        for id in 0..members {
            balancer.add(MemberId(id), 1, Some(format!("node-{}", id % 3)));
        }
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut now = Instant::now();
        let mut outstanding: Vec<Pick> = Vec::new();
        for op in ops {
            match op {
                Op::Pick => {
                    let before = balancer.members();
                    let loads: HashMap<MemberId, usize> =
                        before.iter().map(|view| (view.id, view.outstanding)).collect();
                    let not_down = before.iter().filter(|view| !view.node_down).count();
                    let Some(pick) = balancer.pick(None, now, &mut rng) else {
                        prop_assert!(before.iter().all(|view| !view.available));
                        continue;
                    };
                    match pick.sampled {
                        Some([a, b]) => {
                            prop_assert_ne!(a, b);
                            prop_assert!(pick.member == a || pick.member == b);
                            let other = if pick.member == a { b } else { a };
                            prop_assert!(loads[&pick.member] <= loads[&other]);
                            if loads[&a] == loads[&b] {
                                prop_assert_eq!(pick.member, a);
                            }
                            for id in [a, b] {
                                let view = before.iter().find(|view| view.id == id);
                                prop_assert!(view.is_some_and(|view| !view.node_down));
                            }
                        }
                        None => {
                            // only one member was eligible; if it was available, it is the only
                            // available one
                            let available: Vec<MemberId> =
                                before.iter().filter(|view| view.available).map(|view| view.id).collect();
                            prop_assert!(available.is_empty() || available == [pick.member]);
                            prop_assert!(not_down >= 1);
                        }
                    }
                    outstanding.push(pick);
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

    /// With one member available, every pick is that member
    #[test]
    fn one_available_member_is_always_picked(
        members in 1u64..8,
        survivor in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let survivor = MemberId(survivor.index(members as usize) as u64);
        let mut balancer = Balancer::new(BalancerStrategy::PowerOfTwoChoices, BreakerConfig::default());
        for id in 0..members {
            balancer.add(MemberId(id), 1, Some(format!("node-{id}")));
            if MemberId(id) != survivor {
                balancer.node_down(&format!("node-{id}"));
            }
        }
        let mut rng = SmallRng::seed_from_u64(seed);
        let now = Instant::now();
        for _ in 0..50 {
            let pick = balancer.pick(None, now, &mut rng).expect("one member is available");
            prop_assert_eq!(pick.member, survivor);
            prop_assert_eq!(pick.sampled, None);
        }
    }
}

#[test]
fn with_two_members_of_different_load_always_picks_the_idler() {
    let mut balancer = Balancer::new(
        BalancerStrategy::PowerOfTwoChoices,
        BreakerConfig::default(),
    );
    balancer.add(MemberId(1), 1, None);
    balancer.add(MemberId(2), 1, None);
    let mut rng = SmallRng::seed_from_u64(3);
    let now = Instant::now();
    // four picks spread 2 + 2 (each pick takes the idler); then free member 2's, leaving
    // member 1 with 2 outstanding and member 2 idle
    let picks: Vec<Pick> = (0..4)
        .map(|_| balancer.pick(None, now, &mut rng).expect("available"))
        .collect();
    for pick in &picks {
        if pick.member == MemberId(2) {
            balancer.finished(*pick, Outcome::Success, now);
        }
    }
    assert_eq!(
        balancer.member(MemberId(1)).map(|view| view.outstanding),
        Some(2)
    );
    assert_eq!(
        balancer.member(MemberId(2)).map(|view| view.outstanding),
        Some(0)
    );
    for _ in 0..100 {
        let pick = balancer.pick(None, now, &mut rng).expect("available");
        assert_eq!(pick.member, MemberId(2));
        let sampled: BTreeSet<MemberId> = pick.sampled.expect("two eligible").into_iter().collect();
        assert_eq!(sampled, BTreeSet::from([MemberId(1), MemberId(2)]));
        balancer.finished(pick, Outcome::Success, now);
    }
}

#[test]
fn spreads_idle_load_over_every_member() {
    let mut balancer = Balancer::new(
        BalancerStrategy::PowerOfTwoChoices,
        BreakerConfig::default(),
    );
    for id in 0..5 {
        balancer.add(MemberId(id), 1, None);
    }
    let mut rng = SmallRng::seed_from_u64(11);
    let now = Instant::now();
    let mut counts: HashMap<MemberId, usize> = HashMap::new();
    for _ in 0..1_000 {
        let pick = balancer.pick(None, now, &mut rng).expect("available");
        balancer.finished(pick, Outcome::Success, now);
        *counts.entry(pick.member).or_default() += 1;
    }
    // uniform sampling: each member is the first sampled about 1/5 of the time
    assert_eq!(counts.len(), 5);
    assert!(
        counts.values().all(|&count| (120..=280).contains(&count)),
        "{counts:?}"
    );
}

#[test]
fn same_seed_same_picks() {
    let run = |seed| {
        let mut balancer = Balancer::new(
            BalancerStrategy::PowerOfTwoChoices,
            BreakerConfig::default(),
        );
        for id in 0..6 {
            balancer.add(MemberId(id), 1, None);
        }
        let mut rng = SmallRng::seed_from_u64(seed);
        let now = Instant::now();
        (0..50)
            .map(|_| {
                balancer
                    .pick(None, now, &mut rng)
                    .expect("available")
                    .member
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(5), run(5));
}
