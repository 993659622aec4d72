//! The guide's lessons (`examples/lessons/`), each run as its own process for a few seconds
//! with its fault typed at its console, checking that what the lesson's page says happens does
//! happen; and the partition lesson across three processes.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod common;

use common::Proc;

/// Long enough for a debug build under a loaded CI machine; the lessons themselves take
/// seconds.
const WAIT: Duration = Duration::from_secs(30);

/// Starts lesson `name` with every node in one process, its gateway (if any) on a free port.
fn lesson(name: &str) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lessons"));
    cmd.args([
        name,
        "--http",
        "127.0.0.1:0",
        "--no-admin",
        "--peer-down-ms",
        "1000",
    ]);
    Proc::spawn(cmd)
}

/// The narration of a line: without its `[ 1.2s] ` stamp.
fn said(line: &str) -> &str {
    line.split_once("] ").map_or(line, |(_, rest)| rest)
}

/// The number after `label` in `line` (`stale reads 3` → 3).
fn count_after(line: &str, label: &str) -> Option<u64> {
    line.split(label)
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn the_monolith_loses_its_notes_when_it_crashes() {
    let mut p = lesson("monolith");
    p.wait_for("users served", WAIT, |l| {
        said(l).starts_with("users: 200 ×") && !l.contains("404")
    });
    p.type_line("kill monolith");
    p.wait_for("the kill", WAIT, |l| said(l) == "killed monolith on app");
    p.wait_for("notes lost", WAIT, |l| {
        l.contains("404 ×") && l.contains("they lived in the monolith's memory")
    });
}

#[test]
fn scaling_out_spreads_work_restarts_a_member_and_leaves_a_lost_node_out() {
    let mut p = lesson("scale-out");
    let spread = |l: &str| {
        [
            "app-1.svc.0@app-1",
            "app-1.svc.1@app-1",
            "app-2.svc.0@app-2",
            "app-2.svc.1@app-2",
        ]
        .iter()
        .all(|m| l.contains(m))
    };
    p.wait_for("all four members answering", WAIT, |l| {
        said(l).starts_with("users: 200 ×") && spread(l)
    });
    p.type_line("kill app-1.svc.1");
    p.wait_for("a new run of the member", WAIT, |l| {
        l.contains("app-1.svc.1@app-1 restarted")
    });
    p.type_line("crash app-2");
    p.wait_for("edge notices", WAIT, |l| {
        said(l).starts_with("edge sees app-2 down")
    });
    p.wait_for("traffic on app-1 alone", WAIT, |l| {
        let l = said(l);
        l.starts_with("users: 200 ×")
            && !l.contains(" · 5")
            && !l.contains("app-2")
            && l.contains("app-1.svc")
    });
    p.type_line("heal");
    p.wait_for("app-2 back", WAIT, |l| {
        said(l).starts_with("edge sees app-2 up")
    });
    p.wait_for("all four again", WAIT, |l| {
        said(l).starts_with("users:") && spread(l)
    });
}

#[test]
fn naive_invalidation_serves_stale_reads_and_read_through_never_does() {
    let mut p = lesson("cache");
    p.wait_for("a first report", WAIT, |l| {
        said(l).starts_with("read-through")
    });
    p.type_line("race on");
    p.wait_for("stale reads from the naive cache", WAIT, |l| {
        said(l).starts_with("naive invalidation")
            && count_after(l, "stale reads ").is_some_and(|n| n > 0)
    });
    // three more seconds of the race, then every report of the run is checked
    for _ in 0..3 {
        p.wait_for("another report", WAIT, |l| {
            said(l).starts_with("read-through")
        });
    }
    while p
        .seen
        .iter()
        .filter(|l| said(l).starts_with("read-through"))
        .count()
        < 5
    {
        p.wait_for("another report", WAIT, |l| {
            said(l).starts_with("read-through")
        });
    }
    let through: Vec<&String> = p
        .seen
        .iter()
        .filter(|l| said(l).starts_with("read-through"))
        .collect();
    for line in through {
        assert_eq!(
            count_after(line, "stale reads "),
            Some(0),
            "the read-through cache served a stale read: {line}"
        );
    }
}

#[test]
fn a_queue_answers_at_once_redelivers_a_crashed_workers_job_and_buries_poison() {
    let mut p = lesson("queue");
    p.wait_for("jobs accepted", WAIT, |l| {
        said(l).starts_with("users: 202 ×")
    });
    p.wait_for("jobs done", WAIT, |l| {
        count_after(l, "done ").is_some_and(|n| n >= 2)
    });
    p.type_line("poison");
    p.wait_for("the poison buried", WAIT, |l| {
        l.contains("dead letters 1 (last: poison-pill after 3 attempts")
    });
    // a worker is busy about half the time: kill until one dies holding a job
    let mut redelivered = false;
    for _ in 0..8 {
        p.type_line("kill worker.0");
        let until = std::time::Instant::now() + Duration::from_secs(4);
        while std::time::Instant::now() < until {
            let line = p.wait_for("any line", WAIT, |_| true);
            if line.contains("again: attempt 2") {
                redelivered = true;
                break;
            }
        }
        if redelivered {
            break;
        }
    }
    assert!(redelivered, "no job was redelivered: {:?}", p.seen);
}

#[test]
fn reads_from_any_replica_miss_writes_and_read_your_writes_never_does() {
    let mut p = lesson("replicas");
    p.wait_for("lag visible", WAIT, |l| {
        count_after(l, "from any replica: ").is_some_and(|n| n > 0)
    });
    p.type_line("partition data-3");
    p.wait_for("data-3 falling behind", WAIT, |l| {
        count_after(l, "data-3 unreachable, ").is_some_and(|n| n > 0)
    });
    p.type_line("heal");
    p.wait_for("data-3 caught up", WAIT, |l| {
        let l = said(l);
        l.starts_with("writes") && l.contains("data-3 0 behind")
    });
    for line in p.seen.iter().filter(|l| said(l).starts_with("writes")) {
        assert_eq!(
            count_after(line, "with read-your-writes: "),
            Some(0),
            "a read-your-writes read missed the write: {line}"
        );
    }
}

#[test]
fn a_lost_node_is_detected_and_a_lost_leader_replaced() {
    let mut p = lesson("failure");
    let leads = p.wait_for("a leader", WAIT, |l| said(l).starts_with("db: data-"));
    let leader: String = said(&leads)["db: ".len()..]
        .split_whitespace()
        .next()
        .expect("the leader's node")
        .to_string();
    p.wait_for("users served", WAIT, |l| {
        let l = said(l);
        l.starts_with("users: 200 ×") && !l.contains(" · 5")
    });
    p.type_line("crash app");
    p.wait_for("detection", WAIT, |l| {
        said(l).starts_with("edge sees app down")
    });
    p.wait_for("503 while no service is left", WAIT, |l| {
        let l = said(l);
        l.starts_with("users: 503 ×") && !l.contains("200")
    });
    p.type_line("heal");
    p.wait_for("recovery", WAIT, |l| {
        let l = said(l);
        l.starts_with("users: 200 ×") && !l.contains(" · 5")
    });
    p.type_line(&format!("partition {leader}"));
    let changed = p.wait_for("a new leader", WAIT, |l| said(l).contains("leads now"));
    assert!(
        !said(&changed).starts_with(&format!("db: {leader} ")),
        "{changed}"
    );
    p.wait_for("writes going on", WAIT, |l| {
        let l = said(l);
        l.starts_with("users: 200 ×") && !l.contains(" · 5")
    });
    p.type_line("heal");
}

#[test]
fn the_minority_refuses_writes_the_store_stays_available_and_both_converge() {
    let (p, from) = partition_lesson(&mut |_| lesson("partition"));
    assert!(minority_refused(&p, from), "{:?}", p.seen);
}

#[test]
fn a_flood_is_shed_with_429s_while_a_good_client_keeps_its_200s() {
    let mut p = lesson("flood");
    p.wait_for("the good client served", WAIT, |l| {
        said(l).starts_with("well-behaved client")
    });
    let before = p.seen.len();
    p.type_line("flood 2000/s 3");
    let over = p.wait_for("the flood's end", WAIT, |l| {
        said(l).starts_with("flood over")
    });
    assert!(
        count_after(&over, "429 ×").is_some_and(|n| n > 1000),
        "{over}"
    );
    p.wait_for("a report after it", WAIT, |l| {
        said(l).starts_with("well-behaved client")
    });
    let good: Vec<&String> = p.seen[before..]
        .iter()
        .filter(|l| said(l).starts_with("well-behaved client"))
        .collect();
    assert!(good.len() >= 4, "{good:?}");
    for line in good {
        assert!(
            !line.contains("429") && line.contains("200 ×"),
            "the well-behaved client was refused: {line}"
        );
    }
}

/// Runs the partition lesson's checks; `start(i)` starts the process that types commands
/// (and, with all nodes in one process, the only one), `i` = 0.
fn partition_lesson(start: &mut dyn FnMut(usize) -> Proc) -> (Proc, usize) {
    let mut p = start(0);
    p.wait_for("writes accepted", WAIT, |l| {
        said(l).starts_with("dc-2: database write ok")
    });
    let before = p.seen.len();
    p.type_line("partition dc-1");
    p.wait_for("the partition", WAIT, |l| {
        said(l).starts_with("partition: dc-1 cut off")
    });
    p.wait_for("the majority goes on", WAIT, |l| {
        said(l).starts_with("dc-2: database write ok")
    });
    p.wait_for("the store diverges", WAIT, |l| {
        said(l).starts_with("store: dc-1 unreachable")
    });
    p.type_line("heal");
    p.wait_for("converged", WAIT, |l| said(l).contains("— converged"));
    p.type_line("status");
    for dc in ["dc-1", "dc-2", "dc-3"] {
        let up = format!("{dc}: all links up");
        p.wait_for("every link healed", WAIT, |l| said(l) == up);
    }
    assert!(
        !p.seen[before..]
            .iter()
            .any(|l| said(l).starts_with("heal:")),
        "a node could not be healed: {:?}",
        p.seen
    );
    (p, before)
}

/// Whether, after line `from` of `p`'s output, dc-1 had its database writes refused while its
/// store writes succeeded.
fn minority_refused(p: &Proc, from: usize) -> bool {
    p.seen[from..].iter().any(|l| {
        said(l).starts_with("dc-1: database write REFUSED") && l.contains("store write ok")
    })
}

#[test]
fn the_partition_lesson_cuts_links_between_three_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    troupe_identity::init_ca(&ca, "lesson-partition").expect("ca init");
    for node in ["dc-1", "dc-2", "dc-3"] {
        troupe_identity::issue_node(&ca, node, &ca).expect("issue");
    }
    let start = |node: &str, seed: Option<std::net::SocketAddr>, data: &Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lessons"));
        cmd.args(["partition", "--node", node, "--listen", "127.0.0.1:0"])
            .args(["--peer-down-ms", "1000", "--ca"])
            .arg(&ca)
            .arg("--data")
            .arg(data);
        if let Some(seed) = seed {
            cmd.args(["--seed", &seed.to_string()]);
        }
        Proc::spawn(cmd)
    };
    let data = dir.path().join("data");
    let mut dc1 = start("dc-1", None, &data);
    let seed = dc1.listening();
    let mut dc3 = start("dc-3", Some(seed), &data);
    dc3.listening();
    // dc-2 types the commands: it hosts the comparison, and is on the majority side
    let mut dc2 = Some(start("dc-2", Some(seed), &data));
    partition_lesson(&mut |_| dc2.take().expect("started once"));
    // the minority's own process: its writes went through before the partition, then were
    // refused while its store writes went on
    dc1.wait_for("dc-1 writing", WAIT, |l| {
        said(l).starts_with("dc-1: database write ok")
    });
    dc1.wait_for("dc-1 refused", WAIT, |l| {
        said(l).starts_with("dc-1: database write REFUSED") && l.contains("store write ok")
    });
    drop(dc3);
}
