//! A token bucket: how many membership datagrams one peer may send, on tokio's clock.

use tokio::time::Instant;

/// Allows `rate` events a second on average and `burst` at once.
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: now,
        }
    }

    /// Whether one more event is allowed at `now` (and takes its token if so).
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until the next token, from the last event seen.
    #[cfg(test)]
    fn refill_in(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(((1.0 - self.tokens).max(0.0)) / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5, t0);
        assert_eq!((0..8).filter(|_| b.allow(t0)).count(), 5);
        assert!(b.refill_in() <= Duration::from_millis(100));
        // one second later: ten more at most (the burst caps the saving at five)
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!((0..20).filter(|_| b.allow(t1)).count(), 5);
        let allowed = (1..=100)
            .filter(|i| b.allow(t1 + Duration::from_millis(10 * i)))
            .count();
        assert!((9..=11).contains(&allowed), "{allowed}");
    }
}
