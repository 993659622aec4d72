//! Membership and node events across every strategy, and robustness against any call sequence

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use troupe_balancer::core::{
    Balancer, BreakerConfig, BreakerState, MemberId, Outcome, Pick, Strategy as BalancerStrategy,
};

fn all_strategies() -> [BalancerStrategy; 5] {
    [
        BalancerStrategy::RoundRobin,
        BalancerStrategy::WeightedRoundRobin,
        BalancerStrategy::LeastOutstanding,
        BalancerStrategy::PowerOfTwoChoices,
        BalancerStrategy::consistent_hash(),
    ]
}

fn strategy() -> impl Strategy<Value = BalancerStrategy> {
    prop_oneof![
        Just(BalancerStrategy::RoundRobin),
        Just(BalancerStrategy::WeightedRoundRobin),
        Just(BalancerStrategy::LeastOutstanding),
        Just(BalancerStrategy::PowerOfTwoChoices),
        (0u32..40)
            .prop_map(|vnodes_per_weight| BalancerStrategy::ConsistentHash { vnodes_per_weight }),
    ]
}

fn key(index: usize) -> Vec<u8> {
    format!("key-{index}").into_bytes()
}

#[test]
fn empty_balancer_picks_nothing() {
    for strategy in all_strategies() {
        let mut balancer = Balancer::new(strategy, BreakerConfig::default());
        let mut rng = SmallRng::seed_from_u64(0);
        let now = Instant::now();
        assert_eq!(balancer.pick(None, now, &mut rng), None, "{strategy:?}");
        assert_eq!(
            balancer.pick(Some(b"key"), now, &mut rng),
            None,
            "{strategy:?}"
        );
        assert!(balancer.is_empty());
        assert_eq!(balancer.available(), 0);
    }
}

#[test]
fn all_members_unavailable_picks_nothing() {
    for strategy in all_strategies() {
        let mut balancer = Balancer::new(
            strategy,
            BreakerConfig {
                consecutive_failures: 1,
                ..BreakerConfig::default()
            },
        );
        let mut rng = SmallRng::seed_from_u64(0);
        let now = Instant::now();
        balancer.add(MemberId(1), 1, Some("a".into()));
        balancer.add(MemberId(2), 1, Some("b".into()));
        balancer.add(MemberId(3), 1, None);
        balancer.node_down("a");
        balancer.node_down("b");
        // eject member 3, the only one left
        let pick = balancer.pick(None, now, &mut rng).expect("member 3");
        assert_eq!(pick.member, MemberId(3));
        let _ = balancer.finished(pick, Outcome::Error, now);
        assert_eq!(balancer.available(), 0);
        assert_eq!(balancer.pick(None, now, &mut rng), None, "{strategy:?}");
        assert_eq!(
            balancer.pick(Some(b"key"), now, &mut rng),
            None,
            "{strategy:?}"
        );
    }
}

proptest! {
    /// Members of a down node are never picked, by any strategy, keyed or not; after node_up
    /// they are picked again
    #[test]
    fn down_nodes_are_skipped_until_they_come_back(
        strategy in strategy(),
        members in 2u64..10,
        down in 0u8..3,
        seed in any::<u64>(),
    ) {
        let mut balancer = Balancer::new(strategy, BreakerConfig::default());
        for id in 0..members {
            balancer.add(MemberId(id), 1, Some(format!("node-{}", id % 3)));
        }
        let down_node = format!("node-{down}");
        let on_down: BTreeSet<MemberId> =
            (0..members).filter(|id| id % 3 == u64::from(down)).map(MemberId).collect();
        let mut rng = SmallRng::seed_from_u64(seed);
        let now = Instant::now();
        balancer.node_down(&down_node);
        prop_assert_eq!(balancer.available(), members as usize - on_down.len());
        for index in 0..300 {
            let key = key(index);
            let key = (index % 2 == 0).then_some(&key[..]);
            let pick = balancer.pick(key, now, &mut rng).expect("another node is up");
            prop_assert!(!on_down.contains(&pick.member));
            let _ = balancer.finished(pick, Outcome::Success, now);
        }
        balancer.node_up(&down_node);
        prop_assert_eq!(balancer.available(), members as usize);
        let mut seen = BTreeSet::new();
        for index in 0..3_000 {
            let key = key(index);
            let key = (index % 2 == 0).then_some(&key[..]);
            let pick = balancer.pick(key, now, &mut rng).expect("all up");
            seen.insert(pick.member);
            let _ = balancer.finished(pick, Outcome::Success, now);
        }
        prop_assert!(on_down.is_subset(&seen), "members of the returned node are picked again");
    }
}

#[test]
fn a_member_added_on_a_down_node_starts_unavailable() {
    let mut balancer = Balancer::new(BalancerStrategy::RoundRobin, BreakerConfig::default());
    balancer.node_down("a");
    balancer.add(MemberId(1), 1, Some("a".into()));
    let view = balancer.member(MemberId(1)).expect("added");
    assert!(view.node_down && !view.available);
    let mut rng = SmallRng::seed_from_u64(0);
    assert_eq!(balancer.pick(None, Instant::now(), &mut rng), None);
    // moving it to another node makes it available
    balancer.add(MemberId(1), 1, Some("b".into()));
    assert_eq!(balancer.available(), 1);
}

#[test]
fn add_is_an_idempotent_update_that_keeps_outstanding_requests() {
    let mut balancer = Balancer::new(BalancerStrategy::LeastOutstanding, BreakerConfig::default());
    let mut rng = SmallRng::seed_from_u64(0);
    let now = Instant::now();
    balancer.add(MemberId(1), 1, None);
    let pick = balancer.pick(None, now, &mut rng).expect("available");
    balancer.add(MemberId(1), 4, Some("x".into()));
    balancer.add(MemberId(1), 4, Some("x".into()));
    assert_eq!(balancer.len(), 1);
    let view = balancer.member(MemberId(1)).expect("present");
    assert_eq!(
        (view.weight, view.node.as_deref(), view.outstanding),
        (4, Some("x"), 1)
    );
    let _ = balancer.finished(pick, Outcome::Success, now);
    assert_eq!(
        balancer.member(MemberId(1)).map(|view| view.outstanding),
        Some(0)
    );
}

#[test]
fn finishing_twice_or_after_removal_is_ignored() {
    let mut balancer = Balancer::new(BalancerStrategy::RoundRobin, BreakerConfig::default());
    let mut rng = SmallRng::seed_from_u64(0);
    let now = Instant::now();
    balancer.add(MemberId(1), 1, None);
    let first = balancer.pick(None, now, &mut rng).expect("available");
    let second = balancer.pick(None, now, &mut rng).expect("available");
    let _ = balancer.finished(first, Outcome::Success, now);
    let _ = balancer.finished(first, Outcome::Success, now);
    assert_eq!(
        balancer.member(MemberId(1)).map(|view| view.outstanding),
        Some(1)
    );

    balancer.remove(MemberId(1));
    assert!(!balancer.contains(MemberId(1)));
    assert_eq!(balancer.finished(second, Outcome::Error, now), None);
    // a new member with the same id does not inherit the old picks
    balancer.add(MemberId(1), 1, None);
    let third = balancer.pick(None, now, &mut rng).expect("available");
    let _ = balancer.finished(second, Outcome::Success, now);
    assert_eq!(
        balancer.member(MemberId(1)).map(|view| view.outstanding),
        Some(1)
    );
    let _ = balancer.finished(third, Outcome::Success, now);
    assert_eq!(
        balancer.member(MemberId(1)).map(|view| view.outstanding),
        Some(0)
    );
}

#[test]
fn removing_unknown_members_and_nodes_is_harmless() {
    let mut balancer = Balancer::new(BalancerStrategy::RoundRobin, BreakerConfig::default());
    balancer.remove(MemberId(5));
    balancer.node_up("never-down");
    balancer.node_down("no-members");
    balancer.add(MemberId(1), 0, None);
    assert_eq!(balancer.members()[0].weight, 1);
    assert_eq!(balancer.available(), 1);
}

#[test]
fn pick_tickets_are_unique_and_increasing() {
    let mut balancer = Balancer::new(
        BalancerStrategy::PowerOfTwoChoices,
        BreakerConfig::default(),
    );
    let mut rng = SmallRng::seed_from_u64(0);
    let now = Instant::now();
    balancer.add(MemberId(1), 1, None);
    balancer.add(MemberId(2), 1, None);
    let tickets: Vec<u64> = (0..10)
        .map(|_| {
            balancer
                .pick(None, now, &mut rng)
                .expect("available")
                .ticket()
        })
        .collect();
    assert!(tickets.windows(2).all(|pair| pair[0] < pair[1]));
}

#[derive(Debug, Clone)]
enum Op {
    Add(u8, u32, Option<u8>),
    Remove(u8),
    NodeDown(u8),
    NodeUp(u8),
    Pick(Option<u8>),
    /// Finish a pick from the history, maybe one already finished or of a removed member
    Finish(usize, Outcome),
    /// Move the clock by this many milliseconds, backwards when negative
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let outcome = prop_oneof![
        Just(Outcome::Success),
        Just(Outcome::Error),
        Just(Outcome::Timeout)
    ];
    prop_oneof![
        2 => (0u8..8, 0u32..5, proptest::option::of(0u8..3))
            .prop_map(|(id, weight, node)| Op::Add(id, weight, node)),
        1 => (0u8..8).prop_map(Op::Remove),
        1 => (0u8..3).prop_map(Op::NodeDown),
        1 => (0u8..3).prop_map(Op::NodeUp),
        6 => proptest::option::of(any::<u8>()).prop_map(Op::Pick),
        5 => (any::<usize>(), outcome).prop_map(|(index, outcome)| Op::Finish(index, outcome)),
        2 => (-1_000i64..6_000).prop_map(Op::Advance),
    ]
}

proptest! {
    /// No sequence of calls panics (weights of 0, unknown ids, finishing twice, finishing after
    /// removal, the clock going backwards), and the bookkeeping stays exact: each member's
    /// outstanding count is the number of its picks not yet finished since it was (re)added,
    /// `available()` agrees with `members()`, picks name present, eligible members, and the
    /// member list stays sorted and unique
    #[test]
    fn any_call_sequence_keeps_the_books(
        strategy in strategy(),
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let config = BreakerConfig {
            consecutive_failures: 2,
            open_for: Duration::from_secs(3),
            max_open_for: Duration::from_secs(20),
        };
        let mut balancer = Balancer::new(strategy, config);
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut now = Instant::now() + Duration::from_secs(3_600);
        let mut history: Vec<Pick> = Vec::new();
        // the model: live (unfinished) tickets per present member, and down nodes
        let mut live: HashMap<MemberId, HashSet<u64>> = HashMap::new();
        let mut down: HashSet<String> = HashSet::new();
        for op in ops {
            match op {
                Op::Add(id, weight, node) => {
                    balancer.add(MemberId(u64::from(id)), weight, node.map(|node| format!("node-{node}")));
                    live.entry(MemberId(u64::from(id))).or_default();
                }
                Op::Remove(id) => {
                    balancer.remove(MemberId(u64::from(id)));
                    live.remove(&MemberId(u64::from(id)));
                }
                Op::NodeDown(node) => {
                    balancer.node_down(&format!("node-{node}"));
                    down.insert(format!("node-{node}"));
                }
                Op::NodeUp(node) => {
                    balancer.node_up(&format!("node-{node}"));
                    down.remove(&format!("node-{node}"));
                }
                Op::Pick(key) => {
                    let before = balancer.members();
                    let key = key.map(|byte| [byte]);
                    if let Some(pick) = balancer.pick(key.as_ref().map(|key| &key[..]), now, &mut rng) {
                        let view = before.iter().find(|view| view.id == pick.member);
                        prop_assert!(view.is_some_and(|view| !view.node_down && view.state != BreakerState::HalfOpen));
                        let fresh = live.entry(pick.member).or_default().insert(pick.ticket());
                        prop_assert!(fresh);
                        history.push(pick);
                    } else {
                        prop_assert!(before.iter().all(|view| !view.available));
                    }
                }
                Op::Finish(index, outcome) => {
                    if !history.is_empty() {
                        let pick = history[index % history.len()];
                        let _ = balancer.finished(pick, outcome, now);
                        if let Some(tickets) = live.get_mut(&pick.member) {
                            tickets.remove(&pick.ticket());
                        }
                    }
                }
                Op::Advance(millis) => {
                    let step = Duration::from_millis(millis.unsigned_abs());
                    now = if millis >= 0 { now + step } else { now.checked_sub(step).unwrap_or(now) };
                }
            }
            let views = balancer.members();
            prop_assert_eq!(views.len(), live.len());
            prop_assert!(views.windows(2).all(|pair| pair[0].id < pair[1].id));
            prop_assert_eq!(balancer.available(), views.iter().filter(|view| view.available).count());
            for view in &views {
                prop_assert_eq!(view.outstanding, live[&view.id].len(), "member {}", view.id);
                prop_assert!(view.weight >= 1);
                let node_down = view.node.as_ref().is_some_and(|node| down.contains(node));
                prop_assert_eq!(view.node_down, node_down);
                prop_assert_eq!(view.available, !node_down && view.state == BreakerState::Closed);
            }
        }
    }
}
