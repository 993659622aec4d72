//! One authenticated connection to a peer node: its outbound lanes (bounded buffers drained in
//! batches by one writer task each), its inbound readers, and replies to its calls.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use troupe_wire::{
    ActorPath, Envelope, EnvelopeKind, Frame, FrameCodec, MessageType, RemoteErrorCode,
    ReplyOutcome,
};

use crate::error::CallError;
use crate::message::ReplyFailure;
use crate::remote::NetInner;
use crate::remote::spin::Spinner;

/// First byte of every unidirectional stream: what the stream carries.
pub(crate) const STREAM_LANE: u8 = 0;
/// A stream carrying one large message, followed by its `u64` sequence number.
pub(crate) const STREAM_LARGE: u8 = 1;

/// How much a lane writer gathers before one write.
const BATCH_BYTES: usize = 64 * 1024;

/// One item in a lane's outbound buffer: an encoded frame, or one too large for the lane.
pub(crate) enum Outbound {
    Frame(Bytes),
    Large(Bytes),
}

/// Why a frame could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum QueueError {
    /// The lane buffer is full.
    Full(usize),
    /// The connection is gone.
    Closed,
}

enum LargeIn {
    Arrived(Box<Envelope>),
    Waiting(oneshot::Sender<Envelope>),
}

/// A connected peer.
pub(crate) struct Peer {
    pub(crate) name: Arc<str>,
    pub(crate) incarnation: u64,
    pub(crate) conn: quinn::Connection,
    lanes: Vec<mpsc::Sender<Outbound>>,
    lane_capacity: usize,
    control: mpsc::Sender<Bytes>,
    large_threshold: usize,
    large_out: AtomicU64,
    large_in: Mutex<HashMap<u64, LargeIn>>,
    /// Large-message streams being read now.
    pub(crate) large_streams: AtomicUsize,
    /// The streams this node opened on the connection that are open now (lanes and large
    /// messages).
    pub(crate) streams_out: OpenStreams,
    /// The streams the peer opened on the connection that this node reads now.
    pub(crate) streams_in: OpenStreams,
    /// Messages written to the peer's lanes (a large one counts once).
    pub(crate) frames_sent: Arc<AtomicU64>,
    /// Messages read from the peer's lanes (a large one counts once).
    pub(crate) frames_received: AtomicU64,
    /// The peer announced it is leaving.
    pub(crate) left: AtomicBool,
    /// This connection was replaced by another to the same peer, or ended.
    pub(crate) retired: AtomicBool,
    /// The membership protocol declared the peer (at this connection's incarnation) down:
    /// sends to it fail `Unreachable` at once while nothing more comes in on the connection
    /// (see [`Peer::refuses_sends`]).
    pub(crate) declared_down: AtomicBool,
    /// UDP datagrams received on the connection when the peer was declared down.
    pub(crate) rx_when_down: AtomicU64,
    pub(crate) codec: FrameCodec,
    /// Told about every batch written (see `NetConfig::spin_after_traffic`).
    spinner: Option<Arc<Spinner>>,
    /// How replies to this peer's calls find it again, shared by every call it sends.
    pub(crate) route: Arc<ReplyRoute>,
    /// Who dialed this connection.
    pub(crate) origin: Origin,
}

/// Who dialed a connection: this node or the peer, and the dialer's number for the dial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) dialed_by_me: bool,
    pub(crate) dial: u64,
}

/// How a reply finds its caller: the calling node and incarnation, and the endpoint whose
/// connection to it may have replaced the one the call came in on.
pub(crate) struct ReplyRoute {
    node: Arc<str>,
    incarnation: u64,
    net: Weak<NetInner>,
    /// The longest reply frame this endpoint sends.
    max_len: usize,
}

impl Peer {
    /// The membership protocol declared the peer down: sends fail at once from now on, unless
    /// the connection shows it alive after all.
    pub(crate) fn declare_down(&self) {
        self.rx_when_down
            .store(self.conn.stats().udp_rx.datagrams, Ordering::Relaxed);
        self.declared_down.store(true, Ordering::Release);
    }

    /// Whether sends to the peer are refused: it was declared down, and nothing came in on the
    /// connection since (a corpse whose link lingers until QUIC's idle timeout). Anything
    /// received since (a process that stalled and woke, a peer declared down by mistake under
    /// load) lifts it at once, before the membership protocol has caught up.
    pub(crate) fn refuses_sends(&self) -> bool {
        if !self.declared_down.load(Ordering::Acquire) {
            return false;
        }
        if self.conn.stats().udp_rx.datagrams > self.rx_when_down.load(Ordering::Relaxed) {
            self.declared_down.store(false, Ordering::Release);
            return false;
        }
        true
    }

    /// Sets up lanes and their writer tasks; `control_tx` feeds the control stream writer.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: Arc<str>,
        incarnation: u64,
        conn: quinn::Connection,
        lanes: usize,
        lane_capacity: usize,
        large_threshold: usize,
        codec: FrameCodec,
        control: mpsc::Sender<Bytes>,
        spinner: Option<Arc<Spinner>>,
        net: Weak<NetInner>,
        max_reply_len: usize,
        origin: Origin,
    ) -> Arc<Self> {
        let mut senders = Vec::with_capacity(lanes);
        let mut receivers = Vec::with_capacity(lanes);
        for _ in 0..lanes.max(1) {
            let (tx, rx) = mpsc::channel(lane_capacity.max(1));
            senders.push(tx);
            receivers.push(rx);
        }
        let route = Arc::new(ReplyRoute {
            node: name.clone(),
            incarnation,
            net,
            max_len: max_reply_len,
        });
        let peer = Arc::new(Self {
            name,
            incarnation,
            conn,
            lanes: senders,
            lane_capacity,
            control,
            large_threshold,
            large_out: AtomicU64::new(0),
            large_in: Mutex::new(HashMap::new()),
            large_streams: AtomicUsize::new(0),
            streams_out: OpenStreams::default(),
            streams_in: OpenStreams::default(),
            frames_sent: Arc::default(),
            frames_received: AtomicU64::new(0),
            left: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            declared_down: AtomicBool::new(false),
            rx_when_down: AtomicU64::new(0),
            codec,
            spinner,
            route,
            origin,
        });
        for (index, rx) in receivers.into_iter().enumerate() {
            tokio::spawn(write_lane(Arc::downgrade(&peer), index as u8, rx));
        }
        peer
    }

    /// The lane for messages to `target`: every message to one receiver takes the same lane.
    pub(crate) fn lane_for(&self, target: &str) -> usize {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        target.hash(&mut h);
        (h.finish() % self.lanes.len() as u64) as usize
    }

    /// Queues an encoded frame on `lane` without waiting.
    pub(crate) fn send(&self, lane: usize, frame: Bytes) -> Result<(), QueueError> {
        let item = if frame.len() > self.large_threshold {
            Outbound::Large(frame)
        } else {
            Outbound::Frame(frame)
        };
        let lane = &self.lanes[lane % self.lanes.len()];
        lane.try_send(item).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => QueueError::Full(self.lane_capacity),
            mpsc::error::TrySendError::Closed(_) => QueueError::Closed,
        })
    }

    /// Queues an encoded control frame; `false` if the peer's control queue is full (it does
    /// not read what it is sent: the caller disconnects it).
    #[must_use]
    pub(crate) fn send_control(&self, frame: Bytes) -> bool {
        match self.control.try_send(frame) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => true,
            Err(mpsc::error::TrySendError::Full(_)) => false,
        }
    }

    /// Large messages announced or arriving and not yet handed on.
    pub(crate) fn large_waiting(&self) -> usize {
        self.large_in.lock().len()
    }

    /// Waits for large message `seq` (its marker was read on a lane).
    pub(crate) async fn large(&self, seq: u64) -> Option<Envelope> {
        let rx = {
            let mut map = self.large_in.lock();
            match map.remove(&seq) {
                Some(LargeIn::Arrived(env)) => return Some(*env),
                Some(LargeIn::Waiting(_)) | None => {
                    let (tx, rx) = oneshot::channel();
                    map.insert(seq, LargeIn::Waiting(tx));
                    rx
                }
            }
        };
        rx.await.ok()
    }

    /// Large message `seq` arrived on its own stream.
    pub(crate) fn large_arrived(&self, seq: u64, env: Envelope) {
        let mut map = self.large_in.lock();
        match map.remove(&seq) {
            Some(LargeIn::Waiting(tx)) => {
                let _ = tx.send(env);
            }
            _ => {
                map.insert(seq, LargeIn::Arrived(Box::new(env)));
            }
        }
    }
}

/// How many streams of one connection, one way, are open now: each [`OpenStream`] counts
/// while it lives (it holds the count, not the connection, so a stream's task never keeps its
/// connection's state alive).
#[derive(Debug, Default)]
pub(crate) struct OpenStreams(Arc<AtomicUsize>);

impl OpenStreams {
    /// Counts one more stream until the guard is dropped.
    pub(crate) fn open(&self) -> OpenStream {
        self.0.fetch_add(1, Ordering::Relaxed);
        OpenStream(self.0.clone())
    }

    /// How many are open now.
    pub(crate) fn now(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// One open stream, counted in its [`OpenStreams`] until dropped.
pub(crate) struct OpenStream(Arc<AtomicUsize>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Drains one lane: opens its stream, then writes whatever is queued in batches.
async fn write_lane(peer: Weak<Peer>, index: u8, mut rx: mpsc::Receiver<Outbound>) {
    // what the lane needs of its connection, taken once: no look-up per batch
    let Some((conn, _open, spinner, frames_sent)) = peer.upgrade().map(|p| {
        let open = p.streams_out.open();
        (
            p.conn.clone(),
            open,
            p.spinner.clone(),
            p.frames_sent.clone(),
        )
    }) else {
        return;
    };
    let Ok(mut stream) = conn.open_uni().await else {
        return;
    };
    if stream.write_all(&[STREAM_LANE, index]).await.is_err() {
        return;
    }
    // Frames are copied into one buffer per batch: quinn keeps every chunk it is handed as a
    // segment and rescans them per packet, so many small chunks cost far more than one copy.
    let mut batch = BytesMut::with_capacity(BATCH_BYTES);
    while let Some(first) = rx.recv().await {
        if let Some(spinner) = &spinner {
            spinner.touch();
        }
        let mut next = Some(first);
        let mut frames = 0u64;
        while let Some(item) = next.take() {
            frames += 1;
            match item {
                Outbound::Frame(frame) => batch.extend_from_slice(&frame),
                Outbound::Large(frame) => {
                    let Some(peer) = peer.upgrade() else { return };
                    let seq = peer.large_out.fetch_add(1, Ordering::Relaxed);
                    let mut marker = BytesMut::new();
                    if peer
                        .codec
                        .encode(&Frame::LargeMarker { stream_seq: seq }, &mut marker)
                        .is_err()
                    {
                        continue;
                    }
                    batch.extend_from_slice(&marker);
                    // the message's own stream: the lane moves on while it is written
                    let conn = conn.clone();
                    let open = peer.streams_out.open();
                    tokio::spawn(async move {
                        let _open = open;
                        if let Ok(mut s) = conn.open_uni().await {
                            let mut head = vec![STREAM_LARGE];
                            head.extend_from_slice(&seq.to_be_bytes());
                            let mut chunks = [Bytes::from(head), frame];
                            if s.write_all_chunks(&mut chunks).await.is_ok() {
                                let _ = s.finish();
                            }
                        }
                    });
                }
            }
            if batch.len() < BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        frames_sent.fetch_add(frames, Ordering::Relaxed);
        if stream.write_chunk(batch.split().freeze()).await.is_err() {
            return;
        }
    }
}

/// Answers one call from a peer: encodes the reply and sends it back on a lane.
pub(crate) struct Replier {
    /// The connection the call came in on (weak: a call waiting in a mailbox must not keep a
    /// connection, and with it its endpoint's socket, open).
    pub(crate) peer: Weak<Peer>,
    /// Where to send the reply if that connection is gone.
    pub(crate) route: Arc<ReplyRoute>,
    pub(crate) request_id: u64,
    pub(crate) msg_type: MessageType,
}

impl Replier {
    /// Sends the handler's answer (or why there is none) back to the caller's node.
    pub(crate) fn answer<R: Serialize>(self, result: Result<R, ReplyFailure>) {
        let (outcome, payload) = match result {
            Ok(reply) => match crate::codec::encode_message(&reply, self.route.max_len) {
                Ok(payload) => (ReplyOutcome::Ok, payload),
                Err(err) => (error_outcome(&err), Bytes::new()),
            },
            Err(ReplyFailure::Dropped) => (
                ReplyOutcome::Err {
                    code: RemoteErrorCode::Other,
                    detail: NO_REPLY.into(),
                },
                Bytes::new(),
            ),
            Err(ReplyFailure::Failed(reason)) => (
                ReplyOutcome::Err {
                    code: RemoteErrorCode::ActorFailed,
                    detail: reason.to_string(),
                },
                Bytes::new(),
            ),
            Err(ReplyFailure::Refused(err)) => (error_outcome(&err), Bytes::new()),
        };
        self.send(outcome, payload);
    }

    /// Sends a refusal (the call never reached an actor).
    pub(crate) fn refuse(self, err: &CallError) {
        self.send(error_outcome(err), Bytes::new());
    }

    fn send(self, outcome: ReplyOutcome, payload: Bytes) {
        // When both nodes dial each other at once (as after a partition heals), one of the two
        // connections is closed as a duplicate; a call that came in on it just before is
        // answered on the survivor (the caller matches a reply by request id and node, not by
        // connection).
        let peer = match self.peer.upgrade() {
            Some(peer) if !peer.retired.load(Ordering::Acquire) => peer,
            _ => {
                let route = &self.route;
                let survivor = route
                    .net
                    .upgrade()
                    .and_then(|net| net.connected_peer(&route.node, route.incarnation));
                match survivor {
                    Some(peer) => peer,
                    None => {
                        tracing::debug!(caller = %route.node, "reply dropped: the caller is not connected");
                        return;
                    }
                }
            }
        };
        let env = Envelope {
            kind: EnvelopeKind::Reply {
                request_id: self.request_id,
                outcome,
            },
            target: ActorPath {
                node: peer.name.to_string(),
                name: String::new(),
            },
            sender: None,
            msg_type: self.msg_type,
            trace: None,
            payload,
        };
        let mut buf = BytesMut::new();
        if let Err(err) = peer.codec.encode(&Frame::Envelope(env), &mut buf) {
            tracing::warn!(cause = %err, peer = %peer.name, "reply not encodable");
            return;
        }
        let lane = (self.request_id % 1024) as usize;
        if let Err(err) = peer.send(lane, buf.freeze()) {
            tracing::debug!(?err, peer = %peer.name, "reply dropped");
        }
    }
}

/// The detail text that marks a reply handle dropped unanswered.
pub(crate) const NO_REPLY: &str = "the actor dropped the reply handle without answering";

/// How a local error travels back to a remote caller.
pub(crate) fn error_outcome(err: &CallError) -> ReplyOutcome {
    let code = match err {
        CallError::NotFound { .. } => RemoteErrorCode::NotFound,
        CallError::Decode(_) | CallError::WrongType { .. } => RemoteErrorCode::Decode,
        CallError::ActorFailed { .. } => RemoteErrorCode::ActorFailed,
        CallError::Overloaded { .. } => RemoteErrorCode::Overloaded,
        CallError::TooLarge { .. } => RemoteErrorCode::TooLarge,
        CallError::Timeout { .. } => RemoteErrorCode::Timeout,
        CallError::Forbidden { .. } => RemoteErrorCode::Forbidden,
        CallError::NoReply { .. } => {
            return ReplyOutcome::Err {
                code: RemoteErrorCode::Other,
                detail: NO_REPLY.into(),
            };
        }
        _ => RemoteErrorCode::Other,
    };
    ReplyOutcome::Err {
        code,
        detail: err.to_string(),
    }
}

/// How a remote error arrives at the local caller.
pub(crate) fn remote_error(target: &str, code: RemoteErrorCode, detail: String) -> CallError {
    let target = target.to_string();
    match code {
        RemoteErrorCode::NotFound => CallError::NotFound { target },
        RemoteErrorCode::Forbidden => CallError::Forbidden { target },
        RemoteErrorCode::Decode | RemoteErrorCode::UnknownType => CallError::Decode(detail),
        RemoteErrorCode::Overloaded => CallError::Overloaded { target, limit: 0 },
        RemoteErrorCode::TooLarge => CallError::TooLarge { len: 0, max: 0 },
        RemoteErrorCode::Timeout => CallError::Timeout {
            target,
            after: std::time::Duration::ZERO,
        },
        RemoteErrorCode::Other if detail == NO_REPLY => CallError::NoReply { target },
        _ => CallError::ActorFailed {
            target,
            reason: detail,
        },
    }
}
