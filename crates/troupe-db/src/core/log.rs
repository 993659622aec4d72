//! The in-memory replicated log

use std::collections::VecDeque;

use super::op::Entry;

/// An append-only sequence of [`Entry`], truncatable at both ends
///
/// Entries are contiguous from [`Log::first_index`] to [`Log::last_index`]. Everything at or
/// below the *base* (`first_index - 1`) has been truncated away, normally because a snapshot
/// covers it; the base's epoch is remembered so the entry just before the first one can still
/// be matched. An empty log has base `(0, 0)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Log {
    entries: VecDeque<Entry>,
    base_index: u64,
    base_epoch: u64,
}

/// Why [`Log::append`] refused entries; nothing was appended
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// An entry's index is not the next one
    #[error("entry index {got} is not contiguous, expected {expected}")]
    NotContiguous {
        /// The index the entry needed
        expected: u64,
        /// The index it had
        got: u64,
    },
    /// An entry's epoch is lower than the entry before it
    #[error("entry {index} has epoch {epoch}, below the previous epoch {previous}")]
    EpochRegressed {
        /// The entry's index
        index: u64,
        /// The entry's epoch
        epoch: u64,
        /// Epoch of the entry before it
        previous: u64,
    },
}

/// The requested entries were truncated away; the reader needs a snapshot
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("entries before {first_index} were truncated; a snapshot is needed")]
pub struct NeedSnapshot {
    /// The first index still in the log
    pub first_index: u64,
}

impl Log {
    /// An empty log starting at index 1
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty log whose entries up to `base_index` (of `base_epoch`) are covered by a snapshot
    pub fn with_base(base_index: u64, base_epoch: u64) -> Self {
        Self {
            entries: VecDeque::new(),
            base_index,
            base_epoch,
        }
    }

    /// First index held; `last_index() + 1` when the log holds no entries
    pub fn first_index(&self) -> u64 {
        self.base_index + 1
    }

    /// Last index held, or the base index when the log holds no entries
    pub fn last_index(&self) -> u64 {
        self.base_index + self.entries.len() as u64
    }

    /// Epoch of the last entry, or of the base when the log holds no entries
    pub fn last_epoch(&self) -> u64 {
        self.entries.back().map_or(self.base_epoch, |e| e.epoch)
    }

    /// Index and epoch of the base: the last position truncated away (`(0, 0)` if none)
    pub fn base(&self) -> (u64, u64) {
        (self.base_index, self.base_epoch)
    }

    /// Epoch of the entry at `index`, including the base position
    ///
    /// `None` if `index` is below the base (truncated, epoch forgotten) or above the last index.
    pub fn epoch_at(&self, index: u64) -> Option<u64> {
        if index == self.base_index {
            return Some(self.base_epoch);
        }
        self.get(index).map(|e| e.epoch)
    }

    /// The entry at `index`, if held
    pub fn get(&self, index: u64) -> Option<&Entry> {
        if index <= self.base_index {
            return None;
        }
        let offset = usize::try_from(index - self.base_index - 1).ok()?;
        self.entries.get(offset)
    }

    /// Append `entries`, which must continue the log
    ///
    /// `Ok` means all entries are in the log (in memory; persisting them is the caller's job).
    ///
    /// # Errors
    ///
    /// - [`LogError::NotContiguous`] if an entry's index is not the next one.
    /// - [`LogError::EpochRegressed`] if an entry's epoch is below its predecessor's.
    ///
    /// On error the log is unchanged.
    pub fn append(&mut self, entries: impl IntoIterator<Item = Entry>) -> Result<(), LogError> {
        let entries: Vec<Entry> = entries.into_iter().collect();
        check_run(self.last_index(), self.last_epoch(), &entries)?;
        self.entries.extend(entries);
        Ok(())
    }

    /// Up to `max` entries starting at `index`, in order
    ///
    /// Empty if `index > last_index()`.
    ///
    /// # Errors
    ///
    /// [`NeedSnapshot`] if `index < first_index()`: those entries were truncated away.
    pub fn entries_from(&self, index: u64, max: usize) -> Result<Vec<Entry>, NeedSnapshot> {
        if index < self.first_index() {
            return Err(NeedSnapshot {
                first_index: self.first_index(),
            });
        }
        let skip = usize::try_from(index - self.first_index()).unwrap_or(usize::MAX);
        Ok(self.entries.iter().skip(skip).take(max).cloned().collect())
    }

    /// Drop every entry at or below `upto`, which a snapshot now covers
    ///
    /// No effect if `upto` is at or below the base.
    ///
    /// # Panics
    ///
    /// If `upto > last_index()`: a snapshot cannot cover entries the log never held (use
    /// [`Log::with_base`] to restart from a snapshot instead).
    pub fn truncate_prefix(&mut self, upto: u64) {
        assert!(
            upto <= self.last_index(),
            "truncate_prefix past the last index"
        );
        if upto <= self.base_index {
            return;
        }
        let epoch = self.epoch_at(upto).expect("upto is within the log");
        let count = usize::try_from(upto - self.base_index).expect("count fits in memory");
        self.entries.drain(..count);
        self.base_index = upto;
        self.base_epoch = epoch;
        assert!(self.first_index() == upto + 1);
    }

    /// Drop every entry at or above `from`, because it conflicts with the current leader's log
    ///
    /// No effect if `from > last_index()`.
    ///
    /// # Panics
    ///
    /// If `from` is at or below the base: truncated entries are covered by a snapshot, which
    /// only holds committed entries, and committed entries never conflict.
    pub fn truncate_suffix(&mut self, from: u64) {
        assert!(from > self.base_index, "truncate_suffix into the snapshot");
        if from > self.last_index() {
            return;
        }
        let keep = usize::try_from(from - self.first_index()).expect("count fits in memory");
        self.entries.truncate(keep);
        assert!(self.last_index() == from - 1);
    }
}

/// Check that `entries` continue a log whose last entry is `(prev_index, prev_epoch)`
pub(super) fn check_run(
    prev_index: u64,
    prev_epoch: u64,
    entries: &[Entry],
) -> Result<(), LogError> {
    let mut previous = prev_epoch;
    let Some(first) = prev_index.checked_add(1) else {
        // Nothing can follow the last representable index.
        return match entries.first() {
            Some(e) => Err(LogError::NotContiguous {
                expected: u64::MAX,
                got: e.index,
            }),
            None => Ok(()),
        };
    };
    for (expected, e) in (first..).zip(entries) {
        if e.index != expected {
            return Err(LogError::NotContiguous {
                expected,
                got: e.index,
            });
        }
        if e.epoch < previous {
            return Err(LogError::EpochRegressed {
                index: e.index,
                epoch: e.epoch,
                previous,
            });
        }
        previous = e.epoch;
    }
    Ok(())
}
