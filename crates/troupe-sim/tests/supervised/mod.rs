//! Supervision under simulation: a one-for-all pair of actors that escalates past its restart
//! intensity, what each host's supervisors did (recorded at simulated times), and a checker
//! that replays the same failures through a model of the policies written here, apart from the
//! runtime's own supervisor core, and compares.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use troupe_runtime::{
    Actor, ActorError, Ask, Ctx, Exit, Request, SupervisionAction, SupervisionReport,
    SupervisorSpec,
};

/// The pair's supervisor: one-for-all, escalating past [`PAIR_MAX_RESTARTS`] restarts within
/// [`PAIR_WITHIN`]; its parent (the node's root, one-for-one) restarts it.
pub(crate) const PAIR: &str = "pair";
pub(crate) const PAIR_MAX_RESTARTS: usize = 2;
pub(crate) const PAIR_WITHIN: Duration = Duration::from_secs(1);
/// The pair's children in start order: `b` fails when asked to, `a` never fails by itself (so
/// only one-for-all restarts `a`: rest-for-one and one-for-one would restart `b` alone)
pub(crate) const PAIR_CHILDREN: [&str; 2] = ["a", "b"];
/// The child of the pair the client makes fail
pub(crate) const FAILING: &str = PAIR_CHILDREN[1];
/// How far apart the model's clock (when a report reached its subscriber) and the
/// supervisor's (when it decided) may be: a restart this close to the window's edge may count
/// either way
const SLOP: Duration = Duration::from_millis(5);

pub(crate) fn pair_spec() -> SupervisorSpec {
    SupervisorSpec::one_for_all()
        .intensity(PAIR_MAX_RESTARTS as u32, PAIR_WITHIN)
        .escalate_when_exceeded()
}

/// Fail (`true`) or answer how many instances of this actor its node has started (`false`)
#[derive(Serialize, Deserialize)]
pub(crate) struct Poke(pub(crate) bool);

impl Request for Poke {
    const NAME: &'static str = "sim.Poke";
    type Response = u64;
}

/// One of the pair: fails when poked to, which fails its instance as a panic would
pub(crate) struct Crasher {
    pub(crate) generation: u64,
}

impl Actor for Crasher {
    type Msg = Ask<Poke>;

    async fn handle(
        &mut self,
        ask: Ask<Poke>,
        _ctx: &mut Ctx<Ask<Poke>>,
    ) -> Result<(), ActorError> {
        if ask.request.0 {
            return Err("poked to fail".into());
        }
        ask.reply.send(self.generation);
        Ok(())
    }
}

/// What a host saw, in order
#[derive(Clone, Debug)]
pub(crate) enum Seen {
    /// The host (re)started its node: supervisors start afresh
    NodeStarted,
    /// An instance of this actor was made (its factory ran)
    Started(&'static str),
    /// A supervisor's report of an exit and what it did
    Report(SupervisionReport),
    /// The report subscriber fell behind and lost reports
    Lagged(u64),
}

/// What every host saw, at simulated times; clones share it (every host runs on one thread)
#[derive(Clone, Default)]
pub(crate) struct SupervisionLog(Arc<Mutex<Vec<(Duration, String, Seen)>>>);

impl SupervisionLog {
    pub(crate) fn record(&self, host: &str, seen: Seen) {
        let at = turmoil::sim_elapsed().unwrap_or_default();
        if let Ok(mut log) = self.0.lock() {
            log.push((at, host.to_string(), seen));
        }
    }

    /// What `host` saw, in order
    pub(crate) fn of(&self, host: &str) -> Vec<(Duration, Seen)> {
        self.0
            .lock()
            .map(|log| {
                log.iter()
                    .filter(|(_, h, _)| h == host)
                    .map(|(at, _, seen)| (*at, seen.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Records `node`'s supervision reports until the node's runtime ends
    pub(crate) fn subscribe(&self, host: &'static str, node: &troupe_runtime::Node) {
        let mut reports = node.supervision_reports();
        let log = self.clone();
        tokio::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match reports.recv().await {
                    Ok(report) => log.record(host, Seen::Report(report)),
                    Err(RecvError::Lagged(n)) => log.record(host, Seen::Lagged(n)),
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }
}

/// What a host's supervisors decided, counted
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Decisions {
    pub(crate) pair_restarts: usize,
    pub(crate) escalations: usize,
    pub(crate) root_restarts: usize,
}

/// One node's run between two starts of its host
#[derive(Default)]
struct Run {
    /// When the pair restarted, inside the intensity window (with its slop)
    restarts: VecDeque<Duration>,
    /// The pair escalated and its parent has not yet restarted it
    escalated: bool,
    /// Instances each of the pair's children should have had started: the first start, one per
    /// restart of the pair, one per restart of the pair by its parent
    expected_starts: usize,
    starts: [usize; 2],
}

impl Run {
    fn new() -> Self {
        Self {
            expected_starts: 1,
            ..Self::default()
        }
    }

    /// `Err` if a child of the pair was started other than once per (re)start of the pair;
    /// a run that a crash ended may have had the last restart decided and not yet made
    fn check_starts(&self, ended_by_crash: bool) -> Result<(), String> {
        for (child, &started) in PAIR_CHILDREN.iter().zip(&self.starts) {
            let ok = started == self.expected_starts
                || (ended_by_crash && started + 1 == self.expected_starts);
            if !ok {
                return Err(format!(
                    "{child} was started {started} times, the pair's restarts call for {}",
                    self.expected_starts
                ));
            }
        }
        Ok(())
    }
}

/// Checks what one host's supervisors did against the policies: the pair (one-for-all) restarts
/// both children, in start order, at each failure of one, until a failure would make more than
/// [`PAIR_MAX_RESTARTS`] restarts within [`PAIR_WITHIN`]; then it escalates and the root
/// (one-for-one) restarts it, and only it. Every other child of the root is restarted alone.
/// Each (re)start of the pair starts each of its children exactly once.
pub(crate) fn check_supervision(seen: &[(Duration, Seen)]) -> Result<Decisions, String> {
    let mut decisions = Decisions::default();
    let mut run = Run::new();
    for (i, (at, event)) in seen.iter().enumerate() {
        let at = *at;
        let fail = |what: String| Err(format!("at {at:?}: {what}"));
        match event {
            Seen::NodeStarted => {
                if i > 0 {
                    run.check_starts(true)?;
                }
                run = Run::new();
            }
            Seen::Lagged(n) => return fail(format!("{n} reports lost")),
            Seen::Started(child) => {
                if let Some(k) = PAIR_CHILDREN.iter().position(|c| c == child) {
                    run.starts[k] += 1;
                }
            }
            Seen::Report(report) if report.supervisor == PAIR => {
                if report.child != FAILING || report.exit != Exit::Failed {
                    return fail(format!("unexpected exit in the pair: {report:?}"));
                }
                if run.escalated {
                    return fail(format!("the pair reported after it escalated: {report:?}"));
                }
                // restarts surely inside the window, and possibly inside it (at its edge)
                let surely = run
                    .restarts
                    .iter()
                    .filter(|&&t| at.saturating_sub(t) + SLOP < PAIR_WITHIN)
                    .count();
                let possibly = run
                    .restarts
                    .iter()
                    .filter(|&&t| at.saturating_sub(t) < PAIR_WITHIN + SLOP)
                    .count();
                let must_escalate = surely + 1 > PAIR_MAX_RESTARTS;
                let may_escalate = possibly + 1 > PAIR_MAX_RESTARTS;
                match &report.action {
                    SupervisionAction::Escalated(_) if may_escalate => {
                        run.escalated = true;
                        run.restarts.clear();
                        decisions.escalations += 1;
                    }
                    SupervisionAction::Restarted { children, .. } if !must_escalate => {
                        if children != &PAIR_CHILDREN {
                            return fail(format!(
                                "one-for-all restarted {children:?}, not both children in start order"
                            ));
                        }
                        run.restarts.push_back(at);
                        while run
                            .restarts
                            .front()
                            .is_some_and(|&t| at.saturating_sub(t) >= PAIR_WITHIN + SLOP)
                        {
                            run.restarts.pop_front();
                        }
                        run.expected_starts += 1;
                        decisions.pair_restarts += 1;
                    }
                    other => {
                        return fail(format!(
                            "the pair did {other:?} with {surely}-{possibly} restarts in the last \
                             {PAIR_WITHIN:?} (limit {PAIR_MAX_RESTARTS})"
                        ));
                    }
                }
            }
            Seen::Report(report) => {
                let restarted_alone = matches!(&report.action,
                    SupervisionAction::Restarted { children, .. }
                        if children == std::slice::from_ref(&report.child));
                if report.exit != Exit::Failed || !restarted_alone {
                    return fail(format!(
                        "the root did {:?} for {} ({:?}), not restart it alone",
                        report.action, report.child, report.exit
                    ));
                }
                if report.child == PAIR {
                    if !run.escalated {
                        return fail("the pair failed without escalating".into());
                    }
                    run.escalated = false;
                    run.expected_starts += 1;
                    decisions.root_restarts += 1;
                }
            }
        }
    }
    if run.escalated {
        return Err("the pair escalated and was never restarted".into());
    }
    run.check_starts(false)?;
    Ok(decisions)
}
