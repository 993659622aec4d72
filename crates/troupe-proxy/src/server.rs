//! The HTTP server: serves each connection the listener shell admits, asks the routed target
//! with each request as an [`HttpRequest`], and writes the response (or the failure, mapped by
//! [`status_for`]) back.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tracing::Instrument;
use troupe_runtime::TraceParent;
use troupe_runtime::trace::{self, HeadSample};

use bytes::Bytes;
use futures::StreamExt;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use troupe_balancer::{Forwarder, Picked};
use troupe_runtime::listener::{Connection, Drain};
use troupe_runtime::{Addr, Ask};

use tokio::io::AsyncWriteExt;

use crate::access::{AccessLogger, Entry};
use crate::body::{Body, BodyError, Counted, Deadline, Guarded};
use crate::core::{Routes, status_for, upstream_error_kind};
use crate::deadline_io::WriteDeadline;
use crate::head::{HeadError, Replay, read_first_head, refusal};
use crate::message::{HttpCall, HttpRequest, HttpResponse};
use crate::stream::{BodyMsg, HttpStreamCall, HttpStreamRequest, HttpStreamResponse, Streams};
use crate::tunnel::Tunnels;
use crate::upstream::{Forwarded, ForwardingHeaders, Outgoing, SharedUpstream};

/// Where a route's requests go.
pub(crate) enum Target {
    /// An actor, asked with each request as an [`HttpRequest`]
    Actor(Addr<HttpCall>),
    /// An actor that pulls the request body and may push the response body
    Streaming(Addr<HttpStreamCall>),
    /// HTTP servers, through the pooled client
    Http(SharedUpstream),
}

impl Target {
    /// The name routes and metrics know it by.
    pub(crate) fn name(&self) -> &str {
        match self {
            Self::Actor(addr) => addr.name(),
            Self::Streaming(addr) => addr.name(),
            Self::Http(pool) => pool.name(),
        }
    }
}

/// Everything the connection tasks share.
pub(crate) struct Shared {
    pub(crate) routes: Routes,
    pub(crate) targets: Vec<Target>,
    /// Each target's metric handles and name, as metrics and logs label its route
    pub(crate) route_metrics: Vec<RouteMetrics>,
    /// The same for requests refused before routing (route `-`)
    pub(crate) unrouted: RouteMetrics,
    pub(crate) limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    pub(crate) body_limit: usize,
    pub(crate) call_timeout: Duration,
    pub(crate) header_timeout: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) access_log: Option<AccessLogger>,
    pub(crate) tls: Option<Arc<crate::tls::ReloadingTls>>,
    /// The open streams of streaming routes and the body service their targets use
    pub(crate) bodies: Option<(Arc<Streams>, Addr<BodyMsg>)>,
}

impl Shared {
    pub(crate) fn limiter(
        per_second: Option<NonZeroU32>,
    ) -> Option<DefaultKeyedRateLimiter<IpAddr>> {
        per_second.map(|n| RateLimiter::keyed(Quota::per_second(n)))
    }

    /// Forgets the client addresses whose quota is full again (they would start afresh
    /// anyway), so the limiter holds only recently active clients; publishes how many it holds
    /// as `troupe_proxy_rate_limited_addresses`.
    pub(crate) fn prune_limiter(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
            metrics::gauge!("troupe_proxy_rate_limited_addresses").set(limiter.len() as f64);
        }
    }
}

/// The statuses the gateway answers most, each with a counter handle kept per route.
const KNOWN_STATUSES: [u16; 18] = [
    200, 201, 204, 206, 301, 302, 304, 400, 401, 403, 404, 408, 413, 429, 500, 502, 503, 504,
];

/// One route's request counters (by status) and latency histogram.
///
/// Each handle is registered with the `metrics` recorder on its first use and kept, as the
/// `metrics` crate advises for hot paths: its macros build, hash and look up a labelled key on
/// every call. A status outside [`KNOWN_STATUSES`] goes through the macro each time. Like every
/// metric, they reach the recorder installed before the gateway started.
pub(crate) struct RouteMetrics {
    route: Arc<str>,
    latency: OnceLock<metrics::Histogram>,
    requests: [OnceLock<metrics::Counter>; KNOWN_STATUSES.len()],
}

impl RouteMetrics {
    pub(crate) fn new(route: Arc<str>) -> Self {
        Self {
            route,
            latency: OnceLock::new(),
            requests: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The route's name, as metrics and the access log label it.
    pub(crate) fn route(&self) -> &Arc<str> {
        &self.route
    }

    /// Counts one request answered with `status` and records how long it took.
    fn record(&self, status: u16, took: Duration) {
        let register = || {
            metrics::counter!(
                "troupe_proxy_requests_total",
                "status" => status.to_string(),
                "route" => self.route.clone()
            )
        };
        match KNOWN_STATUSES.iter().position(|&known| known == status) {
            Some(i) => self.requests[i].get_or_init(register).increment(1),
            None => register().increment(1),
        }
        self.latency
            .get_or_init(|| {
                metrics::histogram!("troupe_proxy_request_seconds", "route" => self.route.clone())
            })
            .record(took.as_secs_f64());
    }
}

/// What a connection over a limit gets before it is closed: `503` with `connection: close`
/// (an HTTP/1 answer; an HTTP/2 prior-knowledge client sees it as a protocol error, which
/// closes the connection just the same).
pub(crate) fn over_limit_refusal() -> Vec<u8> {
    refusal(503, "too many connections; try again later")
}

/// Serves one connection until it closes, or until `drain` fires and its in-flight requests
/// are answered (the listener shell drops it after the drain timeout); over TLS first if the
/// server has a certificate.
pub(crate) async fn serve_connection(shared: Arc<Shared>, conn: Connection) {
    let Connection {
        stream,
        peer,
        mut drain,
        ..
    } = conn;
    let Some(acceptor) = shared.tls.as_ref().map(|tls| tls.acceptor()) else {
        return serve_stream(shared, stream, peer, drain).await;
    };
    let handshake = tokio::select! {
        done = tokio::time::timeout(shared.header_timeout, acceptor.accept(stream)) => done,
        () = drain.wait() => return,
    };
    match handshake {
        Ok(Ok(tls)) => serve_stream(shared, tls, peer, drain).await,
        Ok(Err(err)) => {
            tracing::debug!(cause = %err, %peer, "TLS handshake failed");
            metrics::counter!("troupe_proxy_tls_handshake_failures_total", "reason" => "refused")
                .increment(1);
        }
        Err(_) => {
            metrics::counter!("troupe_proxy_tls_handshake_failures_total", "reason" => "timeout")
                .increment(1);
        }
    }
}

/// What the requests of one connection share.
struct ConnectionState {
    shared: Arc<Shared>,
    /// The connection's switched-protocol tunnels, which outlive its HTTP exchange
    tunnels: Tunnels,
    /// What its requests to HTTP upstreams add to their forwarding headers, made by the
    /// connection's first request to an HTTP upstream
    forwarding: std::sync::OnceLock<ForwardingHeaders>,
}

/// Serves HTTP on `stream` (plain, or TLS already terminated); see [`serve_connection`].
async fn serve_stream<S>(shared: Arc<Shared>, mut stream: S, peer: SocketAddr, mut drain: Drain)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // check the first request head ourselves, so a malformed one is answered with a
    // text body saying what is wrong
    let head = tokio::select! {
        head = read_first_head(&mut stream, shared.header_timeout) => head,
        () = drain.wait() => return,
    };
    let prefix = match head {
        Ok(prefix) => prefix,
        Err(HeadError::Gone) => return,
        Err(HeadError::Refuse(status, text)) => {
            metrics::counter!("troupe_proxy_requests_total", "status" => status.to_string())
                .increment(1);
            let _ = stream.write_all(&refusal(status, text)).await;
            let _ = stream.shutdown().await;
            return;
        }
    };
    let header_timeout = shared.header_timeout;
    let send_timeout = shared.send_timeout;
    // what this connection's requests share: each request takes a reference to this, not to
    // the server's `Shared`, whose count every connection would bounce between the CPUs
    let state = Arc::new(ConnectionState {
        shared,
        tunnels: Tunnels::default(),
        forwarding: std::sync::OnceLock::new(),
    });
    let service = service_fn({
        let state = state.clone();
        move |req| answer(&state, peer, req)
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(header_timeout)
        .keep_alive_timeout(header_timeout);
    let conn = builder
        .serve_connection_with_upgrades(
            TokioIo::new(Replay::new(
                prefix,
                WriteDeadline::new(stream, send_timeout),
            )),
            service,
        )
        .into_owned();
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = drain.wait() => {
            // answer what is in flight, then close
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = ended {
        tracing::debug!(cause = %err, %peer, "connection ended with an error");
    }
    // a connection that switched protocols lives on as its tunnel, still counted as open;
    // draining (or the listener dropping this task) closes it
    let mut tunnels = std::mem::take(&mut *state.tunnels.lock().unwrap_or_else(|p| p.into_inner()));
    tokio::select! {
        () = async { while tunnels.join_next().await.is_some() {} } => {}
        () = drain.wait() => {}
    }
}

/// A request body of at most this many bytes, its length known up front, is read whole before
/// it goes upstream, so an undelivered idempotent request can be sent again; a larger one, or
/// one of unknown length, streams through.
const READ_WHOLE_UP_TO: u64 = 64 << 10;

/// What hyper awaits for a request: an answer ready at once (a future with no state to move),
/// or the rest of the work, boxed (hyper moves each request's future into its slot, and a
/// pointer moves cheaper than the request's whole state machine).
type Answer = futures::future::Either<
    std::future::Ready<Result<Response<Body>, Infallible>>,
    Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>,
>;

/// Answers `req`: at once when it can — no span to record, an actor route, no body to read,
/// and an answer in place ([`answer_now`]) — and otherwise with a future for the rest.
fn answer(conn: &Arc<ConnectionState>, peer: SocketAddr, req: Request<Incoming>) -> Answer {
    let shared = &conn.shared;
    let mut exchange = Exchange::begin(shared, peer, &req);
    let next = if exchange.span.is_none() {
        match answer_now(shared, peer.ip(), req, &mut exchange.route) {
            Ok(response) => {
                let response = exchange.end(shared, response);
                return futures::future::Either::Left(std::future::ready(Ok(response)));
            }
            Err(next) => next,
        }
    } else {
        Next::Start(req)
    };
    let conn = conn.clone();
    let rest: Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>> = match next
    {
        // only the ask through the mailbox is left: a future a fraction of the size of the
        // rest's, which would otherwise size this one's box
        Next::Ask(unanswered) if exchange.span.is_none() => Box::pin(async move {
            let response = ask(&conn.shared, unanswered).await;
            Ok(exchange.end(&conn.shared, response))
        }),
        next => Box::pin(async move {
            let client = peer.ip();
            // no wrapper (nor a move into one) for the requests without a span
            let response = if exchange.span.is_none() {
                go_on(&conn, client, next, &mut exchange.route).await
            } else {
                let span = exchange.span.clone();
                go_on(&conn, client, next, &mut exchange.route)
                    .instrument(span)
                    .await
            };
            Ok(exchange.end(&conn.shared, response))
        }),
    };
    futures::future::Either::Right(rest)
}

/// W3C trace context's header, named once: looking a header up by a string parses the name
/// on every request.
const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// What the gateway keeps of a request while it is answered, for its metrics, span and
/// access-log line.
struct Exchange {
    started: Instant,
    peer: SocketAddr,
    /// The request's span, `Span::none()` when nothing would record it
    span: tracing::Span,
    /// What the access log tells of the request, taken before the request is consumed
    request_line: Option<RequestLine>,
    /// The target's index once the request is routed
    route: Option<usize>,
}

/// The request's part of an access-log line.
struct RequestLine {
    time: std::time::SystemTime,
    method: String,
    target: String,
    protocol: String,
    referer: Option<String>,
    user_agent: Option<String>,
}

impl Exchange {
    /// Starts the exchange of `req` from `peer`: its clock, its span and its log line.
    fn begin(shared: &Shared, peer: SocketAddr, req: &Request<Incoming>) -> Self {
        let started = Instant::now();
        // one span per request, the root of its trace across nodes (or a child of the
        // client's, when it sends a W3C `traceparent`), for the requests the head sampler
        // keeps: a request whose trace would not be recorded costs no span; disabled, and
        // nearly free, unless a subscriber records info spans
        let parent = req
            .headers()
            .get(&TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(TraceParent::parse);
        let span = match trace::head_sample(parent.as_ref()) {
            HeadSample::Skip => tracing::Span::none(),
            HeadSample::Span => tracing::info_span!(
                "http.request",
                http.method = req.method().as_str(),
                http.route = tracing::field::Empty,
                http.status = tracing::field::Empty,
            ),
            HeadSample::NewTrace => tracing::info_span!(
                "http.request",
                http.method = req.method().as_str(),
                http.route = tracing::field::Empty,
                http.status = tracing::field::Empty,
                sampling.priority = 1,
            ),
        };
        // a span no subscriber records would still cost its `log` fallback on every enter and
        // record (quinn turns on `tracing`'s `log` feature): none instead
        let span = if span.is_disabled() {
            tracing::Span::none()
        } else {
            span
        };
        if let Some(parent) = &parent
            && !span.is_none()
        {
            parent.adopt(&span);
        }
        let request_line = shared.access_log.as_ref().map(|_| {
            let header = |name| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            RequestLine {
                time: std::time::SystemTime::now(),
                method: req.method().as_str().to_string(),
                target: req
                    .uri()
                    .path_and_query()
                    .map_or_else(|| req.uri().to_string(), |pq| pq.as_str().to_string()),
                protocol: format!("{:?}", req.version()),
                referer: header(http::header::REFERER),
                user_agent: header(http::header::USER_AGENT),
            }
        });
        Self {
            started,
            peer,
            span,
            request_line,
            route: None,
        }
    }

    /// Ends the exchange with `response`: counted and timed under its route, its span
    /// recorded, and its access-log line written once its body has been sent (or abandoned).
    fn end(self, shared: &Shared, response: Response<Body>) -> Response<Body> {
        let status = response.status().as_u16();
        let metrics = self
            .route
            .and_then(|i| shared.route_metrics.get(i))
            .unwrap_or(&shared.unrouted);
        let route = metrics.route();
        let response = match (&shared.access_log, self.request_line) {
            (Some(log), Some(line)) => {
                let log = log.clone();
                let route = route.clone();
                let remote = self.peer.ip();
                let started = self.started;
                response.map(move |body| {
                    Body::boxed(Counted::new(body, move |bytes| {
                        log.log(&Entry {
                            remote,
                            time: line.time,
                            method: &line.method,
                            target: &line.target,
                            protocol: &line.protocol,
                            status,
                            bytes,
                            referer: line.referer.as_deref(),
                            user_agent: line.user_agent.as_deref(),
                            duration: started.elapsed(),
                            route: &route,
                        });
                    }))
                })
            }
            _ => response,
        };
        // the route is the target's name (bounded by the routes declared), "-" before routing
        if !self.span.is_none() {
            self.span.record("http.route", &**route);
            self.span.record("http.status", status);
        }
        metrics.record(status, self.started.elapsed());
        response
    }
}

/// Where the answer to a request goes on once it has to wait.
enum Next {
    /// From the start: a request with a span, all of whose answer runs inside it
    Start(Request<Incoming>),
    /// Routed to the target at this index: its body to read, or the request to forward
    Routed(usize, Request<Incoming>),
    /// To ask an actor through its mailbox, not answered in place
    Ask(Unanswered),
}

/// A request for an actor target that was not answered in place: to ask through the mailbox,
/// directly or as the member its balancer picked.
struct Unanswered {
    addr: Addr<HttpCall>,
    request: HttpRequest,
    picked: Option<Picked<HttpRequest>>,
}

/// Answers `req` without waiting, if it can: routed to an actor, with no body to read, and
/// answered in place (by a balancer of this process and its member, or by the actor itself).
/// Otherwise, where the answer goes on.
#[allow(
    clippy::result_large_err,
    reason = "the request moves on by value: boxing it would cost every request an allocation"
)]
fn answer_now(
    shared: &Shared,
    client: IpAddr,
    req: Request<Incoming>,
    route: &mut Option<usize>,
) -> Result<Response<Body>, Next> {
    let index = match admit(shared, client, &req, route) {
        Ok(index) => index,
        Err(refusal) => return Ok(refusal),
    };
    match shared.targets.get(index) {
        Some(Target::Actor(addr)) if req.body().is_end_stream() => {
            let (parts, _) = req.into_parts();
            in_place(addr, actor_request(parts, Bytes::new(), client)).map_err(Next::Ask)
        }
        _ => Err(Next::Routed(index, req)),
    }
}

/// Goes on with a request from where [`answer_now`] stopped.
async fn go_on(
    conn: &ConnectionState,
    client: IpAddr,
    next: Next,
    route: &mut Option<usize>,
) -> Response<Body> {
    match next {
        Next::Start(req) => match admit(&conn.shared, client, &req, route) {
            Ok(index) => respond(conn, client, index, req).await,
            Err(refusal) => refusal,
        },
        Next::Routed(index, req) => respond(conn, client, index, req).await,
        Next::Ask(unanswered) => ask(&conn.shared, unanswered).await,
    }
}

/// Lets `req` in, or refuses it: the client's rate limit, a route (set in `route`), and the
/// body limit against a declared length. The route's target index, or the refusal to answer.
#[allow(
    clippy::result_large_err,
    reason = "a refusal is the response itself: boxing it would cost it an allocation"
)]
fn admit(
    shared: &Shared,
    client: IpAddr,
    req: &Request<Incoming>,
    route: &mut Option<usize>,
) -> Result<usize, Response<Body>> {
    if let Some(limiter) = &shared.limiter
        && let Err(not_until) = limiter.check_key(&client)
    {
        metrics::counter!("troupe_proxy_rate_limited_total").increment(1);
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let mut response = error(429, "too many requests from your address; slow down");
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        if let Ok(v) = http::HeaderValue::from_str(&secs.max(1).to_string()) {
            response.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
        return Err(response);
    }
    // routes match hosts case-blind: the host is borrowed as sent
    let Some(index) = shared
        .routes
        .resolve(
            crate::message::host_of(req.uri(), req.headers()),
            req.uri().path(),
        )
        .filter(|&i| i < shared.targets.len())
    else {
        return Err(error(404, "no route for this path"));
    };
    *route = Some(index);
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > shared.body_limit as u64) {
        return Err(error(413, "the request body is over the limit"));
    }
    Ok(index)
}

/// The request an actor target gets: the parts as hyper parsed them, moved (nothing copied).
fn actor_request(parts: http::request::Parts, body: Bytes, client: IpAddr) -> HttpRequest {
    HttpRequest {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        body,
        client: Some(client),
    }
}

/// The actor target `addr`'s answer to `request`, if it is answered in place: by a balancer
/// in this process picking a member that answers in place, or by the actor itself. Otherwise
/// the request, to ask through the mailbox.
#[allow(
    clippy::result_large_err,
    reason = "the request moves on by value: boxing it would cost every request an allocation"
)]
fn in_place(addr: &Addr<HttpCall>, request: HttpRequest) -> Result<Response<Body>, Unanswered> {
    let unanswered = |request, picked| Unanswered {
        addr: addr.clone(),
        request,
        picked,
    };
    let answered = match addr.with_shared(request, |balancer: &Forwarder<HttpRequest>, request| {
        balancer.ask_in_place(request)
    }) {
        Ok(Ok(answered)) => answered,
        Ok(Err((request, picked))) => return Err(unanswered(request, Some(picked))),
        Err(request) => match addr.ask_in_place(request) {
            Ok(answered) => answered,
            Err(request) => return Err(unanswered(request, None)),
        },
    };
    Ok(reply_or_failure(addr, answered))
}

/// Asks an actor target with a request not answered in place, through its mailbox (the member
/// its balancer picked, if it has one), and answers its reply.
async fn ask(shared: &Shared, unanswered: Unanswered) -> Response<Body> {
    let Unanswered {
        addr,
        request,
        picked,
    } = unanswered;
    let answer = match picked {
        Some(picked) => picked.ask(request, shared.call_timeout).await,
        None => {
            addr.call(|reply| Ask { request, reply }, shared.call_timeout)
                .await
        }
    };
    reply_or_failure(&addr, answer)
}

/// The actor target `addr`'s reply as the gateway's response, or its failure, counted.
fn reply_or_failure(
    addr: &Addr<HttpCall>,
    answer: Result<HttpResponse, troupe_runtime::CallError>,
) -> Response<Body> {
    match answer {
        Ok(reply) => into_response(reply),
        Err(err) => call_failed(addr.name(), &err),
    }
}

/// `body` guarded by the gateway's body limit and deadline (counted from now).
fn guarded(shared: &Shared, body: Incoming) -> Guarded<Incoming> {
    Guarded::new(
        body,
        Some(shared.body_limit as u64),
        Deadline::At(tokio::time::Instant::now() + shared.body_timeout),
    )
}

/// The request body, read whole within the body limit and timeout, or the refusal to answer
/// instead.
async fn read_body(shared: &Shared, body: Incoming) -> Result<Bytes, Response<Body>> {
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let mut body = guarded(shared, body);
    let verdict = body.verdict();
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(body_refusal(
            verdict.get().copied().unwrap_or(BodyError::Broken),
        )),
    }
}

/// What a client whose request body failed gets: `413` over the limit, `408` (and the
/// connection closed) too slow, `400` broken off.
pub(crate) fn body_refusal(why: BodyError) -> Response<Body> {
    match why {
        BodyError::TooLarge => error(413, "the request body is over the limit"),
        BodyError::Broken => error(400, "the request body could not be read"),
        BodyError::TimedOut => {
            let mut response = error(408, "the request body did not arrive in time");
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            response
        }
    }
}

/// A gateway answer: `status` with `text` as a plain-text body.
pub(crate) fn error(status: u16, text: &str) -> Response<Body> {
    let mut response = Response::new(crate::body::full(format!("{text}\n")));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Answers `req`, routed to the target at `index`: forwarded upstream, streamed to an actor,
/// or its body read and the actor asked (in place, or through its mailbox).
async fn respond(
    conn: &ConnectionState,
    client: IpAddr,
    index: usize,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let shared = &*conn.shared;
    let Some(target) = shared.targets.get(index) else {
        return error(404, "no route for this path");
    };
    let addr = match target {
        Target::Http(pool) => {
            let upgrade = (req.version() == http::Version::HTTP_11
                && crate::tunnel::wants_upgrade(req.headers()))
            .then(|| (hyper::upgrade::on(&mut req), &conn.tunnels));
            let (mut parts, body) = req.into_parts();
            let small = body.is_end_stream()
                || body
                    .size_hint()
                    .exact()
                    .is_some_and(|n| n <= READ_WHOLE_UP_TO);
            let body = if small {
                match read_body(shared, body).await {
                    Ok(body) => Outgoing::Whole(body),
                    Err(refusal) => return refusal,
                }
            } else {
                Outgoing::Streamed(guarded(shared, body))
            };
            let upgrade_to = upgrade
                .as_ref()
                .and_then(|_| parts.headers.get(http::header::UPGRADE).cloned());
            let mut headers = std::mem::take(&mut parts.headers);
            // a shared handle on the `host` header's bytes, so the headers can change around it
            let host_header = headers.get(http::header::HOST).cloned();
            let host = crate::message::host_in(&parts.uri, host_header.as_ref());
            let ours = conn.forwarding.get_or_init(|| {
                let proto = if shared.tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                ForwardingHeaders::new(client, proto)
            });
            // made for the connection's client: every request of it comes from that address
            debug_assert_eq!(ours.client(), client);
            crate::upstream::prepare_upstream_headers(&mut headers, ours, host);
            let request = Forwarded {
                method: &parts.method,
                uri: &parts.uri,
                headers,
                upgrade_to,
                client,
            };
            // boxed: the upstream path's large future would otherwise size every request's
            return Box::pin(pool.forward(request, body, upgrade)).await;
        }
        Target::Streaming(addr) => {
            return Box::pin(stream_to(shared, client, req, addr)).await;
        }
        Target::Actor(addr) => addr,
    };
    let (parts, body) = req.into_parts();
    let body = match read_body(shared, body).await {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    match in_place(addr, actor_request(parts, body, client)) {
        Ok(response) => response,
        Err(unanswered) => ask(shared, unanswered).await,
    }
}

/// The gateway's answer when calling the actor `route` failed with `err`, counted.
fn call_failed(route: &str, err: &troupe_runtime::CallError) -> Response<Body> {
    tracing::debug!(cause = %err, route, "target call failed");
    metrics::counter!(
        "troupe_proxy_upstream_errors_total",
        "route" => route.to_string(),
        "reason" => upstream_error_kind(err)
    )
    .increment(1);
    let (status, text) = status_for(err);
    error(status, text)
}

/// Asks the streaming target `addr` with `req`, its body pulled by the target through the
/// body service, and answers its response, whole or as the target pushes it.
async fn stream_to(
    shared: &Shared,
    client: IpAddr,
    req: Request<Incoming>,
    addr: &Addr<HttpStreamCall>,
) -> Response<Body> {
    let Some((streams, service)) = &shared.bodies else {
        return error(
            500,
            "this route streams, but the gateway has no body service",
        );
    };
    let (parts, body) = req.into_parts();
    let length = body.size_hint().exact();
    let (id, open, pushed) = streams.open(guarded(shared, body));
    let (body, response) = Streams::handles(service, id, length);
    let request = HttpStreamRequest {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        client: Some(client),
        body,
        response,
    };
    let reply = match addr.ask(request, shared.call_timeout).await {
        Ok(reply) => reply,
        Err(err) => return call_failed(addr.name(), &err),
    };
    let HttpStreamResponse {
        status,
        headers,
        body,
        streamed,
    } = reply;
    if !streamed {
        return into_response(HttpResponse {
            status,
            headers,
            body,
        });
    }
    let mut response = into_response(HttpResponse {
        status,
        headers,
        body: Bytes::new(),
    });
    // the first bytes, then each pushed chunk until the target finishes; a target that stops
    // pushing for the body timeout has its response cut off
    let first = (!body.is_empty()).then_some(body);
    let chunks = futures::stream::iter(first)
        .chain(tokio_stream_from(pushed))
        .map(|chunk| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(chunk)));
    let streamed_body = Guarded::new(
        http_body_util::StreamBody::new(chunks),
        None,
        Deadline::Idle(shared.body_timeout),
    );
    // the stream stays open while its response is being sent
    *response.body_mut() = Body::boxed(Counted::new(streamed_body, move |_| drop(open)));
    response
}

/// `rx` as a stream of its items.
fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures::Stream<Item = Bytes> + Send + Unpin {
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// A target's answer as hyper's response: its parts moved, nothing copied.
pub(crate) fn into_response(reply: HttpResponse) -> Response<Body> {
    let mut response = Response::new(crate::body::full(reply.body));
    *response.status_mut() = reply.status;
    *response.headers_mut() = reply.headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A route's kept handles count by status and time every request, and a status outside
    /// the kept ones is counted all the same.
    #[test]
    fn route_metrics_count_every_status_and_time_every_request() {
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let route = RouteMetrics::new(Arc::from("shop"));
            for status in [200, 200, 418, 404] {
                route.record(status, Duration::from_millis(2));
            }
        });
        let mut counts = Vec::new();
        let mut timed = 0;
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            let label = |name| {
                key.labels()
                    .find(|l| l.key() == name)
                    .map(|l| l.value().to_string())
            };
            assert_eq!(label("route").as_deref(), Some("shop"), "{key:?}");
            match value {
                DebugValue::Counter(n) => counts.push((label("status").unwrap_or_default(), n)),
                DebugValue::Histogram(samples) => timed += samples.len(),
                DebugValue::Gauge(_) => panic!("no gauge expected: {key:?}"),
            }
        }
        counts.sort();
        assert_eq!(
            counts,
            [("200".into(), 2), ("404".into(), 1), ("418".into(), 1)]
        );
        assert_eq!(timed, 4);
    }

    /// The limiter's per-address state shrinks back once addresses stop sending: pruning keeps
    /// only those whose quota is not full again.
    #[tokio::test]
    async fn the_rate_limiter_forgets_quiet_addresses() {
        let shared = Shared {
            routes: Routes::new(),
            targets: Vec::new(),
            route_metrics: Vec::new(),
            unrouted: RouteMetrics::new(Arc::from("-")),
            limiter: Shared::limiter(NonZeroU32::new(1_000)),
            body_limit: 0,
            call_timeout: Duration::from_secs(1),
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            send_timeout: Duration::from_secs(1),
            access_log: None,
            tls: None,
            bodies: None,
        };
        let Some(limiter) = &shared.limiter else {
            panic!("a limiter")
        };
        for i in 0..100u8 {
            let _ = limiter.check_key(&IpAddr::from([10, 0, 0, i]));
        }
        assert_eq!(limiter.len(), 100);
        // a thousand a second: each address's quota is full again a millisecond later
        troupe_testkit::eventually(
            "quiet addresses forgotten",
            Duration::from_secs(5),
            async || {
                shared.prune_limiter();
                limiter.is_empty()
            },
        )
        .await;
    }
}
