//! Smooth weighted round robin: exact shares and smoothness

use std::collections::HashMap;
use std::time::Instant;

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use troupe_balancer::core::{Balancer, BreakerConfig, MemberId, Outcome, Strategy};

fn weighted(weights: &[u32]) -> Balancer {
    let mut balancer = Balancer::new(Strategy::WeightedRoundRobin, BreakerConfig::default());
    for (id, &weight) in weights.iter().enumerate() {
        balancer.add(MemberId(id as u64), weight, None);
    }
    balancer
}

fn pick_and_finish(balancer: &mut Balancer, count: usize) -> Vec<MemberId> {
    let mut rng = SmallRng::seed_from_u64(1);
    let now = Instant::now();
    (0..count)
        .map(|_| {
            let pick = balancer
                .pick(None, now, &mut rng)
                .expect("a member is available");
            balancer.finished(pick, Outcome::Success, now);
            pick.member
        })
        .collect()
}

fn counts(picks: &[MemberId]) -> HashMap<MemberId, usize> {
    let mut counts = HashMap::new();
    for &member in picks {
        *counts.entry(member).or_default() += 1;
    }
    counts
}

proptest! {
    /// Over k * (sum of weights) picks each member gets exactly k * weight, and every window of
    /// `total` consecutive picks gives each member exactly its weight (smoothness)
    #[test]
    fn shares_are_exact_in_every_window_of_total_picks(
        weights in proptest::collection::vec(1u32..=12, 1..8),
        k in 1usize..6,
    ) {
        let total: usize = weights.iter().map(|&weight| weight as usize).sum();
        let mut balancer = weighted(&weights);
        let picks = pick_and_finish(&mut balancer, total * k);
        let all = counts(&picks);
        for (id, &weight) in weights.iter().enumerate() {
            prop_assert_eq!(all.get(&MemberId(id as u64)).copied().unwrap_or(0), weight as usize * k);
        }
        for window in picks.windows(total) {
            let window_counts = counts(window);
            for (id, &weight) in weights.iter().enumerate() {
                prop_assert_eq!(
                    window_counts.get(&MemberId(id as u64)).copied().unwrap_or(0),
                    weight as usize,
                    "window {:?}", window
                );
            }
        }
    }

    /// No bursts at any scale: in any `n` consecutive picks, a member of weight `w` out of a
    /// total `W` is picked at most `ceil(w * n / W) + 1` times
    #[test]
    fn no_bursts_in_short_windows(
        weights in proptest::collection::vec(1u32..=12, 2..8),
        n in 1usize..30,
    ) {
        let total: usize = weights.iter().map(|&weight| weight as usize).sum();
        let mut balancer = weighted(&weights);
        let picks = pick_and_finish(&mut balancer, total * 3);
        for window in picks.windows(n.min(picks.len())) {
            let window_counts = counts(window);
            for (id, &weight) in weights.iter().enumerate() {
                let count = window_counts.get(&MemberId(id as u64)).copied().unwrap_or(0);
                let bound = (weight as usize * window.len()).div_ceil(total) + 1;
                prop_assert!(count <= bound, "member {} weight {} picked {} times in {:?}", id, weight, count, window);
            }
        }
    }
}

#[test]
fn matches_nginx_documented_sequence() {
    // nginx's own example: weights {a: 5, b: 1, c: 1} give a a b a c a a
    let mut balancer = weighted(&[5, 1, 1]);
    let picks = pick_and_finish(&mut balancer, 14);
    let names: String = picks
        .iter()
        .map(|member| ['a', 'b', 'c'][member.0 as usize])
        .collect();
    assert_eq!(names, "aabacaaaabacaa");
}

#[test]
fn weight_zero_counts_as_one() {
    let mut balancer = weighted(&[0, 1]);
    assert_eq!(
        balancer.member(MemberId(0)).map(|view| view.weight),
        Some(1)
    );
    let picks = pick_and_finish(&mut balancer, 10);
    assert_eq!(counts(&picks)[&MemberId(0)], 5);
}

#[test]
fn a_weight_update_changes_the_shares() {
    let mut balancer = weighted(&[1, 1]);
    balancer.add(MemberId(1), 3, None);
    let picks = pick_and_finish(&mut balancer, 8);
    let all = counts(&picks);
    assert_eq!((all[&MemberId(0)], all[&MemberId(1)]), (2, 6));
}

#[test]
fn shares_are_exact_among_the_members_left_when_one_is_down() {
    let mut balancer = Balancer::new(Strategy::WeightedRoundRobin, BreakerConfig::default());
    balancer.add(MemberId(0), 2, Some("a".into()));
    balancer.add(MemberId(1), 5, Some("b".into()));
    balancer.add(MemberId(2), 1, Some("c".into()));
    balancer.node_down("b");
    let picks = pick_and_finish(&mut balancer, 30);
    let all = counts(&picks);
    assert_eq!(all.get(&MemberId(1)), None);
    assert_eq!((all[&MemberId(0)], all[&MemberId(2)]), (20, 10));
}
