//! A replica whose file fails its writes: through `troupe_store::faults` (`ENOSPC` or `EIO` on
//! a switch) and on a real tmpfs that runs out of space. The write that hits the failure gets
//! a typed storage error, reads are served while it lasts, writes resume once space returns,
//! and every acknowledged write is there after.

mod one_process;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use troupe_db::msg::ReadAt;
use troupe_db::{
    AckMode, DbAdminMsg, DbClient, DbError, DbFailure, DbMsg, DbSpec, ReadPolicy, ReplicaStatus,
    Role,
};
use troupe_runtime::{Mesh, Node, NodeConfig, SupervisorSpec};
use troupe_store::StoreErrorKind;
use troupe_store::faults::{self, FaultSwitch};
use troupe_testkit::{SmallDisk, eventually};

const T: Duration = Duration::from_secs(20);

/// How a test's database replicates
#[derive(Clone, Copy)]
enum Replication {
    Single(AckMode),
    Raft,
}

impl From<AckMode> for Replication {
    fn from(mode: AckMode) -> Self {
        Self::Single(mode)
    }
}

impl Replication {
    fn apply(self, spec: DbSpec) -> DbSpec {
        match self {
            Self::Single(mode) => spec.ack(mode),
            Self::Raft => spec.raft(),
        }
    }
}

/// Three replicas on three nodes of one process, and a client
struct Db {
    nodes: Vec<Node>,
    spec: DbSpec,
    client: DbClient,
}

impl Db {
    /// Single-leader replication (`Majority`): what these tests were written for
    async fn start(dir: &Path) -> Self {
        Self::start_with(dir, AckMode::Majority.into()).await
    }

    /// Replication by `raft` (true) or a single leader (false)
    async fn start_with(dir: &Path, mode: Replication) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let spec = mode.apply(
            DbSpec::new("db", dir)
                .replica("r0")
                .replica("r1")
                .replica("r2"),
        );
        let nodes = one_process::start_replicas(&spec, &["r0", "r1", "r2"]).await;
        let client = spec.client(&nodes[0]).with_timeout(Duration::from_secs(3));
        let db = Self {
            nodes,
            spec,
            client,
        };
        eventually("a leader", T, async || {
            db.statuses()
                .await
                .iter()
                .flatten()
                .any(|s| s.role == Role::Leader)
        })
        .await;
        db
    }

    async fn statuses(&self) -> Vec<Option<ReplicaStatus>> {
        self.client
            .statuses()
            .await
            .into_iter()
            .map(Result::ok)
            .collect()
    }

    async fn status(&self, replica: usize) -> ReplicaStatus {
        self.client.replicas()[replica]
            .call(DbMsg::Status, T)
            .await
            .unwrap()
    }

    /// `replica`'s status once it reports a storage fault
    async fn faulted(&self, replica: usize) -> ReplicaStatus {
        eventually(
            &format!("replica {replica} reports its fault"),
            T,
            async || {
                let status = self.status(replica).await;
                if status.storage_fault.is_some() {
                    Ok(status)
                } else {
                    Err(status)
                }
            },
        )
        .await
    }

    /// A read of `key` answered by `replica` alone, from whatever it has applied
    async fn read_at(&self, replica: usize, key: &str) -> Result<Option<Bytes>, DbFailure> {
        read_from(&self.client.replicas()[replica], key).await
    }

    async fn stop(self) {
        for node in self.nodes {
            node.shutdown().await;
        }
    }
}

fn assert_storage_failure(result: Result<impl std::fmt::Debug, DbError>, cause: &str) {
    match result {
        Err(DbError::Refused(DbFailure::Storage(fault))) => {
            assert_eq!(fault.kind, StoreErrorKind::Io, "{fault:?}");
            assert!(fault.message.contains(cause), "{fault:?}");
        }
        other => panic!("expected a storage failure ({cause}), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaders_disk_fails_writes_are_refused_typed_and_resume_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = DbSpec::new("db", dir.path()).replica("r0").replica_path(0);
    let switch = FaultSwitch::new();
    faults::inject(&path, &switch);
    let db = Db::start(dir.path()).await;
    assert_eq!(
        db.status(0).await.role,
        Role::Leader,
        "a fresh database: r0 leads"
    );
    let mut acked = vec![("before", db.client.put("before", "1").await.unwrap())];

    for (round, (fault, cause)) in [
        (FaultSwitch::disk_full as fn(&FaultSwitch), "No space left"),
        (FaultSwitch::io_error, "Input/output error"),
    ]
    .into_iter()
    .enumerate()
    {
        // the fault is on r0's disk, so r0 must lead when it strikes: the previous round's
        // fault may have moved the lead (its followers elect another leader while r0 cannot
        // write), and a write would then succeed elsewhere
        if db.status(0).await.role != Role::Leader {
            let replica = &db.client.replicas()[0];
            let admin = replica.sibling::<DbAdminMsg>(&format!("{}.admin", replica.name()));
            let _ = admin.call(DbAdminMsg::Promote, T).await;
        }
        eventually("r0 leads", T, async || {
            db.status(0).await.role == Role::Leader
        })
        .await;
        fault(&switch);
        assert_storage_failure(db.client.put("during", "x").await, cause);
        // while it lasts: the leader serves reads, refuses writes typed, says why
        assert_eq!(
            db.client.get("before").await.unwrap().as_deref(),
            Some(&b"1"[..])
        );
        assert_storage_failure(db.client.put("refused", "x").await, cause);
        let status = db.status(0).await;
        assert!(status.storage_fault.is_some(), "{status:?}");
        switch.heal();
        let key = ["after-0", "after-1"][round];
        let written = eventually("writes resume", T, async || db.client.put(key, "2").await).await;
        acked.push((key, written));
    }

    // every acknowledged write is there, on the leader and (once caught up) on every replica
    for (key, _) in &acked {
        assert!(db.client.get(*key).await.unwrap().is_some(), "{key} lost");
    }
    let last = acked.iter().map(|(_, w)| w.index).max().unwrap();
    for replica in 0..3 {
        eventually("every replica caught up", T, async || {
            db.status(replica).await.applied_index >= last
        })
        .await;
    }
    db.stop().await;
    faults::remove(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followers_disk_fails_the_others_take_writes_and_it_catches_up_after() {
    let dir = tempfile::tempdir().unwrap();
    let path = DbSpec::new("db", dir.path())
        .replica("r0")
        .replica("r1")
        .replica_path(1);
    let switch = FaultSwitch::new();
    faults::inject(&path, &switch);
    let db = Db::start(dir.path()).await;
    db.client.put("before", "1").await.unwrap();
    eventually("r1 applied the first write", T, async || {
        db.read_at(1, "before").await == Ok(Some(Bytes::from_static(b"1")))
    })
    .await;

    switch.disk_full();
    // a majority (r0, r2) still acknowledges; r1 fails the append and refuses changes
    let mut last = 0;
    for i in 0..20 {
        last = db.client.put(format!("k{i}"), "v").await.unwrap().index;
    }
    let status = db.faulted(1).await;
    assert!(status.applied_index < last, "{status:?}");
    // and still serves what it holds
    assert_eq!(
        db.read_at(1, "before").await,
        Ok(Some(Bytes::from_static(b"1")))
    );

    switch.heal();
    eventually("r1 reopens and catches up", T, async || {
        let status = db.status(1).await;
        status.storage_fault.is_none() && status.applied_index >= last
    })
    .await;
    assert_eq!(
        db.read_at(1, "k19").await,
        Ok(Some(Bytes::from_static(b"v")))
    );
    db.stop().await;
    faults::remove(&path);
}

/// Replica `index` of `spec` alone on a node of its own
async fn lone_replica(spec: &DbSpec, index: usize) -> (Node, troupe_runtime::Addr<DbMsg>) {
    let name = ["r0", "r1", "r2"][index];
    let node = Node::new(name, &Mesh::new(), NodeConfig::default()).unwrap();
    let (child, addr) = spec.child(&node, index).unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![child])
        .await
        .unwrap();
    (node, addr)
}

/// A read of `key` answered by `replica` alone, from whatever it has applied
async fn read_from(
    replica: &troupe_runtime::Addr<DbMsg>,
    key: &str,
) -> Result<Option<Bytes>, DbFailure> {
    let key = Bytes::copy_from_slice(key.as_bytes());
    replica
        .call(
            |reply| DbMsg::Get {
                key,
                read: ReadAt::Replica {
                    min_index: 0,
                    wait_ms: 0,
                },
                reply,
            },
            T,
        )
        .await
        .unwrap()
        .map(|read| read.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_full_tmpfs_writes_fail_typed_reads_go_on_and_a_restart_still_opens() {
    let disk = match SmallDisk::mount(8 << 20) {
        Ok(disk) => disk,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let dir = disk.path().join("db");
    let db = Db::start(&dir).await;
    let mut acked = Vec::new();
    for i in 0..10 {
        db.client.put(format!("k{i}"), "v").await.unwrap();
        acked.push(format!("k{i}"));
    }
    disk.fill();

    // writes until one hits the full disk (redb may still have free pages in its file)
    let value = Bytes::from(vec![7u8; 16 << 10]);
    let mut refused = None;
    for i in 0..2_000 {
        match db.client.put(format!("fill{i}"), value.clone()).await {
            Ok(_) => acked.push(format!("fill{i}")),
            Err(err) => {
                refused = Some(err);
                break;
            }
        }
    }
    assert_storage_failure(refused.map_or(Ok(()), Err), "No space left");
    // reads are served while the disk is full
    assert_eq!(
        db.client.get("k0").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert_eq!(
        db.read_at(1, "k0").await,
        Ok(Some(Bytes::from_static(b"v")))
    );

    // a replica restarted on the full disk opens its file and serves reads
    db.nodes[2].shutdown().await;
    let (node, reopened) = lone_replica(&db.spec, 2).await;
    assert_eq!(
        read_from(&reopened, "k0").await,
        Ok(Some(Bytes::from_static(b"v")))
    );
    node.shutdown().await;

    disk.free();
    let client = db.client.with_read_policy(ReadPolicy::Leader);
    eventually("writes resume once space returns", T, async || {
        client.put("after", "v").await
    })
    .await;
    for key in &acked {
        assert!(
            client.get(key.clone()).await.unwrap().is_some(),
            "{key} lost"
        );
    }
    let Db { nodes, .. } = db;
    for node in nodes.into_iter().take(2) {
        node.shutdown().await;
    }
}

/// Raft mode: a follower's file fills up. A majority still acknowledges; the follower's
/// openraft stops on the failed append, the replica reports its fault, still answers reads
/// from what it holds, and once space returns it starts openraft again and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_a_followers_disk_fails_the_others_take_writes_and_it_catches_up_after() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Replication::Raft.apply(
        DbSpec::new("db", dir.path())
            .replica("r0")
            .replica("r1")
            .replica("r2"),
    );
    let db = Db::start_with(dir.path(), Replication::Raft).await;
    let leader = db
        .statuses()
        .await
        .iter()
        .flatten()
        .find(|s| s.role == Role::Leader)
        .map(|s| s.id as usize)
        .unwrap();
    let follower = (leader + 1) % 3;
    // armed after the start: the fault switch belongs to the next open of the file
    db.client.put("before", "1").await.unwrap();
    eventually("the follower applied the first write", T, async || {
        db.read_at(follower, "before").await == Ok(Some(Bytes::from_static(b"1")))
    })
    .await;
    let path = spec.raft_path(follower);
    let switch = FaultSwitch::new();
    faults::inject(&path, &switch);
    // a restart of the follower's actor reopens its file through the switch
    assert!(db.nodes[follower].kill(&spec.replica_name(follower)));
    eventually("the follower back", T, async || {
        db.statuses().await[follower]
            .as_ref()
            .is_some_and(|s| s.leader.is_some())
    })
    .await;
    switch.disk_full();
    let mut last = 0;
    for i in 0..20 {
        last = db.client.put(format!("k{i}"), "v").await.unwrap().index;
    }
    let status = db.faulted(follower).await;
    assert!(status.applied_index < last, "{status:?}");
    // what it holds, or (the switch fails the reopen's header write too, which a real full
    // disk does not: see the tmpfs test) its fault, typed: the failed write's, or the failed
    // reopen's
    match db.read_at(follower, "before").await {
        Ok(value) => assert_eq!(value, Some(Bytes::from_static(b"1"))),
        Err(DbFailure::Storage(fault)) => assert!(
            matches!(fault.kind, StoreErrorKind::Io | StoreErrorKind::Open),
            "{fault:?}"
        ),
        Err(other) => panic!("a read during the fault: {other:?}"),
    }
    switch.heal();
    eventually("the follower reopens and catches up", T, async || {
        let status = db.status(follower).await;
        status.storage_fault.is_none() && status.applied_index >= last
    })
    .await;
    assert_eq!(
        db.read_at(follower, "k19").await,
        Ok(Some(Bytes::from_static(b"v")))
    );
    db.stop().await;
    faults::remove(&path);
}
