//! [`Seat`]: one node's part in placing one failover child, as a state machine
//!
//! The runtime feeds it the time, its membership view and the answers of the register, and
//! carries out the [`Action`]s it returns: read or compare-and-set the child's lease record,
//! start or stop the child here. It never does I/O and never reads a clock.
//!
//! The child runs here only while this node holds the lease ([`crate::lease`]); membership
//! views only decide *who tries*: the first live node in the failover order claims a lease
//! nobody renews, and with takeover a holder gives the lease up when a node before it in the
//! order is live again. Views may disagree (an asymmetric partition): then two nodes may try,
//! and the register's compare-and-set lets one win.
//!
//! A node where the child keeps failing gives it up ([`Seat::child_failed`],
//! [`Seat::start_failed`]): it releases the lease at once and sits out for a while, passed
//! over by every node that knows it (see [`crate::bench`]).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bench::{Bench, GIVE_UP_AFTER_FAILED_STARTS, GaveUp, SitOut};
use crate::lease::{Holding, LeaseConfig, LeaseRecord, Watching};
use crate::place::Placement;

/// Names one read or write a [`Seat`] asked for, so its answer is matched to it: an answer
/// to a request the seat has since given up on (it timed out, the lease ran out) is dropped
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId(pub u64);

/// What the runtime is to do for a [`Seat`]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Read the child's lease record, linearizably; answer with [`Seat::read_done`]
    Read {
        /// Give it back with the answer
        id: RequestId,
    },
    /// Compare-and-set the record from `expected` (`None`: absent) to `new`; answer with
    /// [`Seat::write_done`]
    Write {
        /// Give it back with the answer
        id: RequestId,
        /// What the register must hold for the write to apply
        expected: Option<LeaseRecord>,
        /// What it then holds
        new: LeaseRecord,
    },
    /// Start the child on this node
    Start,
    /// The child is being handed over to another node: hold back new messages for it here
    /// (they go to the next holder) while it works off those it has; an [`Action::Stop`]
    /// follows once every node has had time to see the hand-over
    Drain,
    /// Stop the child on this node; answer with [`Seat::child_stopped`] once it has stopped
    Stop,
}

/// How a compare-and-set ended
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOutcome {
    /// Applied
    Applied,
    /// Not applied: the register held this instead
    Mismatch(Option<LeaseRecord>),
    /// Unknown (no answer in time, or the connection failed): it may have applied
    Unknown,
}

#[derive(Debug, Clone)]
enum State {
    /// Not holding: watching the record, claiming when it is this node's turn
    Watching {
        watching: Watching,
        /// A claim whose outcome is unknown: if a read shows it applied, this node holds the
        /// lease, counted from when the claim was sent
        unsure: Option<(LeaseRecord, Instant)>,
    },
    /// A claim in flight
    Claiming {
        watching: Watching,
        new: LeaseRecord,
        sent_at: Instant,
    },
    /// Holding the lease
    Holding(Holding),
    /// Giving the lease up for a node before this one: stopping the child, then writing the
    /// record released
    Releasing {
        holding: Holding,
        /// The release write is in flight
        writing: bool,
    },
}

/// One node's part in placing one failover child
#[derive(Debug, Clone)]
pub struct Seat {
    me: String,
    placement: Placement,
    config: LeaseConfig,
    state: State,
    /// The child was told to start here and not yet to stop
    running: bool,
    /// A stop was asked and not yet confirmed
    stopping: bool,
    /// Handing the child over while holding: `Some(None)` until the record is marked
    /// draining, then when that write was applied
    draining: Option<Option<Instant>>,
    /// The read in flight, and when it was sent
    reading: Option<(RequestId, Instant)>,
    /// When the last read came back
    last_read: Option<Instant>,
    /// The write in flight, and when it was sent
    writing: Option<(RequestId, Instant)>,
    /// No write before this: set when a write's outcome came back unknown
    write_after: Option<Instant>,
    next_id: u64,
    /// How long this node sits out after giving the child up
    sit_out: SitOut,
    /// Who sits out, as this node knows
    bench: Bench,
    /// Starts that failed in a row here
    failed_starts: u32,
    /// Until then this node's membership view may still lack live nodes: it has just joined
    view_settles_at: Option<Instant>,
}

/// Releasing from `holding` (its release write to be sent) while this node still `held` the
/// lease; else watching, the lease gone
fn releasing_if(holding: Holding, held: bool) -> State {
    match held {
        true => State::Releasing {
            holding,
            writing: false,
        },
        false => State::Watching {
            watching: Watching::new(),
            unsure: None,
        },
    }
}

/// How long an answer from the register may take before it counts as lost
fn answer_deadline(config: &LeaseConfig) -> Duration {
    config.renew_after
}

/// How long a holder keeps the child running once its record is marked draining, so that
/// every node has read the mark before it stops: a read under way when the mark applied may
/// answer the old record up to `renew_after` later, the next starts `renew_after` after that
/// answer (plus the runtime's tick) and answers within `renew_after`; half a period of slack
fn drain_for(config: &LeaseConfig) -> Duration {
    config.renew_after * 3 + config.renew_after / 2
}

/// How long after sending a write whose outcome came back unknown the next may be sent: a
/// register that fails at once (its leader's node known down, say) would otherwise be asked
/// again and again without pause, as fast as it answers. A tenth of the renewal period still
/// leaves a holder many tries before its lease runs out.
fn write_retry_after(config: &LeaseConfig) -> Duration {
    config.renew_after / 10
}

/// Records that a read (or a write's mismatch) at `now` showed `record`, learning the sit-outs
/// a record tells of the first time it is seen
fn observe(
    watching: &mut Watching,
    bench: &mut Bench,
    me: &str,
    record: Option<LeaseRecord>,
    now: Instant,
) {
    if let Some(current) = &record
        && watching.seen() != Some(&record)
    {
        bench.learn(me, current, now);
    }
    watching.observe(record, now);
}

/// Whether a write may be sent at `now`: none is in flight, and the pause after one whose
/// outcome came back unknown has passed (the seat's fields, apart so that a borrow of its state
/// can stand beside them)
fn may_write(
    writing: Option<(RequestId, Instant)>,
    write_after: Option<Instant>,
    now: Instant,
) -> bool {
    writing.is_none() && write_after.is_none_or(|after| now >= after)
}

/// The write sent at `now` from `expected` to `new`, named and recorded as in flight
fn send_write(
    next_id: &mut u64,
    writing: &mut Option<(RequestId, Instant)>,
    now: Instant,
    expected: Option<LeaseRecord>,
    new: LeaseRecord,
) -> Action {
    *next_id += 1;
    let id = RequestId(*next_id);
    *writing = Some((id, now));
    Action::Write { id, expected, new }
}

impl Seat {
    /// Node `me`'s seat for a child placed by `placement`, holding nothing yet
    ///
    /// # Errors
    ///
    /// The [`LeaseConfigError`](crate::LeaseConfigError) if `config` cannot keep holders
    /// apart ([`LeaseConfig::check`]).
    pub fn new(
        me: impl Into<String>,
        placement: Placement,
        config: LeaseConfig,
    ) -> Result<Self, crate::LeaseConfigError> {
        config.check()?;
        Ok(Self::unchecked(me, placement, config))
    }

    /// A seat whose `config` is not checked: for tests that show what unsafe settings do
    #[doc(hidden)]
    pub fn unchecked(me: impl Into<String>, placement: Placement, config: LeaseConfig) -> Self {
        Self {
            me: me.into(),
            placement,
            config,
            state: State::Watching {
                watching: Watching::new(),
                unsure: None,
            },
            running: false,
            stopping: false,
            draining: None,
            reading: None,
            last_read: None,
            writing: None,
            write_after: None,
            next_id: 0,
            sit_out: SitOut::default(),
            bench: Bench::default(),
            failed_starts: 0,
            view_settles_at: None,
        }
    }

    /// The same seat on a node whose membership view may lack live nodes until `at` (it has
    /// just joined, and has not heard of every member yet): until then a node before this one
    /// in the order counts as live unless it sits out, so this node claims only a lease that
    /// is its own by the whole order, and does not take a child from under a node ahead of it
    /// that its view has not caught up with. Without it, the view is trusted from the start.
    pub fn with_view_settling_until(mut self, at: Instant) -> Self {
        self.view_settles_at = Some(at);
        self
    }

    /// The same seat, sitting out by `sit_out` after it gives the child up (instead of
    /// [`SitOut::default`])
    pub fn with_sit_out(mut self, sit_out: SitOut) -> Self {
        self.sit_out = sit_out;
        self
    }

    /// The placement it follows
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Follows `placement` from now on (an operator moved the child or drained a node: see
    /// [`Placement::directed`]). Safety does not depend on it: whatever the order, the lease
    /// keeps the child on one node at a time.
    pub fn set_placement(&mut self, placement: Placement) {
        self.placement = placement;
    }

    /// Whether the child was told to run here (and not yet to stop)
    pub fn running(&self) -> bool {
        self.running
    }

    /// Whether the child may act at `now`: this node holds the lease and it has not run out.
    ///
    /// The runtime checks this before the child handles each message, not only through the
    /// [`Action::Stop`] that [`Seat::tick`] gives at the deadline: a process paused past its
    /// deadline may, on waking, run the child's task before the seat's, and a stop takes time.
    pub fn may_act(&self, now: Instant) -> bool {
        match &self.state {
            State::Holding(holding) => holding.may_run(&self.config, now),
            State::Releasing { holding, .. } => {
                (self.running || self.stopping) && holding.may_run(&self.config, now)
            }
            State::Watching { .. } | State::Claiming { .. } => false,
        }
    }

    /// Until when the child may act here: [`Seat::may_act`] holds exactly before it. `None`
    /// when it may not act at all. For a gate checked before each message the child handles.
    pub fn acts_until(&self) -> Option<Instant> {
        match &self.state {
            State::Holding(holding) => Some(holding.deadline(&self.config)),
            State::Releasing { holding, .. } if self.running || self.stopping => {
                Some(holding.deadline(&self.config))
            }
            _ => None,
        }
    }

    /// Whether this node holds the lease
    pub fn holds(&self) -> bool {
        matches!(self.state, State::Holding(_) | State::Releasing { .. })
    }

    /// The lease held, if any
    pub fn lease(&self) -> Option<&LeaseRecord> {
        match &self.state {
            State::Holding(holding) | State::Releasing { holding, .. } => Some(holding.record()),
            _ => None,
        }
    }

    /// What to do at `now`, with `live` saying which nodes this node's membership view holds
    /// live. Call it often (at least every few hundred milliseconds, and first thing after
    /// the process was paused): a holder past its deadline stops here.
    ///
    /// Nodes sitting out (this one included) count as not live when choosing who claims and
    /// whom a holder gives way to.
    pub fn tick(&mut self, now: Instant, live: &dyn Fn(&str) -> bool) -> Vec<Action> {
        let mut actions = Vec::new();
        self.expire_waits(now);
        self.bench.prune(now);
        let benched = self.bench.sitting_out(now);
        let eligible = |n: &str| live(n) && !benched.iter().any(|b| b == n);
        let live: &dyn Fn(&str) -> bool = &eligible;
        match &mut self.state {
            State::Holding(holding) => {
                if !holding.may_run(&self.config, now) {
                    // the lease ran out (cut off from the register, or paused): stop at once
                    self.draining = None;
                    self.stop_running(&mut actions);
                    self.state = State::Watching {
                        watching: Watching::new(),
                        unsure: None,
                    };
                    self.writing = None;
                    return actions;
                }
                // Handing over: first mark the record draining (senders hold new messages
                // back), then keep running for long enough that every node has read it
                // while the child works off what it has, then stop and release
                if self.draining.is_none() && self.placement.gives_way(&self.me, live) {
                    self.draining = Some(None);
                    actions.push(Action::Drain);
                }
                match self.draining {
                    Some(Some(marked)) if now >= marked + drain_for(&self.config) => {
                        self.state = State::Releasing {
                            holding: holding.clone(),
                            writing: false,
                        };
                        self.draining = None;
                        self.stop_running(&mut actions);
                        return actions;
                    }
                    Some(None)
                        if may_write(self.writing, self.write_after, now)
                            && !holding.record().draining =>
                    {
                        if let Some((expected, new)) = holding.start_draining(&self.config, now) {
                            let write = send_write(
                                &mut self.next_id,
                                &mut self.writing,
                                now,
                                Some(expected),
                                new,
                            );
                            actions.push(write);
                        }
                    }
                    _ => {}
                }
                if may_write(self.writing, self.write_after, now)
                    && let Some((expected, new)) = holding.renewal(&self.config, now)
                {
                    let write = send_write(
                        &mut self.next_id,
                        &mut self.writing,
                        now,
                        Some(expected),
                        new,
                    );
                    actions.push(write);
                }
                if !self.running && !self.stopping && self.draining.is_none() {
                    self.running = true;
                    actions.push(Action::Start);
                }
            }
            State::Releasing { holding, writing } => {
                if self.stopping || self.running {
                    // wait for the stop to be confirmed; past the deadline the lease is gone
                    if !holding.may_run(&self.config, now) {
                        self.state = State::Watching {
                            watching: Watching::new(),
                            unsure: None,
                        };
                    }
                    return actions;
                }
                if !*writing && may_write(self.writing, self.write_after, now) {
                    *writing = true;
                    let write = send_write(
                        &mut self.next_id,
                        &mut self.writing,
                        now,
                        Some(holding.record().clone()),
                        holding
                            .record()
                            .released_benching(self.bench.to_record(now)),
                    );
                    actions.push(write);
                }
            }
            State::Claiming { .. } => {}
            State::Watching { watching, unsure } => {
                let stale = self
                    .last_read
                    .is_none_or(|at| now >= at + self.config.renew_after);
                if stale && self.reading.is_none() {
                    self.next_id += 1;
                    let id = RequestId(self.next_id);
                    self.reading = Some((id, now));
                    actions.push(Action::Read { id });
                }
                // a node that has just joined may not have heard of the nodes ahead of it yet
                let unsettled = self.view_settles_at.is_some_and(|at| now < at);
                let me = self.me.as_str();
                let presumed =
                    |n: &str| live(n) || (unsettled && n != me && !benched.iter().any(|b| b == n));
                // a claim of unknown outcome is settled by a read before any other claim
                if may_write(self.writing, self.write_after, now)
                    && unsure.is_none()
                    && self.placement.first_live(&presumed) == Some(me)
                    && let Some((expected, new)) = watching.claim(&self.me, &self.config, now)
                {
                    let write = send_write(
                        &mut self.next_id,
                        &mut self.writing,
                        now,
                        expected,
                        new.clone(),
                    );
                    self.state = State::Claiming {
                        watching: watching.clone(),
                        new,
                        sent_at: now,
                    };
                    actions.push(write);
                }
            }
        }
        actions
    }

    /// The read `id` of an [`Action::Read`] came back at `now` with `record`; an answer to a
    /// read no longer in flight is dropped
    pub fn read_done(&mut self, id: RequestId, record: Option<LeaseRecord>, now: Instant) {
        if self.reading.is_none_or(|(asked, _)| asked != id) {
            return;
        }
        self.reading = None;
        self.last_read = Some(now);
        match &mut self.state {
            State::Watching { watching, unsure } => {
                // our claim whose answer was lost did apply: we hold it since we sent it
                if let (Some((claimed, sent_at)), Some(current)) = (unsure.as_ref(), &record)
                    && claimed == current
                {
                    self.state = State::Holding(Holding::new(current.clone(), *sent_at));
                    return;
                }
                // it did not apply, or was overwritten since: either way not ours now
                *unsure = None;
                observe(watching, &mut self.bench, &self.me, record, now);
            }
            State::Claiming { watching, .. } => {
                observe(watching, &mut self.bench, &self.me, record, now);
            }
            State::Holding(_) | State::Releasing { .. } => {}
        }
    }

    /// The write `id` of an [`Action::Write`] ended with `outcome`, learnt at `now`; an
    /// answer to a write no longer in flight (given up on as lost, or dropped when the lease
    /// ran out) is dropped: crediting it to a later write would count the lease from the
    /// wrong time
    pub fn write_done(
        &mut self,
        id: RequestId,
        outcome: WriteOutcome,
        now: Instant,
    ) -> Vec<Action> {
        if self.writing.is_none_or(|(asked, _)| asked != id) {
            return Vec::new();
        }
        self.settle_write(outcome, now)
    }

    fn settle_write(&mut self, outcome: WriteOutcome, now: Instant) -> Vec<Action> {
        if let (Some((_, sent)), WriteOutcome::Unknown) = (self.writing, &outcome) {
            self.write_after = Some(sent + write_retry_after(&self.config));
        }
        self.writing = None;
        let mut actions = Vec::new();
        let state = std::mem::replace(
            &mut self.state,
            State::Watching {
                watching: Watching::new(),
                unsure: None,
            },
        );
        self.state = match (state, outcome) {
            (State::Claiming { new, sent_at, .. }, WriteOutcome::Applied) => {
                State::Holding(Holding::new(new, sent_at))
            }
            (State::Claiming { mut watching, .. }, WriteOutcome::Mismatch(current)) => {
                observe(&mut watching, &mut self.bench, &self.me, current, now);
                State::Watching {
                    watching,
                    unsure: None,
                }
            }
            (
                State::Claiming {
                    watching,
                    new,
                    sent_at,
                },
                WriteOutcome::Unknown,
            ) => State::Watching {
                watching,
                unsure: Some((new, sent_at)),
            },
            (State::Holding(mut holding), WriteOutcome::Applied) => {
                holding.renewed();
                if self.draining == Some(None) && holding.record().draining {
                    self.draining = Some(Some(now));
                }
                State::Holding(holding)
            }
            (State::Holding(mut holding), WriteOutcome::Mismatch(current)) => {
                if holding.mismatch(current.as_ref(), &self.me) {
                    State::Holding(holding)
                } else {
                    self.stop_running(&mut actions);
                    let mut watching = Watching::new();
                    observe(&mut watching, &mut self.bench, &self.me, current, now);
                    State::Watching {
                        watching,
                        unsure: None,
                    }
                }
            }
            (State::Holding(mut holding), WriteOutcome::Unknown) => {
                holding.renewal_unsure();
                State::Holding(holding)
            }
            // a renewal sent before the seat turned to releasing (the child failed, or the
            // hand-over's drain ended): settled as a holder settles it, the release follows
            (
                State::Releasing {
                    mut holding,
                    writing: false,
                },
                outcome,
            ) => {
                let held = match outcome {
                    WriteOutcome::Applied => {
                        holding.renewed();
                        true
                    }
                    WriteOutcome::Mismatch(current) => holding.mismatch(current.as_ref(), &self.me),
                    WriteOutcome::Unknown => {
                        holding.renewal_unsure();
                        true
                    }
                };
                releasing_if(holding, held)
            }
            (State::Releasing { holding, .. }, WriteOutcome::Unknown) => State::Releasing {
                holding,
                writing: false,
            },
            // the register holds a later record of ours (a renewal whose answer was lost had
            // applied): release from that one, rather than leave others to wait out its term
            (State::Releasing { mut holding, .. }, WriteOutcome::Mismatch(current)) => {
                let held = holding.mismatch(current.as_ref(), &self.me);
                releasing_if(holding, held)
            }
            (State::Releasing { .. }, WriteOutcome::Applied) => State::Watching {
                watching: Watching::new(),
                unsure: None,
            },
            // an answer to no write of ours: nothing changes
            (state @ State::Watching { .. }, _) => state,
        };
        if !matches!(self.state, State::Holding(_)) {
            self.draining = None;
        }
        actions
    }

    /// The child stopped here, as an [`Action::Stop`] asked (or by itself)
    pub fn child_stopped(&mut self) {
        self.running = false;
        self.stopping = false;
    }

    /// The child ended here on its own (its supervisor gave up: restart intensity exceeded)
    /// at `now`: this node gives it up. It releases the lease at once (the next
    /// [`Seat::tick`]s write the record released, naming the nodes that sit out) so that the
    /// next node of the order claims it without waiting for the lease to run out, and it sits
    /// out itself, claiming nothing, for as long as [`SitOut`] says for its give-ups in a row.
    ///
    /// Not for a stop an [`Action::Stop`] asked for: that is [`Seat::child_stopped`].
    pub fn child_failed(&mut self, now: Instant) -> GaveUp {
        self.running = false;
        self.stopping = false;
        self.failed_starts = 0;
        self.draining = None;
        // never back before every node can have read the release and the next claimed
        let least = drain_for(&self.config);
        let gave_up = self.bench.give_up(&self.me, &self.sit_out, least, now);
        if let State::Holding(holding) = &self.state {
            self.state = State::Releasing {
                holding: holding.clone(),
                writing: false,
            };
        }
        gave_up
    }

    /// An [`Action::Start`] failed at `now`: the child does not run here. The next tick asks
    /// to start it again (the runtime may hold that back a little); after
    /// [`GIVE_UP_AFTER_FAILED_STARTS`] failures in a row this node gives the child up, as
    /// [`Seat::child_failed`] does, and says so.
    pub fn start_failed(&mut self, now: Instant) -> Option<GaveUp> {
        self.child_stopped();
        self.failed_starts += 1;
        (self.failed_starts >= GIVE_UP_AFTER_FAILED_STARTS).then(|| self.child_failed(now))
    }

    /// An [`Action::Start`] succeeded: the child runs, and failed starts no longer count
    pub fn child_started(&mut self) {
        self.failed_starts = 0;
    }

    /// Whether this node sits out at `now`, having given the child up
    pub fn sits_out(&self, now: Instant) -> bool {
        self.bench.sits_out(&self.me, now)
    }

    /// When this node's last sit-out ends (or ended), if it ever gave the child up
    pub fn sits_out_until(&self) -> Option<Instant> {
        self.bench.mine_ends()
    }

    fn stop_running(&mut self, actions: &mut Vec<Action>) {
        if self.running {
            self.running = false;
            self.stopping = true;
            actions.push(Action::Stop);
        }
    }

    /// Reads and writes unanswered for too long count as lost (a write's outcome as unknown).
    fn expire_waits(&mut self, now: Instant) {
        let deadline = answer_deadline(&self.config);
        if self.reading.is_some_and(|(_, sent)| now >= sent + deadline) {
            self.reading = None;
        }
        if self.writing.is_some_and(|(_, sent)| now >= sent + deadline) {
            let _ = self.settle_write(WriteOutcome::Unknown, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(me: &str) -> Seat {
        Seat::new(
            me,
            Placement::new(["a", "b"], false),
            LeaseConfig::default(),
        )
        .expect("valid")
    }

    fn all(_: &str) -> bool {
        true
    }

    /// The one read among `actions`.
    fn read(actions: &[Action]) -> RequestId {
        match actions {
            [Action::Read { id }] => *id,
            other => panic!("not one read: {other:?}"),
        }
    }

    /// The one write among `actions`: its id and new record.
    fn write(actions: &[Action]) -> (RequestId, LeaseRecord) {
        let writes: Vec<_> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Write { id, new, .. } => Some((*id, new.clone())),
                _ => None,
            })
            .collect();
        match writes.as_slice() {
            [one] => one.clone(),
            other => panic!("not one write: {actions:?} {other:?}"),
        }
    }

    /// `a` holding the lease from `t0`, its child running.
    fn holder(t0: Instant) -> Seat {
        let mut a = seat("a");
        let id = read(&a.tick(t0, &all));
        a.read_done(id, None, t0);
        let (id, _) = write(&a.tick(t0, &all));
        assert!(a.write_done(id, WriteOutcome::Applied, t0).is_empty());
        assert_eq!(a.tick(t0, &all), vec![Action::Start]);
        a
    }

    #[test]
    fn a_bad_config_is_refused() {
        let bad = LeaseConfig {
            stop_margin: Duration::ZERO,
            claim_grace: Duration::ZERO,
            ..LeaseConfig::default()
        };
        assert!(Seat::new("a", Placement::new(["a"], false), bad).is_err());
    }

    #[test]
    fn the_first_live_node_claims_an_absent_lease_then_runs_and_renews() {
        let t0 = Instant::now();
        let mut a = holder(t0);
        assert!(a.running());
        let (id, new) = write(&a.tick(t0 + Duration::from_secs(1), &all));
        assert_eq!(new.generation, 2);
        a.write_done(id, WriteOutcome::Applied, t0 + Duration::from_secs(1));
        assert!(a.tick(t0 + Duration::from_millis(1999), &all).is_empty());
        // past the first write's deadline, running on the renewal's
        let later = a.tick(t0 + Duration::from_millis(3400), &all);
        assert!(!later.contains(&Action::Stop) && a.running(), "{later:?}");

        // b defers to a, live and first
        let mut b = seat("b");
        let id = read(&b.tick(t0, &all));
        b.read_done(id, None, t0);
        assert!(b.tick(t0, &all).is_empty());
    }

    #[test]
    fn a_node_that_just_joined_waits_for_its_view_before_claiming_ahead_of_others() {
        let t0 = Instant::now();
        let settled = t0 + Duration::from_secs(3);
        let only_b = |n: &str| n == "b";
        // b has just joined and has not heard of a yet: the lease is absent, but a may be live
        let mut b = seat("b").with_view_settling_until(settled);
        let id = read(&b.tick(t0, &only_b));
        b.read_done(id, None, t0);
        assert!(b.tick(t0, &only_b).is_empty());
        let id = read(&b.tick(settled - Duration::from_millis(1), &only_b));
        b.read_done(id, None, settled - Duration::from_millis(1));
        assert!(
            b.tick(settled - Duration::from_millis(1), &only_b)
                .is_empty()
        );
        // settled, the view still without a: a is taken as gone and b claims
        let (_, claim) = write(&b.tick(settled, &only_b));
        assert_eq!(claim.holder, "b");

        // the first of the order need not wait for anyone
        let mut a = seat("a").with_view_settling_until(settled);
        let id = read(&a.tick(t0, &|n| n == "a"));
        a.read_done(id, None, t0);
        let (_, claim) = write(&a.tick(t0, &|n| n == "a"));
        assert_eq!(claim.holder, "a");
    }

    #[test]
    fn a_holder_cut_off_from_the_register_stops_at_its_deadline() {
        let t0 = Instant::now();
        let mut a = holder(t0);
        // every renewal goes unanswered
        let mut now = t0;
        let mut stopped = None;
        while now < t0 + Duration::from_secs(5) {
            now += Duration::from_millis(10);
            if a.tick(now, &all).contains(&Action::Stop) {
                stopped = Some(now);
                break;
            }
        }
        assert_eq!(stopped, Some(t0 + Duration::from_millis(2500)));
        assert!(!a.running() && !a.holds() && !a.may_act(now));
    }

    #[test]
    fn an_answer_to_a_write_given_up_on_is_not_credited_to_a_later_one() {
        let t0 = Instant::now();
        let mut a = holder(t0);
        // a renewal at 1 s whose answer is late; given up on at 2 s, another sent
        let (late, _) = write(&a.tick(t0 + Duration::from_secs(1), &all));
        let retry = a.tick(t0 + Duration::from_millis(2000), &all);
        let (current, _) = write(&retry);
        assert_ne!(late, current);
        // the late answer says applied: it must not move the deadline to 2 s
        assert!(
            a.write_done(
                late,
                WriteOutcome::Applied,
                t0 + Duration::from_millis(2100)
            )
            .is_empty()
        );
        assert!(a.may_act(t0 + Duration::from_millis(2499)));
        assert!(!a.may_act(t0 + Duration::from_millis(2500)));
        // the answer to the write in flight counts
        a.write_done(
            current,
            WriteOutcome::Applied,
            t0 + Duration::from_millis(2100),
        );
        assert!(a.may_act(t0 + Duration::from_millis(4499)));
        // a late read answer is dropped too
        let mut b = seat("b");
        let first = read(&b.tick(t0, &all));
        let second = read(&b.tick(t0 + Duration::from_secs(2), &all));
        b.read_done(first, Some(a.lease().cloned().expect("held")), t0);
        b.read_done(second, None, t0 + Duration::from_secs(2));
        assert!(
            b.tick(t0 + Duration::from_secs(2), &all).is_empty(),
            "b defers to a"
        );
    }

    #[test]
    fn a_renewal_whose_outcome_is_unknown_at_once_is_not_retried_at_once() {
        // the register fails fast (its leader's node known down): each renewal comes back
        // unknown as soon as it is sent; the shell ticks the seat again after each answer
        let t0 = Instant::now();
        let mut a = holder(t0);
        let mut now = t0 + Duration::from_secs(1);
        let mut writes = 0;
        while a.holds() {
            let actions = a.tick(now, &all);
            if let Some((id, _)) = actions.iter().find_map(|action| match action {
                Action::Write { id, new, .. } => Some((*id, new.clone())),
                _ => None,
            }) {
                writes += 1;
                assert!(a.write_done(id, WriteOutcome::Unknown, now).is_empty());
                // asked again at once, as the driver does after every answer: nothing
                assert!(
                    !a.tick(now, &all)
                        .iter()
                        .any(|action| matches!(action, Action::Write { .. })),
                    "retried at once at {:?}",
                    now - t0
                );
            }
            now += Duration::from_millis(1);
        }
        // from 1 s to the deadline at 2.5 s, one try every 100 ms
        assert_eq!(writes, 15);
    }

    #[test]
    fn with_takeover_a_later_holder_gives_way_to_an_earlier_node() {
        let t0 = Instant::now();
        let placement = Placement::new(["a", "b"], true);
        let mut b = Seat::new("b", placement, LeaseConfig::default()).expect("valid");
        let a_down = |n: &str| n != "a";
        let id = read(&b.tick(t0, &a_down));
        b.read_done(id, None, t0);
        let (id, _) = write(&b.tick(t0, &a_down));
        b.write_done(id, WriteOutcome::Applied, t0);
        assert_eq!(b.tick(t0, &a_down), vec![Action::Start]);
        // a is back: b marks the lease draining (senders hold new messages back) and keeps
        // running while every node reads that, then stops, and only once stopped writes the
        // lease released
        let t1 = t0 + Duration::from_millis(100);
        let actions = b.tick(t1, &all);
        assert_eq!(actions[0], Action::Drain, "{actions:?}");
        let (id, marked) = write(&actions[1..]);
        assert!(marked.draining && marked.holder == "b", "{marked:?}");
        b.write_done(id, WriteOutcome::Applied, t1);
        assert!(b.may_act(t1) && b.running());
        let drained = t1 + drain_for(&LeaseConfig::default());
        // renewed meanwhile, every renewal still marked draining, and no stop before the end
        let mut now = t1;
        while now + Duration::from_millis(250) < drained {
            now += Duration::from_millis(250);
            let held = b.tick(now, &all);
            assert!(!held.contains(&Action::Stop), "{held:?} at {:?}", now - t1);
            if let Some((id, renewal)) = held.iter().find_map(|a| match a {
                Action::Write { id, new, .. } => Some((*id, new.clone())),
                _ => None,
            }) {
                assert!(renewal.draining);
                b.write_done(id, WriteOutcome::Applied, now);
            }
        }
        assert_eq!(b.tick(drained, &all), vec![Action::Stop]);
        assert!(
            b.tick(drained + Duration::from_millis(100), &all)
                .is_empty()
        );
        b.child_stopped();
        let (id, new) = write(&b.tick(drained + Duration::from_millis(200), &all));
        assert!(new.released);
        b.write_done(
            id,
            WriteOutcome::Applied,
            drained + Duration::from_millis(200),
        );
        assert!(!b.holds());
    }

    /// `seat` claims from `seen` at `now` and starts the child: the claim applied.
    fn claim_and_start(seat: &mut Seat, seen: Option<LeaseRecord>, now: Instant) -> LeaseRecord {
        let id = read(&seat.tick(now, &all));
        seat.read_done(id, seen, now);
        let (id, new) = write(&seat.tick(now, &all));
        assert!(seat.write_done(id, WriteOutcome::Applied, now).is_empty());
        assert_eq!(seat.tick(now, &all), vec![Action::Start]);
        seat.child_started();
        new
    }

    /// `seat`'s release write at `now`, applied: the record it wrote.
    fn release(seat: &mut Seat, now: Instant) -> LeaseRecord {
        let actions = seat.tick(now, &all);
        assert!(!actions.contains(&Action::Stop), "{actions:?}");
        let (id, released) = write(&actions);
        assert!(seat.write_done(id, WriteOutcome::Applied, now).is_empty());
        assert!(released.released && !seat.holds(), "{released:?}");
        released
    }

    #[test]
    fn a_node_whose_child_fails_releases_at_once_and_the_next_claims_at_once() {
        let t0 = Instant::now();
        let mut a = holder(t0);
        let t1 = t0 + Duration::from_millis(400);
        let gave_up = a.child_failed(t1);
        assert_eq!(
            (gave_up.in_a_row, gave_up.sits_out),
            (1, Duration::from_secs(5))
        );
        // the child is gone already: nothing to stop, and it may not act
        assert!(!a.running() && !a.may_act(t1) && a.acts_until().is_none());
        assert!(a.sits_out(t1));
        let released = release(&mut a, t1);
        assert_eq!(
            released.benched,
            [crate::Benched {
                node: "a".into(),
                for_ms: 5000
            }]
        );
        // b reads it 200 ms later: released, and a (first in the order, live) sits out, so b
        // claims at once rather than after the lease's term
        let t2 = t1 + Duration::from_millis(200);
        let mut b = seat("b");
        let id = read(&b.tick(t2, &all));
        b.read_done(id, Some(released.clone()), t2);
        let (id, claim) = write(&b.tick(t2, &all));
        assert_eq!(claim.holder, "b");
        assert!(claim.benched.is_empty(), "a claim carries no sit-outs");
        b.write_done(id, WriteOutcome::Applied, t2);
        assert_eq!(b.tick(t2, &all), vec![Action::Start]);
        // b does not hand it back to a while a sits out, even with takeover; once a's sit-out
        // is over (as b counts it: 5 s from when b first saw the record), it would
        b.set_placement(Placement::new(["a", "b"], true));
        let mut now = t2;
        let drained = loop {
            now += Duration::from_millis(10);
            let actions = b.tick(now, &all);
            if actions.contains(&Action::Drain) {
                break now;
            }
            for action in actions {
                match action {
                    Action::Write { id, .. } => {
                        b.write_done(id, WriteOutcome::Applied, now);
                    }
                    Action::Read { id } => b.read_done(id, Some(released.clone()), now),
                    other => panic!("{other:?} at {:?}", now - t2),
                }
            }
        };
        assert_eq!(drained, t2 + Duration::from_secs(5));
    }

    #[test]
    fn a_node_sitting_out_alone_claims_again_when_its_sit_out_ends() {
        let t0 = Instant::now();
        let mut a = holder(t0);
        let t1 = t0 + Duration::from_secs(1);
        a.child_failed(t1);
        let released = release(&mut a, t1);
        let t0 = t1;
        // a is the only live node: nobody claims until its sit-out ends
        let alone = |n: &str| n == "a";
        let id = read(&a.tick(t0, &alone));
        a.read_done(id, Some(released.clone()), t0);
        let mut now = t0;
        while now < t0 + Duration::from_millis(4990) {
            now += Duration::from_millis(10);
            let actions = a.tick(now, &alone);
            if let Some(Action::Read { id }) = actions.first() {
                a.read_done(*id, Some(released.clone()), now);
            }
            assert!(
                !actions.iter().any(|x| matches!(x, Action::Write { .. })),
                "claimed at {:?}: {actions:?}",
                now - t0
            );
        }
        let (_, claim) = write(&a.tick(t0 + Duration::from_secs(5), &alone));
        assert_eq!((claim.holder.as_str(), claim.generation), ("a", 3));
    }

    #[test]
    fn give_ups_in_a_row_sit_out_longer_each_time() {
        let t0 = Instant::now();
        let mut a = holder(t0);
        let mut now = t0;
        let mut sat_out = Vec::new();
        for _ in 0..4 {
            let gave_up = a.child_failed(now);
            sat_out.push((gave_up.in_a_row, gave_up.sits_out.as_secs()));
            let released = release(&mut a, now);
            // claims again as soon as the sit-out ends, fails again 100 ms in
            now = a.sits_out_until().expect("sat out");
            assert!(!a.sits_out(now));
            claim_and_start(&mut a, Some(released), now);
            now += Duration::from_millis(100);
        }
        assert_eq!(sat_out, [(1, 5), (2, 10), (3, 20), (4, 40)]);
        // running a minute past its last sit-out resets the count
        let gave_up = a.child_failed(now + Duration::from_secs(60));
        assert_eq!(gave_up.in_a_row, 1);
    }

    #[test]
    fn three_failed_starts_in_a_row_give_the_child_up() {
        let t0 = Instant::now();
        let mut a = holder(t0);
        assert_eq!(a.start_failed(t0), None);
        assert!(!a.running() && a.holds());
        // asked to start again; that one fails too
        assert_eq!(a.tick(t0, &all), vec![Action::Start]);
        assert_eq!(a.start_failed(t0), None);
        // a start that succeeds resets the count
        assert_eq!(a.tick(t0, &all), vec![Action::Start]);
        a.child_started();
        a.child_failed(t0 + Duration::from_millis(10));
        let released = release(&mut a, t0 + Duration::from_millis(10));
        let later = t0 + Duration::from_secs(6);
        claim_and_start(&mut a, Some(released), later);
        for n in 1..GIVE_UP_AFTER_FAILED_STARTS {
            assert_eq!(a.start_failed(later), None, "failure {n}");
            assert_eq!(a.tick(later, &all), vec![Action::Start]);
        }
        let gave_up = a.start_failed(later).expect("gave up");
        assert_eq!(gave_up.in_a_row, 2, "its earlier give-up ended 1 s ago");
        assert!(!a.may_act(later));
        release(&mut a, later);
    }

    #[test]
    fn a_renewal_in_flight_when_the_child_fails_is_released_from() {
        let t0 = Instant::now();
        let mut a = holder(t0);
        let t1 = t0 + Duration::from_secs(1);
        let (id, renewed) = write(&a.tick(t1, &all));
        a.child_failed(t1);
        // nothing more is written while the renewal is out
        assert!(a.tick(t1, &all).is_empty());
        assert!(a.write_done(id, WriteOutcome::Applied, t1).is_empty());
        let actions = a.tick(t1, &all);
        match actions.as_slice() {
            [Action::Write { expected, new, .. }] => {
                assert_eq!(expected.as_ref(), Some(&renewed));
                assert!(new.released && new.generation == renewed.generation + 1);
            }
            other => panic!("not the release: {other:?}"),
        }
        // had its answer been lost, the release mismatches a record still ours: it is
        // retried from that record
        let mut b = holder(t0);
        let (_, renewed) = write(&b.tick(t1, &all));
        b.child_failed(t1);
        let t2 = t1 + Duration::from_secs(1);
        let (id, _) = write(&b.tick(t2, &all));
        b.write_done(id, WriteOutcome::Mismatch(Some(renewed.clone())), t2);
        let later = t2 + Duration::from_millis(100);
        match b.tick(later, &all).as_slice() {
            [Action::Write { expected, new, .. }] => {
                assert_eq!(expected.as_ref(), Some(&renewed));
                assert!(new.released);
            }
            other => panic!("not the release: {other:?}"),
        }
    }

    #[test]
    fn a_claim_whose_answer_was_lost_is_adopted_when_a_read_shows_it() {
        let t0 = Instant::now();
        let mut a = seat("a");
        let id = read(&a.tick(t0, &all));
        a.read_done(id, None, t0);
        let (id, new) = write(&a.tick(t0, &all));
        a.write_done(id, WriteOutcome::Unknown, t0 + Duration::from_millis(50));
        assert!(!a.holds());
        let later = t0 + Duration::from_millis(1100);
        let id = read(&a.tick(later, &all));
        a.read_done(id, Some(new), later);
        assert!(a.holds());
        // it runs, and renews at once: the claim was sent over a second ago
        let actions = a.tick(later, &all);
        assert!(actions.contains(&Action::Start), "{actions:?}");
        assert!(matches!(actions[0], Action::Write { .. }), "{actions:?}");
        // counted from the claim's send time
        assert!(
            a.tick(t0 + Duration::from_millis(2500), &all)
                .contains(&Action::Stop)
        );
    }
}
