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
//! - [`db`]: the replicated key-value store, its replicas and client (`troupe-db`); placed with
//!   [`Topology::add_db`]. Its [`db::DbBacking`] (`read_through.rs`) puts it behind a
//!   read-through cache.
//!
//! # Examples
//! `examples/shop.rs` puts every part in one topology (`cargo run --example shop`);
//! `examples/hello_cluster.rs` shows supervision and handles across nodes,
//! `examples/db_cluster.rs` the database alone, `examples/cache_server.rs` the cache over RESP.

pub mod launch;
mod read_through;
pub mod topology;

pub use launch::{LaunchArgs, launch, launch_until, shutdown_signal};
pub use topology::{GroupId, LaunchError, NodeId, Place, Running, Topology};
pub use troupe_balancer as balancer;
pub use troupe_cache as cache;
pub use troupe_proxy as proxy;
pub use troupe_queue as queue;
pub use troupe_runtime as runtime;
pub use troupe_runtime::{
    Actor, ActorError, Addr, CallError, ChildOptions, Ctx, Message, Node, Pool, ReplyTo,
    SupervisorSpec,
};
pub use troupe_wire as wire;

/// The replicated key-value store (`troupe-db`: replicas, [`DbClient`](db::DbClient),
/// [`DbSpec`](db::DbSpec)), and [`DbBacking`](db::DbBacking), the database behind a
/// read-through cache
pub mod db {
    pub use crate::read_through::DbBacking;
    pub use troupe_db::*;
}

/// Everything a topology file usually needs.
pub mod prelude {
    pub use crate::launch::{LaunchArgs, launch, launch_until};
    pub use crate::topology::{LaunchError, NodeId, Running, Topology};
    pub use troupe_balancer::Balancer;
    pub use troupe_db::{AckMode, DbClient, DbSpec, ReadPolicy};
    pub use troupe_proxy::{HttpRequest, HttpResponse, Proxy};
    pub use troupe_runtime::{
        Actor, ActorError, Addr, CallError, ChildOptions, Ctx, Message, Node, NodeExit, Pool,
        ReplyTo, Restart, SupervisionAction, SupervisionReport, SupervisorSpec,
    };
}

/// The README's code blocks, compiled and run as doctests so they stay correct.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
