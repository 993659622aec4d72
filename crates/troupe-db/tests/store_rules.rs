//! Log and state machine rules: contiguity, truncation, CAS semantics, size limits, scans

use bytes::Bytes;
use troupe_db::core::{
    AckMode, CasMismatch, Entry, Leader, Limits, Log, LogError, NeedSnapshot, Op, OpOutcome,
    SizeError, StateMachine, WriteId,
};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn entry(index: u64, epoch: u64) -> Entry {
    Entry {
        index,
        epoch,
        op: Op::Noop,
    }
}

#[test]
fn append_must_be_contiguous_and_epoch_monotonic() {
    let mut log = Log::new();
    log.append([entry(1, 1), entry(2, 2)]).unwrap();
    assert_eq!(
        log.append([entry(4, 2)]),
        Err(LogError::NotContiguous {
            expected: 3,
            got: 4
        })
    );
    assert_eq!(
        log.append([entry(3, 2), entry(4, 1)]),
        Err(LogError::EpochRegressed {
            index: 4,
            epoch: 1,
            previous: 2
        })
    );
    assert_eq!(log.last_index(), 2, "a refused batch appends nothing");
    assert_eq!(log.last_epoch(), 2);
}

#[test]
fn truncation_boundaries() {
    let mut log = Log::new();
    log.append((1..=10).map(|i| entry(i, 1 + i / 5))).unwrap();
    log.truncate_prefix(4);
    assert_eq!((log.first_index(), log.last_index()), (5, 10));
    assert_eq!(log.base(), (4, 1));
    assert_eq!(log.epoch_at(4), Some(1), "the base's epoch is remembered");
    assert_eq!(log.epoch_at(3), None);
    assert_eq!(log.entries_from(4, 1), Err(NeedSnapshot { first_index: 5 }));
    assert_eq!(
        log.entries_from(5, 2).unwrap(),
        vec![entry(5, 2), entry(6, 2)]
    );
    assert!(log.entries_from(11, 5).unwrap().is_empty());
    log.truncate_suffix(8);
    assert_eq!(log.last_index(), 7);
    log.truncate_prefix(7);
    assert_eq!((log.first_index(), log.last_index()), (8, 7));
    assert_eq!(log.last_epoch(), 2, "an empty log reports its base epoch");
    log.append([entry(8, 3)]).unwrap();
}

#[test]
#[should_panic(expected = "truncate_suffix into the snapshot")]
fn truncate_suffix_into_snapshot_panics() {
    let mut log = Log::new();
    log.append([entry(1, 1), entry(2, 1)]).unwrap();
    log.truncate_prefix(1);
    log.truncate_suffix(1);
}

#[test]
fn cas_semantics() {
    let mut sm = StateMachine::new();
    let mut i = 0;
    let mut apply = |sm: &mut StateMachine, op| {
        i += 1;
        sm.apply_entry(&Entry {
            index: i,
            epoch: 1,
            op,
        })
    };
    let cas = |expected: Option<&str>, new: Option<&str>| Op::Cas {
        key: b("k"),
        expected: expected.map(b),
        new: new.map(b),
    };
    // Create only if absent.
    assert_eq!(apply(&mut sm, cas(None, Some("1"))), Ok(OpOutcome::Cas));
    assert_eq!(
        apply(&mut sm, cas(None, Some("2"))),
        Err(CasMismatch {
            expected: None,
            actual: Some(b("1"))
        })
    );
    assert_eq!(sm.get(b"k"), Some(&b("1")), "a failed CAS changes nothing");
    assert_eq!(
        apply(&mut sm, cas(Some("1"), Some("2"))),
        Ok(OpOutcome::Cas)
    );
    assert_eq!(
        apply(&mut sm, cas(Some("1"), Some("3"))),
        Err(CasMismatch {
            expected: Some(b("1")),
            actual: Some(b("2"))
        })
    );
    // Delete via CAS.
    assert_eq!(apply(&mut sm, cas(Some("2"), None)), Ok(OpOutcome::Cas));
    assert_eq!(sm.get(b"k"), None);
    assert_eq!(
        sm.applied_index(),
        5,
        "failed CAS entries still count as applied"
    );
    assert_eq!(
        apply(&mut sm, Op::Delete { key: b("k") }),
        Ok(OpOutcome::Delete { previous: None })
    );
}

#[test]
#[should_panic(expected = "entries must be applied in order")]
fn skipping_an_entry_panics() {
    let mut sm = StateMachine::new();
    let _ = sm.apply_entry(&entry(2, 1));
}

#[test]
fn prefix_scan_is_ordered_and_bounded() {
    let mut sm = StateMachine::new();
    for (i, k) in ["a/2", "b/1", "a/1", "a", "a/3"].iter().enumerate() {
        let op = Op::Put {
            key: b(k),
            value: b("v"),
        };
        sm.apply_entry(&Entry {
            index: i as u64 + 1,
            epoch: 1,
            op,
        })
        .unwrap();
    }
    let keys: Vec<_> = sm.scan_prefix(b"a/", 10).map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, vec![b("a/1"), b("a/2"), b("a/3")]);
    assert_eq!(sm.scan_prefix(b"a/", 2).count(), 2);
    assert_eq!(sm.scan_prefix(b"", 10).count(), 5);
}

#[test]
fn size_limits_are_checked_before_append() {
    let limits = Limits {
        max_key_len: 4,
        max_value_len: 8,
    };
    let mut leader = Leader::new(1, Log::new(), 0, [], AckMode::LeaderOnly, limits);
    let before = leader.log().last_index();
    assert_eq!(
        leader.propose(
            WriteId(0),
            Op::Put {
                key: b("toolong"),
                value: b("v")
            }
        ),
        Err(SizeError::KeyTooLarge { len: 7, max: 4 })
    );
    assert_eq!(
        leader.propose(
            WriteId(1),
            Op::Put {
                key: b("k"),
                value: b("123456789")
            }
        ),
        Err(SizeError::ValueTooLarge { len: 9, max: 8 })
    );
    assert_eq!(
        leader.propose(
            WriteId(2),
            Op::Cas {
                key: b("k"),
                expected: Some(b("123456789")),
                new: None
            }
        ),
        Err(SizeError::ValueTooLarge { len: 9, max: 8 })
    );
    assert_eq!(
        leader.propose(WriteId(3), Op::Delete { key: b("12345") }),
        Err(SizeError::KeyTooLarge { len: 5, max: 4 })
    );
    assert_eq!(
        leader.log().last_index(),
        before,
        "refused writes never enter the log"
    );
    assert_eq!(leader.pending_len(), 0);
    let ok = leader.propose(
        WriteId(4),
        Op::Put {
            key: b("kkkk"),
            value: b("12345678"),
        },
    );
    assert_eq!(ok.unwrap().index, before + 1);
    assert_eq!(leader.on_local_durable(before + 1), vec![WriteId(4)]);
}
