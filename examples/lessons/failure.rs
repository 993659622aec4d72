//! Lesson 6, failure: a node of services is lost (the gateway notices, answers 503 while no
//! service is left, and recovers when the node is back), and the database's leader is lost (the two
//! other replicas elect a new one; writes pause, then go on).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use troupe::db::Role;
use troupe::faults::Faults;
use troupe::prelude::*;

use crate::harness::{Answer, Events, Lesson, LessonArgs, Users, describe, say, statuses};
use crate::service::Service;

/// The leader watcher's own timer.
#[derive(Debug, serde::Serialize, serde::Deserialize, Message)]
#[message(name = "lessons.failure.Leader")]
enum LeaderMsg {
    Look,
}

/// Says which replica leads, and when that changes.
struct LeaderWatch {
    db: DbClient,
    leader: Option<usize>,
}

impl Actor for LeaderWatch {
    type Msg = LeaderMsg;

    async fn started(&mut self, ctx: &mut Ctx<LeaderMsg>) -> Result<(), ActorError> {
        ctx.send_interval(Duration::from_millis(500), || LeaderMsg::Look);
        Ok(())
    }

    async fn handle(&mut self, _: LeaderMsg, _: &mut Ctx<LeaderMsg>) -> Result<(), ActorError> {
        let statuses = self.db.statuses().await;
        // the replica that says it leads, of the newest epoch among those that answer
        let leader = statuses
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().ok().map(|s| (i, s)))
            .filter(|(_, s)| s.role == Role::Leader)
            .max_by_key(|(_, s)| s.epoch)
            .map(|(i, s)| (i, s.epoch));
        match (self.leader, leader) {
            (None, Some((i, epoch))) => say(format!(
                "db: data-{} leads (term {epoch}) — try: partition data-{}",
                i + 1,
                i + 1
            )),
            (Some(old), Some((i, epoch))) if old != i => say(format!(
                "db: data-{} leads now (term {epoch}); data-{} led before",
                i + 1,
                old + 1
            )),
            _ => {}
        }
        if let Some((i, _)) = leader {
            self.leader = Some(i);
        }
        Ok(())
    }
}

/// users → gateway → lb (edge) → app.svc.0..2 (app) → db: one replica on each of data-1..3
pub(crate) fn lesson(args: &LessonArgs, dir: &Path) -> Lesson {
    let mut t = Topology::new("lesson-failure");
    let (users, edge, app) = (t.node("users"), t.node("edge"), t.node("app"));
    let data = t.node("data-1");
    t.node("data-2");
    t.node("data-3");
    let db = t
        .add(
            data,
            "db",
            DbSpec::in_dir(dir)
                .replica("data-1")
                .replica("data-2")
                .replica("data-3")
                .reachable_from(Reach::nodes(["app"])),
        )
        .with_timeout(Duration::from_secs(1));
    let pool = {
        let db = db.clone();
        t.pool_with(
            app,
            "app.svc",
            3,
            ChildOptions::permanent().reachable_from(Reach::nodes(["edge"])),
            move |_| Service::new(Some(db.clone())),
        )
    };
    t.add(app, "leader-watch", move || LeaderWatch {
        db: db.clone(),
        leader: None,
    });
    let lb = t.add(
        edge,
        "lb",
        Balancer::least_outstanding(&pool).timeout(Duration::from_millis(1500)),
    );
    let gateway = t.add(
        edge,
        "gateway",
        Proxy::http(&args.http)
            .route("/", lb)
            .timeout(Duration::from_secs(2))
            .reachable_from(Reach::cluster()),
    );
    t.add(edge, "events", || Events);
    let last_write: Arc<Mutex<String>> = Arc::default();
    let summarize = move |answers: &[Answer]| {
        let mut last = last_write.lock().expect("last write");
        if let Some(wrote) = answers
            .iter()
            .rev()
            .find(|a| a.status == 200)
            .and_then(|a| a.body.split(" wrote ").nth(1))
        {
            *last = wrote.to_string();
        }
        format!(
            "users: {} · last write acknowledged: {}",
            describe(&statuses(answers)),
            if last.is_empty() { "none yet" } else { &last }
        )
    };
    t.add(
        users,
        "users",
        Restartable::from(Users::get_root(
            gateway.clone(),
            Duration::from_millis(100),
            Arc::new(summarize),
        )),
    );
    let faults = Faults::on_every_node(&mut t);
    Lesson {
        title: "6 · failure: a node lost, a leader lost",
        intro: vec![
            "users → gateway → lb (node edge) → app.svc.0..2 (node app) → db, a Raft group with one".into(),
            "replica on each of data-1, data-2, data-3. Each request writes to the database.".into(),
            "try: crash app          — the services' node dies: requests in flight fail (502, 504)".into(),
            "                          until edge notices (detection), then the balancer, with no".into(),
            "                          member left, answers 503 at once; heal (its restart), and 200".into(),
            "     partition data-N   — the leader's node (the narration says which) is lost: the".into(),
            "                          other two elect a leader, writes pause, then go on; heal".into(),
        ],
        topology: t,
        faults,
        gateway: Some(gateway),
        cuts_links: true,
        commands: None,
    }
}
