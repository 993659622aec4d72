//! Keeps a CPU awake while remote traffic flows, for lower latency on machines whose idle
//! CPUs sleep deeply (see [`NetConfig::spin_after_traffic`](super::NetConfig)).
//!
//! A message that arrives for a task whose CPU is asleep pays that CPU's wake-up before the
//! task runs. On a virtual machine whose idle vCPUs halt (no guest halt-polling) that wake-up
//! costs tens of microseconds on every hop of a round trip, and so does an interrupt sent to
//! wake a thread on another vCPU. One thread that keeps looking for runnable work
//! (`sched_yield` in a loop) keeps its CPU out of the halt state, and since that CPU looks
//! busy, the scheduler tends to run a woken worker on the CPU that woke it rather than send
//! an interrupt elsewhere. The loop runs only for a window after the last traffic and then
//! parks, so an idle node costs nothing.
//!
//! It runs at normal priority. Under `SCHED_IDLE` its CPU counts as idle, woken workers are
//! sent there by interrupt again, and the gain shrinks (measured with `perf sched timehist`:
//! call p50 67 us against 50-54 us at normal priority, 2 workers per process).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The process's one spinning thread (started by the first endpoint that asks for it).
pub(crate) struct Spinner {
    /// Bumped on traffic; the spinner watches it.
    activity: AtomicU64,
    /// The spinner is parked (or about to be).
    parked: AtomicBool,
    /// How long the spinner keeps going after the last traffic, in nanoseconds; the longest
    /// window any endpoint asked for.
    window_ns: AtomicU64,
    thread: Mutex<Option<Thread>>,
}

static SPINNER: OnceLock<Arc<Spinner>> = OnceLock::new();

impl Spinner {
    /// The process's spinner, keeping at least `window` after traffic; starts its thread on
    /// first use. `None` if the thread could not be started.
    pub(crate) fn shared(window: Duration) -> Option<Arc<Self>> {
        if crate::time::is_simulated() {
            // a thread on the real clock has no place under a simulated one
            return None;
        }
        let spinner = SPINNER.get_or_init(|| {
            Arc::new(Self {
                activity: AtomicU64::new(0),
                parked: AtomicBool::new(false),
                window_ns: AtomicU64::new(0),
                thread: Mutex::new(None),
            })
        });
        let ns = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        spinner.window_ns.fetch_max(ns, Ordering::Relaxed);
        let mut thread = spinner.thread.lock();
        if thread.is_none() {
            let me = spinner.clone();
            let handle = std::thread::Builder::new()
                .name("troupe-spin".into())
                .spawn(move || me.run())
                .map_err(|e| tracing::warn!(cause = %e, "spin thread not started"))
                .ok()?;
            *thread = Some(handle.thread().clone());
        }
        Some(spinner.clone())
    }

    /// Traffic happened: keep spinning (and wake the spinner if it parked).
    pub(crate) fn touch(&self) {
        self.activity.fetch_add(1, Ordering::SeqCst);
        if self.parked.load(Ordering::Relaxed)
            && self.parked.swap(false, Ordering::SeqCst)
            && let Some(thread) = self.thread.lock().as_ref()
        {
            thread.unpark();
        }
    }

    fn run(&self) {
        loop {
            let mut seen = self.activity.load(Ordering::SeqCst);
            let mut quiet_since = Instant::now();
            let window = Duration::from_nanos(self.window_ns.load(Ordering::Relaxed));
            loop {
                // a system call, not a pause instruction: the CPU stays busy without the
                // hypervisor taking the loop for lock contention, and any runnable thread on
                // this CPU goes first
                std::thread::yield_now();
                let now = self.activity.load(Ordering::Relaxed);
                if now != seen {
                    seen = now;
                    quiet_since = Instant::now();
                } else if quiet_since.elapsed() >= window {
                    break;
                }
            }
            self.parked.store(true, Ordering::SeqCst);
            // traffic between the last look and `parked` is seen here, or its touch unparks
            if self.activity.load(Ordering::SeqCst) == seen {
                std::thread::park();
            }
            self.parked.store(false, Ordering::SeqCst);
        }
    }

    /// Whether the spinner is currently spinning (for tests).
    #[cfg(test)]
    fn spinning(&self) -> bool {
        !self.parked.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(what: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if what() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn spins_after_traffic_then_parks() {
        let spinner = Spinner::shared(Duration::from_millis(20)).expect("spinner");
        spinner.touch();
        assert!(spinner.spinning(), "a touch wakes the spinner at once");
        // no more traffic: it parks once the window has passed
        assert!(wait_for(|| !spinner.spinning()), "the spinner never parked");
        spinner.touch();
        assert!(spinner.spinning(), "traffic after parking wakes it again");
        assert!(
            wait_for(|| !spinner.spinning()),
            "the spinner never parked again"
        );
    }
}
