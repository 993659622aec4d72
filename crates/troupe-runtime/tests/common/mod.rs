//! Test actors shared by the runtime's integration tests.
#![allow(dead_code, missing_docs, unreachable_pub, unused_imports)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use troupe_runtime::{
    Actor, ActorError, Addr, ChildOptions, ChildSpec, Ctx, Mesh, Message, Node, NodeConfig, Reach,
    Reply, SupervisionAction, SupervisorSpec,
};

pub const T: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "test.Probe")]
pub enum Probe {
    /// Appends to the actor's log; replies with the log length.
    Push(u64, Reply<usize>),
    /// Replies with the log.
    Log(Reply<Vec<u64>>),
    /// Replies with how many times this name has been started.
    Starts(Reply<u32>),
    /// Panics.
    Panic(Reply<()>),
    /// Returns an error from the handler.
    Fail(Reply<()>),
    /// Stops normally.
    Stop(Reply<()>),
    /// Sleeps, then replies.
    Sleep(u64, Reply<()>),
    /// Drops the reply handle unanswered.
    Drop(Reply<()>),
    /// Hands the reply handle to another task that answers later.
    Defer(u64, Reply<()>),
    /// Answers the call with a typed error instead of a reply.
    Refuse(Reply<()>),
    /// Calls `Push(n)` on the given handle and replies with its answer.
    Forward(Addr<Self>, u64, Reply<usize>),
}

/// Shared record of what happened to named actors across restarts.
#[derive(Clone, Default)]
pub struct Journal {
    pub starts: Arc<Mutex<HashMap<String, u32>>>,
    pub events: Arc<Mutex<Vec<String>>>,
}

impl Journal {
    pub fn starts(&self, name: &str) -> u32 {
        self.starts.lock().get(name).copied().unwrap_or(0)
    }
    pub fn events(&self) -> Vec<String> {
        self.events.lock().clone()
    }
}

/// What a probe instance shares with its own process: which start of its name it is.
#[derive(Debug, PartialEq, Eq)]
pub struct Started(pub u32);

pub struct ProbeActor {
    pub journal: Journal,
    pub log: Vec<u64>,
}

impl ProbeActor {
    pub fn new(journal: &Journal) -> Self {
        Self {
            journal: journal.clone(),
            log: Vec::new(),
        }
    }
}

impl Actor for ProbeActor {
    type Msg = Probe;

    async fn started(&mut self, ctx: &mut Ctx<Probe>) -> Result<(), ActorError> {
        *self
            .journal
            .starts
            .lock()
            .entry(ctx.name().to_string())
            .or_default() += 1;
        self.journal
            .events
            .lock()
            .push(format!("start {}", ctx.name()));
        let started = Arc::new(Started(self.journal.starts(ctx.name())));
        assert!(ctx.share(started), "the first share of an instance");
        assert!(!ctx.share(Arc::new(0u8)), "one share per instance");
        Ok(())
    }

    async fn handle(&mut self, msg: Probe, ctx: &mut Ctx<Probe>) -> Result<(), ActorError> {
        match msg {
            Probe::Push(n, reply) => {
                self.log.push(n);
                reply.send(self.log.len());
            }
            Probe::Log(reply) => {
                reply.send(self.log.clone());
            }
            Probe::Starts(reply) => {
                reply.send(self.journal.starts(ctx.name()));
            }
            Probe::Panic(_reply) => panic!("probe asked to panic"),
            Probe::Fail(_reply) => return Err("probe asked to fail".into()),
            Probe::Stop(reply) => {
                reply.send(());
                ctx.stop();
            }
            Probe::Sleep(ms, reply) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                reply.send(());
            }
            Probe::Drop(reply) => drop(reply),
            Probe::Defer(ms, reply) => {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    reply.send(());
                });
            }
            Probe::Refuse(reply) => reply.fail(troupe_runtime::CallError::Overloaded {
                target: "refused on purpose".into(),
                limit: 7,
            }),
            Probe::Forward(to, n, reply) => {
                let answer = to.call(|r| Probe::Push(n, r), T).await?;
                reply.send(answer);
            }
        }
        Ok(())
    }

    async fn stopped(&mut self, ctx: &mut Ctx<Probe>) -> Result<(), ActorError> {
        self.journal
            .events
            .lock()
            .push(format!("stop {}", ctx.name()));
        Ok(())
    }
}

pub use troupe_testkit::eventually;

/// A started node named `name` in a mesh of its own, with a `probe` actor.
pub async fn node_with_probe(name: &str, journal: &Journal) -> (Node, Addr<Probe>) {
    node_with_probe_in(&Mesh::new(), name, journal).await
}

/// A started node named `name` in `mesh`, with a `probe` actor that every node of the
/// cluster may reach.
pub async fn node_with_probe_in(mesh: &Mesh, name: &str, journal: &Journal) -> (Node, Addr<Probe>) {
    let node = Node::new(name, mesh, NodeConfig::default()).unwrap();
    let j = journal.clone();
    let (spec, addr) = node
        .child(
            "probe",
            ChildOptions::permanent().reachable_from(Reach::cluster()),
            move || ProbeActor::new(&j),
        )
        .unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![spec])
        .await
        .unwrap();
    (node, addr)
}

/// A child spec for a probe named `name` on `node`, and its handle.
pub fn probe(
    node: &Node,
    journal: &Journal,
    name: &str,
    options: ChildOptions,
) -> (ChildSpec, Addr<Probe>) {
    let j = journal.clone();
    node.child(name, options, move || ProbeActor::new(&j))
        .unwrap()
}

/// Starts children `c0..c{n}` under a root with `spec`.
pub async fn tree(spec: SupervisorSpec, n: usize, journal: &Journal) -> (Node, Vec<Addr<Probe>>) {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let (specs, addrs): (Vec<_>, Vec<_>) = (0..n)
        .map(|i| probe(&node, journal, &format!("c{i}"), ChildOptions::permanent()))
        .unzip();
    node.start(spec, specs).await.unwrap();
    (node, addrs)
}

/// Makes the probe at `addr` panic and waits for its supervisor's report that it restarted.
pub async fn crash_and_settle(addr: &Addr<Probe>, node: &Node) {
    let mut reports = node.supervision_reports();
    addr.cast(Probe::Panic(Reply::none())).unwrap();
    let report = tokio::time::timeout(T, reports.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(report.action, SupervisionAction::Restarted { .. }),
        "{report:?}"
    );
}
