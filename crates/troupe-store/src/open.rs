//! [`create`] and [`create_when_released`]: opening a part's redb file

use std::path::Path;
use std::time::Duration;

use redb::{Database, TableHandle as _};

use crate::error::{StoreError, is_already_open};

/// How long [`create_when_released`] keeps trying while another handle holds the file
///
/// It stops at whichever bound comes first: `max_attempts` opens, or `max_wait` of tokio's
/// clock since the first attempt (it never starts a pause that would end past it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reopen {
    /// Most opens tried, the first included (at least 1 is always tried)
    pub max_attempts: u32,
    /// Longest total wait
    pub max_wait: Duration,
    /// Pause between two attempts
    pub pause: Duration,
}

impl Default for Reopen {
    /// Up to 5 s, trying every 10 ms (at most 501 attempts): long enough for a crashed actor's
    /// instance to be dropped, short enough that a file really held by another process fails
    /// the restart instead of hanging it
    fn default() -> Self {
        Self {
            max_attempts: 501,
            max_wait: Duration::from_secs(5),
            pause: Duration::from_millis(10),
        }
    }
}

/// Opens the redb file at `path`, creating it and its directory if missing
///
/// Fails at once if another handle holds the file; see [`create_when_released`] to wait.
///
/// # Errors
///
/// [`StoreError::CreateDir`] if the directory cannot be made, [`StoreError::Open`] if redb
/// cannot open or create the file (including when another handle holds it:
/// [`StoreError::is_held`] is then true).
pub fn create(path: &Path) -> Result<Database, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let open_error = |source: redb::DatabaseError| StoreError::Open {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    if let Some(disk) = crate::power::disk_for(path) {
        // a test keeps this file in memory to cut its power (see `power::inject`)
        let file = disk
            .open()
            .ok_or_else(|| open_error(redb::DatabaseError::DatabaseAlreadyOpen))?;
        return redb::Builder::new()
            .create_with_backend(file)
            .map_err(open_error);
    }
    match crate::faults::switch_for(path) {
        None => Database::create(path).map_err(open_error),
        // a test armed faults for this file (see `faults::inject`)
        Some(switch) => {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| open_error(redb::DatabaseError::Storage(e.into())))?;
            let backend = crate::faults::FaultyFile::new(file, switch).map_err(open_error)?;
            redb::Builder::new()
                .create_with_backend(backend)
                .map_err(open_error)
        }
    }
}

/// As [`create`], but while another handle holds the file, tries again after
/// `reopen.pause` on tokio's clock, within the bounds of `reopen`
///
/// This is for an actor restarted after a crash: the crashed instance's handle on the file
/// may not be dropped yet when its successor starts. Any other failure is returned at once.
///
/// # Errors
///
/// [`StoreError::Held`] once the bounds are reached with the file still held (its source is
/// redb's last refusal); otherwise as [`create`].
///
/// # Cancel safety
///
/// Cancelling between attempts leaves nothing open; an attempt itself does not yield.
pub async fn create_when_released(path: &Path, reopen: Reopen) -> Result<Database, StoreError> {
    let start = tokio::time::Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let err = match create(path) {
            Err(StoreError::Open { source, .. }) if is_already_open(&source) => source,
            other => return other,
        };
        let waited = start.elapsed();
        if attempts >= reopen.max_attempts || waited + reopen.pause > reopen.max_wait {
            return Err(StoreError::Held {
                path: path.to_path_buf(),
                attempts,
                waited,
                source: err,
            });
        }
        if attempts == 1 {
            tracing::debug!(path = %path.display(), "file still held; waiting for its release");
        }
        tokio::time::sleep(reopen.pause).await;
    }
}

/// Whether `db` holds every table named in `names`
///
/// A part creates its tables only when this says some are missing, so reopening a file that
/// has them writes nothing: a file on a full disk opens, and its part can serve reads.
///
/// # Errors
///
/// [`StoreError::Io`] if the file's table list cannot be read.
pub fn has_tables(db: &Database, names: &[&str]) -> Result<bool, StoreError> {
    let txn = db.begin_read()?;
    let present: Vec<String> = txn
        .list_tables()?
        .map(|table| table.name().to_string())
        .collect();
    Ok(names.iter().all(|name| present.iter().any(|p| p == name)))
}
