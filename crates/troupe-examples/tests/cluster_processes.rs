//! hello_cluster as three OS processes on loopback, with certificates from a real CA directory:
//! cross-process calls; one process killed with SIGKILL is reported down by the others within
//! the peer-down timeout plus 2 s while they keep serving; restarted, it rejoins as a new
//! incarnation and calls flow again.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const PEER_DOWN_MS: u64 = 1000;

mod common;

use common::Proc;

fn start(node: &str, ca: &Path, seed: Option<SocketAddr>) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hello_cluster"));
    cmd.args([
        "--node",
        node,
        "--listen",
        "127.0.0.1:0",
        "--crash-every",
        "0",
    ])
    .args([
        "--interval-ms",
        "20",
        "--peer-down-ms",
        &PEER_DOWN_MS.to_string(),
    ])
    .arg("--ca")
    .arg(ca);
    if let Some(seed) = seed {
        cmd.args(["--seed", &seed.to_string()]);
    }
    Proc::spawn(cmd)
}

fn calls(line: &str) -> Option<u64> {
    line.strip_prefix("calls")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn three_processes_call_each_other_and_survive_a_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path();
    troupe_identity::init_ca(ca, "hello_cluster").expect("ca init");
    for node in ["a", "b", "c"] {
        troupe_identity::issue_node(ca, node, ca).expect("issue");
    }

    let mut a = start("a", ca, None);
    let seed = a.listening();
    let mut b = start("b", ca, Some(seed));
    b.listening();
    let mut c = start("c", ca, Some(seed));
    c.listening();

    // a's reporter calls c's pinger, which calls b's counter: calls grow across processes
    a.wait_for("growing calls", Duration::from_secs(30), |l| {
        calls(l).is_some_and(|n| n >= 10)
    });

    b.kill9();
    let killed = Instant::now();
    let within = Duration::from_millis(PEER_DOWN_MS) + Duration::from_secs(2);
    a.wait_for("a reports b down", within + Duration::from_secs(1), |l| {
        l.starts_with("node down b")
    });
    let detected = killed.elapsed();
    eprintln!("a reported b down {detected:?} after its SIGKILL");
    assert!(
        detected <= within + Duration::from_millis(500),
        "{detected:?}"
    );
    // a and c keep serving: the reporter on a still gets tallies from the pinger on c
    a.wait_for("tallies after the kill", Duration::from_secs(5), |l| {
        calls(l).is_some()
    });

    let mut b2 = start("b", ca, Some(seed));
    b2.listening();
    let up = a.wait_for("b back", Duration::from_secs(20), |l| {
        l.starts_with("node up b")
    });
    assert!(up.contains("incarnation"), "{up}");
    // calls flow again through the new incarnation of b
    let before = a.seen.iter().rev().find_map(|l| calls(l)).unwrap_or(0);
    a.wait_for("calls growing again", Duration::from_secs(20), |l| {
        calls(l).is_some_and(|n| n > before + 5)
    });
    drop(c);
}
