//! A node's endpoint: dialing and accepting authenticated connections, the handshake, inbound
//! dispatch, membership gossip, failure detection and reconnection.

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
    WireError,
};

use super::handshake::{Expect, RejectReason, check_hello, keeps_connection_dialed_by};
use super::members::{MAX_NAME_LEN, MemberInfo, MemberStatus, Members};
use super::peer::{Peer, QueueError, Replier, STREAM_LANE, STREAM_LARGE, remote_error};
use super::pending::Pending;
use super::spin::Spinner;
use super::{ConnectError, NetConfig, NodeEvent, PeerLimit, tls};
use crate::codec;
use crate::error::CallError;
use crate::message::{Message, Reply, ReplyValue};
use crate::node::{MeshInner, Node};

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

#[derive(Debug, Serialize, Deserialize)]
enum ControlMsg {
    Members(Vec<MemberInfo>),
    Names(Vec<String>),
    Leave,
    Reject(String),
}

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
    /// Messages refused because their target does not accept them from the sending node.
    refused: AtomicU64,
    /// Replies that matched no call waiting on the peer they came from.
    stray_replies: AtomicU64,
    shutting_down: AtomicBool,
    /// Set when [`NetConfig::spin_after_traffic`] is.
    spinner: Option<Arc<Spinner>>,
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
    t.stream_receive_window(quinn::VarInt::from_u32(4 * 1024 * 1024));
    t.receive_window(quinn::VarInt::from_u32(32 * 1024 * 1024));
    t.send_window(32 * 1024 * 1024);
    Arc::new(t)
}

impl NodeNet {
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
        let transport = transport_config(&config);
        let server = tls::quinn_server_config(&config.identity, transport.clone())?;
        let client_config = tls::quinn_client_config(&config.identity, transport)?;
        let endpoint = quinn::Endpoint::new_with_abstract_socket(
            quinn::EndpointConfig::default(),
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| ConnectError::Socket { addr: None, source })?;
        let local_addr = endpoint
            .local_addr()
            .map_err(|source| ConnectError::Socket { addr: None, source })?;
        // the node owns the channel, so subscribers from before the network started hear too
        let events = node.inner.cluster_events.clone();
        let inner = Arc::new(NetInner {
            node: node.clone(),
            endpoint,
            client_config,
            codec: FrameCodec::new(config.max_frame_len),
            incarnation: incarnation(),
            local_addr,
            peers: DashMap::new(),
            members: Mutex::new(Members::new(node.name())),
            pending: Pending::default(),
            events,
            next_request: AtomicU64::new(1),
            refused: AtomicU64::new(0),
            stray_replies: AtomicU64::new(0),
            shutting_down: AtomicBool::new(false),
            spinner: config.spin_after_traffic.and_then(Spinner::shared),
            config,
        });
        node.inner.mesh.attach_net(node.name(), inner.clone());
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

    /// This process's incarnation of the node (new at every start).
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

    /// Members known to this node with their status and incarnation, sorted by name.
    pub fn members(&self) -> Vec<(String, MemberStatus, u64)> {
        self.inner.members.lock().list()
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

    /// Names of the peers connected now, sorted.
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
    /// `Left` at once rather than `Down` after a timeout) and stops the endpoint.
    ///
    /// # Cancel safety
    /// Not cancel safe. Cancelled in its first 50 ms (while the leave notices flush), the
    /// endpoint refuses to dial but keeps its connections and accepts new ones; cancelled
    /// later, its connections and endpoint are closed but it stays attached to the node's
    /// process, which may still pick it to send from. Calling it again finishes the job.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.shutting_down.store(true, Ordering::SeqCst);
        let leave = encode_control(&inner.codec, &ControlMsg::Leave);
        let peers: Vec<Arc<Peer>> = inner.peers.iter().map(|p| p.value().clone()).collect();
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
        let _ = tokio::time::timeout(Duration::from_secs(1), inner.endpoint.wait_idle()).await;
        inner.node.inner.mesh.detach_net(inner.node.name());
    }
}

fn incarnation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Whether a member's announced names are within `limits` (and each a sane length).
fn names_within(names: &[String], limits: &super::PeerLimits) -> bool {
    names.len() <= limits.max_names
        && names
            .iter()
            .all(|n| !n.is_empty() && n.len() <= MAX_NAME_LEN)
}

/// Runs a control frame's body through what a node does with one from a peer: decoding, and
/// the member and name checks, against a fresh member table with the default limits. For the
/// fuzz target of the control stream (`fuzz/fuzz_targets/control_decode.rs`); returns whether
/// the body was taken in.
#[doc(hidden)]
pub fn fuzz_control_body(body: &[u8]) -> bool {
    let limits = super::PeerLimits::default();
    let mut members = Members::new("fuzz");
    match rmp_serde::from_slice::<ControlMsg>(body) {
        Ok(ControlMsg::Members(infos)) => members.learn(&infos, limits.max_members).is_ok(),
        Ok(ControlMsg::Names(names)) => {
            let ok = names_within(&names, &limits);
            if ok {
                let _ = members.set_names("peer", names);
            }
            ok
        }
        Ok(ControlMsg::Leave | ControlMsg::Reject(_)) => true,
        Err(_) => false,
    }
}

fn encode_control(codec: &FrameCodec, msg: &ControlMsg) -> Option<Bytes> {
    let body = rmp_serde::to_vec(msg).ok()?;
    let mut buf = BytesMut::new();
    codec
        .encode(
            &Frame::Control {
                channel: CONTROL_CHANNEL,
                body: Bytes::from(body),
            },
            &mut buf,
        )
        .ok()?;
    Some(buf.freeze())
}

impl NetInner {
    fn emit(&self, event: NodeEvent) {
        match &event {
            NodeEvent::DuplicateName { .. } | NodeEvent::ProtocolError { .. } => {
                tracing::error!(node = %self.node.name(), ?event, "node event")
            }
            NodeEvent::PeerRejected { .. } | NodeEvent::Down { .. } => {
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
        }
    }

    fn advertise(&self) -> SocketAddr {
        self.config.advertise.unwrap_or(self.local_addr)
    }

    fn gossip(&self) -> Option<Bytes> {
        let infos = self
            .members
            .lock()
            .gossip(self.advertise(), self.incarnation);
        encode_control(&self.codec, &ControlMsg::Members(infos))
    }

    /// Queues a control frame for `peer`, disconnecting it if it does not read them.
    fn send_control(&self, peer: &Peer, frame: Bytes) {
        if !peer.send_control(frame) {
            limit_exceeded(self, peer, PeerLimit::ControlQueue);
        }
    }

    fn broadcast_control(&self, frame: &Bytes) {
        let peers: Vec<Arc<Peer>> = self.peers.iter().map(|p| p.value().clone()).collect();
        for peer in peers {
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
        self.encode(Envelope {
            kind,
            target: ActorPath {
                node: node.to_string(),
                name: name.to_string(),
            },
            sender: None,
            msg_type: codec::message_type::<M>(),
            trace: None,
            payload,
        })
    }

    fn queue(&self, node: &str, target: &str, frame: Bytes) -> Result<(), CallError> {
        let peer = self
            .peers
            .get(node)
            .map(|p| p.value().clone())
            .ok_or_else(|| CallError::Unreachable {
                node: node.to_string(),
            })?;
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
                        request_id,
                        msg_type: env.msg_type.clone(),
                        max_len: self.config.max_frame_len,
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
                        metrics::counter!("troupe_remote_refused_total", "reason" => "forbidden")
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

/// Sends a cast over the network to `name` on `node`.
pub(crate) fn remote_cast<M: Message>(
    mesh: &MeshInner,
    node: &str,
    name: &str,
    msg: M,
) -> Result<(), CallError> {
    let net = mesh.net_for_send().ok_or_else(|| CallError::Unreachable {
        node: node.to_string(),
    })?;
    if node == net.node.name() {
        // an actor of the sending node itself: no network hop
        return net.node.lookup::<M>(name)?.cast(msg);
    }
    let frame = net.encode_request(EnvelopeKind::Cast, node, name, &msg)?;
    net.queue(node, name, frame)
}

/// Calls `name` on `node` over the network and decodes its reply.
pub(crate) async fn remote_call<M: Message, R: ReplyValue>(
    mesh: &MeshInner,
    node: &str,
    name: &str,
    make: impl FnOnce(Reply<R>) -> M,
    timeout: Duration,
) -> Result<R, CallError> {
    let target = || format!("{node}/{name}");
    let net = mesh.net_for_send().ok_or_else(|| CallError::Unreachable {
        node: node.to_string(),
    })?;
    if node == net.node.name() {
        let local = net.node.lookup::<M>(name)?;
        return Box::pin(local.call(make, timeout)).await;
    }
    let msg = make(Reply::outbound());
    let request_id = net.next_request.fetch_add(1, Ordering::Relaxed);
    let kind = EnvelopeKind::Call {
        request_id,
        timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
    };
    let frame = net.encode_request(kind, node, name, &msg)?;
    let reply = net.pending.insert(request_id, Arc::from(node));
    // whatever ends this call early (its caller dropping the future included) takes its entry
    // out of the table; after an answer the entry is gone already and this does nothing
    let _entry = PendingEntry {
        pending: &net.pending,
        id: request_id,
    };
    net.queue(node, name, frame)?;
    let outcome = tokio::time::timeout(timeout, reply).await;
    match outcome {
        Ok(Ok(Ok(payload))) => {
            crate::addr::with_decode_context(&net.node, || rmp_serde::from_slice::<R>(&payload))
                .map_err(|e| CallError::Decode(format!("reply from {}: {e}", target())))
        }
        Ok(Ok(Err(err))) => Err(match err {
            CallError::Timeout { .. } => CallError::Timeout {
                target: target(),
                after: timeout,
            },
            other => with_target(other, target()),
        }),
        Ok(Err(_)) => Err(CallError::Unreachable {
            node: node.to_string(),
        }),
        Err(_) => Err(CallError::Timeout {
            target: target(),
            after: timeout,
        }),
    }
}

/// A remote call's entry in the pending table, removed when the call ends however it ends.
struct PendingEntry<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Drop for PendingEntry<'_> {
    fn drop(&mut self) {
        self.pending.remove(self.id);
    }
}

/// `err` naming the actor the caller addressed (`node/name`) rather than only its node.
fn with_target(err: CallError, target: String) -> CallError {
    match err {
        CallError::NotFound { .. } => CallError::NotFound { target },
        CallError::Forbidden { .. } => CallError::Forbidden { target },
        CallError::NoReply { .. } => CallError::NoReply { target },
        CallError::Overloaded { limit, .. } => CallError::Overloaded { target, limit },
        CallError::ActorFailed { reason, .. } => CallError::ActorFailed { target, reason },
        other => other,
    }
}

/// Why a frame could not be read off a stream.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// The bytes are not a valid frame.
    #[error(transparent)]
    Wire(WireError),
    /// The stream or connection failed.
    #[error(transparent)]
    Stream(quinn::ReadError),
}

/// Reads the next frame off a stream; `Ok(None)` when the stream ends cleanly.
async fn read_frame(
    codec: &FrameCodec,
    recv: &mut quinn::RecvStream,
    buf: &mut BytesMut,
) -> Result<Option<Frame>, ReadError> {
    loop {
        match codec.decode(buf) {
            Ok(Some(frame)) => return Ok(Some(frame)),
            Ok(None) => {}
            Err(err) => return Err(ReadError::Wire(err)),
        }
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            Ok(None) => return Ok(None),
            Err(e) => return Err(ReadError::Stream(e)),
        }
    }
}

fn cert_check(conn: &quinn::Connection, claimed: &str) -> Result<(), String> {
    let chain =
        tls::peer_chain(conn).ok_or_else(|| "the peer presented no certificate".to_string())?;
    troupe_identity::verify_peer_name(&chain, claimed).map_err(|e| e.to_string())
}

/// Reads the peer's hello, mapping a frame of another protocol version to its reason.
async fn read_hello(
    inner: &NetInner,
    recv: &mut quinn::RecvStream,
    buf: &mut BytesMut,
) -> Result<Hello, RejectReason> {
    let frame = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&inner.codec, recv, buf))
        .await
        .map_err(|_| RejectReason::BadHello("no hello in time".into()))?;
    match frame {
        Ok(Some(Frame::Hello(hello))) => Ok(hello),
        Ok(Some(Frame::Control { channel, body })) if channel == CONTROL_CHANNEL => {
            match rmp_serde::from_slice::<ControlMsg>(&body) {
                Ok(ControlMsg::Reject(reason)) => Err(RejectReason::Refused(reason)),
                _ => Err(RejectReason::BadHello("expected a hello".into())),
            }
        }
        Ok(Some(_)) => Err(RejectReason::BadHello("expected a hello".into())),
        Ok(None) => Err(RejectReason::BadHello(
            "stream closed before the hello".into(),
        )),
        Err(ReadError::Wire(WireError::ProtocolVersion { got, supported })) => {
            Err(RejectReason::ProtocolMismatch {
                ours: supported,
                theirs: got,
            })
        }
        Err(e) => Err(RejectReason::BadHello(e.to_string())),
    }
}

async fn refuse(
    inner: &NetInner,
    conn: &quinn::Connection,
    send: &mut quinn::SendStream,
    node: Option<String>,
    reason: RejectReason,
) {
    if let Some(frame) = encode_control(&inner.codec, &ControlMsg::Reject(reason.to_string())) {
        let _ = send.write_all(&frame).await;
        let _ = send.finish();
        // let the refusal reach the peer before the connection goes
        let _ = tokio::time::timeout(Duration::from_millis(200), send.stopped()).await;
    }
    conn.close(
        quinn::VarInt::from_u32(close::REJECTED),
        reason.to_string().as_bytes(),
    );
    inner.emit(NodeEvent::PeerRejected {
        addr: conn.remote_address(),
        node,
        reason,
    });
}

/// Dials `addr`; `expected` is the node's name when we know it.
pub(crate) async fn dial(
    inner: &Arc<NetInner>,
    addr: SocketAddr,
    expected: Option<&str>,
) -> Result<Arc<Peer>, ConnectError> {
    if inner.shutting_down.load(Ordering::SeqCst) {
        return Err(ConnectError::ShuttingDown);
    }
    let server_name = expected.unwrap_or(troupe_identity::CLUSTER_SERVER_NAME);
    let connecting = inner
        .endpoint
        .connect_with(inner.client_config.clone(), addr, server_name)?;
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(Err(e)) => {
            if tls::is_tls_failure(&e) {
                inner.emit(NodeEvent::PeerRejected {
                    addr,
                    node: expected.map(str::to_string),
                    reason: RejectReason::Tls(e.to_string()),
                });
            }
            return Err(ConnectError::Connection(e));
        }
        Ok(Ok(conn)) => conn,
    };
    let (mut send, mut recv) = conn.open_bi().await?;
    let mut out = BytesMut::new();
    inner.codec.encode(&Frame::Hello(inner.hello()), &mut out)?;
    send.write_all(&out).await?;
    let mut buf = BytesMut::new();
    let hello = match read_hello(inner, &mut recv, &mut buf).await {
        Ok(hello) => hello,
        Err(_) if conn.close_reason().is_some() => {
            if let Some(quinn::ConnectionError::ApplicationClosed(close)) = conn.close_reason()
                && close.error_code == quinn::VarInt::from_u32(close::DUPLICATE)
            {
                // we dialed a node that was dialing us: its connection survives
                let name = String::from_utf8_lossy(&close.reason).into_owned();
                return surviving_peer(inner, &name).await;
            }
            let (reason, error) = match conn.close_reason() {
                // the peer refused our hello and said why
                Some(quinn::ConnectionError::ApplicationClosed(close))
                    if close.error_code == quinn::VarInt::from_u32(close::REJECTED) =>
                {
                    let why = String::from_utf8_lossy(&close.reason).into_owned();
                    let reason = RejectReason::Refused(why);
                    (reason.clone(), ConnectError::Rejected(reason))
                }
                // the server refused our certificate: TLS lets the client finish its side of
                // the handshake, and the refusal arrives as the connection closing (the guard
                // above says there is a close reason)
                other => {
                    let err = other.unwrap_or(quinn::ConnectionError::LocallyClosed);
                    (
                        RejectReason::Tls(err.to_string()),
                        ConnectError::Connection(err),
                    )
                }
            };
            inner.emit(NodeEvent::PeerRejected {
                addr,
                node: expected.map(str::to_string),
                reason,
            });
            return Err(error);
        }
        Err(reason) => {
            if !matches!(reason, RejectReason::Refused(_)) {
                refuse(inner, &conn, &mut send, None, reason.clone()).await;
            } else {
                inner.emit(NodeEvent::PeerRejected {
                    addr,
                    node: expected.map(str::to_string),
                    reason: reason.clone(),
                });
            }
            return Err(ConnectError::Rejected(reason));
        }
    };
    let expect = Expect {
        cluster: &inner.config.cluster,
        me: inner.node.name(),
        protocol: PROTOCOL_VERSION,
        dialed: expected,
    };
    if let Err(reason) = check_hello(&expect, &hello, cert_check(&conn, &hello.node)) {
        refuse(
            inner,
            &conn,
            &mut send,
            Some(hello.node.clone()),
            reason.clone(),
        )
        .await;
        return Err(ConnectError::Rejected(reason));
    }
    Ok(establish(
        inner,
        conn,
        send,
        recv,
        buf,
        hello,
        true,
        Some(addr),
    ))
}

/// Waits (bounded) for the connection that survived a simultaneous dial to be registered.
async fn surviving_peer(inner: &NetInner, name: &str) -> Result<Arc<Peer>, ConnectError> {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        if let Some(peer) = inner.peers.get(name) {
            return Ok(peer.clone());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ConnectError::Timeout);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn accept_loop(inner: Weak<NetInner>) {
    loop {
        let Some(endpoint) = inner.upgrade().map(|i| i.endpoint.clone()) else {
            return;
        };
        let Some(incoming) = endpoint.accept().await else {
            return;
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            let Some(net) = inner.upgrade() else { return };
            let addr = incoming.remote_address();
            let conn = match incoming.await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(cause = %e, %addr, "incoming connection failed");
                    if tls::is_tls_failure(&e) {
                        net.emit(NodeEvent::PeerRejected {
                            addr,
                            node: None,
                            reason: RejectReason::Tls(e.to_string()),
                        });
                    }
                    return;
                }
            };
            accept(&net, conn).await;
        });
    }
}

async fn accept(inner: &Arc<NetInner>, conn: quinn::Connection) {
    let Ok(Ok((mut send, mut recv))) =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.accept_bi()).await
    else {
        conn.close(
            quinn::VarInt::from_u32(close::PROTOCOL_ERROR),
            b"no handshake",
        );
        return;
    };
    let mut buf = BytesMut::new();
    let hello = match read_hello(inner, &mut recv, &mut buf).await {
        Ok(hello) => hello,
        Err(reason) => {
            refuse(inner, &conn, &mut send, None, reason).await;
            return;
        }
    };
    let expect = Expect {
        cluster: &inner.config.cluster,
        me: inner.node.name(),
        protocol: PROTOCOL_VERSION,
        dialed: None,
    };
    if let Err(reason) = check_hello(&expect, &hello, cert_check(&conn, &hello.node)) {
        refuse(inner, &conn, &mut send, Some(hello.node.clone()), reason).await;
        return;
    }
    let mut out = BytesMut::new();
    if inner
        .codec
        .encode(&Frame::Hello(inner.hello()), &mut out)
        .is_err()
        || send.write_all(&out).await.is_err()
    {
        return;
    }
    establish(inner, conn, send, recv, buf, hello, false, None);
}

/// Registers a handshaken connection (resolving duplicates), starts its tasks and gossips.
#[allow(clippy::too_many_arguments)]
fn establish(
    inner: &Arc<NetInner>,
    conn: quinn::Connection,
    control_send: quinn::SendStream,
    control_recv: quinn::RecvStream,
    control_buf: BytesMut,
    hello: Hello,
    dialed_by_me: bool,
    dialed_addr: Option<SocketAddr>,
) -> Arc<Peer> {
    let name: Arc<str> = Arc::from(hello.node.as_str());
    let (control_tx, control_rx) = mpsc::channel(inner.config.limits.control_queue.max(1));
    let peer = Peer::new(
        name.clone(),
        hello.incarnation,
        conn.clone(),
        inner.config.lanes,
        inner.config.lane_buffer,
        inner.config.large_message_threshold,
        inner.codec,
        control_tx,
        inner.spinner.clone(),
    );
    let mut replaced = None;
    {
        let me = inner.node.name();
        let entry = inner.peers.entry(name.clone());
        match entry {
            dashmap::mapref::entry::Entry::Occupied(mut existing) => {
                let old = existing.get().clone();
                let same_incarnation = old.incarnation == hello.incarnation;
                let dialer_new = if dialed_by_me { me } else { &*name };
                let other_new = if dialed_by_me { &*name } else { me };
                let new_wins = !same_incarnation
                    || old.conn.close_reason().is_some()
                    || keeps_connection_dialed_by(dialer_new, other_new);
                if !new_wins {
                    // the reason names us, so a dialer that did not know whom it dialed can
                    // find the surviving connection
                    conn.close(quinn::VarInt::from_u32(close::DUPLICATE), me.as_bytes());
                    return old;
                }
                existing.insert(peer.clone());
                replaced = Some(old);
            }
            dashmap::mapref::entry::Entry::Vacant(v) => {
                v.insert(peer.clone());
            }
        }
    }
    if let Some(old) = replaced {
        old.conn.close(
            quinn::VarInt::from_u32(close::DUPLICATE),
            inner.node.name().as_bytes(),
        );
        if old.incarnation != hello.incarnation {
            inner.pending.sweep_node(&name);
        }
    }
    let addr = dialed_addr;
    let events = inner.members.lock().up(&name, hello.incarnation, addr);
    let restarted_or_new = !events.is_empty();
    for event in events {
        inner.emit(event);
    }
    tokio::spawn(write_control(control_send, control_rx));
    tokio::spawn(read_control(
        Arc::downgrade(inner),
        Arc::downgrade(&peer),
        control_recv,
        control_buf,
    ));
    tokio::spawn(accept_streams(Arc::downgrade(inner), Arc::downgrade(&peer)));
    tokio::spawn(watch_connection(Arc::downgrade(inner), peer.clone()));
    // introduce ourselves: our view of the cluster and our names
    if let Some(frame) = inner.gossip() {
        if restarted_or_new {
            inner.broadcast_control(&frame);
        } else {
            inner.send_control(&peer, frame);
        }
    }
    let names = inner.node.inner.registry.exposed_names();
    if let Some(frame) = encode_control(&inner.codec, &ControlMsg::Names(names)) {
        inner.send_control(&peer, frame);
    }
    peer
}

async fn write_control(mut send: quinn::SendStream, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(frame) = rx.recv().await {
        let mut batch = vec![frame];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        if send.write_all_chunks(&mut batch).await.is_err() {
            return;
        }
    }
}

/// Disconnects `peer` for going past `limit`, telling it which (its side logs the reason).
fn limit_exceeded(inner: &NetInner, peer: &Peer, limit: PeerLimit) {
    if peer.conn.close_reason().is_some() {
        return;
    }
    tracing::error!(peer = %peer.name, %limit, "peer went past a limit; closing the connection");
    metrics::counter!("troupe_remote_limit_exceeded_total", "limit" => limit.as_str()).increment(1);
    peer.conn.close(
        quinn::VarInt::from_u32(close::LIMIT),
        limit.as_str().as_bytes(),
    );
    inner.emit(NodeEvent::LimitExceeded {
        node: peer.name.to_string(),
        limit,
    });
}

fn protocol_error(inner: &NetInner, peer: &Peer, cause: String) {
    tracing::error!(cause = %cause, peer = %peer.name, "malformed traffic; closing the connection");
    peer.conn.close(
        quinn::VarInt::from_u32(close::PROTOCOL_ERROR),
        cause.as_bytes(),
    );
    inner.emit(NodeEvent::ProtocolError {
        node: peer.name.to_string(),
        cause,
    });
}

async fn read_control(
    inner: Weak<NetInner>,
    peer: Weak<Peer>,
    mut recv: quinn::RecvStream,
    mut buf: BytesMut,
) {
    let Some(codec) = inner.upgrade().map(|i| i.codec) else {
        return;
    };
    loop {
        let frame = read_frame(&codec, &mut recv, &mut buf).await;
        let (Some(inner), Some(peer)) = (inner.upgrade(), peer.upgrade()) else {
            return;
        };
        let body = match frame {
            Ok(Some(Frame::Control { channel, body })) if channel == CONTROL_CHANNEL => body,
            Ok(Some(_)) => {
                protocol_error(
                    &inner,
                    &peer,
                    "unexpected frame on the control stream".into(),
                );
                return;
            }
            Ok(None) => return,
            Err(cause) => {
                if peer.conn.close_reason().is_none() {
                    protocol_error(&inner, &peer, cause.to_string());
                }
                return;
            }
        };
        match rmp_serde::from_slice::<ControlMsg>(&body) {
            Ok(ControlMsg::Members(infos)) => {
                let learned = inner
                    .members
                    .lock()
                    .learn(&infos, inner.config.limits.max_members);
                let Ok((dial_list, changed)) = learned else {
                    limit_exceeded(&inner, &peer, PeerLimit::Members);
                    return;
                };
                if changed {
                    // pass news on, so members that joined through different seeds meet
                    if let Some(frame) = inner.gossip() {
                        inner.broadcast_control(&frame);
                    }
                }
                for (name, addr) in dial_list {
                    if inner.peers.contains_key(name.as_str()) {
                        continue;
                    }
                    let inner = inner.clone();
                    tokio::spawn(async move {
                        if let Err(e) = dial(&inner, addr, Some(&name)).await {
                            tracing::debug!(cause = %e, %name, %addr, "dial from gossip failed");
                            reconnect(Arc::downgrade(&inner), name).await;
                        }
                    });
                }
            }
            Ok(ControlMsg::Names(names)) => {
                if !names_within(&names, &inner.config.limits) {
                    limit_exceeded(&inner, &peer, PeerLimit::Names);
                    return;
                }
                let events = inner.members.lock().set_names(&peer.name, names);
                for e in events {
                    inner.emit(e);
                }
            }
            Ok(ControlMsg::Leave) => {
                peer.left.store(true, Ordering::SeqCst);
            }
            Ok(ControlMsg::Reject(reason)) => {
                tracing::warn!(%reason, peer = %peer.name, "peer refused us");
            }
            Err(e) => {
                protocol_error(&inner, &peer, format!("bad control message: {e}"));
                return;
            }
        }
    }
}

async fn accept_streams(inner: Weak<NetInner>, peer: Weak<Peer>) {
    loop {
        let Some(conn) = peer.upgrade().map(|p| p.conn.clone()) else {
            return;
        };
        let Ok(mut recv) = conn.accept_uni().await else {
            return;
        };
        let (inner, peer) = (inner.clone(), peer.clone());
        tokio::spawn(async move {
            let mut head = [0u8; 1];
            if recv.read_exact(&mut head).await.is_err() {
                return;
            }
            match head[0] {
                STREAM_LANE => {
                    let mut index = [0u8; 1];
                    if recv.read_exact(&mut index).await.is_ok() {
                        read_lane(inner, peer, recv).await;
                    }
                }
                STREAM_LARGE => read_large(inner, peer, recv).await,
                other => {
                    if let (Some(i), Some(p)) = (inner.upgrade(), peer.upgrade()) {
                        protocol_error(&i, &p, format!("unknown stream kind {other}"));
                    }
                }
            }
        });
    }
}

async fn read_lane(inner: Weak<NetInner>, peer: Weak<Peer>, mut recv: quinn::RecvStream) {
    let Some(codec) = inner.upgrade().map(|i| i.codec) else {
        return;
    };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let chunk = recv.read_chunk(256 * 1024, true).await;
        let (Some(net), Some(p)) = (inner.upgrade(), peer.upgrade()) else {
            return;
        };
        if let Some(spinner) = &net.spinner {
            spinner.touch();
        }
        match chunk {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            Ok(None) | Err(_) => return,
        }
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(Frame::Envelope(env))) => net.dispatch(&p, env),
                Ok(Some(Frame::LargeMarker { stream_seq })) => {
                    // later messages on this lane wait for the large one: per-pair order
                    let deadline = net.config.limits.large_message_deadline;
                    match tokio::time::timeout(deadline, p.large(stream_seq)).await {
                        Ok(Some(env)) => net.dispatch(&p, env),
                        Ok(None) => return,
                        Err(_) => {
                            limit_exceeded(&net, &p, PeerLimit::LargeDeadline);
                            return;
                        }
                    }
                }
                Ok(Some(_)) => {
                    protocol_error(&net, &p, "unexpected frame on a lane".into());
                    return;
                }
                Ok(None) => break,
                Err(err) => {
                    protocol_error(&net, &p, err.to_string());
                    return;
                }
            }
        }
    }
}

async fn read_large(inner: Weak<NetInner>, peer: Weak<Peer>, mut recv: quinn::RecvStream) {
    let (Some(net), Some(p)) = (inner.upgrade(), peer.upgrade()) else {
        return;
    };
    let limits = &net.config.limits;
    // counted while it is read, and while it waits for its marker
    let reading = StreamCount::enter(&p.large_streams);
    if reading.count + p.large_waiting() > limits.max_large_in_flight {
        limit_exceeded(&net, &p, PeerLimit::LargeInFlight);
        return;
    }
    let (deadline, limit) = (limits.large_message_deadline, net.config.max_frame_len + 16);
    let read = tokio::time::timeout(deadline, async {
        let mut seq = [0u8; 8];
        recv.read_exact(&mut seq).await.map_err(|e| e.to_string())?;
        let bytes = recv.read_to_end(limit).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((u64::from_be_bytes(seq), bytes))
    })
    .await;
    drop(reading);
    let (seq, bytes) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => {
            protocol_error(&net, &p, format!("large message stream: {e}"));
            return;
        }
        Err(_) => {
            limit_exceeded(&net, &p, PeerLimit::LargeDeadline);
            return;
        }
    };
    if p.large_waiting() >= limits.max_large_in_flight {
        limit_exceeded(&net, &p, PeerLimit::LargeInFlight);
        return;
    }
    let mut buf = BytesMut::from(&bytes[..]);
    match net.codec.decode(&mut buf) {
        Ok(Some(Frame::Envelope(env))) if buf.is_empty() => p.large_arrived(seq, env),
        Ok(_) => protocol_error(&net, &p, "malformed large message stream".into()),
        Err(err) => protocol_error(&net, &p, err.to_string()),
    }
}

/// One more reader of a kind, counted until it is dropped.
struct StreamCount<'a> {
    counter: &'a std::sync::atomic::AtomicUsize,
    /// How many, this one included, when it entered.
    count: usize,
}

impl<'a> StreamCount<'a> {
    fn enter(counter: &'a std::sync::atomic::AtomicUsize) -> Self {
        let count = counter.fetch_add(1, Ordering::Relaxed) + 1;
        Self { counter, count }
    }
}

impl Drop for StreamCount<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Waits for a connection to end, then reports the peer down or left and starts reconnecting.
async fn watch_connection(inner: Weak<NetInner>, peer: Arc<Peer>) {
    let reason = peer.conn.closed().await;
    let Some(net) = inner.upgrade() else { return };
    let is_current = net
        .peers
        .remove_if(&peer.name, |_, current| Arc::ptr_eq(current, &peer))
        .is_some();
    if !is_current {
        return;
    }
    let swept = net.pending.sweep_node(&peer.name);
    let (left, text) = match &reason {
        quinn::ConnectionError::ApplicationClosed(close)
            if close.error_code == quinn::VarInt::from_u32(close::LEAVE) =>
        {
            (true, "left".to_string())
        }
        quinn::ConnectionError::ApplicationClosed(close)
            if close.error_code == quinn::VarInt::from_u32(close::DUPLICATE) =>
        {
            // the surviving connection replaces this one; nothing to report
            return;
        }
        quinn::ConnectionError::ApplicationClosed(close)
            if close.error_code == quinn::VarInt::from_u32(close::LIMIT) =>
        {
            let limit = String::from_utf8_lossy(&close.reason);
            tracing::warn!(peer = %peer.name, %limit, "the peer cut us off: we went past its limit");
            (false, format!("went past the peer's limit {limit}"))
        }
        other => (peer.left.load(Ordering::SeqCst), other.to_string()),
    };
    tracing::info!(peer = %peer.name, reason = %text, swept, "connection ended");
    let event = if left {
        net.members.lock().left(&peer.name)
    } else {
        net.members.lock().down(&peer.name, &text)
    };
    if let Some(event) = event {
        net.emit(event);
    }
    if !left && !net.shutting_down.load(Ordering::SeqCst) {
        tokio::spawn(reconnect(inner, peer.name.to_string()));
    }
}

/// Redials a lost peer with exponential backoff until it is connected again (by either side),
/// has left, or this node shuts down.
async fn reconnect(inner: Weak<NetInner>, name: String) {
    let mut delay = match inner.upgrade() {
        Some(net) => net.config.reconnect_backoff.0,
        None => return,
    };
    let mut attempts = 0u32;
    loop {
        tokio::time::sleep(delay).await;
        let Some(net) = inner.upgrade() else { return };
        if net.shutting_down.load(Ordering::SeqCst)
            || net.peers.contains_key(name.as_str())
            || net.members.lock().status(&name) == Some(MemberStatus::Left)
        {
            return;
        }
        let Some(addr) = net.members.lock().addr_of(&name) else {
            return;
        };
        match dial(&net, addr, Some(&name)).await {
            Ok(_) => return,
            Err(e) => tracing::debug!(cause = %e, %name, %addr, "reconnect failed"),
        }
        attempts += 1;
        if attempts >= net.config.limits.max_gossip_dials
            && net.members.lock().forget_hearsay(&name)
        {
            // only ever named in gossip, never reached: not dialled forever
            tracing::warn!(%name, %addr, attempts, "a member named in gossip never answered; forgetting it");
            return;
        }
        delay = (delay * 2).min(net.config.reconnect_backoff.1);
    }
}

/// Dials a seed until it answers once (it may start after us).
async fn join_seed(inner: Weak<NetInner>, seed: SocketAddr) {
    let mut delay = Duration::from_millis(50);
    loop {
        let Some(net) = inner.upgrade() else { return };
        if net.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        match dial(&net, seed, None).await {
            Ok(peer) => {
                tracing::info!(%seed, peer = %peer.name, "joined through seed");
                return;
            }
            Err(ConnectError::Rejected(reason)) => {
                tracing::error!(%seed, %reason, "seed refused us");
                return;
            }
            Err(e) => tracing::debug!(cause = %e, %seed, "seed not reachable yet"),
        }
        let max = net.config.reconnect_backoff.1;
        drop(net);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(max);
    }
}

/// Publishes this node's registered names to every peer whenever they change.
async fn publish_names(inner: Weak<NetInner>) {
    let Some(mut changes) = inner.upgrade().map(|i| i.node.inner.registry.changes()) else {
        return;
    };
    loop {
        if changes.changed().await.is_err() {
            return;
        }
        // coalesce bursts of registrations into one update
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Some(net) = inner.upgrade() else { return };
        let names = net.node.inner.registry.exposed_names();
        let events = net.members.lock().set_my_names(names.iter().cloned());
        for e in events {
            net.emit(e);
        }
        if let Some(frame) = encode_control(&net.codec, &ControlMsg::Names(names)) {
            net.broadcast_control(&frame);
        }
    }
}
