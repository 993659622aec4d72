//! Bodies streamed between the gateway and actors, on this node or another: a route declared
//! with [`Proxy::route_streaming`](crate::Proxy::route_streaming) hands its target an
//! [`HttpStreamRequest`] whose body the target pulls chunk by chunk ([`RequestBody::next`]),
//! and the target may answer with a body it pushes chunk by chunk ([`ResponseBody::send`]).
//!
//! Both directions go through the gateway's body service ([`BodyService`], message type
//! [`BodyMsg`]: the gateway's peer protocol for bodies), an actor beside the gateway that the
//! targets' nodes may reach. Backpressure is built in: a chunk is read from the client only
//! when the target asks for the next one, and a pushed chunk is acknowledged only once the
//! gateway has room for it (4 chunks) on its way to the client, so a slow client slows the
//! target rather than filling memory. One pull and one push of a stream are served at a time
//! (another gets [`BodyStreamError::Busy`]), each waiting at most its caller's timeout and the
//! gateway's body timeout. Each stream is named by a random 128-bit id that only the
//! request's target learns, and lives only as long as its request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use troupe_runtime::{Actor, ActorError, Addr, Ask, CallError, Ctx, Message, Reply, Request};

use crate::body::{BodyError, Guarded};

/// A pulled chunk holds at most this many bytes (frames ready at once are gathered up to it).
pub const MAX_CHUNK: usize = 256 << 10;

/// Pushed chunks that wait for the client, per stream, before a push waits for room.
const RESPONSE_QUEUE: usize = 4;

/// The message type of a streaming target: an [`HttpStreamRequest`] with the port for its
/// [`HttpStreamResponse`].
pub type HttpStreamCall = Ask<HttpStreamRequest>;

/// A request's name among the streams of one gateway: random, known only to the gateway and
/// the request's target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamId([u64; 2]);

impl StreamId {
    fn random() -> Self {
        Self([rand::random(), rand::random()])
    }
}

/// An HTTP request whose body streams: its head as [`HttpRequest`](crate::HttpRequest) has it,
/// the body to pull, and where a streamed response body goes.
#[derive(Clone, Debug, Serialize, Deserialize, Request)]
#[request(name = "troupe.http.StreamRequest", version = 2, response = HttpStreamResponse)]
pub struct HttpStreamRequest {
    /// The method.
    #[serde(with = "crate::wire::method")]
    pub method: Method,
    /// The request target as received (see [`HttpRequest::uri`](crate::HttpRequest::uri)).
    #[serde(with = "crate::wire::uri")]
    pub uri: Uri,
    /// The headers, in the order received.
    #[serde(with = "crate::wire::headers")]
    pub headers: HeaderMap,
    /// The client's IP address, as the gateway saw it.
    pub client: Option<std::net::IpAddr>,
    /// The body, pulled as it arrives (within the gateway's body limit and deadline).
    pub body: RequestBody,
    /// Where to push the response body, when the answer says it is streamed.
    pub response: ResponseBody,
}

impl HttpStreamRequest {
    /// The path, percent-encoded as received, starting with `/`.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The query string without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.uri.query()
    }

    /// The request's host, without port, as the client wrote it (see
    /// [`HttpRequest::host`](crate::HttpRequest::host)).
    pub fn host(&self) -> Option<&str> {
        crate::message::host_of(&self.uri, &self.headers)
    }

    /// The first value of header `name` (any case), if it is there and is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::message::first_header(&self.headers, name)
    }
}

/// What a streaming target answers: a status and headers, and either a whole body or the
/// promise of one pushed through [`HttpStreamRequest::response`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpStreamResponse {
    /// The status.
    #[serde(with = "crate::wire::status")]
    pub status: StatusCode,
    /// The headers.
    #[serde(with = "crate::wire::headers")]
    pub headers: HeaderMap,
    /// The body, or its first bytes when `streamed`.
    pub body: Bytes,
    /// Whether more of the body follows through [`ResponseBody::send`] until
    /// [`ResponseBody::finish`].
    pub streamed: bool,
}

impl HttpStreamResponse {
    /// A whole response, as a non-streaming target would answer.
    pub fn whole(response: crate::HttpResponse) -> Self {
        Self {
            status: response.status,
            headers: response.headers,
            body: response.body,
            streamed: false,
        }
    }

    /// A response whose body the target pushes after answering: answer this first, then
    /// [`ResponseBody::send`] the chunks and [`ResponseBody::finish`].
    pub fn streamed(status: StatusCode, headers: HeaderMap) -> Self {
        Self {
            status,
            headers,
            body: Bytes::new(),
            streamed: true,
        }
    }
}

/// Why a body chunk could not be read or written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum BodyStreamError {
    /// The client's body went over the gateway's limit
    #[error("the request body is over the limit")]
    TooLarge,
    /// The client's body, or the target's pushes, did not come in time
    #[error("the body did not arrive in time")]
    TimedOut,
    /// The client broke off, or went away before the response was sent
    #[error("the client broke off")]
    Broken,
    /// No such stream at the gateway: its request has ended (or the id is wrong)
    #[error("the request's stream has ended")]
    Ended,
    /// Another pull (or push) of this stream is still in progress: one at a time
    #[error("another pull or push of this stream is in progress")]
    Busy,
    /// The gateway could not be reached or did not answer
    #[error("the gateway did not answer: {0}")]
    Call(String),
}

impl From<CallError> for BodyStreamError {
    fn from(err: CallError) -> Self {
        Self::Call(err.to_string())
    }
}

impl From<BodyError> for BodyStreamError {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::TooLarge => Self::TooLarge,
            BodyError::TimedOut => Self::TimedOut,
            BodyError::Broken => Self::Broken,
        }
    }
}

/// The gateway's body service messages: its peer protocol for streamed bodies, sent by
/// streaming targets (through [`RequestBody`] and [`ResponseBody`]) from any node the service
/// is reachable from.
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "troupe.proxy.Body")]
pub enum BodyMsg {
    /// The next chunk of a request body (at most [`MAX_CHUNK`] bytes), `None` at its end.
    Pull {
        /// The stream
        stream: StreamId,
        /// How long the caller waits, in milliseconds: the service waits no longer
        wait_ms: u64,
        /// The answer
        reply: Reply<Result<Option<serde_bytes::ByteBuf>, BodyStreamError>>,
    },
    /// A chunk of a response body (or its end), answered once the gateway has room for it.
    Push {
        /// The stream
        stream: StreamId,
        /// How long the caller waits, in milliseconds: the service waits no longer
        wait_ms: u64,
        /// The bytes
        #[serde(with = "serde_bytes")]
        chunk: Vec<u8>,
        /// Whether this is the last chunk
        end: bool,
        /// The answer
        reply: Reply<Result<(), BodyStreamError>>,
    },
}

/// A streamed request's body, as its target pulls it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RequestBody {
    service: Addr<BodyMsg>,
    stream: StreamId,
    length: Option<u64>,
}

impl RequestBody {
    /// The body's length, if the client declared it.
    pub fn length(&self) -> Option<u64> {
        self.length
    }

    /// The next chunk (at most [`MAX_CHUNK`] bytes), `None` once the body has ended; waits
    /// at most `timeout` for it. Only one chunk is read from the client per call: the client
    /// waits while the target does not ask.
    ///
    /// # Errors
    /// The client's body broke the gateway's limit or deadline, or broke off; the request
    /// has ended; or the gateway did not answer in time.
    ///
    /// Cancelling, or a timeout, leaves the chunk being read for the next call when the
    /// gateway learns that the caller is gone (always on the gateway's node; across nodes,
    /// a chunk already sent is lost with its answer). A body that failed keeps failing.
    pub async fn next(&self, timeout: Duration) -> Result<Option<Bytes>, BodyStreamError> {
        let stream = self.stream;
        let chunk = self
            .service
            .call(
                |reply| BodyMsg::Pull {
                    stream,
                    wait_ms: millis(timeout),
                    reply,
                },
                timeout,
            )
            .await??;
        Ok(chunk.map(|c| Bytes::from(c.into_vec())))
    }

    /// The whole body, at most `limit` bytes, each chunk within `timeout`.
    ///
    /// # Errors
    /// As [`next`](Self::next), and [`BodyStreamError::TooLarge`] past `limit`.
    ///
    /// Cancelling loses what was read.
    pub async fn read_to_end(
        &self,
        limit: usize,
        timeout: Duration,
    ) -> Result<Bytes, BodyStreamError> {
        let mut all = BytesMut::new();
        while let Some(chunk) = self.next(timeout).await? {
            if all.len() + chunk.len() > limit {
                return Err(BodyStreamError::TooLarge);
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all.freeze())
    }
}

/// Where a streamed response body goes, as its target pushes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResponseBody {
    service: Addr<BodyMsg>,
    stream: StreamId,
}

impl ResponseBody {
    /// Sends `chunk` on to the client; returns once the gateway has room for it (so a slow
    /// client slows the sender), within `timeout`. Send chunks one at a time, in order,
    /// after answering [`HttpStreamResponse::streamed`].
    ///
    /// # Errors
    /// The client went away or the request ended ([`BodyStreamError::Ended`],
    /// [`BodyStreamError::Broken`]), or the gateway had no room or no answer within `timeout`.
    ///
    /// Cancelling may or may not have sent the chunk.
    pub async fn send(
        &self,
        chunk: impl Into<Vec<u8>>,
        timeout: Duration,
    ) -> Result<(), BodyStreamError> {
        self.push(chunk.into(), false, timeout).await
    }

    /// Ends the body (the client's response completes).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub async fn finish(&self, timeout: Duration) -> Result<(), BodyStreamError> {
        self.push(Vec::new(), true, timeout).await
    }

    async fn push(
        &self,
        chunk: Vec<u8>,
        end: bool,
        timeout: Duration,
    ) -> Result<(), BodyStreamError> {
        let stream = self.stream;
        self.service
            .call(
                |reply| BodyMsg::Push {
                    stream,
                    wait_ms: millis(timeout),
                    chunk,
                    end,
                    reply,
                },
                timeout,
            )
            .await?
    }
}

/// `timeout` in whole milliseconds, saturating.
fn millis(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}

/// The request body's side of a stream: one pull at a time holds it.
struct Pulling {
    /// The client's body
    body: Guarded<Incoming>,
    /// A chunk read for a pull whose caller had gone: the next pull gets it
    unclaimed_slot: Arc<std::sync::Mutex<Option<Bytes>>>,
}

impl Pulling {
    /// `unclaimed` taken out, if a chunk waits there.
    fn take_unclaimed(&self) -> Option<Bytes> {
        self.unclaimed_slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// One request's stream as the gateway holds it.
struct Slot {
    /// The client's body, read when the target pulls (one pull at a time)
    request: Arc<tokio::sync::Mutex<Pulling>>,
    /// Held by the push in progress (one at a time)
    pushing: Arc<tokio::sync::Mutex<()>>,
    /// Pushed chunks on their way to the client; `None` once the target finished
    response: Option<mpsc::Sender<Bytes>>,
}

/// The streams of one gateway, shared by its server (which opens and closes them) and its
/// body service (which serves them). Survives restarts of either.
#[derive(Default)]
pub(crate) struct Streams {
    slots: Mutex<HashMap<StreamId, Slot>>,
}

/// Removes its stream when dropped: when the request's response has been sent or abandoned.
pub(crate) struct OpenStream {
    streams: Arc<Streams>,
    id: StreamId,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.streams
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl Streams {
    /// Opens a stream for a request with `body`: its id, the guard that closes it, and where
    /// pushed response chunks arrive.
    pub(crate) fn open(
        self: &Arc<Self>,
        body: Guarded<Incoming>,
    ) -> (StreamId, OpenStream, mpsc::Receiver<Bytes>) {
        let id = StreamId::random();
        let (tx, rx) = mpsc::channel(RESPONSE_QUEUE);
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).insert(
            id,
            Slot {
                request: Arc::new(tokio::sync::Mutex::new(Pulling {
                    body,
                    unclaimed_slot: Arc::default(),
                })),
                pushing: Arc::default(),
                response: Some(tx),
            },
        );
        (
            id,
            OpenStream {
                streams: self.clone(),
                id,
            },
            rx,
        )
    }

    /// The body handles a target gets for stream `id`, served by `service`.
    pub(crate) fn handles(
        service: &Addr<BodyMsg>,
        id: StreamId,
        length: Option<u64>,
    ) -> (RequestBody, ResponseBody) {
        (
            RequestBody {
                service: service.clone(),
                stream: id,
                length,
            },
            ResponseBody {
                service: service.clone(),
                stream: id,
            },
        )
    }

    /// The request side of stream `id`, held for one pull; `Busy` while another pull is in
    /// progress.
    fn request(
        &self,
        id: StreamId,
    ) -> Result<tokio::sync::OwnedMutexGuard<Pulling>, BodyStreamError> {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots.get(&id).ok_or(BodyStreamError::Ended)?;
        slot.request
            .clone()
            .try_lock_owned()
            .map_err(|_| BodyStreamError::Busy)
    }

    /// The response sender of stream `id` (taken out of the slot if `end`), held for one
    /// push; `Busy` while another push is in progress.
    fn response(
        &self,
        id: StreamId,
        end: bool,
    ) -> Result<
        (
            Option<mpsc::Sender<Bytes>>,
            tokio::sync::OwnedMutexGuard<()>,
        ),
        BodyStreamError,
    > {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots.get_mut(&id).ok_or(BodyStreamError::Ended)?;
        let held = slot
            .pushing
            .clone()
            .try_lock_owned()
            .map_err(|_| BodyStreamError::Busy)?;
        let sender = if end {
            slot.response.take()
        } else {
            slot.response.clone()
        };
        Ok((sender, held))
    }
}

/// Reads the next chunk of `body`: one frame, and any more already there, up to
/// [`MAX_CHUNK`] bytes.
async fn next_chunk(body: &mut Guarded<Incoming>) -> Result<Option<Bytes>, BodyStreamError> {
    let verdict = body.verdict();
    let failed = || BodyStreamError::from(verdict.get().copied().unwrap_or(BodyError::Broken));
    // a body that failed stays failed: never a clean end for a pull asked again
    if verdict.get().is_some() {
        return Err(failed());
    }
    let mut chunk = BytesMut::new();
    loop {
        let frame = if chunk.is_empty() {
            body.frame().await
        } else {
            match body.frame().now_or_never() {
                Some(frame) => frame,
                None => break,
            }
        };
        match frame {
            None => break,
            Some(Err(_)) => return Err(failed()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    chunk.extend_from_slice(&data);
                }
                if chunk.len() >= MAX_CHUNK {
                    break;
                }
            }
        }
    }
    Ok((!chunk.is_empty()).then(|| chunk.freeze()))
}

/// The gateway's body service: serves [`BodyMsg`] for the streams of its gateway. Add it
/// beside the gateway (a topology does so for a gateway with streaming routes), reachable
/// from the nodes its streaming targets run on.
pub struct BodyService {
    streams: Arc<Streams>,
    /// Pulls and pushes waiting for the client, each bounded by the gateway's body deadline
    /// or the caller's timeout; reaped as messages arrive, aborted with the service.
    waiting: tokio::task::JoinSet<()>,
    wait_limit: Duration,
}

impl BodyService {
    pub(crate) fn new(streams: Arc<Streams>, wait_limit: Duration) -> Self {
        Self {
            streams,
            waiting: tokio::task::JoinSet::new(),
            wait_limit,
        }
    }
}

impl Actor for BodyService {
    type Msg = BodyMsg;

    async fn handle(&mut self, msg: BodyMsg, _: &mut Ctx<BodyMsg>) -> Result<(), ActorError> {
        while self.waiting.try_join_next().is_some() {}
        let limit = self.wait_limit;
        match msg {
            BodyMsg::Pull {
                stream,
                wait_ms,
                reply,
            } => {
                let mut pulling = match self.streams.request(stream) {
                    Ok(pulling) => pulling,
                    Err(err) => {
                        reply.send(Err(err));
                        return Ok(());
                    }
                };
                let wait = limit.min(Duration::from_millis(wait_ms));
                // a client sending slowly must not hold the other streams' messages
                self.waiting.spawn(async move {
                    let read = match pulling.take_unclaimed() {
                        Some(chunk) => Ok(Some(chunk)),
                        None => tokio::time::timeout(wait, next_chunk(&mut pulling.body))
                            .await
                            .unwrap_or(Err(BodyStreamError::TimedOut)),
                    };
                    let unclaimed = pulling.unclaimed_slot.clone();
                    // released before answering, so the caller's next pull finds it free
                    drop(pulling);
                    let chunk = read.as_ref().ok().cloned().flatten();
                    let answer = read.map(|c| c.map(|c| serde_bytes::ByteBuf::from(c.to_vec())));
                    if !reply.send(answer) {
                        // the caller is gone: keep the chunk for its next pull
                        *unclaimed.lock().unwrap_or_else(|p| p.into_inner()) = chunk;
                    }
                });
            }
            BodyMsg::Push {
                stream,
                wait_ms,
                chunk,
                end,
                reply,
            } => {
                let (sender, held) = match self.streams.response(stream, end) {
                    Ok((Some(sender), held)) => (sender, held),
                    // finished already: nothing more goes out
                    Ok((None, _)) => {
                        reply.send(if end {
                            Ok(())
                        } else {
                            Err(BodyStreamError::Ended)
                        });
                        return Ok(());
                    }
                    Err(err) => {
                        reply.send(Err(err));
                        return Ok(());
                    }
                };
                let wait = limit.min(Duration::from_millis(wait_ms));
                self.waiting.spawn(async move {
                    let sent = if chunk.is_empty() {
                        Ok(())
                    } else {
                        match tokio::time::timeout(wait, sender.send(Bytes::from(chunk))).await {
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(_)) => Err(BodyStreamError::Broken),
                            Err(_) => Err(BodyStreamError::TimedOut),
                        }
                    };
                    // the last sender dropped here (on `end`) ends the client's body
                    drop(sender);
                    drop(held);
                    reply.send(sent);
                });
            }
        }
        Ok(())
    }
}
