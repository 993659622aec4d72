//! Replication rules: apply order, ack counting, snapshots, divergence, promotion

mod sim;

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use sim::{Sim, put};
use troupe_db::core::{
    AckMode, AppendEntries, AppendReply, Candidate, Entry, FenceRefused, Follower, Leader, Limits,
    Log, NeedSnapshot, Op, PromotionError, ReplicaId, RequestError, Resume, StateMachine, WriteId,
    promote, resume,
};

fn replay(entries: &[Entry]) -> StateMachine {
    let mut sm = StateMachine::new();
    for e in entries {
        let _ = sm.apply_entry(e);
    }
    sm
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let key = (0u8..4).prop_map(|k| Bytes::from(vec![b'k', k]));
    let val = prop::option::of((0u8..3).prop_map(|v| Bytes::from(vec![v])));
    prop_oneof![
        (key.clone(), (0u8..3)).prop_map(|(key, v)| Op::Put {
            key,
            value: Bytes::from(vec![v])
        }),
        key.clone().prop_map(|key| Op::Delete { key }),
        (key, val.clone(), val).prop_map(|(key, expected, new)| Op::Cas { key, expected, new }),
    ]
}

fn modes() -> impl Strategy<Value = AckMode> {
    prop_oneof![
        Just(AckMode::LeaderOnly),
        Just(AckMode::Majority),
        Just(AckMode::All)
    ]
}

proptest! {
    /// (P) The follower applies exactly the log prefix, in order, whatever the delivery order,
    /// repeats and commit advances.
    #[test]
    fn apply_order_is_the_log_prefix(
        ops in prop::collection::vec((op_strategy(), 0u64..2), 1..40),
        deliveries in prop::collection::vec((0usize..45, 0usize..10, 0usize..45), 0..60),
    ) {
        // Leader log with non-decreasing epochs.
        let mut log = Log::new();
        let mut epoch = 1;
        for (i, (op, bump)) in ops.into_iter().enumerate() {
            epoch += bump;
            log.append([Entry { index: i as u64 + 1, epoch, op }]).unwrap();
        }
        let last = log.last_index();
        let mut f = Follower::new(Limits::default());
        let mut applied = Vec::new();
        let mut commit = 0;
        let mut deliver = |f: &mut Follower, start: u64, len: usize, commit: u64| {
            let entries = log.entries_from(start, len).unwrap();
            let resp = f.handle_append(AppendEntries {
                leader_epoch: epoch,
                prev_index: start - 1,
                prev_epoch: log.epoch_at(start - 1).unwrap(),
                entries,
                leader_commit: commit,
            }).unwrap();
            for a in &resp.applied {
                prop_assert_eq!(a.epoch, log.get(a.index).unwrap().epoch);
            }
            applied.extend(resp.applied.iter().map(|a| a.index));
            Ok(())
        };
        for (start, len, c) in deliveries {
            let start = (start as u64 % (last + 1)) + 1;
            commit = commit.max(c as u64 % (last + 1));
            let before = f.applied_index();
            deliver(&mut f, start, len, commit)?;
            prop_assert!(f.applied_index() >= before);
            prop_assert!(f.applied_index() <= commit);
        }
        deliver(&mut f, 1, usize::MAX, last)?;
        let expected: Vec<u64> = (1..=last).collect();
        prop_assert_eq!(&applied, &expected);
        prop_assert_eq!(f.state(), &replay(&log.entries_from(1, usize::MAX).unwrap()));
    }

    /// (P) commit_index is the k-th largest durable index (leader included), never decreases,
    /// and each write is acknowledged exactly once, in order.
    #[test]
    fn ack_counting(
        followers in 0u64..5,
        mode in modes(),
        writes in 1usize..20,
        events in prop::collection::vec((0u64..6, 0u64..25), 0..60),
    ) {
        let ids: Vec<_> = (1..=followers).map(ReplicaId).collect();
        let mut leader = Leader::new(1, Log::new(), 0, ids.clone(), mode, Limits::default());
        for w in 0..writes {
            leader.propose(WriteId(w as u64), put("k", "v")).unwrap();
        }
        let last = leader.log().last_index();
        let mut model: BTreeMap<u64, u64> = (0..=followers).map(|i| (i, 0)).collect();
        let mut acked = Vec::new();
        let mut prev_commit = 0;
        for (who, index) in events {
            let who = who % (followers + 1);
            let index = index.min(last);
            if who == 0 {
                acked.extend(leader.on_local_durable(index));
            } else {
                acked.extend(leader.on_ack(ReplicaId(who), index).unwrap());
            }
            let m = model.get_mut(&who).unwrap();
            *m = (*m).max(index);
            let mut values: Vec<u64> = model.values().copied().collect();
            values.sort_unstable_by(|a, b| b.cmp(a));
            let k = mode.required(values.len());
            prop_assert_eq!(leader.commit_index(), values[k - 1]);
            prop_assert!(leader.commit_index() >= prev_commit);
            prev_commit = leader.commit_index();
            // Write w sits at index w + 2 (after the leader's no-op at 1).
            let expected: Vec<WriteId> = (0..writes as u64)
                .filter(|w| w + 2 <= leader.commit_index())
                .map(WriteId)
                .collect();
            prop_assert_eq!(&acked, &expected);
        }
    }

    /// (P) Majority mode: after random replication progress and leader loss, promotion keeps
    /// every acknowledged write, and the cluster converges on the promoted log.
    #[test]
    fn majority_promotion_keeps_acked_writes(
        n in 3u64..6,
        actions in prop::collection::vec((0u8..4, 0u64..6, 0usize..8), 1..80),
        extra_candidates in prop::collection::vec(any::<bool>(), 5),
    ) {
        let mut sim = Sim::new(n, AckMode::Majority);
        let mut w = 0;
        for (kind, who, steps) in actions {
            let f = ReplicaId(1 + who % (n - 1));
            match kind {
                0 => { sim.write(put(&format!("k{}", w % 5), &w.to_string())); w += 1; }
                1 => sim.send(f),
                2 => { sim.drive_bounded(steps); }
                _ => { if !sim.down.remove(&f) { sim.down.insert(f); } }
            }
        }
        let old = sim.lose_leader();
        let old_commit = old.commit_index();
        // Any set of at least a majority of the replicas (all followers, old leader is gone).
        let need = AckMode::Majority.required(n as usize);
        let mut candidates: Vec<ReplicaId> = (1..n).map(ReplicaId).collect();
        let mut i = 0;
        candidates.retain(|_| { i += 1; i <= need || extra_candidates[i - 1] });
        sim.down.clear();
        sim.promote(n as usize, old.epoch(), &candidates);
        let new_log = sim.leader().log().entries_from(1, usize::MAX).unwrap();
        for (_, index) in &sim.acked {
            prop_assert!(*index <= old_commit);
        }
        for index in 1..=old_commit {
            prop_assert_eq!(Some(old.log().get(index).unwrap()), new_log.get(index as usize - 1));
        }
        sim.settle();
        let leader_log = sim.leader().log().entries_from(1, usize::MAX).unwrap();
        for f in sim.followers.values() {
            prop_assert_eq!(f.log().entries_from(1, usize::MAX).unwrap(), leader_log.clone());
            prop_assert_eq!(f.state(), &sim.leader_state);
        }
    }
}

proptest! {
    /// (P) Snapshot boundaries: compact the leader's log at any point while a follower was away
    /// from any point on. The follower is sent a snapshot exactly when its next entry was
    /// compacted away, and once caught up every replica's state equals a replay of the whole
    /// log.
    #[test]
    fn snapshot_boundaries_and_catch_up(
        ops in prop::collection::vec(op_strategy(), 1..60),
        away_from in 0usize..60,
        compact_percent in 0u64..=100,
    ) {
        let away = ReplicaId(2);
        let mut sim = Sim::new(3, AckMode::Majority);
        sim.settle();
        for (i, op) in ops.into_iter().enumerate() {
            if i == away_from {
                sim.down.insert(away);
            }
            sim.write(op);
            sim.settle();
        }
        let mut full = sim.leader().log().entries_from(1, usize::MAX).unwrap();
        let commit = sim.leader().commit_index();
        let upto = commit * compact_percent / 100;
        let next = sim.leader().progress(away).unwrap().next_index;
        sim.leader.as_mut().unwrap().compact(upto);
        let needs_snapshot = next <= upto;
        match sim.leader().append_request(away) {
            Err(RequestError::NeedSnapshot(_)) => prop_assert!(needs_snapshot, "next {next}, compacted to {upto}"),
            Ok(req) => {
                prop_assert!(!needs_snapshot, "next {next}, compacted to {upto}");
                prop_assert_eq!(req.prev_index + 1, next);
            }
            Err(other) => prop_assert!(false, "{other:?}"),
        }
        sim.down.clear();
        let first_new = sim.leader().log().last_index() + 1;
        sim.write(put("after", "x"));
        sim.settle();
        full.extend(sim.leader().log().entries_from(first_new, usize::MAX).unwrap());
        let expected = replay(&full);
        prop_assert_eq!(&sim.leader_state, &expected);
        for follower in sim.followers.values() {
            prop_assert_eq!(follower.state(), &expected);
        }
    }
}

#[test]
fn majority_promotion_picks_the_follower_holding_acked_writes() {
    let mut sim = Sim::new(3, AckMode::Majority);
    sim.down.insert(ReplicaId(1));
    let index = sim.write(put("a", "1"));
    sim.settle();
    assert!(
        sim.acked.iter().any(|(_, i)| *i == index),
        "acked by leader + replica 2"
    );
    let old = sim.lose_leader();
    sim.down.clear();
    sim.promote(3, old.epoch(), &[ReplicaId(1), ReplicaId(2)]);
    assert_eq!(sim.leader_id, ReplicaId(2));
    assert_eq!(sim.leader().epoch(), 3, "fenced at 2, leading at 3");
    sim.settle();
    assert_eq!(
        sim.followers[&ReplicaId(1)].state().get(b"a"),
        Some(&Bytes::from("1"))
    );
}

#[test]
fn entries_below_first_index_need_a_snapshot() {
    let mut sim = Sim::new(2, AckMode::LeaderOnly);
    for i in 0..10 {
        sim.write(put("k", &i.to_string()));
    }
    let leader = sim.leader.as_mut().unwrap();
    leader.compact(6);
    assert_eq!(leader.log().first_index(), 7);
    assert_eq!(
        leader.log().entries_from(6, 10),
        Err(NeedSnapshot { first_index: 7 })
    );
    assert_eq!(leader.log().entries_from(7, 1).unwrap()[0].index, 7);
}

#[test]
fn snapshot_then_catch_up_equals_full_replay() {
    let mut sim = Sim::new(3, AckMode::Majority);
    sim.down.insert(ReplicaId(2));
    let mut full = Vec::new();
    for i in 0..100u32 {
        let op = match i % 3 {
            0 => put(&format!("k{}", i % 7), &i.to_string()),
            1 => Op::Delete {
                key: Bytes::from(format!("k{}", i % 5)),
            },
            _ => Op::Cas {
                key: Bytes::from(format!("k{}", i % 7)),
                expected: None,
                new: Some(Bytes::from("fresh")),
            },
        };
        sim.write(op);
        sim.settle();
    }
    full.extend(sim.leader().log().entries_from(1, usize::MAX).unwrap());
    assert_eq!(sim.leader().commit_index(), 101);
    // Snapshot covers 1..=60; the log keeps 61.. only.
    sim.leader.as_mut().unwrap().compact(60);
    sim.followers.get_mut(&ReplicaId(1)).unwrap().compact(60);
    // Replica 2 saw nothing; it comes back and must be seeded by snapshot, then catch up.
    sim.down.clear();
    for i in 0..5 {
        sim.write(put("after", &i.to_string()));
    }
    sim.settle();
    full.extend(sim.leader().log().entries_from(102, usize::MAX).unwrap());
    let f2 = &sim.followers[&ReplicaId(2)];
    assert_eq!(
        f2.log().first_index(),
        102,
        "seeded from a snapshot at the commit index"
    );
    assert_eq!(f2.state(), &replay(&full));
    assert_eq!(sim.followers[&ReplicaId(1)].state(), &replay(&full));
    assert_eq!(sim.leader_state, replay(&full));
}

#[test]
fn divergent_suffix_from_old_epoch_is_truncated() {
    // Follower got entries 1..=5 of epoch 1 but only 1..=2 committed.
    let mut log1 = Log::new();
    for i in 1..=5 {
        log1.append([Entry {
            index: i,
            epoch: 1,
            op: put("k", &format!("old{i}")),
        }])
        .unwrap();
    }
    let mut f = Follower::new(Limits::default());
    let resp = f
        .handle_append(AppendEntries {
            leader_epoch: 1,
            prev_index: 0,
            prev_epoch: 0,
            entries: log1.entries_from(1, 5).unwrap(),
            leader_commit: 2,
        })
        .unwrap();
    assert_eq!(resp.applied.len(), 2);
    // The new leader (epoch 2) has only 1..=3 of epoch 1, then its own entries.
    let mut log2 = Log::new();
    log2.append(log1.entries_from(1, 3).unwrap()).unwrap();
    let mut leader = Leader::new(2, log2, 2, [ReplicaId(1)], AckMode::All, Limits::default());
    leader.propose(WriteId(0), put("k", "new5")).unwrap();
    leader.propose(WriteId(1), put("k", "new6")).unwrap();
    assert!(leader.on_local_durable(6).is_empty());
    let mut acked = Vec::new();
    for _ in 0..10 {
        let req = leader.append_request(ReplicaId(1)).unwrap();
        match f.handle_append(req).unwrap().reply {
            AppendReply::Success { match_index, .. } => {
                acked.extend(leader.on_ack(ReplicaId(1), match_index).unwrap());
            }
            AppendReply::Mismatch { last_index, .. } => {
                leader.on_reject(ReplicaId(1), last_index).unwrap();
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(acked, vec![WriteId(0), WriteId(1)]);
    let leader_entries = leader.log().entries_from(1, 10).unwrap();
    assert_eq!(f.log().entries_from(1, 10).unwrap(), leader_entries);
    assert_eq!(
        f.log().get(4).unwrap().epoch,
        2,
        "old epoch-1 entry 4 replaced"
    );
    assert_eq!(f.applied_index(), 6);
    assert_eq!(f.state(), &replay(&leader_entries));
}

#[test]
fn an_append_past_the_last_representable_index_is_a_typed_error() {
    let mut f = Follower::new(Limits::default());
    let req = AppendEntries {
        leader_epoch: 1,
        prev_index: u64::MAX,
        prev_epoch: 1,
        entries: vec![Entry {
            index: 0,
            epoch: 1,
            op: Op::Noop,
        }],
        leader_commit: u64::MAX,
    };
    assert!(f.handle_append(req).is_err());
    let heartbeat = AppendEntries {
        leader_epoch: 1,
        prev_index: u64::MAX,
        prev_epoch: 1,
        entries: vec![],
        leader_commit: u64::MAX,
    };
    let resp = f.handle_append(heartbeat).unwrap();
    assert!(
        matches!(resp.reply, AppendReply::Mismatch { .. }),
        "{resp:?}"
    );
    assert_eq!(f.applied_index(), 0);
}

#[test]
fn stale_epoch_is_refused() {
    let mut f = Follower::new(Limits::default());
    assert_eq!(f.fence(3, ReplicaId(1)), Ok(true));
    let resp = f
        .handle_append(AppendEntries {
            leader_epoch: 2,
            prev_index: 0,
            prev_epoch: 0,
            entries: vec![Entry {
                index: 1,
                epoch: 2,
                op: Op::Noop,
            }],
            leader_commit: 1,
        })
        .unwrap();
    assert_eq!(resp.reply, AppendReply::StaleEpoch { epoch: 3 });
    assert_eq!(f.log().last_index(), 0);
}

/// The simulator's seed 5676 (`random_faults_sim`): two coordinators fenced the third
/// replica at the same epoch, each counted it in its majority, and each promoted a leader at
/// the next epoch. A replica takes one coordinator's fence per epoch.
#[test]
fn a_replica_takes_one_coordinators_fence_per_epoch() {
    let mut f = Follower::new(Limits::default());
    assert_eq!(f.fence(4, ReplicaId(0)), Ok(true));
    // the same coordinator again (a retried fence): taken, nothing changes
    assert_eq!(f.fence(4, ReplicaId(0)), Ok(false));
    // another coordinator at the same epoch, or an older one: refused
    assert_eq!(
        f.fence(4, ReplicaId(1)),
        Err(FenceRefused {
            epoch: 4,
            fenced_by: Some(ReplicaId(0))
        })
    );
    assert!(f.fence(3, ReplicaId(1)).is_err());
    // a newer epoch: anyone's
    assert_eq!(f.fence(5, ReplicaId(1)), Ok(true));
    // a replica that follows the leader of its epoch refuses a fence at it
    f.follow(5);
    assert!(f.fence(5, ReplicaId(1)).is_err());
    // fenced with no coordinator named (a leader stepping down): the first one claims it
    let mut stepped_down = Follower::new(Limits::default());
    assert!(stepped_down.fence_unclaimed(6));
    assert_eq!(stepped_down.fence(6, ReplicaId(2)), Ok(true));
    assert!(stepped_down.fence(6, ReplicaId(0)).is_err());
}

fn noop_append(leader_epoch: u64) -> AppendEntries {
    AppendEntries {
        leader_epoch,
        prev_index: 0,
        prev_epoch: 0,
        entries: vec![Entry {
            index: 1,
            epoch: leader_epoch,
            op: Op::Noop,
        }],
        leader_commit: 0,
    }
}

/// The simulator's seed 546 (`random_faults_sim`): a restarted leader resumed at epoch 2
/// while a promotion fenced the others at 2 (to lead at 3); a follower fenced at 2 took the
/// resumed leader's write at 2, the write was acknowledged, and the leader of 3 overwrote it.
/// A replica fenced at an epoch refuses that epoch's leaders, and will not lead at it once
/// it has heard one.
#[test]
fn a_replica_fenced_at_an_epoch_refuses_that_epochs_leader() {
    let mut f = Follower::new(Limits::default());
    assert_eq!(f.fence(2, ReplicaId(1)), Ok(true));
    assert!(
        f.may_lead_at(2),
        "no leader of 2 heard: the promotion may choose it"
    );
    let resp = f.handle_append(noop_append(2)).unwrap();
    assert_eq!(resp.reply, AppendReply::StaleEpoch { epoch: 2 });
    assert_eq!(f.log().last_index(), 0);

    // the promoted leader leads at a newer epoch than the fence
    let resp = f.handle_append(noop_append(3)).unwrap();
    assert!(
        matches!(resp.reply, AppendReply::Success { .. }),
        "{resp:?}"
    );
    assert!(!f.may_lead_at(3), "a leader of 3 already runs");
    assert!(f.may_lead_at(4));

    // a restart keeps the fence (the replica stores it)
    let mut fenced = Follower::new(Limits::default());
    assert_eq!(fenced.fence(5, ReplicaId(1)), Ok(true));
    assert!(fenced.is_fenced());
    let mut restarted = Follower::from_parts(
        5,
        fenced.log().clone(),
        StateMachine::default(),
        Limits::default(),
    );
    restarted.restore_fence(fenced.fenced_by());
    assert_eq!(
        restarted.handle_append(noop_append(5)).unwrap().reply,
        AppendReply::StaleEpoch { epoch: 5 }
    );
    // a replica told to follow a leader of 5 (a leader stepping down for it) takes its append
    restarted.follow(5);
    assert!(matches!(
        restarted.handle_append(noop_append(5)).unwrap().reply,
        AppendReply::Success { .. }
    ));
}

#[test]
fn malformed_append_is_a_typed_error() {
    let mut f = Follower::new(Limits::default());
    let err = f
        .handle_append(AppendEntries {
            leader_epoch: 1,
            prev_index: 0,
            prev_epoch: 0,
            entries: vec![Entry {
                index: 2,
                epoch: 1,
                op: Op::Noop,
            }],
            leader_commit: 0,
        })
        .unwrap_err();
    assert_eq!(
        err,
        troupe_db::core::LogError::NotContiguous {
            expected: 1,
            got: 2
        }
    );
}

#[test]
fn promotion_picks_the_most_up_to_date() {
    let c = |id, last_epoch, last_index| Candidate {
        id: ReplicaId(id),
        epoch: last_epoch,
        last_epoch,
        last_index,
    };
    let cands = [c(1, 2, 10), c(2, 3, 4), c(3, 3, 7), c(4, 3, 7)];
    let p = promote(5, 3, &cands).unwrap();
    assert_eq!(
        p.leader,
        ReplicaId(3),
        "highest (epoch, index), lowest id on ties"
    );
    assert_eq!(p.epoch, 4);
    assert_eq!(
        promote(5, 3, &cands[..2]),
        Err(PromotionError::NoQuorum { have: 2, need: 3 })
    );
    // every mode promotes only with a majority fenced: two coordinators that cannot reach
    // each other must not both promote in one epoch
    assert_eq!(
        promote(5, 3, &cands[..1]),
        Err(PromotionError::NoQuorum { have: 1, need: 3 })
    );
    assert_eq!(promote(3, 3, &[]), Err(PromotionError::NoCandidates));
}

#[test]
fn promotion_epoch_clears_a_fenced_epoch() {
    let cand = Candidate {
        id: ReplicaId(1),
        epoch: 7,
        last_epoch: 3,
        last_index: 9,
    };
    assert_eq!(promote(1, 3, &[cand]).unwrap().epoch, 8);
}

#[test]
fn leader_only_failover_loses_unreplicated_acked_writes() {
    let mut sim = Sim::new(3, AckMode::LeaderOnly);
    sim.write(put("a", "1"));
    sim.settle();
    let index = sim.write(put("b", "2")); // acknowledged on the leader's disk alone
    assert!(sim.acked.iter().any(|(_, i)| *i == index));
    let old = sim.lose_leader();
    sim.promote(3, old.epoch(), &[ReplicaId(1), ReplicaId(2)]);
    sim.settle();
    assert_eq!(sim.leader_state.get(b"a").unwrap(), &Bytes::from("1"));
    assert_eq!(sim.leader_state.get(b"b"), None, "the acked write is lost");
}

#[test]
fn diverged_follower_is_reseeded_by_snapshot() {
    // LeaderOnly: follower 2 applied an entry that the promoted follower 1 never got.
    let mut sim = Sim::new(3, AckMode::LeaderOnly);
    sim.write(put("a", "1"));
    sim.settle();
    sim.down.insert(ReplicaId(1));
    sim.write(put("b", "2"));
    sim.settle();
    assert_eq!(
        sim.followers[&ReplicaId(2)].state().get(b"b"),
        Some(&Bytes::from("2"))
    );
    let old = sim.lose_leader();
    sim.down.clear();
    // A replica that is not the most up-to-date leads (as when an old leader with extra
    // entries rejoins the new one).
    sim.lead_with(ReplicaId(1), old.epoch());
    sim.write(put("c", "3"));
    sim.settle();
    let f2 = &sim.followers[&ReplicaId(2)];
    assert_eq!(f2.state(), &sim.leader_state);
    assert_eq!(f2.state().get(b"b"), None);
}

#[test]
fn majority_commit_waits_for_current_epoch_entry() {
    // An old-epoch entry on a majority does not commit by counting until the no-op does.
    let mut log = Log::new();
    log.append([Entry {
        index: 1,
        epoch: 1,
        op: put("a", "1"),
    }])
    .unwrap();
    let mut leader = Leader::new(
        2,
        log,
        0,
        [ReplicaId(1), ReplicaId(2)],
        AckMode::Majority,
        Limits::default(),
    );
    leader.on_ack(ReplicaId(1), 1).unwrap();
    assert!(leader.on_local_durable(1).is_empty());
    assert_eq!(leader.commit_index(), 0);
    leader.on_local_durable(2);
    leader.on_ack(ReplicaId(1), 2).unwrap();
    assert_eq!(leader.commit_index(), 2);
}

fn standing(id: u64, epoch: u64, last_epoch: u64, last_index: u64) -> Candidate {
    Candidate {
        id: ReplicaId(id),
        epoch,
        last_epoch,
        last_index,
    }
}

#[test]
fn a_restarted_leader_resumes_only_with_the_newest_log() {
    // replica 0 led epoch 1 to index 64, was paused, and was since told of epoch 4 by a leader
    // whose appends it could not match; the others went on to index 99
    let me = standing(0, 4, 1, 64);
    let behind = [
        (standing(1, 4, 3, 99), false),
        (standing(2, 4, 3, 99), false),
    ];
    assert_eq!(
        resume(3, me, &behind),
        Resume::Follow {
            ahead: ReplicaId(1),
            leading: false
        },
        "the simulator's seed 6482: leading here lost acknowledged writes"
    );

    // the same answers from replicas whose logs end before this one's: it leads again
    let me = standing(0, 4, 3, 99);
    let peers = [
        (standing(1, 4, 3, 97), false),
        (standing(2, 3, 3, 99), false),
    ];
    assert_eq!(resume(3, me, &peers), Resume::Lead { epoch: 5 });

    // a peer that leads, or has seen a newer epoch, keeps it following whatever the logs
    assert_eq!(
        resume(3, me, &[(standing(2, 4, 1, 10), true)]),
        Resume::Follow {
            ahead: ReplicaId(2),
            leading: true
        }
    );
    assert_eq!(
        resume(3, me, &[(standing(1, 5, 3, 10), false)]),
        Resume::Follow {
            ahead: ReplicaId(1),
            leading: false
        }
    );

    // alone out of three, it waits for a second answer
    assert_eq!(resume(3, me, &[]), Resume::Wait { have: 1, need: 2 });
    // a fresh database: replica 0 leads epoch 1 once a majority answered
    let fresh = standing(0, 0, 0, 0);
    assert_eq!(
        resume(3, fresh, &[(standing(1, 0, 0, 0), false)]),
        Resume::Lead { epoch: 1 }
    );
}
