//! hello_cluster as a real process: the counter crashes and is restarted while the pinger keeps
//! calling it, and SIGTERM shuts the whole topology down gracefully.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use troupe_testkit::eventually_sync;

fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_hello_cluster"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hello_cluster")
}

/// SIGKILLs the process `0` if the test panics (a std `Child` is not killed when dropped).
struct KillOnPanic(u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

/// Parses `calls N   restarts seen N   errors N`.
fn tallies(line: &str) -> Option<(u64, u64, u64)> {
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match (line.starts_with("calls"), nums.as_slice()) {
        (true, [calls, restarts, errors]) => Some((*calls, *restarts, *errors)),
        _ => None,
    }
}

#[test]
fn the_pinger_keeps_calling_through_restarts_and_sigterm_stops_it() {
    let mut child = spawn(&["--crash-every", "3", "--interval-ms", "5"]);
    let _kill_on_panic = KillOnPanic(child.id());
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // wait (bounded) for a report that shows calls answered across several restarts
    let mut last = None;
    let (calls, restarts, errors) = eventually_sync(
        "a report of 10 calls across 2 restarts",
        Duration::from_secs(30),
        || {
            while let Ok(line) = rx.try_recv() {
                if let Some(t) = tallies(&line) {
                    last = Some(t);
                    if t.0 >= 10 && t.1 >= 2 {
                        return Ok(t);
                    }
                }
            }
            Err(last)
        },
    );
    assert!(
        calls >= 10 && restarts >= 2,
        "calls {calls}, restarts {restarts}"
    );
    // each restart costs the one call that crashed the counter, no more
    assert!(
        errors <= restarts + 1,
        "errors {errors}, restarts {restarts}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let exit = eventually_sync(
        "hello_cluster to stop after SIGTERM",
        Duration::from_secs(15),
        || child.try_wait().expect("wait"),
    );
    assert!(exit.success(), "{exit:?}");
    // The reader thread may still hold the last lines: read until it sees the pipe close.
    let mut rest = Vec::new();
    eventually_sync("the output pipe to close", Duration::from_secs(5), || {
        loop {
            match rx.try_recv() {
                Ok(line) => rest.push(line),
                Err(mpsc::TryRecvError::Empty) => return false,
                Err(mpsc::TryRecvError::Disconnected) => return true,
            }
        }
    });
    assert!(
        rest.iter().any(|l| l == "hello_cluster: stopped"),
        "{rest:?}"
    );
}
