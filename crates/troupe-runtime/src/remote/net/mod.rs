//! A node's endpoint: dialing and accepting authenticated connections, the handshake, inbound
//! dispatch, reconnection, and the endpoint's side of membership (`membership.rs`; the protocol
//! itself is `remote/swim/`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use troupe_wire::{
    ActorPath, Envelope, EnvelopeKind, Frame, FrameCodec, Hello, PROTOCOL_VERSION, ReplyOutcome,
    TraceContext, WireError,
};

use super::cut::{CutLinks, CuttableSocket};
use super::handshake::{CertCheck, Dialed, Expect, RejectReason, check_hello, replaces};
use super::members::{MAX_NAME_LEN, MemberStatus, Members};
use super::peer::{Origin, Peer, QueueError, Replier, STREAM_LANE, STREAM_LARGE, remote_error};
use super::pending::Pending;
use super::spin::Spinner;
use super::swim::{self, Swim, SwimId};
use super::{ConnectError, CutError, MembershipStats, NetConfig, NodeEvent, PeerLimit, tls};
use crate::codec;
use crate::error::CallError;
use crate::message::{Message, Reply, ReplyValue};
use crate::node::{MeshInner, Node};
use crate::trace::TraceParent;

mod calls;
mod connect;
mod control;
mod inbound;
mod liveness;
mod membership;

pub(crate) use calls::{remote_call, remote_cast};
use connect::*;
pub use control::fuzz_control_body;
use control::*;
use inbound::*;
use liveness::*;

/// QUIC application close codes.
mod close {
    pub(super) const LEAVE: u32 = 0;
    pub(super) const REJECTED: u32 = 1;
    pub(super) const DUPLICATE: u32 = 2;
    pub(super) const PROTOCOL_ERROR: u32 = 3;
    /// The peer went past one of our `PeerLimits`; the reason names the limit.
    pub(super) const LIMIT: u32 = 4;
}

/// Control-stream channel carrying [`ControlMsg`]s.
const CONTROL_CHANNEL: u8 = 1;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A node's network endpoint: one QUIC endpoint, its peers and its view of the cluster.
///
/// Cloning is cheap. Dropping every clone does not stop it; call [`NodeNet::shutdown`].
#[derive(Clone)]
pub struct NodeNet {
    inner: Arc<NetInner>,
}

pub(crate) struct NetInner {
    node: Node,
    endpoint: quinn::Endpoint,
    client_config: quinn::ClientConfig,
    config: NetConfig,
    codec: FrameCodec,
    incarnation: u64,
    local_addr: SocketAddr,
    peers: DashMap<Arc<str>, Arc<Peer>>,
    members: Mutex<Members>,
    pending: Pending,
    events: broadcast::Sender<NodeEvent>,
    next_request: AtomicU64,
    /// Connection attempts made, counted in each one's hello (see `Hello::dial`).
    dials: AtomicU64,
    /// Messages refused because their target does not accept them from the sending node.
    refused: AtomicU64,
    /// Replies that matched no call waiting on the peer they came from.
    stray_replies: AtomicU64,
    /// Connections registered per peer name since this endpoint started (the first, then one
    /// per reconnection).
    connections: Mutex<std::collections::HashMap<Arc<str>, u64>>,
    /// Members this node is dialling by name now (gossip and reconnection).
    dialing: Mutex<std::collections::HashSet<String>>,
    /// Nodes named in membership gossip that this node is trying to reach (bounded).
    hinted: Mutex<std::collections::HashSet<String>>,
    /// The membership protocol's driver.
    swim: Swim,
    shutting_down: AtomicBool,
    /// Told once `NodeNet::shutdown` is done: the task keeping the endpoint lets go of it.
    stopped: tokio::sync::Notify,
    /// Told whenever a connection to a peer is registered (calls waiting for one look again).
    connected: tokio::sync::Notify,
    /// Set when [`NetConfig::spin_after_traffic`] is.
    spinner: Option<Arc<Spinner>>,
    /// When this endpoint started, on the runtime's clock.
    started: std::time::Instant,
    /// Links cut on purpose ([`NodeNet::cut_link`]); applied by the endpoint's socket.
    cuts: Arc<CutLinks>,
}

/// One connected peer's link, as [`NodeNet::peer_stats`] reports it. Byte and packet counts
/// are those of the current connection (they start again from zero after a reconnection).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerStats {
    /// The peer's node name.
    pub name: String,
    /// The run of the peer this connection is to.
    pub incarnation: u64,
    /// QUIC's current estimate of the round-trip time.
    pub rtt: Duration,
    /// UDP payload bytes sent to it on this connection.
    pub bytes_sent: u64,
    /// UDP payload bytes received from it on this connection.
    pub bytes_received: u64,
    /// Datagrams sent to it on this connection.
    pub datagrams_sent: u64,
    /// Datagrams received from it on this connection.
    pub datagrams_received: u64,
    /// Packets QUIC declared lost on this connection.
    pub lost_packets: u64,
    /// Connections to it this endpoint has had (1, plus one per reconnection).
    pub connections: u64,
    /// Streams this node opened on the connection that are open now: one per lane, and one
    /// per large message being written.
    pub open_streams_out: usize,
    /// Streams the peer opened on the connection that this node is reading now.
    pub open_streams_in: usize,
    /// Messages (and replies) sent to it on this connection; a large one counts once.
    pub frames_sent: u64,
    /// Messages (and replies) received from it on this connection; a large one counts once.
    pub frames_received: u64,
}

impl std::fmt::Debug for NodeNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeNet")
            .field("node", &self.inner.node.name())
            .field("addr", &self.inner.local_addr)
            .finish()
    }
}

fn transport_config(config: &NetConfig) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(config.peer_down_timeout)
        .unwrap_or_else(|_| quinn::IdleTimeout::from(quinn::VarInt::from_u32(3_000)));
    t.max_idle_timeout(Some(idle));
    t.keep_alive_interval(Some(config.peer_down_timeout / 4));
    // every lane, every large message a peer may have in flight, and a spare
    let streams = config.lanes + config.limits.max_large_in_flight + 1;
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(
        u32::try_from(streams).unwrap_or(u32::MAX),
    ));
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(16));
    // membership datagrams (remote/swim/): a bounded buffer each way per peer
    t.datagram_receive_buffer_size(Some(64 * 1024));
    t.datagram_send_buffer_size(64 * 1024);
    t.stream_receive_window(quinn::VarInt::from_u32(4 * 1024 * 1024));
    t.receive_window(quinn::VarInt::from_u32(32 * 1024 * 1024));
    t.send_window(32 * 1024 * 1024);
    Arc::new(t)
}

impl NodeNet {
    /// The handle on an endpoint the mesh still holds
    pub(crate) fn from_inner(inner: Arc<NetInner>) -> Self {
        Self { inner }
    }

    /// Binds a UDP socket on `addr` (port 0 picks one) and starts the endpoint of `node`.
    ///
    /// # Errors
    /// [`ConnectError::Socket`] if the socket cannot be bound or used, [`ConnectError::Tls`]
    /// if the TLS configuration is invalid.
    ///
    /// # Cancel safety
    /// Cancel safe: it never waits, so a future dropped has either done nothing or bound the
    /// endpoint, which then runs until [`NodeNet::shutdown`] (dropping the handle does not
    /// stop it).
    pub async fn bind(
        node: &Node,
        addr: SocketAddr,
        config: NetConfig,
    ) -> Result<Self, ConnectError> {
        let socket = std::net::UdpSocket::bind(addr).map_err(|source| ConnectError::Socket {
            addr: Some(addr),
            source,
        })?;
        let runtime: Arc<dyn quinn::Runtime> = Arc::new(quinn::TokioRuntime);
        let socket = runtime
            .wrap_udp_socket(socket)
            .map_err(|source| ConnectError::Socket { addr: None, source })?;
        Self::start(node, socket, config)
    }

    /// Starts the endpoint of `node` on a socket handed in (the seam a network simulator uses),
    /// registers it with the node's mesh, and begins joining through the seeds.
    ///
    /// # Errors
    /// [`ConnectError::Tls`] if the TLS configuration is invalid, [`ConnectError::Socket`] if
    /// the socket is unusable.
    pub fn start(
        node: &Node,
        socket: Arc<dyn quinn::AsyncUdpSocket>,
        config: NetConfig,
    ) -> Result<Self, ConnectError> {
        let cuts = Arc::new(CutLinks::default());
        let socket: Arc<dyn quinn::AsyncUdpSocket> =
            Arc::new(CuttableSocket::new(socket, cuts.clone()));
        let transport = transport_config(&config);
        let server = tls::quinn_server_config(&config.identity, transport.clone())?;
        let client_config = tls::quinn_client_config(&config.identity, transport)?;
        let mut endpoint_config = quinn::EndpointConfig::default();
        if let Some(seed) = config.rng_seed {
            endpoint_config.rng_seed(Some(seed_bytes(seed)));
        }
        let endpoint = quinn::Endpoint::new_with_abstract_socket(
            endpoint_config,
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| ConnectError::Socket { addr: None, source })?;
        let local_addr = endpoint
            .local_addr()
            .map_err(|source| ConnectError::Socket { addr: None, source })?;
        // the roles its certificate proves, as peers learn them from its hello
        node.learn_roles(node.name(), config.identity.roles());
        // the node owns the channel, so subscribers from before the network started hear too
        let events = node.inner.cluster_events.clone();
        let incarnation = match (config.generation, config.rng_seed) {
            (Some(generation), _) => generation,
            // distinct per node name under one seed, and never 0
            (None, Some(seed)) => node
                .name()
                .bytes()
                .fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                })
                .max(1),
            (None, None) => incarnation(),
        };
        let inner = Arc::new(NetInner {
            node: node.clone(),
            endpoint,
            client_config,
            codec: FrameCodec::new(config.max_frame_len),
            incarnation,
            local_addr,
            peers: DashMap::new(),
            connections: Mutex::default(),
            members: Mutex::new(Members::new(node.name())),
            pending: Pending::default(),
            events,
            next_request: AtomicU64::new(1),
            dials: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            stray_replies: AtomicU64::new(0),
            dialing: Mutex::new(std::collections::HashSet::new()),
            hinted: Mutex::new(std::collections::HashSet::new()),
            swim: Swim::new(swim::settings(config.peer_down_timeout)),
            shutting_down: AtomicBool::new(false),
            stopped: tokio::sync::Notify::new(),
            connected: tokio::sync::Notify::new(),
            spinner: config.spin_after_traffic.and_then(Spinner::shared),
            started: crate::time::now(),
            cuts,
            config,
        });
        node.inner.mesh.attach_net(node.name(), &inner);
        let me = SwimId::new(Arc::from(node.name()), inner.incarnation, inner.advertise());
        // foca's random choices: replayed under a seed, else from this run's incarnation
        let swim_seed = inner
            .config
            .rng_seed
            .map_or(incarnation ^ 0x5851_f42d_4c95_7f2d, |s| {
                s ^ 0x2545_f491_4f6c_dd1d
            });
        inner.swim.run(
            Arc::downgrade(&inner),
            me,
            swim_seed,
            inner.config.limits.max_members,
        );
        // The endpoint runs until `shutdown`, whoever holds its handle; a runtime dropped
        // without it (a simulated host crashing) drops this task, and with it the endpoint.
        let kept = inner.clone();
        tokio::spawn(async move { kept.stopped.notified().await });
        let names = inner.node.inner.registry.exposed_names();
        for event in inner.members.lock().set_my_names(names) {
            inner.emit(event);
        }
        tokio::spawn(accept_loop(Arc::downgrade(&inner)));
        tokio::spawn(publish_names(Arc::downgrade(&inner)));
        for seed in inner.config.seeds.clone() {
            tokio::spawn(join_seed(Arc::downgrade(&inner), seed));
        }
        tracing::info!(node = %node.name(), addr = %local_addr, "endpoint listening");
        Ok(Self { inner })
    }

    /// The name of the node this endpoint serves.
    pub fn node_name(&self) -> &str {
        self.inner.node.name()
    }

    /// The address the endpoint is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// This process's incarnation of the node (its generation: new at every start, and larger
    /// than the last start's; see [`NetConfig::generation`]).
    pub fn incarnation(&self) -> u64 {
        self.inner.incarnation
    }

    /// Subscribes to membership and connection events.
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.inner.events.subscribe()
    }

    /// Dials `addr` and completes the handshake; returns the peer's node name.
    ///
    /// # Errors
    /// [`ConnectError::Rejected`] if either side refuses the handshake (another cluster, another
    /// protocol version, a name that does not match the certificate), `Connection` if QUIC or
    /// TLS fails (for example a certificate from another CA), `Timeout`.
    ///
    /// # Cancel safety
    /// Cancelled during the handshake, the half-open connection is dropped, which closes it;
    /// the peer may have registered it already, and then sees the connection lost. A
    /// handshake that completed registers the peer without waiting again, so its connection
    /// stays up whether or not the future is dropped afterwards.
    pub async fn connect(&self, addr: SocketAddr) -> Result<String, ConnectError> {
        dial(&self.inner, addr, None)
            .await
            .map(|peer| peer.name.to_string())
    }

    /// Members known to this node with their status and incarnation, sorted by name: every
    /// node the membership protocol ever held up, as it holds them now (up, down or left).
    /// Connected or not: a member whose link to this node is cut but that answers probes
    /// through other members is up.
    pub fn members(&self) -> Vec<(String, MemberStatus, u64)> {
        self.inner.members.lock().list()
    }

    /// The peers the membership protocol holds up now, sorted: this node's live view of the
    /// cluster, which every node shares once the protocol has converged, whatever links between
    /// two of them are cut (see [`NodeNet::connected`] for the links themselves).
    pub fn live(&self) -> Vec<String> {
        self.inner.members.lock().up_names()
    }

    /// When this node's live view ([`NodeNet::live`]) can be taken as whole: until then it
    /// may still lack members that are up, as a node that has just joined hears of them over
    /// the following gossip rounds. It is when this endpoint started plus
    /// [`NetConfig::peer_down_timeout`], the time in which a member nobody has heard from
    /// would be declared down anyway; on the runtime's clock ([`crate::time::now`]).
    pub fn view_settles_at(&self) -> std::time::Instant {
        self.inner.started + self.inner.config.peer_down_timeout
    }

    /// What the membership protocol did with its datagrams so far: sent, received, and dropped
    /// by reason (rate, queue, malformed, spoofed sender, unvouched identities).
    pub fn membership_stats(&self) -> MembershipStats {
        self.inner.swim.stats()
    }

    /// Messages from other nodes refused so far because their target does not accept
    /// messages from the sending node (see [`Reach`](crate::Reach)); also counted in the
    /// `troupe_remote_refused_total{reason="forbidden"}` metric.
    pub fn refused_messages(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// Replies dropped so far because no call was waiting for them from the peer they came
    /// from: late replies to calls that timed out or were abandoned, and replies a peer sent
    /// for calls that went to another node. Also counted in `troupe_remote_stray_replies_total`.
    pub fn stray_replies(&self) -> u64 {
        self.inner.stray_replies.load(Ordering::Relaxed)
    }

    /// Each connected peer's link as QUIC measures it, sorted by peer: round-trip time, bytes
    /// and datagrams each way, packets lost, and how many connections to it this endpoint has
    /// had. Reading them costs the links nothing (quinn keeps these counts anyway).
    pub fn peer_stats(&self) -> Vec<PeerStats> {
        let connections = self.inner.connections.lock().clone();
        let mut stats: Vec<PeerStats> = self
            .inner
            .peers
            .iter()
            .map(|p| {
                let peer = p.value();
                let quic = peer.conn.stats();
                PeerStats {
                    name: peer.name.to_string(),
                    incarnation: peer.incarnation,
                    rtt: peer.conn.rtt(),
                    bytes_sent: quic.udp_tx.bytes,
                    bytes_received: quic.udp_rx.bytes,
                    datagrams_sent: quic.udp_tx.datagrams,
                    datagrams_received: quic.udp_rx.datagrams,
                    lost_packets: quic.path.lost_packets,
                    connections: connections.get(&peer.name).copied().unwrap_or(1),
                    open_streams_out: peer.streams_out.now(),
                    open_streams_in: peer.streams_in.now(),
                    frames_sent: peer.frames_sent.load(Ordering::Relaxed),
                    frames_received: peer.frames_received.load(Ordering::Relaxed),
                }
            })
            .collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }

    /// Names of the peers this node has a connection to now, sorted. A link can be gone while
    /// the peer is alive (a cut between two nodes that both reach a third): for who is in the
    /// cluster, see [`NodeNet::live`].
    pub fn connected(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .inner
            .peers
            .iter()
            .map(|p| p.key().to_string())
            .collect();
        names.sort();
        names
    }

    /// The nodes (up, or this one) that publish actor `name`.
    pub fn whereis(&self, name: &str) -> Vec<String> {
        self.inner.members.lock().whereis(name)
    }

    /// Cuts this node off from `peer` as a network partition would: from now until
    /// [`NodeNet::heal_link`], every datagram to or from the peer's addresses is dropped, both
    /// ways, by this endpoint alone (the peer need not take part). Nothing is closed: the link
    /// goes silent, calls across it time out, its connection ends after
    /// [`NetConfig::peer_down_timeout`], and reconnection attempts fail until the link is healed
    /// — what a real partition does, with no firewall rules, whether the peer is in this process
    /// (routed over QUIC) or on another host. Whether the two report each other down is the
    /// membership protocol's call: if another member still reaches both, it relays their probes
    /// and every node keeps both up; if none does, both are reported down within about
    /// `peer_down_timeout`.
    ///
    /// # Errors
    /// [`CutError::Myself`] for this node's own name; [`CutError::UnknownPeer`] if no address
    /// of `peer` is known (it never joined).
    pub fn cut_link(&self, peer: &str) -> Result<(), CutError> {
        if peer == self.node_name() {
            return Err(CutError::Myself);
        }
        let mut addrs: Vec<SocketAddr> = self
            .inner
            .peers
            .get(peer)
            .map(|p| p.conn.remote_address())
            .into_iter()
            .collect();
        addrs.extend(self.inner.members.lock().addr_of(peer));
        if addrs.is_empty() {
            return Err(CutError::UnknownPeer(peer.to_string()));
        }
        tracing::info!(node = %self.node_name(), %peer, ?addrs, "link cut on purpose");
        self.inner.cuts.cut(peer, addrs);
        Ok(())
    }

    /// Heals the link to `peer` cut by [`NodeNet::cut_link`] and redials it at once (rather
    /// than at the next reconnection attempt, which backs off up to
    /// [`NetConfig::reconnect_backoff`]); whether it was cut.
    pub fn heal_link(&self, peer: &str) -> bool {
        let healed = self.inner.cuts.heal(peer);
        if healed {
            tracing::info!(node = %self.node_name(), %peer, "cut link healed");
            if !self.inner.peers.contains_key(peer) {
                let inner = Arc::downgrade(&self.inner);
                tokio::spawn(redial(inner, peer.to_string()));
            }
        }
        healed
    }

    /// The peers this node is cut off from now ([`NodeNet::cut_link`]), sorted.
    pub fn cut_links(&self) -> Vec<String> {
        self.inner.cuts.peers()
    }

    /// Datagrams dropped so far because their link was cut, both ways.
    pub fn cut_datagrams(&self) -> u64 {
        self.inner.cuts.dropped()
    }

    /// QUIC connections open on this endpoint (one per connected peer once duplicates from
    /// simultaneous dials are resolved).
    pub fn open_connections(&self) -> usize {
        self.inner.endpoint.open_connections()
    }

    /// Remote calls waiting for a reply.
    pub fn pending_calls(&self) -> usize {
        self.inner.pending.len()
    }

    /// Leaves the cluster gracefully: tells every peer, closes the connections (so peers report
    /// `Left` at once rather than `Down` after a timeout), stops the membership protocol and
    /// the endpoint.
    ///
    /// # Cancel safety
    /// Cancel safe: the shutdown runs in a task of its own, so cancelling only stops waiting
    /// for it (about 50 ms for the leave notices to flush, and up to 1 s for the endpoint to
    /// go idle); the node still leaves, closes its connections and detaches its endpoint.
    pub async fn shutdown(&self) {
        let inner = self.inner.clone();
        let leaving = tokio::spawn(async move {
            inner.shutting_down.store(true, Ordering::SeqCst);
            // out of the membership protocol first: told by a peer that it is down now (the
            // peer heard it leave), this node must not rejoin on its way out
            inner.swim.stop();
            let leave = encode_control(&inner.codec, &ControlMsg::Leave);
            let peers = inner.peers_by_name();
            for peer in &peers {
                if let Some(frame) = &leave {
                    // a peer that does not read is closed below anyway
                    let _ = peer.send_control(frame.clone());
                }
            }
            // give the control writers a moment to flush the leave notices
            tokio::time::sleep(Duration::from_millis(50)).await;
            for peer in &peers {
                peer.conn
                    .close(quinn::VarInt::from_u32(close::LEAVE), b"node leaving");
            }
            inner
                .endpoint
                .close(quinn::VarInt::from_u32(close::LEAVE), b"node leaving");
            inner.node.inner.mesh.detach_net(inner.node.name());
            let _ = tokio::time::timeout(Duration::from_secs(1), inner.endpoint.wait_idle()).await;
            inner.stopped.notify_one();
        });
        let _ = leaving.await;
    }
}

/// 32 bytes spread from `seed` (splitmix64), for quinn's seeded random generator.
fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut state = seed;
    let mut out = [0u8; 32];
    for chunk in out.chunks_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

/// A generation for this start: the wall clock's Unix milliseconds, shifted up, with 16 random
/// bits below, so a later start of a node has a larger one (unless its clock went back by more
/// than the time between the two starts) and two starts in one millisecond still differ.
fn incarnation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(now.as_nanos());
    h.write_u32(std::process::id());
    let millis = u64::try_from(now.as_millis()).unwrap_or(u64::MAX >> 16);
    (millis << 16) | (h.finish() & 0xffff)
}

impl NetInner {
    fn emit(&self, event: NodeEvent) {
        if let NodeEvent::DuplicateName { name, .. } = &event
            && self.node.mesh().placed(name).is_some()
        {
            // a failover group's name: registered on every node of its order, gated, and run
            // by the one holding its lease
            return;
        }
        match &event {
            NodeEvent::DuplicateName { .. } | NodeEvent::ProtocolError { .. } => {
                tracing::error!(node = %self.node.name(), ?event, "node event")
            }
            NodeEvent::PeerRejected { .. }
            | NodeEvent::Down { .. }
            | NodeEvent::Unreachable { .. } => {
                tracing::warn!(node = %self.node.name(), ?event, "node event")
            }
            _ => tracing::info!(node = %self.node.name(), ?event, "node event"),
        }
        let _ = self.events.send(event);
    }

    fn hello(&self) -> Hello {
        Hello {
            cluster: self.config.cluster.clone(),
            node: self.node.name().to_string(),
            protocol: PROTOCOL_VERSION,
            incarnation: self.incarnation,
            dial: 0,
            roles: self.config.identity.roles().to_vec(),
        }
    }

    fn advertise(&self) -> SocketAddr {
        self.config.advertise.unwrap_or(self.local_addr)
    }

    /// Marks `name` as being dialled; `false` if a dial to it is under way already.
    fn begin_dial(&self, name: &str) -> bool {
        self.dialing.lock().insert(name.to_string())
    }

    /// The dial to `name` ended (either way).
    fn end_dial(&self, name: &str) {
        self.dialing.lock().remove(name);
    }

    /// Every connected peer, in name order: what goes to all of them goes in an order that
    /// does not depend on the map's hashing, so a simulation replays it exactly
    fn peers_by_name(&self) -> Vec<Arc<Peer>> {
        let mut peers: Vec<Arc<Peer>> = self.peers.iter().map(|p| p.value().clone()).collect();
        peers.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        peers
    }

    /// Queues a control frame for `peer`, disconnecting it if it does not read them.
    fn send_control(&self, peer: &Peer, frame: Bytes) {
        if !peer.send_control(frame) {
            limit_exceeded(self, peer, PeerLimit::ControlQueue);
        }
    }

    fn broadcast_control(&self, frame: &Bytes) {
        for peer in self.peers_by_name() {
            self.send_control(&peer, frame.clone());
        }
    }

    /// Encodes an envelope into one frame.
    fn encode(&self, env: Envelope) -> Result<Bytes, CallError> {
        let mut buf = BytesMut::new();
        self.codec
            .encode(&Frame::Envelope(env), &mut buf)
            .map_err(|e| match e {
                WireError::FrameTooLarge { len, max } => CallError::TooLarge { len, max },
                other => CallError::Decode(other.to_string()),
            })?;
        Ok(buf.freeze())
    }

    /// Encodes `msg` for `name` on `node` as one frame of the given kind.
    fn encode_request<M: Message>(
        &self,
        kind: EnvelopeKind,
        node: &str,
        name: &str,
        msg: &M,
    ) -> Result<Bytes, CallError> {
        let payload = codec::encode_message(msg, self.config.max_frame_len)?;
        crate::timing::count_send();
        self.encode(Envelope {
            kind,
            target: ActorPath {
                node: node.to_string(),
                name: name.to_string(),
            },
            sender: None,
            msg_type: codec::message_type::<M>(),
            trace: TraceParent::current().map(|t| TraceContext {
                traceparent: t.to_string(),
                tracestate: String::new(),
            }),
            payload,
        })
    }

    /// The connection to `node` now, if it is the incarnation given.
    pub(crate) fn connected_peer(&self, node: &str, incarnation: u64) -> Option<Arc<Peer>> {
        self.peers
            .get(node)
            .map(|p| p.value().clone())
            .filter(|p| p.incarnation == incarnation)
    }

    fn queue(&self, node: &str, target: &str, frame: Bytes) -> Result<(), CallError> {
        let peer = self
            .peers
            .get(node)
            .map(|p| p.value().clone())
            .ok_or_else(|| CallError::Unreachable {
                node: node.to_string(),
            })?;
        Self::queue_on(&peer, node, target, frame)
    }

    /// Queues a call's frame for `node`; when the node is up but between two connections (one
    /// closed as a duplicate before its survivor registered here), waits for the survivor.
    /// Unbounded by itself: the caller's timeout bounds it, and cancelling it sends nothing.
    async fn queue_call(&self, node: &str, target: &str, frame: Bytes) -> Result<(), CallError> {
        if let Some(peer) = self.peers.get(node).map(|p| p.value().clone()) {
            return Self::queue_on(&peer, node, target, frame);
        }
        loop {
            let connected = self.connected.notified();
            tokio::pin!(connected);
            // registered before looking, so a connection made meanwhile wakes it
            connected.as_mut().enable();
            if let Some(peer) = self.peers.get(node).map(|p| p.value().clone()) {
                return Self::queue_on(&peer, node, target, frame);
            }
            let up = self.members.lock().status(node) == Some(MemberStatus::Up);
            if !up || self.shutting_down.load(Ordering::SeqCst) {
                return Err(CallError::Unreachable {
                    node: node.to_string(),
                });
            }
            connected.await;
        }
    }

    fn queue_on(peer: &Peer, node: &str, target: &str, frame: Bytes) -> Result<(), CallError> {
        if peer.refuses_sends() {
            // declared down and silent since: its link lingers until QUIC's idle timeout, and
            // nothing is sent into it
            return Err(CallError::Unreachable {
                node: node.to_string(),
            });
        }
        let lane = peer.lane_for(target);
        peer.send(lane, frame).map_err(|e| match e {
            QueueError::Full(limit) => CallError::Overloaded {
                target: format!("{node}/{target} (link)"),
                limit,
            },
            QueueError::Closed => CallError::Unreachable {
                node: node.to_string(),
            },
        })
    }

    /// Hands an envelope from `peer` to its local actor, or completes a pending call.
    fn dispatch(self: &Arc<Self>, peer: &Arc<Peer>, env: Envelope) {
        match env.kind {
            EnvelopeKind::Reply {
                request_id,
                outcome,
            } => {
                let result = match outcome {
                    ReplyOutcome::Ok => Ok(env.payload),
                    ReplyOutcome::Err { code, detail } => {
                        Err(remote_error(&peer.name, code, detail))
                    }
                };
                if !self.pending.complete(request_id, &peer.name, result) {
                    // late (the caller gave up), or a reply to a call that never went to this
                    // peer: dropped either way, and counted
                    self.stray_replies.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("troupe_remote_stray_replies_total").increment(1);
                }
            }
            EnvelopeKind::Cast | EnvelopeKind::Call { .. } => {
                let replier = match env.kind {
                    EnvelopeKind::Call { request_id, .. } => Some(Replier {
                        peer: Arc::downgrade(peer),
                        route: peer.route.clone(),
                        request_id,
                        msg_type: env.msg_type.clone(),
                    }),
                    _ => None,
                };
                if env.target.node != self.node.name() {
                    let err = CallError::NotFound {
                        target: format!("{}/{}", env.target.node, env.target.name),
                    };
                    if let Some(r) = replier {
                        r.refuse(&err);
                    }
                    return;
                }
                let registry = &self.node.inner.registry;
                if !registry.reachable_from(&env.target.name, &peer.name) {
                    let target = format!("{}/{}", env.target.node, env.target.name);
                    // a name that is not registered at all stays `NotFound`, as before
                    let err = if registry.contains(&env.target.name) {
                        self.refused.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!(
                            "troupe_remote_refused_total",
                            "reason" => "forbidden",
                            "peer" => peer.name.to_string()
                        )
                        .increment(1);
                        tracing::debug!(%target, from = %peer.name, "message from a node the target does not accept");
                        CallError::Forbidden { target }
                    } else {
                        CallError::NotFound { target }
                    };
                    if let Some(r) = replier {
                        r.refuse(&err);
                    }
                    return;
                }
                let Some(inbox) = registry.inbox(&env.target.name) else {
                    if let Some(r) = replier {
                        r.refuse(&CallError::NotFound {
                            target: format!("{}/{}", env.target.node, env.target.name),
                        });
                    }
                    return;
                };
                if let Err((err, replier)) = inbox.deliver_remote(&self.node, &env, replier) {
                    tracing::debug!(cause = %err, target = %env.target.name, from = %peer.name, "remote message refused");
                    if let Some(r) = replier {
                        r.refuse(&err);
                    }
                }
            }
        }
    }
}
