//! Lesson 4, a queue for slow work: the gateway answers a job at once (202) and puts it on a
//! durable queue; workers take jobs under a lease and do them later. A worker that crashes
//! mid-job loses its lease and the job goes to another; a job that fails every attempt ends
//! in the dead letters.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use troupe::faults::Faults;
use troupe::prelude::*;
use troupe::queue::Consumer;

use crate::harness::{Answer, Lesson, LessonArgs, LessonCommand, Users, describe, say, statuses};

/// How long one job takes a worker.
const WORK: Duration = Duration::from_millis(700);

/// How long a worker holds a job before the queue gives it to another.
const LEASE: Duration = Duration::from_secs(2);

/// Attempts before a job goes to the dead letters.
const ATTEMPTS: u32 = 3;

/// Takes `POST /jobs` and queues the body; answers 202 at once.
#[derive(Clone)]
struct Api {
    jobs: QueueClient,
}

impl Actor for Api {
    type Msg = HttpCall;

    async fn handle(&mut self, call: HttpCall, _: &mut Ctx<HttpCall>) -> Result<(), ActorError> {
        let req = &call.request;
        let answer = match (req.method.as_str(), req.path()) {
            ("POST", "/jobs") => match self.jobs.enqueue(req.body.clone()).await {
                Ok(id) => HttpResponse::text(StatusCode::ACCEPTED, format!("job {} queued", id.0)),
                Err(err) => HttpResponse::text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not queued: {err}"),
                ),
            },
            _ => HttpResponse::text(StatusCode::NOT_FOUND, "POST /jobs"),
        };
        call.reply.send(answer);
        Ok(())
    }
}

/// A worker's own messages.
#[derive(Debug, serde::Serialize, serde::Deserialize, Message)]
#[message(name = "lessons.queue.Worker")]
enum WorkerMsg {
    /// Take the next job, if any.
    Poll,
}

/// Takes jobs one at a time and does them; nacks a poison job.
struct Worker {
    jobs: QueueClient,
    consumer: Consumer,
}

impl Actor for Worker {
    type Msg = WorkerMsg;

    async fn started(&mut self, ctx: &mut Ctx<WorkerMsg>) -> Result<(), ActorError> {
        ctx.myself().cast(WorkerMsg::Poll)?;
        Ok(())
    }

    async fn handle(&mut self, _: WorkerMsg, ctx: &mut Ctx<WorkerMsg>) -> Result<(), ActorError> {
        let me = ctx.name().to_string();
        let lease = match self.jobs.take_with_lease(&self.consumer, LEASE).await {
            Ok(Some(lease)) => lease,
            Ok(None) | Err(_) => {
                ctx.send_after(Duration::from_millis(50), WorkerMsg::Poll);
                return Ok(());
            }
        };
        let job = String::from_utf8_lossy(&lease.payload).into_owned();
        if lease.attempt > 1 {
            say(format!(
                "{me} took {job} again: attempt {} (the last worker's lease ran out, or it failed)",
                lease.attempt
            ));
        }
        if job.starts_with("poison") {
            say(format!(
                "{me} cannot do {job} (attempt {} of {ATTEMPTS})",
                lease.attempt
            ));
            let _ = self
                .jobs
                .nack_with_error(&self.consumer, lease.item, "a poison job: cannot be done")
                .await;
        } else {
            tokio::time::sleep(WORK).await;
            let _ = self.jobs.ack(&self.consumer, lease.item).await;
        }
        ctx.myself().cast(WorkerMsg::Poll)?;
        Ok(())
    }
}

/// The queue's own narration.
#[derive(Debug, serde::Serialize, serde::Deserialize, Message)]
#[message(name = "lessons.queue.Watch")]
enum WatchMsg {
    Report,
}

/// Says once a second what the queue holds.
#[derive(Clone)]
struct Watch {
    jobs: QueueClient,
}

impl Actor for Watch {
    type Msg = WatchMsg;

    async fn started(&mut self, ctx: &mut Ctx<WatchMsg>) -> Result<(), ActorError> {
        ctx.send_interval(Duration::from_secs(1), || WatchMsg::Report);
        Ok(())
    }

    async fn handle(&mut self, _: WatchMsg, _: &mut Ctx<WatchMsg>) -> Result<(), ActorError> {
        match self.jobs.stats().await {
            Ok(s) => {
                let mut line = format!(
                    "queue: waiting {} · being worked {} · done {} · redelivered {} · dead letters {}",
                    s.ready, s.leased, s.acked, s.redelivered, s.dead
                );
                if s.dead > 0
                    && let Ok(dead) = self.jobs.dead_letters().await
                    && let Some(last) = dead.last()
                {
                    line.push_str(&format!(
                        " (last: {} after {} attempts: {})",
                        String::from_utf8_lossy(&last.payload),
                        last.attempts,
                        last.reason
                    ));
                }
                say(line);
            }
            Err(err) => say(format!("queue: {err}")),
        }
        Ok(())
    }
}

/// users → gateway + api (edge) → jobs queue (data) ← workers (work)
pub(crate) fn lesson(args: &LessonArgs, dir: &Path) -> Lesson {
    let mut t = Topology::new("lesson-queue");
    let (users, edge) = (t.node("users"), t.node("edge"));
    let (work, data) = (t.node("work"), t.node("data"));
    let _ = std::fs::create_dir_all(dir);
    // any node may enqueue (the console's `poison` comes from wherever it is typed)
    let jobs = t.add(
        data,
        "jobs",
        QueueSpec::durable(dir.join("jobs.redb"))
            .max_attempts(ATTEMPTS)
            .lease(LEASE)
            .dead_letter_capacity(1_000)
            .reachable_from(Reach::cluster()),
    );
    let api = t.add(edge, "api", Restartable::from(Api { jobs: jobs.clone() }));
    let gateway = t.add(
        edge,
        "gateway",
        Proxy::http(&args.http)
            .route("/", api)
            .reachable_from(Reach::cluster()),
    );
    let worker_jobs = jobs.clone();
    let run = std::sync::atomic::AtomicU64::new(rand::random::<u32>().into());
    t.pool(work, "worker", 2, move |_| Worker {
        jobs: worker_jobs.clone(),
        consumer: Consumer::new(
            "work",
            run.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        ),
    });
    t.add(
        data,
        "watch",
        Restartable::from(Watch { jobs: jobs.clone() }),
    );
    let summarize = |answers: &[Answer]| {
        let n = answers.len().max(1) as u32;
        let took: Duration = answers.iter().map(|a| a.took).sum::<Duration>() / n;
        format!(
            "users: {} · answered in {:.1} ms on average: the work itself happens later",
            describe(&statuses(answers)),
            took.as_secs_f64() * 1000.0
        )
    };
    t.add(
        users,
        "users",
        Restartable::from(Users::new(
            gateway.clone(),
            Duration::from_millis(400),
            Arc::new(|n| ("POST", "/jobs".to_string(), format!("job-{n}"))),
            Arc::new(summarize),
        )),
    );
    let faults = Faults::on_every_node(&mut t);
    let command: LessonCommand = Arc::new(move |words: Vec<String>| {
        if words.first().map(String::as_str) != Some("poison") {
            return None;
        }
        let jobs = jobs.clone();
        Some(Box::pin(async move {
            match jobs.enqueue("poison-pill").await {
                Ok(id) => vec![format!("queued poison-pill as job {}", id.0)],
                Err(err) => vec![format!("poison: not queued: {err}")],
            }
        }) as _)
    });
    Lesson {
        title: "4 · a queue for slow work",
        intro: vec![
            "users → gateway → api (node edge) → jobs, a durable queue (node data) ← worker.0, worker.1".into(),
            format!(
                "(node work). A job takes a worker {} ms; the api answers 202 as soon as it is queued.",
                WORK.as_millis()
            ),
            format!(
                "try: kill worker.0   — mid-job: its lease runs out after {} s and the job goes to another worker",
                LEASE.as_secs()
            ),
            format!("     poison          — a job no worker can do: after {ATTEMPTS} attempts it goes to the dead letters"),
        ],
        topology: t,
        faults,
        gateway: Some(gateway),
        cuts_links: false,
        commands: Some((command, vec!["poison                    queue a job that always fails"])),
    }
}
