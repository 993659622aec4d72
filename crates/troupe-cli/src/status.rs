//! `troupe status`: what a running process serves on its admin endpoint, for people (a table)
//! or scripts (`--json`).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use troupe_admin::ProcessState;

/// The longest the CLI waits for an answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest state it reads (a process with 100,000 actors names them all).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Why the status could not be shown.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StatusError {
    /// Nothing answered, or not in time.
    #[error(
        "cannot reach the admin endpoint at {addr}: {reason}\n\
         is a troupe process running there? Start it with --admin {addr} (a one-process run \
         serves 127.0.0.1:9090 by default and prints `admin http://ADDR`)"
    )]
    Unreachable {
        /// Where it asked.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// Something answered, but not as an admin endpoint does.
    #[error("{addr} answered, but not with a troupe admin endpoint's state: {reason}")]
    NotAdmin {
        /// Where it asked.
        addr: SocketAddr,
        /// What was wrong with the answer.
        reason: String,
    },
}

/// Prints the state of the process whose admin endpoint is at `addr`.
pub(crate) fn run(addr: SocketAddr, json: bool) -> Result<(), StatusError> {
    let unreachable = |reason: String| StatusError::Unreachable { addr, reason };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| unreachable(e.to_string()))?;
    let body = runtime.block_on(fetch(addr, "/state"))?;
    let state: ProcessState = serde_json::from_slice(&body).map_err(|e| StatusError::NotAdmin {
        addr,
        reason: e.to_string(),
    })?;
    if json {
        let text = serde_json::to_string_pretty(&state).map_err(|e| StatusError::NotAdmin {
            addr,
            reason: e.to_string(),
        })?;
        println!("{text}");
    } else {
        print!("{}", table(&state));
    }
    Ok(())
}

async fn fetch(addr: SocketAddr, path: &str) -> Result<Bytes, StatusError> {
    let unreachable = |reason: String| StatusError::Unreachable { addr, reason };
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri: hyper::Uri = format!("http://{addr}{path}")
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| unreachable(e.to_string()))?;
    let response = tokio::time::timeout(TIMEOUT, client.get(uri))
        .await
        .map_err(|_| unreachable(format!("no answer within {TIMEOUT:?}")))?
        .map_err(|e| unreachable(source_text(&e)))?;
    let status = response.status();
    let body = tokio::time::timeout(
        TIMEOUT,
        Limited::new(response.into_body(), MAX_BODY).collect(),
    )
    .await
    .map_err(|_| unreachable(format!("the answer did not end within {TIMEOUT:?}")))?
    .map_err(|e| StatusError::NotAdmin {
        addr,
        reason: e.to_string(),
    })?
    .to_bytes();
    if !status.is_success() {
        return Err(StatusError::NotAdmin {
            addr,
            reason: format!("{path} answered {status}"),
        });
    }
    Ok(body)
}

/// An error with its causes, the way people read it ("client error (Connect): connection
/// refused").
fn source_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The state as a table: one row per node, then its members.
fn table(state: &ProcessState) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let ready = if state.ready { "ready" } else { "not ready" };
    let _ = writeln!(out, "process: {ready}, {} node(s)", state.nodes.len());
    let rows: Vec<[String; 4]> = state
        .nodes
        .iter()
        .map(|node| {
            let (address, members) = match &node.network {
                Some(net) => (
                    net.listen.clone(),
                    net.members
                        .iter()
                        .map(|m| format!("{} {}", m.name, m.status))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                None => ("(in this process only)".to_string(), "-".to_string()),
            };
            [
                node.name.clone(),
                address,
                node.actors.len().to_string(),
                if members.is_empty() {
                    "-".into()
                } else {
                    members
                },
            ]
        })
        .collect();
    let header = ["NODE", "ADDRESS", "ACTORS", "MEMBERS"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use troupe_admin::{MemberState, NetState, NodeState};

    #[test]
    fn the_table_has_a_row_per_node_with_its_members() {
        let state = ProcessState {
            ready: true,
            nodes: vec![
                NodeState {
                    name: "edge".into(),
                    actors: vec!["gateway".into(), "lb".into()],
                    network: Some(NetState {
                        listen: "127.0.0.1:7203".into(),
                        incarnation: 7,
                        members: vec![
                            MemberState {
                                name: "app".into(),
                                status: "up".into(),
                                incarnation: 3,
                            },
                            MemberState {
                                name: "data".into(),
                                status: "down".into(),
                                incarnation: 4,
                            },
                        ],
                        pending_calls: 0,
                    }),
                },
                NodeState {
                    name: "solo".into(),
                    actors: vec![],
                    network: None,
                },
            ],
        };
        assert_eq!(
            table(&state),
            "process: ready, 2 node(s)\n\
             NODE  ADDRESS                 ACTORS  MEMBERS\n\
             edge  127.0.0.1:7203          2       app up, data down\n\
             solo  (in this process only)  0       -\n"
        );
    }
}
