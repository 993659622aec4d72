//! HTTP upstreams: a route whose members are HTTP servers rather than actors, the job nginx's
//! `proxy_pass` does. Requests go through hyper-util's pooled keep-alive client; members are
//! picked and ejected by the balancer's pure core (round robin, a circuit
//! breaker per member: consecutive failures eject it, a probe after the open period re-admits
//! it); a request whose member could not be reached is tried on another when its method is
//! idempotent; the usual proxy headers are set and hop-by-hop headers removed.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use std::sync::Mutex;
use troupe_balancer::core::{Balancer, BreakerConfig, MemberId, Outcome, Strategy};

/// Idle keep-alive connections kept per member, at most (hyper-util's default keeps any
/// number); a burst's extra connections are closed once idle.
const MAX_IDLE_PER_MEMBER: usize = 256;

/// An HTTP upstream's configuration: its members' base URLs and its timeouts. Route to it with
/// [`Proxy::route_upstream`](crate::Proxy::route_upstream).
#[derive(Clone, Debug)]
pub struct Upstream {
    members: Vec<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
    breaker: BreakerConfig,
    max_response: usize,
}

impl Upstream {
    /// HTTP/1.1 servers at `members` (`http://host:port`, each), taken in turn (round robin,
    /// as nginx does by default); a 1 s connect timeout, a 30 s timeout for the whole response, the balancer's
    /// default breaker, responses of at most 16 MiB.
    pub fn http(members: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            members: members.into_iter().map(Into::into).collect(),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            breaker: BreakerConfig::default(),
            max_response: 16 << 20,
        }
    }

    /// How long connecting to a member may take before it counts as unreachable.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a member gets to send its whole response before the client gets `504`.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// When a member is ejected and re-admitted (see `troupe_balancer::core::BreakerConfig`).
    pub fn breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// The largest response body passed on; a larger one is answered `502`.
    pub fn max_response(mut self, bytes: usize) -> Self {
        self.max_response = bytes;
        self
    }

    /// The running pool, named `name` in metrics and logs.
    ///
    /// # Errors
    /// A member that is not an `http://host:port` URL, or no member at all.
    pub(crate) fn start(&self, name: &str) -> Result<UpstreamPool, UpstreamError> {
        if self.members.is_empty() {
            return Err(UpstreamError::NoMembers(name.to_string()));
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
            members.push(uri);
            balancer.add(MemberId(i as u64), 1, None);
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(self.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(MAX_IDLE_PER_MEMBER)
            .build(connector);
        Ok(UpstreamPool {
            name: name.to_string(),
            members,
            balancer: Mutex::new((balancer, SmallRng::seed_from_u64(0))),
            client,
            request_timeout: self.request_timeout,
            max_response: self.max_response,
        })
    }
}

/// Why an upstream could not start.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A member is not an `http://host:port` URL
    #[error("upstream member {0:?} is not an http://host:port URL")]
    BadMember(String),
    /// An upstream without members
    #[error("upstream {0:?} has no members")]
    NoMembers(String),
}

/// A started upstream: its members, their balancer and the pooled client.
pub(crate) struct UpstreamPool {
    name: String,
    members: Vec<Uri>,
    balancer: Mutex<(Balancer, SmallRng)>,
    client: Client<HttpConnector, Full<Bytes>>,
    request_timeout: Duration,
    max_response: usize,
}

/// What the client asked for, read off the request before its body.
pub(crate) struct Forwarded<'a> {
    pub(crate) method: &'a Method,
    pub(crate) path_and_query: &'a str,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) client: IpAddr,
    pub(crate) host: Option<&'a str>,
    pub(crate) proto: &'a str,
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

/// `headers` without hop-by-hop ones: those of [`HOP_BY_HOP`], `upgrade`, and any the
/// `connection` header names.
pub(crate) fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    let mut out = headers.clone();
    for name in HOP_BY_HOP.iter().chain([&header::UPGRADE]) {
        out.remove(name);
    }
    for name in named {
        out.remove(name.as_str());
    }
    out
}

/// The request headers sent upstream: the client's end-to-end headers, with
/// `x-forwarded-for` extended by the client's address, `forwarded` (RFC 7239) extended by a
/// `for`/`proto`/`host` element, and `via` extended by this proxy.
pub(crate) fn upstream_headers(request: &Forwarded<'_>) -> HeaderMap {
    let mut headers = end_to_end(request.headers);
    let client = request.client.to_string();
    let xff = match request
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(before) => format!("{before}, {client}"),
        None => client.clone(),
    };
    // an IPv6 address is quoted and bracketed in `forwarded`
    let node = match request.client {
        IpAddr::V4(_) => client.clone(),
        IpAddr::V6(_) => format!("\"[{client}]\""),
    };
    let mut element = format!("for={node};proto={}", request.proto);
    if let Some(host) = request
        .host
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()))
    {
        element.push_str(&format!(";host=\"{}\"", host.replace('"', "")));
    }
    let forwarded = match request
        .headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
    {
        Some(before) => format!("{before}, {element}"),
        None => element,
    };
    let via = match request
        .headers
        .get(header::VIA)
        .and_then(|v| v.to_str().ok())
    {
        Some(before) => format!("{before}, 1.1 troupe"),
        None => "1.1 troupe".to_string(),
    };
    for (name, value) in [
        (HeaderName::from_static("x-forwarded-for"), xff),
        (header::FORWARDED, forwarded),
        (header::VIA, via),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    headers
}

/// Whether a request with `method` may be sent again after it could not be delivered.
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// How one attempt on a member ended.
enum Attempt {
    Answered(Response<Full<Bytes>>),
    /// Nothing was delivered (the connection could not be made): another member may be tried
    Undelivered(String),
    /// The request may have reached the member
    Failed(u16, String),
}

impl UpstreamPool {
    /// The upstream's name, as routes and metrics know it.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Sends `request` with `body` to a member and answers its response, or the gateway's
    /// status for what went wrong (`502` unreachable or a bad answer, `503` no member
    /// admitted, `504` no answer in time). An undelivered idempotent request is tried on
    /// another member, once per member at most.
    pub(crate) async fn forward(
        &self,
        request: &Forwarded<'_>,
        body: Bytes,
    ) -> Response<Full<Bytes>> {
        let headers = upstream_headers(request);
        let attempts = if idempotent(request.method) {
            self.members.len()
        } else {
            1
        };
        let mut last = (503, "no upstream member is admitted".to_string());
        for _ in 0..attempts {
            let picked = {
                let mut guard = self.balancer.lock().unwrap_or_else(|p| p.into_inner());
                let (balancer, rng) = &mut *guard;
                balancer.pick(None, troupe_runtime::time::now(), rng)
            };
            let Some(pick) = picked else { break };
            let base = &self.members[pick.member.0 as usize];
            let attempt = self.attempt(base, request, &headers, body.clone()).await;
            let outcome = match &attempt {
                Attempt::Answered(_) => Outcome::Success,
                Attempt::Failed(504, _) => Outcome::Timeout,
                _ => Outcome::Error,
            };
            let change = self
                .balancer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .0
                .finished(pick, outcome, troupe_runtime::time::now());
            if let Some(change) = change {
                tracing::warn!(upstream = %self.name, member = %base, from = ?change.from, to = ?change.to, "upstream member health changed");
            }
            match attempt {
                Attempt::Answered(response) => return response,
                Attempt::Undelivered(why) => {
                    metrics::counter!("troupe_proxy_upstream_errors_total", "route" => self.name.clone(), "reason" => "connect").increment(1);
                    last = (502, why);
                }
                Attempt::Failed(status, why) => {
                    let reason = if status == 504 { "timeout" } else { "failed" };
                    metrics::counter!("troupe_proxy_upstream_errors_total", "route" => self.name.clone(), "reason" => reason).increment(1);
                    return crate::server::error(status, &why);
                }
            }
        }
        crate::server::error(last.0, &last.1)
    }

    async fn attempt(
        &self,
        base: &Uri,
        request: &Forwarded<'_>,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Attempt {
        let mut uri = base.clone().into_parts();
        uri.path_and_query = request.path_and_query.parse().ok();
        let Ok(uri) = Uri::from_parts(uri) else {
            return Attempt::Failed(400, "the request target cannot be forwarded".into());
        };
        let mut outgoing = Request::new(Full::new(body));
        *outgoing.method_mut() = request.method.clone();
        *outgoing.uri_mut() = uri;
        *outgoing.headers_mut() = headers.clone();
        let sent = tokio::time::timeout(self.request_timeout, async {
            let response = self.client.request(outgoing).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, self.max_response).collect().await;
            Ok::<_, hyper_util::client::legacy::Error>((parts, body))
        })
        .await;
        match sent {
            Err(_) => Attempt::Failed(504, "the upstream did not answer in time".into()),
            Ok(Err(err)) if err.is_connect() => {
                Attempt::Undelivered("the upstream could not be reached".into())
            }
            Ok(Err(err)) => {
                tracing::debug!(upstream = %self.name, cause = %err, "upstream request failed");
                Attempt::Failed(502, "the upstream failed to answer".into())
            }
            Ok(Ok((_, Err(err)))) if err.downcast_ref::<LengthLimitError>().is_some() => {
                Attempt::Failed(502, "the upstream's response is over the limit".into())
            }
            Ok(Ok((_, Err(_)))) => Attempt::Failed(502, "the upstream's response broke off".into()),
            Ok(Ok((mut parts, Ok(body)))) => {
                parts.headers = end_to_end(&parts.headers);
                Attempt::Answered(Response::from_parts(parts, Full::new(body.to_bytes())))
            }
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
            ("te", "trailers"),
            ("accept", "text/html"),
        ]);
        let kept = end_to_end(&h);
        let names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, vec!["accept"]);
    }

    #[test]
    fn forwarding_headers_extend_what_came_before() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("via", "1.1 edge-cache"),
            ("host", "shop.example"),
        ]);
        let method = Method::GET;
        let request = Forwarded {
            method: &method,
            path_and_query: "/x?y",
            headers: &h,
            client: "192.0.2.1".parse().unwrap(),
            host: Some("shop.example"),
            proto: "https",
        };
        let out = upstream_headers(&request);
        assert_eq!(out["x-forwarded-for"], "203.0.113.7, 192.0.2.1");
        assert_eq!(out["via"], "1.1 edge-cache, 1.1 troupe");
        assert_eq!(
            out["forwarded"],
            "for=192.0.2.1;proto=https;host=\"shop.example\""
        );
        assert_eq!(out["host"], "shop.example");
        let v6 = Forwarded {
            client: "2001:db8::1".parse().unwrap(),
            host: None,
            ..request
        };
        assert_eq!(
            upstream_headers(&v6)["forwarded"],
            "for=\"[2001:db8::1]\";proto=https"
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
