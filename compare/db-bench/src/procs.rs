//! Server processes this bench started: killed by PID when the guard drops (normal end, error
//! or panic), their output kept in log files for when something goes wrong.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;

/// One started server process
pub struct Proc {
    /// A name for messages (`db-0`, `etcd-1`)
    pub name: String,
    child: Child,
    /// Its standard error (and, for db_cluster, standard output after the first line)
    pub log: PathBuf,
}

impl Proc {
    /// The process id
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// The processes started so far; every one is killed (SIGKILL, by PID) and reaped on drop
#[derive(Default)]
pub struct Procs {
    procs: Vec<Proc>,
}

impl Procs {
    /// Starts `cmd` with standard error to `log`, standard output discarded
    pub fn spawn(&mut self, name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<()> {
        let err = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(err));
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        self.procs.push(Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        });
        Ok(())
    }

    /// Starts `cmd` and waits (at most `within`) for the `listening ADDR` line on its standard
    /// output; the rest of its standard output goes to `{log}.stdout`
    pub fn spawn_listening(
        &mut self,
        name: &str,
        mut cmd: Command,
        log: &Path,
        within: Duration,
    ) -> anyhow::Result<SocketAddr> {
        let err = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err));
        let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        self.procs.push(Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        });
        let mut rest = File::create(log.with_extension("stdout"))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // `listening ADDR node NAME` (the node part since the launcher names it)
                if let Some(addr) = line.strip_prefix("listening ")
                    && let Some(tx) = tx.take()
                {
                    let addr = addr.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.to_string());
                }
                let _ = writeln!(rest, "{line}");
            }
        });
        let addr = rx
            .recv_timeout(within)
            .map_err(|_| anyhow::anyhow!("{name} printed no `listening` line within {within:?}"))?;
        addr.parse()
            .with_context(|| format!("{name} listens on {addr:?}"))
    }

    /// The processes, in start order
    pub fn iter(&self) -> impl Iterator<Item = &Proc> {
        self.procs.iter()
    }

    /// Whether each process is still running (`Some(status)` if it exited)
    pub fn exited(&mut self) -> Vec<(String, Option<std::process::ExitStatus>)> {
        self.procs
            .iter_mut()
            .map(|p| (p.name.clone(), p.child.try_wait().ok().flatten()))
            .collect()
    }

    /// The last `lines` lines of every process's log, for error messages
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for p in &self.procs {
            let text = std::fs::read_to_string(&p.log).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let from = all.len().saturating_sub(lines);
            out.push_str(&format!(
                "--- {} (pid {}), {}\n",
                p.name,
                p.pid(),
                p.log.display()
            ));
            for line in &all[from..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Kills and reaps every process
    pub fn kill_all(&mut self) {
        for p in &mut self.procs {
            // Child::kill sends SIGKILL to this child's PID, nothing else.
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        self.procs.clear();
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// `n` distinct free TCP ports on 127.0.0.1 (bound together, then released)
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("finding free ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}
