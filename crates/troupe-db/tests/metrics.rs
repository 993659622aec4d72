//! Each replica's role, epoch, indexes and, on the leader, its followers' lag reach the
//! `metrics` facade, labelled by database and replica.
//! (Its own test binary: the recorder is process-global.)

mod one_process;

use std::collections::HashMap;
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use troupe_db::DbSpec;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_indexes_and_follower_lag_are_published() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("first recorder in this process");

    let dir = tempfile::tempdir().unwrap();
    let spec = DbSpec::new("accounts", dir.path())
        .replica("r0")
        .replica("r1")
        .replica("r2");
    let nodes = one_process::start_replicas(&spec, &["r0", "r1", "r2"]).await;
    let client = spec.client(&nodes[0]).with_timeout(T);
    for i in 0..5 {
        client.put(format!("k{i}"), "v").await.unwrap();
    }

    // (metric, replica, follower) -> value, for this database
    type Seen = HashMap<(String, String, String), f64>;
    let seen = troupe_testkit::eventually("the replicas' metrics", T, async || {
        // a snapshot takes the values set since the last one: let a few ticks set them all
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut seen = Seen::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let label = |name: &str| {
                key.key()
                    .labels()
                    .find(|l| l.key() == name)
                    .map(|l| l.value().to_string())
                    .unwrap_or_default()
            };
            if label("db") != "accounts" {
                continue;
            }
            let value = match value {
                DebugValue::Gauge(v) => v.into_inner(),
                DebugValue::Counter(n) => n as f64,
                DebugValue::Histogram(_) => continue,
            };
            let id = (
                key.key().name().to_string(),
                label("replica"),
                label("follower"),
            );
            seen.insert(id, value);
        }
        let get = |name: &str, replica: &str, follower: &str| {
            seen.get(&(name.into(), replica.into(), follower.into()))
                .copied()
        };
        let leaders: Vec<&str> = ["0", "1", "2"]
            .into_iter()
            .filter(|r| get("troupe_db_leader", r, "") == Some(1.0))
            .collect();
        let applied_all = ["0", "1", "2"]
            .iter()
            .all(|r| get("troupe_db_applied_index", r, "").is_some_and(|i| i >= 5.0));
        let caught_up = leaders.first().is_some_and(|l| {
            ["0", "1", "2"]
                .iter()
                .filter(|f| *f != l)
                .all(|f| get("troupe_db_follower_lag_entries", l, f) == Some(0.0))
                && get("troupe_db_commit_index", l, "").is_some_and(|c| c >= 5.0)
        });
        if leaders.len() == 1 && applied_all && caught_up {
            Ok(seen)
        } else {
            Err(seen)
        }
    })
    .await;
    assert!(
        seen.iter()
            .any(|((name, _, _), v)| name == "troupe_db_epoch" && *v >= 1.0),
        "{seen:?}"
    );
    for node in nodes {
        node.shutdown().await;
    }
}
