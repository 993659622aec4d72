//! What the replicated log holds

use bytes::Bytes;

/// One write operation on the key-value map
///
/// Operations are deterministic: applying the same sequence to the same state gives the same
/// state and outcomes on every replica, including a failed [`Op::Cas`].
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value`
    Put {
        /// Key to set
        key: Bytes,
        /// New value
        value: Bytes,
    },
    /// Remove `key` (no effect if absent)
    Delete {
        /// Key to remove
        key: Bytes,
    },
    /// Set `key` to `new` (or remove it when `new` is `None`) only if its current value is
    /// `expected` (`None` meaning absent)
    Cas {
        /// Key to compare and set
        key: Bytes,
        /// Value the key must hold now; `None` means the key must be absent
        expected: Option<Bytes>,
        /// Value to store; `None` removes the key
        new: Option<Bytes>,
    },
    /// No change; a new leader appends one so entries from earlier epochs can commit
    Noop,
}

impl Op {
    /// The key and value bytes this operation carries
    pub fn payload_len(&self) -> usize {
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
        match self {
            Self::Put { key, value } => key.len() + value.len(),
            Self::Delete { key } => key.len(),
            Self::Cas { key, expected, new } => key.len() + len(expected) + len(new),
            Self::Noop => 0,
        }
    }

    /// The key this operation touches, `None` for [`Op::Noop`]
    pub fn key(&self) -> Option<&Bytes> {
        match self {
            Self::Put { key, .. } | Self::Delete { key } | Self::Cas { key, .. } => Some(key),
            Self::Noop => None,
        }
    }
}

/// One log entry: an operation at a position, written by the leader of `epoch`
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Position in the log, 1-based and contiguous
    pub index: u64,
    /// Epoch (term) of the leader that appended this entry
    pub epoch: u64,
    /// The operation
    pub op: Op,
}
