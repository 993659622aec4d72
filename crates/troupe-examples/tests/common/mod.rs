//! A child process running one of the example binaries, with its standard output read line
//! by line on a thread, for the multi-process tests.

#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running example process; killed (SIGKILL) when dropped
pub(crate) struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far
    pub(crate) seen: Vec<String>,
}

impl Proc {
    /// Starts `cmd` with its standard output piped
    ///
    /// Its standard error is dropped, unless `TROUPE_TEST_STDERR` is set (to debug a test:
    /// `TROUPE_TEST_STDERR=1 RUST_LOG=info cargo test ... -- --nocapture`).
    pub(crate) fn spawn(mut cmd: Command) -> Self {
        let stderr = if std::env::var_os("TROUPE_TEST_STDERR").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        cmd.stdout(Stdio::piped()).stderr(stderr);
        let mut child = cmd.spawn().expect("spawn the example");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a line satisfying `f`, returning it.
    pub(crate) fn wait_for(
        &mut self,
        what: &str,
        within: Duration,
        f: impl Fn(&str) -> bool,
    ) -> String {
        let (lines, seen) = (&self.lines, &mut self.seen);
        troupe_testkit::eventually_sync(what, within, || {
            while let Ok(line) = lines.try_recv() {
                seen.push(line.clone());
                if f(&line) {
                    return Ok(line);
                }
            }
            // the last lines of output as the observation
            Err(seen[seen.len().saturating_sub(20)..].to_vec())
        })
    }

    /// The address from the `listening ADDR` line
    pub(crate) fn listening(&mut self) -> SocketAddr {
        let line = self.wait_for("listening line", Duration::from_secs(30), |l| {
            l.starts_with("listening ")
        });
        line["listening ".len()..]
            .split_whitespace()
            .next()
            .and_then(|addr| addr.parse().ok())
            .expect("an address")
    }

    /// SIGKILL, and reap
    pub(crate) fn kill9(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
