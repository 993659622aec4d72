//! [`StoreError`]: why a part's redb file could not be opened, read or written

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a part's redb file could not be opened, read or written
///
/// Each variant keeps its cause as [`source()`](std::error::Error::source); the message also
/// names it, so a log line that prints only this error still says what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file's directory could not be created (permissions, or a file in the way)
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        /// The directory
        path: PathBuf,
        /// Why
        source: std::io::Error,
    },
    /// The file could not be opened or created (permissions, not a redb file, a redb version
    /// it was not written with, or held open by another handle)
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file
        path: PathBuf,
        /// redb's reason
        source: Box<redb::DatabaseError>,
    },
    /// [`create_when_released`](crate::create_when_released) gave up: the file was still held
    /// open by another handle (in this process or another) after every attempt it was allowed
    #[error(
        "{} is still held open by another handle after {attempts} attempts over {waited:?}",
        path.display()
    )]
    Held {
        /// The file
        path: PathBuf,
        /// How many times opening was tried
        attempts: u32,
        /// How long the attempts took, on tokio's clock
        waited: Duration,
        /// redb's answer to the last attempt
        source: Box<redb::DatabaseError>,
    },
    /// A read, write or commit failed
    #[error("storage failed: {0}")]
    Io(#[source] Box<redb::Error>),
    /// The file holds something this version of the part cannot have written
    #[error("file is corrupt: {what}: {source}")]
    Corrupt {
        /// Where (e.g. `item 7`, `log entry 12`)
        what: String,
        /// What is wrong there
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// A [`StoreError::Corrupt`] at `what`, because of `why` (an error, or a `&str`/`String`
    /// describing it)
    pub fn corrupt(
        what: impl Into<String>,
        why: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Corrupt {
            what: what.into(),
            source: why.into(),
        }
    }

    /// Which kind of failure this is
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            Self::CreateDir { .. } => StoreErrorKind::CreateDir,
            Self::Open { source, .. } if is_already_open(source) => StoreErrorKind::Held,
            Self::Open { .. } => StoreErrorKind::Open,
            Self::Held { .. } => StoreErrorKind::Held,
            Self::Io(_) => StoreErrorKind::Io,
            Self::Corrupt { .. } => StoreErrorKind::Corrupt,
        }
    }

    /// Whether the file is held open by another handle (in this process or another): a
    /// [`StoreError::Held`], or an [`StoreError::Open`] that redb refused for that reason
    pub fn is_held(&self) -> bool {
        self.kind() == StoreErrorKind::Held
    }

    /// Whether the device failed an operation (a full disk, an I/O error): a
    /// [`StoreError::Io`], or an [`StoreError::Open`] that failed reading or repairing the
    /// file. Such a failure may pass when space returns; a held or corrupt file does not.
    pub fn is_device_failure(&self) -> bool {
        match self {
            Self::Io(_) => true,
            Self::Open { source, .. } => matches!(
                **source,
                redb::DatabaseError::Storage(redb::StorageError::Io(_))
            ),
            _ => false,
        }
    }
}

pub(crate) fn is_already_open(err: &redb::DatabaseError) -> bool {
    matches!(err, redb::DatabaseError::DatabaseAlreadyOpen)
}

/// Every redb error met inside a transaction is a [`StoreError::Io`].
macro_rules! io_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(err: $t) -> Self {
                Self::Io(Box::new(err.into()))
            }
        }
    )*};
}
io_from!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// What kind of failure a [`StoreError`] is, for callers that act on it and for the wire
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StoreErrorKind {
    /// [`StoreError::CreateDir`]
    CreateDir,
    /// [`StoreError::Open`], for any reason but another handle holding the file
    Open,
    /// The file is held open by another handle ([`StoreError::Held`], or a single open
    /// refused for that reason)
    Held,
    /// [`StoreError::Io`]
    Io,
    /// [`StoreError::Corrupt`]
    Corrupt,
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CreateDir => "cannot create directory",
            Self::Open => "cannot open file",
            Self::Held => "file held by another handle",
            Self::Io => "read or write failed",
            Self::Corrupt => "file corrupt",
        })
    }
}

/// A [`StoreError`] as it travels in a reply to another process: its kind and its message
///
/// A source chain cannot cross the wire, so a part builds this from the typed error at the one
/// place where the reply leaves it, and logs or returns the typed error locally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct StoreFault {
    /// What kind of failure it was
    pub kind: StoreErrorKind,
    /// The typed error's message (which names its cause)
    pub message: String,
}

impl From<&StoreError> for StoreFault {
    fn from(err: &StoreError) -> Self {
        Self {
            kind: err.kind(),
            message: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_corrupt_error_keeps_its_cause_as_source_and_in_its_message() {
        let err = StoreError::corrupt("item 7", "record cut short");
        assert_eq!(err.kind(), StoreErrorKind::Corrupt);
        assert_eq!(err.to_string(), "file is corrupt: item 7: record cut short");
        assert_eq!(
            err.source().map(ToString::to_string).as_deref(),
            Some("record cut short")
        );
    }

    #[test]
    fn redb_errors_convert_to_io_with_their_source() {
        let err = StoreError::from(redb::StorageError::Corrupted("bad page".into()));
        assert_eq!(err.kind(), StoreErrorKind::Io);
        assert!(err.source().is_some());
    }

    #[test]
    fn a_fault_carries_the_kind_and_the_message() {
        let err = StoreError::corrupt("log entry 3", "bad epoch");
        let fault = StoreFault::from(&err);
        assert_eq!(fault.kind, StoreErrorKind::Corrupt);
        assert_eq!(fault.message, err.to_string());
    }
}
