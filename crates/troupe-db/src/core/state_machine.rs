//! The key-value map the log is applied to

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use super::op::{Entry, Op};

/// Size limits on keys and values, checked before a write enters the log
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest key, in bytes
    pub max_key_len: usize,
    /// Largest value, in bytes
    pub max_value_len: usize,
}

impl Default for Limits {
    /// 1 KiB keys, 1 MiB values
    fn default() -> Self {
        Self {
            max_key_len: 1024,
            max_value_len: 1024 * 1024,
        }
    }
}

/// A write was refused for its size; it never entered the log
#[derive(
    serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, thiserror::Error,
)]
pub enum SizeError {
    /// The key is longer than [`Limits::max_key_len`]
    #[error("key of {len} bytes exceeds the limit of {max}")]
    KeyTooLarge {
        /// Key length
        len: usize,
        /// The limit
        max: usize,
    },
    /// A value (a `Put` value or a `Cas` expected or new value) is longer than
    /// [`Limits::max_value_len`]
    #[error("value of {len} bytes exceeds the limit of {max}")]
    ValueTooLarge {
        /// Value length
        len: usize,
        /// The limit
        max: usize,
    },
}

impl Limits {
    /// Check `op` against the limits
    ///
    /// # Errors
    ///
    /// [`SizeError::KeyTooLarge`] before [`SizeError::ValueTooLarge`] if both apply.
    pub fn check(&self, op: &Op) -> Result<(), SizeError> {
        if let Some(key) = op.key()
            && key.len() > self.max_key_len
        {
            return Err(SizeError::KeyTooLarge {
                len: key.len(),
                max: self.max_key_len,
            });
        }
        let values: [Option<&Bytes>; 2] = match op {
            Op::Put { value, .. } => [Some(value), None],
            Op::Cas { expected, new, .. } => [expected.as_ref(), new.as_ref()],
            Op::Delete { .. } | Op::Noop => [None, None],
        };
        for v in values.into_iter().flatten() {
            if v.len() > self.max_value_len {
                return Err(SizeError::ValueTooLarge {
                    len: v.len(),
                    max: self.max_value_len,
                });
            }
        }
        Ok(())
    }
}

/// A compare-and-set found a different current value; nothing changed
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("compare-and-set failed: expected {expected:?}, found {actual:?}")]
pub struct CasMismatch {
    /// What the write expected
    pub expected: Option<Bytes>,
    /// What the key held (`None`: absent)
    pub actual: Option<Bytes>,
}

/// What applying one operation did
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum OpOutcome {
    /// A `Put`; `previous` is the value it replaced
    Put {
        /// The replaced value, `None` if the key was absent
        previous: Option<Bytes>,
    },
    /// A `Delete`; `previous` is the value it removed
    Delete {
        /// The removed value, `None` if the key was absent
        previous: Option<Bytes>,
    },
    /// A `Cas` whose expectation held; the new value is in place
    Cas,
    /// A `Noop`
    Noop,
}

/// The key-value map, plus the index and epoch of the last entry applied to it
///
/// Applying is strictly sequential: [`StateMachine::apply_entry`] accepts only the entry right
/// after [`StateMachine::applied_index`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateMachine {
    map: BTreeMap<Bytes, Bytes>,
    applied_index: u64,
    applied_epoch: u64,
}

impl StateMachine {
    /// An empty map with nothing applied
    pub fn new() -> Self {
        Self::default()
    }

    /// A map restored from a snapshot covering entries up to `index` (of `epoch`)
    pub fn from_snapshot(map: BTreeMap<Bytes, Bytes>, index: u64, epoch: u64) -> Self {
        Self {
            map,
            applied_index: index,
            applied_epoch: epoch,
        }
    }

    /// Index of the last applied entry (0: none)
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Epoch of the last applied entry (0: none)
    pub fn applied_epoch(&self) -> u64 {
        self.applied_epoch
    }

    /// The whole map, for a snapshot taken at [`StateMachine::applied_index`]
    pub fn map(&self) -> &BTreeMap<Bytes, Bytes> {
        &self.map
    }

    /// The value of `key`, if present
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.map.get(key)
    }

    /// Up to `limit` pairs whose key starts with `prefix`, in key order
    pub fn scan_prefix<'a>(
        &'a self,
        prefix: &'a [u8],
        limit: usize,
    ) -> impl Iterator<Item = (&'a Bytes, &'a Bytes)> + 'a {
        self.map
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .take(limit)
    }

    /// Apply the entry right after the last applied one
    ///
    /// `Ok` is the operation's effect; `Err(CasMismatch)` is a compare-and-set that failed,
    /// identically on every replica. Either way the entry counts as applied.
    ///
    /// # Panics
    ///
    /// If `entry.index != applied_index() + 1`: skipping or repeating an entry would make
    /// replicas diverge.
    pub fn apply_entry(&mut self, entry: &Entry) -> Result<OpOutcome, CasMismatch> {
        assert!(
            entry.index == self.applied_index + 1,
            "entries must be applied in order"
        );
        assert!(entry.epoch >= self.applied_epoch, "epochs never go back");
        self.applied_index = entry.index;
        self.applied_epoch = entry.epoch;
        self.apply(&entry.op)
    }

    fn apply(&mut self, op: &Op) -> Result<OpOutcome, CasMismatch> {
        match op {
            Op::Put { key, value } => Ok(OpOutcome::Put {
                previous: self.map.insert(key.clone(), value.clone()),
            }),
            Op::Delete { key } => Ok(OpOutcome::Delete {
                previous: self.map.remove(key),
            }),
            Op::Cas { key, expected, new } => {
                let actual = self.map.get(key);
                if actual != expected.as_ref() {
                    return Err(CasMismatch {
                        expected: expected.clone(),
                        actual: actual.cloned(),
                    });
                }
                match new {
                    Some(v) => self.map.insert(key.clone(), v.clone()),
                    None => self.map.remove(key),
                };
                Ok(OpOutcome::Cas)
            }
            Op::Noop => Ok(OpOutcome::Noop),
        }
    }
}
