//! The client load, the same for both systems: `clients` tasks, each running one operation at
//! a time in a loop, bounded by the phase's duration and by a total operation count.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Value size of every put
pub const VALUE_LEN: usize = 100;

/// The value every put writes (100 bytes)
pub fn value() -> Bytes {
    Bytes::from_static(&[b'v'; VALUE_LEN])
}

/// Key `i` of task `task`: 16 bytes, distinct across tasks and iterations
pub fn key(task: usize, i: u64) -> Bytes {
    Bytes::from(format!("k{task:03}-{i:011}"))
}

/// How one phase is bounded
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Concurrent tasks
    pub clients: usize,
    /// No task starts an operation after this long
    pub duration: Duration,
    /// No more operations than this are started in all
    pub max_ops: u64,
    /// One operation that takes longer counts as an error
    pub op_timeout: Duration,
    /// Operations slower than this are counted, and listed on standard error (one line per
    /// stall)
    pub slow: Option<Duration>,
}

/// What one phase measured
#[derive(Debug)]
pub struct PhaseResult {
    /// Successful operations
    pub ops: u64,
    /// Failed or timed-out operations
    pub errors: u64,
    /// From the start until the last task finished its last operation
    pub elapsed: Duration,
    /// Latency of each successful operation, sorted, in microseconds
    pub latencies_us: Vec<u32>,
    /// The first few distinct error messages
    pub first_errors: Vec<String>,
    /// Whole seconds of the phase in which no operation completed
    pub stalled_secs: u64,
    /// Operations completed (successful or not) in each whole second of the phase
    pub timeline: Vec<u64>,
    /// When the slowest successful operation started, from the phase's start
    pub slowest_at: Duration,
    /// Operations slower than [`Bounds::slow`]
    pub slow_ops: u64,
    /// Per task, the iterations that succeeded (for the put phase: the keys written)
    pub done: Vec<Vec<u64>>,
}

impl PhaseResult {
    /// Successful operations per second
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `p`th percentile latency (0..=100), in microseconds
    pub fn percentile_us(&self, p: f64) -> u32 {
        if self.latencies_us.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * self.latencies_us.len() as f64).ceil() as usize;
        self.latencies_us[rank.clamp(1, self.latencies_us.len()) - 1]
    }

    /// The slowest successful operation, in microseconds
    pub fn max_us(&self) -> u32 {
        self.latencies_us.last().copied().unwrap_or(0)
    }
}

struct TaskResult {
    latencies_us: Vec<u32>,
    done: Vec<u64>,
    errors: u64,
    first_errors: Vec<String>,
    /// Latency (µs) and start offset of the slowest successful operation
    slowest: (u32, Duration),
}

const KEEP_ERRORS: usize = 5;

/// Runs `op(task, i)` in `bounds.clients` concurrent loops until the duration or the
/// operation count is used up
///
/// # Errors
///
/// If a task panicked or the tasks did not finish within the duration plus two operation
/// timeouts (they are aborted then).
pub async fn run_phase<F, Fut>(bounds: Bounds, op: F) -> anyhow::Result<PhaseResult>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let op = Arc::new(op);
    let started = Arc::new(AtomicU64::new(0));
    let slow_ops = Arc::new(AtomicU64::new(0));
    let last_listed_ms = Arc::new(AtomicU64::new(u64::MAX));
    let completed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + bounds.duration;

    // Completions per second: a stall shows here, not in ops/s alone.
    let watcher = {
        let completed = completed.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let (mut last, mut timeline) = (0, Vec::new());
            loop {
                tick.tick().await;
                let now = completed.load(Ordering::Relaxed);
                timeline.push(now - last);
                last = now;
                if Instant::now() >= deadline {
                    return timeline;
                }
            }
        })
    };

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..bounds.clients {
        let (op, started, completed) = (op.clone(), started.clone(), completed.clone());
        let (slow_ops, last_listed_ms) = (slow_ops.clone(), last_listed_ms.clone());
        tasks.spawn(async move {
            let mut out = TaskResult {
                latencies_us: Vec::new(),
                done: Vec::new(),
                errors: 0,
                first_errors: Vec::new(),
                slowest: (0, Duration::ZERO),
            };
            for i in 0.. {
                if Instant::now() >= deadline
                    || started.fetch_add(1, Ordering::Relaxed) >= bounds.max_ops
                {
                    break;
                }
                let t0 = Instant::now();
                let result = match tokio::time::timeout(bounds.op_timeout, op(task, i)).await {
                    Ok(result) => result,
                    Err(_) => Err(format!("no answer within {:?}", bounds.op_timeout)),
                };
                let took = t0.elapsed();
                let done = completed.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(slow) = bounds.slow
                    && took > slow
                {
                    slow_ops.fetch_add(1, Ordering::Relaxed);
                    // One line per stall: the first slow operation that started more than
                    // 100 ms after the last one listed.
                    let at_ms = (t0 - start).as_millis() as u64;
                    let last = last_listed_ms.load(Ordering::Relaxed);
                    if (last == u64::MAX || at_ms > last + 100)
                        && last_listed_ms
                            .compare_exchange(last, at_ms, Ordering::Relaxed, Ordering::Relaxed)
                            .is_ok()
                    {
                        eprintln!(
                            "# slow: task {task} op {i} started at {:.3} s, took {:.1} ms ({}; {done} ops completed by then)",
                            (t0 - start).as_secs_f64(),
                            took.as_secs_f64() * 1000.0,
                            if result.is_ok() { "ok" } else { "failed" },
                        );
                    }
                }
                match result {
                    Ok(()) => {
                        let us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
                        out.latencies_us.push(us);
                        if us > out.slowest.0 {
                            out.slowest = (us, t0 - start);
                        }
                        out.done.push(i);
                    }
                    Err(err) => {
                        out.errors += 1;
                        if out.first_errors.len() < KEEP_ERRORS && !out.first_errors.contains(&err)
                        {
                            out.first_errors.push(err);
                        }
                    }
                }
            }
            (task, out)
        });
    }

    let limit = bounds.duration + 2 * bounds.op_timeout;
    let mut per_task: Vec<Option<TaskResult>> = (0..bounds.clients).map(|_| None).collect();
    let joined = tokio::time::timeout_at((start + limit).into(), async {
        while let Some(joined) = tasks.join_next().await {
            let (task, out) = joined?;
            per_task[task] = Some(out);
        }
        Ok::<_, tokio::task::JoinError>(())
    })
    .await;
    let elapsed = start.elapsed();
    match joined {
        Ok(Ok(())) => {}
        Ok(Err(err)) => anyhow::bail!("a client task failed: {err}"),
        Err(_) => {
            tasks.abort_all();
            anyhow::bail!("client tasks still running {limit:?} after the phase started");
        }
    }
    let timeline = watcher.await.unwrap_or_default();

    let mut result = PhaseResult {
        ops: 0,
        errors: 0,
        elapsed,
        latencies_us: Vec::new(),
        first_errors: Vec::new(),
        stalled_secs: timeline.iter().filter(|&&n| n == 0).count() as u64,
        timeline,
        slowest_at: Duration::ZERO,
        slow_ops: slow_ops.load(Ordering::Relaxed),
        done: Vec::with_capacity(bounds.clients),
    };
    let mut slowest = 0;
    for out in per_task.into_iter().flatten() {
        if out.slowest.0 > slowest {
            (slowest, result.slowest_at) = out.slowest;
        }
        result.ops += out.done.len() as u64;
        result.errors += out.errors;
        result.latencies_us.extend(out.latencies_us);
        for err in out.first_errors {
            if result.first_errors.len() < KEEP_ERRORS && !result.first_errors.contains(&err) {
                result.first_errors.push(err);
            }
        }
        result.done.push(out.done);
    }
    result.latencies_us.sort_unstable();
    Ok(result)
}

/// The keys the put phase wrote, as (task, iteration), interleaved across tasks so readers
/// spread over all of them
pub fn written_keys(put: &PhaseResult) -> Vec<(usize, u64)> {
    let longest = put.done.iter().map(Vec::len).max().unwrap_or(0);
    let mut keys = Vec::with_capacity(put.ops as usize);
    for n in 0..longest {
        for (task, done) in put.done.iter().enumerate() {
            if let Some(&i) = done.get(n) {
                keys.push((task, i));
            }
        }
    }
    keys
}

/// The key get `i` of task `task` reads, out of the `written` keys
pub fn read_key(written: &[(usize, u64)], clients: usize, task: usize, i: u64) -> Bytes {
    let n = written.len() as u64;
    let at = (task as u64).wrapping_add(i.wrapping_mul(clients as u64)) % n.max(1);
    let (t, k) = written.get(at as usize).copied().unwrap_or((task, 0));
    key(t, k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sixteen_bytes() {
        assert_eq!(key(63, 1_999_999).len(), 16);
        assert_eq!(key(0, 0).len(), 16);
    }

    #[test]
    fn percentiles() {
        let r = PhaseResult {
            ops: 100,
            errors: 0,
            elapsed: Duration::from_secs(1),
            latencies_us: (1..=100).collect(),
            first_errors: Vec::new(),
            stalled_secs: 0,
            timeline: Vec::new(),
            slowest_at: Duration::ZERO,
            slow_ops: 0,
            done: Vec::new(),
        };
        assert_eq!(r.percentile_us(50.0), 50);
        assert_eq!(r.percentile_us(99.0), 99);
        assert_eq!(r.max_us(), 100);
    }
}
