//! What an actor's handler does, measured where it runs: the messages it sends and, for one
//! message in [`SAMPLE_EVERY`], how long it takes — cheaply enough to stay on in production.
//!
//! Sends are counted in a per-thread counter that the host reads before and after each poll of
//! a handler, so a send costs one thread-local increment and no shared write. Handling times
//! go into fixed buckets, allocated at an actor's first timed message.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One message in this many is timed (the first of every run of them).
pub const SAMPLE_EVERY: u64 = 64;

/// The upper bounds of the handling-time buckets, in seconds (Prometheus `le`); a last
/// bucket takes the rest.
pub const BUCKETS: [f64; 12] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
];

thread_local! {
    /// Messages sent from this thread so far.
    static SENT: Cell<u64> = const { Cell::new(0) };
}

/// Counts one message sent from the running thread.
pub(crate) fn count_send() {
    SENT.with(|sent| sent.set(sent.get().wrapping_add(1)));
}

/// Messages sent from the running thread so far (a handler's sends are the difference across
/// its poll).
pub(crate) fn sent_so_far() -> u64 {
    SENT.with(Cell::get)
}

/// One actor's handling times: a histogram over [`BUCKETS`].
#[derive(Debug, Default)]
pub(crate) struct HandlingTimes(OnceLock<Box<Histogram>>);

#[derive(Debug, Default)]
struct Histogram {
    /// Per bucket (not cumulative); the last is everything over the last bound.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A snapshot of an actor's sampled handling times.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HandlingStats {
    /// Timed messages per bucket of [`BUCKETS`] (not cumulative), the last for slower ones.
    pub counts: [u64; BUCKETS.len() + 1],
    /// Their total handling time.
    pub sum: Duration,
}

impl HandlingStats {
    /// Messages timed.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl HandlingTimes {
    /// Adds one timed message.
    pub(crate) fn record(&self, took: Duration) {
        let histogram = self.0.get_or_init(Box::default);
        let secs = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(BUCKETS.len());
        histogram.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        histogram.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// What it holds now; `None` before any message was timed.
    pub(crate) fn snapshot(&self) -> Option<HandlingStats> {
        let histogram = self.0.get()?;
        Some(HandlingStats {
            counts: std::array::from_fn(|i| histogram.counts[i].load(Ordering::Relaxed)),
            sum: Duration::from_nanos(histogram.sum_nanos.load(Ordering::Relaxed)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_land_in_their_bucket_and_the_rest_in_the_last() {
        let times = HandlingTimes::default();
        assert_eq!(times.snapshot(), None);
        times.record(Duration::from_micros(3)); // <= 10 µs
        times.record(Duration::from_micros(10)); // <= 10 µs, bounds are inclusive
        times.record(Duration::from_millis(2)); // <= 5 ms
        times.record(Duration::from_secs(60)); // over 5 s
        let stats = times.snapshot().expect("timed");
        assert_eq!(stats.counts[0], 2);
        assert_eq!(stats.counts[5], 1);
        assert_eq!(stats.counts[BUCKETS.len()], 1);
        assert_eq!(stats.count(), 4);
        assert_eq!(
            stats.sum,
            Duration::from_micros(2013) + Duration::from_secs(60)
        );
    }

    #[test]
    fn sends_are_counted_per_thread() {
        let before = sent_so_far();
        count_send();
        count_send();
        assert_eq!(sent_so_far() - before, 2);
        let other = std::thread::spawn(sent_so_far).join().unwrap();
        assert_eq!(other, 0);
    }
}
