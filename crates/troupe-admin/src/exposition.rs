//! The metrics read from the runtime at scrape time, in the Prometheus text format: counters
//! the actors keep for themselves and QUIC keeps for each link, so the hot path records nothing
//! through the `metrics` facade.

use std::fmt::Write;

use troupe_runtime::remote::PeerStats;
use troupe_runtime::{ActorStats, Mesh};

/// One family: its name, type, help line, and the value it takes from one subject's counters
/// (an actor's, or a peer link's).
struct Family<T> {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&T) -> f64,
}

const ACTOR_FAMILIES: [Family<ActorStats>; 6] = [
    Family {
        name: "troupe_actor_mailbox_depth",
        kind: "gauge",
        help: "Messages in the actor's mailbox, not yet handled.",
        value: |s| s.mailbox_depth as f64,
    },
    Family {
        name: "troupe_actor_messages_received_total",
        kind: "counter",
        help: "Messages the actor's instances took from their mailbox, restarts included.",
        value: |s| s.messages_handled as f64,
    },
    Family {
        name: "troupe_actor_messages_sent_total",
        kind: "counter",
        help: "Messages the actor's handlers sent, to any actor on any node, restarts included.",
        value: |s| s.messages_sent as f64,
    },
    Family {
        name: "troupe_actor_messages_dropped_total",
        kind: "counter",
        help: "Messages refused because the actor's mailbox was at its limit.",
        value: |s| s.dropped as f64,
    },
    Family {
        name: "troupe_actor_restarts_total",
        kind: "counter",
        help: "Times the actor was started again after its first start.",
        value: |s| s.restarts as f64,
    },
    Family {
        name: "troupe_actor_parked_messages",
        kind: "gauge",
        help: "Messages waiting for the actor's next instance while it restarts.",
        value: |s| s.parked as f64,
    },
];

const PEER_FAMILIES: [Family<PeerStats>; 11] = [
    Family {
        name: "troupe_peer_sent_frames_total",
        kind: "counter",
        help: "Messages and replies sent to the peer on the current connection (a large one counts once).",
        value: |s| s.frames_sent as f64,
    },
    Family {
        name: "troupe_peer_received_frames_total",
        kind: "counter",
        help: "Messages and replies received from the peer on the current connection (a large one counts once).",
        value: |s| s.frames_received as f64,
    },
    Family {
        name: "troupe_peer_open_streams_out",
        kind: "gauge",
        help: "QUIC streams this node opened to the peer that are open now (lanes, large messages).",
        value: |s| s.open_streams_out as f64,
    },
    Family {
        name: "troupe_peer_open_streams_in",
        kind: "gauge",
        help: "QUIC streams the peer opened to this node that are being read now.",
        value: |s| s.open_streams_in as f64,
    },
    Family {
        name: "troupe_peer_rtt_seconds",
        kind: "gauge",
        help: "QUIC's estimate of the round-trip time to the peer.",
        value: |p| p.rtt.as_secs_f64(),
    },
    Family {
        name: "troupe_peer_sent_bytes_total",
        kind: "counter",
        help: "UDP payload bytes sent to the peer on the current connection.",
        value: |p| p.bytes_sent as f64,
    },
    Family {
        name: "troupe_peer_received_bytes_total",
        kind: "counter",
        help: "UDP payload bytes received from the peer on the current connection.",
        value: |p| p.bytes_received as f64,
    },
    Family {
        name: "troupe_peer_sent_datagrams_total",
        kind: "counter",
        help: "Datagrams sent to the peer on the current connection.",
        value: |p| p.datagrams_sent as f64,
    },
    Family {
        name: "troupe_peer_received_datagrams_total",
        kind: "counter",
        help: "Datagrams received from the peer on the current connection.",
        value: |p| p.datagrams_received as f64,
    },
    Family {
        name: "troupe_peer_lost_packets_total",
        kind: "counter",
        help: "Packets QUIC declared lost on the current connection to the peer.",
        value: |p| p.lost_packets as f64,
    },
    Family {
        name: "troupe_peer_connections_total",
        kind: "counter",
        help: "Connections to the peer since this node's endpoint started (reconnections included).",
        value: |p| p.connections as f64,
    },
];

/// The per-actor and per-peer families for every node of `mesh`, labelled `node` and `actor`
/// or `peer`.
pub(crate) fn runtime_metrics(mesh: &Mesh) -> String {
    let mut actors: Vec<(String, Vec<ActorStats>)> = Vec::new();
    let mut peers: Vec<(String, Vec<PeerStats>)> = Vec::new();
    for name in mesh.node_names() {
        if let Some(node) = mesh.node(&name) {
            actors.push((name.clone(), node.actor_stats()));
        }
        if let Some(net) = mesh.net(&name) {
            peers.push((name, net.peer_stats()));
        }
    }
    let mut out = render(&ACTOR_FAMILIES, "actor", &actors, |a| &a.name);
    out.push_str(&handling_histograms(&actors));
    out.push_str(&render(&PEER_FAMILIES, "peer", &peers, |p| &p.name));
    out
}

/// `troupe_actor_handling_seconds`: each actor's sampled handling times as a Prometheus
/// histogram (cumulative buckets, `_sum`, `_count`); actors with no timed message yet are left
/// out.
fn handling_histograms(nodes: &[(String, Vec<ActorStats>)]) -> String {
    const NAME: &str = "troupe_actor_handling_seconds";
    let mut out = String::new();
    let timed = nodes
        .iter()
        .flat_map(|(node, actors)| actors.iter().map(move |a| (node, a)))
        .filter_map(|(node, a)| Some((node, &a.name, a.handling.as_ref()?)));
    for (i, (node, actor, stats)) in timed.enumerate() {
        if i == 0 {
            let _ = writeln!(
                out,
                "# HELP {NAME} How long the actor's handler took per message, one message in {} timed.",
                troupe_runtime::timing::SAMPLE_EVERY
            );
            let _ = writeln!(out, "# TYPE {NAME} histogram");
        }
        let labels = format!("node=\"{}\",actor=\"{}\"", escape(node), escape(actor));
        let mut cumulative = 0u64;
        for (le, count) in troupe_runtime::timing::BUCKETS.iter().zip(&stats.counts) {
            cumulative += count;
            let _ = writeln!(out, "{NAME}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(
            out,
            "{NAME}_bucket{{{labels},le=\"+Inf\"}} {}",
            stats.count()
        );
        let _ = writeln!(out, "{NAME}_sum{{{labels}}} {}", stats.sum.as_secs_f64());
        let _ = writeln!(out, "{NAME}_count{{{labels}}} {}", stats.count());
    }
    out
}

/// `families` for `nodes` (each node's name and its subjects), each sample labelled `node`
/// and `label` (the subject's name); nothing when there is no subject.
fn render<T>(
    families: &[Family<T>],
    label: &str,
    nodes: &[(String, Vec<T>)],
    name: fn(&T) -> &str,
) -> String {
    let mut out = String::new();
    if nodes.iter().all(|(_, subjects)| subjects.is_empty()) {
        return out;
    }
    for family in families {
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind);
        for (node, subjects) in nodes {
            for subject in subjects {
                let _ = writeln!(
                    out,
                    "{}{{node=\"{}\",{label}=\"{}\"}} {}",
                    family.name,
                    escape(node),
                    escape(name(subject)),
                    (family.value)(subject)
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
        assert_eq!(
            render(&ACTOR_FAMILIES, "actor", &[("n".into(), Vec::new())], |a| {
                &a.name
            }),
            ""
        );
    }
}
