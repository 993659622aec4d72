//! [`DbBacking`]: the database as the store behind a read-through cache.
//!
//! It lives in the facade, where the cache and the database meet, so neither part crate
//! depends on the other. It implements troupe-cache's [`Backing`] with a [`DbClient`]: reads
//! from the leader (the authoritative copy the cache's contract asks for), writes through it,
//! and versions every answer with a log index — the leader's applied index for a read, the
//! write's own index for a write — so a later write always carries a higher version than any
//! earlier read or write. No actor sits in between: each shard calls the database directly.

use std::time::Duration;

use bytes::Bytes;
use troupe_cache::{Backing, BackingError, Versioned};
use troupe_db::{DbClient, ReadPolicy};

/// A replicated database as the store behind a read-through cache: it reads from the leader,
/// writes through it, and versions every answer with a log index (the leader's applied index
/// for a read, the write's own index for a write). Declare it in one line:
/// `CacheSpec::lru(n).read_through(DbBacking::new(db.clone()))`.
///
/// When the cache stops waiting for a write (its timeout, or the shard restarting), a write
/// already sent to the leader may still be applied, as with a cancelled [`DbClient::put`].
#[derive(Clone, Debug)]
pub struct DbBacking {
    client: DbClient,
}

impl DbBacking {
    /// Backs a cache with the database `client` reaches.
    pub fn new(client: DbClient) -> Self {
        Self { client }
    }
}

impl Backing for DbBacking {
    async fn get(&self, key: Bytes, timeout: Duration) -> Result<Versioned, BackingError> {
        let read = self
            .client
            .with_timeout(timeout)
            .get_with(key, ReadPolicy::Leader)
            .await
            .map_err(BackingError::store)?;
        Ok(Versioned {
            value: read.value,
            version: read.index,
        })
    }

    async fn put(
        &self,
        key: Bytes,
        value: Option<Bytes>,
        timeout: Duration,
    ) -> Result<u64, BackingError> {
        let client = self.client.with_timeout(timeout);
        let written = match value {
            Some(value) => client.put(key, value).await,
            None => client.delete(key).await,
        };
        Ok(written.map_err(BackingError::store)?.index)
    }
}
