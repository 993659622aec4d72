//! [`ReplicaStore`]: one replica's log, applied key-value map and epoch in a redb file
//!
//! Three tables:
//!
//! - `log`: entries by index (`epoch` and the [`Op`], MessagePack), from the log's base + 1 to
//!   its last index;
//! - `kv`: the applied key-value map;
//! - `meta`: the newest epoch seen, the epoch this replica last led (0: never), the applied
//!   index and epoch, and the log's base (the index and epoch a snapshot covers).
//!
//! A [`Batch`] carries one step's changes and [`ReplicaStore::commit`] writes it in one
//! transaction, so the file always holds a consistent replica: a crash loses a whole batch or
//! nothing. With [`Flush::Durable`] the batch is on disk when `commit` returns (redb's
//! `Durability::Immediate`); [`Flush::Lazy`] skips the fsync, for changes that can be rebuilt
//! from the durable log (applied entries), and becomes durable with the next durable commit.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use redb::{Database, Durability, ReadableTable, TableDefinition, TableHandle};
use troupe_store::Reopen;
pub use troupe_store::StoreError;

use crate::core::{Entry, Log, Op, StateMachine};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const EPOCH: &str = "epoch";
const LED_EPOCH: &str = "led_epoch";
const FENCED_EPOCH: &str = "fenced_epoch";
/// The coordinator of the fence at `fenced_epoch`, plus one (0: none kept)
const FENCED_BY: &str = "fenced_by";
const APPLIED_INDEX: &str = "applied_index";
const APPLIED_EPOCH: &str = "applied_epoch";
const BASE_INDEX: &str = "base_index";
const BASE_EPOCH: &str = "base_epoch";

/// How far [`ReplicaStore::commit`] goes before returning
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// On disk (fsync) when `commit` returns
    Durable,
    /// Written without an fsync: a crash may lose it (and every lazy batch after the last
    /// durable one), never half of it
    Lazy,
}

/// A snapshot replacing the whole applied map
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotWrite {
    /// The map
    pub map: BTreeMap<Bytes, Bytes>,
}

/// One step's changes to a replica's file, written atomically by [`ReplicaStore::commit`]
///
/// Applied in this order: snapshot, log rows, log bounds, key-value changes, meta.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Newest epoch seen
    pub epoch: Option<u64>,
    /// The epoch this replica now leads (`Some(0)`: it stepped down)
    pub led_epoch: Option<u64>,
    /// The epoch a promotion fenced this replica at, no leader of it heard since (`Some(0)`:
    /// it heard one)
    pub fenced_epoch: Option<u64>,
    /// The coordinator that fenced it at `fenced_epoch` (`Some(None)`: none)
    pub fenced_by: Option<Option<u64>>,
    /// Replace the applied map wholesale
    pub snapshot: Option<SnapshotWrite>,
    /// Log entries to write (replacing rows at the same index)
    pub log: Vec<Entry>,
    /// Remove log rows above this index (the log's new last index)
    pub log_last: Option<u64>,
    /// The log's new base `(index, epoch)`: rows at or below it are removed
    pub log_base: Option<(u64, u64)>,
    /// Key-value changes of applied entries, in apply order (`None`: remove)
    pub kv: Vec<(Bytes, Option<Bytes>)>,
    /// The applied `(index, epoch)` after `kv`
    pub applied: Option<(u64, u64)>,
}

impl Batch {
    /// Whether the batch changes nothing
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Stage entries `from..=to` of `log` to be written, with the log's end (rows past it are
    /// removed); nothing when the range is empty
    pub fn stage_log(&mut self, log: &Log, from: u64, to: u64) {
        if from > to {
            return;
        }
        self.log
            .extend((from..=to).filter_map(|i| log.get(i).cloned()));
        self.log_last = Some(log.last_index());
    }

    /// Add the key-value change applying `op` made, given whether it took effect (a failed
    /// compare-and-set changes nothing)
    pub fn record_apply(&mut self, op: &Op, took_effect: bool) {
        if !took_effect {
            return;
        }
        match op {
            Op::Put { key, value } => self.kv.push((key.clone(), Some(value.clone()))),
            Op::Delete { key } => self.kv.push((key.clone(), None)),
            Op::Cas { key, new, .. } => self.kv.push((key.clone(), new.clone())),
            Op::Noop => {}
        }
    }
}

/// What [`ReplicaStore::open`] found in the file
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Newest epoch seen
    pub epoch: u64,
    /// The epoch this replica last led, 0 if none (or it stepped down since)
    pub led_epoch: u64,
    /// The epoch it was fenced at with no leader of it heard since, 0 if none (files from
    /// before this was kept read 0)
    pub fenced_epoch: u64,
    /// The coordinator that fenced it at `fenced_epoch`, if the file kept it
    pub fenced_by: Option<u64>,
    /// The log, from its base
    pub log: Log,
    /// The applied map
    pub state: StateMachine,
}

impl Loaded {
    /// Whether the file held nothing yet: no entry, no epoch
    pub fn is_fresh(&self) -> bool {
        self.epoch == 0 && self.log.last_index() == 0
    }
}

/// One replica's durable state; see the [module docs](self)
pub struct ReplicaStore {
    db: Database,
}

impl std::fmt::Debug for ReplicaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaStore").finish_non_exhaustive()
    }
}

fn encode_entry(entry: &Entry) -> Vec<u8> {
    // Why this cannot fail: rmp-serde writes plain enums of byte strings into a Vec.
    rmp_serde::to_vec(&(entry.epoch, &entry.op)).unwrap_or_default()
}

fn decode_entry(index: u64, bytes: &[u8]) -> Result<Entry, StoreError> {
    let (epoch, op): (u64, Op) = rmp_serde::from_slice(bytes)
        .map_err(|e| StoreError::corrupt(format!("log entry {index}"), e))?;
    Ok(Entry { index, epoch, op })
}

impl ReplicaStore {
    /// Opens (or creates, with its directory) the file at `path` and reads the replica it
    /// holds
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the file cannot be opened or read, or its log, map and meta do not
    /// fit together.
    pub fn open(path: &Path) -> Result<(Self, Loaded), StoreError> {
        Self::load_from(troupe_store::create(path)?)
    }

    /// As [`open`](Self::open), but while another handle still holds the file (a crashed
    /// predecessor's, on its way out), tries again on tokio's clock within `reopen`'s bounds
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open); [`StoreError::Held`] if the file is still held after the
    /// bounds.
    ///
    /// # Cancel safety
    ///
    /// Cancelling while it waits leaves the file closed; reading it does not yield.
    pub async fn open_when_released(
        path: &Path,
        reopen: Reopen,
    ) -> Result<(Self, Loaded), StoreError> {
        Self::load_from(troupe_store::create_when_released(path, reopen).await?)
    }

    fn load_from(db: Database) -> Result<(Self, Loaded), StoreError> {
        // Only a fresh file is written to here: reopening needs no free space.
        if !troupe_store::has_tables(&db, &[LOG.name(), KV.name(), META.name()])? {
            let txn = db.begin_write()?;
            {
                // Create the tables so reads of a fresh file find them.
                txn.open_table(LOG)?;
                txn.open_table(KV)?;
                txn.open_table(META)?;
            }
            txn.commit()?;
        }
        let store = Self { db };
        let loaded = store.load()?;
        Ok((store, loaded))
    }

    fn load(&self) -> Result<Loaded, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let get = |key: &str| -> Result<u64, StoreError> {
            Ok(meta.get(key)?.map(|v| v.value()).unwrap_or(0))
        };
        let epoch = get(EPOCH)?;
        let led_epoch = get(LED_EPOCH)?;
        let fenced_epoch = get(FENCED_EPOCH)?;
        let fenced_by = get(FENCED_BY)?.checked_sub(1);
        let applied = (get(APPLIED_INDEX)?, get(APPLIED_EPOCH)?);
        let base = (get(BASE_INDEX)?, get(BASE_EPOCH)?);
        let mut log = Log::with_base(base.0, base.1);
        let rows = txn.open_table(LOG)?;
        let mut entries = Vec::new();
        for row in rows.iter()? {
            let (index, bytes) = row?;
            entries.push(decode_entry(index.value(), bytes.value())?);
        }
        log.append(entries)
            .map_err(|e| StoreError::corrupt("log rows", e))?;
        let kv = txn.open_table(KV)?;
        let mut map = BTreeMap::new();
        for row in kv.iter()? {
            let (k, v) = row?;
            map.insert(
                Bytes::copy_from_slice(k.value()),
                Bytes::copy_from_slice(v.value()),
            );
        }
        if applied.0 < base.0 || applied.0 > log.last_index() {
            return Err(StoreError::corrupt(
                "meta",
                format!(
                    "applied index {} outside the log ({}..={})",
                    applied.0,
                    base.0,
                    log.last_index()
                ),
            ));
        }
        let state = StateMachine::from_snapshot(map, applied.0, applied.1);
        Ok(Loaded {
            epoch,
            led_epoch,
            fenced_epoch,
            fenced_by,
            log,
            state,
        })
    }

    /// Writes `batch` in one transaction
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] if the write failed; the file then holds none of `batch`.
    pub fn commit(&mut self, batch: &Batch, flush: Flush) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(match flush {
            Flush::Durable => Durability::Immediate,
            Flush::Lazy => Durability::None,
        });
        {
            let mut kv = txn.open_table(KV)?;
            if let Some(snapshot) = &batch.snapshot {
                kv.retain(|_, _| false)?;
                for (k, v) in &snapshot.map {
                    kv.insert(k.as_ref(), v.as_ref())?;
                }
            }
            let mut log = txn.open_table(LOG)?;
            for entry in &batch.log {
                log.insert(entry.index, encode_entry(entry).as_slice())?;
            }
            if let Some(last) = batch.log_last {
                log.retain_in(last.saturating_add(1).., |_, _| false)?;
            }
            let mut meta = txn.open_table(META)?;
            if let Some((index, epoch)) = batch.log_base {
                log.retain_in(..=index, |_, _| false)?;
                meta.insert(BASE_INDEX, index)?;
                meta.insert(BASE_EPOCH, epoch)?;
            }
            for (k, v) in &batch.kv {
                match v {
                    Some(v) => kv.insert(k.as_ref(), v.as_ref())?,
                    None => kv.remove(k.as_ref())?,
                };
            }
            if let Some((index, epoch)) = batch.applied {
                meta.insert(APPLIED_INDEX, index)?;
                meta.insert(APPLIED_EPOCH, epoch)?;
            }
            if let Some(epoch) = batch.epoch {
                meta.insert(EPOCH, epoch)?;
            }
            if let Some(led) = batch.led_epoch {
                meta.insert(LED_EPOCH, led)?;
            }
            if let Some(fenced) = batch.fenced_epoch {
                meta.insert(FENCED_EPOCH, fenced)?;
            }
            if let Some(by) = batch.fenced_by {
                meta.insert(FENCED_BY, by.map_or(0, |id| id.saturating_add(1)))?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(index: u64, epoch: u64, key: &str, value: &str) -> Entry {
        Entry {
            index,
            epoch,
            op: Op::Put {
                key: Bytes::copy_from_slice(key.as_bytes()),
                value: Bytes::copy_from_slice(value.as_bytes()),
            },
        }
    }

    fn reopen(path: &Path, store: ReplicaStore) -> (ReplicaStore, Loaded) {
        drop(store);
        ReplicaStore::open(path).unwrap()
    }

    #[test]
    fn a_fresh_file_is_empty_and_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let (_, loaded) = ReplicaStore::open(&dir.path().join("r.redb")).unwrap();
        assert!(loaded.is_fresh());
        assert_eq!(loaded.state, StateMachine::new());
    }

    #[test]
    fn log_kv_and_meta_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.redb");
        let (mut store, _) = ReplicaStore::open(&path).unwrap();
        let entries = vec![
            put(1, 1, "a", "1"),
            put(2, 1, "b", "2"),
            put(3, 1, "a", "3"),
        ];
        let mut batch = Batch {
            epoch: Some(1),
            led_epoch: Some(1),
            fenced_epoch: Some(1),
            log: entries.clone(),
            log_last: Some(3),
            ..Batch::default()
        };
        for e in &entries[..2] {
            batch.record_apply(&e.op, true);
        }
        batch.applied = Some((2, 1));
        store.commit(&batch, Flush::Durable).unwrap();
        let (_, loaded) = reopen(&path, store);
        assert_eq!((loaded.epoch, loaded.led_epoch), (1, 1));
        assert_eq!(loaded.fenced_epoch, 1);
        assert_eq!(loaded.log.last_index(), 3);
        assert_eq!(loaded.log.get(3), Some(&entries[2]));
        assert_eq!(loaded.state.applied_index(), 2);
        assert_eq!(loaded.state.get(b"a"), Some(&Bytes::from("1")));
        assert_eq!(loaded.state.get(b"b"), Some(&Bytes::from("2")));
    }

    #[test]
    fn suffix_truncation_and_compaction_move_the_log_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.redb");
        let (mut store, _) = ReplicaStore::open(&path).unwrap();
        let entries: Vec<Entry> = (1..=6).map(|i| put(i, 1, "k", &i.to_string())).collect();
        store
            .commit(
                &Batch {
                    log: entries.clone(),
                    log_last: Some(6),
                    ..Batch::default()
                },
                Flush::Durable,
            )
            .unwrap();
        // A new leader's entry replaces index 5; 6 goes.
        let replacement = put(5, 2, "k", "new");
        let mut batch = Batch {
            epoch: Some(2),
            log: vec![replacement.clone()],
            log_last: Some(5),
            applied: Some((3, 1)),
            ..Batch::default()
        };
        for e in &entries[..3] {
            batch.record_apply(&e.op, true);
        }
        store.commit(&batch, Flush::Durable).unwrap();
        store
            .commit(
                &Batch {
                    log_base: Some((2, 1)),
                    ..Batch::default()
                },
                Flush::Lazy,
            )
            .unwrap();
        let (_, loaded) = reopen(&path, store);
        assert_eq!(loaded.log.base(), (2, 1));
        assert_eq!(loaded.log.first_index(), 3);
        assert_eq!(loaded.log.last_index(), 5);
        assert_eq!(loaded.log.get(5), Some(&replacement));
        assert_eq!(loaded.state.get(b"k"), Some(&Bytes::from("3")));
    }

    #[test]
    fn a_snapshot_replaces_the_whole_map() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.redb");
        let (mut store, _) = ReplicaStore::open(&path).unwrap();
        let mut first = Batch {
            log: vec![put(1, 1, "old", "x")],
            log_last: Some(1),
            applied: Some((1, 1)),
            ..Batch::default()
        };
        first.record_apply(&first.log[0].op.clone(), true);
        store.commit(&first, Flush::Durable).unwrap();
        let map = BTreeMap::from([(Bytes::from("new"), Bytes::from("y"))]);
        store
            .commit(
                &Batch {
                    epoch: Some(3),
                    snapshot: Some(SnapshotWrite { map: map.clone() }),
                    log_last: Some(10),
                    log_base: Some((10, 2)),
                    applied: Some((10, 2)),
                    ..Batch::default()
                },
                Flush::Durable,
            )
            .unwrap();
        let (_, loaded) = reopen(&path, store);
        assert_eq!(loaded.state.map(), &map);
        assert_eq!(loaded.state.applied_index(), 10);
        assert_eq!(loaded.log.base(), (10, 2));
        assert_eq!(loaded.log.last_index(), 10);
        assert_eq!(loaded.epoch, 3);
    }

    #[test]
    fn a_failed_compare_and_set_records_no_change() {
        let mut batch = Batch::default();
        let op = Op::Cas {
            key: Bytes::from("k"),
            expected: None,
            new: Some(Bytes::from("v")),
        };
        batch.record_apply(&op, false);
        assert!(batch.is_empty());
        batch.record_apply(&op, true);
        assert_eq!(batch.kv, vec![(Bytes::from("k"), Some(Bytes::from("v")))]);
    }

    #[test]
    fn an_applied_index_outside_the_log_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.redb");
        let (mut store, _) = ReplicaStore::open(&path).unwrap();
        store
            .commit(
                &Batch {
                    applied: Some((5, 1)),
                    ..Batch::default()
                },
                Flush::Durable,
            )
            .unwrap();
        drop(store);
        let err = ReplicaStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }
}
