//! Test helpers shared by troupe's crates (a dev-dependency only; not published).
//!
//! # Layout
//! - [`eventually`] and [`eventually_sync`]: poll a condition until it holds or a deadline
//!   passes, failing with what was awaited and the last observation. Use these instead of a
//!   hand-written loop or a fixed sleep.
//! - [`Cluster`]: several nodes in one test process over real QUIC on loopback, with mutual
//!   TLS from one in-memory dev CA; [`fully_connected`] waits for the full mesh.
//! - [`SmallDisk`]: a small tmpfs that a test fills up, for what a part does on a full disk.

mod disk;

pub use disk::SmallDisk;

use std::fmt::Debug;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use troupe_identity::DevCa;
use troupe_runtime::Node;
use troupe_runtime::remote::{NetConfig, NodeNet};

/// The deadline most tests wait with: long enough for a loaded CI machine, short enough that a
/// hang fails the test rather than the job.
pub const T: Duration = Duration::from_secs(5);

/// How often [`eventually`] and [`eventually_sync`] look again.
pub const POLL_EVERY: Duration = Duration::from_millis(5);

/// What a poll observed: whether the condition holds and, if so, its value; if not, a
/// description for the failure message.
pub trait Observation {
    /// What a poll that holds gives back.
    type Value;

    /// `Ok(value)` if the condition holds, else `Err(what was seen)`.
    fn check(self) -> Result<Self::Value, String>;
}

impl Observation for bool {
    type Value = ();

    fn check(self) -> Result<(), String> {
        if self { Ok(()) } else { Err("false".into()) }
    }
}

impl<T> Observation for Option<T> {
    type Value = T;

    fn check(self) -> Result<T, String> {
        self.ok_or_else(|| "None".into())
    }
}

impl<T, E: Debug> Observation for Result<T, E> {
    type Value = T;

    fn check(self) -> Result<T, String> {
        self.map_err(|e| format!("Err({e:?})"))
    }
}

/// Polls `probe` every [`POLL_EVERY`] on tokio's clock until it holds (`true`, `Some(v)` or
/// `Ok(v)`), and returns its value.
///
/// A probe that hangs is not cut short: give its own calls a timeout. Under a paused tokio
/// clock the polls advance virtual time.
///
/// # Panics
/// If it does not hold within `within`, naming `what` and the last observation (`false`,
/// `None`, or the `Err`'s debug form).
///
/// # Cancel safety
/// Cancelling it only stops the polling.
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use troupe_testkit::{T, eventually};
/// let mut n = 0;
/// let v = eventually("n reaches 3", T, async || {
///     n += 1;
///     (n >= 3).then_some(n)
/// })
/// .await;
/// assert_eq!(v, 3);
/// # }
/// ```
pub async fn eventually<O: Observation>(
    what: &str,
    within: Duration,
    mut probe: impl AsyncFnMut() -> O,
) -> O::Value {
    let until = tokio::time::Instant::now() + within;
    loop {
        let seen = match probe().await.check() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            tokio::time::Instant::now() < until,
            "timed out after {within:?} waiting for {what}; last observation: {seen}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// As [`eventually`], for tests without a runtime (real processes): polls on this thread,
/// sleeping [`POLL_EVERY`] between polls.
///
/// # Panics
/// If it does not hold within `within`, naming `what` and the last observation.
pub fn eventually_sync<O: Observation>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> O,
) -> O::Value {
    let until = std::time::Instant::now() + within;
    loop {
        let seen = match probe().check() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            std::time::Instant::now() < until,
            "timed out after {within:?} waiting for {what}; last observation: {seen}"
        );
        std::thread::sleep(POLL_EVERY);
    }
}

/// Awaits `fut` for at most `within`.
///
/// # Panics
/// If it does not finish in time, naming `what`.
pub async fn within<F: Future>(what: &str, within: Duration, fut: F) -> F::Output {
    match tokio::time::timeout(within, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {within:?} waiting for {what}"),
    }
}

/// `127.0.0.1`, port 0: where test endpoints bind.
pub const LOOPBACK: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// A cluster of nodes in one test process, each reached over real QUIC on loopback with
/// mutual TLS: one in-memory dev CA issues every node's identity.
///
/// # Examples
/// ```no_run
/// # async fn run() {
/// use troupe_runtime::{Mesh, Node, NodeConfig};
/// use troupe_testkit::{Cluster, T, fully_connected};
/// let cluster = Cluster::new("test");
/// let a = Node::new("a", &Mesh::new(), NodeConfig::default()).unwrap();
/// let b = Node::new("b", &Mesh::new(), NodeConfig::default()).unwrap();
/// let a_net = cluster.join(&a, &[]).await;
/// let b_net = cluster.join(&b, &[a_net.local_addr()]).await;
/// fully_connected(&[&a_net, &b_net], T).await;
/// # }
/// ```
#[derive(Debug)]
pub struct Cluster {
    name: String,
    ca: DevCa,
}

impl Cluster {
    /// A cluster named `name` with a fresh dev CA.
    ///
    /// # Panics
    /// If the CA cannot be made.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            ca: DevCa::new(name).expect("a dev CA"),
        }
    }

    /// The cluster's CA (to issue more identities, or to make a second cluster's).
    pub fn ca(&self) -> &DevCa {
        &self.ca
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A network config for node `node` with an identity from the CA and `seeds`, otherwise
    /// the defaults (adjust it before [`bind`](Self::bind)).
    ///
    /// # Panics
    /// If the identity cannot be issued.
    pub fn config(&self, node: &str, seeds: &[SocketAddr]) -> NetConfig {
        NetConfig::new(
            self.name.clone(),
            self.ca.identity(node).expect("a node identity"),
        )
        .seeds(seeds.iter().copied())
    }

    /// Binds `node`'s QUIC endpoint on loopback (port 0) with `config`.
    ///
    /// # Panics
    /// If it cannot bind.
    pub async fn bind(&self, node: &Node, config: NetConfig) -> NodeNet {
        NodeNet::bind(node, LOOPBACK, config)
            .await
            .expect("bind a QUIC endpoint on loopback")
    }

    /// Binds `node`'s endpoint with the default config and `seeds`.
    ///
    /// # Panics
    /// If it cannot bind.
    pub async fn join(&self, node: &Node, seeds: &[SocketAddr]) -> NodeNet {
        let config = self.config(node.name(), seeds);
        self.bind(node, config).await
    }
}

/// Waits until every endpoint in `nets` is connected to all the others, over one QUIC
/// connection each: the duplicates two simultaneous dials make are resolved (a message sent on
/// the losing one while it closes can still be lost — issue 17's open handover — so tests that
/// count every message wait for this).
///
/// # Panics
/// If the mesh is not full within `within`, with who was connected to whom.
pub async fn fully_connected(nets: &[&NodeNet], within: Duration) {
    let want = nets.len().saturating_sub(1);
    eventually("a full mesh", within, async || {
        let seen: Vec<(Vec<String>, usize)> = nets
            .iter()
            .map(|n| (n.connected(), n.open_connections()))
            .collect();
        if seen
            .iter()
            .all(|(peers, open)| peers.len() >= want && *open == want)
        {
            Ok(())
        } else {
            Err(seen)
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn eventually_returns_the_value_once_it_holds() {
        let mut polls = 0;
        let got = eventually("three polls", T, async || {
            polls += 1;
            if polls == 3 { Ok(polls) } else { Err(polls) }
        })
        .await;
        assert_eq!(got, 3);
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "waiting for the impossible; last observation: Err(\"still no\")")]
    async fn eventually_names_what_and_the_last_observation() {
        eventually("the impossible", Duration::from_millis(50), async || {
            Err::<(), _>("still no")
        })
        .await;
    }

    #[test]
    #[should_panic(expected = "waiting for never; last observation: None")]
    fn eventually_sync_fails_at_the_deadline() {
        eventually_sync("never", Duration::from_millis(20), || None::<u8>);
    }
}
