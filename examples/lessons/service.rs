//! The service the gateway lessons balance over: it says who answered (name, node and which
//! run of the actor, so restarts show), and in the failure lesson counts visits in the
//! database.

use std::sync::atomic::{AtomicU64, Ordering};

use troupe::prelude::*;

/// Runs of any service actor so far, for the "#N" in its answers: a restarted member answers
/// with a new number.
static RUNS: AtomicU64 = AtomicU64::new(1);

/// One member of a pool of services.
pub(crate) struct Service {
    run: u64,
    db: Option<DbClient>,
}

impl Service {
    /// A fresh run of a service; with `db`, each request counts a visit there.
    pub(crate) fn new(db: Option<DbClient>) -> Self {
        Self {
            run: RUNS.fetch_add(1, Ordering::Relaxed),
            db,
        }
    }
}

impl Actor for Service {
    type Msg = HttpCall;

    async fn handle(&mut self, call: HttpCall, ctx: &mut Ctx<HttpCall>) -> Result<(), ActorError> {
        let who = format!("{}@{} #{}", ctx.name(), ctx.node().name(), self.run);
        let answer = match &self.db {
            None => HttpResponse::text(StatusCode::OK, who),
            Some(db) => match db.put("visits", who.clone()).await {
                Ok(written) => {
                    HttpResponse::text(StatusCode::OK, format!("{who} wrote #{}", written.index))
                }
                Err(err) => HttpResponse::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{who}: database: {err}"),
                ),
            },
        };
        call.reply.send(answer);
        Ok(())
    }
}

/// `svc.1@app-1 #3` → `svc.1@app-1`: who answered, whatever the run.
pub(crate) fn member(body: &str) -> Option<&str> {
    body.split(" #").next().filter(|m| m.contains('@'))
}
