//! Reads from a replicated log: each must show a prefix of the one log
//!
//! A replica answers a read from its applied state and says how far it has applied (its log
//! index). Where acknowledged writes are never lost (every replica's applied entries are a
//! prefix of one log), such a read may be stale, but it must show the key exactly as the log's
//! entries up to that index left it: not a value from a later entry, not one no entry wrote, and
//! not an older one that an entry at or below the index overwrote. [`check_prefix_read`] checks
//! one read against the writes to its key whose log index came back with their answer.

use std::time::Duration;

use crate::history::RegisterOp;

/// A write to one key, with its log index if its answer came back
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedWrite {
    /// When it was invoked
    pub invoked: Duration,
    /// Its log index; `None` if its answer was lost (it may be in the log, or not)
    pub index: Option<u64>,
    /// What it did: [`RegisterOp::Write`], or [`RegisterOp::Cas`] with whether it swapped
    pub op: RegisterOp,
}

impl LoggedWrite {
    /// The value it leaves if it took effect as answered; `None` if it did not change the key
    /// (a compare-and-set that failed) or its outcome is unknown
    fn known_effect(&self) -> Option<Option<&String>> {
        self.index?;
        match &self.op {
            RegisterOp::Write(value) => Some(value.as_ref()),
            RegisterOp::Cas {
                new,
                swapped: Some(true),
                ..
            } => Some(new.as_ref()),
            _ => None,
        }
    }

    /// Whether it may have set `value` without its answer saying so
    fn may_have_set(&self, value: Option<&String>) -> bool {
        let unknown = match &self.op {
            RegisterOp::Write(_) => self.index.is_none(),
            RegisterOp::Cas { swapped, .. } => self.index.is_none() || swapped.is_none(),
            RegisterOp::Read(_) => false,
        };
        let sets = match &self.op {
            RegisterOp::Write(v) | RegisterOp::Cas { new: v, .. } => v.as_ref() == value,
            RegisterOp::Read(_) => false,
        };
        unknown && sets
    }
}

/// A read answered from a replica's applied state at log index `index`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRead {
    /// When it was invoked
    pub invoked: Duration,
    /// When its answer came back
    pub completed: Duration,
    /// The answering replica's applied index
    pub index: u64,
    /// What it read
    pub value: Option<String>,
}

/// `Err` saying why if `read` cannot be the key as the entries up to its index left it, given
/// `writes` (every write to the key, the key absent before them)
///
/// The read must show the value of the acknowledged write with the highest index at or below
/// its own, or the value of a write whose outcome is unknown and that was invoked before the
/// read completed (its entry may lie between); and no acknowledged write at or below its index
/// may have been invoked after the read completed.
///
/// # Errors
/// A description of the read and the write it contradicts.
pub fn check_prefix_read(writes: &[LoggedWrite], read: &LoggedRead) -> Result<(), String> {
    if let Some(future) = writes
        .iter()
        .find(|w| w.index.is_some_and(|i| i <= read.index) && w.invoked > read.completed)
    {
        return Err(format!(
            "{read:?} shows the log up to an index that holds {future:?}, invoked after the \
             read completed"
        ));
    }
    let last = writes
        .iter()
        .filter(|w| w.index.is_some_and(|i| i <= read.index))
        .filter_map(|w| Some((w.index?, w.known_effect()?, w)))
        .max_by_key(|(index, _, _)| *index);
    let expected = last.and_then(|(_, value, _)| value);
    if read.value.as_ref() == expected {
        return Ok(());
    }
    let unknown = writes
        .iter()
        .any(|w| w.invoked <= read.completed && w.may_have_set(read.value.as_ref()));
    if unknown {
        return Ok(());
    }
    Err(format!(
        "{read:?} shows neither what the last acknowledged write at or below its index left \
         ({:?}) nor a write of unknown outcome",
        last.map(|(_, _, w)| w)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn put(invoked: u64, index: Option<u64>, value: &str) -> LoggedWrite {
        LoggedWrite {
            invoked: ms(invoked),
            index,
            op: RegisterOp::Write(Some(value.into())),
        }
    }

    fn read(completed: u64, index: u64, value: Option<&str>) -> LoggedRead {
        LoggedRead {
            invoked: ms(completed.saturating_sub(5)),
            completed: ms(completed),
            index,
            value: value.map(String::from),
        }
    }

    #[test]
    fn a_stale_read_of_a_prefix_passes_and_a_newer_or_older_value_does_not() {
        let writes = [
            put(0, Some(3), "a"),
            put(10, Some(7), "b"),
            put(20, Some(9), "c"),
        ];
        // stale but a prefix: index 8 shows b
        assert!(check_prefix_read(&writes, &read(100, 8, Some("b"))).is_ok());
        assert!(check_prefix_read(&writes, &read(100, 2, None)).is_ok());
        // index 8 cannot show c (index 9) nor a (overwritten at 7)
        assert!(check_prefix_read(&writes, &read(100, 8, Some("c"))).is_err());
        assert!(check_prefix_read(&writes, &read(100, 8, Some("a"))).is_err());
        // nor a value nobody wrote
        assert!(check_prefix_read(&writes, &read(100, 9, Some("z"))).is_err());
    }

    #[test]
    fn a_write_of_unknown_outcome_may_show_but_only_once_invoked() {
        let writes = [put(0, Some(3), "a"), put(50, None, "u")];
        assert!(check_prefix_read(&writes, &read(60, 5, Some("u"))).is_ok());
        assert!(check_prefix_read(&writes, &read(40, 5, Some("u"))).is_err());
    }

    #[test]
    fn a_failed_compare_and_set_changes_nothing() {
        let writes = [
            put(0, Some(3), "a"),
            LoggedWrite {
                invoked: ms(10),
                index: Some(4),
                op: RegisterOp::Cas {
                    expected: Some("x".into()),
                    new: Some("b".into()),
                    swapped: Some(false),
                },
            },
        ];
        assert!(check_prefix_read(&writes, &read(100, 4, Some("a"))).is_ok());
        assert!(check_prefix_read(&writes, &read(100, 4, Some("b"))).is_err());
    }

    #[test]
    fn an_index_holding_a_write_not_yet_invoked_is_caught() {
        let writes = [put(200, Some(3), "a")];
        assert!(check_prefix_read(&writes, &read(100, 3, None)).is_err());
    }
}
