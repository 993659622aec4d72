//! Which clock the runtime runs on: the real one, or tokio's driven by a simulator.
//!
//! Every wait and every measured interval in the runtime goes through tokio's clock, so
//! `tokio::time::pause()` and a network simulator (`troupe-sim`, on turmoil) drive it. Two
//! parts of the runtime bought their speed with an OS thread of their own that reads the real
//! clock: the sweep of the local-call deadline watch list (which spares a local call a timer)
//! and the opt-in spinning thread (`NetConfig::spin_after_traffic`). Under a simulated clock
//! they step aside: each call deadline arms a tokio timer at once, and no spinning thread
//! starts. [`set_simulated`] says which case this process is in; production never calls it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

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

/// The wall clock, read once: (an instant of [`now`], the Unix time then in milliseconds).
static UNIX_ANCHOR: OnceLock<(Instant, i64)> = OnceLock::new();

/// Milliseconds since the Unix epoch at `at`, an instant of [`now`]
///
/// The wall clock is read once per process, at the first call; after that, Unix time moves
/// with the runtime's clock, so a simulator that drives tokio's clock drives this too, and
/// a part that turns an absolute time (Redis's `EXPIREAT`) into an instant never reads the
/// wall clock itself. A wall clock set back or forward later is not followed.
pub fn unix_millis(at: Instant) -> i64 {
    let &(anchor, anchor_ms) = UNIX_ANCHOR.get_or_init(|| {
        let unix_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        (now(), unix_ms)
    });
    // signed nanoseconds from the anchor, floored to milliseconds: instants a whole number
    // of milliseconds apart are that many apart here, on either side of the anchor
    let nanos: i128 = if at >= anchor {
        i128::try_from((at - anchor).as_nanos()).unwrap_or(i128::MAX)
    } else {
        -i128::try_from((anchor - at).as_nanos()).unwrap_or(i128::MAX)
    };
    let millis = i64::try_from(nanos.div_euclid(1_000_000)).unwrap_or(i64::MAX);
    anchor_ms.saturating_add(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_time_moves_with_the_runtime_clock() {
        // taken before the first call reads the wall clock: t0 is before the anchor
        let t0 = now() - std::time::Duration::from_micros(300);
        let ms = unix_millis(t0);
        assert!(ms > 1_600_000_000_000, "{ms}");
        let later = t0 + std::time::Duration::from_millis(1500);
        assert_eq!(unix_millis(later) - ms, 1500);
        let earlier = t0 - std::time::Duration::from_millis(250);
        assert_eq!(ms - unix_millis(earlier), 250);
    }
}
