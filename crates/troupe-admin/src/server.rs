//! The HTTP server: routing, the answers, and its place in the listener shell.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use troupe_runtime::Mesh;
use troupe_runtime::listener::{Connection, ListenerShell, ServerTask};

use crate::{AdminError, ProcessState};

/// Open admin connections at most, and per client address.
const MAX_CONNECTIONS: usize = 64;
const MAX_CONNECTIONS_PER_ADDRESS: usize = 16;
/// A connection that sends no complete request head within this is closed.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`AdminServer::stop`] waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(2);

/// The live view at `/`: one self-contained page that polls `/state` twice a second.
const DASHBOARD: &str = include_str!("dashboard.html");

const STARTING: u8 = 0;
const READY: u8 = 1;
const STOPPING: u8 = 2;

/// Whether the process is ready to serve, as `/ready` reports it: starting, then ready, then
/// stopping. Clones share the state.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicU8>);

impl Readiness {
    /// Starting: `/ready` answers `503 starting`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The topology runs: `/ready` answers `200 ready`.
    pub fn set_ready(&self) {
        // a stopping process does not become ready again
        let _ = self
            .0
            .compare_exchange(STARTING, READY, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The process is shutting down: `/ready` answers `503 stopping` from now on.
    pub fn set_stopping(&self) {
        self.0.store(STOPPING, Ordering::Release);
    }

    /// Whether `/ready` answers 200.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire) == READY
    }

    fn word(&self) -> &'static str {
        match self.0.load(Ordering::Acquire) {
            READY => "ready",
            STOPPING => "stopping",
            _ => "starting",
        }
    }
}

/// What a request is answered from.
struct View {
    mesh: Mesh,
    readiness: Readiness,
    metrics: PrometheusHandle,
}

/// A running admin endpoint. Dropping it stops serving at once; [`stop`](Self::stop) lets the
/// requests in flight finish first.
#[derive(Debug)]
pub struct AdminServer {
    task: ServerTask,
}

impl AdminServer {
    /// Binds `addr` and serves the nodes of `mesh` there, reporting `readiness`.
    ///
    /// Installs the process's Prometheus recorder if no call has yet ([`crate::prometheus`]).
    ///
    /// # Errors
    /// [`AdminError::Bind`] if `addr` cannot be bound; [`AdminError::Recorder`] if the process
    /// has another `metrics` recorder.
    ///
    /// # Cancel safety
    /// Cancel safe: dropped before it returns, nothing is left listening.
    pub async fn start(
        addr: SocketAddr,
        mesh: Mesh,
        readiness: Readiness,
    ) -> Result<Self, AdminError> {
        let metrics = crate::prometheus()?;
        let bind_error = |source| AdminError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let view = Arc::new(View {
            mesh,
            readiness,
            metrics,
        });
        let task = ListenerShell::new("admin")
            .max_connections(MAX_CONNECTIONS)
            .max_connections_per_address(MAX_CONNECTIONS_PER_ADDRESS)
            .drain_timeout(DRAIN)
            .refusal(
                plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many admin connections",
                )
                .1,
            )
            .spawn(listener, move |conn| serve(view.clone(), conn))
            .map_err(bind_error)?;
        tracing::info!(addr = %task.local_addr(), "admin endpoint listening");
        Ok(Self { task })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.task.local_addr()
    }

    /// Stops accepting, lets requests in flight finish (up to 2 s), and closes the rest.
    ///
    /// # Cancel safety
    /// Dropping the future closes every connection at once, as dropping the server does.
    pub async fn stop(self) {
        self.task.stop().await;
    }
}

async fn serve(view: Arc<View>, conn: Connection) {
    let Connection {
        stream,
        peer,
        mut drain,
        ..
    } = conn;
    let service = service_fn(move |req: Request<Incoming>| {
        let view = view.clone();
        async move { Ok::<_, Infallible>(respond(&view, &req)) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = drain.wait() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = ended {
        tracing::debug!(cause = %err, %peer, "admin connection ended with an error");
    }
}

fn respond(view: &View, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let known = matches!(path, "/" | "/metrics" | "/health" | "/ready" | "/state");
    if !known {
        return text(plain(
            StatusCode::NOT_FOUND,
            "not found; the admin endpoint serves / (a live view), /metrics, /health, /ready and /state",
        ));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = text(plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed; use GET",
        ));
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/" => {
            let mut response = Response::new(Full::new(Bytes::from_static(DASHBOARD.as_bytes())));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        "/metrics" => {
            view.metrics.run_upkeep();
            let mut text = view.metrics.render();
            text.push_str(&crate::exposition::runtime_metrics(&view.mesh));
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        "/health" => text(plain(StatusCode::OK, "ok")),
        "/ready" => {
            let status = if view.readiness.is_ready() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(plain(status, view.readiness.word()))
        }
        _ => {
            let state = ProcessState::of(&view.mesh, view.readiness.is_ready());
            match serde_json::to_vec_pretty(&state) {
                Ok(body) => {
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                    response
                }
                Err(err) => text(plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("cannot encode the state: {err}"),
                )),
            }
        }
    }
}

/// A status with a one-line text body, and the same as raw HTTP/1.1 bytes (for the refusal
/// the listener shell writes before any request is read).
fn plain(status: StatusCode, line: &str) -> (StatusCode, Vec<u8>, String) {
    let body = format!("{line}\n");
    let raw = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    );
    (status, raw.into_bytes(), body)
}

fn text((status, _, body): (StatusCode, Vec<u8>, String)) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
