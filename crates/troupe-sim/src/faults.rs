//! [`Schedule`]: faults drawn from a seed, and applied to a running simulation at their times

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::Trace;

/// One fault, or the end of one, between named hosts
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No datagram crosses between `a` and `b`, either way
    Partition {
        /// One side
        a: String,
        /// The other side
        b: String,
    },
    /// The end of a [`Fault::Partition`] between `a` and `b`
    Repair {
        /// One side
        a: String,
        /// The other side
        b: String,
    },
    /// Datagrams from `from` to `to` are dropped; the other way still works
    PartitionOneWay {
        /// The sender cut off
        from: String,
        /// The receiver it cannot reach
        to: String,
    },
    /// The end of a [`Fault::PartitionOneWay`]
    RepairOneWay {
        /// The sender that was cut off
        from: String,
        /// The receiver
        to: String,
    },
    /// Every datagram between `a` and `b` is lost with probability `percent`/100
    Loss {
        /// One side
        a: String,
        /// The other side
        b: String,
        /// How many in a hundred are lost (0: none)
        percent: u8,
    },
    /// Datagrams between `a` and `b` take up to `max` each, so they overtake one another
    /// (a latency spike with reordering); [`DEFAULT_MAX_LATENCY`] ends it
    Delay {
        /// One side
        a: String,
        /// The other side
        b: String,
        /// The longest a datagram takes
        max: Duration,
    },
    /// Nothing reaches `host` and nothing it sends leaves, until [`Fault::Resume`]: whatever
    /// was sent either way meanwhile arrives at once then, as after a long GC pause or a
    /// SIGSTOP (turmoil keeps one clock, so the host's own timers still run; a true stop is
    /// the real-process nemesis test's `SIGSTOP`)
    Pause {
        /// The host
        host: String,
    },
    /// The end of a [`Fault::Pause`]
    Resume {
        /// The host
        host: String,
    },
    /// `host` crashes: its tasks stop, its files stay
    Crash {
        /// The host
        host: String,
    },
    /// `host` loses power: it crashes, and every write to its volatile files (see
    /// [`volatile_file`](crate::volatile_file)) since their last sync is lost
    PowerLoss {
        /// The host
        host: String,
    },
    /// `host` starts again (after a crash or a power loss)
    Restart {
        /// The host
        host: String,
    },
    /// The running instance of `actor` on `host`'s node crashes, as a panic in its handler
    /// would crash it (`Node::kill`): its supervisor restarts it, or not, by its policy
    Panic {
        /// The host (its node has the host's name and was started with [`bind`](crate::bind))
        host: String,
        /// The actor's registered name
        actor: String,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Partition { a, b } => write!(f, "partition {a} | {b}"),
            Self::Repair { a, b } => write!(f, "repair {a} | {b}"),
            Self::PartitionOneWay { from, to } => write!(f, "partition {from} -> {to}"),
            Self::RepairOneWay { from, to } => write!(f, "repair {from} -> {to}"),
            Self::Loss { a, b, percent } => write!(f, "loss {a} | {b} {percent}%"),
            Self::Delay { a, b, max } => write!(f, "delay {a} | {b} up to {max:?}"),
            Self::Pause { host } => write!(f, "pause {host}"),
            Self::Resume { host } => write!(f, "resume {host}"),
            Self::Crash { host } => write!(f, "crash {host}"),
            Self::PowerLoss { host } => write!(f, "power loss {host}"),
            Self::Restart { host } => write!(f, "restart {host}"),
            Self::Panic { host, actor } => write!(f, "panic {host}/{actor}"),
        }
    }
}

/// The longest a datagram takes between two hosts when no [`Fault::Delay`] holds (the
/// simulation's default: 1 ms to this)
pub const DEFAULT_MAX_LATENCY: Duration = Duration::from_millis(5);

/// What [`Schedule::draw`] draws faults among
#[derive(Clone, Copy, Debug)]
pub struct Plan<'a> {
    /// Every host of the simulation (a pause cuts a host off from all the others)
    pub hosts: &'a [&'a str],
    /// The hosts that may crash or lose power, at most one at a time
    pub crashable: &'a [&'a str],
    /// When faults may start, and by when every one has ended
    pub window: (Duration, Duration),
    /// Actors that may be made to panic, as (host, registered name)
    pub panics: &'a [(&'a str, &'a str)],
    /// How many episodes (a fault and its end); from 8 on, every kind is in every schedule
    pub episodes: usize,
}

/// The kinds of episode, drawn in turn from a seeded starting point
const KINDS: usize = 8;

/// What a pair of hosts' link has on it now: how many episodes cut each way, and hold it
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct LinkFaults {
    /// Episodes dropping datagrams from the pair's first host to its second, and back
    cut: [u32; 2],
    /// Episodes holding the link (a paused end)
    held: u32,
}

/// What turmoil is told a link does
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkState {
    Healthy,
    Cut,
    /// Cut from the pair's first host to its second (`true`) or back (`false`)
    CutOneWay(bool),
    Held,
}

impl LinkFaults {
    /// A cut both ways drops everything; else a hold keeps everything for later (a one-way
    /// cut waits out the pause); else one way may be cut
    fn state(self) -> LinkState {
        match (self.cut[0] > 0, self.cut[1] > 0) {
            (true, true) => LinkState::Cut,
            _ if self.held > 0 => LinkState::Held,
            (true, false) => LinkState::CutOneWay(true),
            (false, true) => LinkState::CutOneWay(false),
            (false, false) => LinkState::Healthy,
        }
    }
}

/// Faults at simulated times, oldest first, and the links they have changed so far
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    faults: Vec<(Duration, Fault)>,
    next: usize,
    hosts: Vec<String>,
    /// Per pair of hosts (in name order), the episodes on their link
    links: BTreeMap<(String, String), LinkFaults>,
}

/// A small deterministic generator (splitmix64): the schedule depends on the seed alone.
/// A stream of numbers drawn from a seed (splitmix64): the same seed, the same numbers, on
/// every machine. What the schedules are drawn from; tests draw their own choices with it.
#[derive(Clone, Debug)]
pub struct Draw(u64);

impl Draw {
    /// The stream for `seed`
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next number
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0)
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// One of `of`
    ///
    /// # Panics
    /// If `of` is empty.
    pub fn pick<'a>(&mut self, of: &'a [&'a str]) -> &'a str {
        of[self.below(of.len() as u64) as usize]
    }

    /// A duration of `from..to` milliseconds
    pub fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to.saturating_sub(from)))
    }
}

fn pair(a: &str, b: &str) -> ((String, String), usize) {
    if a <= b {
        ((a.to_string(), b.to_string()), 0)
    } else {
        ((b.to_string(), a.to_string()), 1)
    }
}

impl Schedule {
    /// Faults drawn from `seed` as `plan` says: `plan.episodes` episodes, each a partition
    /// (both ways or one way), a lossy link, a latency spike, a paused host, a crash, a power
    /// loss or an actor's panic, taken in turn from a seeded start so that every kind comes up. Each starts
    /// in the window, lasts 0.2-3 s (a pause 0.5-4.5 s) and is ended (repaired, restored,
    /// resumed, restarted) by the window's end, so the cluster is whole again after it. One
    /// crashable host is down at a time: crashes fall in the window's first half, power losses
    /// in its second.
    pub fn draw(seed: u64, plan: &Plan<'_>) -> Self {
        let mut draw = Draw::new(seed ^ 0x5151_5eed);
        let (open, close) = plan.window;
        let span = close.saturating_sub(open).as_millis() as u64;
        let mut faults = Vec::new();
        // per half of the window, when its last crash ends
        let mut crash_free_from = [open; 2];
        let first_kind = draw.below(KINDS as u64) as usize;
        for episode in 0..plan.episodes {
            let mut start = open + Duration::from_millis(draw.below(span.saturating_sub(200)));
            let kind = (first_kind + episode) % KINDS;
            let length = if kind == 4 {
                draw.millis(500, 4500)
            } else {
                draw.millis(200, 3000)
            };
            let a = draw.pick(plan.hosts).to_string();
            let mut b = draw.pick(plan.hosts).to_string();
            if a == b {
                b = plan
                    .hosts
                    .iter()
                    .find(|h| **h != a)
                    .map_or(b, |h| (*h).to_string());
            }
            let mut end = (start + length).min(close);
            if kind == 5 || kind == 6 {
                // crashes in the window's first half, power losses in its second, each
                // waiting for the last one to end
                let mid = open + (close - open) / 2;
                let (from, to) = if kind == 5 { (open, mid) } else { (mid, close) };
                let from = from.max(crash_free_from[kind - 5]);
                let room = to.saturating_sub(from).as_millis() as u64;
                if room < 200 {
                    continue;
                }
                start = from + Duration::from_millis(draw.below(room - 200));
                end = (start + length).min(to);
            }
            let (begin, finish) = match kind {
                0 => (
                    Fault::Partition {
                        a: a.clone(),
                        b: b.clone(),
                    },
                    Fault::Repair { a, b },
                ),
                1 => (
                    Fault::PartitionOneWay {
                        from: a.clone(),
                        to: b.clone(),
                    },
                    Fault::RepairOneWay { from: a, to: b },
                ),
                2 => {
                    let percent = 5 + draw.below(45) as u8;
                    let begin = Fault::Loss {
                        a: a.clone(),
                        b: b.clone(),
                        percent,
                    };
                    (begin, Fault::Loss { a, b, percent: 0 })
                }
                3 => {
                    let max = draw.millis(20, 800);
                    let begin = Fault::Delay {
                        a: a.clone(),
                        b: b.clone(),
                        max,
                    };
                    let max = DEFAULT_MAX_LATENCY;
                    (begin, Fault::Delay { a, b, max })
                }
                4 => (Fault::Pause { host: a.clone() }, Fault::Resume { host: a }),
                7 if plan.panics.is_empty() => continue,
                7 => {
                    // a panic has no end: the supervisor restarts the actor
                    let (host, actor) = plan.panics[draw.below(plan.panics.len() as u64) as usize];
                    let panic = Fault::Panic {
                        host: host.to_string(),
                        actor: actor.to_string(),
                    };
                    faults.push((start, panic));
                    continue;
                }
                _ if plan.crashable.is_empty() => continue,
                _ => {
                    let host = draw.pick(plan.crashable).to_string();
                    crash_free_from[kind - 5] = end + Duration::from_millis(1);
                    let begin = if kind == 5 {
                        Fault::Crash { host: host.clone() }
                    } else {
                        Fault::PowerLoss { host: host.clone() }
                    };
                    (begin, Fault::Restart { host })
                }
            };
            faults.push((start, begin));
            faults.push((end, finish));
        }
        // stable: an episode's end stays after its start when both fall at one time
        faults.sort_by_key(|(at, _)| *at);
        Self {
            faults,
            next: 0,
            hosts: plan.hosts.iter().map(|h| (*h).to_string()).collect(),
            links: BTreeMap::new(),
        }
    }

    /// Every fault, at its time
    pub fn faults(&self) -> &[(Duration, Fault)] {
        &self.faults
    }

    /// Applies the faults due by the simulation's time (call after each `Sim::step`), each
    /// recorded in `trace`
    pub fn apply_due(&mut self, sim: &mut turmoil::Sim<'_>, trace: &Trace) {
        let now = sim.elapsed();
        while let Some((at, fault)) = self.faults.get(self.next).cloned() {
            if at > now {
                return;
            }
            self.next += 1;
            let mut event = fault.to_string();
            match fault {
                Fault::Partition { a, b } => self.change(sim, &a, &b, |l, _| {
                    l.cut[0] += 1;
                    l.cut[1] += 1;
                }),
                Fault::Repair { a, b } => self.change(sim, &a, &b, |l, _| {
                    l.cut[0] = l.cut[0].saturating_sub(1);
                    l.cut[1] = l.cut[1].saturating_sub(1);
                }),
                Fault::PartitionOneWay { from, to } => {
                    self.change(sim, &from, &to, |l, way| l.cut[way] += 1);
                }
                Fault::RepairOneWay { from, to } => self.change(sim, &from, &to, |l, way| {
                    l.cut[way] = l.cut[way].saturating_sub(1);
                }),
                Fault::Loss { a, b, percent } => {
                    sim.set_link_fail_rate(a.as_str(), b.as_str(), f64::from(percent) / 100.0);
                }
                Fault::Delay { a, b, max } => {
                    sim.set_link_max_message_latency(a.as_str(), b.as_str(), max);
                }
                Fault::Pause { host } => {
                    for other in self.others(&host) {
                        self.change(sim, &host, &other, |l, _| l.held += 1);
                    }
                }
                Fault::Resume { host } => {
                    for other in self.others(&host) {
                        self.change(sim, &host, &other, |l, _| {
                            l.held = l.held.saturating_sub(1);
                        });
                    }
                }
                Fault::Crash { host } => sim.crash(host.as_str()),
                Fault::PowerLoss { host } => {
                    // first the power, so the dying host's handles cannot write on its way out
                    let lost = crate::disk::power_loss(&host);
                    sim.crash(host.as_str());
                    event = format!("{event} ({lost} unsynced writes lost)");
                }
                Fault::Restart { host } => sim.bounce(host.as_str()),
                Fault::Panic { host, actor } => {
                    if !crate::node_of(&host).is_some_and(|node| node.kill(&actor)) {
                        event = format!("{event} (not running)");
                    }
                }
            }
            trace.record_at(now, event);
        }
    }

    fn others(&self, host: &str) -> Vec<String> {
        self.hosts.iter().filter(|h| *h != host).cloned().collect()
    }

    /// Changes the episodes on the link between `from` and `to` (`way` is 0 if `from` is the
    /// pair's first host), then tells turmoil what the link now does if that changed
    fn change(
        &mut self,
        sim: &turmoil::Sim<'_>,
        from: &str,
        to: &str,
        update: impl FnOnce(&mut LinkFaults, usize),
    ) {
        let (key, way) = pair(from, to);
        let link = self.links.entry(key.clone()).or_default();
        let before = link.state();
        update(link, way);
        let after = link.state();
        if before == after {
            return;
        }
        let (a, b) = (key.0.as_str(), key.1.as_str());
        match after {
            LinkState::Cut => sim.partition(a, b),
            LinkState::Held => sim.hold(a, b),
            // releasing delivers what a hold kept and undoes any cut
            LinkState::Healthy => sim.release(a, b),
            LinkState::CutOneWay(first_to_second) => {
                sim.release(a, b);
                if first_to_second {
                    sim.partition_oneway(a, b);
                } else {
                    sim.partition_oneway(b, a);
                }
            }
        }
    }
}

/// What a simulation run did, condensed: two runs of one seed that agree on it recorded the
/// same events at the same times and sent the same datagrams at the same times
///
/// Displayed as the line a passing run prints:
/// `TRACE seed=.. events=.. hash=.. datagrams=.. digest=..`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunDigest {
    /// The seed
    pub seed: u64,
    /// Events in the trace
    pub events: usize,
    /// [`Trace::hash`]
    pub hash: u64,
    /// Datagrams sent, and their digest ([`datagrams`](crate::datagrams))
    pub datagrams: u64,
    /// The digest of the datagrams' times, destinations and lengths, in order
    pub digest: u64,
}

impl fmt::Display for RunDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TRACE seed={} events={} hash={:016x} datagrams={} digest={:016x}",
            self.seed, self.events, self.hash, self.datagrams, self.digest
        )
    }
}

/// Steps `sim` until its clients are done, applying `schedule`'s faults as they fall due
///
/// A run that passes prints and returns its [`RunDigest`], for a replay to compare.
/// With env `TROUPE_SIM_TRACE` set, it prints the whole trace first.
/// # Panics
///
/// If the simulation fails (a host or client returned an error or panicked), naming `seed`,
/// the command that replays it (`replay`), and the trace's events but those `noise` leaves
/// out (the faults and the operations that failed, usually).
pub fn run_with_faults(
    sim: &mut turmoil::Sim<'_>,
    schedule: &mut Schedule,
    trace: &Trace,
    seed: u64,
    replay: &str,
    noise: impl Fn(&str) -> bool,
) -> RunDigest {
    loop {
        match sim.step() {
            Ok(true) => {
                if std::env::var_os("TROUPE_SIM_TRACE").is_some() {
                    for (at, event) in trace.events() {
                        println!("{at:?} {event}");
                    }
                }
                let (datagrams, digest) = crate::datagrams();
                let run = RunDigest {
                    seed,
                    events: trace.events().len(),
                    hash: trace.hash(),
                    datagrams,
                    digest,
                };
                println!("{run}");
                return run;
            }
            Ok(false) => schedule.apply_due(sim, trace),
            Err(err) => {
                let events: Vec<String> = trace
                    .events()
                    .iter()
                    .filter(|(_, event)| !noise(event))
                    .map(|(at, event)| format!("{at:?} {event}"))
                    .collect();
                panic!("seed {seed}: {err}\nreplay: {replay}\nwhat happened: {events:#?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(fault: &Fault) -> &'static str {
        match fault {
            Fault::Partition { .. } => "partition",
            Fault::Repair { .. } => "repair",
            Fault::PartitionOneWay { .. } => "one-way",
            Fault::RepairOneWay { .. } => "repair one-way",
            Fault::Loss { .. } => "loss",
            Fault::Delay { .. } => "delay",
            Fault::Pause { .. } => "pause",
            Fault::Resume { .. } => "resume",
            Fault::Crash { .. } => "crash",
            Fault::PowerLoss { .. } => "power loss",
            Fault::Restart { .. } => "restart",
            Fault::Panic { .. } => "panic",
        }
    }

    fn kinds(schedule: &Schedule) -> Vec<&'static str> {
        schedule.faults().iter().map(|(_, f)| kind(f)).collect()
    }

    const HOSTS: [&str; 4] = ["r0", "r1", "r2", "app"];
    const PLAN: Plan<'static> = Plan {
        hosts: &HOSTS,
        crashable: &["r0", "r1", "r2"],
        window: (Duration::from_millis(500), Duration::from_secs(8)),
        panics: &[("r0", "db.0"), ("r1", "db.1"), ("r2", "db.2")],
        episodes: 8,
    };

    #[test]
    fn a_schedule_is_the_same_for_a_seed_and_ends_every_fault_it_starts() {
        for seed in 0..200 {
            let a = Schedule::draw(seed, &PLAN);
            assert_eq!(a, Schedule::draw(seed, &PLAN));
            assert_ne!(a, Schedule::draw(seed + 1, &PLAN));
            let kinds = kinds(&a);
            let count = |k| kinds.iter().filter(|x| **x == k).count();
            assert_eq!(count("crash") + count("power loss"), count("restart"));
            assert_eq!(count("partition"), count("repair"));
            assert_eq!(count("one-way"), count("repair one-way"));
            assert_eq!(count("pause"), count("resume"));
            assert!(
                a.faults()
                    .iter()
                    .all(|(at, _)| *at >= PLAN.window.0 && *at <= PLAN.window.1)
            );
            // at most one crashed host at a time, and nothing but a restart ends it
            let mut down = 0;
            for (_, fault) in a.faults() {
                match fault {
                    Fault::Crash { .. } | Fault::PowerLoss { .. } => down += 1,
                    Fault::Restart { .. } => down -= 1,
                    _ => {}
                }
                assert!((0..=1).contains(&down), "{:?}", a.faults());
            }
        }
    }

    /// CI runs seeds 1-3 of the randomized tests (the database's and the queue's, with their
    /// hosts and windows): every one of them injects every kind of fault
    #[test]
    fn every_ci_seed_injects_every_fault_kind() {
        let queue = Plan {
            hosts: &["q", "app"],
            crashable: &["q"],
            window: (Duration::from_millis(500), Duration::from_secs(6)),
            panics: &[("q", "jobs")],
            episodes: 8,
        };
        for plan in [PLAN, queue] {
            for seed in 1..=3 {
                let mut seen = kinds(&Schedule::draw(seed, &plan));
                seen.sort_unstable();
                seen.dedup();
                assert_eq!(
                    seen,
                    [
                        "crash",
                        "delay",
                        "loss",
                        "one-way",
                        "panic",
                        "partition",
                        "pause",
                        "power loss",
                        "repair",
                        "repair one-way",
                        "restart",
                        "resume"
                    ],
                    "seed {seed} on {:?}",
                    plan.hosts
                );
            }
        }
    }

    #[test]
    fn a_link_cut_both_ways_drops_even_while_held_and_a_hold_outranks_a_one_way_cut() {
        let mut link = LinkFaults::default();
        assert_eq!(link.state(), LinkState::Healthy);
        link.cut[1] += 1;
        assert_eq!(link.state(), LinkState::CutOneWay(false));
        link.held += 1;
        assert_eq!(link.state(), LinkState::Held);
        link.cut[0] += 1;
        assert_eq!(link.state(), LinkState::Cut);
        link.cut = [0, 0];
        assert_eq!(link.state(), LinkState::Held);
        link.held -= 1;
        assert_eq!(link.state(), LinkState::Healthy);
        // overlapping episodes: the link heals when the last one ends
        link.cut = [2, 2];
        link.cut = [1, 1];
        assert_eq!(link.state(), LinkState::Cut);
    }
}
