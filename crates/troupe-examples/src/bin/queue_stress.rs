//! Test helper for the queue's kill -9 durability test (`tests/queue_processes.rs`); not a user
//! tool
//!
//! `queue_stress <path> [max-items]` opens the durable queue at `path` (capacity 10 000 000)
//! and enqueues `item <n>` payloads, at most `max-items` (default 1 000 000), committing each
//! to disk before printing its id on its own line of stdout, flushed: every id printed is an
//! acknowledged enqueue. The test kills this process with SIGKILL mid-stream and checks that
//! every printed id survived.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use bytes::Bytes;
use troupe::queue::core::QueueConfig;
use troupe::queue::storage::Storage;

/// The capacity the stress queue runs with; the test reopens it with the same
const CAPACITY: usize = 10_000_000;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: queue_stress <path> [max-items]");
        return ExitCode::from(2);
    };
    let max: u64 = match args.next().map(|s| s.parse()) {
        None => 1_000_000,
        Some(Ok(n)) => n,
        Some(Err(err)) => {
            eprintln!("bad max-items: {err}");
            return ExitCode::from(2);
        }
    };
    let config = QueueConfig {
        capacity: CAPACITY,
        ..QueueConfig::default()
    };
    let (storage, mut queue) = match Storage::open(&path, config) {
        Ok(opened) => opened,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    for n in 0..max {
        let id = match queue.enqueue(Bytes::from(format!("item {n}")), Instant::now()) {
            Ok(id) => id,
            Err(err) => {
                eprintln!("{err}");
                return ExitCode::FAILURE;
            }
        };
        let events: Vec<_> = std::iter::from_fn(|| queue.poll_event()).collect();
        if let Err(err) = storage.commit(&events) {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
        if writeln!(out, "{}", id.0)
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
