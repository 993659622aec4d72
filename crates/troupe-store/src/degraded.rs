//! [`Degraded`]: a part whose file failed, and when it next tries to reopen it

use std::time::{Duration, Instant};

use crate::{StoreError, StoreFault};

/// First and longest pause between two attempts to reopen a failed file
pub const REOPEN_PAUSE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// Why a part's file failed (a write, or reading it at open) and when the part should next try
/// to reopen it
///
/// The first attempt is due [`REOPEN_PAUSE`]`.0` after the failure; each failed attempt doubles
/// the pause, up to [`REOPEN_PAUSE`]`.1`. A plain value: time comes in as `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Degraded {
    fault: StoreFault,
    retry_at: Instant,
    pause: Duration,
}

impl Degraded {
    /// The file failed with `err` at `now`
    pub fn new(err: &StoreError, now: Instant) -> Self {
        Self {
            fault: StoreFault::from(err),
            retry_at: now + REOPEN_PAUSE.0,
            pause: REOPEN_PAUSE.0,
        }
    }

    /// The file failed at `now`, as `fault` says (for a part that learns of a failure from an
    /// engine that keeps the typed error to itself, such as openraft)
    pub fn from_fault(fault: StoreFault, now: Instant) -> Self {
        Self {
            fault,
            retry_at: now + REOPEN_PAUSE.0,
            pause: REOPEN_PAUSE.0,
        }
    }

    /// As [`reopen_failed`](Self::reopen_failed), with the failure as `fault` says
    pub fn reopen_failed_with(&mut self, fault: StoreFault, now: Instant) {
        self.fault = fault;
        self.pause = (self.pause * 2).min(REOPEN_PAUSE.1);
        self.retry_at = now + self.pause;
    }

    /// The last failure, as a reply to a caller carries it
    pub fn fault(&self) -> &StoreFault {
        &self.fault
    }

    /// Whether reopening the file is due at `now`
    pub fn reopen_due(&self, now: Instant) -> bool {
        now >= self.retry_at
    }

    /// Reopening failed with `err` at `now`: the next attempt waits twice as long (capped)
    pub fn reopen_failed(&mut self, err: &StoreError, now: Instant) {
        self.fault = StoreFault::from(err);
        self.pause = (self.pause * 2).min(REOPEN_PAUSE.1);
        self.retry_at = now + self.pause;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopening_waits_a_pause_that_doubles_up_to_its_cap() {
        let t0 = Instant::now();
        let err = StoreError::corrupt("test", "first");
        let mut degraded = Degraded::new(&err, t0);
        assert!(!degraded.reopen_due(t0));
        assert!(degraded.reopen_due(t0 + REOPEN_PAUSE.0));
        let mut now = t0 + REOPEN_PAUSE.0;
        let mut pauses = Vec::new();
        for _ in 0..8 {
            degraded.reopen_failed(&StoreError::corrupt("test", "again"), now);
            let mut pause = Duration::from_millis(1);
            while !degraded.reopen_due(now + pause) {
                pause += Duration::from_millis(1);
            }
            pauses.push(pause);
            now += pause;
        }
        assert_eq!(pauses[..3], [200, 400, 800].map(Duration::from_millis));
        assert_eq!(pauses[7], REOPEN_PAUSE.1);
        assert_eq!(degraded.fault().message, "file is corrupt: test: again");
    }
}
