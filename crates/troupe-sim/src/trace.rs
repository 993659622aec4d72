//! [`Trace`]: what a simulation run did, in order, at simulated times

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An ordered record of events, each at the simulated time it happened; clones share it
///
/// Hosts and clients of one simulation push to it as they act; [`Trace::hash`] condenses it,
/// so a test can show that two runs of one seed did the same thing at the same times.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    events: Arc<Mutex<Vec<(Duration, String)>>>,
}

impl Trace {
    /// An empty trace
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `event` at the current simulated time (zero outside a simulation)
    pub fn record(&self, event: impl Into<String>) {
        let at = turmoil::sim_elapsed().unwrap_or_default();
        if let Ok(mut events) = self.events.lock() {
            events.push((at, event.into()));
        }
    }

    /// Records `event` at simulated time `at` (for the test driving the simulation, which
    /// runs outside its hosts: `Sim::elapsed`)
    pub fn record_at(&self, at: Duration, event: impl Into<String>) {
        if let Ok(mut events) = self.events.lock() {
            events.push((at, event.into()));
        }
    }

    /// The events so far, oldest first
    pub fn events(&self) -> Vec<(Duration, String)> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// A hash of every event and its time, in order
    pub fn hash(&self) -> u64 {
        // FNV-style over a fixed hasher: the same on every run and machine
        let mut h = FixedHasher::default();
        for (at, event) in self.events() {
            at.hash(&mut h);
            event.hash(&mut h);
        }
        h.finish()
    }
}

/// FNV-1a: fixed, unlike `DefaultHasher`'s unspecified algorithm.
struct FixedHasher(u64);

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

impl Default for FixedHasher {
    fn default() -> Self {
        Self(FNV_OFFSET)
    }
}

impl Hasher for FixedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

thread_local! {
    /// Datagrams sent in the simulation running on this thread: how many, and a digest of
    /// when, where to and how long each was.
    static DATAGRAMS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, FNV_OFFSET)) };
}

/// Notes a datagram sent now to `to`, `len` bytes long
pub(crate) fn datagram_sent(to: std::net::SocketAddr, len: usize) {
    let at = turmoil::sim_elapsed().unwrap_or_default();
    DATAGRAMS.with(|d| {
        let (count, digest) = d.get();
        // chained: the same datagrams sent in another order digest differently
        let mut hasher = FixedHasher(digest);
        (at, to, len).hash(&mut hasher);
        d.set((count + 1, hasher.finish()));
    });
}

/// How many datagrams the simulation running on this thread has sent, and a digest of their
/// times, destinations and lengths in the order they were sent: two runs of one seed that
/// agree on it sent the same datagrams at the same times
pub fn datagrams() -> (u64, u64) {
    DATAGRAMS.with(std::cell::Cell::get)
}

/// Starts the count of [`datagrams`] again, for a new simulation
pub(crate) fn forget_datagrams() {
    DATAGRAMS.with(|d| d.set((0, FNV_OFFSET)));
}
