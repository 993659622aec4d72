//! Storage faults on demand: a redb backend over the real file that fails its writes with
//! `ENOSPC` (a full disk) or `EIO` (a failing device) while a [`FaultSwitch`] says so.
//!
//! Every write fails while a switch is on, the header redb rewrites in place on open included,
//! so a file cannot be opened then; a real full disk lets in-place writes through. What a part
//! does when it reopens a file on a full disk is tested on a real tmpfs instead
//! (`troupe_testkit::SmallDisk`).
//!
//! A test arms a switch for a path with [`inject`] before the part opens its file; every
//! [`create`](crate::create) of that path then goes through [`FaultyFile`], in this process
//! only. Reads always work, as they would on a full disk. With no switch armed (every
//! production run) `create` opens the file as it always does: one map lookup at open.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use redb::StorageBackend;
use redb::backends::FileBackend;

const HEALTHY: u8 = 0;
const DISK_FULL: u8 = 1;
const IO_ERROR: u8 = 2;

/// Turns faults on and off for the files opened through it. Clones share the switch.
#[derive(Clone, Debug, Default)]
pub struct FaultSwitch(Arc<AtomicU8>);

impl FaultSwitch {
    /// A switch with no fault on.
    pub fn new() -> Self {
        Self::default()
    }

    /// From now on writes, growth and syncs fail with `ENOSPC`.
    pub fn disk_full(&self) {
        self.0.store(DISK_FULL, Ordering::SeqCst);
    }

    /// From now on writes, growth and syncs fail with `EIO`.
    pub fn io_error(&self) {
        self.0.store(IO_ERROR, Ordering::SeqCst);
    }

    /// Writes work again (space returned, the device recovered).
    pub fn heal(&self) {
        self.0.store(HEALTHY, Ordering::SeqCst);
    }

    fn check(&self) -> io::Result<()> {
        match self.0.load(Ordering::SeqCst) {
            DISK_FULL => Err(io::Error::from_raw_os_error(28)), // ENOSPC
            IO_ERROR => Err(io::Error::from_raw_os_error(5)),   // EIO
            _ => Ok(()),
        }
    }
}

static SWITCHES: crate::by_path::ByPath<FaultSwitch> = crate::by_path::ByPath::new();

/// Makes every later [`create`](crate::create) of `path` in this process open it through a
/// [`FaultyFile`] governed by `switch` (until [`remove`]).
pub fn inject(path: &Path, switch: &FaultSwitch) {
    SWITCHES.insert(path, switch.clone());
}

/// Forgets the switch of `path`: later opens use the plain file again.
pub fn remove(path: &Path) {
    SWITCHES.remove(path);
}

/// The switch armed for `path`, if any.
pub(crate) fn switch_for(path: &Path) -> Option<FaultSwitch> {
    SWITCHES.get(path)
}

/// The real file, with writes that fail while its switch is on.
#[derive(Debug)]
pub struct FaultyFile {
    file: FileBackend,
    switch: FaultSwitch,
}

impl FaultyFile {
    /// `file` as redb's file backend, failing while `switch` is on.
    ///
    /// # Errors
    /// As redb's `FileBackend::new` (the file is locked for this process).
    pub fn new(file: File, switch: FaultSwitch) -> Result<Self, redb::DatabaseError> {
        Ok(Self {
            file: FileBackend::new(file)?,
            switch,
        })
    }
}

impl StorageBackend for FaultyFile {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.file.read(offset, len)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        // shrinking needs no space; growing does
        if len > self.file.len()? {
            self.switch.check()?;
        }
        self.file.set_len(len)
    }

    fn sync_data(&self, eventual: bool) -> io::Result<()> {
        self.switch.check()?;
        self.file.sync_data(eventual)
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.switch.check()?;
        self.file.write(offset, data)
    }
}
