//! The commands that read a running process's admin endpoint: `troupe status` (its nodes,
//! actors and members, as a table or `--json`), `troupe top` (live per-actor rates and
//! depths) and `troupe graph` (the topology as Graphviz DOT).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use troupe_admin::{ActorState, ProcessState, error_text};

/// The longest the CLI waits for an answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest state it reads (a process with 100,000 actors names them all).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Why a command could not read the endpoint.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
    /// Nothing answered, or not in time.
    #[error(
        "cannot reach the admin endpoint at {addr}: {reason}\n\
         is a troupe process running there? Start it with --admin {addr} (a one-process run \
         serves 127.0.0.1:7090 by default and prints `admin http://ADDR`)"
    )]
    Unreachable {
        /// Where it asked.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// The endpoint answered with a refusal (no such part, not an operator, the part said no).
    #[error("{addr} refused ({status}): {message}")]
    Refused {
        /// Where it asked.
        addr: SocketAddr,
        /// The HTTP status.
        status: u16,
        /// The endpoint's one line of why.
        message: String,
    },
    /// The operator's certificate could not be loaded.
    #[error(
        "{0}\nissue one with `troupe ca issue CA_DIR NAME --operator` and copy ca.crt beside it"
    )]
    Operator(#[source] troupe_identity::IdentityError),
    /// Something answered, but not as an admin endpoint does.
    #[error("{addr} answered, but not with a troupe admin endpoint's state: {reason}")]
    NotAdmin {
        /// Where it asked.
        addr: SocketAddr,
        /// What was wrong with the answer.
        reason: String,
    },
    /// `troupe drain NODE --leave` was given the admin endpoint of a process that does not
    /// run NODE: it would have shut the wrong process down.
    #[error(
        "the process at {addr} runs {runs}, not {node}: --leave asks the process it is sent to \
         to leave, so give --admin the endpoint {node}'s own process serves (it printed \
         `admin http://ADDR`); nothing was changed"
    )]
    NotItsProcess {
        /// Where it asked.
        addr: SocketAddr,
        /// The node to drain.
        node: String,
        /// The nodes that process runs, comma separated.
        runs: String,
    },
    /// Failover groups still ran on a drained node when the wait ran out.
    #[error(
        "{node} is drained, but after {waited:?} {still} still on it; each may run only on the \
         nodes of its order (`troupe placement` shows them): is another one live?{left}"
    )]
    StillPlaced {
        /// The drained node.
        node: String,
        /// How long it waited.
        waited: Duration,
        /// What still runs there, as a phrase (`counter.failover is`).
        still: String,
        /// What was not done because of it (`; the process was not asked to leave`), or empty.
        left: String,
    },
    /// The process asked to leave still answered when the wait ran out.
    #[error(
        "the process at {addr} accepted to leave but still answers after {waited:?}: it may be \
         stopping slowly (its actors get --shutdown-timeout each)"
    )]
    StillServing {
        /// Where it serves.
        addr: SocketAddr,
        /// How long it waited.
        waited: Duration,
    },
}

/// Reads a process's admin endpoint, one request at a time.
pub(crate) struct Endpoint {
    addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
}

impl Endpoint {
    pub(crate) fn new(addr: SocketAddr) -> Result<Self, AdminError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AdminError::Unreachable {
                addr,
                reason: e.to_string(),
            })?;
        Ok(Self { addr, runtime })
    }

    /// The process's state now (`GET /state`).
    pub(crate) fn state(&self) -> Result<ProcessState, AdminError> {
        self.get("/state")
    }

    /// `GET path`, its JSON answer decoded.
    pub(crate) fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, AdminError> {
        let addr = self.addr;
        let body = self.runtime.block_on(fetch(addr, path))?;
        serde_json::from_slice(&body).map_err(|e| AdminError::NotAdmin {
            addr,
            reason: e.to_string(),
        })
    }

    /// Whether anything answers `GET path` successfully now.
    pub(crate) fn answers(&self, path: &str) -> bool {
        self.runtime.block_on(fetch(self.addr, path)).is_ok()
    }

    /// `POST path` over TLS as `operator`; the answer's body.
    pub(crate) fn post(
        &self,
        path: &str,
        operator: &troupe_identity::OperatorIdentity,
    ) -> Result<Bytes, AdminError> {
        self.runtime.block_on(post_tls(self.addr, path, operator))
    }
}

async fn post_tls(
    addr: SocketAddr,
    path: &str,
    operator: &troupe_identity::OperatorIdentity,
) -> Result<Bytes, AdminError> {
    let unreachable = |reason: String| AdminError::Unreachable { addr, reason };
    let config = operator
        .admin_client_config()
        .map_err(AdminError::Operator)?;
    let server_name = rustls::pki_types::ServerName::try_from(troupe_identity::CLUSTER_SERVER_NAME)
        .map_err(|e| unreachable(e.to_string()))?;
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(server_name, tcp)
            .await
            .map_err(|e| unreachable(format!("TLS handshake: {}", error_text(&e))))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| unreachable(error_text(&e)))?;
        tokio::spawn(conn);
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, addr.to_string())
            .header(troupe_admin::OPERATOR_HEADER, operator.name())
            .body(Empty::<Bytes>::new())
            .map_err(|e| unreachable(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(error_text(&e)))?;
        read_answer(addr, path, response).await
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| unreachable(format!("no answer within {TIMEOUT:?}")))?
}

/// `troupe status`: prints the state of the process whose admin endpoint is at `addr`.
pub(crate) fn status(addr: SocketAddr, json: bool) -> Result<(), AdminError> {
    let state = Endpoint::new(addr)?.state()?;
    if json {
        let text = serde_json::to_string_pretty(&state).map_err(|e| AdminError::NotAdmin {
            addr,
            reason: e.to_string(),
        })?;
        println!("{text}");
    } else {
        print!("{}", table(&state));
    }
    Ok(())
}

async fn fetch(addr: SocketAddr, path: &str) -> Result<Bytes, AdminError> {
    let unreachable = |reason: String| AdminError::Unreachable { addr, reason };
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri: hyper::Uri = format!("http://{addr}{path}")
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| unreachable(e.to_string()))?;
    let response = tokio::time::timeout(TIMEOUT, client.get(uri))
        .await
        .map_err(|_| unreachable(format!("no answer within {TIMEOUT:?}")))?
        .map_err(|e| unreachable(error_text(&e)))?;
    read_answer(addr, path, response).await
}

/// The body of a successful answer; a refusal with the endpoint's line of why otherwise.
async fn read_answer(
    addr: SocketAddr,
    path: &str,
    response: hyper::Response<hyper::body::Incoming>,
) -> Result<Bytes, AdminError> {
    let status = response.status();
    let body = tokio::time::timeout(
        TIMEOUT,
        Limited::new(response.into_body(), MAX_BODY).collect(),
    )
    .await
    .map_err(|_| AdminError::Unreachable {
        addr,
        reason: format!("the answer did not end within {TIMEOUT:?}"),
    })?
    .map_err(|e| AdminError::NotAdmin {
        addr,
        reason: e.to_string(),
    })?
    .to_bytes();
    if status.is_client_error() || status.is_server_error() {
        let message = String::from_utf8_lossy(&body).trim().to_string();
        if !message.is_empty() && body.len() < 4096 {
            return Err(AdminError::Refused {
                addr,
                status: status.as_u16(),
                message,
            });
        }
    }
    if !status.is_success() {
        return Err(AdminError::NotAdmin {
            addr,
            reason: format!("{path} answered {status}"),
        });
    }
    Ok(body)
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
    out.push_str(&columns(&["NODE", "ADDRESS", "ACTORS", "MEMBERS"], &rows));
    out
}

/// Rows under a header, each column as wide as its widest cell, two spaces apart.
pub(crate) fn columns<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    use std::fmt::Write;
    let header = header.map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
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

/// `troupe top`: every `interval`, the actors of the process at `addr` by messages received
/// per second, with their mailbox depths and restarts; `count` screens (0: until interrupted).
/// Screens after the first are drawn over the last.
pub(crate) fn top(addr: SocketAddr, interval: Duration, count: u64) -> Result<(), AdminError> {
    let endpoint = Endpoint::new(addr)?;
    let mut before = endpoint.state()?;
    let mut shown = 0u64;
    while count == 0 || shown < count {
        std::thread::sleep(interval);
        let now = endpoint.state()?;
        if shown > 0 {
            // back to the top of the screen, and clear below
            print!("\x1b[H\x1b[J");
        }
        print!("{}", top_screen(&before, &now, interval));
        shown += 1;
        before = now;
    }
    Ok(())
}

/// One screen of `troupe top`: the actors by rate over `interval`, busiest first.
fn top_screen(before: &ProcessState, now: &ProcessState, interval: Duration) -> String {
    use std::fmt::Write;
    let received = |state: &ProcessState, node: &str, actor: &str| {
        state
            .nodes
            .iter()
            .find(|n| n.name == node)
            .and_then(|n| n.actors.iter().find(|a| a.name == actor))
            .map(|a| a.messages_received)
    };
    let secs = interval.as_secs_f64().max(1e-3);
    let mut rows: Vec<(f64, &str, &ActorState)> = now
        .nodes
        .iter()
        .flat_map(|n| n.actors.iter().map(move |a| (n.name.as_str(), a)))
        .map(|(node, actor)| {
            // an actor new since the last screen, or whose count went back (another process
            // now answers there), counts from zero
            let earlier = received(before, node, &actor.name)
                .filter(|&b| b <= actor.messages_received)
                .unwrap_or(0);
            let rate = (actor.messages_received - earlier) as f64 / secs;
            (rate, node, actor)
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.2.name.cmp(&b.2.name)));
    let total: f64 = rows.iter().map(|r| r.0).sum();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} actor(s) on {} node(s), {total:.0} messages/s over {interval:?}",
        rows.len(),
        now.nodes.len()
    );
    let _ = writeln!(
        out,
        "{:<12} {:<24} {:>10} {:>8} {:>8} {:>8}",
        "NODE", "ACTOR", "MSG/S", "MAILBOX", "DROPPED", "RESTARTS"
    );
    for (rate, node, actor) in rows {
        let _ = writeln!(
            out,
            "{:<12} {:<24} {:>10.0} {:>8} {:>8} {:>8}",
            node, actor.name, rate, actor.mailbox_depth, actor.messages_dropped, actor.restarts
        );
    }
    out
}

/// `troupe graph`: the topology of the process at `addr` as Graphviz DOT (`| dot -Tsvg`).
pub(crate) fn graph(addr: SocketAddr) -> Result<(), AdminError> {
    let state = Endpoint::new(addr)?.state()?;
    print!("{}", dot(&state));
    Ok(())
}

/// A DOT string literal.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The state as DOT: a box per node holding its actors, and an edge from each node to every
/// member it sees (solid when up, dashed when down, dotted when left).
fn dot(state: &ProcessState) -> String {
    use std::fmt::Write;
    let mut out = String::from("digraph troupe {\n  compound=true;\n  node [shape=box];\n");
    for (i, node) in state.nodes.iter().enumerate() {
        let _ = writeln!(out, "  subgraph cluster_{i} {{");
        let _ = writeln!(out, "    label={};", quoted(&node.name));
        // the node itself, as the end of the membership edges
        let _ = writeln!(out, "    {} [shape=point];", quoted(&node.name));
        for actor in &node.actors {
            let label = match actor.restarts {
                0 => actor.name.clone(),
                n => format!("{} ({n} restarts)", actor.name),
            };
            let _ = writeln!(
                out,
                "    {} [label={}];",
                quoted(&format!("{}/{}", node.name, actor.name)),
                quoted(&label)
            );
        }
        let _ = writeln!(out, "  }}");
    }
    for node in &state.nodes {
        let Some(net) = &node.network else { continue };
        for member in &net.members {
            let style = match member.status.as_str() {
                "up" => "solid",
                "down" => "dashed",
                _ => "dotted",
            };
            let _ = writeln!(
                out,
                "  {} -> {} [label={}, style={style}];",
                quoted(&node.name),
                quoted(&member.name),
                quoted(&member.status)
            );
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use troupe_admin::{MemberState, NetState, NodeState};

    fn actor(name: &str, received: u64) -> ActorState {
        ActorState {
            name: name.into(),
            mailbox_depth: 0,
            messages_received: received,
            messages_sent: 0,
            messages_dropped: 0,
            restarts: 0,
            parked: 0,
        }
    }

    #[test]
    fn the_table_has_a_row_per_node_with_its_members() {
        let state = ProcessState {
            ready: true,
            nodes: vec![
                NodeState {
                    name: "edge".into(),
                    actors: vec![actor("gateway", 10), actor("lb", 4)],
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

    fn one_node(actors: Vec<ActorState>) -> ProcessState {
        ProcessState {
            ready: true,
            nodes: vec![NodeState {
                name: "app".into(),
                actors,
                network: Some(NetState {
                    listen: "127.0.0.1:7002".into(),
                    incarnation: 1,
                    members: vec![MemberState {
                        name: "data".into(),
                        status: "down".into(),
                        incarnation: 2,
                    }],
                    pending_calls: 0,
                }),
            }],
        }
    }

    #[test]
    fn top_ranks_actors_by_rate_and_counts_new_ones_from_zero() {
        let before = one_node(vec![actor("svc", 100), actor("cache", 50)]);
        let now = one_node(vec![
            actor("svc", 300),
            actor("cache", 450),
            actor("new", 10),
        ]);
        let screen = top_screen(&before, &now, Duration::from_secs(2));
        let rows: Vec<Vec<&str>> = screen
            .lines()
            .skip(2)
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows.iter().map(|r| (r[1], r[2])).collect::<Vec<_>>(),
            vec![("cache", "200"), ("svc", "100"), ("new", "5")],
            "{screen}"
        );
        assert!(
            screen.starts_with("3 actor(s) on 1 node(s), 305 messages/s"),
            "{screen}"
        );
    }

    #[test]
    fn the_graph_is_dot_with_a_box_per_node_and_an_edge_per_member() {
        let mut state = one_node(vec![actor("svc", 0)]);
        state.nodes[0].actors[0].restarts = 2;
        let dot = dot(&state);
        assert!(dot.starts_with("digraph troupe {"), "{dot}");
        assert!(dot.contains("subgraph cluster_0 {"), "{dot}");
        assert!(
            dot.contains(r#""app/svc" [label="svc (2 restarts)"];"#),
            "{dot}"
        );
        assert!(
            dot.contains(r#""app" -> "data" [label="down", style=dashed];"#),
            "{dot}"
        );
        assert_eq!(quoted(r#"a"b\c"#), r#""a\"b\\c""#);
        assert!(dot.trim_end().ends_with('}'));
    }
}
