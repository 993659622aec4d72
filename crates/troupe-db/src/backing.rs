//! [`DbBacking`]: the database as the store behind a read-through cache
//!
//! Answers troupe-cache's [`BackingMsg`] through a [`DbClient`]: reads from the leader (the
//! authoritative copy the cache's contract asks for), writes through it, and versions every
//! answer with a log index — the leader's applied index for a read, the write's own index for a
//! write — so a later write always carries a higher version than any earlier read or write.
//! Each request runs beside the actor, so one slow write does not hold up the others.

use troupe_cache::{BackingMsg, Versioned};
use troupe_runtime::{Actor, ActorError, CallError, Ctx};

use crate::client::{DbClient, ReadPolicy};

/// An actor answering [`BackingMsg`] from a replicated database; see the [module docs](self)
pub struct DbBacking {
    client: DbClient,
}

impl DbBacking {
    /// Backs a cache with the database `client` reaches
    pub fn new(client: DbClient) -> Self {
        Self { client }
    }
}

impl Actor for DbBacking {
    type Msg = BackingMsg;

    async fn handle(
        &mut self,
        msg: BackingMsg,
        ctx: &mut Ctx<BackingMsg>,
    ) -> Result<(), ActorError> {
        let client = self.client.clone();
        let target = format!("{}/{}", ctx.node().name(), ctx.name());
        let failed = move |err: crate::DbError| CallError::ActorFailed {
            target,
            reason: err.to_string(),
        };
        ctx.spawn(async move {
            match msg {
                BackingMsg::Get { key, reply } => {
                    match client.get_with(key, ReadPolicy::Leader).await {
                        Ok(read) => {
                            reply.send(Versioned {
                                value: read.value,
                                version: read.index,
                            });
                        }
                        Err(err) => reply.fail(failed(err)),
                    }
                }
                BackingMsg::Put { key, value, reply } => {
                    let written = match value {
                        Some(v) => client.put(key, v).await,
                        None => client.delete(key).await,
                    };
                    match written {
                        Ok(w) => {
                            reply.send(w.index);
                        }
                        Err(err) => reply.fail(failed(err)),
                    }
                }
            }
            Ok(())
        });
        Ok(())
    }
}
