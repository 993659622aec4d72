//! A child process running one of the example binaries, with its standard output read line
//! by line on a thread, for the multi-process tests.
//!
//! # Layout
//!
//! - this file: [`Proc`], a child process and the signals the tests send it;
//! - `chromium.rs`: headless Chromium with one page open, driven over the DevTools protocol;
//! - `db_cluster.rs`: `db_cluster` as three replica processes and this test process as their
//!   client (`db_processes.rs`, `nemesis.rs`).

#![allow(dead_code)] // each test binary uses a different part

pub(crate) mod chromium;
pub(crate) mod db_cluster;

use std::io::Write;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running example process; killed (SIGKILL) when dropped
pub(crate) struct Proc {
    child: Child,
    /// Its standard input, for examples that read commands from it
    stdin: Option<ChildStdin>,
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
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = cmd.spawn().expect("spawn the example");
        let stdin = child.stdin.take();
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
            stdin,
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

    /// Types `line` on its standard input, as a person at its console would.
    pub(crate) fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("standard input piped");
        writeln!(stdin, "{line}").expect("write to its standard input");
        stdin.flush().expect("flush its standard input");
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

    /// The address from the `admin http://ADDR` line (`--admin`), printed before `listening`
    pub(crate) fn admin(&mut self) -> SocketAddr {
        let line = match self.seen.iter().find(|l| l.starts_with("admin http://")) {
            Some(line) => line.clone(),
            None => self.wait_for("admin line", Duration::from_secs(30), |l| {
                l.starts_with("admin http://")
            }),
        };
        line["admin http://".len()..]
            .trim()
            .parse()
            .expect("an admin address")
    }

    /// The process's id
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGSTOP: the process stays alive, its sockets open, but runs nothing until
    /// [`Proc::resume`]
    pub(crate) fn stop(&self) {
        self.signal("STOP");
    }

    /// SIGCONT, after [`Proc::stop`]
    pub(crate) fn resume(&self) {
        self.signal("CONT");
    }

    /// Sends `signal` (a name `kill -s` takes) with the kill(1) binary; panics if it was not
    /// delivered, unlike [`Proc::kill9`], as only a live process can be stopped or resumed
    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-s", signal, &pid])
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill -s {signal} {pid}: {status}");
    }

    /// Waits (bounded) for the process to exit by itself, returning its status.
    pub(crate) fn wait_exit(&mut self, what: &str, within: Duration) -> std::process::ExitStatus {
        let child = &mut self.child;
        troupe_testkit::eventually_sync(what, within, || {
            child
                .try_wait()
                .map_err(|e| e.to_string())
                .and_then(|s| s.ok_or_else(|| "running".to_string()))
        })
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

/// The failover example as node `node` of a cluster whose CA and node files are in `ca`, its
/// metadata replica's files under `data/NODE`, pinging every 20 ms, a killed peer seen down
/// within `peer_down_ms`, joining through `seed` (none: it is the first)
pub(crate) fn failover_example(
    node: &str,
    ca: &std::path::Path,
    data: &std::path::Path,
    seed: Option<SocketAddr>,
    peer_down_ms: u64,
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_failover"));
    cmd.args([
        "--node",
        node,
        "--listen",
        "127.0.0.1:0",
        "--interval-ms",
        "20",
    ])
    .args(["--peer-down-ms", &peer_down_ms.to_string()])
    .arg("--ca")
    .arg(ca)
    .arg("--data")
    .arg(data.join(node));
    if let Some(seed) = seed {
        cmd.args(["--seed", &seed.to_string()]);
    }
    cmd
}

/// Runs the `troupe` CLI with `args` (off the async runtime's threads: it waits for answers
/// from the processes under test) and returns its output.
///
/// The CLI is another package's binary, so it is found beside this package's binaries in the
/// same target directory, where `cargo test --workspace` (what CI runs) builds it.
pub(crate) async fn troupe_cli(args: &[&str]) -> std::process::Output {
    let dir = std::path::Path::new(env!("CARGO_BIN_EXE_shop"))
        .parent()
        .expect("the binaries' directory");
    let path = dir.join(format!("troupe{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build -p troupe-cli` (cargo test --workspace builds it)",
        path.display()
    );
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(path).args(&args).output().expect("run troupe")
    })
    .await
    .expect("the command ran")
}

/// The output of a CLI run that succeeded, as text; panics with its stderr otherwise.
pub(crate) fn succeeded(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
