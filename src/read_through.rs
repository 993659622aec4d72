//! [`DbBacking`]: the database as the store behind a read-through cache
//!
//! It lives in the facade, where the cache and the database meet, so neither part crate
//! depends on the other. It answers troupe-cache's [`BackingMsg`] through a [`DbClient`]: reads from the leader (the
//! authoritative copy the cache's contract asks for), writes through it, and versions every
//! answer with a log index — the leader's applied index for a read, the write's own index for a
//! write — so a later write always carries a higher version than any earlier read or write.
//! Each request runs beside the actor, so one slow write does not hold up the others.

use troupe_cache::{BackingMsg, Versioned};
use troupe_db::{DbClient, ReadPolicy};
use troupe_runtime::{Actor, ActorError, CallError, Ctx, ReplyTo, TaskGuard};

/// An actor answering [`BackingMsg`] from a replicated database; see the [module docs](self)
pub struct DbBacking {
    client: DbClient,
    tasks: Vec<TaskGuard>,
}

impl DbBacking {
    /// Backs a cache with the database `client` reaches
    pub fn new(client: DbClient) -> Self {
        Self {
            client,
            tasks: Vec::new(),
        }
    }
}

impl Actor for DbBacking {
    type Msg = BackingMsg;

    async fn handle(
        &mut self,
        msg: BackingMsg,
        reply: ReplyTo<Versioned>,
        ctx: &Ctx<BackingMsg>,
    ) -> Result<(), ActorError> {
        let client = self.client.clone();
        let target = format!("{}/{}", ctx.node().name(), ctx.name());
        self.tasks.retain(|t| !t.is_finished());
        self.tasks.push(TaskGuard::spawn(async move {
            let answer = match msg {
                BackingMsg::Get { key } => {
                    client
                        .get_with(key, ReadPolicy::Leader)
                        .await
                        .map(|read| Versioned {
                            value: read.value.map(|v| v.to_vec()),
                            version: read.index,
                        })
                }
                BackingMsg::Put { key, value } => {
                    let written = match &value {
                        Some(v) => client.put(key, v.clone()).await,
                        None => client.delete(key).await,
                    };
                    written.map(|w| Versioned {
                        value,
                        version: w.index,
                    })
                }
            };
            match answer {
                Ok(versioned) => {
                    reply.send(versioned);
                }
                Err(err) => reply.fail(CallError::ActorFailed {
                    target,
                    reason: err.to_string(),
                }),
            }
        }));
        Ok(())
    }
}
