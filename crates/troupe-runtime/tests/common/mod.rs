//! Test actors shared by the runtime's integration tests.
#![allow(dead_code, missing_docs, unreachable_pub)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use troupe_runtime::{
    Actor, ActorError, Addr, ChildOptions, Ctx, Mesh, Message, Node, NodeConfig, ReplyTo,
    SupervisorSpec,
};

pub const T: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Probe {
    /// Appends to the actor's log; replies with the log length.
    Push(u64),
    /// Replies with the log.
    Log,
    /// Replies with how many times this name has been started.
    Starts,
    /// Panics.
    Panic,
    /// Returns an error from the handler.
    Fail,
    /// Stops normally.
    Stop,
    /// Sleeps, then replies.
    Sleep(u64),
    /// Drops the reply handle unanswered.
    Drop,
    /// Hands the reply handle to another task that answers later.
    Defer(u64),
    /// Answers the call with a typed error instead of a reply.
    Refuse,
    /// Calls `Push(n)` on the given handle and replies with its answer.
    Forward(Addr<Self>, u64),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeReply {
    Len(usize),
    Log(Vec<u64>),
    Starts(u32),
    Done,
}

impl Message for Probe {
    const NAME: &'static str = "test.Probe";
    const VERSION: u16 = 1;
    type Reply = ProbeReply;
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

    async fn started(&mut self, ctx: &Ctx<Probe>) -> Result<(), ActorError> {
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
        Ok(())
    }

    async fn handle(
        &mut self,
        msg: Probe,
        reply: ReplyTo<ProbeReply>,
        ctx: &Ctx<Probe>,
    ) -> Result<(), ActorError> {
        match msg {
            Probe::Push(n) => {
                self.log.push(n);
                reply.send(ProbeReply::Len(self.log.len()));
            }
            Probe::Log => {
                reply.send(ProbeReply::Log(self.log.clone()));
            }
            Probe::Starts => {
                reply.send(ProbeReply::Starts(self.journal.starts(ctx.name())));
            }
            Probe::Panic => panic!("probe asked to panic"),
            Probe::Fail => return Err("probe asked to fail".into()),
            Probe::Stop => {
                reply.send(ProbeReply::Done);
                ctx.stop();
            }
            Probe::Sleep(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                reply.send(ProbeReply::Done);
            }
            Probe::Drop => drop(reply),
            Probe::Defer(ms) => {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    reply.send(ProbeReply::Done);
                });
            }
            Probe::Refuse => reply.fail(troupe_runtime::CallError::Overloaded {
                target: "refused on purpose".into(),
                limit: 7,
            }),
            Probe::Forward(to, n) => {
                let answer = to.call(Probe::Push(n), T).await?;
                reply.send(answer);
            }
        }
        Ok(())
    }

    async fn stopped(&mut self, ctx: &Ctx<Probe>) -> Result<(), ActorError> {
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

/// A started node named `name` in `mesh`, with a `probe` actor.
pub async fn node_with_probe_in(mesh: &Mesh, name: &str, journal: &Journal) -> (Node, Addr<Probe>) {
    let node = Node::new(name, mesh, NodeConfig::default()).unwrap();
    let j = journal.clone();
    let (spec, addr) = node
        .child("probe", ChildOptions::permanent(), move || {
            ProbeActor::new(&j)
        })
        .unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![spec])
        .await
        .unwrap();
    (node, addr)
}
