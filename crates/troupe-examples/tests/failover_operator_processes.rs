//! An operator moves the failover example's counter and drains a node before maintenance,
//! with the `troupe` CLI against the admin endpoints of three OS processes (a, b, c; the
//! counter on b, failing over to c): `troupe placement` shows it on b; `troupe move` takes it
//! to c, in order; `troupe drain c --leave` against c's own endpoint moves it back to b, then
//! c's process leaves the cluster and exits 0; `troupe drain c --undo` puts c back in service.
//! Moves to unknown nodes or groups, moves outside the group's order, changes without an
//! operator certificate and a leave sent to the wrong process are refused, typed.
//!
//! And a node the topology does not declare joins with role `spare` (the counter's order is
//! b, c, then the nodes playing `spare`): with c drained, the SIGKILL of b moves the counter
//! to it. A node claiming a role its certificate lacks, or undeclared with no role, does not
//! start.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

mod common;

use bytes::Bytes;
use common::{Proc, failover_example, succeeded, troupe_cli};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use troupe::admin::{GroupPlacementState, PlacementState};

const PEER_DOWN_MS: u64 = 1000;

/// A move or a drain: the drivers read the directions within a second, the holder works off
/// its mailbox for two read periods, releases, and the next node claims; with room for a
/// loaded machine
const MOVE_BOUND: Duration = Duration::from_secs(15);

const GROUP: &str = "counter.failover";

fn start(node: &str, ca: &Path, data: &Path, seed: Option<SocketAddr>) -> Proc {
    Proc::spawn(command(node, ca, data, seed))
}

/// The failover example as node `node`, with an admin endpoint
fn command(node: &str, ca: &Path, data: &Path, seed: Option<SocketAddr>) -> Command {
    let mut cmd = failover_example(node, ca, data, seed, PEER_DOWN_MS);
    cmd.args(["--admin", "127.0.0.1:0"]);
    cmd
}

/// The counter's group as `troupe placement --json` shows it from `admin`
async fn placement(admin: &str) -> (GroupPlacementState, Vec<String>) {
    let out = troupe_cli(&["placement", "--admin", admin, "--json"]).await;
    let state: PlacementState = serde_json::from_str(&succeeded(&out)).expect("JSON");
    let group = state
        .groups
        .iter()
        .find(|g| g.name == GROUP)
        .unwrap_or_else(|| panic!("{GROUP} in {state:?}"))
        .clone();
    (group, state.drained)
}

/// Waits (bounded) until the counter's lease, read from `admin`, satisfies `f`
async fn placed(
    what: &str,
    admin: &str,
    f: impl Fn(&GroupPlacementState, &[String]) -> bool,
) -> (GroupPlacementState, Vec<String>) {
    troupe_testkit::eventually(what, MOVE_BOUND, async || {
        let (group, drained) = placement(admin).await;
        match f(&group, &drained) {
            true => Ok((group, drained)),
            false => Err((group, drained)),
        }
    })
    .await
}

/// A refusal: the exit code and what the CLI said on stderr
fn refused(out: &Output) -> (Option<i32>, String) {
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A POST over plain HTTP, without an operator certificate
async fn post_plain(addr: &str, path: &str) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = hyper::Request::post(format!("http://{addr}{path}"))
        .body(Empty::new())
        .expect("a request");
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(request))
        .await
        .expect("an answer in time")
        .expect("an answer");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_moves_the_counter_then_drains_its_node_and_that_node_leaves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    troupe_identity::init_ca(&ca, "failover").expect("ca init");
    for node in ["a", "b", "c"] {
        troupe_identity::issue_node(&ca, node, &ca).expect("issue");
    }
    troupe_identity::issue_operator(&ca, "alice", &ca).expect("issue");
    let ca_arg = ca.to_str().expect("a UTF-8 path").to_string();
    let operator = ["--ca", ca_arg.as_str(), "--operator", "alice"];

    let mut a = start("a", &ca, dir.path(), None);
    let seed = a.listening();
    let mut b = start("b", &ca, dir.path(), Some(seed));
    b.listening();
    let mut c = start("c", &ca, dir.path(), Some(seed));
    c.listening();
    let (admin_a, admin_c) = (a.admin().to_string(), c.admin().to_string());
    a.wait_for("the counter served by b", Duration::from_secs(60), |l| {
        l.starts_with("served by b")
    });

    // where it runs, from any process
    let (group, drained) = placed("the counter's lease on b", &admin_a, |g, _| {
        g.holder.as_deref() == Some("b")
    })
    .await;
    assert_eq!(group.order, ["b", "c"]);
    assert_eq!(group.directed, ["b", "c"]);
    assert_eq!((group.moved_to, group.draining), (None, false));
    assert!(drained.is_empty(), "{drained:?}");
    let table = succeeded(&troupe_cli(&["placement", "--admin", &admin_a]).await);
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with(GROUP))
        .unwrap_or_else(|| panic!("a row for {GROUP}: {table}"))
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..8],
        [GROUP, "b", "b,", "c,", "then", "role", "spare", "running"],
        "{table}"
    );

    // refused, typed: no operator certificate, an unknown node or group, a node outside the
    // order, a leave sent to a process that does not run the node
    let (status, why) = post_plain(&admin_a, &format!("/placement/{GROUP}/move/c")).await;
    assert_eq!(status, 403, "{why}");
    assert!(why.contains("operator certificate"), "{why}");
    let (status, why) = post_plain(&admin_a, "/nodes/c/drain").await;
    assert_eq!(status, 403, "{why}");
    let (status, why) = post_plain(&admin_c, "/leave").await;
    assert_eq!(status, 403, "{why}");
    let mv = async |args: &[&str]| {
        let mut all = vec!["move"];
        all.extend_from_slice(args);
        all.extend(["--admin", &admin_a]);
        all.extend(operator);
        troupe_cli(&all).await
    };
    // (no node plays role spare yet: z is no node the counter may run on)
    let (code, why) = refused(&mv(&[GROUP, "z"]).await);
    assert_eq!(code, Some(1), "{why}");
    assert!(
        why.contains("(400)") && why.contains("b, c (its declared order) or a node playing spare"),
        "{why}"
    );
    let (code, why) = refused(&mv(&["nope.failover", "c"]).await);
    assert_eq!(code, Some(1), "{why}");
    assert!(
        why.contains("(404)")
            && why.contains(r#"no failover group named "nope.failover""#)
            && why.contains(GROUP),
        "{why}"
    );
    let (code, why) = refused(&mv(&[GROUP, "a"]).await);
    assert_eq!(code, Some(1), "{why}");
    assert!(
        why.contains("(400)") && why.contains("may run only on b, c"),
        "{why}"
    );
    let mut drain_via_a = vec!["drain", "c", "--leave", "--admin", &admin_a];
    drain_via_a.extend(operator);
    let (code, why) = refused(&troupe_cli(&drain_via_a).await);
    assert_eq!(code, Some(2), "{why}");
    assert!(why.contains("runs a, not c"), "{why}");

    // the move: b hands the counter over to c, in order
    let said = succeeded(&mv(&[GROUP, "c"]).await);
    assert!(said.starts_with(&format!("{GROUP} moved to c")), "{said}");
    a.wait_for("the counter moves to c", MOVE_BOUND, |l| {
        l.starts_with("moved from b to c")
    });
    let (group, _) = placed("the counter's lease on c", &admin_a, |g, _| {
        g.holder.as_deref() == Some("c") && !g.draining
    })
    .await;
    assert_eq!(group.moved_to.as_deref(), Some("c"));
    assert_eq!(group.directed, ["c", "b"]);

    // drain c through its own endpoint: the counter goes back to b, then c's process leaves
    let mut drain = vec!["drain", "c", "--leave", "--wait", "30", "--admin", &admin_c];
    drain.extend(operator);
    let said = succeeded(&troupe_cli(&drain).await);
    assert!(
        said.contains(&format!("{GROUP} moved from c to b")),
        "{said}"
    );
    assert!(said.contains("c's process has left the cluster"), "{said}");
    let status = c.wait_exit("c's process exits", Duration::from_secs(15));
    assert!(status.success(), "{status}");
    a.wait_for("the counter moves back to b", MOVE_BOUND, |l| {
        l.starts_with("moved from c to b")
    });
    let (group, _) = placed("b holds it, c drained", &admin_a, |g, drained| {
        g.holder.as_deref() == Some("b") && drained == ["c"]
    })
    .await;
    assert_eq!(group.directed, ["b"], "c is out of the order");
    let table = succeeded(&troupe_cli(&["placement", "--admin", &admin_a]).await);
    assert!(table.contains("drained: c"), "{table}");

    // back in service, the move cleared: it stays on b
    let mut undo = vec!["drain", "c", "--undo", "--admin", &admin_a];
    undo.extend(operator);
    let said = succeeded(&troupe_cli(&undo).await);
    assert!(said.starts_with("c back in service"), "{said}");
    let said = succeeded(&mv(&[GROUP, "--clear"]).await);
    assert!(said.contains("move cleared"), "{said}");
    let (group, _) = placed(
        "c undrained and the move cleared",
        &admin_a,
        |g, drained| drained.is_empty() && g.moved_to.is_none(),
    )
    .await;
    assert_eq!(group.holder.as_deref(), Some("b"));
    assert_eq!(group.directed, ["b", "c"]);
    drop(b);
}

/// The failover example as node `node`, run to its end (bounded by `--for-secs`): for starts
/// that must fail
async fn refused_start(cmd: Command) -> Output {
    let mut cmd = cmd;
    cmd.args(["--for-secs", "20"]);
    tokio::task::spawn_blocking(move || cmd.output().expect("run the example"))
        .await
        .expect("the example ran")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joining_with_a_role_takes_the_counter_over_when_its_node_dies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca");
    troupe_identity::init_ca(&ca, "failover").expect("ca init");
    for node in ["a", "b", "c", "e"] {
        troupe_identity::issue_node(&ca, node, &ca).expect("issue");
    }
    troupe_identity::issue_node_with_roles(&ca, "d", &["spare"], &ca).expect("issue");
    troupe_identity::issue_operator(&ca, "alice", &ca).expect("issue");
    let ca_arg = ca.to_str().expect("a UTF-8 path").to_string();
    let operator = ["--ca", ca_arg.as_str(), "--operator", "alice"];

    let mut a = start("a", &ca, dir.path(), None);
    let seed = a.listening();
    let admin_a = a.admin().to_string();

    // no role in its certificate, or no role at all: it does not start
    let mut liar = command("e", &ca, dir.path(), Some(seed));
    liar.args(["--role", "spare"]);
    let out = refused_start(liar).await;
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{why}");
    assert!(
        why.contains("does not carry role \"spare\"") && why.contains("--role spare"),
        "{why}"
    );
    let out = refused_start(command("e", &ca, dir.path(), Some(seed))).await;
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{why}");
    assert!(
        why.contains("unknown node \"e\"") && why.contains("--role"),
        "{why}"
    );

    let mut b = start("b", &ca, dir.path(), Some(seed));
    b.listening();
    let mut c = start("c", &ca, dir.path(), Some(seed));
    c.listening();
    let mut joined = command("d", &ca, dir.path(), Some(seed));
    joined.args(["--role", "spare"]);
    let mut d = Proc::spawn(joined);
    d.listening();
    a.wait_for("the counter served by b", Duration::from_secs(60), |l| {
        l.starts_with("served by b")
    });
    let (group, _) = placed("the counter's lease on b", &admin_a, |g, _| {
        g.holder.as_deref() == Some("b")
    })
    .await;
    assert_eq!(group.order, ["b", "c"]);
    assert_eq!(group.roles, ["spare"]);
    let table = succeeded(&troupe_cli(&["placement", "--admin", &admin_a]).await);
    assert!(table.contains("b, c, then role spare"), "{table}");

    // c out of the order: the next after b is the node that joined with the role
    let mut drain = vec!["drain", "c", "--admin", &admin_a];
    drain.extend(operator);
    succeeded(&troupe_cli(&drain).await);
    placed("c drained", &admin_a, |_, drained| drained == ["c"]).await;
    b.kill9();
    a.wait_for("the counter moves to d", MOVE_BOUND, |l| {
        l.starts_with("moved from b to d")
    });
    d.wait_for("the counter started on d", Duration::from_secs(5), |l| {
        l == "counter started on d"
    });
    let (group, _) = placed("the counter's lease on d", &admin_a, |g, _| {
        g.holder.as_deref() == Some("d")
    })
    .await;
    assert!(!group.released, "{group:?}");
    drop((c, d));
}
