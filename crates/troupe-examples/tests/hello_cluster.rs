//! hello_cluster as a real process: the counter crashes and is restarted while the pinger keeps
//! calling it, and SIGTERM shuts the whole topology down gracefully.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_hello_cluster"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn hello_cluster")
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
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    // wait (bounded) for a report that shows calls answered across several restarts
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if let Some(t) = tallies(&line) {
            last = Some(t);
            if t.0 >= 10 && t.1 >= 2 {
                break;
            }
        }
    }
    let (calls, restarts, errors) = last.expect("no report line within 30 s");
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
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("hello_cluster did not stop within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    // The reader thread may still hold the last lines: read until it sees the pipe close.
    let mut rest = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        rest.push(line);
    }
    assert!(
        rest.iter().any(|l| l == "hello_cluster: stopped"),
        "{rest:?}"
    );
}
