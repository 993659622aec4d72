//! The remote path: one QUIC endpoint per node, mutual TLS against the cluster CA, a handshake,
//! lanes of ordered frames per peer, remote casts and calls through the same [`Addr`], and
//! membership with failure detection (SWIM, by foca, over QUIC datagrams).
//!
//! [`Addr`]: crate::Addr
//!
//! # Layout
//! - `handshake`: what a node accepts in a peer's hello; which duplicate connection survives.
//! - `members`: the membership table (up, down, left, incarnations, published names).
//! - `swim`: membership and failure detection: foca driven by one task on tokio's clock, its
//!   packets in QUIC datagrams, an identity filter in front.
//! - `pending`: calls waiting for replies, swept on timeout and node-down.
//! - `peer`: one connection: its lanes, writers and readers.
//! - `net`: the endpoint, dialing, accepting, dispatching and reconnection.
//! - `tls`: quinn configurations from a node's identity, and a peer's certificate chain.

mod cut;
mod handshake;
mod members;
mod net;
mod peer;
mod pending;
mod spin;
mod swim;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use handshake::RejectReason;
pub use members::MemberStatus;
pub(crate) use net::{NetInner, remote_call, remote_cast};
pub use net::{NodeNet, PeerStats, fuzz_control_body};
pub(crate) use peer::Replier;
pub use swim::MembershipStats;
#[doc(hidden)]
pub use swim::{answer_membership, forge_membership_gossip, fuzz_swim_datagram};
pub use tls::{TlsConfigError, peer_chain, quinn_client_config, quinn_server_config};

/// Settings of a node's network endpoint.
#[derive(Clone)]
pub struct NetConfig {
    /// The cluster's name; peers of another cluster are refused.
    pub cluster: String,
    /// This node's certificate, key and cluster CA.
    pub identity: Arc<troupe_identity::NodeIdentity>,
    /// Addresses to join through (any members of the cluster).
    pub seeds: Vec<SocketAddr>,
    /// The address peers should dial to reach this node (default: the bound address; bound to
    /// an unspecified IP such as `0.0.0.0`, peers dial the IP its connections come from).
    pub advertise: Option<SocketAddr>,
    /// A killed peer is reported down within about this long (default 3 s). The membership
    /// protocol's timings derive from it: a member is probed every fifteenth of it and a
    /// suspect declared down after four probe periods, so a process that stalls for more than
    /// about a third of it is declared down too (and rejoins when it wakes). A connection
    /// silent this long is closed (QUIC's idle timeout; keep-alives at a quarter of it), which
    /// only retires the link: whether the peer is down is the membership protocol's call.
    pub peer_down_timeout: Duration,
    /// Lanes (unidirectional streams) per peer and direction.
    pub lanes: usize,
    /// Frames each lane buffers before sends fail with `Overloaded`.
    pub lane_buffer: usize,
    /// The largest frame accepted or sent.
    pub max_frame_len: usize,
    /// Messages larger than this travel on a stream of their own (order kept by a marker).
    pub large_message_threshold: usize,
    /// First and longest pause between reconnection attempts.
    pub reconnect_backoff: (Duration, Duration),
    /// After remote traffic, keep one thread of this process spinning this long, so the
    /// machine's CPUs do not fall asleep between messages (`None`, the default: no spinning).
    ///
    /// For latency on machines whose idle CPUs sleep deeply, such as virtual machines without
    /// guest halt-polling, where waking a CPU costs tens of microseconds on every hop of a
    /// call. The price: while traffic flows, one CPU of the machine is kept busy (the thread
    /// yields to any other runnable thread, and parks once the window passes without
    /// traffic). One thread per process, whatever the number of endpoints asking for it.
    pub spin_after_traffic: Option<Duration>,
    /// What one peer may cost this node; a peer over a limit is disconnected.
    pub limits: PeerLimits,
    /// Seeds the endpoint's random choices (QUIC connection ids and the rest of quinn's
    /// randomness, this node's incarnation number), so a simulation replays exactly. `None`,
    /// the default: from the operating system, as production wants. TLS keys stay random.
    pub rng_seed: Option<u64>,
    /// This process's generation of the node ([`NodeNet::incarnation`]): the membership
    /// protocol keeps the larger of two starts of one node, so each start must have a larger
    /// one than the last. `None`, the default: the wall clock's Unix milliseconds, shifted left
    /// 16 bits, with 16 random bits (a node restarted on a host whose clock is behind the old
    /// one's by more than the time between the starts is ignored until the old is forgotten).
    /// A simulator sets it from its own count of starts.
    pub generation: Option<u64>,
}

/// Bounds on what one authenticated peer may make this node hold. A peer that goes past one is
/// disconnected (QUIC close code 4, the limit's name as the reason, which its side logs), and
/// [`NodeEvent::LimitExceeded`] is reported here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerLimits {
    /// Members of the cluster this node keeps track of: a peer whose membership gossip names
    /// more nodes this node does not know is cut off. Default 1,024.
    pub max_members: usize,
    /// Names one member may announce. Default 1,000,000.
    pub max_names: usize,
    /// Large-message streams one peer may have open or waiting at once (the QUIC stream limit
    /// is the lanes plus this). Default 64.
    pub max_large_in_flight: usize,
    /// Longest a large message may take to arrive once its stream or marker did. Default 30 s.
    pub large_message_deadline: Duration,
    /// Control frames queued for one peer (names, leaving); a peer that does not read them is
    /// disconnected. Default 1,024.
    pub control_queue: usize,
    /// Dial attempts for a member learned from gossip that this node never reached, before it
    /// is forgotten. Default 8.
    pub max_gossip_dials: u32,
}

impl Default for PeerLimits {
    fn default() -> Self {
        Self {
            max_members: 1024,
            max_names: 1_000_000,
            max_large_in_flight: 64,
            large_message_deadline: Duration::from_secs(30),
            control_queue: 1024,
            max_gossip_dials: 8,
        }
    }
}

/// Which [`PeerLimits`] bound a peer went past.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerLimit {
    /// Membership gossip named more unknown nodes than [`PeerLimits::max_members`].
    Members,
    /// A member announced more names than [`PeerLimits::max_names`], or a malformed name.
    Names,
    /// More large messages at once than [`PeerLimits::max_large_in_flight`].
    LargeInFlight,
    /// A large message not complete within [`PeerLimits::large_message_deadline`].
    LargeDeadline,
    /// The peer did not read its control frames ([`PeerLimits::control_queue`]).
    ControlQueue,
}

impl PeerLimit {
    /// The limit's name, as sent in the close reason and logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Members => "max_members",
            Self::Names => "max_names",
            Self::LargeInFlight => "max_large_in_flight",
            Self::LargeDeadline => "large_message_deadline",
            Self::ControlQueue => "control_queue",
        }
    }
}

impl std::fmt::Display for PeerLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl NetConfig {
    /// Defaults for `cluster` with `identity`: peer down after 3 s, 8 lanes of 8192 frames,
    /// 8 MiB frames, messages over 256 KiB on their own stream, reconnect 100 ms .. 2 s.
    pub fn new(cluster: impl Into<String>, identity: troupe_identity::NodeIdentity) -> Self {
        Self {
            cluster: cluster.into(),
            identity: Arc::new(identity),
            seeds: Vec::new(),
            advertise: None,
            peer_down_timeout: Duration::from_secs(3),
            lanes: 8,
            lane_buffer: 8192,
            max_frame_len: troupe_wire::DEFAULT_MAX_FRAME_LEN,
            large_message_threshold: 256 * 1024,
            reconnect_backoff: (Duration::from_millis(100), Duration::from_secs(2)),
            spin_after_traffic: None,
            limits: PeerLimits::default(),
            rng_seed: None,
            generation: None,
        }
    }

    /// The same config with its random choices from `seed` (see the field `rng_seed`).
    #[must_use]
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.rng_seed = Some(seed);
        self
    }

    /// Adds seed addresses.
    pub fn seeds(mut self, seeds: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.seeds.extend(seeds);
        self
    }

    /// Keeps a CPU awake for `window` after remote traffic (see
    /// [`spin_after_traffic`](Self::spin_after_traffic)).
    pub fn spin_after_traffic(mut self, window: Duration) -> Self {
        self.spin_after_traffic = Some(window);
        self
    }

    /// Sets how long a killed peer may take to be reported down (see the field
    /// `peer_down_timeout`).
    pub fn peer_down_timeout(mut self, timeout: Duration) -> Self {
        self.peer_down_timeout = timeout;
        self
    }
}

impl std::fmt::Debug for NetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetConfig")
            .field("cluster", &self.cluster)
            .field("node", &self.identity.node())
            .field("seeds", &self.seeds)
            .field("peer_down_timeout", &self.peer_down_timeout)
            .field("lanes", &self.lanes)
            .field("spin_after_traffic", &self.spin_after_traffic)
            .field("limits", &self.limits)
            .finish()
    }
}

/// Something that happened to this node's view of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// The membership protocol holds a peer up: it joined, rejoined after being declared down,
    /// or restarted (a new incarnation).
    Up {
        /// The peer.
        node: String,
        /// Its incarnation (changes when the node restarts).
        incarnation: u64,
    },
    /// The membership protocol declared a peer down: it answered no probe, directly or through
    /// other members, and did not refute the suspicion in time. Calls waiting on it fail;
    /// reconnection is attempted. A link cut between two nodes that both reach a third is not
    /// this: the third relays the probes and both stay up everywhere.
    Down {
        /// The peer.
        node: String,
        /// Why.
        reason: String,
    },
    /// This node's connection to a peer that the membership protocol holds up ended (the
    /// link went silent for `peer_down_timeout`, or was closed), and no other connection to it
    /// is open; reconnection is attempted. The peer is not down: other members may still reach
    /// it (a link cut between two nodes that both reach a third). A signal about this node's
    /// own links, unlike `Down`: what must talk to the peer itself (a database replica following
    /// its leader, a balancer's members) treats it as down for this node.
    Unreachable {
        /// The peer.
        node: String,
        /// Why the connection ended.
        reason: String,
    },
    /// A connection to a peer reported [`NodeEvent::Unreachable`] completed its handshake
    /// again.
    Reachable {
        /// The peer.
        node: String,
    },
    /// A peer left gracefully.
    Left {
        /// The peer.
        node: String,
    },
    /// A connection was refused during the handshake (by us or by the peer).
    PeerRejected {
        /// The peer's address.
        addr: SocketAddr,
        /// The name it claimed, if it got that far.
        node: Option<String>,
        /// Why.
        reason: RejectReason,
    },
    /// One name is registered on several nodes (never reported for a failover group's names,
    /// which every node of its order registers: see `Mesh::place`).
    DuplicateName {
        /// The name.
        name: String,
        /// The nodes publishing it.
        nodes: Vec<String>,
    },
    /// A peer sent something malformed; its connection was closed.
    ProtocolError {
        /// The peer.
        node: String,
        /// What was wrong.
        cause: String,
    },
    /// A peer went past one of this node's [`PeerLimits`]; its connection was closed.
    LimitExceeded {
        /// The peer.
        node: String,
        /// Which limit.
        limit: PeerLimit,
    },
}

/// Why [`NodeNet::cut_link`] could not cut a link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CutError {
    /// A node has no link to itself.
    #[error("a node cannot be cut off from itself")]
    Myself,
    /// No address of the peer is known: it never joined this node's cluster.
    #[error("no member {0} is known to this node")]
    UnknownPeer(String),
}

/// Why a node's endpoint could not start ([`NodeNet::bind`], [`NodeNet::start`]) or
/// [`NodeNet::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The handshake was refused (by either side).
    #[error("peer rejected: {0}")]
    Rejected(RejectReason),
    /// The UDP socket could not be bound (`addr` is the address asked for) or used.
    #[error("UDP socket{}: {source}", addr.map(|a| format!(" {a}")).unwrap_or_default())]
    Socket {
        /// The address it was to be bound to, if binding failed.
        addr: Option<SocketAddr>,
        /// Why.
        source: std::io::Error,
    },
    /// The node's identity does not make a QUIC configuration.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// quinn refused to start the connection (for example an unusable address).
    #[error("cannot dial: {0}")]
    Dial(#[from] quinn::ConnectError),
    /// The QUIC or TLS connection failed or was closed.
    #[error("connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The hello could not be encoded.
    #[error("cannot encode the hello: {0}")]
    Encode(#[from] troupe_wire::WireError),
    /// The hello could not be sent.
    #[error("cannot send the hello: {0}")]
    Write(#[from] quinn::WriteError),
    /// The peer did not complete the handshake in time.
    #[error("handshake timed out")]
    Timeout,
    /// The link to this peer is cut on purpose ([`NodeNet::cut_link`]).
    #[error("the link to {0} is cut")]
    LinkCut(String),
    /// This node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
}
