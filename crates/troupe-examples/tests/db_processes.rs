//! db_cluster as three OS processes on loopback (certificates from a real CA directory, data in
//! real files), with this test process joining the cluster as a client node:
//!
//! - majority mode: writers run while a follower is killed with SIGKILL and restarted, then
//!   while the leader is killed; a follower is promoted, and no acknowledged write is lost —
//!   on the new leader, and on every replica once the killed ones are back and caught up;
//! - leader-only mode: the leader is killed with SIGKILL mid-stream and restarted from its
//!   file; it leads again and holds every write it acknowledged.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use common::db_cluster::{T, join, leader, setup};
use parking_lot::Mutex;
use troupe::db::msg::ReadAt;
use troupe::db::{AckMode, DbClient, DbMsg};
use troupe::runtime::remote::NodeNet;
use troupe::runtime::{CallError, Node};
use troupe_testkit::eventually;

/// Concurrent writers in each test
const WRITERS: usize = 4;

/// Writers putting distinct keys until told to stop; every acknowledged write is recorded
struct Writers {
    acked: Arc<Mutex<BTreeMap<Bytes, Bytes>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    fn start(client: &DbClient, count: usize) -> Self {
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..count)
            .map(|w| {
                let (client, acked, stop) = (client.clone(), acked.clone(), stop.clone());
                tokio::spawn(async move {
                    // Bounded in count; the test stops it long before.
                    for i in 0..20_000 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let key = Bytes::from(format!("w{w}-{i:05}"));
                        let value = Bytes::from(format!("v{i}"));
                        if client.put(key.clone(), value.clone()).await.is_ok() {
                            acked.lock().insert(key, value);
                        }
                    }
                })
            })
            .collect();
        Self { acked, stop, tasks }
    }

    fn count(&self) -> usize {
        self.acked.lock().len()
    }

    async fn wait_for_more(&self, more: usize) {
        let target = self.count() + more;
        eventually(&format!("{target} acknowledged writes"), T, async || {
            let count = self.count();
            if count >= target { Ok(()) } else { Err(count) }
        })
        .await;
    }

    async fn stop(self) -> BTreeMap<Bytes, Bytes> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        Arc::try_unwrap(self.acked).unwrap().into_inner()
    }
}

/// Every acknowledged write, read back from replica `i` once it applied `upto`
async fn assert_holds(
    node: &Node,
    net: &NodeNet,
    i: usize,
    upto: u64,
    acked: &BTreeMap<Bytes, Bytes>,
) {
    eventually(&format!("db-{i} joined"), T, async || {
        let connected = net.connected();
        if connected.contains(&format!("db-{i}")) {
            Ok(())
        } else {
            Err(connected)
        }
    })
    .await;
    let replica = node.addr::<DbMsg>(&format!("db-{i}"), &format!("db.{i}"));
    let mut found = BTreeMap::new();
    for w in 0..WRITERS {
        let scan = |reply| DbMsg::Scan {
            prefix: Bytes::from(format!("w{w}-")),
            limit: 10_000,
            read: ReadAt::Replica {
                min_index: upto,
                wait_ms: 20_000,
            },
            reply,
        };
        // a replica just restarted may be listed as connected before its new incarnation's
        // link is up: retry the scan while it is unreachable
        let page = eventually(&format!("replica {i} reachable"), T, async || match replica
            .call(scan, T)
            .await
        {
            Ok(Ok(page)) => Ok(page),
            Ok(Err(failure)) => panic!("scan of replica {i}: {failure:?}"),
            Err(err @ CallError::Unreachable { .. }) => Err(err),
            Err(err) => panic!("scan of replica {i}: {err:?}"),
        })
        .await;
        found.extend(page.entries);
    }
    let lost: Vec<&Bytes> = acked
        .iter()
        .filter(|(k, v)| found.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .take(5)
        .collect();
    assert!(
        lost.is_empty(),
        "replica {i} lost {} acknowledged writes, e.g. {lost:?}",
        acked
            .iter()
            .filter(|(k, v)| found.get(*k) != Some(*v))
            .count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn majority_mode_loses_no_acknowledged_write_when_replicas_are_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut replicas = setup(dir.path(), "majority", 300);
    let (node, net, client) = join(&replicas, Some(AckMode::Majority)).await;
    let first = leader(&client).await;
    let writers = Writers::start(&client, WRITERS);
    writers.wait_for_more(200).await;

    // A follower dies: the other two keep acknowledging.
    let follower = (first + 1) % 3;
    replicas.kill9(follower);
    writers.wait_for_more(200).await;
    replicas.start(follower);
    writers.wait_for_more(100).await;

    // The leader dies mid-stream: a follower is promoted and the writers carry on.
    replicas.kill9(first);
    let killed = Instant::now();
    writers.wait_for_more(200).await;
    let second = leader(&client).await;
    assert_ne!(second, first);
    assert!(killed.elapsed() < T);
    let acked = writers.stop().await;
    assert!(acked.len() >= 700);

    // The new leader holds every acknowledged write.
    let last = client.put("done", "1").await.unwrap().index;
    assert_holds(&node, &net, second, last, &acked).await;
    // The killed leader comes back from its file, follows, and catches up; so does everyone.
    replicas.start(first);
    for i in 0..3 {
        assert_holds(&node, &net, i, last, &acked).await;
    }
    assert_eq!(leader(&client).await, second);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_keeps_every_write_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    // Leader-only acknowledgement and no automatic promotion: every acknowledged write is on
    // the leader's disk alone, so only its file can give them back.
    let mut replicas = setup(dir.path(), "leader-only", 0);
    let (node, net, client) = join(&replicas, Some(AckMode::LeaderOnly)).await;
    let first = leader(&client).await;
    let writers = Writers::start(&client, WRITERS);
    writers.wait_for_more(300).await;
    replicas.kill9(first);
    let acked = writers.stop().await;
    replicas.start(first);
    // It led its newest epoch and no one replaced it: it leads again, from its file.
    assert_eq!(leader(&client).await, first);
    let last = client.put("done", "1").await.unwrap().index;
    assert_holds(&node, &net, first, last, &acked).await;
    net.shutdown().await;
}
