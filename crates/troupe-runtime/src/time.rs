//! Which clock the runtime runs on: the real one, or tokio's driven by a simulator.
//!
//! Every wait and every measured interval in the runtime goes through tokio's clock, so
//! `tokio::time::pause()` and a network simulator (`troupe-sim`, on turmoil) drive it. Two
//! parts of the runtime bought their speed with an OS thread of their own that reads the real
//! clock: the sweep of the local-call deadline watch list (which spares a local call a timer)
//! and the opt-in spinning thread (`NetConfig::spin_after_traffic`). Under a simulated clock
//! they step aside: each call deadline arms a tokio timer at once, and no spinning thread
//! starts. [`set_simulated`] says which case this process is in; production never calls it.

use std::sync::atomic::{AtomicBool, Ordering};

static SIMULATED: AtomicBool = AtomicBool::new(false);

/// Tells the runtime whether tokio's clock is simulated (paused and advanced by a test or a
/// simulator) in this process, from now on
///
/// With `true`, local call deadlines arm tokio timers instead of joining the real-time watch
/// list, and [`NetConfig::spin_after_traffic`](crate::remote::NetConfig) starts no thread.
/// Calls already waiting keep the way they started.
pub fn set_simulated(simulated: bool) {
    SIMULATED.store(simulated, Ordering::Relaxed);
}

/// Whether [`set_simulated`] last said the clock is simulated
pub fn is_simulated() -> bool {
    SIMULATED.load(Ordering::Relaxed)
}

/// Now on tokio's clock, as a [`std::time::Instant`] for the parts' decision rules
///
/// The real time in production; the simulated time under `tokio::time::pause()` or a
/// simulator. Shells pass this to their pure cores as `now`, and measure intervals as the
/// difference of two of these, never with `Instant::elapsed` (which reads the real clock).
pub fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
