//! Giving a child up: a node where the child keeps failing sits out for a while
//!
//! A failover group's own supervisor applies its restart intensity where it runs. When it
//! gives up there (the group exits on its own: its intensity was exceeded with
//! `escalate_when_exceeded`), or the group fails to start there [`GIVE_UP_AFTER_FAILED_STARTS`]
//! times in a row, the node **gives the child up**: it releases its lease at once, so the
//! next node of the order claims it without waiting for the lease to run out, and it **sits
//! out** for a while ([`SitOut`]): it claims nothing, and nodes that know it (from the
//! released record, [`LeaseRecord::benched`]) pass it over when choosing who claims.
//!
//! # The rule
//!
//! - The n-th give-up in a row on a node sits it out `min(initial · 2^(n-1), max)`, and never
//!   less than the time every node takes to read the released record (as long as a
//!   hand-over drains: 3.5 renewal periods), so that the next node claims before this one's
//!   turn comes back.
//! - A give-up counts as *in a row* if it comes less than `reset_after` after the node's
//!   previous sit-out ended; later (the child ran here, or elsewhere, for that long), the
//!   count starts again at one.
//! - While every node of the order that is live sits out, nobody claims: the child waits for
//!   the first sit-out to end (a node crash-looping alone is retried no faster than its
//!   sit-outs allow, as a supervisor retries no faster than its backoff).
//!
//! Sit-outs decide only who *tries*: the lease alone keeps the child on one node at a time,
//! whatever nodes know of each other's sit-outs.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::lease::{Benched, LeaseRecord, millis};

/// After how many failed starts in a row a node gives the child up (the runtime retries a
/// failed start with its own short backoff before that)
pub const GIVE_UP_AFTER_FAILED_STARTS: u32 = 3;

/// How long a node that gave a child up sits out: see the [module docs](self)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SitOut {
    /// After a first give-up
    pub initial: Duration,
    /// The most, however many give-ups came in a row
    pub max: Duration,
    /// A give-up this long after the previous sit-out ended starts the count again
    pub reset_after: Duration,
}

impl Default for SitOut {
    /// 5 s, doubling up to 1 min; a give-up a minute after the last sit-out ended starts again
    /// at 5 s
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(60),
            reset_after: Duration::from_secs(60),
        }
    }
}

impl SitOut {
    /// How long the `n`-th give-up in a row (1-based) sits a node out
    pub fn after(&self, n: u32) -> Duration {
        let shift = n.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// A node gave its child up: how many times in a row, and how long it sits out now
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GaveUp {
    /// Give-ups in a row on this node, this one included
    pub in_a_row: u32,
    /// How long it sits out
    pub sits_out: Duration,
}

/// What one node knows of the sit-outs of a child's nodes, itself included
#[derive(Debug, Clone, Default)]
pub(crate) struct Bench {
    /// Nodes sitting out, and until when, on this node's clock (one entry per node)
    until: Vec<(String, Instant)>,
    /// This node's give-ups in a row
    in_a_row: u32,
    /// When this node's last sit-out ends (or ended)
    mine_ends: Option<Instant>,
}

impl Bench {
    /// Node `me` gives the child up at `now`, to sit out at least `least`
    pub(crate) fn give_up(
        &mut self,
        me: &str,
        sit_out: &SitOut,
        least: Duration,
        now: Instant,
    ) -> GaveUp {
        let in_a_row = self
            .mine_ends
            .is_some_and(|ended| now < ended + sit_out.reset_after);
        self.in_a_row = if in_a_row { self.in_a_row + 1 } else { 1 };
        let sits_out = sit_out.after(self.in_a_row).max(least);
        self.mine_ends = Some(now + sits_out);
        self.set(me, now + sits_out);
        GaveUp {
            in_a_row: self.in_a_row,
            sits_out,
        }
    }

    /// Learns the sit-outs `record`, first seen at `now`, tells of. Call it once per record:
    /// each time counts its durations from `now` again.
    ///
    /// What this node knows of its own sit-out wins over what it reads of it (its reading is
    /// late by the read); with no sit-out of its own on record (it restarted), it takes the
    /// record's word.
    pub(crate) fn learn(&mut self, me: &str, record: &LeaseRecord, now: Instant) {
        for benched in &record.benched {
            let until = now + Duration::from_millis(benched.for_ms);
            if benched.node == me {
                if self.mine_ends.is_some() {
                    continue;
                }
                self.mine_ends = Some(until);
            }
            let later = self
                .until
                .iter()
                .find(|(node, _)| *node == benched.node)
                .is_none_or(|(_, known)| *known < until);
            if later {
                self.set(&benched.node, until);
            }
        }
    }

    fn set(&mut self, node: &str, until: Instant) {
        match self.until.iter_mut().find(|(n, _)| n == node) {
            Some(entry) => entry.1 = until,
            None => self.until.push((node.to_string(), until)),
        }
    }

    /// Whether `node` sits out at `now`
    pub(crate) fn sits_out(&self, node: &str, now: Instant) -> bool {
        self.until
            .iter()
            .any(|(n, until)| n == node && now < *until)
    }

    /// The nodes sitting out at `now`
    pub(crate) fn sitting_out(&self, now: Instant) -> Vec<String> {
        self.until
            .iter()
            .filter(|(_, until)| now < *until)
            .map(|(node, _)| node.clone())
            .collect()
    }

    /// The nodes sitting out at `now`, as a released record tells them, rounded up to the
    /// millisecond so that no reader ends one early
    pub(crate) fn to_record(&self, now: Instant) -> Vec<Benched> {
        self.until
            .iter()
            .filter(|(_, until)| now < *until)
            .map(|(node, until)| Benched {
                node: node.clone(),
                for_ms: millis(*until - now + Duration::from_nanos(999_999)),
            })
            .collect()
    }

    /// Until when this node sits out (or sat out last)
    pub(crate) fn mine_ends(&self) -> Option<Instant> {
        self.mine_ends
    }

    /// Forgets the sit-outs over at `now` (this node's own end is kept: it decides whether
    /// its next give-up is in a row)
    pub(crate) fn prune(&mut self, now: Instant) {
        self.until.retain(|(_, until)| now < *until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::LeaseConfig;

    const S: Duration = Duration::from_secs(1);

    fn sit_out() -> SitOut {
        SitOut {
            initial: S,
            ..SitOut::default()
        }
    }

    #[test]
    fn sit_outs_double_up_to_the_cap() {
        let got: Vec<_> = (1..=6).map(|n| SitOut::default().after(n)).collect();
        assert_eq!(got, [5, 10, 20, 40, 60, 60].map(|s| s * S));
        let sit_out = sit_out();
        let got: Vec<_> = (1..=8).map(|n| sit_out.after(n)).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 60, 60].map(|s| s * S));
        assert_eq!(sit_out.after(u32::MAX), 60 * S);
        assert_eq!(sit_out.after(0), S, "no give-up counts as the first");
    }

    #[test]
    fn give_ups_in_a_row_grow_and_a_quiet_spell_resets_them() {
        let sit_out = sit_out();
        let t0 = Instant::now();
        let mut bench = Bench::default();
        let first = bench.give_up("a", &sit_out, Duration::ZERO, t0);
        assert_eq!((first.in_a_row, first.sits_out), (1, S));
        assert!(bench.sits_out("a", t0 + S - Duration::from_millis(1)));
        assert!(!bench.sits_out("a", t0 + S));
        // it ran again for 10 s after its sit-out and gave up again: in a row
        let second = bench.give_up("a", &sit_out, Duration::ZERO, t0 + 11 * S);
        assert_eq!((second.in_a_row, second.sits_out), (2, 2 * S));
        let third = bench.give_up("a", &sit_out, Duration::ZERO, t0 + 14 * S);
        assert_eq!((third.in_a_row, third.sits_out), (3, 4 * S));
        // its last sit-out ended at 18 s; a minute later the count starts again
        let fresh = bench.give_up("a", &sit_out, Duration::ZERO, t0 + 78 * S);
        assert_eq!((fresh.in_a_row, fresh.sits_out), (1, S));
    }

    #[test]
    fn released_records_carry_sit_outs_to_other_nodes() {
        let t0 = Instant::now();
        let mut a = Bench::default();
        // at least 1 s, whatever the settings
        let gave_up = a.give_up("a", &SitOut::default(), S, t0);
        assert_eq!(gave_up.sits_out, 5 * S);
        let gave_up = a.give_up("a", &sit_out(), 3 * S, t0 + 5 * S);
        assert_eq!((gave_up.in_a_row, gave_up.sits_out), (2, 3 * S));
        let mut a = Bench::default();
        a.give_up("a", &sit_out(), S, t0);
        let held = LeaseRecord::claimed_by(None, "a", &LeaseConfig::default());
        let later = t0 + Duration::from_millis(300);
        let record = held.released_benching(a.to_record(later));
        assert_eq!(
            record.benched,
            [Benched {
                node: "a".into(),
                for_ms: 700
            }]
        );
        // b first sees it 100 ms later: a sits out for it until 700 ms after that
        let mut b = Bench::default();
        let seen = later + Duration::from_millis(100);
        b.learn("b", &record, seen);
        assert!(b.sits_out("a", seen + Duration::from_millis(699)));
        assert!(!b.sits_out("a", seen + Duration::from_millis(700)));
        assert_eq!(b.sitting_out(seen), ["a"]);
        assert_eq!(b.mine_ends(), None, "b itself does not sit out");
        // a keeps its own count rather than the record's, read late
        a.learn("a", &record, seen);
        assert!(!a.sits_out("a", t0 + S));
        // a restarted a (no sit-out of its own known) takes the record's word
        let mut restarted = Bench::default();
        restarted.learn("a", &record, seen);
        assert!(restarted.sits_out("a", seen));
        assert_eq!(
            restarted.mine_ends(),
            Some(seen + Duration::from_millis(700))
        );
        // over sit-outs are forgotten
        b.prune(seen + S);
        assert!(b.sitting_out(seen).is_empty());
    }
}
