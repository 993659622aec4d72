//! A Raft replica's storage: its log, vote and state machine in one redb file, and its
//! snapshots in files beside it.
//!
//! - Every write to the file is one redb transaction. A vote, an append, a purge or a snapshot
//!   install is committed with an fsync (`Durability::Immediate`, redb's default) before
//!   openraft is told so; an applied batch is committed without one, and becomes durable with
//!   the next of those (redb commits in order), so the leader pays one fsync per batch.
//! - The state machine is the `kv` table itself; a snapshot is built from a read transaction
//!   (a consistent view while applies go on) into a file of length-prefixed keys and values,
//!   and installed by replacing the table in one transaction. Neither holds the whole map in
//!   memory.

use std::fmt::Debug;
use std::io::{BufReader, BufWriter, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use redb::{Database, ReadableTable, TableDefinition, TableHandle as _};
use serde::Serialize;
use serde::de::DeserializeOwned;
use troupe_store::{StoreError, StoreFault};

use super::{Applied, Proposal, TypeConfig};
use crate::core::Op;
use crate::msg::WriteOutcome;

/// Log index → the entry (MessagePack)
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Key → value: the state machine
const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("raft_kv");
/// The vote, the last purged log id, the last applied log id, the membership and the current
/// snapshot's meta (MessagePack)
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

const VOTE: &str = "vote";
const PURGED: &str = "purged";
const APPLIED: &str = "applied";
const MEMBERSHIP: &str = "membership";
const SNAPSHOT: &str = "snapshot";

/// The current snapshot's file name in the snapshot directory.
const CURRENT: &str = "current.snap";

type Result<T> = std::result::Result<T, StorageError<u64>>;

/// One replica's storage: open it with [`RaftStore::open`], then hand its
/// [`log_store`](Self::log_store) and [`state_machine`](Self::state_machine) to openraft;
/// [`get`](Self::get) and [`scan`](Self::scan) read the applied state directly.
#[derive(Clone, Debug)]
pub struct RaftStore {
    db: Arc<Database>,
    snapshots: PathBuf,
    /// The last write that failed, typed as callers get it (openraft keeps only its text)
    fault: Arc<std::sync::Mutex<Option<StoreFault>>>,
    /// The snapshot being received, by the inode of its file, to the file's path: each stream
    /// writes a file of its own, so a stream started again (after a leader change or a
    /// timeout) never writes into one still open for the last; starting one removes the
    /// last's, so it holds one entry at most
    receiving: Arc<std::sync::Mutex<std::collections::HashMap<u64, PathBuf>>>,
}

impl RaftStore {
    /// Opens (or creates) the replica's file at `path` and its snapshot directory
    /// `snapshots`, waiting while a crashed predecessor's handle still holds the file.
    ///
    /// # Errors
    /// As [`troupe_store::create_when_released`], or if the snapshot directory cannot be made.
    ///
    /// # Cancel safety
    /// Cancelling it leaves nothing open.
    pub async fn open(path: &Path, snapshots: &Path) -> std::result::Result<Self, StoreError> {
        let db = troupe_store::create_when_released(path, troupe_store::Reopen::default()).await?;
        std::fs::create_dir_all(snapshots).map_err(|source| StoreError::CreateDir {
            path: snapshots.to_path_buf(),
            source,
        })?;
        // what a crash left half received
        if let Ok(entries) = std::fs::read_dir(snapshots) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("receiving-")
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        // only a fresh file is written to here: reopening needs no free space
        if !troupe_store::has_tables(&db, &[LOG.name(), KV.name(), META.name()])? {
            let txn = db.begin_write()?;
            {
                txn.open_table(LOG)?;
                txn.open_table(KV)?;
                txn.open_table(META)?;
            }
            txn.commit()?;
        }
        Ok(Self {
            db: Arc::new(db),
            snapshots: snapshots.to_path_buf(),
            fault: Arc::default(),
            receiving: Arc::default(),
        })
    }

    /// The log and vote, for openraft.
    pub fn log_store(&self) -> LogStore {
        LogStore(self.clone())
    }

    /// The state machine and snapshots, for openraft.
    pub fn state_machine(&self) -> StateMachine {
        StateMachine(self.clone())
    }

    /// Whether nothing was ever written: no vote, no log entry, nothing applied.
    ///
    /// # Errors
    /// If the file cannot be read.
    pub fn is_fresh(&self) -> std::result::Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let log = txn.open_table(LOG)?;
        Ok(meta.get(VOTE)?.is_none() && log.last()?.is_none() && meta.get(APPLIED)?.is_none())
    }

    /// The applied value of `key`.
    ///
    /// # Errors
    /// If the file cannot be read.
    pub fn get(&self, key: &[u8]) -> std::result::Result<Option<bytes::Bytes>, StoreError> {
        let txn = self.db.begin_read()?;
        let kv = txn.open_table(KV)?;
        Ok(kv
            .get(key)?
            .map(|v| bytes::Bytes::copy_from_slice(v.value())))
    }

    /// Up to `limit` applied keys starting with `prefix`, in key order.
    ///
    /// # Errors
    /// If the file cannot be read.
    pub fn scan(
        &self,
        prefix: &[u8],
        limit: usize,
    ) -> std::result::Result<Vec<(bytes::Bytes, bytes::Bytes)>, StoreError> {
        let txn = self.db.begin_read()?;
        let kv = txn.open_table(KV)?;
        let mut out = Vec::new();
        for item in kv.range::<&[u8]>(prefix..)? {
            let (k, v) = item?;
            if !k.value().starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((
                bytes::Bytes::copy_from_slice(k.value()),
                bytes::Bytes::copy_from_slice(v.value()),
            ));
        }
        Ok(out)
    }

    /// The last write that failed since [`clear_fault`](Self::clear_fault), if one did.
    pub fn last_fault(&self) -> Option<StoreFault> {
        self.fault.lock().ok().and_then(|f| f.clone())
    }

    /// Forgets the last failed write (the file was reopened).
    pub fn clear_fault(&self) {
        if let Ok(mut fault) = self.fault.lock() {
            *fault = None;
        }
    }

    /// Notes `err` as the last failed write, and passes it on.
    fn failed(&self, err: StoreError) -> StoreError {
        if let Ok(mut fault) = self.fault.lock() {
            *fault = Some(StoreFault::from(&err));
        }
        err
    }

    fn meta<T: DeserializeOwned>(&self, key: &str) -> std::result::Result<Option<T>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        meta.get(key)?.map(|v| decode(v.value(), key)).transpose()
    }

    fn current_snapshot_path(&self) -> PathBuf {
        self.snapshots.join(CURRENT)
    }
}

fn encode<T: Serialize>(value: &T) -> std::result::Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec(value).map_err(|e| StoreError::corrupt("an entry to write", e))
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> std::result::Result<T, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|e| StoreError::corrupt(what, e))
}

/// The log and the vote.
#[derive(Clone, Debug)]
pub struct LogStore(RaftStore);

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>> {
        let read = || -> std::result::Result<Vec<Entry<TypeConfig>>, StoreError> {
            let txn = self.0.db.begin_read()?;
            let log = txn.open_table(LOG)?;
            let mut out = Vec::new();
            for item in log.range(range)? {
                let (index, bytes) = item?;
                out.push(decode(
                    bytes.value(),
                    &format!("log entry {}", index.value()),
                )?);
            }
            Ok(out)
        };
        read().map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>> {
        let read = || -> std::result::Result<LogState<TypeConfig>, StoreError> {
            let purged: Option<LogId<u64>> = self.0.meta(PURGED)?;
            let txn = self.0.db.begin_read()?;
            let log = txn.open_table(LOG)?;
            let last = match log.last()? {
                Some((index, bytes)) => {
                    let entry: Entry<TypeConfig> =
                        decode(bytes.value(), &format!("log entry {}", index.value()))?;
                    Some(entry.log_id)
                }
                None => purged,
            };
            Ok(LogState {
                last_purged_log_id: purged,
                last_log_id: last,
            })
        };
        read().map_err(|e| StorageIOError::read_logs(&e).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<()> {
        let write = || -> std::result::Result<(), StoreError> {
            let txn = self.0.db.begin_write()?;
            txn.open_table(META)?
                .insert(VOTE, encode(vote)?.as_slice())?;
            txn.commit()?;
            Ok(())
        };
        write().map_err(|e| StorageIOError::write_vote(&self.0.failed(e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>> {
        self.0
            .meta(VOTE)
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write = || -> std::result::Result<(), StoreError> {
            let txn = self.0.db.begin_write()?;
            {
                let mut log = txn.open_table(LOG)?;
                for entry in entries {
                    log.insert(entry.log_id.index, encode(&entry)?.as_slice())?;
                }
            }
            // redb's default durability: fsynced before the commit returns
            txn.commit()?;
            Ok(())
        };
        match write() {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(err) => {
                let err = self.0.failed(err);
                callback.log_io_completed(Err(std::io::Error::other(err.to_string())));
                Err(StorageIOError::write_logs(&err).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<()> {
        let write = || -> std::result::Result<(), StoreError> {
            let txn = self.0.db.begin_write()?;
            {
                let mut log = txn.open_table(LOG)?;
                log.retain_in(log_id.index.., |_, _| false)?;
            }
            txn.commit()?;
            Ok(())
        };
        write().map_err(|e| StorageIOError::write_logs(&self.0.failed(e)).into())
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<()> {
        let write = || -> std::result::Result<(), StoreError> {
            let txn = self.0.db.begin_write()?;
            {
                txn.open_table(META)?
                    .insert(PURGED, encode(&log_id)?.as_slice())?;
                let mut log = txn.open_table(LOG)?;
                log.retain_in(..=log_id.index, |_, _| false)?;
            }
            txn.commit()?;
            Ok(())
        };
        write().map_err(|e| StorageIOError::write_logs(&self.0.failed(e)).into())
    }
}

/// The state machine (the `kv` table) and its snapshots.
#[derive(Clone, Debug)]
pub struct StateMachine(RaftStore);

/// Applies one operation to the table, as the single-leader mode's state machine does.
fn apply_op(
    kv: &mut redb::Table<'_, &[u8], &[u8]>,
    op: &Op,
) -> std::result::Result<WriteOutcome, StoreError> {
    let copy = |v: redb::AccessGuard<'_, &[u8]>| bytes::Bytes::copy_from_slice(v.value());
    Ok(match op {
        Op::Put { key, value } => WriteOutcome::Put {
            previous: kv.insert(key.as_ref(), value.as_ref())?.map(copy),
        },
        Op::Delete { key } => WriteOutcome::Deleted {
            previous: kv.remove(key.as_ref())?.map(copy),
        },
        Op::Cas { key, expected, new } => {
            let actual = kv.get(key.as_ref())?.map(copy);
            if actual == *expected {
                match new {
                    Some(value) => {
                        kv.insert(key.as_ref(), value.as_ref())?;
                    }
                    None => {
                        kv.remove(key.as_ref())?;
                    }
                }
                WriteOutcome::Swapped
            } else {
                WriteOutcome::CasFailed { actual }
            }
        }
        Op::Noop => WriteOutcome::Swapped,
    })
}

/// Writes every key and value of `kv` to `out`, each length-prefixed (u32, big-endian).
fn write_records(
    kv: &impl ReadableTable<&'static [u8], &'static [u8]>,
    out: &mut impl Write,
) -> std::result::Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::corrupt("the snapshot file being written", e);
    for item in kv.iter()? {
        let (k, v) = item?;
        for part in [k.value(), v.value()] {
            let len = u32::try_from(part.len())
                .map_err(|e| StoreError::corrupt("a key or value over 4 GiB", e))?;
            out.write_all(&len.to_be_bytes()).map_err(io)?;
            out.write_all(part).map_err(io)?;
        }
    }
    Ok(())
}

/// The next length-prefixed part of a snapshot file, `None` at its end.
fn read_part(input: &mut impl Read) -> std::result::Result<Option<Vec<u8>>, StoreError> {
    let io = |e: std::io::Error| StoreError::corrupt("a received snapshot", e);
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io(e)),
    }
    let mut part = vec![0u8; u32::from_be_bytes(len) as usize];
    input.read_exact(&mut part).map_err(io)?;
    Ok(Some(part))
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>> {
        let store = self.0.clone();
        let built = tokio::task::spawn_blocking(move || -> std::result::Result<_, StoreError> {
            // one read transaction: the applied id, membership and map agree
            let txn = store.db.begin_read()?;
            let meta_table = txn.open_table(META)?;
            let get = |key: &str| -> std::result::Result<Option<Vec<u8>>, StoreError> {
                Ok(meta_table.get(key)?.map(|v| v.value().to_vec()))
            };
            let applied: Option<LogId<u64>> =
                get(APPLIED)?.map(|b| decode(&b, APPLIED)).transpose()?;
            let membership: StoredMembership<u64, openraft::EmptyNode> = get(MEMBERSHIP)?
                .map(|b| decode(&b, MEMBERSHIP))
                .transpose()?
                .unwrap_or_default();
            let id = match applied {
                Some(id) => format!("{}-{}", id.leader_id.term, id.index),
                None => "empty".to_string(),
            };
            let meta = SnapshotMeta {
                last_log_id: applied,
                last_membership: membership,
                snapshot_id: id,
            };
            let building = store.snapshots.join("building.snap");
            let io = |e: std::io::Error| StoreError::corrupt("the snapshot file being written", e);
            let file = std::fs::File::create(&building).map_err(io)?;
            let mut out = BufWriter::new(file);
            write_records(&txn.open_table(KV)?, &mut out)?;
            let file = out.into_inner().map_err(|e| io(e.into_error()))?;
            file.sync_all().map_err(io)?;
            std::fs::rename(&building, store.current_snapshot_path()).map_err(io)?;
            let write = store.db.begin_write()?;
            write
                .open_table(META)?
                .insert(SNAPSHOT, encode(&meta)?.as_slice())?;
            write.commit()?;
            Ok(meta)
        })
        .await;
        let meta = match built {
            Ok(Ok(meta)) => meta,
            Ok(Err(e)) => {
                return Err(StorageIOError::write_snapshot(None, &self.0.failed(e)).into());
            }
            Err(e) => return Err(StorageIOError::write_snapshot(None, &e).into()),
        };
        let file = tokio::fs::File::open(self.0.current_snapshot_path())
            .await
            .map_err(|e| StorageError::from(StorageIOError::read_snapshot(None, &e)))?;
        tracing::info!(snapshot = %meta.snapshot_id, "built a snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(
        Option<LogId<u64>>,
        StoredMembership<u64, openraft::EmptyNode>,
    )> {
        let read = || -> std::result::Result<_, StoreError> {
            let applied = self.0.meta(APPLIED)?;
            let membership = self.0.meta(MEMBERSHIP)?.unwrap_or_default();
            Ok((applied, membership))
        };
        read().map_err(|e| StorageIOError::read_state_machine(&e).into())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write = || -> std::result::Result<Vec<Applied>, StoreError> {
            let mut txn = self.0.db.begin_write()?;
            // No fsync of its own: the next durable commit to this file (a log append, a vote,
            // a purge) makes it durable with it, as redb commits in order. Until then a crash
            // leaves the state machine behind its committed log, which openraft applies again;
            // a purge, durable, never runs ahead of the applies it covers.
            txn.set_durability(redb::Durability::None);
            let mut answers = Vec::new();
            {
                let mut kv = txn.open_table(KV)?;
                let mut meta = txn.open_table(META)?;
                let mut last = None;
                for entry in entries {
                    last = Some(entry.log_id);
                    let answer = match &entry.payload {
                        EntryPayload::Blank => Vec::new(),
                        EntryPayload::Normal(Proposal(ops)) => ops
                            .iter()
                            .map(|op| apply_op(&mut kv, op))
                            .collect::<std::result::Result<_, _>>()?,
                        EntryPayload::Membership(membership) => {
                            let stored =
                                StoredMembership::new(Some(entry.log_id), membership.clone());
                            meta.insert(MEMBERSHIP, encode(&stored)?.as_slice())?;
                            Vec::new()
                        }
                    };
                    answers.push(Applied(answer));
                }
                if let Some(last) = last {
                    meta.insert(APPLIED, encode(&last)?.as_slice())?;
                }
            }
            txn.commit()?;
            Ok(answers)
        };
        write().map_err(|e| StorageIOError::write_state_machine(&self.0.failed(e)).into())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>> {
        use std::os::unix::fs::MetadataExt as _;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.0.snapshots.join(format!("receiving-{n}.snap"));
        let opened = async {
            let file = tokio::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .await?;
            let inode = file.metadata().await?.ino();
            Ok::<_, std::io::Error>((file, inode))
        };
        let (file, inode) = opened
            .await
            .map_err(|e| StorageError::from(StorageIOError::write_snapshot(None, &e)))?;
        if let Ok(mut receiving) = self.0.receiving.lock() {
            // openraft receives one stream at a time: an earlier one is one it gave up on
            for (_, abandoned) in receiving.drain() {
                let _ = std::fs::remove_file(abandoned);
            }
            receiving.insert(inode, path);
        }
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::EmptyNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<()> {
        let signature = Some(meta.signature());
        let file = snapshot.into_std().await;
        let store = self.0.clone();
        let meta = meta.clone();
        let installed =
            tokio::task::spawn_blocking(move || -> std::result::Result<(), StoreError> {
                let io = |e: std::io::Error| StoreError::corrupt("a received snapshot", e);
                use std::os::unix::fs::MetadataExt as _;
                file.sync_all().map_err(io)?;
                let inode = file.metadata().map_err(io)?.ino();
                let received = store
                    .receiving
                    .lock()
                    .ok()
                    .and_then(|mut r| r.remove(&inode))
                    .ok_or_else(|| {
                        StoreError::corrupt("a received snapshot", "not a file this replica opened")
                    })?;
                std::fs::rename(&received, store.current_snapshot_path()).map_err(io)?;
                let mut input =
                    BufReader::new(std::fs::File::open(store.current_snapshot_path()).map_err(io)?);
                let txn = store.db.begin_write()?;
                {
                    let mut kv = txn.open_table(KV)?;
                    kv.retain(|_, _| false)?;
                    while let Some(key) = read_part(&mut input)? {
                        let Some(value) = read_part(&mut input)? else {
                            return Err(StoreError::corrupt(
                                "a received snapshot",
                                "it ends between a key and its value",
                            ));
                        };
                        kv.insert(key.as_slice(), value.as_slice())?;
                    }
                    let mut meta_table = txn.open_table(META)?;
                    if let Some(applied) = &meta.last_log_id {
                        meta_table.insert(APPLIED, encode(applied)?.as_slice())?;
                    }
                    meta_table.insert(MEMBERSHIP, encode(&meta.last_membership)?.as_slice())?;
                    meta_table.insert(SNAPSHOT, encode(&meta)?.as_slice())?;
                }
                txn.commit()?;
                Ok(())
            })
            .await;
        match installed {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StorageIOError::write_snapshot(signature, &self.0.failed(e)).into()),
            Err(e) => Err(StorageIOError::write_snapshot(signature, &e).into()),
        }
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>> {
        let meta: Option<SnapshotMeta<u64, openraft::EmptyNode>> = self
            .0
            .meta(SNAPSHOT)
            .map_err(|e| StorageError::from(StorageIOError::read_snapshot(None, &e)))?;
        let Some(meta) = meta else {
            return Ok(None);
        };
        match tokio::fs::File::open(self.0.current_snapshot_path()).await {
            Ok(file) => Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(file),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageIOError::read_snapshot(Some(meta.signature()), &e).into()),
        }
    }
}
