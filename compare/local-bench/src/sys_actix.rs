//! actix 0.13 on its own runtime, the way its users run it: a `System` (actix-rt: a
//! current-thread tokio runtime with a `LocalSet` per arbiter thread), the sending loop is the
//! future given to `System::block_on` (on the System arbiter's thread).
//!
//! - `same_thread`: the counter started with `Actor::start()` from that future, so on the
//!   System arbiter, the same thread as the sender: what `#[actix::main]` + `start()` gives.
//! - `arbiter`: the counter started on a second `Arbiter` (its own thread) with
//!   `Actor::start_in_arbiter`: sender and actor on two threads, as on the tokio side.

use std::time::Duration;

use actix::prelude::*;
use anyhow::{anyhow, bail};

use crate::common::{CastPlan, Sample, Tally, timed_calls, timed_casts};

const SYSTEM: &str = "actix";

struct Counter(Tally);

impl Actor for Counter {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Add(u64);

#[derive(Message)]
#[rtype(result = "u64")]
struct Get;

impl Handler<Add> for Counter {
    type Result = ();

    fn handle(&mut self, Add(n): Add, _ctx: &mut Context<Self>) {
        self.0.add(n);
    }
}

impl Handler<Get> for Counter {
    type Result = u64;

    fn handle(&mut self, _msg: Get, _ctx: &mut Context<Self>) -> u64 {
        self.0.total
    }
}

/// Starts the counter per `variant`; call from inside the System.
fn start_counter(variant: &str, tally: Tally) -> anyhow::Result<(Addr<Counter>, Option<Arbiter>)> {
    match variant {
        "same_thread" => Ok((Counter(tally).start(), None)),
        "arbiter" => {
            let arbiter = Arbiter::new();
            let addr = Counter::start_in_arbiter(&arbiter.handle(), move |_| Counter(tally));
            Ok((addr, Some(arbiter)))
        }
        other => bail!("actix variants: same_thread, arbiter (not {other})"),
    }
}

fn stop(arbiter: Option<Arbiter>) {
    if let Some(arbiter) = arbiter {
        arbiter.stop();
        let _ = arbiter.join();
    }
}

/// `do_send` (unbounded: it ignores the mailbox capacity).
pub fn cast(variant: &str, n: u64, limit: Duration) -> anyhow::Result<Sample> {
    let variant_owned = variant.to_string();
    let system = System::new();
    system.block_on(async move {
        let plan = CastPlan::new(n, limit);
        let (addr, arbiter) = start_counter(&variant_owned, plan.tally())?;
        let (secs, sent) = timed_casts(&plan, |v| {
            addr.do_send(Add(v));
            Ok(())
        })
        .await?;
        let total = addr
            .send(Get)
            .await
            .map_err(|e| anyhow!("actix send: {e}"))?;
        if total != plan.warm + n {
            bail!("actix counted {total}");
        }
        drop(addr);
        stop(arbiter);
        let mut s = Sample::rate("cast", SYSTEM, &variant_owned, n, secs);
        s.send_secs = Some(sent);
        Ok(s)
    })
}

/// `addr.send(Get).await` (no timeout; actix's `send` has an optional `.timeout()`, not used).
pub fn call(variant: &str, m: u64, limit: Duration) -> anyhow::Result<Sample> {
    let variant_owned = variant.to_string();
    let system = System::new();
    system.block_on(async move {
        let plan = CastPlan::new(1, limit);
        let (addr, arbiter) = start_counter(&variant_owned, plan.tally())?;
        let secs = timed_calls(m, limit, || async {
            addr.send(Get).await.map_err(|e| anyhow!("actix send: {e}"))
        })
        .await?;
        drop(addr);
        stop(arbiter);
        Ok(Sample::rate("call", SYSTEM, &variant_owned, m, secs))
    })
}
