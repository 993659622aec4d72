//! troupe: an actor framework for building distributed systems out of supervised parts.
//!
//! Every part of a system (a web/proxy server, a load balancer, a cache, a queue, a database
//! replica) is a supervised actor, reached through one handle type, [`Addr`], whether it runs
//! in this process or elsewhere. A [`Topology`] declares the nodes, the actors placed on each
//! and their supervision, in plain Rust; [`launch()`] runs it.
//!
//! # Layout
//! - [`topology`]: [`Topology`], [`Running`], [`LaunchError`].
//! - [`launch`](mod@launch): [`launch()`], [`launch_until`] and the [`LaunchArgs`] flags.
//! - [`prelude`]: what a topology file needs in one import.
//! - [`runtime`] and [`wire`]: the layers underneath (`troupe-runtime`, `troupe-wire`).
//! - [`proxy`] and [`balancer`]: the request path's parts (`troupe-proxy`, `troupe-balancer`).
//! - [`cache`]: the sharded LRU cache and its RESP front end (`troupe-cache`).
//! - [`queue`]: the work queue with leases and dead letters, in memory or durable
//!   (`troupe-queue`).
//! - [`db`]: the replicated key-value store, its replicas and client (`troupe-db`).
//!
//! Every part, like every actor, is placed with [`Topology::add`], which returns its handle or
//! typed client (see [`Part`]).
//!
//! # Examples
//! `examples/shop.rs` puts every part in one topology (`cargo run --example shop`);
//! `examples/hello_cluster.rs` shows supervision and handles across nodes,
//! `examples/db_cluster.rs` the database alone, `examples/cache_server.rs` the cache over RESP.

pub mod launch;
pub mod topology;

pub use launch::{LaunchArgs, launch, launch_until, shutdown_signal};
pub use topology::{GroupId, LaunchError, NodeId, Part, Place, Restartable, Running, Topology};
pub use troupe_balancer as balancer;
pub use troupe_cache as cache;
pub use troupe_db as db;
pub use troupe_proxy as proxy;
pub use troupe_queue as queue;
pub use troupe_runtime as runtime;
pub use troupe_runtime::{
    Actor, ActorError, Addr, Ask, CallError, ChildOptions, Ctx, Message, NoMessages, Node, Pool,
    Reply, Request, SupervisorSpec, TaskHandle,
};
pub use troupe_wire as wire;

/// Everything a topology file usually needs.
pub mod prelude {
    pub use crate::launch::{LaunchArgs, launch, launch_until};
    pub use crate::topology::{LaunchError, NodeId, Part, Restartable, Running, Topology};
    pub use troupe_balancer::Balancer;
    pub use troupe_cache::{CacheClient, CacheSpec};
    pub use troupe_db::{AckMode, DbClient, DbSpec, ReadPolicy};
    pub use troupe_proxy::{HttpCall, HttpRequest, HttpResponse, Proxy};
    pub use troupe_queue::{QueueClient, QueueSpec};
    pub use troupe_runtime::{
        Actor, ActorError, Addr, Ask, CallError, ChildOptions, Ctx, Message, NoMessages, Node,
        NodeExit, Pool, Reply, Request, Restart, SupervisionAction, SupervisionReport,
        SupervisorSpec, TaskHandle,
    };
}

/// The README's code blocks, compiled and run as doctests so they stay correct.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
