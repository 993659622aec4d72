//! Nemesis: `db_cluster` as three OS processes on loopback, broken three ways while clients
//! write, then checked for linearizability: in single-leader majority mode with automatic
//! promotion, and in Raft mode, where the clients also read from the leader throughout and
//! those reads join the histories (a deposed leader must not answer stale).
//!
//! One fault after another, each healed before the next, each on the leader of the moment:
//!
//! - its process is paused (SIGSTOP) for longer than the peer-down timeout plus the promotion
//!   delay, so a follower is promoted while it cannot run; resumed (SIGCONT), it must follow;
//! - its process is killed (SIGKILL) and, once a follower leads, restarted from its files; it
//!   must follow and catch up;
//! - it is cut off from both followers by `iptables` DROP rules on loopback UDP between its
//!   port and theirs, while this test process still reaches it: a live leader that cannot
//!   commit. A follower is promoted; once the rules are removed, the old leader must follow.
//!   The test removes exactly the rules it added, on a panic too. Skipped, with a line saying
//!   why, where `iptables` is missing or may not run; the other two faults still run.
//!
//! Meanwhile [`CLIENTS`] tasks put and compare-and-set [`KEYS`] keys they share, recording
//! each operation's invocation and completion (time since the clients started: this process is
//! the only client, so one clock orders every operation) and its outcome, unknown when the
//! call failed. Checked:
//!
//! - during each fault, the majority side keeps acknowledging writes;
//! - after each fault, one leader that every replica follows at its epoch, the replica that
//!   was hit not leading, every replica having applied what the leader had;
//! - at the end, every replica at one applied index, and each key's history, closed by a read
//!   at the leader, linearizable (`troupe_sim::check_register`): no acknowledged write lost,
//!   no compare-and-set that saw a value it could not have seen.
//!
//! In majority mode, reads during the faults are left out of the histories: there a deposed
//! leader may serve stale reads until it hears of the newer epoch (`docs/db.md`, "What this mode of
//! replication does not promise"), as in `troupe-db`'s simulated test `random_faults_sim`.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::db_cluster::{PEER_DOWN_MS, Replicas, T, join, setup};
use parking_lot::Mutex;
use troupe::db::{AckMode, DbClient, ReplicaStatus, Role, WriteOutcome};
use troupe_sim::{Operation, RegisterOp, check_register};
use troupe_testkit::eventually;

const PROMOTE_AFTER_MS: u64 = 300;
/// How long the leader stays paused or cut off, at least: longer than the peer-down timeout
/// plus the promotion delay, with room for a loaded machine
const FAULT: Duration = Duration::from_millis(PEER_DOWN_MS + PROMOTE_AFTER_MS + 2000);
const CLIENTS: usize = 4;
const KEYS: usize = 8;
/// One operation's deadline, retries included. One call to one replica waits at most 2 s of
/// it: a longer deadline lets a put that got no answer from an unresponsive leader try the
/// others, so the clients follow a promotion instead of timing out on the old leader for as
/// long as the fault lasts.
const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// Between one client's operations: keeps each key's history short enough to check
const PACE: Duration = Duration::from_millis(20);
/// Each client's limit, should the test never tell it to stop
const MAX_OPS_PER_CLIENT: u64 = 10_000;
/// Acknowledged operations that show the cluster takes writes
const PROGRESS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn majority_mode_stays_linearizable_through_pauses_kills_and_partitions() {
    nemesis(Some(AckMode::Majority)).await;
}

/// Raft mode: the same faults, with reads from the leader in the histories
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_mode_stays_linearizable_with_reads_through_pauses_kills_and_partitions() {
    nemesis(None).await;
}

/// The faults and the checks, for `mode` (`None`: Raft)
async fn nemesis(mode: Option<AckMode>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ack = if mode.is_some() { "majority" } else { "raft" };
    let mut replicas = setup(dir.path(), ack, PROMOTE_AFTER_MS);
    let (_node, net, client) = join(&replicas, mode).await;
    one_leader_followed(&client).await;
    // reads from the leader are linearizable only in Raft mode
    let reads = mode.is_none();
    let workload = Workload::start(&client.with_timeout(OP_TIMEOUT), CLIENTS, reads);
    workload.wait_for_progress("writes before any fault").await;

    pause_leader(&replicas, &client, &workload).await;
    kill_and_restart_leader(&mut replicas, &client, &workload).await;
    let partition = match iptables_unavailable() {
        None => {
            partition_leader(&replicas, &client, &workload).await;
            "ran"
        }
        Some(reason) => {
            println!("nemesis: iptables partition skipped: {reason}");
            "skipped"
        }
    };

    let history = workload.stop().await;
    one_leader_followed(&client).await;
    let applied = converged(&client).await;
    let reader = client.with_timeout(OP_TIMEOUT);
    let mut ops = history.ops.into_inner();
    let mut violations = Vec::new();
    for (key, key_ops) in &mut ops {
        let invoked = history.start.elapsed();
        let value = eventually(&format!("a leader read of {key}"), T, async || {
            reader.get(key.clone()).await
        })
        .await;
        key_ops.push(Operation {
            invoked,
            completed: Some(history.start.elapsed()),
            op: RegisterOp::Read(value.as_deref().map(text)),
        });
        if let Err(violation) = check(key_ops) {
            violations.push(format!("key {key}: {violation}"));
        }
    }
    let (acked, unknown) = (history.acked.into_inner(), history.unknown.into_inner());
    println!(
        "NEMESIS mode={ack} ops={} acked={acked} unknown={unknown} keys={} \
         partition={partition} applied={applied} elapsed={:.1}s",
        acked + unknown,
        ops.len(),
        history.start.elapsed().as_secs_f64()
    );
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    net.shutdown().await;
}

/// SIGSTOP the leader for longer than failure detection and promotion take, then SIGCONT
async fn pause_leader(replicas: &Replicas, client: &DbClient, workload: &Workload) {
    let old = one_leader_followed(client).await;
    let paused = old.id as usize;
    replicas.stop(paused);
    let since = Instant::now();
    let new = promoted(client, paused, old.epoch).await;
    workload
        .wait_for_progress("writes while the old leader is paused")
        .await;
    tokio::time::sleep(FAULT.saturating_sub(since.elapsed())).await;
    replicas.resume(paused);
    let held = since.elapsed();
    let after = rejoined(client, paused).await;
    println!(
        "nemesis: db-{paused} paused for {held:?}; db-{} promoted at epoch {}; db-{} leads",
        new.id, new.epoch, after.id
    );
    workload.wait_for_progress("writes after the pause").await;
}

/// SIGKILL the leader, and once a follower leads, restart it from its files
async fn kill_and_restart_leader(replicas: &mut Replicas, client: &DbClient, workload: &Workload) {
    let old = one_leader_followed(client).await;
    let killed = old.id as usize;
    replicas.kill9(killed);
    let new = promoted(client, killed, old.epoch).await;
    workload
        .wait_for_progress("writes while the old leader is dead")
        .await;
    replicas.start(killed);
    let after = rejoined(client, killed).await;
    println!(
        "nemesis: db-{killed} killed and restarted; db-{} promoted at epoch {}; db-{} leads",
        new.id, new.epoch, after.id
    );
    workload.wait_for_progress("writes after the restart").await;
}

/// Cut the leader off from both followers for longer than failure detection and promotion
/// take, leaving this process's links to every replica up, then heal
async fn partition_leader(replicas: &Replicas, client: &DbClient, workload: &Workload) {
    let old = one_leader_followed(client).await;
    let cut = old.id as usize;
    let followers: Vec<u16> = (0..3)
        .filter(|&i| i != cut)
        .map(|i| replicas.port(i))
        .collect();
    let partition = Partition::isolate(replicas.port(cut), &followers);
    let since = Instant::now();
    let new = promoted(client, cut, old.epoch).await;
    // the premise: the old leader is alive and a client still reaches it
    let cut_off = statuses(client).await[cut]
        .clone()
        .expect("the cut-off leader answers this process");
    workload
        .wait_for_progress("writes while the old leader is cut off")
        .await;
    tokio::time::sleep(FAULT.saturating_sub(since.elapsed())).await;
    drop(partition);
    let held = since.elapsed();
    let after = rejoined(client, cut).await;
    println!(
        "nemesis: db-{cut} cut off for {held:?}, answering meanwhile as {:?} at epoch {}; \
         db-{} promoted at epoch {}; db-{} leads",
        cut_off.role, cut_off.epoch, new.id, new.epoch, after.id
    );
    workload
        .wait_for_progress("writes after the partition healed")
        .await;
}

/// Each replica's status, `None` for one that did not answer
async fn statuses(client: &DbClient) -> Vec<Option<ReplicaStatus>> {
    client
        .statuses()
        .await
        .into_iter()
        .map(Result::ok)
        .collect()
}

/// Waits for one leader that every replica answers and follows at its epoch; its status
async fn one_leader_followed(client: &DbClient) -> ReplicaStatus {
    eventually("one leader, followed by every replica", T, async || {
        let seen = statuses(client).await;
        let answered: Vec<&ReplicaStatus> = seen.iter().flatten().collect();
        let leaders: Vec<&&ReplicaStatus> =
            answered.iter().filter(|s| s.role == Role::Leader).collect();
        match leaders[..] {
            [leader]
                if answered.len() == seen.len()
                    && answered
                        .iter()
                        .all(|s| s.leader == Some(leader.id) && s.epoch == leader.epoch) =>
            {
                Ok((*leader).clone())
            }
            _ => Err(seen),
        }
    })
    .await
}

/// Waits for a replica other than `old` to lead at an epoch after `epoch`: a promotion
async fn promoted(client: &DbClient, old: usize, epoch: u64) -> ReplicaStatus {
    let what = format!("a replica other than db-{old} leading after epoch {epoch}");
    eventually(&what, T, async || {
        let seen = statuses(client).await;
        let new = seen
            .iter()
            .flatten()
            .find(|s| s.role == Role::Leader && s.id as usize != old && s.epoch > epoch);
        new.cloned().ok_or(seen)
    })
    .await
}

/// Waits until replica `hit`, back from a fault, follows the one leader and every replica has
/// applied what that leader had; the leader's status
async fn rejoined(client: &DbClient, hit: usize) -> ReplicaStatus {
    let leader = one_leader_followed(client).await;
    assert_ne!(
        leader.id as usize, hit,
        "db-{hit} leads again after its fault, though a follower was promoted meanwhile"
    );
    let what = format!("every replica applying index {}", leader.applied_index);
    eventually(&what, T, async || {
        let seen = statuses(client).await;
        let applied: Vec<Option<u64>> = seen
            .iter()
            .map(|s| s.as_ref().map(|s| s.applied_index))
            .collect();
        if applied
            .iter()
            .all(|a| a.is_some_and(|a| a >= leader.applied_index))
        {
            Ok(())
        } else {
            Err(applied)
        }
    })
    .await;
    leader
}

/// Waits for every replica to have applied the same index (once no one writes); that index
async fn converged(client: &DbClient) -> u64 {
    eventually("every replica at one applied index", T, async || {
        let applied: Vec<Option<u64>> = statuses(client)
            .await
            .iter()
            .map(|s| s.as_ref().map(|s| s.applied_index))
            .collect();
        match applied[..] {
            [Some(first), ..] if applied.iter().all(|a| *a == Some(first)) => Ok(first),
            _ => Err(applied),
        }
    })
    .await
}

fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// Every client's operations, per key, timed from the test's start
struct History {
    start: Instant,
    ops: Mutex<BTreeMap<String, Vec<Operation>>>,
    acked: AtomicU64,
    unknown: AtomicU64,
}

impl History {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn record(&self, key: String, invoked: Duration, completed: Option<Duration>, op: RegisterOp) {
        let operation = Operation {
            invoked,
            completed,
            op,
        };
        let counter = if is_known(&operation) {
            &self.acked
        } else {
            &self.unknown
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.ops.lock().entry(key).or_default().push(operation);
    }
}

/// Whether the operation's outcome came back
fn is_known(op: &Operation) -> bool {
    op.completed.is_some() && !matches!(op.op, RegisterOp::Cas { swapped: None, .. })
}

/// The clients, each putting and compare-and-setting the shared keys until told to stop
struct Workload {
    history: Arc<History>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workload {
    /// `reads`: each client also reads from the leader, and those reads join the histories
    fn start(db: &DbClient, clients: usize, reads: bool) -> Self {
        let history = Arc::new(History {
            start: Instant::now(),
            ops: Mutex::new(BTreeMap::new()),
            acked: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|id| {
                let client = Client {
                    id,
                    db: db.clone(),
                    history: history.clone(),
                    believed: BTreeMap::new(),
                    reads,
                };
                tokio::spawn(client.run(stop.clone()))
            })
            .collect();
        Self {
            history,
            stop,
            tasks,
        }
    }

    async fn wait_for_progress(&self, what: &str) {
        let target = self.history.acked.load(Ordering::Relaxed) + PROGRESS;
        eventually(&format!("{what}: {target} acknowledged"), T, async || {
            let acked = self.history.acked.load(Ordering::Relaxed);
            if acked >= target { Ok(()) } else { Err(acked) }
        })
        .await;
    }

    async fn stop(self) -> History {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("a client task panicked");
        }
        Arc::into_inner(self.history).expect("every client task has ended")
    }
}

/// One client task
struct Client {
    id: usize,
    db: DbClient,
    history: Arc<History>,
    /// What this client last saw each key hold, for its compare-and-sets
    believed: BTreeMap<String, Option<String>>,
    /// Whether it reads from the leader too
    reads: bool,
}

impl Client {
    async fn run(mut self, stop: Arc<AtomicBool>) {
        for i in 0..MAX_OPS_PER_CLIENT {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            // the clients walk the keys in one order from different places, so they meet
            let key = format!("k{}", (i as usize * CLIENTS + self.id) % KEYS);
            // unique, so the checker can tell every write apart
            let value = format!("c{}-{i}", self.id);
            if self.reads && i % 4 == 3 {
                self.read(key).await;
            } else if i % 3 == 2 {
                self.cas(key, value).await;
            } else {
                self.put(key, value).await;
            }
            // pacing, not synchronization: keeps the histories short enough to check
            tokio::time::sleep(PACE).await;
        }
    }

    /// A read from the leader; one that fails tells nothing and is left out
    async fn read(&mut self, key: String) {
        let invoked = self.history.now();
        if let Ok(value) = self.db.get(key.clone()).await {
            let completed = Some(self.history.now());
            let op = RegisterOp::Read(value.as_deref().map(text));
            self.history.record(key, invoked, completed, op);
        }
    }

    async fn put(&mut self, key: String, value: String) {
        let invoked = self.history.now();
        let result = self.db.put(key.clone(), value.clone()).await;
        let completed = result.is_ok().then(|| self.history.now());
        if result.is_ok() {
            self.believed.insert(key.clone(), Some(value.clone()));
        }
        let op = RegisterOp::Write(Some(value));
        self.history.record(key, invoked, completed, op);
    }

    async fn cas(&mut self, key: String, value: String) {
        let expected = self.believed.get(&key).cloned().flatten();
        let invoked = self.history.now();
        let result = self
            .db
            .cas(
                key.clone(),
                expected.clone().map(Bytes::from),
                Some(Bytes::from(value.clone())),
            )
            .await;
        let completed = result.is_ok().then(|| self.history.now());
        let swapped = match result.map(|written| written.outcome) {
            Ok(WriteOutcome::Swapped) => {
                self.believed.insert(key.clone(), Some(value.clone()));
                Some(true)
            }
            Ok(WriteOutcome::CasFailed { actual }) => {
                self.believed
                    .insert(key.clone(), actual.as_deref().map(text));
                Some(false)
            }
            Ok(other) => panic!("a compare-and-set answered {other:?}"),
            // it may or may not have been applied
            Err(_) => None,
        };
        let op = RegisterOp::Cas {
            expected,
            new: Some(value),
            swapped,
        };
        self.history.record(key, invoked, completed, op);
    }
}

/// Checks one key's history, in order of invocation (the order the search tries first), on a
/// thread with a large stack: the search recurses once per operation it orders
fn check(ops: &mut [Operation]) -> Result<(), String> {
    ops.sort_by_key(|op| op.invoked);
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn_scoped(scope, || check_register(ops, None))
            .expect("spawn the checker thread")
            .join()
            .expect("the checker panicked")
    })
    .map_err(|violation| violation.to_string())
}

/// Why this test cannot add firewall rules here, if it cannot
fn iptables_unavailable() -> Option<String> {
    match Command::new("iptables").arg("--version").output() {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Some("iptables is not installed (not on PATH)".into());
        }
        Err(err) => return Some(format!("iptables did not run: {err}")),
        Ok(_) => {}
    }
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|out| text(&out.stdout).trim().to_string());
    match uid {
        Ok(uid) if uid == "0" => {}
        Ok(uid) => return Some(format!("not root (uid {uid})")),
        Err(err) => return Some(format!("id -u did not run: {err}")),
    }
    match Command::new("iptables")
        .args(["-w", "-S", "INPUT"])
        .output()
    {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`iptables -w -S INPUT` failed: {}",
            text(&out.stderr).trim()
        )),
        Err(err) => Some(format!("iptables did not run: {err}")),
    }
}

/// DROP rules this test inserted in the INPUT chain; dropping it (on a panic too) deletes each
/// one by its own arguments, and nothing else in the firewall
struct Partition {
    rules: Vec<Vec<String>>,
}

impl Partition {
    /// Drops loopback UDP between `port` and each of `peers`, both ways, leaving `port`'s
    /// traffic with any other port alone
    fn isolate(port: u16, peers: &[u16]) -> Self {
        let mut partition = Self { rules: Vec::new() };
        // the comment names the process, should it die before deleting its rules
        let comment = format!("troupe nemesis test, pid {}", std::process::id());
        for &peer in peers {
            // A packet on loopback goes through OUTPUT, then INPUT: INPUT alone sees both ways.
            for (from, to) in [(port, peer), (peer, port)] {
                let rule = [
                    "INPUT",
                    "-i",
                    "lo",
                    "-p",
                    "udp",
                    "--sport",
                    &from.to_string(),
                    "--dport",
                    &to.to_string(),
                    "-m",
                    "comment",
                    "--comment",
                    &comment,
                    "-j",
                    "DROP",
                ];
                partition.add(rule.iter().map(|arg| arg.to_string()).collect());
            }
        }
        partition
    }

    fn add(&mut self, rule: Vec<String>) {
        let status = iptables("-I", &rule);
        assert!(
            status.as_ref().is_ok_and(ExitStatus::success),
            "iptables -w -I {rule:?}: {status:?}"
        );
        self.rules.push(rule);
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        for rule in self.rules.drain(..).rev() {
            match iptables("-D", &rule) {
                Ok(status) if status.success() => {}
                other => eprintln!(
                    "nemesis: could not delete the iptables rule it added, {rule:?}: {other:?}"
                ),
            }
        }
    }
}

fn iptables(action: &str, rule: &[String]) -> std::io::Result<ExitStatus> {
    Command::new("iptables")
        .args(["-w", action])
        .args(rule)
        .status()
}
