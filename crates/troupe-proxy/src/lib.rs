//! troupe's web/proxy server: the gateway at the edge of a system.
//!
//! The seed talk starts every system with a web/proxy server in front: it takes client
//! requests, decides which backend piece each one goes to, and returns the response. Here the
//! backend pieces are actors: the proxy turns each HTTP request into an [`HttpRequest`],
//! asks the routed target's [`Addr<HttpCall>`](troupe_runtime::Addr) (on any node) with it, and
//! turns the [`HttpResponse`] back into HTTP. Failures become gateway statuses (see [`core::status_for`]),
//! each with a short text body; per-client-IP rate limiting answers floods with `429`.
//!
//! # Layout
//! - [`core`]: routing table and failure mapping — pure, tested directly.
//! - [`access`]: access-log lines (combined log format or JSON) and their writer.
//! - [`message`]: [`HttpRequest`] / [`HttpResponse`], the request targets answer, and
//!   [`HttpCall`], their message type.
//! - `head`: the first request head of each connection, checked so malformed requests get a
//!   `400` with a reason.
//! - `server`: the hyper server (HTTP/1.1 keep-alive and HTTP/2), limits, graceful drain.
//! - [`upstream`]: HTTP upstreams, routes whose members are HTTP servers.
//! - [`stream`]: routes whose target actors pull request bodies and push response bodies
//!   chunk by chunk, on any node.
//! - `body`, `tunnel`: streamed bodies' limits and deadlines; WebSocket pass-through.
//! - [`actor`]: [`Proxy`] (configuration) and [`ProxyActor`] (the supervised actor).
//!
//! # Metrics
//! `troupe_proxy_requests_total{status}`, `troupe_proxy_request_seconds`,
//! `troupe_proxy_rate_limited_total`, `troupe_proxy_connections_refused_total` through the
//! `metrics` facade (install an exporter such as `metrics-exporter-prometheus` to scrape them).

pub mod access;
pub mod actor;
mod body;
pub mod core;
mod deadline_io;
mod head;
pub mod message;
mod server;
pub mod stream;
mod tls;
mod tunnel;
pub mod upstream;
mod wire;

/// The `http` crate the messages' types come from ([`http::StatusCode`], [`http::HeaderMap`],
/// ...), so targets need no dependency of their own on it.
pub use http;

pub use access::{AccessLog, AccessLogFormat, AccessLogTo, UnknownAccessLogFormat};
pub use actor::{Proxy, ProxyActor, ProxyMsg};
#[doc(hidden)]
pub use head::fuzz_head_and_route;
pub use message::{HttpCall, HttpRequest, HttpResponse};
pub use stream::{HttpStreamCall, HttpStreamRequest, HttpStreamResponse};
pub use upstream::{Upstream, UpstreamError};
