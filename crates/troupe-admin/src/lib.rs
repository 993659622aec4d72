//! troupe's admin endpoint: one small HTTP server per process that an operator, Prometheus, a
//! load balancer's health check or the `troupe` CLI can ask what the process is doing.
//!
//! | path | answer |
//! |---|---|
//! | `GET /` | a live view of the process: one self-contained page (no download at run time) that draws the links to every member, every node and its actors' rates, mailbox depths and restarts from `/state`, twice a second, and the databases and queues from `/db` and `/queue` |
//! | `GET /metrics` | every metric recorded through the `metrics` facade, and each actor's counters (`troupe_actor_*`: mailbox depth, messages received and dropped, restarts, parked messages; labels `node` and `actor`), in the Prometheus text format (0.0.4) |
//! | `GET /health` | `200 ok` while the process serves at all |
//! | `GET /ready` | `200 ready` once the topology has started, `503 starting` before and `503 stopping` once it shuts down |
//! | `GET /state` | the nodes of this process as JSON: their actors and, for nodes on the network, their address, incarnation and the members they see ([`ProcessState`]) |
//! | `GET /db` | each database's replicas ([`DbState`]) |
//! | `GET /queue` | each queue's counts ([`QueueState`]) |
//! | `GET /queue/NAME/dead-letters` | a queue's dead letters ([`DeadLetterState`]) |
//! | `POST /db/NAME/promote` | operators only: manual failover ([`PromotedState`]; `409` if refused) |
//! | `POST /queue/NAME/replay/ID` | operators only: a dead letter back in line (`404` if it is not one) |
//! | `POST /actors/NODE/NAME/kill` | operators only: an actor killed as a crash would (`404` if none runs) |
//! | `GET /placement` | each failover group's declared and directed order, its lease (holder, generation, draining, released) and the node it was moved to, and the drained nodes ([`PlacementState`]) |
//! | `POST /placement/GROUP/move/NODE` | operators only: the group goes to NODE, first in its order with takeover, until cleared (`404` for an unknown group or node, `400` for a node outside its order) |
//! | `POST /placement/GROUP/unmove` | operators only: the group's move cleared |
//! | `POST /nodes/NODE/drain` | operators only: NODE leaves every group's order, so what runs there moves off, handed over in order (`404` for an unknown node) |
//! | `POST /nodes/NODE/undrain` | operators only: NODE back in service |
//! | `POST /leave` | operators only: the process shuts down gracefully, its nodes leaving the cluster, as on Ctrl-C (`202`, then it stops; `409` unless it runs under `troupe::launch`, see [`Leave`]) |
//!
//! Operators change state over TLS on the same port ([`AdminOptions::operator_tls`]): a client
//! certificate of the cluster's CA is required there, and a `POST` is accepted only over TLS
//! from the operator named in its [`OPERATOR_HEADER`], which the certificate must carry
//! (`NAME.operator`, see `troupe_identity::verify_operator`). Plain HTTP reads only.
//!
//! Any other path is `404`, a method the path does not take `405`, each with a line of text saying what is
//! served. The server runs in the listener shell of `troupe-runtime`: connections are bounded
//! (64 open, 16 per client address), idle ones are closed after 10 s without a request head,
//! and it drains on [`AdminServer::stop`].
//!
//! Metrics are recorded by one process-wide recorder (`prometheus`); the first call installs
//! it. A process that installed another recorder first gets [`AdminError::Recorder`].
//!
//! # Features
//! `server` (default): the endpoint itself. Without it the crate is only the types `/state`
//! answers with ([`ProcessState`] and its parts), for clients such as the `troupe` CLI, which
//! then needs neither the runtime nor QUIC.

#[cfg(feature = "server")]
mod events;
#[cfg(feature = "server")]
mod exposition;
#[cfg(feature = "server")]
mod metrics_recorder;
#[cfg(feature = "server")]
mod parts;
#[cfg(feature = "server")]
mod server;
mod state;

#[cfg(feature = "server")]
pub use metrics_recorder::prometheus;
#[cfg(feature = "server")]
pub use parts::{
    ActionError, AdminParts, DbAdmin, DeclaredGroup, PartFuture, PlacementAdmin, QueueAdmin,
};
#[cfg(feature = "server")]
pub use server::{AdminOptions, AdminServer, Leave, Readiness};
pub use state::{
    ActorState, DbState, DeadLetterState, GroupPlacementState, MemberState, NetState, NodeState,
    PREVIEW_BYTES, PlacementState, ProcessState, PromotedState, QueueState, ReplicaState,
};

/// The header an operator names itself in on the TLS side; the endpoint checks the name
/// against the client certificate (`NAME.operator`).
pub const OPERATOR_HEADER: &str = "troupe-operator";

/// An error with its causes on one line, the way the admin endpoint and the CLI report them
/// ("client error (Connect): connection refused").
pub fn error_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The port a one-process run serves its admin endpoint on by default (loopback): not
/// Prometheus's 9090 nor Grafana's 3000, which run beside it.
pub const DEFAULT_PORT: u16 = 7090;

/// Why the admin endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The address could not be bound (in use, not local, no permission).
    #[error("cannot listen on {addr} for the admin endpoint: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The process already has another `metrics` recorder, so this one cannot see the
    /// metrics.
    #[error("cannot install the Prometheus recorder: {0}")]
    Recorder(String),
}
