//! `troupe db` and `troupe queue` as an operator runs them: the binary against the admin
//! endpoint of a real topology (three database replicas on files, a queue), reading over plain
//! HTTP and changing state over TLS with an operator certificate of the cluster's CA.

mod common;

use std::net::SocketAddr;
use std::process::Output;

use bytes::Bytes;
use common::{text, troupe};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use troupe::admin::{AdminOptions, AdminServer, DbState, DeadLetterState, QueueState, Readiness};
use troupe::prelude::*;
use troupe::queue::Consumer;
use troupe_identity::{NodeIdentity, init_ca, issue_node, issue_operator};

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

async fn post_plain(addr: SocketAddr, path: &str) -> (u16, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = hyper::Request::post(format!("http://{addr}{path}"))
        .body(Empty::new())
        .unwrap();
    let response = client.request(request).await.expect("an answer");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, text(&body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_promotes_a_replica_and_replays_a_dead_letter() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca");
    init_ca(&ca, "ops").unwrap();
    issue_node(&ca, "data", &ca).unwrap();
    issue_operator(&ca, "alice", &ca).unwrap();
    let ca_arg = ca.to_str().unwrap();

    let mut t = Topology::new("ops");
    let data = t.node("data");
    let db = t.add(
        data,
        "db",
        DbSpec::in_dir(tmp.path().join("db")).replicas(3),
    );
    let jobs = t.add(data, "jobs", QueueSpec::in_memory().max_attempts(1));
    let options = AdminOptions {
        parts: t.admin_parts(),
        operator_tls: Some(
            NodeIdentity::load(&ca, "data")
                .unwrap()
                .admin_server_config()
                .unwrap(),
        ),
        leave: None,
    };
    let running = t.start().await.unwrap();
    let mesh = running.node("data").unwrap().mesh();
    let readiness = Readiness::new();
    readiness.set_ready();
    let admin = AdminServer::start_with(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        mesh,
        readiness,
        options,
    )
    .await
    .unwrap();
    let addr = admin.local_addr();
    let admin_arg = addr.to_string();

    // the database: one leader, two followers, nothing behind
    db.put("k", "v").await.unwrap();
    let out = troupe(&["db", "status", "--admin", &admin_arg, "--json"]).await;
    let dbs: Vec<DbState> = serde_json::from_str(&ok(&out)).unwrap();
    let before = &dbs[0];
    assert_eq!(before.name, "db");
    assert_eq!(before.replicas.len(), 3);
    let leaders: Vec<&str> = before
        .replicas
        .iter()
        .filter(|r| r.role.as_deref() == Some("leader"))
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(leaders.len(), 1, "{before:?}");
    let table = ok(&troupe(&["db", "status", "--admin", &admin_arg]).await);
    assert!(
        table.contains("REPLICA") && table.contains("db.2"),
        "{table}"
    );

    // promoting needs an operator over TLS: plain HTTP is refused, and says what to do
    let (status, why) = post_plain(addr, "/db/db/promote").await;
    assert_eq!(status, 403, "{why}");
    assert!(why.contains("operator certificate"), "{why}");
    // a missing certificate is a clear error, exit 1
    let out = troupe(&[
        "db",
        "promote",
        "--admin",
        &admin_arg,
        "--ca",
        ca_arg,
        "--operator",
        "bob",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("bob.operator.crt"),
        "{}",
        text(&out.stderr)
    );
    // alice may: another replica leads, in a newer epoch, and writes go on
    let out = troupe(&[
        "db",
        "promote",
        "--admin",
        &admin_arg,
        "--ca",
        ca_arg,
        "--operator",
        "alice",
    ])
    .await;
    let line = ok(&out);
    assert!(line.starts_with("database db: db."), "{line}");
    assert!(!line.contains(leaders[0]), "a new leader: {line}");
    db.put("k", "w").await.unwrap();
    let out = troupe(&["db", "status", "--admin", &admin_arg, "--json"]).await;
    let after: Vec<DbState> = serde_json::from_str(&ok(&out)).unwrap();
    let leader = after[0]
        .replicas
        .iter()
        .find(|r| r.role.as_deref() == Some("leader"))
        .expect("a leader");
    assert_ne!(leader.name, leaders[0]);
    assert!(leader.epoch > before.replicas[0].epoch, "{after:?}");

    // the voters change only by an operator too: replica 2 leaves them and comes back
    let (status, why) = post_plain(addr, "/db/db/remove-replica/2").await;
    assert_eq!(status, 403, "{why}");
    let members = |verb: &'static str| {
        let admin_arg = admin_arg.clone();
        async move {
            ok(&troupe(&[
                "db",
                verb,
                "2",
                "--admin",
                &admin_arg,
                "--ca",
                ca_arg,
                "--operator",
                "alice",
            ])
            .await)
        }
    };
    assert_eq!(
        members("remove-replica").await.trim(),
        "database db: voters now 0, 1"
    );
    db.put("k", "x").await.unwrap();
    assert_eq!(
        members("add-replica").await.trim(),
        "database db: voters now 0, 1, 2"
    );
    assert_eq!(db.get("k").await.unwrap().as_deref(), Some(&b"x"[..]));

    // the queue: a job that fails its one attempt is a dead letter
    let consumer = Consumer::new("data", 1);
    let item = jobs.enqueue("poison").await.unwrap();
    let lease = jobs.take(&consumer).await.unwrap().expect("the job");
    jobs.nack_with_error(&consumer, lease.item, "bad input")
        .await
        .unwrap();
    let out = troupe(&["queue", "stats", "--admin", &admin_arg, "--json"]).await;
    let queues: Vec<QueueState> = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!((queues[0].name.as_str(), queues[0].dead), ("jobs", 1));
    let out = troupe(&["queue", "dead-letters", "--admin", &admin_arg, "--json"]).await;
    let dead: Vec<DeadLetterState> = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].item, item.0);
    assert_eq!(dead[0].preview, "poison");
    assert!(dead[0].reason.contains("bad input"), "{dead:?}");
    let table = ok(&troupe(&["queue", "dead-letters", "--admin", &admin_arg]).await);
    assert!(table.contains("\"poison\""), "{table}");

    // replaying: plain HTTP refused; alice puts it back in line; twice is "not a dead letter"
    let (status, _) = post_plain(addr, &format!("/queue/jobs/replay/{}", item.0)).await;
    assert_eq!(status, 403);
    let id = item.0.to_string();
    let replay = [
        "queue",
        "replay",
        &id,
        "--admin",
        &admin_arg,
        "--ca",
        ca_arg,
        "--operator",
        "alice",
    ];
    ok(&troupe(&replay).await);
    let again = troupe(&replay).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("(404)"),
        "{}",
        text(&again.stderr)
    );
    let stats = jobs.stats().await.unwrap();
    assert_eq!((stats.ready, stats.dead), (1, 0));
    let lease = jobs.take(&consumer).await.unwrap().expect("the job again");
    assert_eq!(&lease.payload[..], b"poison");

    // unknown parts and items are typed refusals, not crashes
    let out = troupe(&[
        "queue",
        "dead-letters",
        "--admin",
        &admin_arg,
        "--queue",
        "nope",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("knows: jobs"),
        "{}",
        text(&out.stderr)
    );

    // an operator kills an actor: its supervisor restarts it; an unknown one is a 404
    let kill = |actor: &'static str| {
        let (admin_arg, ca_arg) = (admin_arg.clone(), ca_arg.to_string());
        async move {
            troupe(&[
                "kill",
                actor,
                "--admin",
                &admin_arg,
                "--ca",
                &ca_arg,
                "--operator",
                "alice",
            ])
            .await
        }
    };
    let out = kill("data/nope").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("(404)"), "{}", text(&out.stderr));
    assert!(ok(&kill("data/jobs").await).contains("killed data/jobs"));
    troupe_testkit::eventually("the queue restarted", troupe_testkit::T, async || {
        let stats = running.node("data").unwrap().actor_stats();
        let jobs = stats.iter().find(|a| a.name == "jobs").map(|a| a.restarts);
        (jobs == Some(1)).then_some(()).ok_or(jobs)
    })
    .await;

    admin.stop().await;
    running.shutdown().await;
}
