//! The practical limit: a raw tokio channel and a task that consumes it, on the same runtime.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::sync::{mpsc, oneshot};

use crate::common::{
    CALL_TIMEOUT, CastPlan, Sample, ScaleRun, Tally, runtime, timed_bounded, timed_calls,
    timed_casts,
};

const SYSTEM: &str = "tokio";

enum CounterMsg {
    Add(u64),
    Get(oneshot::Sender<u64>),
}

/// The "actor": a task looping over an unbounded mpsc receiver.
fn spawn_counter(mut tally: Tally) -> mpsc::UnboundedSender<CounterMsg> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            match msg {
                CounterMsg::Add(n) => tally.add(n),
                CounterMsg::Get(reply) => {
                    let _ = reply.send(tally.total);
                }
            }
        }
    });
    tx
}

/// `mpsc_unbounded`: `UnboundedSender::send`.
pub fn cast(variant: &str, n: u64, limit: Duration) -> anyhow::Result<Sample> {
    if variant != "mpsc_unbounded" {
        bail!("tokio cast variants: mpsc_unbounded");
    }
    let rt = runtime()?;
    rt.block_on(async {
        let plan = CastPlan::new(n, limit);
        let tx = spawn_counter(plan.tally());
        let sender = {
            let (plan, tx) = (plan.clone(), tx.clone());
            tokio::spawn(async move {
                timed_casts(&plan, |v| {
                    tx.send(CounterMsg::Add(v))
                        .map_err(|_| anyhow!("the consumer is gone"))
                })
                .await
            })
        };
        let (secs, sent) = sender.await??;
        let (reply, rx) = oneshot::channel();
        tx.send(CounterMsg::Get(reply))
            .map_err(|_| anyhow!("the consumer is gone"))?;
        let total = rx.await?;
        if total != plan.warm + n {
            bail!("tokio counted {total}");
        }
        let mut s = Sample::rate("cast", SYSTEM, variant, n, secs);
        s.send_secs = Some(sent);
        Ok(s)
    })
}

/// `mpsc_oneshot`: send a request carrying a oneshot sender, await the oneshot (no timeout);
/// `mpsc_oneshot_timeout`: the same inside `tokio::time::timeout(30 s, ..)`.
pub fn call(variant: &str, m: u64, limit: Duration) -> anyhow::Result<Sample> {
    let timed = match variant {
        "mpsc_oneshot" => false,
        "mpsc_oneshot_timeout" => true,
        other => bail!("tokio call variants: mpsc_oneshot, mpsc_oneshot_timeout (not {other})"),
    };
    let rt = runtime()?;
    rt.block_on(async {
        let plan = CastPlan::new(1, limit);
        let tx = spawn_counter(plan.tally());
        let secs = tokio::spawn(async move {
            timed_calls(m, limit, || async {
                let (reply, rx) = oneshot::channel();
                tx.send(CounterMsg::Get(reply))
                    .map_err(|_| anyhow!("the consumer is gone"))?;
                if timed {
                    Ok(tokio::time::timeout(CALL_TIMEOUT, rx).await??)
                } else {
                    Ok(rx.await?)
                }
            })
            .await
        })
        .await??;
        Ok(Sample::rate("call", SYSTEM, variant, m, secs))
    })
}

/// Baseline, not an actor system: N tasks each looping over its own unbounded mpsc receiver,
/// one sender kept per task; no supervision, no names.
pub fn scale(variant: &str, n: u64, limit: Duration) -> anyhow::Result<Sample> {
    if variant != "task_mpsc" {
        bail!("tokio scale variants: task_mpsc");
    }
    let rt = runtime()?;
    rt.block_on(async {
        let mut senders: Vec<mpsc::UnboundedSender<oneshot::Sender<()>>> =
            Vec::with_capacity(n as usize);
        let mut handles = Vec::with_capacity(n as usize);
        let mut run = ScaleRun::begin("tokio", n, limit)?;
        for i in 0..n {
            let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
            handles.push(tokio::spawn(async move {
                while let Some(reply) = rx.recv().await {
                    let _ = reply.send(());
                }
            }));
            senders.push(tx);
            run.tick(i + 1)?;
        }
        let mut s = run.finish((SYSTEM, variant)).await?;
        for i in [0, n / 2, n - 1] {
            let (reply, rx) = oneshot::channel();
            senders[i as usize]
                .send(reply)
                .map_err(|_| anyhow!("task {i} is gone"))?;
            rx.await.context("no reply")?;
        }
        drop(senders);
        s.shutdown_secs = timed_bounded(Duration::from_secs(30), async {
            for h in handles {
                let _ = h.await;
            }
        })
        .await;
        Ok(s)
    })
}
