//! [`Schedule`]: faults drawn from a seed, and applied to a running simulation at their times

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
    /// Datagrams from `from` to `to` are dropped; the other way still works
    PartitionOneWay {
        /// The sender cut off
        from: String,
        /// The receiver it cannot reach
        to: String,
    },
    /// `a` and `b` reach each other again, both ways
    Repair {
        /// One side
        a: String,
        /// The other side
        b: String,
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
    /// `host` crashes: its tasks stop, its files stay
    Crash {
        /// The host
        host: String,
    },
    /// `host` starts again (after a crash)
    Restart {
        /// The host
        host: String,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Partition { a, b } => write!(f, "partition {a} | {b}"),
            Self::PartitionOneWay { from, to } => write!(f, "partition {from} -> {to}"),
            Self::Repair { a, b } => write!(f, "repair {a} | {b}"),
            Self::Loss { a, b, percent } => write!(f, "loss {a} | {b} {percent}%"),
            Self::Crash { host } => write!(f, "crash {host}"),
            Self::Restart { host } => write!(f, "restart {host}"),
        }
    }
}

/// Faults at simulated times, oldest first
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schedule {
    faults: Vec<(Duration, Fault)>,
    next: usize,
}

/// A small deterministic generator (splitmix64): the schedule depends on the seed alone.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, of: &'a [&'a str]) -> &'a str {
        of[self.below(of.len() as u64) as usize]
    }
}

impl Schedule {
    /// Faults in `window` drawn from `seed`, among `hosts` (at most one of `crashable` down at
    /// a time): `count` episodes, each a partition (both ways or one way), a lossy link or a
    /// crash, lasting 0.2-3 s and ended (repaired, loss off, restarted) within the window, so
    /// the cluster is whole again after it
    pub fn draw(
        seed: u64,
        hosts: &[&str],
        crashable: &[&str],
        window: (Duration, Duration),
        count: usize,
    ) -> Self {
        let mut draw = Draw(seed ^ 0x5151_5eed);
        let span = window.1.saturating_sub(window.0).as_millis() as u64;
        let mut faults = Vec::new();
        let mut crash_free_from = window.0;
        for _ in 0..count {
            let start = window.0 + Duration::from_millis(draw.below(span.saturating_sub(200)));
            let length = Duration::from_millis(200 + draw.below(2800));
            let end = (start + length).min(window.1);
            let a = draw.pick(hosts).to_string();
            let mut b = draw.pick(hosts).to_string();
            if a == b {
                b = hosts
                    .iter()
                    .find(|h| **h != a)
                    .map_or(b, |h| (*h).to_string());
            }
            match draw.below(4) {
                0 => {
                    faults.push((
                        start,
                        Fault::Partition {
                            a: a.clone(),
                            b: b.clone(),
                        },
                    ));
                    faults.push((end, Fault::Repair { a, b }));
                }
                1 => {
                    faults.push((
                        start,
                        Fault::PartitionOneWay {
                            from: a.clone(),
                            to: b.clone(),
                        },
                    ));
                    faults.push((end, Fault::Repair { a, b }));
                }
                2 => {
                    let percent = 5 + draw.below(45) as u8;
                    faults.push((
                        start,
                        Fault::Loss {
                            a: a.clone(),
                            b: b.clone(),
                            percent,
                        },
                    ));
                    faults.push((end, Fault::Loss { a, b, percent: 0 }));
                }
                _ if !crashable.is_empty() && start >= crash_free_from => {
                    let host = draw.pick(crashable).to_string();
                    faults.push((start, Fault::Crash { host: host.clone() }));
                    faults.push((end, Fault::Restart { host }));
                    crash_free_from = end + Duration::from_millis(1);
                }
                _ => {}
            }
        }
        faults.sort_by_key(|(at, _)| *at);
        Self { faults, next: 0 }
    }

    /// Every fault, at its time
    pub fn faults(&self) -> &[(Duration, Fault)] {
        &self.faults
    }

    /// Applies the faults due by the simulation's time (call after each `Sim::step`), each
    /// recorded in `trace`
    pub fn apply_due(&mut self, sim: &mut turmoil::Sim<'_>, trace: &Trace) {
        let now = sim.elapsed();
        while let Some((at, fault)) = self.faults.get(self.next) {
            if *at > now {
                return;
            }
            match fault {
                Fault::Partition { a, b } => sim.partition(a.as_str(), b.as_str()),
                Fault::PartitionOneWay { from, to } => {
                    sim.partition_oneway(from.as_str(), to.as_str());
                }
                Fault::Repair { a, b } => sim.repair(a.as_str(), b.as_str()),
                Fault::Loss { a, b, percent } => {
                    sim.set_link_fail_rate(a.as_str(), b.as_str(), f64::from(*percent) / 100.0);
                }
                Fault::Crash { host } => sim.crash(host.as_str()),
                Fault::Restart { host } => sim.bounce(host.as_str()),
            }
            trace.record_at(now, fault.to_string());
            self.next += 1;
        }
    }
}

/// Steps `sim` until its clients are done, applying `schedule`'s faults as they fall due
///
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
) {
    loop {
        match sim.step() {
            Ok(true) => return,
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

    fn kinds(schedule: &Schedule) -> Vec<&'static str> {
        schedule
            .faults()
            .iter()
            .map(|(_, fault)| match fault {
                Fault::Partition { .. } => "partition",
                Fault::PartitionOneWay { .. } => "one-way",
                Fault::Repair { .. } => "repair",
                Fault::Loss { .. } => "loss",
                Fault::Crash { .. } => "crash",
                Fault::Restart { .. } => "restart",
            })
            .collect()
    }

    const HOSTS: [&str; 4] = ["r0", "r1", "r2", "app"];
    const WINDOW: (Duration, Duration) = (Duration::from_millis(500), Duration::from_secs(8));

    #[test]
    fn a_schedule_is_the_same_for_a_seed_and_ends_every_fault_it_starts() {
        let a = Schedule::draw(9, &HOSTS, &HOSTS[..3], WINDOW, 6);
        assert_eq!(a, Schedule::draw(9, &HOSTS, &HOSTS[..3], WINDOW, 6));
        assert_ne!(a, Schedule::draw(10, &HOSTS, &HOSTS[..3], WINDOW, 6));
        let kinds = kinds(&a);
        let count = |k| kinds.iter().filter(|x| **x == k).count();
        assert_eq!(count("crash"), count("restart"));
        assert_eq!(count("partition") + count("one-way"), count("repair"));
        assert!(
            a.faults()
                .iter()
                .all(|(at, _)| *at >= WINDOW.0 && *at <= WINDOW.1)
        );
        // at most one crashed host at a time
        let mut down = 0;
        for (_, fault) in a.faults() {
            match fault {
                Fault::Crash { .. } => down += 1,
                Fault::Restart { .. } => down -= 1,
                _ => {}
            }
            assert!(down <= 1, "{:?}", a.faults());
        }
    }

    /// CI runs seeds 1-3 of the randomized tests (the database's and the queue's, with their
    /// hosts and windows): between them, every kind of fault
    #[test]
    fn ci_seeds_cover_every_fault_kind() {
        let queue_window = (Duration::from_millis(500), Duration::from_secs(6));
        for (hosts, crashable, window, count) in [
            (&HOSTS[..], &HOSTS[..3], WINDOW, 6),
            (&["q", "app"][..], &["q"][..], queue_window, 5),
        ] {
            let mut seen: Vec<&str> = (1..=3)
                .flat_map(|seed| kinds(&Schedule::draw(seed, hosts, crashable, window, count)))
                .collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(
                seen,
                ["crash", "loss", "one-way", "partition", "repair", "restart"],
                "{hosts:?}"
            );
        }
    }
}
