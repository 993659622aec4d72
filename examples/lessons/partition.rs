//! Lesson 7, the partition and CAP: three data centres, each with a replica of the database
//! (a Raft group) and a member of a leaderless store. Cut one off: the database keeps its
//! promise of one history and refuses writes on the minority side (consistency), while the
//! store takes writes on both sides and lets them diverge (availability). Heal: the minority
//! catches up with the database, and the store's members converge on one value (last writer
//! wins).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use troupe::faults::Faults;
use troupe::prelude::*;

use crate::harness::{Lesson, LessonArgs, say};

const DCS: [&str; 3] = ["dc-1", "dc-2", "dc-3"];

/// A value of the store, stamped for last-writer-wins: the higher clock wins, the node name
/// breaks a tie.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Stamped {
    clock: u64,
    node: String,
    value: String,
}

/// What a member of the leaderless store handles.
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "lessons.partition.Store")]
enum StoreMsg {
    /// Write here, at once, whatever the other members can hear.
    Put {
        key: String,
        value: String,
        reply: Reply<()>,
    },
    /// This member's value of `key`.
    Get {
        key: String,
        reply: Reply<Option<String>>,
    },
    /// Another member's entries, merged in (anti-entropy).
    Merge(Vec<(String, Stamped)>),
    /// Send this member's entries to the others (its own timer).
    Gossip,
}

/// One member of the store: accepts every write locally and gossips its entries.
struct Store {
    me: String,
    clock: u64,
    entries: BTreeMap<String, Stamped>,
    peers: Vec<Addr<StoreMsg>>,
}

impl Store {
    fn merge(&mut self, key: String, theirs: Stamped) {
        self.clock = self.clock.max(theirs.clock);
        let newer = self.entries.get(&key).is_none_or(|mine| theirs > *mine);
        if newer {
            self.entries.insert(key, theirs);
        }
    }
}

impl Actor for Store {
    type Msg = StoreMsg;

    async fn started(&mut self, ctx: &mut Ctx<StoreMsg>) -> Result<(), ActorError> {
        ctx.send_interval(Duration::from_millis(250), || StoreMsg::Gossip);
        Ok(())
    }

    async fn handle(&mut self, msg: StoreMsg, _: &mut Ctx<StoreMsg>) -> Result<(), ActorError> {
        match msg {
            StoreMsg::Put { key, value, reply } => {
                self.clock += 1;
                let stamped = Stamped {
                    clock: self.clock,
                    node: self.me.clone(),
                    value,
                };
                self.entries.insert(key, stamped);
                reply.send(());
            }
            StoreMsg::Get { key, reply } => {
                reply.send(self.entries.get(&key).map(|s| s.value.clone()));
            }
            StoreMsg::Merge(entries) => {
                for (key, stamped) in entries {
                    self.merge(key, stamped);
                }
            }
            StoreMsg::Gossip => {
                let entries: Vec<(String, Stamped)> = self
                    .entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                for peer in &self.peers {
                    // lost while the link is cut, as gossip is: the next round sends it all
                    let _ = peer.cast(StoreMsg::Merge(entries.clone()));
                }
            }
        }
        Ok(())
    }
}

/// A data centre's client's own timer.
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "lessons.partition.Client")]
enum ClientMsg {
    Tick,
}

/// Writes the same key to the database and to the store once a second, and says how each
/// answered.
struct Client {
    dc: String,
    db: DbClient,
    store: Addr<StoreMsg>,
    seq: u64,
}

impl Actor for Client {
    type Msg = ClientMsg;

    async fn started(&mut self, ctx: &mut Ctx<ClientMsg>) -> Result<(), ActorError> {
        ctx.send_interval(Duration::from_secs(1), || ClientMsg::Tick);
        Ok(())
    }

    async fn handle(&mut self, _: ClientMsg, _: &mut Ctx<ClientMsg>) -> Result<(), ActorError> {
        self.seq += 1;
        let value = format!("{}#{}", self.dc, self.seq);
        let timeout = Duration::from_millis(500);
        // what this member holds from everyone's writes so far, before this one
        let held = match self
            .store
            .call(
                |reply| StoreMsg::Get {
                    key: "k".into(),
                    reply,
                },
                timeout,
            )
            .await
        {
            Ok(Some(v)) => v,
            Ok(None) => "nothing".into(),
            Err(err) => err.to_string(),
        };
        let db = match self.db.put("k", value.clone()).await {
            Ok(written) => format!("database write ok (#{})", written.index),
            Err(err) => format!("database write REFUSED ({err})"),
        };
        let store = match self
            .store
            .call(
                |reply| StoreMsg::Put {
                    key: "k".into(),
                    value: value.clone(),
                    reply,
                },
                timeout,
            )
            .await
        {
            Ok(()) => "store write ok".to_string(),
            Err(err) => format!("store write failed ({err})"),
        };
        say(format!(
            "{}: {db} · {store} (before it, this member held k = {held})",
            self.dc
        ));
        Ok(())
    }
}

/// The comparison's own timer.
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "lessons.partition.Compare")]
enum CompareMsg {
    Look,
}

/// Asks every member of the store for `k`, half a second after the clients write, and says
/// whether they agree.
struct Compare {
    stores: Vec<Addr<StoreMsg>>,
}

impl Actor for Compare {
    type Msg = CompareMsg;

    async fn started(&mut self, ctx: &mut Ctx<CompareMsg>) -> Result<(), ActorError> {
        ctx.send_after(Duration::from_millis(500), CompareMsg::Look);
        Ok(())
    }

    async fn handle(&mut self, _: CompareMsg, ctx: &mut Ctx<CompareMsg>) -> Result<(), ActorError> {
        ctx.send_after(Duration::from_secs(1), CompareMsg::Look);
        let mut seen = Vec::new();
        for (dc, store) in DCS.iter().zip(&self.stores) {
            let held = store
                .call(
                    |reply| StoreMsg::Get {
                        key: "k".into(),
                        reply,
                    },
                    Duration::from_millis(300),
                )
                .await;
            seen.push((dc, held));
        }
        let answered: Vec<&Option<String>> =
            seen.iter().filter_map(|(_, h)| h.as_ref().ok()).collect();
        let verdict = if let [Some(first), ..] = answered.as_slice()
            && answered.len() == DCS.len()
            && answered.iter().all(|v| v.as_ref() == Some(first))
        {
            format!("store: all three hold k = {first} — converged")
        } else {
            let each: Vec<String> = seen
                .iter()
                .map(|(dc, held)| match held {
                    Ok(Some(v)) => format!("{dc} holds {v}"),
                    Ok(None) => format!("{dc} holds nothing yet"),
                    Err(_) => format!("{dc} unreachable"),
                })
                .collect();
            format!("store: {} — not converged", each.join(", "))
        };
        say(verdict);
        Ok(())
    }
}

/// dc-1, dc-2, dc-3: a database replica, a store member and a client in each
pub(crate) fn lesson(_args: &LessonArgs, dir: &Path) -> Lesson {
    let mut t = Topology::new("lesson-partition");
    let nodes: Vec<NodeId> = DCS.iter().map(|dc| t.node(dc)).collect();
    let db = t
        .add(
            nodes[0],
            "db",
            DCS.iter()
                .fold(DbSpec::in_dir(dir), |spec, dc| spec.replica(*dc))
                .reachable_from(Reach::cluster()),
        )
        .with_timeout(Duration::from_millis(900));
    // each member's handle first: every member gossips to the other two
    let stores: Vec<Addr<StoreMsg>> = DCS
        .iter()
        .zip(&nodes)
        .map(|(dc, node)| t.handle(*node, &format!("store.{dc}")))
        .collect();
    for (i, dc) in DCS.iter().enumerate() {
        let peers: Vec<Addr<StoreMsg>> = stores
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, s)| s.clone())
            .collect();
        let me = dc.to_string();
        t.add(
            nodes[i],
            &format!("store.{dc}"),
            (move || Store {
                me: me.clone(),
                clock: 0,
                entries: BTreeMap::new(),
                peers: peers.clone(),
            })
            .reachable_from(Reach::cluster()),
        );
        let (db, store, dc) = (db.clone(), stores[i].clone(), dc.to_string());
        t.add(nodes[i], "client", move || Client {
            dc: dc.clone(),
            db: db.clone(),
            store: store.clone(),
            seq: 0,
        });
    }
    let all = stores.clone();
    t.add(nodes[1], "compare", move || Compare {
        stores: all.clone(),
    });
    let faults = Faults::on_every_node(&mut t);
    Lesson {
        title: "7 · the partition and CAP",
        intro: vec![
            "dc-1, dc-2, dc-3: each has a replica of the database (one Raft group), a member of a".into(),
            "leaderless store, and a client writing k to both once a second. The comparison on dc-2".into(),
            "asks every store member for k.".into(),
            "try: partition dc-1   — the database refuses writes on dc-1 (it cannot reach a majority:".into(),
            "                        consistency) and takes them on dc-2 and dc-3 (after electing a".into(),
            "                        leader, if dc-1 led); the store takes writes everywhere, and".into(),
            "                        dc-1's copy drifts away from the others' (availability)".into(),
            "     heal             — dc-1 catches up, and the store converges: the last writer wins".into(),
        ],
        topology: t,
        faults,
        gateway: None,
        cuts_links: true,
        commands: None,
    }
}
