//! HTTP upstreams: a route whose members are HTTP servers rather than actors, the job nginx's
//! `proxy_pass` does. Requests go through hyper-util's pooled keep-alive client; members are
//! picked and ejected by the balancer's pure core (round robin, a circuit
//! breaker per member: consecutive failures eject it, a probe after the open period re-admits
//! it); a request whose member could not be reached is tried on another when its method is
//! idempotent; the usual proxy headers are set and hop-by-hop headers removed. Actors may be
//! members too ([`Upstream::actor`]), balanced and ejected with the HTTP servers.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use troupe_balancer::core::{
    Balancer, BreakerConfig, CheckedHealth, HealthChecks, MemberId, Outcome, Pick, Strategy,
};

use crate::body::{Body, BodyError, Deadline, Guarded};
use crate::message::{HttpCall, HttpRequest};
use crate::tunnel::Tunnels;
use hyper::upgrade::OnUpgrade;
use troupe_runtime::{Addr, CallError};

/// Idle keep-alive connections kept per member, at most (hyper-util's default keeps any
/// number); a burst's extra connections are closed once idle.
const MAX_IDLE_PER_MEMBER: usize = 256;

/// An HTTP upstream's configuration: its members' base URLs, protocol, timeouts and health
/// checks. Route to it with [`Proxy::route_upstream`](crate::Proxy::route_upstream).
#[derive(Clone, Debug)]
pub struct Upstream {
    members: Vec<String>,
    actors: Vec<Addr<HttpCall>>,
    http2: bool,
    connect_timeout: Duration,
    request_timeout: Duration,
    read_timeout: Duration,
    tunnel_idle_timeout: Duration,
    breaker: BreakerConfig,
    max_response: Option<u64>,
    health_check: Option<HealthCheck>,
}

/// Active health checks of an upstream's members: a `GET` of `path` on each member every
/// `interval`; a member answering `2xx` or `3xx` within `timeout` passes. A member that fails
/// `fall` checks in a row is taken out of rotation until it passes `rise` in a row. Requests
/// that fail still eject a member through the breaker (passive checks) in between.
#[derive(Clone, Debug)]
pub struct HealthCheck {
    path: String,
    interval: Duration,
    timeout: Duration,
    rise: u32,
    fall: u32,
}

impl HealthCheck {
    /// Checks `path` (for example `/healthz`) every 2 s with a 1 s timeout, down after 3
    /// failures in a row, up after 2 passes (HAProxy's defaults are 2 s, rise 2, fall 3).
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        }
    }

    /// How often each member is checked.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How long one check may take before it counts as failed.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Passes in a row that put a down member back (0 counts as 1).
    pub fn rise(mut self, passes: u32) -> Self {
        self.rise = passes;
        self
    }

    /// Failures in a row that take a member out (0 counts as 1).
    pub fn fall(mut self, failures: u32) -> Self {
        self.fall = failures;
        self
    }
}

impl Upstream {
    /// HTTP/1.1 servers at `members` (`http://host:port`, each), taken in turn (round robin,
    /// as nginx does by default); a 1 s connect timeout, 30 s for the response's head and 30 s
    /// between its body's chunks, 5 minutes for an idle WebSocket, the balancer's default breaker, response bodies streamed
    /// through with no size limit, no active health checks.
    pub fn http(members: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            members: members.into_iter().map(Into::into).collect(),
            actors: Vec::new(),
            http2: false,
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            tunnel_idle_timeout: Duration::from_secs(300),
            breaker: BreakerConfig::default(),
            max_response: None,
            health_check: None,
        }
    }

    /// Adds an actor as a member beside the HTTP servers, balanced and ejected with them: a
    /// request it gets is asked of it as an [`HttpRequest`](crate::HttpRequest) (its body read
    /// whole, within the gateway's limit; the headers an HTTP member would get: hop-by-hop ones
    /// removed, `x-forwarded-for`, `forwarded` and `via` added), as
    /// [`Proxy::route`](crate::Proxy::route) would. Lets traffic move between HTTP services
    /// and actors one member at a time. Actors get no active health checks (a node reported
    /// down fails their calls at once, which ejects them) and no WebSocket upgrades.
    pub fn actor(mut self, member: Addr<HttpCall>) -> Self {
        self.actors.push(member);
        self
    }

    /// Speaks HTTP/2 to the members, over cleartext with prior knowledge (h2c, as gRPC servers
    /// and Envoy's `http2_protocol_options` do): one connection per member carries every request.
    pub fn http2(mut self) -> Self {
        self.http2 = true;
        self
    }

    /// How long connecting to a member may take before it counts as unreachable.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a member gets, from the request being sent (its streamed body included), to
    /// answer with a response head before the client gets `504`.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long the gateway waits for each chunk of a member's response body before the
    /// response is cut off (nginx's `proxy_read_timeout`), counted from when it asks for the
    /// chunk: time spent writing the previous ones to a slow client is not counted.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// How long an upgraded connection (a WebSocket) may carry nothing either way before it is
    /// closed; 5 minutes by default (applications keep theirs open with pings).
    pub fn tunnel_idle_timeout(mut self, timeout: Duration) -> Self {
        self.tunnel_idle_timeout = timeout;
        self
    }

    /// When a member is ejected and re-admitted (see `troupe_balancer::core::BreakerConfig`).
    pub fn breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// The largest response body passed on: a response that grows past it is cut off
    /// mid-stream (the client sees the connection end early). None by default.
    pub fn max_response(mut self, bytes: u64) -> Self {
        self.max_response = Some(bytes);
        self
    }

    /// Checks each member actively (see [`HealthCheck`]).
    pub fn health_check(mut self, check: HealthCheck) -> Self {
        self.health_check = Some(check);
        self
    }

    /// The running pool, named `name` in metrics and logs; its health checks (if any) run
    /// until the pool is dropped. Call within a tokio runtime.
    ///
    /// # Errors
    /// A member that is not an `http://host:port` URL, or no member at all.
    pub(crate) fn start(&self, name: &str) -> Result<Arc<UpstreamPool>, UpstreamError> {
        if self.members.is_empty() && self.actors.is_empty() {
            return Err(UpstreamError::NoMembers(name.to_string()));
        }
        if let Some(check) = &self.health_check
            && (!check.path.starts_with('/')
                || check.path.parse::<http::uri::PathAndQuery>().is_err())
        {
            return Err(UpstreamError::BadHealthCheckPath(check.path.clone()));
        }
        let mut members = Vec::with_capacity(self.members.len());
        let mut balancer = Balancer::new(Strategy::RoundRobin, self.breaker);
        for (i, url) in self.members.iter().enumerate() {
            let uri: Uri = url
                .parse()
                .map_err(|_| UpstreamError::BadMember(url.clone()))?;
            if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                return Err(UpstreamError::BadMember(url.clone()));
            }
            // the member's URL stands for its "node", so health checks can take it out
            balancer.add(MemberId(i as u64), 1, Some(uri.to_string()));
            members.push(uri);
        }
        // actors follow the HTTP members, with the ids after theirs
        for i in 0..self.actors.len() {
            balancer.add(MemberId((members.len() + i) as u64), 1, None);
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(self.connect_timeout));
        connector.set_nodelay(true);
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(MAX_IDLE_PER_MEMBER)
            .http2_only(self.http2);
        let pool = Arc::new(UpstreamPool {
            name: name.to_string(),
            members,
            actors: self.actors.clone(),
            balancer: Mutex::new((balancer, SmallRng::seed_from_u64(0))),
            client: builder.build(connector),
            request_timeout: self.request_timeout,
            read_timeout: self.read_timeout,
            tunnel_idle_timeout: self.tunnel_idle_timeout,
            max_response: self.max_response,
            http2: self.http2,
        });
        if let Some(check) = &self.health_check {
            tokio::spawn(run_health_checks(Arc::downgrade(&pool), check.clone()));
        }
        Ok(pool)
    }
}

/// Checks every member of `pool` as `check` says until the pool is dropped, taking members
/// out of rotation and back as their results rise and fall.
async fn run_health_checks(pool: Weak<UpstreamPool>, check: HealthCheck) {
    let members = match pool.upgrade() {
        Some(pool) => pool.members.len(),
        None => return,
    };
    let mut verdicts = vec![HealthChecks::new(check.rise, check.fall); members];
    let mut every = tokio::time::interval(check.interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        // one check per member at once, each bounded by its timeout
        let results = futures::future::join_all(pool.members.iter().map(|base| {
            let pool = &pool;
            let check = &check;
            async move { pool.check_once(base, check).await }
        }))
        .await;
        for ((verdict, passed), base) in verdicts.iter_mut().zip(results).zip(&pool.members) {
            let Some(health) = verdict.observe(passed) else {
                continue;
            };
            let node = base.to_string();
            let mut guard = pool.balancer.lock().unwrap_or_else(|p| p.into_inner());
            match health {
                CheckedHealth::Down => guard.0.node_down(&node),
                CheckedHealth::Up => guard.0.node_up(&node),
            }
            drop(guard);
            tracing::warn!(upstream = %pool.name, member = %base, health = ?health, "upstream member's health checks changed its standing");
            metrics::gauge!("troupe_proxy_upstream_member_up", "route" => pool.name.clone(), "member" => node)
                .set(if health == CheckedHealth::Up { 1.0 } else { 0.0 });
        }
    }
}

/// Why an upstream could not start.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A member is not an `http://host:port` URL
    #[error("upstream member {0:?} is not an http://host:port URL")]
    BadMember(String),
    /// A health check's path is not an absolute path (`/healthz`)
    #[error("health check path {0:?} is not an absolute path such as /healthz")]
    BadHealthCheckPath(String),
    /// An upstream without members
    #[error("upstream {0:?} has no members")]
    NoMembers(String),
}

/// A started upstream: its members, their balancer and the pooled client.
pub(crate) struct UpstreamPool {
    name: String,
    /// HTTP members, ids 0..
    members: Vec<Uri>,
    /// Actor members, ids after the HTTP members'
    actors: Vec<Addr<HttpCall>>,
    balancer: Mutex<(Balancer, SmallRng)>,
    client: Client<HttpConnector, Body>,
    request_timeout: Duration,
    read_timeout: Duration,
    tunnel_idle_timeout: Duration,
    max_response: Option<u64>,
    http2: bool,
}

/// What the client asked for, read off the request before its body, with the headers to
/// send upstream already prepared (see [`prepare_upstream_headers`]).
pub(crate) struct Forwarded<'a> {
    pub(crate) method: &'a Method,
    /// The request target as received (an actor member gets it whole, authority included)
    pub(crate) uri: &'a Uri,
    pub(crate) headers: HeaderMap,
    /// The client's `upgrade` header, when it asks to switch protocols
    pub(crate) upgrade_to: Option<HeaderValue>,
    pub(crate) client: IpAddr,
}

/// Hop-by-hop headers (RFC 9110, 7.6.1): they concern one connection and are never passed on.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Removes the hop-by-hop headers from `headers`, in place: those of [`HOP_BY_HOP`] (but
/// `te: trailers`, which HTTP/2 allows), `upgrade`, and any the `connection` header names. Costs one scan of the names when there
/// are none (the usual case).
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let is_hop = |name: &HeaderName| HOP_BY_HOP.contains(name) || name == header::UPGRADE;
    if !headers.keys().any(is_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    // `te: trailers` is the one `te` passed on: gRPC over HTTP/2 needs it
    let trailers = headers
        .get_all(header::TE)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for name in HOP_BY_HOP.iter().chain([&header::UPGRADE]) {
        headers.remove(name);
    }
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    for name in named {
        headers.remove(&name);
    }
}

/// `headers` without hop-by-hop ones (see [`strip_hop_by_hop`]).
pub(crate) fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    strip_hop_by_hop(&mut out);
    out
}

/// The forwarding headers' own parts for one client connection (its address and scheme do
/// not change within it), made once per connection rather than formatted for every request.
pub(crate) struct ForwardingHeaders {
    client: IpAddr,
    proto: &'static str,
    /// `x-forwarded-for` for a request that brings none: the client's address
    forwarded_for: HeaderValue,
    /// `forwarded` for a request that brings none and names no host
    forwarded: HeaderValue,
    /// The same for the first host a request named (a connection's requests nearly always
    /// name one host), lowercase
    forwarded_host: std::sync::OnceLock<(Box<str>, HeaderValue)>,
}

impl ForwardingHeaders {
    /// The values for requests from `client` that arrived over `proto` (`http` or `https`).
    pub(crate) fn new(client: IpAddr, proto: &'static str) -> Self {
        let forwarded_for = HeaderValue::from_str(&client.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        let forwarded = HeaderValue::from_str(&forwarded_element(client, proto, None))
            .unwrap_or_else(|_| HeaderValue::from_static("for=unknown"));
        Self {
            client,
            proto,
            forwarded_for,
            forwarded,
            forwarded_host: std::sync::OnceLock::new(),
        }
    }

    /// The client these values were made for.
    pub(crate) fn client(&self) -> IpAddr {
        self.client
    }

    /// This connection's `forwarded` element for a request naming `host` (any case, no port).
    fn forwarded(&self, host: Option<&str>) -> Option<HeaderValue> {
        let Some(host) = host.filter(|h| forwardable_host(h)) else {
            return Some(self.forwarded.clone());
        };
        let (first, value) = self.forwarded_host.get_or_init(|| {
            // cannot fail: the host is printable ASCII without quotes, the rest is ours
            let value = HeaderValue::from_str(&self.element(Some(host)))
                .unwrap_or_else(|_| self.forwarded.clone());
            (host.to_ascii_lowercase().into_boxed_str(), value)
        });
        if first.eq_ignore_ascii_case(host) {
            return Some(value.clone());
        }
        HeaderValue::from_str(&self.element(Some(host))).ok()
    }

    /// This connection's `forwarded` element, formatted, for a request naming `host`: the host
    /// lowercase, and left out if it cannot be quoted as it is.
    fn element(&self, host: Option<&str>) -> String {
        let host = host
            .filter(|h| forwardable_host(h))
            .map(str::to_ascii_lowercase);
        forwarded_element(self.client, self.proto, host.as_deref())
    }
}

/// Whether `host` may be quoted into a `forwarded` element as it is.
fn forwardable_host(host: &str) -> bool {
    host.bytes().all(|b| b.is_ascii_graphic() && b != b'"')
}

/// One RFC 7239 element: `for` (an IPv6 address quoted and bracketed), `proto`, and `host`
/// when given.
fn forwarded_element(client: IpAddr, proto: &str, host: Option<&str>) -> String {
    let mut element = match client {
        IpAddr::V4(v4) => format!("for={v4};proto={proto}"),
        IpAddr::V6(v6) => format!("for=\"[{v6}]\";proto={proto}"),
    };
    if let Some(host) = host {
        element.push_str(";host=\"");
        element.push_str(host);
        element.push('"');
    }
    element
}

/// Turns the client's `headers` into those sent upstream, in place: hop-by-hop headers
/// removed, `x-forwarded-for` extended by the client's address, `forwarded` (RFC 7239)
/// extended by a `for`/`proto`/`host` element for `host` (the request's, without port), and
/// `via` extended by this proxy. `ours` must be the values of the request's own connection
/// (its client and scheme). A request that brings none of these headers (the usual case) gets
/// the connection's values, nothing formatted unless it names a host other than the
/// connection's first.
pub(crate) fn prepare_upstream_headers(
    headers: &mut HeaderMap,
    ours: &ForwardingHeaders,
    host: Option<&str>,
) {
    strip_hop_by_hop(headers);
    fn earlier<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
    }
    let xff = HeaderName::from_static("x-forwarded-for");
    let forwarded_for = match earlier(headers, &xff) {
        Some(before) => HeaderValue::from_str(&format!("{before}, {}", ours.client)).ok(),
        None => Some(ours.forwarded_for.clone()),
    };
    if let Some(value) = forwarded_for {
        headers.insert(xff, value);
    }
    let forwarded = match earlier(headers, &header::FORWARDED) {
        Some(before) => HeaderValue::from_str(&format!("{before}, {}", ours.element(host))).ok(),
        None => ours.forwarded(host),
    };
    if let Some(value) = forwarded {
        headers.insert(header::FORWARDED, value);
    }
    match earlier(headers, &header::VIA) {
        Some(before) => {
            if let Ok(v) = HeaderValue::from_str(&format!("{before}, 1.1 troupe")) {
                headers.insert(header::VIA, v);
            }
        }
        None => {
            headers.insert(header::VIA, HeaderValue::from_static("1.1 troupe"));
        }
    }
}

/// Whether a request with `method` may be sent again after it could not be delivered.
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// A request body on its way upstream.
pub(crate) enum Outgoing {
    /// Read whole already (small, or empty): it may be sent again to another member
    Whole(Bytes),
    /// Passed on as it arrives from the client, within the gateway's limit and deadline: sent
    /// once, so the request is not tried again
    Streamed(Guarded<Incoming>),
}

/// How one attempt on a member ended.
enum Attempt {
    Answered(Response<Body>),
    /// Nothing was delivered (the connection could not be made): another member may be tried
    Undelivered(&'static str),
    /// The client's own body failed (too large, too slow, broken off): not the member's fault
    ClientBody(BodyError),
    /// The member cannot take this request (an upgrade to an actor): another is tried
    Skipped,
    /// The request may have reached the member
    Failed(u16, &'static str),
}

impl UpstreamPool {
    /// The upstream's name, as routes and metrics know it.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Sends `request` with `body` to a member and answers its response, its body streamed
    /// as the member sends it, or the gateway's status for what went wrong (`502` unreachable
    /// or a bad answer, `503` no member admitted, `504` no answer in time; `413`/`408`/`400`
    /// when the client's streamed body was too large, too slow or broken off). An undelivered
    /// idempotent request whose body was read whole is tried on another member, once per
    /// member at most.
    ///
    /// Cancelling drops the request to the member (its connection is not reused).
    ///
    /// With `upgrade` (the client asked to switch protocols, as a WebSocket handshake does),
    /// the upgrade headers go upstream too; if the member agrees (`101`), a tunnel between the
    /// two connections is added to `tunnels`, and the client gets the member's `101`.
    pub(crate) async fn forward(
        &self,
        mut request: Forwarded<'_>,
        body: Outgoing,
        mut upgrade: Option<(OnUpgrade, &Tunnels)>,
    ) -> Response<Body> {
        if upgrade.is_some() {
            if self.http2 {
                return crate::server::error(
                    502,
                    "this upstream speaks HTTP/2, which cannot switch protocols",
                );
            }
            if let Some(protocol) = request.upgrade_to.take() {
                request.headers.insert(header::UPGRADE, protocol);
                request
                    .headers
                    .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            }
        }
        let request = &mut request;
        let attempts = match body {
            Outgoing::Whole(_) if idempotent(request.method) => {
                self.members.len() + self.actors.len()
            }
            _ => 1,
        };
        let mut body = Some(body);
        let mut last = (503, "no upstream member is admitted");
        for tried in 1..=attempts {
            let picked = {
                let mut guard = self.balancer.lock().unwrap_or_else(|p| p.into_inner());
                let (balancer, rng) = &mut *guard;
                balancer.pick(None, troupe_runtime::time::now(), rng)
            };
            let Some(pick) = picked else { break };
            let this_body = match body.take() {
                Some(Outgoing::Whole(bytes)) => {
                    body = Some(Outgoing::Whole(bytes.clone()));
                    Outgoing::Whole(bytes)
                }
                Some(streamed) => streamed,
                None => break,
            };
            let index = pick.member.0 as usize;
            // the headers go with the last try; earlier ones send a copy
            let headers = if tried == attempts {
                std::mem::take(&mut request.headers)
            } else {
                request.headers.clone()
            };
            let streamed = matches!(this_body, Outgoing::Streamed(_));
            let (attempt, member) = match self.members.get(index) {
                Some(base) => (
                    self.attempt(base, request, headers, this_body, &mut upgrade)
                        .await,
                    MemberRef::Http(base),
                ),
                None => {
                    let actor = &self.actors[index - self.members.len()];
                    let attempt = if upgrade.is_some() {
                        // not this member's fault: another may take it
                        body = Some(this_body);
                        request.headers = headers;
                        Attempt::Skipped
                    } else {
                        self.ask_actor(actor, request, &headers, this_body).await
                    };
                    (attempt, MemberRef::Actor(actor))
                }
            };
            let outcome = match &attempt {
                Attempt::Answered(_) | Attempt::ClientBody(_) | Attempt::Skipped => {
                    Outcome::Success
                }
                // the client's body may still have been arriving: not the member's delay
                Attempt::Failed(504, _) if streamed => Outcome::Success,
                Attempt::Failed(504, _) => Outcome::Timeout,
                _ => Outcome::Error,
            };
            self.report(pick, &member, outcome);
            match attempt {
                Attempt::Answered(response) => return response,
                Attempt::Undelivered(why) => {
                    metrics::counter!("troupe_proxy_upstream_errors_total", "route" => self.name.clone(), "reason" => "connect").increment(1);
                    last = (502, why);
                }
                Attempt::ClientBody(why) => return crate::server::body_refusal(why),
                Attempt::Skipped => last = (502, "no member that can switch protocols answered"),
                Attempt::Failed(status, why) => {
                    let reason = if status == 504 { "timeout" } else { "failed" };
                    metrics::counter!("troupe_proxy_upstream_errors_total", "route" => self.name.clone(), "reason" => reason).increment(1);
                    return crate::server::error(status, why);
                }
            }
        }
        crate::server::error(last.0, last.1)
    }

    /// One health check of the member at `base`: whether it answered `check.path` with `2xx`
    /// or `3xx` within `check.timeout`.
    async fn check_once(&self, base: &Uri, check: &HealthCheck) -> bool {
        let mut parts = base.clone().into_parts();
        parts.path_and_query = check.path.parse().ok();
        let Ok(uri) = Uri::from_parts(parts) else {
            return false;
        };
        let mut request = Request::new(crate::body::full(Bytes::new()));
        *request.uri_mut() = uri;
        request.headers_mut().insert(
            header::USER_AGENT,
            HeaderValue::from_static("troupe-health-check"),
        );
        let checked = tokio::time::timeout(check.timeout, async {
            let response = self.client.request(request).await?;
            let status = response.status();
            // read (a bounded part of) the body, so the connection is reused
            let _ = http_body_util::Limited::new(response.into_body(), 64 << 10)
                .collect()
                .await;
            Ok::<_, hyper_util::client::legacy::Error>(status)
        })
        .await;
        matches!(checked, Ok(Ok(status)) if status.is_success() || status.is_redirection())
    }

    /// Starts the tunnel between the client's connection and `response`'s (a `101`) in
    /// `tunnels`, and answers the client's `101`: the member's end-to-end headers, with its
    /// `upgrade` and `connection: upgrade`.
    fn tunnel(
        &self,
        client: OnUpgrade,
        response: &mut Response<Incoming>,
        tunnels: &Tunnels,
    ) -> Response<Body> {
        let upstream = hyper::upgrade::on(&mut *response);
        let run = crate::tunnel::run(
            client,
            upstream,
            self.tunnel_idle_timeout,
            self.name.clone(),
        );
        tunnels.lock().unwrap_or_else(|p| p.into_inner()).spawn(run);
        let mut answer = Response::new(crate::body::full(Bytes::new()));
        *answer.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
        *answer.headers_mut() = end_to_end(response.headers());
        if let Some(protocol) = response.headers().get(header::UPGRADE) {
            answer
                .headers_mut()
                .insert(header::UPGRADE, protocol.clone());
        }
        answer
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        answer
    }

    /// Ends `pick` with `outcome`, logging a member's change of health.
    fn report(&self, pick: Pick, member: &dyn std::fmt::Display, outcome: Outcome) {
        let change = self
            .balancer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .finished(pick, outcome, troupe_runtime::time::now());
        if let Some(change) = change {
            tracing::warn!(upstream = %self.name, %member, from = ?change.from, to = ?change.to, "upstream member health changed");
        }
    }

    /// Asks the actor member `actor` with the request, its body read whole first.
    async fn ask_actor(
        &self,
        actor: &Addr<HttpCall>,
        request: &Forwarded<'_>,
        headers: &HeaderMap,
        body: Outgoing,
    ) -> Attempt {
        let body = match body {
            Outgoing::Whole(bytes) => bytes,
            Outgoing::Streamed(mut guarded) => {
                let verdict = guarded.verdict();
                match guarded.collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(_) => {
                        return Attempt::ClientBody(
                            verdict.get().copied().unwrap_or(BodyError::Broken),
                        );
                    }
                }
            }
        };
        let asked = HttpRequest {
            method: request.method.clone(),
            uri: request.uri.clone(),
            headers: headers.clone(),
            body,
            client: Some(request.client),
        };
        match actor.ask(asked, self.request_timeout).await {
            Ok(reply) => Attempt::Answered(crate::server::into_response(reply)),
            Err(err) => {
                let (status, text) = crate::core::status_for(&err);
                match err {
                    CallError::Unreachable { .. } | CallError::NotFound { .. } => {
                        Attempt::Undelivered(text)
                    }
                    _ => Attempt::Failed(status, text),
                }
            }
        }
    }

    async fn attempt(
        &self,
        base: &Uri,
        request: &Forwarded<'_>,
        headers: HeaderMap,
        body: Outgoing,
        upgrade: &mut Option<(OnUpgrade, &Tunnels)>,
    ) -> Attempt {
        let mut uri = base.clone().into_parts();
        uri.path_and_query = Some(
            request
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
        );
        let Ok(uri) = Uri::from_parts(uri) else {
            return Attempt::Failed(400, "the request target cannot be forwarded");
        };
        let (body, verdict) = match body {
            Outgoing::Whole(bytes) => (crate::body::full(bytes), None),
            Outgoing::Streamed(mut guarded) => {
                let verdict = guarded.verdict();
                (Body::boxed(guarded), Some(verdict))
            }
        };
        let mut outgoing = Request::new(body);
        *outgoing.method_mut() = request.method.clone();
        *outgoing.uri_mut() = uri;
        *outgoing.headers_mut() = headers;
        let sent = tokio::time::timeout(self.request_timeout, self.client.request(outgoing)).await;
        let client_body = || verdict.as_ref().and_then(|v| v.get().copied());
        match sent {
            Err(_) => match client_body() {
                Some(why) => Attempt::ClientBody(why),
                None => Attempt::Failed(504, "the upstream did not answer in time"),
            },
            Ok(Err(err)) if err.is_connect() => {
                Attempt::Undelivered("the upstream could not be reached")
            }
            Ok(Err(err)) => match client_body() {
                Some(why) => Attempt::ClientBody(why),
                None => {
                    tracing::debug!(upstream = %self.name, cause = %err, "upstream request failed");
                    Attempt::Failed(502, "the upstream failed to answer")
                }
            },
            Ok(Ok(mut response)) => {
                if response.status() == http::StatusCode::SWITCHING_PROTOCOLS
                    && let Some((client, tunnels)) = upgrade.take()
                {
                    return Attempt::Answered(self.tunnel(client, &mut response, tunnels));
                }
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                let body = Guarded::new(body, self.max_response, Deadline::Idle(self.read_timeout));
                Attempt::Answered(Response::from_parts(parts, Body::boxed(body)))
            }
        }
    }
}

/// A member, as logs name it.
enum MemberRef<'a> {
    Http(&'a Uri),
    Actor(&'a Addr<HttpCall>),
}

impl std::fmt::Display for MemberRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Http(uri) => write!(f, "{uri}"),
            Self::Actor(addr) => write!(f, "actor {}/{}", addr.node(), addr.name()),
        }
    }
}

/// A shared started upstream.
pub(crate) type SharedUpstream = Arc<UpstreamPool>;

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let h = headers(&[
            ("connection", "keep-alive, X-Secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "gzip"),
            ("accept", "text/html"),
        ]);
        let kept = end_to_end(&h);
        let names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, vec!["accept"]);
        // gRPC's `te: trailers` is the one `te` passed on
        let grpc = end_to_end(&headers(&[
            ("te", "trailers"),
            ("content-type", "application/grpc"),
        ]));
        assert_eq!(grpc["te"], "trailers");
    }

    #[test]
    fn forwarding_headers_extend_what_came_before() {
        let mut h = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("via", "1.1 edge-cache"),
            ("host", "shop.example"),
            ("connection", "x-secret"),
            ("x-secret", "1"),
        ]);
        let ours = ForwardingHeaders::new("192.0.2.1".parse().unwrap(), "https");
        prepare_upstream_headers(&mut h, &ours, Some("shop.example"));
        assert_eq!(h["x-forwarded-for"], "203.0.113.7, 192.0.2.1");
        assert_eq!(h["via"], "1.1 edge-cache, 1.1 troupe");
        assert_eq!(
            h["forwarded"],
            "for=192.0.2.1;proto=https;host=\"shop.example\""
        );
        assert_eq!(h["host"], "shop.example");
        assert!(h.get("x-secret").is_none() && h.get("connection").is_none());
        let mut v6 = HeaderMap::new();
        let ours_v6 = ForwardingHeaders::new("2001:db8::1".parse().unwrap(), "https");
        prepare_upstream_headers(&mut v6, &ours_v6, None);
        assert_eq!(v6["forwarded"], "for=\"[2001:db8::1]\";proto=https");
        assert_eq!(v6["x-forwarded-for"], "2001:db8::1");
        assert_eq!(v6["via"], "1.1 troupe");
        // with none before, the connection's own values: for its first host, and others
        let fresh = |host| {
            let mut h = HeaderMap::new();
            prepare_upstream_headers(&mut h, &ours, host);
            h
        };
        let first = fresh(Some("Shop.Example"));
        assert_eq!(first["x-forwarded-for"], "192.0.2.1");
        assert_eq!(first["via"], "1.1 troupe");
        assert_eq!(
            first["forwarded"],
            "for=192.0.2.1;proto=https;host=\"shop.example\""
        );
        assert_eq!(
            fresh(Some("API.example"))["forwarded"],
            "for=192.0.2.1;proto=https;host=\"api.example\""
        );
        assert_eq!(
            fresh(Some("shop.example"))["forwarded"],
            "for=192.0.2.1;proto=https;host=\"shop.example\""
        );
        assert_eq!(fresh(None)["forwarded"], "for=192.0.2.1;proto=https");
        assert_eq!(
            fresh(Some("a\"b"))["forwarded"],
            "for=192.0.2.1;proto=https"
        );
    }

    #[test]
    fn members_must_be_http_urls() {
        assert!(Upstream::http(["http://127.0.0.1:8080"]).start("u").is_ok());
        for bad in ["ftp://x:1", "127.0.0.1:80", "http://"] {
            assert!(Upstream::http([bad]).start("u").is_err(), "{bad}");
        }
        assert!(Upstream::http(Vec::<String>::new()).start("u").is_err());
    }

    #[test]
    fn only_idempotent_methods_are_sent_again() {
        assert!(idempotent(&Method::GET) && idempotent(&Method::PUT));
        assert!(!idempotent(&Method::POST) && !idempotent(&Method::PATCH));
    }
}
