//! What the multi-process remote benches share: flags and environment variables, the tokio
//! runtime, the child processes (spawned from this same binary, killed when dropped, exiting when
//! their stdin closes), `RESULT key=value` lines, casts and calls retried while a lane is full,
//! and the dev cluster CA.
//!
//! Each bench binary uses its own part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::mpsc;
use troupe_runtime::{Addr, CallError, Message, Reply, ReplyValue};

// ---------------------------------------------------------------- flags and environment

/// The value after `name` in `args`.
pub(crate) fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// The value after `name` in `args`, parsed.
pub(crate) fn parse_flag<T: std::str::FromStr>(args: &[String], name: &str) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    let value = flag(args, name).with_context(|| format!("missing {name}"))?;
    value
        .parse()
        .map_err(|e| anyhow::anyhow!("{name} {value}: {e}"))
}

/// Environment variable `name` as a number, if set.
pub(crate) fn env_number<T: std::str::FromStr>(name: &str) -> anyhow::Result<Option<T>> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{name} must be a positive integer, not {v:?}")),
        Err(_) => Ok(None),
    }
}

/// Tokio workers per process: 2, or env `workers_env` (for diagnosis: with 1, every task of a
/// process runs on one thread, so no hand-off between tasks has to wake another worker).
pub(crate) fn workers(workers_env: &str) -> anyhow::Result<usize> {
    Ok(env_number::<usize>(workers_env)?.unwrap_or(2).max(1))
}

/// A multi-thread runtime with [`workers`] workers.
pub(crate) fn runtime(workers_env: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers(workers_env)?)
        .enable_all()
        .build()
        .context("build the tokio runtime")
}

// ---------------------------------------------------------------- the child's side

/// The lines the parent writes to this child's stdin; the process exits once stdin closes (the
/// parent is gone or done with it), whether or not the receiver is still there.
pub(crate) fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read_line(&mut line), Ok(n) if n > 0) {
            let _ = tx.send(line.trim().to_string());
            line.clear();
        }
        std::process::exit(0);
    });
    rx
}

/// Exits this child process once its stdin closes.
pub(crate) fn exit_when_stdin_closes() {
    drop(stdin_lines());
}

/// Writes `line` to stdout and flushes it (the parent reads it at once).
pub(crate) fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

// ---------------------------------------------------------------- the parent's side

/// A child process (this same binary), killed when dropped; its stdout lines arrive on a channel.
pub(crate) struct Proc {
    label: String,
    child: Child,
    lines: std_mpsc::Receiver<String>,
}

impl Proc {
    /// Starts this binary with `args`; `label` names it in messages.
    pub(crate) fn spawn(label: impl Into<String>, args: &[String]) -> anyhow::Result<Self> {
        let label = label.into();
        let exe = std::env::current_exe().context("locate this benchmark binary")?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("start the {label} process"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = std_mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            label,
            child,
            lines,
        })
    }

    /// The next stdout line starting with `prefix`, within `deadline`; other lines are echoed
    /// to stderr.
    pub(crate) fn expect(&mut self, prefix: &str, deadline: Instant) -> anyhow::Result<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(other) => eprintln!("[{}] {other}", self.label),
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    bail!("no {prefix:?} line from the {} process in time", self.label)
                }
                Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    bail!(
                        "the {} process ended without a {prefix:?} line (status {status:?})",
                        self.label
                    )
                }
            }
        }
    }

    /// Writes `line` to the child's stdin.
    pub(crate) fn tell(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.child.stdin.as_mut().context("no stdin")?;
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .with_context(|| format!("write to the {} process", self.label))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `key=value` fields of a `RESULT` line.
pub(crate) fn fields(line: &str) -> HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Field `key` of a `RESULT` line, parsed.
pub(crate) fn field<T: std::str::FromStr>(
    map: &HashMap<String, String>,
    key: &str,
) -> anyhow::Result<T> {
    map.get(key)
        .with_context(|| format!("no {key} in the result"))?
        .parse()
        .map_err(|_| anyhow::anyhow!("bad {key} in the result"))
}

/// A cluster CA for `cluster` in `dir`, with a certificate for each of `nodes` beside it.
pub(crate) fn make_ca(dir: &Path, cluster: &str, nodes: &[&str]) -> anyhow::Result<()> {
    troupe_identity::init_ca(dir, cluster)?;
    for node in nodes {
        troupe_identity::issue_node(dir, node, dir)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- sending

/// Casts `msg()` until the lane takes it, yielding after each refusal; returns how many times
/// it was refused with `Overloaded` (none is lost).
pub(crate) async fn cast_retrying<M: Message>(
    to: &Addr<M>,
    msg: impl Fn() -> M,
) -> anyhow::Result<u64> {
    let mut retries = 0;
    loop {
        match to.cast(msg()) {
            Ok(()) => return Ok(retries),
            Err(CallError::Overloaded { .. }) => {
                retries += 1;
                tokio::task::yield_now().await;
            }
            Err(e) => bail!("cast failed: {e}"),
        }
    }
}

/// Calls `msg()` until the lane takes the call (an `Overloaded` lane is retried until
/// `timeout`).
pub(crate) async fn call_retrying<M: Message, R: ReplyValue>(
    to: &Addr<M>,
    msg: impl Fn(Reply<R>) -> M,
    timeout: Duration,
) -> anyhow::Result<R> {
    let deadline = Instant::now() + timeout;
    loop {
        match to.call(&msg, timeout).await {
            Ok(reply) => return Ok(reply),
            Err(CallError::Overloaded { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => bail!("call failed: {e}"),
        }
    }
}
