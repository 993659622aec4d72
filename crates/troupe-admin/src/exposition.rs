//! The metrics read from the runtime at scrape time, in the Prometheus text format: counters
//! the actors keep for themselves, so the hot path records nothing through the `metrics` facade.

use std::fmt::Write;

use troupe_runtime::{ActorStats, Mesh};

/// One family: its name, type, help line, and the value it takes from an actor's counters.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&ActorStats) -> u64,
}

const FAMILIES: [Family; 5] = [
    Family {
        name: "troupe_actor_mailbox_depth",
        kind: "gauge",
        help: "Messages in the actor's mailbox, not yet handled.",
        value: |s| s.mailbox_depth as u64,
    },
    Family {
        name: "troupe_actor_messages_received_total",
        kind: "counter",
        help: "Messages the actor's instances took from their mailbox, restarts included.",
        value: |s| s.messages_handled,
    },
    Family {
        name: "troupe_actor_messages_dropped_total",
        kind: "counter",
        help: "Messages refused because the actor's mailbox was at its limit.",
        value: |s| s.dropped,
    },
    Family {
        name: "troupe_actor_restarts_total",
        kind: "counter",
        help: "Times the actor was started again after its first start.",
        value: |s| s.restarts,
    },
    Family {
        name: "troupe_actor_parked_messages",
        kind: "gauge",
        help: "Messages waiting for the actor's next instance while it restarts.",
        value: |s| s.parked as u64,
    },
];

/// The per-actor families for every node of `mesh`, labelled `node` and `actor`.
pub(crate) fn actor_metrics(mesh: &Mesh) -> String {
    let nodes: Vec<(String, Vec<ActorStats>)> = mesh
        .node_names()
        .into_iter()
        .filter_map(|name| {
            let stats = mesh.node(&name)?.actor_stats();
            Some((name, stats))
        })
        .collect();
    render(&nodes)
}

/// The families for `nodes` (each node's name and its actors' counters).
fn render(nodes: &[(String, Vec<ActorStats>)]) -> String {
    let mut out = String::new();
    if nodes.iter().all(|(_, actors)| actors.is_empty()) {
        return out;
    }
    for family in &FAMILIES {
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
        for (node, actors) in nodes {
            for actor in actors {
                let _ = writeln!(
                    out,
                    "{}{{node=\"{}\",actor=\"{}\"}} {}",
                    family.name,
                    escape(node),
                    escape(&actor.name),
                    (family.value)(actor)
                );
            }
        }
    }
    out
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_and_every_family_is_typed() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
        assert_eq!(render(&[("n".into(), Vec::new())]), "");
    }
}
