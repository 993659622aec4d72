//! Whole troupe clusters under deterministic simulation: nodes on simulated hosts, QUIC over
//! simulated UDP, faults from a seed (a dev-dependency only; not published).
//!
//! Each host of a [`turmoil`] simulation runs a troupe [`Node`] whose endpoint is bound with
//! [`bind`]: quinn runs unchanged over [`SimUdpSocket`], so turmoil's partitions, holds,
//! latencies and losses apply to the cluster's real wire protocol, and time is tokio's paused
//! clock, which turmoil advances. [`simulation`] builds a simulation from a seed with the
//! runtime switched to that clock ([`troupe_runtime::time::set_simulated`]); a [`Trace`]
//! records what happened and hashes it, so two runs of one seed can be compared.
//!
//! # Layout
//!
//! - `socket.rs`: [`SimUdpSocket`], quinn's socket over turmoil's UDP.
//! - `trace.rs`: [`Trace`], an ordered record of events at simulated times.
//! - `faults.rs`: [`Schedule`], faults drawn from a seed as a [`Plan`] says ([`Fault`]:
//!   partitions both ways and one way, lossy links, latency spikes that reorder, paused hosts,
//!   crashes, power losses and restarts, actors' panics) and applied as the simulation steps.
//! - `disk.rs`: [`volatile_file`], a host's redb file kept in memory so that a power loss
//!   drops its unsynced writes (`troupe_store::power`).
//! - `history.rs`: [`Operation`]s on registers with their simulated times and outcomes, and
//!   [`check_register`], a linearizability check (Wing and Gong's search, memoized).

mod disk;
mod faults;
mod history;
pub mod log;
mod prefix;
mod socket;
mod trace;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use disk::volatile_file;
pub use faults::{DEFAULT_MAX_LATENCY, Draw, Fault, Plan, RunDigest, Schedule, run_with_faults};
pub use history::{NotLinearizable, Operation, RegisterOp, check_register};
pub use prefix::{LoggedRead, LoggedWrite, check_prefix_read};
pub use socket::SimUdpSocket;
pub use trace::{Trace, datagrams};
use troupe_runtime::remote::{ConnectError, NetConfig, NodeNet};
use troupe_runtime::{Mesh, Node, NodeConfig, SupervisorSpec};

thread_local! {
    /// The seed of the simulation running on this thread (turmoil runs every host on it).
    static SEED: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
    /// Endpoints bound so far in that simulation.
    static BINDS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// The node each host last bound, by its name, for faults that act on a node.
    static NODES: std::cell::RefCell<std::collections::BTreeMap<String, Node>> =
        const { std::cell::RefCell::new(std::collections::BTreeMap::new()) };
}

/// The node named `name` last bound with [`bind`] in this thread's simulation
pub(crate) fn node_of(name: &str) -> Option<Node> {
    NODES.with(|n| n.borrow().get(name).cloned())
}

/// The UDP port every simulated node listens on.
pub const PORT: u16 = 4433;

/// A simulation of `duration` simulated time, its randomness (message latencies, losses, and
/// the order hosts run in, shuffled every step) from `seed`, with troupe's runtime on the
/// simulated clock
///
/// Ticks are 1 ms of simulated time; latency between hosts is 1-5 ms unless changed.
pub fn simulation<'a>(seed: u64, duration: Duration) -> turmoil::Sim<'a> {
    troupe_runtime::time::set_simulated(true);
    SEED.with(|s| s.set(Some(seed)));
    BINDS.with(|b| b.set(0));
    disk::forget_all();
    trace::forget_datagrams();
    NODES.with(|n| n.borrow_mut().clear());
    turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(duration)
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(DEFAULT_MAX_LATENCY)
        .enable_random_order()
        .build()
}

/// The address `host` listens on in the simulation (its simulated IP, [`PORT`])
///
/// # Panics
///
/// Outside a simulation, or if `host` is not one of its hosts.
pub fn addr(host: &str) -> SocketAddr {
    SocketAddr::new(turmoil::lookup(host), PORT)
}

/// Starts `node`'s endpoint on the simulated host this runs in, listening on [`PORT`] of every
/// address (as a deployment binding `0.0.0.0` would)
///
/// Unless `config` has its own `rng_seed`, the endpoint's randomness comes from the
/// simulation's seed and how many endpoints were bound before it; unless it has its own
/// `generation`, that count makes it, so a restarted node gets a new, larger incarnation and a
/// replay the same one. The node is remembered by its name, which
/// should be the host's, for [`Fault::Panic`].
///
/// # Errors
///
/// [`ConnectError::Socket`] if the port is taken, [`ConnectError::Tls`] if the identity in
/// `config` is unusable.
///
/// # Cancel safety
///
/// Cancel safe: nothing is started until the socket is bound, and binding does not wait.
pub async fn bind(node: &Node, mut config: NetConfig) -> Result<NodeNet, ConnectError> {
    if let Some(seed) = SEED.with(std::cell::Cell::get) {
        // every boot of every node its own stream, in the (deterministic) order they bind
        let boot = BINDS.with(|b| {
            b.set(b.get() + 1);
            b.get()
        });
        if config.rng_seed.is_none() {
            config.rng_seed = Some(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(boot));
        }
        if config.generation.is_none() {
            // later boots have larger generations, as the wall clock gives them in production
            let name = node.name().bytes().fold(0x811c_9dc5_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0193)
            });
            config.generation = Some((boot << 16) | (name & 0xffff));
        }
    }
    NODES.with(|n| n.borrow_mut().insert(node.name().to_string(), node.clone()));
    let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT);
    let socket = SimUdpSocket::bind(any)
        .await
        .map_err(|source| ConnectError::Socket {
            addr: Some(any),
            source,
        })?;
    NodeNet::start(node, socket, config)
}

/// Starts node `name` on the simulated host this runs in, under a one-for-one root supervisor
/// with no children yet, and binds its endpoint with `config` (seeds included) through
/// [`bind`]: what every simulation's client node, and every host that adds its actors after
/// joining, starts with.
///
/// # Errors
///
/// The node's name is taken in this process, or [`bind`]'s errors.
///
/// # Cancel safety
///
/// Not cancel safe: dropped between starting the node and binding it, the node runs without
/// an endpoint (a simulated host's future is only dropped with the host).
pub async fn start_node(
    name: &str,
    config: NetConfig,
) -> Result<(Node, NodeNet), Box<dyn std::error::Error>> {
    let node = Node::new(name, &Mesh::new(), NodeConfig::default())?;
    node.start(SupervisorSpec::one_for_one(), vec![]).await?;
    let net = bind(&node, config).await?;
    Ok((node, net))
}

/// The seeds a randomized simulation test runs: env `TROUPE_SIM_SEEDS` as `N` or `A-B`
/// (inclusive; `scripts/sim.sh` sets it), else `default`
///
/// # Panics
///
/// If the variable is set to anything else, naming what it holds.
pub fn seeds_from_env(default: std::ops::RangeInclusive<u64>) -> std::ops::RangeInclusive<u64> {
    let Ok(spec) = std::env::var("TROUPE_SIM_SEEDS") else {
        return default;
    };
    let parse = |s: &str| {
        s.trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("TROUPE_SIM_SEEDS must be N or A-B, not {spec:?}"))
    };
    match spec.split_once('-') {
        Some((a, b)) => parse(a)..=parse(b),
        None => parse(&spec)..=parse(&spec),
    }
}
