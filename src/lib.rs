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
//! - The parts, one module each, each behind the cargo feature of its name (see below):
#![cfg_attr(
    feature = "proxy",
    doc = "  - [`proxy`]: the HTTP gateway at the edge (`troupe-proxy`)."
)]
#![cfg_attr(
    feature = "balancer",
    doc = "  - [`balancer`]: load balancing over a pool, with circuit breakers (`troupe-balancer`)."
)]
#![cfg_attr(
    feature = "cache",
    doc = "  - [`cache`]: the sharded LRU cache and its RESP front end (`troupe-cache`)."
)]
#![cfg_attr(
    feature = "queue",
    doc = "  - [`queue`]: the work queue with leases and dead letters, in memory or durable \
           (`troupe-queue`)."
)]
#![cfg_attr(
    feature = "db",
    doc = "  - [`db`]: the replicated key-value store, its replicas and client (`troupe-db`)."
)]
#![cfg_attr(
    feature = "db",
    doc = "  - [`failover`]: failover children, run on one node of a list at a time under a \
           lease in the cluster's metadata group (`troupe-failover`)."
)]
#![cfg_attr(
    feature = "admin",
    doc = "  - [`admin`]: the admin endpoint [`launch`] serves: Prometheus metrics, health, \
           readiness and the nodes' state (`troupe-admin`)."
)]
//!
//! # Features
//! One cargo feature per part, each on by default: `proxy`, `balancer`, `cache`, `queue`, `db`,
//! and `admin` for the launcher's admin endpoint.
//! Each turns on its module above, its types in the [`prelude`] and its part-specific
//! [`Topology`] methods. With `default-features = false` this crate is the actors, supervision,
//! topologies and the QUIC transport alone, without hyper (the proxy's HTTP server) or redb (the
//! queue's and the database's storage).
//!
//! Every part, like every actor, is placed with [`Topology::add`], which returns its handle or
//! typed client (see [`Part`]).
//!
//! # Examples
//! `examples/shop.rs` puts every part in one topology (`cargo run --example shop`);
//! `examples/hello_cluster.rs` shows supervision and handles across nodes,
//! `examples/db_cluster.rs` the database alone, `examples/cache_server.rs` the cache over RESP.

// docs.rs builds with every feature and marks each part's items with the feature they need
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "admin")]
mod admin_parts;
#[cfg(feature = "db")]
pub mod failover;
pub mod faults;
pub mod launch;
#[cfg(any(
    feature = "proxy",
    feature = "balancer",
    feature = "cache",
    feature = "queue",
    feature = "db"
))]
mod parts;
#[cfg(all(feature = "cache", feature = "db"))]
mod read_through;
pub mod telemetry;
pub mod topology;

pub use launch::{LaunchArgs, launch, launch_until, shutdown_signal};
pub use topology::{
    GroupId, LaunchError, NodeId, Part, PartExt, Place, Reachable, Restartable, Running, Topology,
};
#[cfg(feature = "admin")]
pub use troupe_admin as admin;
#[cfg(feature = "balancer")]
pub use troupe_balancer as balancer;
#[cfg(feature = "cache")]
pub use troupe_cache as cache;
#[cfg(feature = "proxy")]
pub use troupe_proxy as proxy;
#[cfg(feature = "queue")]
pub use troupe_queue as queue;
pub use troupe_runtime as runtime;
pub use troupe_runtime::{
    Actor, ActorError, Addr, Ask, CallError, ChildOptions, Ctx, Message, NoMessages, Node, Pool,
    Reach, Reply, Request, SupervisorSpec, TaskHandle,
};
pub use troupe_wire as wire;

/// The replicated key-value store (`troupe-db`: replicas, [`DbClient`](db::DbClient),
/// [`DbSpec`](db::DbSpec)), and [`DbBacking`](db::DbBacking), the database behind a
/// read-through cache
#[cfg(feature = "db")]
pub mod db {
    #[cfg(feature = "cache")]
    pub use crate::read_through::DbBacking;
    pub use troupe_db::*;
}

/// Everything a topology file usually needs.
pub mod prelude {
    #[cfg(feature = "db")]
    pub use crate::failover::FailoverExt;
    pub use crate::launch::{LaunchArgs, launch, launch_until};
    pub use crate::topology::{
        GroupId, LaunchError, NodeId, Part, PartExt, Place, Reachable, Restartable, Running,
        Topology,
    };
    #[cfg(feature = "balancer")]
    pub use troupe_balancer::Balancer;
    #[cfg(feature = "cache")]
    pub use troupe_cache::{CacheClient, CacheSpec};
    #[cfg(feature = "db")]
    pub use troupe_db::{AckMode, DbClient, DbSpec, ReadPolicy};
    #[cfg(feature = "proxy")]
    pub use troupe_proxy::http::{HeaderMap, StatusCode};
    #[cfg(feature = "proxy")]
    pub use troupe_proxy::{
        HttpCall, HttpRequest, HttpResponse, HttpStreamCall, HttpStreamRequest, HttpStreamResponse,
        Proxy,
    };
    #[cfg(feature = "queue")]
    pub use troupe_queue::{QueueClient, QueueSpec};
    pub use troupe_runtime::{
        Actor, ActorError, Addr, Ask, CallError, ChildOptions, Ctx, Message, NoMessages, Node,
        NodeExit, Pool, Reach, Reply, Request, Restart, SupervisionAction, SupervisionReport,
        SupervisorSpec, TaskHandle,
    };
}

/// The README's code blocks, compiled and run as doctests so they stay correct (they use every
/// part).
#[cfg(all(
    doctest,
    feature = "proxy",
    feature = "balancer",
    feature = "cache",
    feature = "queue",
    feature = "db"
))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
