//! The hosts' volatile files: which redb files a [`Fault::PowerLoss`](crate::Fault) cuts the
//! power of

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use troupe_store::power::{self, VolatileDisk};

thread_local! {
    /// Per host of the simulation running on this thread, its volatile files.
    static DISKS: RefCell<BTreeMap<String, Vec<(PathBuf, VolatileDisk)>>> =
        const { RefCell::new(BTreeMap::new()) };
}

/// Keeps the redb file at `path` on `host`'s simulated disk: every open of it in this process
/// (through `troupe_store::create`) sees an image in memory, and a
/// [`Fault::PowerLoss`](crate::Fault) of `host` drops what was written to it but not synced
///
/// Call it before the simulation runs, once per file (the next [`simulation`](crate::simulation)
/// on this thread forgets it). Returns the disk, to look at what it holds.
pub fn volatile_file(host: &str, path: &Path) -> VolatileDisk {
    let disk = VolatileDisk::new();
    power::inject(path, &disk);
    DISKS.with(|d| {
        d.borrow_mut()
            .entry(host.to_string())
            .or_default()
            .push((path.to_path_buf(), disk.clone()));
    });
    disk
}

/// Cuts the power of `host`'s volatile files; returns how many writes were lost
pub(crate) fn power_loss(host: &str) -> u64 {
    DISKS.with(|d| {
        d.borrow().get(host).map_or(0, |disks| {
            disks.iter().map(|(_, disk)| disk.power_loss()).sum()
        })
    })
}

/// Forgets every volatile file of the last simulation on this thread
pub(crate) fn forget_all() {
    DISKS.with(|d| {
        for (path, _) in std::mem::take(&mut *d.borrow_mut()).into_values().flatten() {
            power::remove(&path);
        }
    });
}
