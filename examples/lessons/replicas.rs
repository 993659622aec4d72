//! Lesson 5, replicas: one leader takes the writes and two followers copy them. Reads can go
//! to any replica (the read/write split that spreads load), at the price of sometimes missing
//! a write just made (replication lag); read-your-writes reads wait for a replica that has it.
//! Cut a follower off and its lag grows; heal and it catches up.

use std::path::Path;
use std::time::Duration;

use troupe::db::Role;
use troupe::faults::Faults;
use troupe::prelude::*;

use crate::harness::{Lesson, LessonArgs, say};

/// The client's own timer.
#[derive(Debug, serde::Serialize, serde::Deserialize, Message)]
#[message(name = "lessons.replicas.Client")]
enum ClientMsg {
    /// Write, then read the write back both ways.
    Tick,
    /// Say what the last second looked like.
    Report,
}

/// Writes a counter, then reads it back at once from any replica and with read-your-writes.
struct Client {
    db: DbClient,
    seq: u64,
    writes: u64,
    failed: u64,
    /// Reads that got no answer in time
    unanswered: u64,
    any_missed: u64,
    ryw_missed: u64,
    /// Each replica's applied index when it last answered.
    last_seen: [Option<u64>; 3],
}

impl Client {
    fn new(db: DbClient) -> Self {
        Self {
            db,
            seq: 0,
            writes: 0,
            failed: 0,
            unanswered: 0,
            any_missed: 0,
            ryw_missed: 0,
            last_seen: [None; 3],
        }
    }

    /// Whether a read by `policy` missed the write just made; `None` if it got no answer
    /// (a replica it was sent to is cut off, say): unavailable, not stale.
    async fn missed(&self, policy: ReadPolicy) -> Option<bool> {
        let read = self.db.get_with("counter", policy).await.ok()?;
        let value = read
            .value
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u64>().ok());
        Some(value.is_none_or(|v| v < self.seq))
    }

    fn count(&mut self, missed: Option<bool>, read_your_writes: bool) {
        match (missed, read_your_writes) {
            (None, _) => self.unanswered += 1,
            (Some(false), _) => {}
            (Some(true), false) => self.any_missed += 1,
            (Some(true), true) => self.ryw_missed += 1,
        }
    }

    async fn report(&mut self) -> String {
        let statuses = self.db.statuses().await;
        let leader_index = statuses
            .iter()
            .flatten()
            .find(|s| s.role == Role::Leader)
            .map(|s| s.last_index);
        let mut lag = Vec::new();
        for (i, status) in statuses.iter().enumerate() {
            let name = format!("data-{}", i + 1);
            lag.push(match (status, leader_index) {
                (Ok(s), _) if s.role == Role::Leader => {
                    format!("{name} leads at #{}", s.last_index)
                }
                (Ok(s), Some(leader)) => {
                    format!("{name} {} behind", leader.saturating_sub(s.applied_index))
                }
                (Ok(_), None) => format!("{name} follows"),
                (Err(_), _) => match (self.last_seen.get(i).copied().flatten(), leader_index) {
                    (Some(seen), Some(leader)) => format!(
                        "{name} unreachable, {} behind when last seen",
                        leader.saturating_sub(seen)
                    ),
                    _ => format!("{name} unreachable"),
                },
            });
            if let (Ok(s), Some(seen)) = (status, self.last_seen.get_mut(i)) {
                *seen = Some(s.applied_index);
            }
        }
        let line = format!(
            "writes {} · read back from any replica: {} missed the write just made · with read-your-writes: {} missed{} · lag: {}",
            self.writes,
            self.any_missed,
            self.ryw_missed,
            match (self.failed, self.unanswered) {
                (0, 0) => String::new(),
                (w, r) => format!(" · {w} writes and {r} reads got no answer"),
            },
            lag.join(", ")
        );
        (self.writes, self.failed, self.unanswered) = (0, 0, 0);
        (self.any_missed, self.ryw_missed) = (0, 0);
        line
    }
}

impl Actor for Client {
    type Msg = ClientMsg;

    async fn started(&mut self, ctx: &mut Ctx<ClientMsg>) -> Result<(), ActorError> {
        ctx.send_interval(Duration::from_millis(25), || ClientMsg::Tick);
        ctx.send_interval(Duration::from_secs(1), || ClientMsg::Report);
        Ok(())
    }

    async fn handle(&mut self, msg: ClientMsg, _: &mut Ctx<ClientMsg>) -> Result<(), ActorError> {
        match msg {
            ClientMsg::Tick => {
                let seq = self.seq + 1;
                if self.db.put("counter", seq.to_string()).await.is_err() {
                    self.failed += 1;
                    return Ok(());
                }
                self.seq = seq;
                self.writes += 1;
                let any = self.missed(ReadPolicy::AnyReplica).await;
                self.count(any, false);
                let ryw = self.missed(ReadPolicy::ReadYourWrites).await;
                self.count(ryw, true);
            }
            ClientMsg::Report => {
                let line = self.report().await;
                say(line);
            }
        }
        Ok(())
    }
}

/// A replica on each of data-1, data-2, data-3 (the first usually leads); the client on data-1.
pub(crate) fn lesson(_args: &LessonArgs, dir: &Path) -> Lesson {
    let mut t = Topology::new("lesson-replicas");
    let data = [t.node("data-1"), t.node("data-2"), t.node("data-3")];
    // Raft, the default: a write is acknowledged once a majority holds it; the third copy
    // comes just after, and any replica applies it a little after it commits
    let db = t
        .add(
            data[0],
            "db",
            DbSpec::in_dir(dir)
                .replica("data-1")
                .replica("data-2")
                .replica("data-3")
                .reachable_from(Reach::nodes(["data-1"])),
        )
        .with_timeout(Duration::from_secs(1));
    t.add(data[0], "client", move || Client::new(db.clone()));
    let faults = Faults::on_every_node(&mut t);
    Lesson {
        title: "5 · replicas: reads split from writes",
        intro: vec![
            "client on data-1; three replicas of a Raft group on data-1, data-2, data-3 (one leads).".into(),
            "A write is acknowledged once a majority holds it; each replica applies it a moment".into(),
            "later. The client writes a counter, then reads it back at once from any replica, and".into(),
            "again with read-your-writes (a replica that has applied the client's last write).".into(),
            "try: partition data-3   — data-3 is cut off: the other two still make a majority, writes".into(),
            "                          go on, and data-3 falls behind".into(),
            "     heal               — data-3 catches up".into(),
        ],
        topology: t,
        faults,
        gateway: None,
        cuts_links: true,
        commands: None,
    }
}
