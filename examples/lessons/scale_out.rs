//! Lesson 2, scale out: a balancer spreads users over a pool of services on two nodes. Crash
//! a member and its supervisor restarts it; lose a node and the balancer leaves it out until
//! it is back; start a node and it takes its share.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use troupe::balancer::core::Strategy;
use troupe::faults::Faults;
use troupe::prelude::*;

use crate::harness::{Answer, Events, Lesson, LessonArgs, Users, describe, statuses};
use crate::service::{Service, member};

/// users → gateway → lb (edge) → svc.0, svc.1 on app-1 and on app-2
pub(crate) fn lesson(args: &LessonArgs) -> Lesson {
    let mut t = Topology::new("lesson-scale-out");
    let (users, edge) = (t.node("users"), t.node("edge"));
    let mut members = Vec::new();
    for name in ["app-1", "app-2"] {
        // named by node, as every name others reach is unique in the cluster
        let app = t.node(name);
        let pool = t.pool_with(
            app,
            &format!("{name}.svc"),
            2,
            ChildOptions::permanent().reachable_from(Reach::nodes(["edge"])),
            |_| Service::new(None),
        );
        members.extend(pool.members().iter().cloned());
    }
    let lb = t.add(
        edge,
        "lb",
        Balancer::new(Strategy::RoundRobin, members).timeout(Duration::from_millis(500)),
    );
    let gateway = t.add(
        edge,
        "gateway",
        Proxy::http(&args.http)
            .route("/", lb)
            .timeout(Duration::from_secs(1))
            .reachable_from(Reach::cluster()),
    );
    t.add(edge, "events", || Events);
    // who answered last, each member with its run: a new run is a restart
    let runs: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let summarize = move |answers: &[Answer]| {
        let mut by_member: BTreeMap<&str, u64> = BTreeMap::new();
        let mut restarted = Vec::new();
        let mut runs = runs.lock().expect("runs");
        for answer in answers.iter().filter(|a| a.status == 200) {
            let Some(who) = member(&answer.body) else {
                continue;
            };
            *by_member.entry(who).or_default() += 1;
            let run = answer
                .body
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_string();
            if let Some(before) = runs.insert(who.to_string(), run.clone())
                && before != run
            {
                restarted.push(format!("{who} restarted ({before} → {run})"));
            }
        }
        let spread: Vec<String> = by_member.iter().map(|(m, n)| format!("{m} ×{n}")).collect();
        let mut line = format!(
            "users: {} · answered by {}",
            describe(&statuses(answers)),
            {
                if spread.is_empty() {
                    "nobody".to_string()
                } else {
                    spread.join(", ")
                }
            }
        );
        for r in restarted {
            line.push_str(&format!(" · {r}"));
        }
        line
    };
    t.add(
        users,
        "users",
        Restartable::from(Users::get_root(
            gateway.clone(),
            Duration::from_millis(50),
            Arc::new(summarize),
        )),
    );
    let faults = Faults::on_every_node(&mut t);
    Lesson {
        title: "2 · scale out: a balancer over a pool on two nodes",
        intro: vec![
            "users → gateway → lb (node edge) → app-1.svc.0, .1 on app-1, app-2.svc.0, .1 on app-2, round robin.".into(),
            "try: kill app-1.svc.1  — a crash: the supervisor starts a new run of it, traffic goes on".into(),
            "     crash app-2       — app-2 dies: after detection the balancer leaves it out".into(),
            "     heal              — app-2 is back (restarted) and takes its share again".into(),
        ],
        topology: t,
        faults,
        gateway: Some(gateway),
        cuts_links: true,
        commands: None,
    }
}
