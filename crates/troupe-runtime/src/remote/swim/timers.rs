//! foca's timers, due at instants of tokio's clock: a heap ordered by when each is due, then
//! by the order they were asked for, so a replay hands them back in the same order.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Duration;

use tokio::time::Instant;

struct Due<T> {
    at: Instant,
    seq: u64,
    timer: T,
}

impl<T> PartialEq for Due<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<T> Eq for Due<T> {}

impl<T> PartialOrd for Due<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Due<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Timers waiting to be handed back to foca.
pub(crate) struct TimerQueue<T> {
    heap: BinaryHeap<Reverse<Due<T>>>,
    seq: u64,
}

impl<T> Default for TimerQueue<T> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }
}

impl<T> TimerQueue<T> {
    /// Schedules `timer` for `after` past `now`.
    pub(crate) fn push(&mut self, now: Instant, after: Duration, timer: T) {
        self.seq += 1;
        self.heap.push(Reverse(Due {
            at: now + after,
            seq: self.seq,
            timer,
        }));
    }

    /// When the next timer is due.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(d)| d.at)
    }

    /// The next timer due at or before `now`, earliest first.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.heap.peek().is_some_and(|Reverse(d)| d.at <= now) {
            self.heap.pop().map(|Reverse(d)| d.timer)
        } else {
            None
        }
    }

    /// Timers waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_come_back_in_deadline_order_then_in_the_order_asked() {
        let now = Instant::now();
        let mut q = TimerQueue::default();
        q.push(now, Duration::from_millis(30), "c");
        q.push(now, Duration::from_millis(10), "a");
        q.push(now, Duration::from_millis(10), "b");
        q.push(now, Duration::from_millis(50), "d");
        assert_eq!(q.next_deadline(), Some(now + Duration::from_millis(10)));
        assert_eq!(q.pop_due(now), None);
        let at = now + Duration::from_millis(30);
        let due: Vec<_> = std::iter::from_fn(|| q.pop_due(at)).collect();
        assert_eq!(due, ["a", "b", "c"]);
        assert_eq!(q.len(), 1);
    }
}
