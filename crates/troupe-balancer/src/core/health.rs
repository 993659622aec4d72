//! Active health checks' verdict: how many checks in a row must fail before a member is taken
//! out, and pass before it is put back (HAProxy's `fall`/`rise`). Pure: the shell runs the
//! checks on its own schedule and feeds each result in.

/// A member's standing by its health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckedHealth {
    /// Passing (or not yet failed `fall` times in a row): may be picked
    Up,
    /// Failed `fall` checks in a row, and not yet passed `rise` in a row since: not picked
    Down,
}

/// The rise/fall counter of one member; starts [`CheckedHealth::Up`], as a member is presumed
/// healthy until checks say otherwise.
///
/// Guarantees: the standing changes only after `fall` consecutive failures (to down) or `rise`
/// consecutive passes (to up); a result that agrees with the standing resets the opposite
/// streak. `rise` and `fall` of 0 count as 1.
#[derive(Debug, Clone)]
pub struct HealthChecks {
    rise: u32,
    fall: u32,
    health: CheckedHealth,
    /// Consecutive results against the current standing
    streak: u32,
}

impl HealthChecks {
    /// A member that goes down after `fall` failed checks in a row and up after `rise` passes.
    pub fn new(rise: u32, fall: u32) -> Self {
        Self {
            rise: rise.max(1),
            fall: fall.max(1),
            health: CheckedHealth::Up,
            streak: 0,
        }
    }

    /// The standing now.
    pub fn health(&self) -> CheckedHealth {
        self.health
    }

    /// Records one check's result; returns the new standing if this result changed it.
    pub fn observe(&mut self, passed: bool) -> Option<CheckedHealth> {
        let (against, needed, next) = match self.health {
            CheckedHealth::Up => (!passed, self.fall, CheckedHealth::Down),
            CheckedHealth::Down => (passed, self.rise, CheckedHealth::Up),
        };
        if !against {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        if self.streak < needed {
            return None;
        }
        self.streak = 0;
        self.health = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_falls_after_fall_failures_in_a_row_and_rises_after_rise_passes() {
        let mut checks = HealthChecks::new(2, 3);
        assert_eq!(checks.observe(false), None);
        assert_eq!(checks.observe(false), None);
        // a pass between failures starts the count again
        assert_eq!(checks.observe(true), None);
        assert_eq!(checks.observe(false), None);
        assert_eq!(checks.observe(false), None);
        assert_eq!(checks.observe(false), Some(CheckedHealth::Down));
        assert_eq!(checks.health(), CheckedHealth::Down);
        assert_eq!(checks.observe(true), None);
        assert_eq!(checks.observe(false), None);
        assert_eq!(checks.observe(true), None);
        assert_eq!(checks.observe(true), Some(CheckedHealth::Up));
        assert_eq!(checks.observe(true), None);
    }

    #[test]
    fn zero_thresholds_count_as_one() {
        let mut checks = HealthChecks::new(0, 0);
        assert_eq!(checks.observe(false), Some(CheckedHealth::Down));
        assert_eq!(checks.observe(true), Some(CheckedHealth::Up));
    }
}
