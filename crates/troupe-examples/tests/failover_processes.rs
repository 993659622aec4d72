//! The failover example as three OS processes on loopback (certificates from a real CA
//! directory, the metadata group's Raft files in real directories): the counter, a failover
//! child on `b` (then `c`), keeps answering the pinger on `a` through one unchanged handle
//! when `b` is killed with SIGKILL, and when `b` is paused with SIGSTOP; a paused `b`
//! that wakes finds its lease gone and stops its instance.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

mod common;

use common::{Proc, failover_example};

const PEER_DOWN_MS: u64 = 1000;

/// Time from losing `b` to the counter answering from `c`: detection (1 s here), the lease's
/// term and grace (3.5 s), a read of the register (≤ 1 s) and the start, with room for a
/// loaded machine
const FAILOVER_BOUND: Duration = Duration::from_secs(15);

fn start(node: &str, ca: &Path, data: &Path, seed: Option<SocketAddr>) -> Proc {
    Proc::spawn(failover_example(node, ca, data, seed, PEER_DOWN_MS))
}

/// The gap of a `moved from OLD to NEW after N ms` line
fn moved(line: &str, from: &str, to: &str) -> Option<u64> {
    line.strip_prefix(&format!("moved from {from} to {to} after "))?
        .strip_suffix(" ms")?
        .parse()
        .ok()
}

struct Trio {
    a: Proc,
    b: Proc,
    c: Proc,
    _dir: tempfile::TempDir,
}

fn trio() -> Trio {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    troupe_identity::init_ca(&ca, "failover").expect("ca init");
    for node in ["a", "b", "c"] {
        troupe_identity::issue_node(&ca, node, &ca).expect("issue");
    }
    let mut a = start("a", &ca, dir.path(), None);
    let seed = a.listening();
    let mut b = start("b", &ca, dir.path(), Some(seed));
    b.listening();
    let mut c = start("c", &ca, dir.path(), Some(seed));
    c.listening();
    a.wait_for("the counter served by b", Duration::from_secs(60), |l| {
        l.starts_with("served by b")
    });
    Trio { a, b, c, _dir: dir }
}

#[test]
fn the_counter_moves_to_c_when_b_is_killed_and_stays_there() {
    let Trio {
        mut a,
        mut b,
        c,
        _dir,
    } = trio();
    b.kill9();
    let line = a.wait_for("the counter moves to c", FAILOVER_BOUND, |l| {
        moved(l, "b", "c").is_some()
    });
    let gap = moved(&line, "b", "c").unwrap_or(u64::MAX);
    eprintln!("{line}");
    assert!(gap < FAILOVER_BOUND.as_millis() as u64, "{line}");
    a.wait_for("served by c", Duration::from_secs(5), |l| {
        l.starts_with("served by c")
    });
    // never back to b (it is gone), and never split between the two
    assert!(
        !a.seen.iter().any(|l| moved(l, "c", "b").is_some()),
        "{:?}",
        a.seen
    );
    drop(c);
}

#[test]
fn a_paused_holder_loses_the_child_and_stops_its_instance_when_it_wakes() {
    let Trio {
        mut a,
        mut b,
        mut c,
        _dir,
    } = trio();
    b.stop();
    a.wait_for("the counter moves to c", FAILOVER_BOUND, |l| {
        moved(l, "b", "c").is_some()
    });
    c.wait_for("c's instance", Duration::from_secs(5), |l| {
        l == "counter started on c"
    });
    b.resume();
    // the first thing b does about it on waking: its lease ran out while it slept, so its
    // instance is killed (no graceful stop it could act in)
    b.wait_for("b ends its instance", Duration::from_secs(10), |l| {
        l == "counter gone from b"
    });
    assert!(
        !b.seen.iter().any(|l| l == "counter stopped on b"),
        "killed, not stopped gracefully: {:?}",
        b.seen
    );
    // b is back but holds nothing: the counter stays on c, one instance answering
    a.wait_for("served by c after b woke", Duration::from_secs(10), |l| {
        l.starts_with("served by c")
    });
    let seen = a.seen.len();
    a.wait_for("more answers from c", Duration::from_secs(10), |l| {
        l.starts_with("served by c")
    });
    assert!(
        !a.seen[seen..].iter().any(|l| l.starts_with("moved")),
        "{:?}",
        &a.seen[seen..]
    );
    drop(c);
}
