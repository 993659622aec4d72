//! Lesson 1, one server: a monolith holds the service and its data in one actor. Users store
//! and read notes through the gateway; kill the monolith and its notes die with it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use troupe::faults::Faults;
use troupe::prelude::*;

use crate::harness::{Answer, Lesson, LessonArgs, Users, statuses};

/// The whole application: a note store in memory.
#[derive(Default)]
pub(crate) struct Monolith {
    notes: HashMap<String, String>,
}

impl Actor for Monolith {
    type Msg = HttpCall;

    async fn handle(&mut self, call: HttpCall, _: &mut Ctx<HttpCall>) -> Result<(), ActorError> {
        let req = &call.request;
        let id = req.path().strip_prefix("/notes/").unwrap_or_default();
        let answer = match (req.method.as_str(), id) {
            (_, "") => HttpResponse::text(StatusCode::NOT_FOUND, "try /notes/ID"),
            ("PUT", id) if id.len() <= 64 => {
                self.notes
                    .insert(id.to_string(), String::from_utf8_lossy(&req.body).into());
                HttpResponse::text(
                    StatusCode::OK,
                    format!("stored; {} notes held", self.notes.len()),
                )
            }
            ("GET", id) => match self.notes.get(id) {
                Some(note) => HttpResponse::text(StatusCode::OK, note.clone()),
                None => HttpResponse::text(StatusCode::NOT_FOUND, format!("no note {id}")),
            },
            _ => HttpResponse::text(
                StatusCode::BAD_REQUEST,
                "PUT or GET /notes/ID (ids up to 64 bytes)",
            ),
        };
        call.reply.send(answer);
        Ok(())
    }
}

/// users → gateway (edge) → monolith (app)
pub(crate) fn lesson(args: &LessonArgs) -> Lesson {
    let mut t = Topology::new("lesson-monolith");
    let (users, edge, app) = (t.node("users"), t.node("edge"), t.node("app"));
    let monolith = t.add(
        app,
        "monolith",
        Monolith::default.reachable_from(Reach::nodes(["edge"])),
    );
    let gateway = t.add(
        edge,
        "gateway",
        Proxy::http(&args.http)
            .route("/", monolith)
            .reachable_from(Reach::cluster()),
    );
    // every 100 ms: store note n/2, then read back an older one
    let next = |n: u64| match n % 2 {
        0 => (
            "PUT",
            format!("/notes/{}", n / 2),
            format!("note {}", n / 2),
        ),
        _ => ("GET", format!("/notes/{}", n / 4), String::new()),
    };
    let summarize = |answers: &[Answer]| {
        let held = answers
            .iter()
            .rev()
            .find_map(|a| a.body.strip_prefix("stored; "))
            .unwrap_or("?");
        let lost = answers.iter().filter(|a| a.status == 404).count();
        let mut line = format!(
            "users: {} · monolith: {held}",
            crate::harness::describe(&statuses(answers))
        );
        if lost > 0 {
            line.push_str(&format!(
                " · {lost} notes not found: they lived in the monolith's memory"
            ));
        }
        line
    };
    t.add(
        users,
        "users",
        Restartable::from(Users::new(
            gateway.clone(),
            Duration::from_millis(100),
            Arc::new(next),
            Arc::new(summarize),
        )),
    );
    let faults = Faults::on_every_node(&mut t);
    Lesson {
        title: "1 · one server: a monolith",
        intro: vec![
            "users (node users) → gateway (node edge) → monolith (node app): the service and its"
                .into(),
            "data in one actor. Users store a note and read an older one, ten times a second."
                .into(),
            "try: kill monolith   — its supervisor restarts it at once, but empty: every note"
                .into(),
            "                       stored before is gone (404), because it lived in memory."
                .into(),
        ],
        topology: t,
        faults,
        gateway: Some(gateway),
        cuts_links: false,
        commands: None,
    }
}
