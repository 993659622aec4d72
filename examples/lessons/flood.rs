//! Lesson 8, a flood: one client sends far more than its share; the gateway sheds its excess
//! with 429 (a token bucket per client address) before it costs the services anything, and a
//! well-behaved client keeps getting 200.

use std::sync::Arc;
use std::time::Duration;

use troupe::faults::Faults;
use troupe::prelude::*;

use crate::harness::{Answer, Lesson, LessonArgs, Users, describe, statuses};
use crate::service::Service;

/// Requests a second one client address may send before the gateway answers 429.
const PER_CLIENT: u32 = 100;

/// users → gateway → lb (edge) → app.svc.0..2 (app); the gateway limits each client address
pub(crate) fn lesson(args: &LessonArgs) -> Lesson {
    let mut t = Topology::new("lesson-flood");
    let (users, edge, app) = (t.node("users"), t.node("edge"), t.node("app"));
    let pool = t.pool_with(
        app,
        "app.svc",
        3,
        ChildOptions::permanent().reachable_from(Reach::nodes(["edge"])),
        |_| Service::new(None),
    );
    let lb = t.add(edge, "lb", Balancer::least_outstanding(&pool));
    let gateway = t.add(
        edge,
        "gateway",
        Proxy::http(&args.http)
            .route("/", lb)
            .rate_limit_per_ip(PER_CLIENT)
            .reachable_from(Reach::cluster()),
    );
    let summarize = |answers: &[Answer]| {
        format!(
            "well-behaved client (127.0.0.2): {}",
            describe(&statuses(answers))
        )
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
        title: "8 · a flood",
        intro: vec![
            "users → gateway → lb (node edge) → app.svc.0..2 (node app). The gateway lets each client".into(),
            format!("address send {PER_CLIENT} requests a second (a token bucket), and answers 429 past that."),
            "A well-behaved client sends 20 a second from 127.0.0.2.".into(),
            "try: flood 5000/s 10   — 5,000 requests a second from 127.0.0.1 for 10 s: the flood gets".into(),
            format!("                         about {PER_CLIENT} 200s a second and 429 for the rest, while the"),
            "                         well-behaved client keeps all its 200s".into(),
        ],
        topology: t,
        faults,
        gateway: Some(gateway),
        cuts_links: false,
        commands: None,
    }
}
