//! Round robin: fairness and order

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use troupe_balancer::core::{Balancer, BreakerConfig, MemberId, Outcome, Strategy};

/// Picks `count` times, finishing each pick at once with success, and returns the members picked
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

proptest! {
    /// Over k*N picks with all N available and each finished at once, each member gets exactly k
    #[test]
    fn each_member_gets_exactly_k_of_k_times_n(
        ids in proptest::collection::btree_set(any::<u64>(), 1..20),
        weights in proptest::collection::vec(0u32..10, 20),
        k in 1usize..20,
    ) {
        let mut balancer = Balancer::new(Strategy::RoundRobin, BreakerConfig::default());
        for (&id, &weight) in ids.iter().zip(&weights) {
            balancer.add(MemberId(id), weight, None);
        }
        let picks = pick_and_finish(&mut balancer, k * ids.len());
        let mut counts: HashMap<MemberId, usize> = HashMap::new();
        for member in picks {
            *counts.entry(member).or_default() += 1;
        }
        prop_assert_eq!(counts.len(), ids.len());
        for id in &ids {
            prop_assert_eq!(counts[&MemberId(*id)], k);
        }
    }

    /// Fairness holds even when picks are not finished (round robin ignores load)
    #[test]
    fn fairness_does_not_depend_on_outstanding(n in 1u64..10, k in 1usize..10) {
        let mut balancer = Balancer::new(Strategy::RoundRobin, BreakerConfig::default());
        for id in 0..n {
            balancer.add(MemberId(id), 1, None);
        }
        let mut rng = SmallRng::seed_from_u64(2);
        let now = Instant::now();
        let mut counts: HashMap<MemberId, usize> = HashMap::new();
        for _ in 0..k * n as usize {
            let pick = balancer.pick(None, now, &mut rng).expect("members are available");
            *counts.entry(pick.member).or_default() += 1;
        }
        prop_assert!(counts.values().all(|&count| count == k));
    }
}

#[test]
fn cycles_in_id_order_whatever_the_order_of_adding() {
    let mut balancer = Balancer::new(Strategy::RoundRobin, BreakerConfig::default());
    for id in [30, 10, 20] {
        balancer.add(MemberId(id), 1, None);
    }
    let picks = pick_and_finish(&mut balancer, 6);
    let ids: Vec<u64> = picks.iter().map(|member| member.0).collect();
    assert_eq!(ids, [10, 20, 30, 10, 20, 30]);
}

#[test]
fn continues_after_the_last_pick_when_members_change() {
    let mut balancer = Balancer::new(Strategy::RoundRobin, BreakerConfig::default());
    for id in [1, 2, 3] {
        balancer.add(MemberId(id), 1, None);
    }
    assert_eq!(
        pick_and_finish(&mut balancer, 2),
        [MemberId(1), MemberId(2)]
    );
    // removing the member picked last does not restart the cycle
    balancer.remove(MemberId(2));
    balancer.add(MemberId(4), 1, None);
    assert_eq!(
        pick_and_finish(&mut balancer, 4),
        [MemberId(3), MemberId(4), MemberId(1), MemberId(3)]
    );
}

#[test]
fn skips_members_on_a_down_node_and_stays_fair_among_the_rest() {
    let mut balancer = Balancer::new(Strategy::RoundRobin, BreakerConfig::default());
    balancer.add(MemberId(1), 1, Some("a".into()));
    balancer.add(MemberId(2), 1, Some("b".into()));
    balancer.add(MemberId(3), 1, Some("a".into()));
    balancer.add(MemberId(4), 1, None);
    balancer.node_down("a");
    let picks = pick_and_finish(&mut balancer, 10);
    let distinct: BTreeSet<MemberId> = picks.iter().copied().collect();
    assert_eq!(distinct, BTreeSet::from([MemberId(2), MemberId(4)]));
    assert_eq!(
        picks
            .iter()
            .filter(|&&member| member == MemberId(2))
            .count(),
        5
    );
}
