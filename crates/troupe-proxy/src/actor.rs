//! [`Proxy`]: the configuration, and [`ProxyActor`]: the supervised actor that runs the server.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use troupe_runtime::listener::{ListenerShell, ServerTask, StableListenAddr};
use troupe_runtime::{Actor, ActorError, Addr, Ctx, Message, Reply};

use crate::access::{AccessLog, AccessLogger};
use crate::core::Routes;
use crate::message::HttpCall;
use crate::server::{RouteMetrics, Shared, Target, over_limit_refusal, serve_connection};
use crate::stream::{BodyMsg, BodyService, HttpStreamCall, Streams};
use crate::tls::ReloadingTls;
use crate::upstream::Upstream;

/// Where a route sends its requests.
#[derive(Clone, Debug)]
enum RouteTo {
    Actor(Addr<HttpCall>),
    Streaming(Addr<HttpStreamCall>),
    Upstream(Box<Upstream>),
}

/// How often the rate limiter forgets the client addresses whose quota is full again.
const LIMITER_PRUNE: Duration = Duration::from_secs(10);

/// A web/proxy server's configuration: where it listens, where each path goes, and its limits.
///
/// # Examples
///
/// ```no_run
/// # use troupe_proxy::{HttpCall, Proxy};
/// # fn wire(api: troupe_runtime::Addr<HttpCall>, admin: troupe_runtime::Addr<HttpCall>) {
/// let gateway = Proxy::http("127.0.0.1:8080")
///     .route("/", api)
///     .route_host("admin.example", "/", admin)
///     .rate_limit_per_ip(1_000)
///     .body_limit(1 << 20);
/// // in a topology: t.add(edge, "gateway", gateway.factory());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Proxy {
    /// Where it listens; restarts bind the address the first instance bound, so a server
    /// configured with port 0 comes back where its clients know it.
    listen: StableListenAddr,
    routes: Vec<(Option<String>, String, RouteTo)>,
    rate_limit_per_ip: Option<NonZeroU32>,
    body_limit: usize,
    call_timeout: Duration,
    header_timeout: Duration,
    body_timeout: Duration,
    send_timeout: Duration,
    access_log: Option<AccessLog>,
    /// PEM certificate chain and key files, to serve HTTPS
    tls: Option<(PathBuf, PathBuf)>,
    /// How often the TLS files are checked for changes
    tls_reload_every: Duration,
    /// Connection limits and drain.
    shell: ListenerShell,
    /// The streams of streaming routes, shared with the body service
    streams: Arc<Streams>,
    /// The body service streaming targets pull from and push to
    body_service: Option<Addr<BodyMsg>>,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Streams")
    }
}

impl Proxy {
    /// An HTTP/1.1 and HTTP/2 (cleartext) server on `addr` with no routes, no rate limit, a
    /// 1 MiB body limit, a 10 s call timeout, a 10 s header timeout, a 30 s body timeout, a
    /// 5 s drain on shutdown, and at most 16,384 connections, 1,024 of them from one client
    /// address.
    pub fn http(addr: impl Into<String>) -> Self {
        Self {
            listen: StableListenAddr::new(addr),
            routes: Vec::new(),
            rate_limit_per_ip: None,
            body_limit: 1 << 20,
            call_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(60),
            access_log: None,
            tls: None,
            tls_reload_every: Duration::from_secs(10),
            shell: ListenerShell::new("proxy"),
            streams: Arc::default(),
            body_service: None,
        }
    }

    /// Sends requests whose path starts with `prefix` (at a segment boundary) to `target`,
    /// which is asked with each request and answers with the response.
    pub fn route(mut self, prefix: &str, target: Addr<HttpCall>) -> Self {
        self.routes
            .push((None, prefix.to_string(), RouteTo::Actor(target)));
        self
    }

    /// Sends requests whose path starts with `prefix` to the HTTP servers of `upstream`
    /// (see [`Upstream`]): a reverse proxy's `proxy_pass`.
    pub fn route_upstream(mut self, prefix: &str, upstream: Upstream) -> Self {
        self.routes.push((
            None,
            prefix.to_string(),
            RouteTo::Upstream(Box::new(upstream)),
        ));
        self
    }

    /// Sends requests whose path starts with `prefix` to `target` with their bodies streamed
    /// both ways (see [`HttpStreamRequest`](crate::stream::HttpStreamRequest)): the target
    /// pulls the request body chunk by chunk and may push its response body the same way,
    /// each with backpressure, so neither is held whole. Needs the gateway's body service:
    /// a topology adds it beside the gateway; by hand, add
    /// [`body_service`](Self::body_service) and pass its address to
    /// [`with_body_service`](Self::with_body_service).
    pub fn route_streaming(mut self, prefix: &str, target: Addr<HttpStreamCall>) -> Self {
        self.routes
            .push((None, prefix.to_string(), RouteTo::Streaming(target)));
        self
    }

    /// Whether any route streams its bodies (and so needs the body service).
    pub fn has_streaming_routes(&self) -> bool {
        self.routes
            .iter()
            .any(|(_, _, to)| matches!(to, RouteTo::Streaming(_)))
    }

    /// A factory of the body service for this gateway's streaming routes: add it beside the
    /// gateway, on the same node, reachable from the nodes of the streaming targets. A pull or
    /// push waits at most the [`body_timeout`](Self::body_timeout) for the client.
    pub fn body_service(&self) -> impl Fn() -> BodyService + Send + Sync + 'static {
        let (streams, limit) = (self.streams.clone(), self.body_timeout);
        move || BodyService::new(streams.clone(), limit)
    }

    /// The address of this gateway's [`body_service`](Self::body_service).
    pub fn with_body_service(mut self, service: Addr<BodyMsg>) -> Self {
        self.body_service = Some(service);
        self
    }

    /// As [`route`](Self::route), for requests to `host` only.
    pub fn route_host(mut self, host: &str, prefix: &str, target: Addr<HttpCall>) -> Self {
        self.routes.push((
            Some(host.to_string()),
            prefix.to_string(),
            RouteTo::Actor(target),
        ));
        self
    }

    /// Allows each client IP `per_second` requests per second (GCRA, bursts up to that many);
    /// beyond it, `429 Too Many Requests` with `Retry-After`. Zero turns the limit off.
    pub fn rate_limit_per_ip(mut self, per_second: u32) -> Self {
        self.rate_limit_per_ip = NonZeroU32::new(per_second);
        self
    }

    /// Refuses request bodies over `bytes` with `413`, without reading past the limit.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How long a target gets to answer before the client gets `504`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// How long a client gets to send each request's head. On an HTTP/1.1 connection it
    /// counts from the connection's start for the first request and from the previous
    /// response for each next one, so it also closes a keep-alive connection left idle that
    /// long; on HTTP/2 a ping unanswered for that long closes the connection. A first request
    /// whose head started but did not finish gets `408`; otherwise the connection is closed.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// How long a client gets to send a request's whole body, counted from its head; a body
    /// still arriving then is answered `408 Request Timeout` and its connection closed, so a
    /// client trickling a body cannot hold a connection and its task.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// How long a write to a client may wait without the client taking a byte (nginx's
    /// `send_timeout`, 60 s by default); past it the connection is closed and counted in
    /// `troupe_proxy_send_timeouts_total`, so a client that stops reading a large response
    /// or a WebSocket tunnel cannot hold the connection.
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Writes a line per request to `log` (the combined log format or JSON lines, to standard
    /// output or appended to a file); off by default. A start fails if the file cannot be
    /// opened.
    pub fn access_log(mut self, log: AccessLog) -> Self {
        self.access_log = Some(log);
        self
    }

    /// Serves HTTPS instead of plain HTTP: TLS terminated here (rustls, *ring* only) with the
    /// certificate chain in `cert` and the private key in `key` (PEM files, read when the
    /// server starts: a start fails, naming the file, if they cannot be used), HTTP/2 or
    /// HTTP/1.1 by ALPN. A handshake must finish within the
    /// [`header_timeout`](Self::header_timeout); one that fails is counted in
    /// `troupe_proxy_tls_handshake_failures_total` and the connection closed.
    pub fn tls(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls = Some((cert.into(), key.into()));
        self
    }

    /// How often the [`tls`](Self::tls) files are checked for a renewed certificate (every
    /// 10 s by default): when either file has changed, the pair is read again and new
    /// connections use it (open ones keep theirs); a pair that cannot be used is logged and
    /// counted in `troupe_proxy_tls_reloads_total{result="failed"}`, and the previous one stays.
    pub fn tls_reload_every(mut self, every: Duration) -> Self {
        self.tls_reload_every = every.max(Duration::from_millis(10));
        self
    }

    /// How long in-flight requests get to finish on shutdown.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.shell = self.shell.drain_timeout(timeout);
        self
    }

    /// Most connections served at once (at least 1); a connection over it is answered
    /// `503 Service Unavailable` with `connection: close` and closed, and counted in
    /// `troupe_proxy_connections_refused_total{limit="total"}`.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.shell = self.shell.max_connections(n);
        self
    }

    /// Most connections served at once from one client IP address (at least 1); one over it
    /// is refused as for [`max_connections`](Self::max_connections) and counted with
    /// `limit="per_address"`, while other addresses are still served. This limits
    /// connections; [`rate_limit_per_ip`](Self::rate_limit_per_ip) limits requests.
    pub fn max_connections_per_address(mut self, n: usize) -> Self {
        self.shell = self.shell.max_connections_per_address(n);
        self
    }

    /// A fresh actor running this configuration (use as the actor's factory).
    pub fn actor(&self) -> ProxyActor {
        ProxyActor {
            config: self.clone(),
            running: None,
        }
    }

    /// A factory for topologies: `t.add(node, "gateway", proxy.factory())`.
    pub fn factory(self) -> impl Fn() -> ProxyActor + Send + Sync + 'static {
        move || self.actor()
    }
}

/// Why a gateway's configuration cannot start (beside the errors of binding, TLS files,
/// access-log files and upstreams).
#[derive(Debug, thiserror::Error)]
pub enum ProxyStartError {
    /// Streaming routes without the body service
    #[error(
        "streaming routes need the gateway's body service: add Proxy::body_service beside \
         the gateway and pass its address to Proxy::with_body_service (a topology does both)"
    )]
    NoBodyService,
}

/// The proxy actor's own requests (its HTTP traffic does not pass through its mailbox).
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "troupe.proxy.Control")]
pub enum ProxyMsg {
    /// The address the server is bound to (useful with port 0); `None` before it has bound.
    /// Call it as `gateway.call(ProxyMsg::LocalAddr, timeout)`.
    LocalAddr(Reply<Option<SocketAddr>>),
}

/// The supervised actor that owns the listener and the connections.
///
/// It binds in `started` (a failure to bind fails the start, so the supervisor retries it by
/// its policy) and drains in `stopped`; if it crashes, its accept loop is aborted with it and
/// the restarted instance binds again.
pub struct ProxyActor {
    config: Proxy,
    running: Option<ServerTask>,
}

impl Actor for ProxyActor {
    type Msg = ProxyMsg;

    async fn started(&mut self, ctx: &mut Ctx<ProxyMsg>) -> Result<(), ActorError> {
        let c = &self.config;
        let mut routes = Routes::new();
        let mut targets = Vec::with_capacity(c.routes.len());
        for (i, (host, prefix, target)) in c.routes.iter().enumerate() {
            routes.add(host.as_deref(), prefix, i);
            targets.push(match target {
                RouteTo::Actor(addr) => Target::Actor(addr.clone()),
                RouteTo::Streaming(addr) => Target::Streaming(addr.clone()),
                RouteTo::Upstream(upstream) => {
                    Target::Http(upstream.start(&format!("upstream {prefix}"))?)
                }
            });
        }
        let access_log = match &c.access_log {
            Some(log) => Some(AccessLogger::start(log).await?),
            None => None,
        };
        let tls = match &c.tls {
            Some((cert, key)) => Some(ReloadingTls::load(cert, key)?),
            None => None,
        };
        if let Some(tls) = &tls {
            // certificates renewed on disk are picked up without a restart
            let (tls, every) = (tls.clone(), c.tls_reload_every);
            ctx.spawn(async move {
                let mut ticks = tokio::time::interval(every);
                ticks.tick().await;
                loop {
                    ticks.tick().await;
                    tls.reload_if_changed();
                }
            });
        }
        if c.has_streaming_routes() && c.body_service.is_none() {
            return Err(Box::new(ProxyStartError::NoBodyService));
        }
        let listener = c.listen.bind().await?;
        let route_metrics = targets
            .iter()
            .map(|t| RouteMetrics::new(Arc::from(t.name())))
            .collect();
        let shared = Arc::new(Shared {
            routes,
            targets,
            route_metrics,
            unrouted: RouteMetrics::new(Arc::from("-")),
            limiter: Shared::limiter(c.rate_limit_per_ip),
            body_limit: c.body_limit,
            call_timeout: c.call_timeout,
            header_timeout: c.header_timeout,
            body_timeout: c.body_timeout,
            send_timeout: c.send_timeout,
            access_log,
            tls,
            bodies: c
                .body_service
                .clone()
                .map(|service| (c.streams.clone(), service)),
        });
        if shared.limiter.is_some() {
            // the limiter keeps a state per client address: forget those back to a full quota
            let pruned = shared.clone();
            ctx.spawn(async move {
                let mut every = tokio::time::interval(LIMITER_PRUNE);
                loop {
                    every.tick().await;
                    pruned.prune_limiter();
                }
            });
        }
        let server = c
            .shell
            .clone()
            .refusal(over_limit_refusal())
            .on_refused(|_, why| {
                metrics::counter!("troupe_proxy_connections_refused_total", "limit" => why.label())
                    .increment(1);
            })
            .spawn(listener, move |conn| serve_connection(shared.clone(), conn))?;
        tracing::info!(addr = %server.local_addr(), "proxy listening");
        self.running = Some(server);
        Ok(())
    }

    async fn handle(&mut self, msg: ProxyMsg, _ctx: &mut Ctx<ProxyMsg>) -> Result<(), ActorError> {
        match msg {
            ProxyMsg::LocalAddr(reply) => {
                reply.send(self.running.as_ref().map(ServerTask::local_addr));
            }
        }
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &mut Ctx<ProxyMsg>) -> Result<(), ActorError> {
        if let Some(server) = self.running.take()
            && !server.stop().await
        {
            tracing::warn!("proxy did not drain in time");
        }
        Ok(())
    }
}
