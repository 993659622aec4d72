//! Power loss on demand: a redb backend that keeps a file in memory the way a disk keeps it
//! across a power cut, with what was synced apart from what was only written.
//!
//! A test makes a [`VolatileDisk`], arms it for a path with [`inject`], and every later
//! [`create`](crate::create) of that path in this process opens the disk's image instead of a
//! file. Writes change what reads see at once, as a page cache would; `sync_data` makes them
//! durable. [`VolatileDisk::power_loss`] throws away every write since the last sync and cuts
//! off every handle opened before it (their reads, writes and syncs fail with `EIO`, as the
//! process that held them is gone), so the next open sees exactly what was synced.
//!
//! Like a file, the image can be held by one handle at a time: a second open while the first
//! lives fails with redb's `DatabaseAlreadyOpen`, so a restarted part waits for its crashed
//! predecessor as it does on a real file. Syncs redb asks for "eventually" (its
//! `Durability::Eventual`) are not a barrier: a power loss may lose them.
//!
//! With no disk armed (every production run) `create` opens the file as it always does.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::StorageBackend;

/// A file's bytes as a disk holds them: synced, and written since. Clones share the disk.
#[derive(Clone, Debug, Default)]
pub struct VolatileDisk(Arc<Mutex<Image>>);

#[derive(Debug, Default)]
struct Image {
    /// What survives a power loss
    durable: Vec<u8>,
    /// What reads see: `durable` with every write since the last sync
    current: Vec<u8>,
    /// Byte ranges of `current` written since the last sync
    dirty: Vec<(usize, usize)>,
    /// The shortest `current` has been since the last sync (bytes past it were cut off)
    shortest: usize,
    /// Writes since the last sync
    unsynced_writes: u64,
    /// Power cuts so far: a handle opened before the latest one is dead
    power_cycles: u64,
    /// Whether a live handle holds the image
    held: bool,
}

impl VolatileDisk {
    /// An empty disk (a file that does not exist yet reads as empty)
    pub fn new() -> Self {
        Self::default()
    }

    /// Cuts the power: every write since the last sync is lost, every open handle dies (its
    /// operations fail with `EIO`), and the image is free to be opened again. Returns how
    /// many writes were lost.
    pub fn power_loss(&self) -> u64 {
        let mut image = self.lock();
        let lost = image.unsynced_writes;
        image.current = image.durable.clone();
        image.shortest = image.current.len();
        image.dirty.clear();
        image.unsynced_writes = 0;
        image.power_cycles += 1;
        image.held = false;
        lost
    }

    /// Writes not yet synced
    pub fn unsynced_writes(&self) -> u64 {
        self.lock().unsynced_writes
    }

    /// The bytes a power loss now would keep
    pub fn durable_len(&self) -> u64 {
        self.lock().durable.len() as u64
    }

    fn lock(&self) -> MutexGuard<'_, Image> {
        // a panic while holding it leaves the image consistent: every change is one step
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A handle on the image, or `None` while another live handle holds it
    pub(crate) fn open(&self) -> Option<VolatileFile> {
        let mut image = self.lock();
        if image.held {
            return None;
        }
        image.held = true;
        Some(VolatileFile {
            disk: self.clone(),
            power_cycle: image.power_cycles,
        })
    }
}

static DISKS: crate::by_path::ByPath<VolatileDisk> = crate::by_path::ByPath::new();

/// Makes every later [`create`](crate::create) of `path` in this process open `disk`'s image
/// instead of the file (until [`remove`])
pub fn inject(path: &Path, disk: &VolatileDisk) {
    DISKS.insert(path, disk.clone());
}

/// Forgets the disk of `path`: later opens use the file again
pub fn remove(path: &Path) {
    DISKS.remove(path);
}

/// The disk armed for `path`, if any.
pub(crate) fn disk_for(path: &Path) -> Option<VolatileDisk> {
    DISKS.get(path)
}

/// One open handle on a [`VolatileDisk`]: redb's storage while the power stays on.
#[derive(Debug)]
pub struct VolatileFile {
    disk: VolatileDisk,
    power_cycle: u64,
}

impl VolatileFile {
    /// The image, if this handle outlived no power loss
    fn image(&self) -> io::Result<MutexGuard<'_, Image>> {
        let image = self.disk.lock();
        if image.power_cycles == self.power_cycle {
            Ok(image)
        } else {
            Err(io::Error::from_raw_os_error(5)) // EIO: the power went
        }
    }
}

impl Drop for VolatileFile {
    fn drop(&mut self) {
        if let Ok(mut image) = self.image() {
            image.held = false;
        }
    }
}

fn offset(value: u64) -> io::Result<usize> {
    usize::try_from(value).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

impl StorageBackend for VolatileFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.image()?.current.len() as u64)
    }

    fn read(&self, offset_: u64, len: usize) -> io::Result<Vec<u8>> {
        let image = self.image()?;
        let start = offset(offset_)?;
        let end = start
            .checked_add(len)
            .filter(|end| *end <= image.current.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        Ok(image.current[start..end].to_vec())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut image = self.image()?;
        let len = offset(len)?;
        image.current.resize(len, 0);
        image.shortest = image.shortest.min(len);
        image.unsynced_writes += 1;
        Ok(())
    }

    fn sync_data(&self, eventual: bool) -> io::Result<()> {
        let mut image = self.image()?;
        if eventual {
            return Ok(());
        }
        let Image {
            durable,
            current,
            dirty,
            shortest,
            ..
        } = &mut *image;
        durable.truncate(*shortest);
        durable.resize(current.len(), 0);
        for (start, end) in dirty.drain(..) {
            let end = end.min(current.len());
            if start < end {
                durable[start..end].copy_from_slice(&current[start..end]);
            }
        }
        *shortest = current.len();
        image.unsynced_writes = 0;
        Ok(())
    }

    fn write(&self, offset_: u64, data: &[u8]) -> io::Result<()> {
        let mut image = self.image()?;
        let start = offset(offset_)?;
        let end = start
            .checked_add(data.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        if end > image.current.len() {
            image.current.resize(end, 0);
        }
        image.current[start..end].copy_from_slice(data);
        image.dirty.push((start, end));
        image.unsynced_writes += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use redb::{Database, TableDefinition};

    use super::*;

    const TABLE: TableDefinition<u64, u64> = TableDefinition::new("t");

    fn open(disk: &VolatileDisk) -> Database {
        let file = disk.open().expect("not held");
        redb::Builder::new()
            .create_with_backend(file)
            .expect("opens")
    }

    fn try_put(
        db: &Database,
        key: u64,
        durability: redb::Durability,
    ) -> Result<(), crate::StoreError> {
        let mut txn = db.begin_write()?;
        txn.set_durability(durability);
        txn.open_table(TABLE)?.insert(key, key * 10)?;
        txn.commit()?;
        Ok(())
    }

    fn put(db: &Database, key: u64, durability: redb::Durability) {
        try_put(db, key, durability).unwrap();
    }

    fn keys(db: &Database) -> Vec<u64> {
        let txn = db.begin_read().unwrap();
        let Ok(table) = txn.open_table(TABLE) else {
            return vec![];
        };
        use redb::ReadableTable as _;
        table
            .iter()
            .unwrap()
            .map(|e| e.unwrap().0.value())
            .collect()
    }

    #[test]
    fn a_power_loss_keeps_synced_commits_and_drops_the_rest() {
        let disk = VolatileDisk::new();
        let db = open(&disk);
        put(&db, 1, redb::Durability::Immediate);
        put(&db, 2, redb::Durability::None);
        assert_eq!(keys(&db), [1, 2]);
        assert!(disk.unsynced_writes() > 0);

        assert!(disk.power_loss() > 0);
        // the dead handle fails instead of writing into the new power cycle
        assert!(try_put(&db, 4, redb::Durability::Immediate).is_err());
        drop(db);
        let db = open(&disk);
        assert_eq!(
            keys(&db),
            [1],
            "the synced commit survives, the lazy one is lost"
        );
        put(&db, 3, redb::Durability::Immediate);
        drop(db);
        // a clean close keeps everything
        let db = open(&disk);
        assert_eq!(keys(&db), [1, 3]);
    }

    #[test]
    fn one_handle_at_a_time_until_it_is_dropped_or_the_power_goes() {
        let disk = VolatileDisk::new();
        let first = disk.open().expect("free");
        assert!(disk.open().is_none(), "held by the first");
        drop(first);
        let second = disk.open().expect("released");
        disk.power_loss();
        let third = disk.open().expect("the power loss freed it");
        drop(second); // the dead handle's drop does not free the live one's hold
        assert!(disk.open().is_none());
        drop(third);
    }

    #[test]
    fn a_sync_after_a_shrink_and_regrowth_keeps_the_zeros() {
        let disk = VolatileDisk::new();
        let file = disk.open().unwrap();
        file.write(0, &[7; 8]).unwrap();
        file.sync_data(false).unwrap();
        file.set_len(2).unwrap();
        file.set_len(8).unwrap();
        file.sync_data(false).unwrap();
        disk.power_loss();
        let file = disk.open().unwrap();
        assert_eq!(file.read(0, 8).unwrap(), [7, 7, 0, 0, 0, 0, 0, 0]);
        assert!(file.read(4, 8).is_err(), "past the end");
    }
}
