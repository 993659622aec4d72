//! Timeouts for local calls that cost no timer in the common case.
//!
//! A local call usually gets its reply within microseconds, yet every call needs a timeout.
//! Arming a tokio timer per call (registering it in the timer wheel, cancelling it a few
//! microseconds later) was about a fifth of a local call's cost. Instead, a call that is
//! still waiting after its first poll is put on a watch list: a slot in one of a few
//! mutex-guarded shards, holding its waker. A ticker thread sweeps the list every [`TICK`]:
//! every call it finds is still waiting after at least that long, so it is woken and arms a
//! real tokio timer for its exact deadline. Calls answered before the next sweep (nearly all)
//! leave the list and never touch a timer. Timeouts shorter than [`WATCH_MIN`] arm a timer
//! at once, so every deadline stays exact.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Waker;
use std::thread::Thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How often the ticker sweeps the watch list.
pub(crate) const TICK: Duration = Duration::from_millis(50);
/// Calls with a shorter timeout arm their timer at once.
pub(crate) const WATCH_MIN: Duration = Duration::from_millis(2 * TICK.as_millis() as u64);
/// The ticker parks after this long without a watched call.
const IDLE_AFTER: Duration = Duration::from_secs(2);
const SHARDS: usize = 8;

/// The process's watch list.
pub(crate) struct Watch {
    shards: [Mutex<Shard>; SHARDS],
    ticker: OnceLock<Thread>,
    /// Set by the first call that starts the ticker, so a burst of first calls starts one.
    ticker_started: AtomicBool,
    /// The ticker is parked (or about to be); the next watched call unparks it.
    parked: AtomicBool,
}

#[derive(Default)]
struct Shard {
    slots: Vec<Entry>,
    free: Vec<u32>,
    /// Calls ever watched here, so the ticker knows it is still needed (counted under the
    /// shard's lock: a shared counter would cost a cache-line transfer per call).
    watched: u64,
}

impl Shard {
    /// Frees slot `index` (its ticket goes stale) and hands back the waker it held.
    fn release(&mut self, index: u32) -> Option<Waker> {
        let entry = &mut self.slots[index as usize];
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(index);
        entry.waker.take()
    }
}

#[derive(Default)]
struct Entry {
    generation: u32,
    waker: Option<Waker>,
}

/// A place on the watch list; stale once the ticker took it (the generation moved on).
#[derive(Debug)]
pub(crate) struct Ticket {
    shard: usize,
    index: u32,
    generation: u32,
}

static WATCH: OnceLock<Watch> = OnceLock::new();

thread_local! {
    static HOME_SHARD: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS
    };
}

impl Watch {
    /// The process's watch list (its ticker starts with the first watched call).
    pub(crate) fn global() -> &'static Self {
        WATCH.get_or_init(|| Self {
            shards: Default::default(),
            ticker: OnceLock::new(),
            ticker_started: AtomicBool::new(false),
            parked: AtomicBool::new(false),
        })
    }

    /// Puts a waiting call on the list; `waker` is woken by the first sweep after now.
    pub(crate) fn watch(&'static self, waker: &Waker) -> Ticket {
        let shard = HOME_SHARD.with(|s| *s);
        let ticket = {
            let mut guard = self.shards[shard].lock();
            let s = &mut *guard;
            let index = match s.free.pop() {
                Some(index) => index,
                None => {
                    s.slots.push(Entry::default());
                    (s.slots.len() - 1) as u32
                }
            };
            s.watched += 1;
            let entry = &mut s.slots[index as usize];
            entry.waker = Some(waker.clone());
            Ticket {
                shard,
                index,
                generation: entry.generation,
            }
        };
        if self.parked.load(Ordering::SeqCst)
            && self.parked.swap(false, Ordering::SeqCst)
            && let Some(ticker) = self.ticker.get()
        {
            ticker.unpark();
        }
        if self.ticker.get().is_none() && !self.ticker_started.swap(true, Ordering::AcqRel) {
            self.start_ticker();
        }
        ticket
    }

    /// Whether the call is still on the list (not yet swept); refreshes its waker if so.
    pub(crate) fn still_watched(&self, ticket: &Ticket, waker: &Waker) -> bool {
        let mut shard = self.shards[ticket.shard].lock();
        match shard.slots.get_mut(ticket.index as usize) {
            Some(entry) if entry.generation == ticket.generation => {
                match &entry.waker {
                    Some(w) if w.will_wake(waker) => {}
                    _ => entry.waker = Some(waker.clone()),
                }
                true
            }
            _ => false,
        }
    }

    /// Takes the call off the list (a no-op if the ticker already did).
    pub(crate) fn unwatch(&self, ticket: &Ticket) {
        let mut shard = self.shards[ticket.shard].lock();
        let current = shard.slots.get(ticket.index as usize);
        if current.is_some_and(|entry| entry.generation == ticket.generation) {
            shard.release(ticket.index);
        }
    }

    /// Wakes every call on the list and empties it.
    fn sweep(&self) {
        let mut woken = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.lock();
            for index in 0..shard.slots.len() {
                if shard.slots[index].waker.is_some() {
                    woken.extend(shard.release(index as u32));
                }
            }
        }
        // outside the locks: a woken task may poll (and lock a shard) on this thread's wake
        for waker in woken {
            waker.wake();
        }
    }

    fn start_ticker(&'static self) {
        let spawned = std::thread::Builder::new()
            .name("troupe-deadlines".into())
            .spawn(move || {
                let me = std::thread::current();
                if self.ticker.set(me).is_ok() {
                    self.run();
                }
            });
        if let Err(e) = spawned {
            // without the ticker, watched calls would only end on their reply; the next
            // watched call tries again
            self.ticker_started.store(false, Ordering::Release);
            tracing::error!(cause = %e, "the call deadline thread did not start");
        }
    }

    /// Calls watched so far, over all shards.
    fn watched(&self) -> u64 {
        self.shards.iter().map(|s| s.lock().watched).sum()
    }

    fn run(&self) {
        let mut last_activity = (self.watched(), Instant::now());
        loop {
            std::thread::sleep(TICK);
            self.sweep();
            let activity = self.watched();
            if activity != last_activity.0 {
                last_activity = (activity, Instant::now());
            } else if last_activity.1.elapsed() >= IDLE_AFTER {
                self.parked.store(true, Ordering::SeqCst);
                // a call watched between the last look and `parked` is seen here, or its
                // `watch` unparks this thread
                if self.watched() == activity {
                    std::thread::park();
                }
                self.parked.store(false, Ordering::SeqCst);
                last_activity = (self.watched(), Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    #[derive(Default)]
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_watched_call_is_woken_by_a_sweep_and_an_unwatched_one_is_not() {
        let watch = Watch::global();
        let (a, b) = (Arc::new(Flag::default()), Arc::new(Flag::default()));
        let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
        let ta = watch.watch(&wa);
        let tb = watch.watch(&wb);
        assert!(watch.still_watched(&ta, &wa));
        watch.unwatch(&tb);
        assert!(
            !watch.still_watched(&tb, &wb),
            "an unwatched ticket is stale"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !a.0.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            a.0.load(Ordering::SeqCst),
            "the ticker never woke the watched call"
        );
        assert!(!watch.still_watched(&ta, &wa), "a swept ticket is stale");
        assert!(!b.0.load(Ordering::SeqCst), "the unwatched call was woken");
        // a stale ticket never frees a slot someone else now holds
        let tc = watch.watch(&wb);
        watch.unwatch(&ta);
        assert!(watch.still_watched(&tc, &wb));
        watch.unwatch(&tc);
    }
}
