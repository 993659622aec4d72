//! The register leases live in: one key per failover child, read linearizably and changed
//! only by compare-and-set.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use bytes::Bytes;
use futures::future::BoxFuture;
use troupe_db::{DbClient, DbError, ReadPolicy, WriteOutcome as DbOutcome};
use troupe_placement::{LeaseRecord, WriteOutcome};

/// Why a read of the register gave no record
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The register did not answer in time (no leader, no majority, a lost link)
    #[error("the placement register is unavailable: {0}")]
    Unavailable(String),
    /// The key holds something that is not a lease record
    #[error("the placement register holds a record that does not decode: {0}")]
    Corrupt(String),
}

/// A linearizable register of lease records, one per failover child: what the placement
/// driver reads and compare-and-sets. Reads see every write acknowledged before them; a
/// compare-and-set applies at most once.
pub trait LeaseRegister: Send + Sync + 'static {
    /// `child`'s record (`None`: never written).
    ///
    /// Cancel safe: a read changes nothing.
    fn read(&self, child: &str) -> BoxFuture<'static, Result<Option<LeaseRecord>, RegisterError>>;

    /// Sets `child`'s record to `new` if it holds exactly `expected` (`None`: absent).
    ///
    /// Cancelling after the first poll leaves the outcome unknown: the write may apply.
    fn compare_and_set(
        &self,
        child: &str,
        expected: Option<LeaseRecord>,
        new: LeaseRecord,
    ) -> BoxFuture<'static, WriteOutcome>;

    /// What operators have directed: where failover children were moved, which nodes are
    /// being drained. None by default.
    ///
    /// Cancel safe: a read changes nothing.
    fn directions(&self) -> BoxFuture<'static, Result<Directions, RegisterError>> {
        Box::pin(async { Ok(Directions::default()) })
    }
}

/// Operators' directions to the placement of failover children: kept in the register, read
/// by every node's driver about once a second
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Directions {
    /// Failover children moved to a node (`troupe move`): it goes first in their order, with
    /// takeover, until the move is cleared
    pub moved: BTreeMap<String, String>,
    /// Nodes being drained (`troupe drain`): out of every order, so that what runs on them
    /// moves off
    pub drained: BTreeSet<String>,
}

/// The key prefix of lease records in the metadata database
pub const LEASE_PREFIX: &str = "troupe/lease/";

/// The key prefix of moves: `troupe/move/CHILD` holds the node it was moved to
pub const MOVE_PREFIX: &str = "troupe/move/";

/// The key prefix of drained nodes: `troupe/drain/NODE` exists while NODE is drained
pub const DRAIN_PREFIX: &str = "troupe/drain/";

/// At most this many moves and drained nodes are read (each a few bytes)
const MAX_DIRECTIONS: u32 = 10_000;

/// [`LeaseRegister`] on a troupe database in Raft mode (the cluster's metadata group): reads
/// go to the leader and are confirmed with a majority (openraft's `ensure_linearizable`),
/// compare-and-sets are Raft log entries.
#[derive(Clone)]
pub struct DbRegister {
    client: DbClient,
    /// The bytes each record was last seen as, by child: a compare-and-set from a record
    /// compares exactly what the register held, even if another build encoded it
    seen: Arc<Mutex<HashMap<String, (LeaseRecord, Bytes)>>>,
}

/// At most this many children's last-seen records are kept
const MAX_SEEN: usize = 100_000;

/// Remembers that `child`'s record `record` was held as `bytes`
fn remember(
    seen: &Mutex<HashMap<String, (LeaseRecord, Bytes)>>,
    child: &str,
    record: &LeaseRecord,
    bytes: Bytes,
) {
    let mut seen = seen.lock();
    if seen.len() >= MAX_SEEN && !seen.contains_key(child) {
        seen.clear();
    }
    seen.insert(child.to_string(), (record.clone(), bytes));
}

/// The bytes to compare with for `expected`: as last seen if it is that record, else encoded
fn expected_bytes(
    seen: &Mutex<HashMap<String, (LeaseRecord, Bytes)>>,
    child: &str,
    expected: &LeaseRecord,
) -> Bytes {
    match seen.lock().get(child) {
        Some((record, bytes)) if record == expected => bytes.clone(),
        _ => encode(expected),
    }
}

impl DbRegister {
    /// A register on `client`'s database, each operation bounded by `within` (retries
    /// included): a placement driver gives an answer up after its lease's renewal period, so
    /// nothing waits longer than that.
    pub fn new(client: &DbClient, within: Duration) -> Self {
        Self {
            client: client
                .with_read_policy(ReadPolicy::Leader)
                .with_timeout(within)
                .with_attempt_timeout(within / 2),
            seen: Arc::default(),
        }
    }

    fn key(child: &str) -> Bytes {
        Bytes::from(format!("{LEASE_PREFIX}{child}"))
    }

    /// Child `child`'s lease record as the register holds it (`None`: never placed)
    ///
    /// # Errors
    ///
    /// [`RegisterError`] if the register did not answer or holds no record there.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a read changes nothing.
    pub async fn lease(&self, child: &str) -> Result<Option<LeaseRecord>, RegisterError> {
        self.read(child).await
    }

    /// Moves failover child `child` to `node` (first in its order, with takeover, until
    /// cleared), or clears its move with `None`. Takes effect on every node within about a
    /// second; the child is handed over in order (see the driver).
    ///
    /// # Errors
    ///
    /// [`RegisterError::Unavailable`] if the register did not acknowledge it in time (it may
    /// still take effect).
    ///
    /// # Cancel safety
    ///
    /// Cancelled after the first poll, the write may or may not take effect.
    pub async fn move_child(&self, child: &str, node: Option<&str>) -> Result<(), RegisterError> {
        let key = Bytes::from(format!("{MOVE_PREFIX}{child}"));
        let written = match node {
            Some(node) => self.client.put(key, Bytes::from(node.to_string())).await,
            None => self.client.delete(key).await,
        };
        written
            .map(|_| ())
            .map_err(|e| RegisterError::Unavailable(e.to_string()))
    }

    /// Marks `node` drained (out of every failover order, so what runs there moves off) or,
    /// with `false`, back in service.
    ///
    /// # Errors
    ///
    /// As [`DbRegister::move_child`].
    ///
    /// # Cancel safety
    ///
    /// As [`DbRegister::move_child`].
    pub async fn drain_node(&self, node: &str, drained: bool) -> Result<(), RegisterError> {
        let key = Bytes::from(format!("{DRAIN_PREFIX}{node}"));
        let written = match drained {
            true => self.client.put(key, Bytes::from_static(b"1")).await,
            false => self.client.delete(key).await,
        };
        written
            .map(|_| ())
            .map_err(|e| RegisterError::Unavailable(e.to_string()))
    }
}

/// The names under `prefix` in a scan's entries, with their values as text
fn under(prefix: &str, entries: Vec<(Bytes, Bytes)>) -> impl Iterator<Item = (String, String)> {
    let prefix = prefix.to_string();
    entries.into_iter().filter_map(move |(key, value)| {
        let key = std::str::from_utf8(&key)
            .ok()?
            .strip_prefix(&prefix)?
            .to_string();
        let value = String::from_utf8(value.to_vec()).ok()?;
        Some((key, value))
    })
}

/// A record's bytes in the register; compare-and-set compares these, so one record always
/// encodes to the same bytes.
fn encode(record: &LeaseRecord) -> Bytes {
    // a plain struct of strings, integers and a bool: encoding it cannot fail
    Bytes::from(rmp_serde::to_vec(record).unwrap_or_default())
}

fn decode(bytes: &[u8]) -> Result<LeaseRecord, RegisterError> {
    rmp_serde::from_slice(bytes).map_err(|e| RegisterError::Corrupt(e.to_string()))
}

impl LeaseRegister for DbRegister {
    fn directions(&self) -> BoxFuture<'static, Result<Directions, RegisterError>> {
        let client = self.client.clone();
        Box::pin(async move {
            let unavailable = |e: DbError| RegisterError::Unavailable(e.to_string());
            let moves = client
                .scan(MOVE_PREFIX, MAX_DIRECTIONS)
                .await
                .map_err(unavailable)?;
            let drains = client
                .scan(DRAIN_PREFIX, MAX_DIRECTIONS)
                .await
                .map_err(unavailable)?;
            Ok(Directions {
                moved: under(MOVE_PREFIX, moves).collect(),
                drained: under(DRAIN_PREFIX, drains).map(|(node, _)| node).collect(),
            })
        })
    }

    fn read(&self, child: &str) -> BoxFuture<'static, Result<Option<LeaseRecord>, RegisterError>> {
        let (client, key) = (self.client.clone(), Self::key(child));
        let (seen, child) = (self.seen.clone(), child.to_string());
        Box::pin(async move {
            match client.get(key).await {
                Ok(Some(bytes)) => {
                    let record = decode(&bytes)?;
                    remember(&seen, &child, &record, bytes);
                    Ok(Some(record))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(RegisterError::Unavailable(e.to_string())),
            }
        })
    }

    fn compare_and_set(
        &self,
        child: &str,
        expected: Option<LeaseRecord>,
        new: LeaseRecord,
    ) -> BoxFuture<'static, WriteOutcome> {
        let (client, key) = (self.client.clone(), Self::key(child));
        let (seen, child) = (self.seen.clone(), child.to_string());
        Box::pin(async move {
            let expected = expected.map(|e| expected_bytes(&seen, &child, &e));
            let new_bytes = encode(&new);
            let written = client.cas(key, expected, Some(new_bytes.clone())).await;
            match written {
                Ok(w) => match w.outcome {
                    DbOutcome::CasFailed { actual: None } => WriteOutcome::Mismatch(None),
                    DbOutcome::CasFailed {
                        actual: Some(bytes),
                    } => match decode(&bytes) {
                        Ok(current) => {
                            remember(&seen, &child, &current, bytes);
                            WriteOutcome::Mismatch(Some(current))
                        }
                        // what it holds is unreadable; as good as unknown
                        Err(_) => WriteOutcome::Unknown,
                    },
                    _ => {
                        remember(&seen, &child, &new, new_bytes);
                        WriteOutcome::Applied
                    }
                },
                // refused before it was proposed: certainly not applied, but what the register
                // holds is not known either; the seat learns it from its next read
                Err(DbError::Refused(_) | DbError::Call(_)) => WriteOutcome::Unknown,
                Err(DbError::Unavailable { .. } | DbError::Ambiguous(_)) => WriteOutcome::Unknown,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_always_encodes_to_the_same_bytes_and_back() {
        let record = LeaseRecord {
            holder: "app-1".into(),
            generation: 7,
            term_ms: 3000,
            released: false,
            draining: false,
            benched: Vec::new(),
        };
        assert_eq!(encode(&record), encode(&record.clone()));
        assert_eq!(decode(&encode(&record)).unwrap(), record);
        assert!(matches!(decode(b"\xc1"), Err(RegisterError::Corrupt(_))));
        // with nobody sitting out, the bytes are those of a build without `benched`
        let before = rmp_serde::to_vec(&("app-1", 7u64, 3000u64, false, false)).unwrap();
        assert_eq!(&encode(&record)[..], &before[..]);
        let given_up = record.released_benching(vec![troupe_placement::Benched {
            node: "app-1".into(),
            for_ms: 1000,
        }]);
        assert_eq!(decode(&encode(&given_up)).unwrap(), given_up);
    }
}
