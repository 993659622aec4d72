//! [`DbSpec`]: one replicated database — its replicas' placement, acknowledgement mode,
//! limits and timings

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use troupe_runtime::{Addr, ChildOptions, ChildSpec, Node, Reach, RegistryError};

use crate::msg::{DbAdminMsg, DbMsg};

use crate::client::DbClient;
use crate::core::{AckMode, Limits};
use crate::raft::{RaftReplica, RaftRpc};
use crate::replica::DbReplica;

/// How to build the replicas of one database
///
/// Replica `i` is the actor named `{name}.{i}` on node `replicas[i]`. Every host builds the
/// same spec (same name, same node list, same mode), so replicas find each other by name.
///
/// Two ways to replicate:
///
/// - **Raft** (the default): the replicas are a Raft group ([`crate::raft`], openraft) that
///   elects its leader by vote; a write is acknowledged once a majority holds it durably,
///   reads from the leader are linearizable, and a side cut off from the majority refuses
///   rather than answers. Stored in `{dir}/{name}.{i}.raft.redb` and
///   `{dir}/{name}.{i}.snapshots/`.
/// - **Single-leader** ([`ack`](Self::ack)): replica 0 leads a fresh database, followers are
///   promoted on a node-down report, and the [`AckMode`] says how many copies acknowledge a
///   write — kept for what the modes teach (asynchronous and synchronous replication, what a
///   failure detector can get wrong); `docs/db.md` says what each can lose. Stored in
///   `{dir}/{name}.{i}.redb`.
///
/// # Examples
///
/// ```
/// use troupe_db::{AckMode, DbSpec};
///
/// let raft = DbSpec::new("db", "./troupe-data")
///     .replica("data-1")
///     .replica("data-2")
///     .replica("data-3");
/// assert!(raft.is_raft());
/// assert_eq!(raft.replica_name(2), "db.2");
/// let teaching = raft.ack(AckMode::LeaderOnly);
/// assert!(!teaching.is_raft());
/// ```
#[derive(Debug, Clone)]
pub struct DbSpec {
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) replicas: Vec<String>,
    pub(crate) mode: AckMode,
    pub(crate) limits: Limits,
    pub(crate) heartbeat: Duration,
    pub(crate) promote_after: Option<Duration>,
    pub(crate) max_read_wait: Duration,
    pub(crate) log_retain: u64,
    pub(crate) call_timeout: Duration,
    pub(crate) max_append_bytes: usize,
    pub(crate) max_pending_writes: usize,
    pub(crate) reach: Reach,
    /// Who may send operators' requests; `None`: the replicas' nodes
    pub(crate) admin: Option<Reach>,
    pub(crate) raft: bool,
    pub(crate) voters: Option<usize>,
}

impl DbSpec {
    /// A database called `name` with its files under `dir`, no replicas yet, majority
    /// acknowledgement, default limits and timings
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            dir: dir.into(),
            replicas: Vec::new(),
            mode: AckMode::Majority,
            limits: Limits::default(),
            heartbeat: Duration::from_millis(50),
            promote_after: Some(Duration::from_secs(1)),
            max_read_wait: Duration::from_secs(2),
            log_retain: 10_000,
            call_timeout: Duration::from_secs(2),
            max_append_bytes: 4 * 1024 * 1024,
            max_pending_writes: 100_000,
            reach: Reach::Local,
            admin: None,
            raft: true,
            voters: None,
        }
    }

    /// A database with its files under `dir`, for a topology to place: `Topology::add` names
    /// it (its replicas are `NAME.0`, `NAME.1`, ...) and puts the replicas added with
    /// [`replicas`](Self::replicas) on the node it is added at
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self::new("db", dir)
    }

    /// Adds a replica on `node` (the first one added leads a fresh database)
    pub fn replica(mut self, node: impl Into<String>) -> Self {
        self.replicas.push(node.into());
        self
    }

    /// Adds `count` replicas on the node a topology places the database at (see
    /// [`placed`](Self::placed))
    pub fn replicas(mut self, count: usize) -> Self {
        self.replicas
            .extend(std::iter::repeat_n(String::new(), count));
        self
    }

    /// This spec as a topology places it: called `name`, with the replicas added by
    /// [`replicas`](Self::replicas) on `node`
    pub fn placed(mut self, name: &str, node: &str) -> Self {
        self.name = name.to_string();
        for replica in &mut self.replicas {
            if replica.is_empty() {
                *replica = node.to_string();
            }
        }
        self
    }

    /// Replicates with a single leader instead of Raft, acknowledging a write once `mode`'s
    /// durable copies hold it (see the type's docs)
    pub fn ack(mut self, mode: AckMode) -> Self {
        self.mode = mode;
        self.raft = false;
        self
    }

    /// Runs the replicas as a Raft group (openraft), the default: elections by vote, a write
    /// acknowledged once a majority holds it durably, linearizable reads by default,
    /// snapshots in chunks. Undoes an earlier [`ack`](Self::ack). See [`crate::raft`].
    pub fn raft(mut self) -> Self {
        self.raft = true;
        self
    }

    /// Raft mode: only the first `n` replicas are voters of a fresh database; the others run,
    /// empty, until [`DbClient::add_replica`] makes them members (default: every replica)
    pub fn voters(mut self, n: usize) -> Self {
        self.voters = Some(n.max(1));
        self
    }

    /// How many replicas a fresh database starts with as voters (Raft mode)
    pub fn initial_voters(&self) -> usize {
        self.voters
            .unwrap_or(self.replicas.len())
            .min(self.replicas.len())
    }

    /// Whether the replicas run as a Raft group ([`raft`](Self::raft)).
    pub fn is_raft(&self) -> bool {
        self.raft
    }

    /// Key and value size limits (default: [`Limits::default`])
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How often the leader sends heartbeats (default 50 ms)
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// Promote a follower automatically once the leader's node has been reported down for
    /// `delay` (default 1 s); `None` leaves failover to [`DbClient::promote`]
    pub fn promote_after(mut self, delay: Option<Duration>) -> Self {
        self.promote_after = delay;
        self
    }

    /// Longest a replica holds a read waiting to catch up (default 2 s)
    pub fn max_read_wait(mut self, wait: Duration) -> Self {
        self.max_read_wait = wait;
        self
    }

    /// Applied entries kept in the log for followers that fall behind (default 10,000);
    /// a follower further behind is caught up by a snapshot
    pub fn log_retain(mut self, entries: u64) -> Self {
        self.log_retain = entries.max(1);
        self
    }

    /// The database's name
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of replicas
    pub fn replica_count(&self) -> usize {
        self.replicas.len()
    }

    /// The node replica `index` runs on
    pub fn replica_node(&self, index: usize) -> Option<&str> {
        self.replicas.get(index).map(String::as_str)
    }

    /// The actor name of replica `index`: `{name}.{index}`
    pub fn replica_name(&self, index: usize) -> String {
        format!("{}.{index}", self.name)
    }

    /// The peer name of replica `index`: `{name}.{index}.peer`, where the other replicas reach
    /// it with a [`DbPeerMsg`](crate::DbPeerMsg)
    pub fn peer_name(&self, index: usize) -> String {
        format!("{}.{index}.peer", self.name)
    }

    /// Lets clients on other nodes reach the replicas as `reach` says (by default only
    /// clients on a replica's own node may); the peer protocol is reachable from the
    /// replicas' nodes only, whatever this says
    pub fn reachable_from(mut self, reach: Reach) -> Self {
        self.reach = reach;
        self
    }

    /// Who may reach the replicas' client names from other nodes
    pub fn reach(&self) -> &Reach {
        &self.reach
    }

    /// Lets the nodes `reach` admits — instead of the replicas' own nodes, the default —
    /// send operators' requests ([`DbAdminMsg`]: manual failover, membership changes) to the
    /// replicas' admin names, whatever [`reachable_from`](Self::reachable_from) lets clients
    /// do, so a node that may read and write cannot fail the database over. Include the
    /// replicas' nodes in `reach` if their own admin endpoints should still act.
    pub fn administered_from(mut self, reach: Reach) -> Self {
        self.admin = Some(reach);
        self
    }

    /// Who may send operators' requests from other nodes
    pub fn admin_reach(&self) -> Reach {
        self.admin.clone().unwrap_or_else(|| self.peer_reach())
    }

    /// The admin name of replica `index`: `{name}.{index}.admin`, where operators reach it with
    /// a [`DbAdminMsg`]
    pub fn admin_name(&self, index: usize) -> String {
        format!("{}.{index}.admin", self.name)
    }

    /// The nodes that may speak the peer protocol: the replicas' own
    pub fn peer_reach(&self) -> Reach {
        Reach::nodes(self.replicas.iter().filter(|n| !n.is_empty()))
    }

    /// Registers replica `index` on `node` (which must be the node the spec places it on):
    /// the replica under [`replica_name`](Self::replica_name), reachable as
    /// [`reachable_from`](Self::reachable_from) says, its peer name, reachable from the
    /// replicas' nodes only, and its [`admin_name`](Self::admin_name), reachable as
    /// [`administered_from`](Self::administered_from) says. Returns the child spec to start and
    /// the replica's handle.
    ///
    /// # Errors
    ///
    /// [`RegistryError::AlreadyRegistered`] if either name is taken on `node` (nothing stays
    /// registered).
    ///
    /// # Panics
    ///
    /// If `index` is not a replica of this spec.
    pub fn child(
        &self,
        node: &Node,
        index: usize,
    ) -> Result<(ChildSpec, Addr<DbMsg>), RegistryError> {
        let name = self.replica_name(index);
        let options = ChildOptions::permanent().reachable_from(self.reach.clone());
        let (spec, addr) = if self.raft {
            node.child(&name, options, self.raft_factory(index))?
        } else {
            node.child(&name, options, self.factory(index))?
        };
        let facet = if self.raft {
            node.facet::<RaftRpc, DbMsg>(
                &self.raft_name(index),
                &name,
                DbMsg::Raft,
                self.peer_reach(),
            )
            .map(drop)
        } else {
            node.facet(
                &self.peer_name(index),
                &name,
                DbMsg::Peer,
                self.peer_reach(),
            )
            .map(drop)
        };
        let admin = facet.and_then(|()| {
            node.facet::<DbAdminMsg, DbMsg>(
                &self.admin_name(index),
                &name,
                DbMsg::from,
                self.admin_reach(),
            )
            .map(drop)
        });
        if let Err(err) = admin {
            spec.discard();
            return Err(err);
        }
        Ok((spec, addr))
    }

    /// The file replica `index` keeps its data in
    pub fn replica_path(&self, index: usize) -> PathBuf {
        self.dir.join(format!("{}.redb", self.replica_name(index)))
    }

    /// Replica `index`'s Raft name, which its peers send the Raft protocol to (Raft mode)
    pub fn raft_name(&self, index: usize) -> String {
        format!("{}.raft", self.replica_name(index))
    }

    /// The file replica `index` keeps its Raft log, vote and state in (Raft mode)
    pub fn raft_path(&self, index: usize) -> PathBuf {
        self.dir
            .join(format!("{}.raft.redb", self.replica_name(index)))
    }

    /// The directory replica `index` keeps its snapshots in (Raft mode)
    pub fn snapshot_dir(&self, index: usize) -> PathBuf {
        self.dir
            .join(format!("{}.snapshots", self.replica_name(index)))
    }

    /// As [`factory`](Self::factory), for a Raft-mode replica
    ///
    /// # Panics
    ///
    /// If `index` is not a replica of this spec.
    pub fn raft_factory(&self, index: usize) -> impl Fn() -> RaftReplica + Send + Sync + 'static {
        assert!(index < self.replicas.len(), "no replica {index}");
        let spec = Arc::new(self.clone());
        move || RaftReplica::new(spec.clone(), index as u64)
    }

    /// A factory for replica `index` for [`Node::child`](troupe_runtime::Node::child) or a
    /// topology: every (re)start gets a fresh actor that reopens the replica's file
    ///
    /// # Panics
    ///
    /// If `index` is not a replica of this spec.
    pub fn factory(&self, index: usize) -> impl Fn() -> DbReplica + Send + Sync + 'static {
        assert!(index < self.replicas.len(), "no replica {index}");
        let spec = Arc::new(self.clone());
        move || DbReplica::new(spec.clone(), index as u64)
    }

    /// A client for this database, reaching the replicas from `node`; in Raft mode it tries
    /// another replica after an election timeout without an answer
    pub fn client(&self, node: &Node) -> DbClient {
        let client = DbClient::new(
            (0..self.replicas.len())
                .map(|i| node.addr(&self.replicas[i], &self.replica_name(i)))
                .collect(),
        );
        if self.raft {
            client.with_attempt_timeout(self.election_timeout_max())
        } else {
            client
        }
    }

    /// Raft mode: the leader's heartbeat, at least 100 ms: openraft gives each append the
    /// heartbeat interval to be answered in, durable write included, and 50 ms is too short
    /// on a loaded machine (catch-up stalled behind timed-out appends)
    pub fn raft_heartbeat(&self) -> Duration {
        self.heartbeat.max(Duration::from_millis(100))
    }

    /// Raft mode: how long replica `index` waits without hearing from a leader before it
    /// stands for election: 6 [heartbeats](Self::raft_heartbeat), plus 3 per replica before
    /// it (600, 900, 1,200 ms for three replicas by default). openraft makes a follower of a
    /// known leader wait out the leader's lease and then its own timeout, each half of this
    /// here, and a voter refuse other candidates while the lease it granted runs (half of its
    /// own timeout, so the next replica to stand finds it over). The timeouts are
    /// staggered rather than drawn at random, so a simulation replays exactly (openraft draws
    /// its own from a generator no seed reaches); being distinct, they still keep two
    /// replicas from splitting the vote again and again.
    pub fn election_timeout(&self, index: usize) -> Duration {
        self.raft_heartbeat() * (6 + 3 * u32::try_from(index).unwrap_or(u32::MAX / 8))
    }

    /// Raft mode: the longest [`election_timeout`](Self::election_timeout) of the replicas
    pub fn election_timeout_max(&self) -> Duration {
        self.election_timeout(self.replicas.len().saturating_sub(1))
    }
}
