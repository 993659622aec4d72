//! The register leases live in: one key per failover child, read linearizably and changed
//! only by compare-and-set.

use std::time::Duration;

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
}

/// The key prefix of lease records in the metadata database
pub const LEASE_PREFIX: &str = "troupe/lease/";

/// [`LeaseRegister`] on a troupe database in Raft mode (the cluster's metadata group): reads
/// go to the leader and are confirmed with a majority (openraft's `ensure_linearizable`),
/// compare-and-sets are Raft log entries.
#[derive(Clone)]
pub struct DbRegister {
    client: DbClient,
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
        }
    }

    fn key(child: &str) -> Bytes {
        Bytes::from(format!("{LEASE_PREFIX}{child}"))
    }
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
    fn read(&self, child: &str) -> BoxFuture<'static, Result<Option<LeaseRecord>, RegisterError>> {
        let (client, key) = (self.client.clone(), Self::key(child));
        Box::pin(async move {
            match client.get(key).await {
                Ok(Some(bytes)) => decode(&bytes).map(Some),
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
        Box::pin(async move {
            let written = client
                .cas(key, expected.as_ref().map(encode), Some(encode(&new)))
                .await;
            match written {
                Ok(w) => match w.outcome {
                    DbOutcome::CasFailed { actual } => match actual.map(|b| decode(&b)).transpose()
                    {
                        Ok(current) => WriteOutcome::Mismatch(current),
                        // what it holds is unreadable; as good as unknown
                        Err(_) => WriteOutcome::Unknown,
                    },
                    _ => WriteOutcome::Applied,
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
        };
        assert_eq!(encode(&record), encode(&record.clone()));
        assert_eq!(decode(&encode(&record)).unwrap(), record);
        assert!(matches!(decode(b"\xc1"), Err(RegisterError::Corrupt(_))));
    }
}
