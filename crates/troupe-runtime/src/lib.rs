//! troupe's runtime: nodes, per-node registries, [`Addr`] handles that survive restarts, and
//! Erlang/OTP-style supervision on top of [ractor](https://docs.rs/ractor).
//!
//! Most users reach this crate through the `troupe` facade and its `Topology` builder; this
//! crate is the layer underneath, usable on its own.
//!
//! # Layout
//! - [`message`]: the [`Message`] trait and derive (stable name, version), the [`Reply`] port
//!   a request carries for its answer, and [`NoMessages`].
//! - [`actor`]: the [`Actor`] trait users implement and its [`Ctx`] (handle, timers, tasks).
//! - [`addr`]: [`Addr`], the one handle type; `cast` and `call`.
//! - [`codec`]: messages to and from wire payloads, errors as [`CallError`]s.
//! - `slot`: the swappable current instance behind each name (restart-proof handles).
//! - `registry`: names per node.
//! - [`node`]: [`Node`] and [`Mesh`] (the nodes of one process).
//! - [`placed`]: [`Placed`](placed::Placed), where a name the cluster places (a failover
//!   child) runs now, and the sends parked while it moves.
//! - [`supervisor`]: strategies, restart types, intensity and backoff; the decisions live in
//!   the pure [`supervisor::core`].
//! - [`remote`]: the QUIC endpoint per node, handshake, lanes, membership, failure detection.
//! - [`listener`]: an address pinned across restarts and the one listener shell (accept loop
//!   with backoff, per-address and total connection limits, drain) for actors that own a TCP
//!   listener.
//! - [`pool`]: [`Pool`], `n` actors from one factory.
//! - [`reach`]: [`Reach`], which other nodes may send a registered actor messages.
//! - [`error`]: [`CallError`], [`RegistryError`], [`SpawnError`].

pub mod actor;
pub mod addr;
pub mod codec;
mod deadline;
pub mod error;
pub mod in_place;
pub mod listener;
pub mod message;
pub mod node;
pub mod placed;
pub mod pool;
pub mod reach;
mod registry;
pub mod remote;
mod slot;
pub mod supervisor;
mod task;
pub mod time;
pub mod timing;
pub mod trace;

pub use actor::{Actor, ActorError, Ctx, TaskHandle, panic_message};
pub use addr::{Addr, AddrBinding, with_decode_context};
pub use error::{CallError, RegistryError, SpawnError};
pub use in_place::InPlace;
pub use message::{Ask, Message, NoMessages, Reply, ReplyValue, Request};
pub use node::{Mesh, Node, NodeConfig, NodeExit, send_from};
pub use pool::Pool;
pub use reach::{NodeRoles, Reach};
pub use slot::{ActorStats, DEFAULT_MAILBOX_LIMIT};
pub use supervisor::{
    Backoff, ChildOptions, ChildSpec, Exit, Intensity, Restart, Strategy, SupervisionAction,
    SupervisionReport, SupervisorRef, SupervisorSpec, WhenExceeded,
};
pub use task::{TaskGuard, spawn_detached};
pub use trace::TraceParent;
