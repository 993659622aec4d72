//! [`Storage`]: the durable contents of one queue in a redb file
//!
//! One table holds every item not yet acked or dropped, keyed by id: its place (line position,
//! or dead-letter order), deliveries so far, whether it is ready, leased or dead, the reason of
//! its last failure, and its payload. A second table holds the next id and the next place, so
//! ids are never reused. [`Storage::commit`] writes one call's [`QueueEvent`]s in one write
//! transaction with [`Durability::Immediate`]: when it returns, the change survives a crash of
//! the process or the machine.
//!
//! [`Storage::open`] rebuilds a [`Queue`] from the file: leases do not survive (their holders
//! may be gone), so a leased item is ready again with reason [`FailReason::Restarted`], or a
//! dead letter if that was its last attempt: at least once delivery. Acked items were removed
//! before the ack was answered and never come back. Running totals are not stored: they count
//! from the last open.

use std::path::Path;

use bytes::Bytes;
use redb::{Database, Durability, ReadableTable, TableDefinition, TableHandle};
use troupe_store::Reopen;
pub use troupe_store::StoreError;

use crate::core::{
    DeadLetter, FailReason, ItemId, Queue, QueueConfig, QueueEvent, QueueSnapshot, SnapshotItem,
};

/// Items by id: see [`Record`]
const ITEMS: TableDefinition<u64, &[u8]> = TableDefinition::new("items");

/// `next_id` and `next_place`
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const NEXT_ID: &str = "next_id";
const NEXT_PLACE: &str = "next_place";

/// Where an item is
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready = 0,
    Leased = 1,
    Dead = 2,
}

/// One stored item: `place: u64 | attempts: u32 | state: u8 | reason | payload` (little endian)
///
/// `reason` is a tag byte (0 none, 1 nacked, 2 nacked with text, 3 expired, 4 consumer down,
/// 5 restarted); tag 2 is followed by `len: u32` and that many bytes of UTF-8.
#[derive(Debug, Clone)]
struct Record {
    /// Line position when ready or leased; dead-letter order when dead
    place: u64,
    attempts: u32,
    state: State,
    reason: Option<FailReason>,
    payload: Bytes,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload.len() + 32);
        out.extend_from_slice(&self.place.to_le_bytes());
        out.extend_from_slice(&self.attempts.to_le_bytes());
        out.push(self.state as u8);
        match &self.reason {
            None => out.push(0),
            Some(FailReason::Nacked { error: None }) => out.push(1),
            Some(FailReason::Nacked { error: Some(text) }) => {
                out.push(2);
                // Why no overflow: nack texts are cut to MAX_ERROR_LEN bytes by the queue.
                let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&text.as_bytes()[..len as usize]);
            }
            Some(FailReason::Expired) => out.push(3),
            Some(FailReason::ConsumerDown) => out.push(4),
            Some(FailReason::Restarted) => out.push(5),
        }
        out.extend_from_slice(&self.payload);
        out
    }

    fn decode(id: u64, bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |why: &'static str| StoreError::corrupt(format!("item {id}"), why);
        let mut rest = bytes;
        let mut take = |n: usize| -> Result<&[u8], StoreError> {
            if rest.len() < n {
                return Err(corrupt("record cut short"));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let place = u64::from_le_bytes(take(8)?.try_into().map_err(|_| corrupt("place"))?);
        let attempts = u32::from_le_bytes(take(4)?.try_into().map_err(|_| corrupt("attempts"))?);
        let state = match take(1)?[0] {
            0 => State::Ready,
            1 => State::Leased,
            2 => State::Dead,
            _ => return Err(corrupt("unknown state")),
        };
        let reason = match take(1)?[0] {
            0 => None,
            1 => Some(FailReason::Nacked { error: None }),
            2 => {
                let len = u32::from_le_bytes(take(4)?.try_into().map_err(|_| corrupt("len"))?);
                let text = std::str::from_utf8(take(len as usize)?)
                    .map_err(|_| corrupt("error text is not UTF-8"))?;
                Some(FailReason::Nacked {
                    error: Some(text.to_string()),
                })
            }
            3 => Some(FailReason::Expired),
            4 => Some(FailReason::ConsumerDown),
            5 => Some(FailReason::Restarted),
            _ => return Err(corrupt("unknown failure reason")),
        };
        Ok(Self {
            place,
            attempts,
            state,
            reason,
            payload: Bytes::copy_from_slice(rest),
        })
    }
}

/// A queue's durable contents in one redb file; see the [module docs](self)
pub struct Storage {
    db: Database,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").finish_non_exhaustive()
    }
}

impl Storage {
    /// Opens (or creates, with its directory) the file at `path` and rebuilds the queue it
    /// holds, journaled
    ///
    /// Leased items come back ready (or dead, after their last attempt), and the file is
    /// updated to match before this returns.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the file cannot be opened, read or written, or holds records that
    /// do not decode.
    ///
    /// # Panics
    ///
    /// As [`Queue::new`], on an invalid `config`.
    pub fn open(path: impl AsRef<Path>, config: QueueConfig) -> Result<(Self, Queue), StoreError> {
        let path = path.as_ref();
        Self::recover_from(troupe_store::create(path)?, path, config)
    }

    /// As [`open`](Self::open), but while another handle still holds the file (a crashed
    /// predecessor's, on its way out), tries again on tokio's clock within `reopen`'s bounds
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open); [`StoreError::Held`] if the file is still held after the
    /// bounds.
    ///
    /// # Panics
    ///
    /// As [`Queue::new`], on an invalid `config`.
    ///
    /// # Cancel safety
    ///
    /// Cancelling while it waits leaves the file closed; recovery itself does not yield.
    pub async fn open_when_released(
        path: impl AsRef<Path>,
        config: QueueConfig,
        reopen: Reopen,
    ) -> Result<(Self, Queue), StoreError> {
        let path = path.as_ref();
        let db = troupe_store::create_when_released(path, reopen).await?;
        Self::recover_from(db, path, config)
    }

    fn recover_from(
        db: Database,
        path: &Path,
        config: QueueConfig,
    ) -> Result<(Self, Queue), StoreError> {
        let started = troupe_runtime::time::now();
        let mut storage = Self { db };
        let (queue, unwritten) = storage.recover(config)?;
        let stats = queue.stats();
        // what an operator waiting on a large queue's restart wants to see, once it is over
        tracing::info!(
            path = %path.display(),
            ready = stats.ready,
            leased = stats.leased,
            dead = stats.dead,
            took = ?troupe_runtime::time::now().saturating_duration_since(started),
            "queue reopened"
        );
        if let Some(err) = unwritten {
            // A full disk: what recovery changed (leased items made ready) is decided again,
            // the same way, by the next recovery, so the queue can serve without writing it.
            // redb refuses all I/O on a handle after a failed write: open a new one.
            tracing::warn!(cause = %err, "queue recovered without writing its changes back");
            drop(storage);
            storage = Self {
                db: troupe_store::create(path)?,
            };
        }
        Ok((storage, queue.journaled()))
    }

    /// Reads the queue back; writes only what recovery changed (leased items made ready, dead
    /// letters past the limit), so a file that needs no change reopens with no free space.
    /// A device failure writing those changes is handed back beside the queue, not raised.
    fn recover(&self, config: QueueConfig) -> Result<(Queue, Option<StoreError>), StoreError> {
        let mut changed = !troupe_store::has_tables(&self.db, &[ITEMS.name(), META.name()])?;
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        let queue = {
            let mut items = txn.open_table(ITEMS)?;
            let mut meta = txn.open_table(META)?;
            let stored_id = meta.get(NEXT_ID)?.map(|v| v.value());
            let stored_place = meta.get(NEXT_PLACE)?.map(|v| v.value());
            let (mut next_id, mut next_place) = (stored_id.unwrap_or(0), stored_place.unwrap_or(0));
            let mut records = Vec::new();
            let mut progress = Progress::new();
            for entry in items.iter()? {
                let (id, bytes) = entry?;
                let id = id.value();
                records.push((id, Record::decode(id, bytes.value())?));
                if let Some(took) = progress.read(records.len(), troupe_runtime::time::now) {
                    tracing::info!(
                        read = records.len(),
                        ?took,
                        "reopening the queue: items read so far"
                    );
                }
            }
            let mut ready = Vec::new();
            let mut dead = Vec::new();
            let mut restarted = 0;
            for (id, mut record) in records {
                next_id = next_id.max(id + 1);
                next_place = next_place.max(record.place + 1);
                if record.state == State::Leased {
                    restarted += 1;
                    record.reason = Some(FailReason::Restarted);
                    if record.attempts >= config.max_attempts {
                        record.state = State::Dead;
                        record.place = next_place;
                        next_place += 1;
                    } else {
                        record.state = State::Ready;
                    }
                    items.insert(id, record.encode().as_slice())?;
                    changed = true;
                }
                match record.state {
                    State::Ready => ready.push((record.place, id, record)),
                    _ => dead.push((record.place, id, record)),
                }
            }
            if (stored_id, stored_place) != (Some(next_id), Some(next_place)) {
                meta.insert(NEXT_ID, next_id)?;
                meta.insert(NEXT_PLACE, next_place)?;
                changed = true;
            }
            ready.sort_by_key(|(place, id, _)| (*place, *id));
            dead.sort_by_key(|(place, id, _)| (*place, *id));
            let totals = crate::core::QueueTotals {
                restarted,
                ..Default::default()
            };
            let snapshot = QueueSnapshot {
                next_id: ItemId(next_id),
                ready: ready
                    .into_iter()
                    .map(|(_, id, r)| SnapshotItem {
                        id: ItemId(id),
                        payload: r.payload,
                        attempts: r.attempts,
                        last_failure: r.reason,
                    })
                    .collect(),
                dead: dead
                    .into_iter()
                    .map(|(_, id, r)| DeadLetter {
                        item: ItemId(id),
                        payload: r.payload,
                        attempts: r.attempts,
                        reason: r.reason.unwrap_or(FailReason::Restarted),
                    })
                    .collect(),
                totals,
            };
            let overflow = snapshot.dead.len().saturating_sub(config.dlq_capacity);
            for evicted in snapshot.dead.iter().take(overflow) {
                items.remove(evicted.item.0)?;
                changed = true;
            }
            Queue::restore(config, snapshot)
                .map_err(|err| StoreError::corrupt(format!("item {}", err.id.0), err))?
        };
        if !changed {
            txn.abort()?;
            return Ok((queue, None));
        }
        match txn.commit().map_err(StoreError::from) {
            Ok(()) => Ok((queue, None)),
            Err(err) if err.is_device_failure() => Ok((queue, Some(err))),
            Err(err) => Err(err),
        }
    }

    /// Writes `events` (one queue call's, in order) in one durable transaction
    ///
    /// Returns once they are on disk. An empty slice writes nothing.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the write fails or an event names an item the file does not hold;
    /// nothing of `events` is stored then.
    pub fn commit(&self, events: &[QueueEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        {
            let mut items = txn.open_table(ITEMS)?;
            let mut meta = txn.open_table(META)?;
            let mut next_place = meta.get(NEXT_PLACE)?.map_or(0, |v| v.value());
            let mut next_id = None;
            for event in events {
                let id = event.id().0;
                let load = |items: &redb::Table<'_, u64, &[u8]>| -> Result<Record, StoreError> {
                    let stored = items.get(id)?.ok_or_else(|| {
                        StoreError::corrupt(
                            format!("item {id}"),
                            format!("{} of an item not stored", event.kind()),
                        )
                    })?;
                    Record::decode(id, stored.value())
                };
                let record = match event {
                    QueueEvent::Enqueued { payload, .. } => {
                        next_id = Some(id + 1);
                        next_place += 1;
                        Some(Record {
                            place: next_place - 1,
                            attempts: 0,
                            state: State::Ready,
                            reason: None,
                            payload: payload.clone(),
                        })
                    }
                    QueueEvent::Leased { attempt, .. } => {
                        let mut record = load(&items)?;
                        record.attempts = *attempt;
                        record.state = State::Leased;
                        Some(record)
                    }
                    QueueEvent::Released { reason, .. } => {
                        let mut record = load(&items)?;
                        record.state = State::Ready;
                        record.reason = Some(reason.clone());
                        Some(record)
                    }
                    QueueEvent::DeadLettered { reason, .. } => {
                        let mut record = load(&items)?;
                        record.state = State::Dead;
                        record.reason = Some(reason.clone());
                        record.place = next_place;
                        next_place += 1;
                        Some(record)
                    }
                    QueueEvent::Replayed { .. } => {
                        let mut record = load(&items)?;
                        record.state = State::Ready;
                        record.reason = None;
                        record.attempts = 0;
                        record.place = next_place;
                        next_place += 1;
                        Some(record)
                    }
                    QueueEvent::Acked { .. }
                    | QueueEvent::DeadLetterEvicted { .. }
                    | QueueEvent::DeadLetterDropped { .. } => None,
                };
                match record {
                    Some(record) => {
                        items.insert(id, record.encode().as_slice())?;
                    }
                    None => {
                        items.remove(id)?;
                    }
                }
            }
            meta.insert(NEXT_PLACE, next_place)?;
            if let Some(next_id) = next_id {
                meta.insert(NEXT_ID, next_id)?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

/// Drains `queue`'s journal into a vector, for [`Storage::commit`]
pub(crate) fn drain(queue: &mut Queue) -> Vec<QueueEvent> {
    std::iter::from_fn(|| queue.poll_event()).collect()
}

/// When a long reopening reports how far it got: every few seconds, looking at the clock once
/// every [`EVERY`](Self::EVERY) items.
struct Progress {
    started: Option<std::time::Instant>,
    reported: Option<std::time::Instant>,
}

impl Progress {
    /// Items read between two looks at the clock.
    const EVERY: usize = 65_536;
    /// Time between two reports.
    const INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

    fn new() -> Self {
        Self {
            started: None,
            reported: None,
        }
    }

    /// `read` items have been read so far; `now` is the clock. Returns how long the reading
    /// has taken when it is time to report.
    fn read(
        &mut self,
        read: usize,
        now: impl FnOnce() -> std::time::Instant,
    ) -> Option<std::time::Duration> {
        if read % Self::EVERY != 1 {
            return None;
        }
        let now = now();
        let started = *self.started.get_or_insert(now);
        let reported = *self.reported.get_or_insert(now);
        if now.saturating_duration_since(reported) < Self::INTERVAL {
            return None;
        }
        self.reported = Some(now);
        Some(now.saturating_duration_since(started))
    }
}

#[cfg(test)]
mod progress_tests {
    use super::Progress;
    use std::time::{Duration, Instant};

    #[test]
    fn a_long_reopening_reports_every_two_seconds_and_a_short_one_never() {
        let t0 = Instant::now();
        let at = |secs: f64| move || t0 + Duration::from_secs_f64(secs);
        let mut p = Progress::new();
        assert_eq!(p.read(1, at(0.0)), None); // the clock starts
        assert_eq!(p.read(2, at(5.0)), None); // between looks at the clock
        let every = Progress::EVERY;
        assert_eq!(p.read(every + 1, at(1.0)), None); // too soon
        assert_eq!(
            p.read(2 * every + 1, at(2.5)),
            Some(Duration::from_secs_f64(2.5))
        );
        assert_eq!(p.read(3 * every + 1, at(3.0)), None);
        assert_eq!(
            p.read(4 * every + 1, at(4.6)),
            Some(Duration::from_secs_f64(4.6))
        );
    }
}
