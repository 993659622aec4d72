//! Leases: the rules that keep a child running on at most one node at a time
//!
//! A lease is a record in a linearizable register (the metadata group: compare-and-set on one
//! key per child). Clocks are never compared across nodes: each node measures durations on
//! its own monotonic clock, and the rules hold as long as clocks *run* at rates within
//! [`LeaseConfig::max_drift_ppm`] of each other.
//!
//! - The **holder** counts its lease from the moment it *sent* the write that made the
//!   current record (before that write could take effect anywhere), and runs the child only
//!   until `term - stop_margin` after that. It renews well before then.
//! - Anyone else counts from the moment it *first saw* a record (after that record took
//!   effect), and claims only once `term + claim_grace` has passed with no change, by a
//!   compare-and-set from exactly that record. A renewal in between changes the record, so
//!   the compare-and-set fails.
//!
//! So the holder's window ends, in real time, before any claim can succeed:
//! `(term - stop_margin)·(1 + ρ) < (term + claim_grace)·(1 - ρ)` for clock rate drift `ρ`,
//! which [`LeaseConfig::check`] demands. A holder cut off from the register cannot renew
//! and stops at its deadline; a paused holder wakes past its deadline and stops before it
//! does anything else (the runtime checks [`Holding::may_run`] first).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One lease's record in the register
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The node that holds it
    pub holder: String,
    /// Bumped by every write, so a compare-and-set from a record seen earlier fails once it
    /// changed
    pub generation: u64,
    /// How long each write keeps the lease, in milliseconds, as the holder counts it
    pub term_ms: u64,
    /// The holder stopped the child and gave the lease up: it may be claimed at once
    pub released: bool,
    /// The holder is handing the child over (a node before it in the order is live, or it is
    /// being moved or drained): it still runs it and holds the lease, but senders should hold
    /// new messages back for the next holder while it works off those it has
    #[serde(default)]
    pub draining: bool,
    /// Nodes that gave the child up and sit out for a while: none of them claims it, and the
    /// others pass them over when choosing who does (written with a release; empty in every
    /// other record, and then not encoded at all, so such records keep their bytes)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub benched: Vec<Benched>,
}

/// A node sitting out, as a released [`LeaseRecord`] tells it: for how long after the record
/// is first seen. A duration rather than a time, since nodes never compare clocks; it is
/// counted from when each reader first sees the record, so a reader learns it a read late,
/// which only delays that node's turn a little (sit-outs decide who tries, not who may run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Benched {
    /// The node
    pub node: String,
    /// How long it still sits out, in milliseconds
    pub for_ms: u64,
}

impl LeaseRecord {
    /// The lease's term
    pub fn term(&self) -> Duration {
        Duration::from_millis(self.term_ms)
    }

    /// The record `node` writes to take the lease over from `self` (or from nothing)
    pub fn claimed_by(current: Option<&Self>, node: &str, config: &LeaseConfig) -> Self {
        Self {
            holder: node.to_string(),
            generation: current.map_or(1, |r| r.generation + 1),
            term_ms: millis(config.term),
            released: false,
            draining: false,
            benched: Vec::new(),
        }
    }

    /// The same lease, renewed
    pub fn renewed(&self) -> Self {
        Self {
            generation: self.generation + 1,
            ..self.clone()
        }
    }

    /// The same lease, marked as being handed over
    pub fn draining(&self) -> Self {
        Self {
            generation: self.generation + 1,
            draining: true,
            ..self.clone()
        }
    }

    /// The same lease, given up
    pub fn released(&self) -> Self {
        Self {
            generation: self.generation + 1,
            released: true,
            ..self.clone()
        }
    }

    /// The same lease, given up, telling readers which nodes sit out
    pub fn released_benching(&self, benched: Vec<Benched>) -> Self {
        Self {
            benched,
            ..self.released()
        }
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How long leases last and the slack that keeps two holders apart
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseConfig {
    /// How long one write keeps the lease, on the holder's clock
    pub term: Duration,
    /// How long before its term runs out the holder stops the child: time to stop it, plus
    /// its share of clock drift
    pub stop_margin: Duration,
    /// How long past a term others wait before they claim: their share of clock drift
    pub claim_grace: Duration,
    /// How long after a write the holder renews (well before `term - stop_margin`, so a slow
    /// register does not stop a healthy holder)
    pub renew_after: Duration,
    /// The most two nodes' clocks may differ in rate, in parts per million
    pub max_drift_ppm: u64,
}

impl Default for LeaseConfig {
    /// A 3 s term, renewed every second, stopped 500 ms early, claimed 500 ms late, for
    /// clocks within 1 % of each other
    fn default() -> Self {
        Self {
            term: Duration::from_secs(3),
            stop_margin: Duration::from_millis(500),
            claim_grace: Duration::from_millis(500),
            renew_after: Duration::from_secs(1),
            max_drift_ppm: 10_000,
        }
    }
}

/// Why a [`LeaseConfig`] cannot keep holders apart
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseConfigError {
    /// The holder would stop before it starts
    #[error("the stop margin ({stop_margin:?}) must be shorter than the term ({term:?})")]
    MarginTooLong {
        /// The term
        term: Duration,
        /// The margin
        stop_margin: Duration,
    },
    /// Renewals would come after the holder stopped
    #[error(
        "renewals ({renew_after:?} after a write) must come before the holder stops ({runs:?})"
    )]
    RenewTooLate {
        /// When renewals come
        renew_after: Duration,
        /// How long a write lets the holder run
        runs: Duration,
    },
    /// Clock drift could let a claim succeed while the holder still runs
    #[error(
        "with clocks {max_drift_ppm} ppm apart, {runs:?} of running can outlast {waits:?} of waiting"
    )]
    Overlap {
        /// How long a write lets the holder run, on its clock
        runs: Duration,
        /// How long others wait, on theirs
        waits: Duration,
        /// The drift allowed
        max_drift_ppm: u64,
    },
}

impl LeaseConfig {
    /// How long after a write the holder may run the child
    pub fn runs_for(&self) -> Duration {
        self.term.saturating_sub(self.stop_margin)
    }

    /// How long after first seeing a record others wait before they claim
    pub fn waits_for(&self, term: Duration) -> Duration {
        term.saturating_add(self.claim_grace)
    }

    /// Whether these settings keep two holders apart under the drift they allow
    ///
    /// # Errors
    ///
    /// The first [`LeaseConfigError`] that applies.
    pub fn check(&self) -> Result<(), LeaseConfigError> {
        if self.stop_margin >= self.term {
            return Err(LeaseConfigError::MarginTooLong {
                term: self.term,
                stop_margin: self.stop_margin,
            });
        }
        let runs = self.runs_for();
        if self.renew_after >= runs {
            return Err(LeaseConfigError::RenewTooLate {
                renew_after: self.renew_after,
                runs,
            });
        }
        let waits = self.waits_for(self.term);
        // runs·(1 + ρ) < waits·(1 - ρ), in whole nanoseconds
        let ppm = u128::from(self.max_drift_ppm);
        let fast = runs.as_nanos() * (1_000_000 + ppm);
        let slow = waits.as_nanos() * 1_000_000u128.saturating_sub(ppm);
        if fast >= slow {
            return Err(LeaseConfigError::Overlap {
                runs,
                waits,
                max_drift_ppm: self.max_drift_ppm,
            });
        }
        Ok(())
    }
}

/// The holder's side of a lease
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    record: LeaseRecord,
    /// When the write that made `record` (or an earlier one of ours) was sent
    counted_from: Instant,
    /// A renewal in flight: the record it writes and when it was sent
    renewing: Option<(LeaseRecord, Instant)>,
}

impl Holding {
    /// The lease `record`, made by a write sent at `sent_at`
    pub fn new(record: LeaseRecord, sent_at: Instant) -> Self {
        Self {
            record,
            counted_from: sent_at,
            renewing: None,
        }
    }

    /// The record as last written
    pub fn record(&self) -> &LeaseRecord {
        &self.record
    }

    /// Until when the child may run
    pub fn deadline(&self, config: &LeaseConfig) -> Instant {
        self.counted_from + config.runs_for()
    }

    /// Whether the child may run at `now`
    pub fn may_run(&self, config: &LeaseConfig, now: Instant) -> bool {
        now < self.deadline(config)
    }

    /// The renewal to write now, if one is due and none is in flight: compare-and-set from
    /// the returned expected record to the new one. No renewal once the lease ran out: a
    /// holder past its deadline must stop, then claim afresh.
    pub fn renewal(
        &mut self,
        config: &LeaseConfig,
        now: Instant,
    ) -> Option<(LeaseRecord, LeaseRecord)> {
        let due = now >= self.counted_from + config.renew_after;
        if !due || self.renewing.is_some() || !self.may_run(config, now) {
            return None;
        }
        let new = self.record.renewed();
        self.renewing = Some((new.clone(), now));
        Some((self.record.clone(), new))
    }

    /// The write marking the lease as handed over, to send now unless a write is in flight or
    /// the lease ran out: compare-and-set, as a renewal (which it also is)
    pub fn start_draining(
        &mut self,
        config: &LeaseConfig,
        now: Instant,
    ) -> Option<(LeaseRecord, LeaseRecord)> {
        if self.renewing.is_some() || !self.may_run(config, now) {
            return None;
        }
        let new = self.record.draining();
        self.renewing = Some((new.clone(), now));
        Some((self.record.clone(), new))
    }

    /// The renewal in flight was applied: the lease counts from when it was sent
    pub fn renewed(&mut self) {
        if let Some((record, sent_at)) = self.renewing.take() {
            self.record = record;
            self.counted_from = sent_at;
        }
    }

    /// The renewal in flight failed or its outcome is unknown: the lease still counts from
    /// the last write known applied, and a later renewal may be tried
    pub fn renewal_unsure(&mut self) {
        self.renewing = None;
    }

    /// The register holds `current` instead of what the renewal expected. If it is still
    /// ours (a renewal applied whose answer was lost), keep holding — counted, safely, from
    /// the last write known applied; else the lease is lost and the child must stop at once.
    /// Whether it is still held.
    pub fn mismatch(&mut self, current: Option<&LeaseRecord>, me: &str) -> bool {
        self.renewing = None;
        match current {
            Some(record) if record.holder == me && !record.released => {
                self.record = record.clone();
                true
            }
            _ => false,
        }
    }
}

/// Everyone else's side of a lease: what record was seen, and since when
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Watching {
    seen: Option<(Option<LeaseRecord>, Instant)>,
}

impl Watching {
    /// Nothing seen yet
    pub fn new() -> Self {
        Self::default()
    }

    /// What a linearizable read of the register returned at `now`; the clock for a record
    /// starts when it is first seen, and starts again whenever it changes
    pub fn observe(&mut self, record: Option<LeaseRecord>, now: Instant) {
        if self.seen.as_ref().is_some_and(|(seen, _)| *seen == record) {
            return;
        }
        self.seen = Some((record, now));
    }

    /// The record last seen, if any read came back
    pub fn seen(&self) -> Option<&Option<LeaseRecord>> {
        self.seen.as_ref().map(|(record, _)| record)
    }

    /// From when `node` may claim: at once if no lease exists or it was released, else once
    /// the record seen has stayed unchanged for its term plus the grace. `None` before any
    /// read came back.
    pub fn claimable_from(&self, config: &LeaseConfig) -> Option<Instant> {
        let (record, since) = self.seen.as_ref()?;
        Some(match record {
            None => *since,
            Some(record) if record.released => *since,
            Some(record) => *since + config.waits_for(record.term()),
        })
    }

    /// The claim `node` may write at `now`: compare-and-set from the record seen to a new
    /// one naming `node`
    pub fn claim(
        &self,
        node: &str,
        config: &LeaseConfig,
        now: Instant,
    ) -> Option<(Option<LeaseRecord>, LeaseRecord)> {
        if now < self.claimable_from(config)? {
            return None;
        }
        let (record, _) = self.seen.as_ref()?;
        Some((
            record.clone(),
            LeaseRecord::claimed_by(record.as_ref(), node, config),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LeaseConfig {
        LeaseConfig::default()
    }

    #[test]
    fn the_default_keeps_holders_apart() {
        assert_eq!(config().check(), Ok(()));
        let too_tight = LeaseConfig {
            stop_margin: Duration::ZERO,
            claim_grace: Duration::ZERO,
            ..config()
        };
        assert!(matches!(
            too_tight.check(),
            Err(LeaseConfigError::Overlap { .. })
        ));
        let late = LeaseConfig {
            renew_after: Duration::from_millis(2500),
            ..config()
        };
        assert!(matches!(
            late.check(),
            Err(LeaseConfigError::RenewTooLate { .. })
        ));
        let long = LeaseConfig {
            stop_margin: Duration::from_secs(3),
            ..config()
        };
        assert!(matches!(
            long.check(),
            Err(LeaseConfigError::MarginTooLong { .. })
        ));
    }

    #[test]
    fn a_holder_runs_until_its_margin_and_renews_before() {
        let c = config();
        let t0 = Instant::now();
        let record = LeaseRecord::claimed_by(None, "a", &c);
        let mut h = Holding::new(record.clone(), t0);
        assert!(h.may_run(&c, t0 + Duration::from_millis(2499)));
        assert!(!h.may_run(&c, t0 + Duration::from_millis(2500)));
        assert_eq!(h.renewal(&c, t0 + Duration::from_millis(999)), None);
        let at = t0 + Duration::from_secs(1);
        let (expected, new) = h.renewal(&c, at).expect("due");
        assert_eq!((expected, new.generation), (record, 2));
        assert_eq!(h.renewal(&c, at), None, "one in flight");
        h.renewed();
        assert_eq!(h.deadline(&c), at + Duration::from_millis(2500));
        // past the deadline: no renewal, the child stops
        let late = h.deadline(&c);
        assert_eq!(h.renewal(&c, late), None);
        assert!(!h.may_run(&c, late));
    }

    #[test]
    fn a_lost_renewal_answer_keeps_the_older_count() {
        let c = config();
        let t0 = Instant::now();
        let mut h = Holding::new(LeaseRecord::claimed_by(None, "a", &c), t0);
        let at = t0 + Duration::from_secs(1);
        let (_, applied) = h.renewal(&c, at).expect("due");
        h.renewal_unsure();
        // the write had been applied: the next renewal finds it, ours
        assert!(h.mismatch(Some(&applied), "a"));
        assert_eq!(h.record(), &applied);
        assert_eq!(
            h.deadline(&c),
            t0 + Duration::from_millis(2500),
            "counted from t0"
        );
        // someone else's record: lost
        let other = LeaseRecord::claimed_by(Some(&applied), "b", &c);
        assert!(!h.mismatch(Some(&other), "a"));
        assert!(!h.mismatch(None, "a"));
    }

    #[test]
    fn others_claim_after_term_and_grace_unless_it_changes() {
        let c = config();
        let t0 = Instant::now();
        let mut w = Watching::new();
        assert_eq!(w.claim("b", &c, t0), None, "nothing seen yet");
        w.observe(None, t0);
        let (expected, new) = w.claim("b", &c, t0).expect("no lease: at once");
        assert_eq!(
            (expected, new.holder.as_str(), new.generation),
            (None, "b", 1)
        );

        let held = LeaseRecord::claimed_by(None, "a", &c);
        w.observe(Some(held.clone()), t0);
        assert_eq!(w.claim("b", &c, t0 + Duration::from_millis(3499)), None);
        // the same record seen again later does not restart the clock
        w.observe(Some(held.clone()), t0 + Duration::from_secs(2));
        let (expected, new) = w
            .claim("b", &c, t0 + Duration::from_millis(3500))
            .expect("due");
        assert_eq!(expected, Some(held.clone()));
        assert_eq!(new.generation, 2);
        // a renewal restarts it
        w.observe(Some(held.renewed()), t0 + Duration::from_secs(3));
        assert_eq!(w.claim("b", &c, t0 + Duration::from_secs(6)), None);
        // a released lease may be claimed at once
        w.observe(Some(held.released()), t0 + Duration::from_secs(7));
        assert!(w.claim("b", &c, t0 + Duration::from_secs(7)).is_some());
    }
}
