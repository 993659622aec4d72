//! The HTTP server: routing, the answers, and its place in the listener shell.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use troupe_runtime::Mesh;
use troupe_runtime::listener::{Connection, ListenerShell, ServerTask};

use rustls::pki_types::CertificateDer;
use tokio_rustls::TlsAcceptor;

use crate::parts::{ActionError, AdminParts};
use crate::{AdminError, OPERATOR_HEADER, ProcessState};

/// Open admin connections at most, and per client address.
const MAX_CONNECTIONS: usize = 64;
const MAX_CONNECTIONS_PER_ADDRESS: usize = 16;
/// A connection that sends no complete request head within this is closed.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`AdminServer::stop`] waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(2);

/// The live view at `/`: one self-contained page fed by `/events`.
const DASHBOARD: &str = include_str!("dashboard.html");

/// What an answer's body is: whole, or the live view's event stream.
type AdminBody = Either<Full<Bytes>, crate::events::EventStream>;

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

/// An operator's request that the process serving the endpoint leave the cluster
/// (`POST /leave`): whoever runs the process waits for it ([`Leave::requested`]) and shuts
/// down gracefully, as on Ctrl-C. Clones share the request.
#[derive(Clone, Debug)]
pub struct Leave(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Leave {
    fn default() -> Self {
        Self(Arc::new(tokio::sync::watch::channel(false).0))
    }
}

impl Leave {
    /// Not requested yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests it: [`requested`](Self::requested) completes, now and for every later call.
    pub fn request(&self) {
        self.0.send_replace(true);
    }

    /// Whether it was requested.
    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once it is requested (at once if it was).
    ///
    /// # Cancel safety
    /// Cancel safe: a request is never consumed.
    pub async fn requested(&self) {
        let mut seen = self.0.subscribe();
        // the sender lives in `self`, so the channel cannot close while this waits
        let _ = seen.wait_for(|requested| *requested).await;
    }
}

/// What a request is answered from.
pub(crate) struct View {
    pub(crate) mesh: Mesh,
    pub(crate) readiness: Readiness,
    metrics: PrometheusHandle,
    parts: AdminParts,
    operator_tls: Option<TlsAcceptor>,
    leave: Option<Leave>,
}

impl View {
    /// Each database's replicas, as `/db` answers (each waits up to its database's timeout).
    pub(crate) async fn db_statuses(&self) -> Vec<crate::DbState> {
        let mut dbs = Vec::with_capacity(self.parts.dbs.len());
        for db in &self.parts.dbs {
            dbs.push(db.status().await);
        }
        dbs
    }

    /// Each queue's counts, as `/queue` answers.
    pub(crate) async fn queue_stats(&self) -> Vec<crate::QueueState> {
        let mut queues = Vec::with_capacity(self.parts.queues.len());
        for queue in &self.parts.queues {
            queues.push(queue.stats().await);
        }
        queues
    }
}

/// What an admin endpoint serves besides the process's own state.
#[derive(Clone, Debug, Default)]
pub struct AdminOptions {
    /// The databases and queues it reports on (`/db`, `/queue`) and acts on.
    pub parts: AdminParts,
    /// The TLS side, for operators: with it, a connection whose first byte opens a TLS
    /// handshake is served over TLS with a client certificate of the cluster CA required
    /// (build it with `NodeIdentity::admin_server_config`), and only such connections may
    /// change state. Without it (a one-process run has no cluster CA) nothing can.
    pub operator_tls: Option<Arc<rustls::ServerConfig>>,
    /// Where `POST /leave` asks the process to shut down gracefully; without it the endpoint
    /// refuses to (`409`: whoever runs the process decides when it ends).
    pub leave: Option<Leave>,
}

/// A running admin endpoint. Dropping it stops serving at once; [`stop`](Self::stop) lets the
/// requests in flight finish first.
#[derive(Debug)]
pub struct AdminServer {
    task: ServerTask,
}

impl AdminServer {
    /// Binds `addr` and serves the nodes of `mesh` there, reporting `readiness`; as
    /// [`start_with`](Self::start_with) with no parts and no operators.
    ///
    /// # Errors
    /// As [`start_with`](Self::start_with).
    ///
    /// # Cancel safety
    /// Cancel safe: dropped before it returns, nothing is left listening.
    pub async fn start(
        addr: SocketAddr,
        mesh: Mesh,
        readiness: Readiness,
    ) -> Result<Self, AdminError> {
        Self::start_with(addr, mesh, readiness, AdminOptions::default()).await
    }

    /// Binds `addr` and serves the nodes of `mesh` and the parts of `options` there, reporting
    /// `readiness`.
    ///
    /// Installs the process's Prometheus recorder if no call has yet ([`crate::prometheus`]).
    ///
    /// # Errors
    /// [`AdminError::Bind`] if `addr` cannot be bound; [`AdminError::Recorder`] if the process
    /// has another `metrics` recorder.
    ///
    /// # Cancel safety
    /// Cancel safe: dropped before it returns, nothing is left listening.
    pub async fn start_with(
        addr: SocketAddr,
        mesh: Mesh,
        readiness: Readiness,
        options: AdminOptions,
    ) -> Result<Self, AdminError> {
        let metrics = crate::prometheus()?;
        let bind_error = |source| AdminError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let view = Arc::new(View {
            mesh,
            readiness,
            metrics,
            parts: options.parts,
            operator_tls: options.operator_tls.map(TlsAcceptor::from),
            leave: options.leave,
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

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

async fn serve(view: Arc<View>, conn: Connection) {
    let Connection {
        stream,
        peer,
        drain,
        ..
    } = conn;
    let Some(acceptor) = view.operator_tls.clone() else {
        return serve_http(view, stream, peer, None, drain).await;
    };
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(HEAD_TIMEOUT, stream.peek(&mut first)).await;
    if !matches!(peeked, Ok(Ok(1))) || first[0] != TLS_HANDSHAKE {
        return serve_http(view, stream, peer, None, drain).await;
    }
    match tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => {
            let chain = tls
                .get_ref()
                .1
                .peer_certificates()
                .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect());
            serve_http(view, tls, peer, chain, drain).await;
        }
        Ok(Err(err)) => {
            tracing::info!(cause = %err, %peer, "admin TLS handshake refused");
        }
        Err(_) => tracing::debug!(%peer, "admin TLS handshake timed out"),
    }
}

/// Serves HTTP/1.1 on `io`; `chain` is the client's certificate chain on a TLS connection.
async fn serve_http<I>(
    view: Arc<View>,
    io: I,
    peer: SocketAddr,
    chain: Option<Vec<CertificateDer<'static>>>,
    mut drain: troupe_runtime::listener::Drain,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let chain = Arc::new(chain);
    let events_drain = drain.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let view = view.clone();
        let chain = chain.clone();
        let drain = events_drain.clone();
        async move { Ok::<_, Infallible>(respond(&view, req, chain.as_deref(), peer, drain).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(TokioIo::new(io), service);
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

const SERVED: &str = "not found; the admin endpoint serves / (a live view), /events (its \
     server-sent events), /metrics, /health, /ready, /state, /db, /queue, /queue/NAME/dead-letters \
     and /placement, and takes POST /db/NAME/promote, /db/NAME/add-replica/N, \
     /db/NAME/remove-replica/N, /queue/NAME/replay/ID, /actors/NODE/NAME/kill, \
     /placement/GROUP/move/NODE, /placement/GROUP/unmove, /nodes/NODE/drain, /nodes/NODE/undrain \
     and /leave from operators";

/// What a request asks for, from its path.
enum Route<'a> {
    Page,
    Events,
    Metrics,
    Health,
    Ready,
    State,
    Dbs,
    Queues,
    DeadLetters(&'a str),
    Promote(&'a str),
    Members(&'a str, bool, &'a str),
    Replay(&'a str, &'a str),
    Kill(&'a str, &'a str),
    Placement,
    /// A group moved to a node (`Some`), or its move cleared
    Move(&'a str, Option<&'a str>),
    /// A node drained (`true`) or back in service
    Drain(&'a str, bool),
    Leave,
}

impl<'a> Route<'a> {
    fn of(path: &'a str) -> Option<Self> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        Some(match segments.as_slice() {
            [""] => Self::Page,
            ["events"] => Self::Events,
            ["metrics"] => Self::Metrics,
            ["health"] => Self::Health,
            ["ready"] => Self::Ready,
            ["state"] => Self::State,
            ["db"] => Self::Dbs,
            ["queue"] => Self::Queues,
            ["queue", name, "dead-letters"] => Self::DeadLetters(name),
            ["db", name, "promote"] => Self::Promote(name),
            ["db", name, "add-replica", n] => Self::Members(name, true, n),
            ["db", name, "remove-replica", n] => Self::Members(name, false, n),
            ["queue", name, "replay", item] => Self::Replay(name, item),
            ["actors", node, name, "kill"] => Self::Kill(node, name),
            ["placement"] => Self::Placement,
            ["placement", group, "move", node] => Self::Move(group, Some(node)),
            ["placement", group, "unmove"] => Self::Move(group, None),
            ["nodes", node, "drain"] => Self::Drain(node, true),
            ["nodes", node, "undrain"] => Self::Drain(node, false),
            ["leave"] => Self::Leave,
            _ => return None,
        })
    }

    /// Whether it changes state (POST, operators only) rather than reads it (GET).
    fn changes_state(&self) -> bool {
        matches!(
            self,
            Self::Promote(_)
                | Self::Members(..)
                | Self::Replay(..)
                | Self::Kill(..)
                | Self::Move(..)
                | Self::Drain(..)
                | Self::Leave
        )
    }
}

async fn respond(
    view: &Arc<View>,
    req: Request<Incoming>,
    chain: Option<&[CertificateDer<'static>]>,
    peer: SocketAddr,
    drain: troupe_runtime::listener::Drain,
) -> Response<AdminBody> {
    let Some(route) = Route::of(req.uri().path()) else {
        return whole(text(plain(StatusCode::NOT_FOUND, SERVED)));
    };
    let (method, allowed) = if route.changes_state() {
        (Method::POST, "POST")
    } else {
        (Method::GET, "GET, HEAD")
    };
    let method_ok =
        req.method() == method || (method == Method::GET && req.method() == Method::HEAD);
    if !method_ok {
        let mut response = text(plain(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("method not allowed; use {allowed}"),
        ));
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allowed));
        return whole(response);
    }
    let mut operator = String::new();
    if route.changes_state() {
        match operator_of(view, &req, chain) {
            Ok(name) => operator = name,
            Err(refusal) => {
                tracing::warn!(%peer, path = %req.uri().path(), reason = %refusal, "admin action refused");
                return whole(text(plain(StatusCode::FORBIDDEN, &refusal)));
            }
        }
    }
    whole(match route {
        Route::Events => return crate::events::respond(view.clone(), drain).map(Either::Right),
        Route::Page => {
            let mut response = Response::new(Full::new(Bytes::from_static(DASHBOARD.as_bytes())));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        Route::Metrics => {
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
        Route::Health => text(plain(StatusCode::OK, "ok")),
        Route::Ready => {
            let status = if view.readiness.is_ready() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(plain(status, view.readiness.word()))
        }
        Route::State => json(&ProcessState::of(&view.mesh, view.readiness.is_ready())),
        Route::Dbs => json(&view.db_statuses().await),
        Route::Queues => json(&view.queue_stats().await),
        Route::DeadLetters(name) => match view.parts.queues.iter().find(|q| q.name() == name) {
            Some(queue) => match queue.dead_letters().await {
                Ok(letters) => json(&letters),
                Err(err) => action_error(&err),
            },
            None => no_such("queue", name, view.parts.queues.iter().map(|q| q.name())),
        },
        Route::Promote(name) => promote(view, name, &operator).await,
        Route::Members(name, add, n) => members(view, name, add, n, &operator).await,
        Route::Replay(name, item) => replay(view, name, item, &operator).await,
        Route::Kill(node, name) => kill(view, node, name, &operator),
        Route::Placement => match &view.parts.placement {
            Some(placement) => json(&placement.state().await),
            None => json(&crate::PlacementState::default()),
        },
        Route::Move(group, node) => move_group(view, group, node, &operator).await,
        Route::Drain(node, drained) => drain_node(view, node, drained, &operator).await,
        Route::Leave => leave(view, &operator),
    })
}

/// Moves failover group `group` to `node`, or clears its move.
async fn move_group(
    view: &View,
    group: &str,
    node: Option<&str>,
    operator: &str,
) -> Response<Full<Bytes>> {
    let Some(placement) = &view.parts.placement else {
        return no_failover_group(group);
    };
    let Some(declared) = placement.groups().iter().find(|g| g.name == group) else {
        return no_such(
            "failover group",
            group,
            placement.groups().iter().map(|g| g.name.as_str()),
        );
    };
    if let Some(node) = node {
        // a group placed on roles may also go to a node playing one, declared or joined:
        // as far as the nodes of this process know (the drivers follow the move only while
        // that node is live and plays it)
        let plays_a_role = || {
            view.mesh.node_names().iter().any(|local| {
                view.mesh.node(local).is_some_and(|local| {
                    let plays = local.roles_of(node);
                    declared.roles.iter().any(|r| plays.contains(r))
                })
            })
        };
        if let Some((status, why)) = move_refusal(declared, placement.nodes(), node, plays_a_role) {
            return text(plain(status, &why));
        }
    }
    match placement.move_group(group, node).await {
        Ok(()) => {
            tracing::warn!(%operator, %group, to = ?node, "operator moved a failover group");
            let said = match node {
                Some(node) => format!(
                    "{group} moved to {node}: it goes there as soon as {node} is live, its \
                     messages handed over in order (`troupe placement` shows where it runs)"
                ),
                None => {
                    format!("{group}: move cleared; it stays where it runs, in its declared order")
                }
            };
            text(plain(StatusCode::OK, &said))
        }
        Err(err) => {
            tracing::warn!(%operator, %group, to = ?node, cause = %err, "operator's move failed");
            action_error(&err)
        }
    }
}

/// Drains `node`, or puts it back in service.
async fn drain_node(
    view: &View,
    node: &str,
    drained: bool,
    operator: &str,
) -> Response<Full<Bytes>> {
    let Some(placement) = &view.parts.placement else {
        return text(plain(
            StatusCode::NOT_FOUND,
            "this topology has no failover group (and no metadata group): there is nothing to \
             drain",
        ));
    };
    if !placement.nodes().iter().any(|n| n == node) {
        return no_node(node, placement.nodes());
    }
    match placement.drain(node, drained).await {
        Ok(()) => {
            tracing::warn!(%operator, %node, drained, "operator drained a node");
            let said = if drained {
                format!(
                    "{node} drained: the failover groups it runs move off, handed over in order \
                     (`troupe placement` shows where they run)"
                )
            } else {
                format!("{node} back in service: failover groups may run there again")
            };
            text(plain(StatusCode::OK, &said))
        }
        Err(err) => {
            tracing::warn!(%operator, %node, drained, cause = %err, "operator's drain failed");
            action_error(&err)
        }
    }
}

/// Asks the process to shut down gracefully; answers 202 at once.
fn leave(view: &View, operator: &str) -> Response<Full<Bytes>> {
    let Some(leave) = &view.leave else {
        return text(plain(
            StatusCode::CONFLICT,
            "this process cannot be asked to leave through its admin endpoint (it was not \
             started by troupe::launch); stop it as it was started",
        ));
    };
    let nodes = view.mesh.node_names().join(", ");
    tracing::warn!(%operator, %nodes, "operator asked this process to leave the cluster");
    leave.request();
    text(plain(
        StatusCode::ACCEPTED,
        &format!(
            "leaving: this process stops its actors and its nodes ({nodes}) leave the cluster"
        ),
    ))
}

/// Why moving `group` to `node` is refused, if it is: a node it may never run on (`nodes`: the
/// topology's; `plays_a_role`: whether `node` plays one of the group's roles, as far as this
/// process knows)
fn move_refusal(
    group: &crate::DeclaredGroup,
    nodes: &[String],
    node: &str,
    plays_a_role: impl FnOnce() -> bool,
) -> Option<(StatusCode, String)> {
    if group.order.iter().any(|n| n == node) || plays_a_role() {
        return None;
    }
    if !nodes.iter().any(|n| n == node) && group.roles.is_empty() {
        return Some((StatusCode::NOT_FOUND, no_node_text(node, nodes)));
    }
    let roles = match group.roles.as_slice() {
        [] => String::new(),
        roles => format!(" or a node playing {}", roles.join(" or ")),
    };
    Some((
        StatusCode::BAD_REQUEST,
        format!(
            "failover group {:?} may run only on {} (its declared order){roles}, not on {node}",
            group.name,
            group.order.join(", ")
        ),
    ))
}

/// A 404 for a group, when the topology has no failover group at all.
fn no_failover_group(group: &str) -> Response<Full<Bytes>> {
    text(plain(
        StatusCode::NOT_FOUND,
        &format!("no failover group named {group:?}: this topology has none"),
    ))
}

/// A 404 for a node the topology does not declare.
fn no_node(node: &str, nodes: &[String]) -> Response<Full<Bytes>> {
    text(plain(StatusCode::NOT_FOUND, &no_node_text(node, nodes)))
}

fn no_node_text(node: &str, nodes: &[String]) -> String {
    format!(
        "no node named {node:?} in this topology; its nodes: {}",
        nodes.join(", ")
    )
}

fn whole(response: Response<Full<Bytes>>) -> Response<AdminBody> {
    response.map(Either::Left)
}

/// Kills an actor of this process as a crash would: its supervisor restarts it by its policy.
fn kill(view: &View, node: &str, name: &str, operator: &str) -> Response<Full<Bytes>> {
    let Some(local) = view.mesh.node(node) else {
        return no_such(
            "node",
            node,
            view.mesh.node_names().iter().map(String::as_str),
        );
    };
    if local.kill(name) {
        tracing::warn!(%operator, node = %node, actor = %name, "operator killed an actor");
        text(plain(
            StatusCode::OK,
            &format!("killed {node}/{name}; its supervisor restarts it by its policy"),
        ))
    } else {
        text(plain(
            StatusCode::NOT_FOUND,
            &format!("no actor {name:?} is running on {node} (`troupe status` lists them)"),
        ))
    }
}

/// The operator a state-changing request comes from, or why it may not change anything.
fn operator_of(
    view: &View,
    req: &Request<Incoming>,
    chain: Option<&[CertificateDer<'static>]>,
) -> Result<String, String> {
    if view.operator_tls.is_none() {
        return Err(
            "this process has no cluster CA (a one-process or --dev-ca run), so \
                    nothing may change its state through the admin endpoint; run it with --ca DIR"
                .into(),
        );
    }
    let Some(chain) = chain else {
        return Err(
            "changing state needs an operator certificate: connect over TLS with one \
                    (`troupe ca issue DIR NAME --operator`, then `--ca DIR --operator NAME`)"
                .into(),
        );
    };
    let name = req
        .headers()
        .get(OPERATOR_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("name the operator in a `{OPERATOR_HEADER}` header"))?;
    troupe_identity::verify_operator(chain, name).map_err(|e| e.to_string())?;
    Ok(name.to_string())
}

async fn promote(view: &View, name: &str, operator: &str) -> Response<Full<Bytes>> {
    let Some(db) = view.parts.dbs.iter().find(|d| d.name() == name) else {
        return no_such("database", name, view.parts.dbs.iter().map(|d| d.name()));
    };
    match db.promote().await {
        Ok(promoted) => {
            tracing::warn!(%operator, db = %name, leader = %promoted.leader, epoch = promoted.epoch, "operator promoted a replica");
            json(&promoted)
        }
        Err(err) => {
            tracing::warn!(%operator, db = %name, cause = %err, "operator's promotion failed");
            action_error(&err)
        }
    }
}

async fn members(
    view: &View,
    name: &str,
    add: bool,
    replica: &str,
    operator: &str,
) -> Response<Full<Bytes>> {
    let Some(db) = view.parts.dbs.iter().find(|d| d.name() == name) else {
        return no_such("database", name, view.parts.dbs.iter().map(|d| d.name()));
    };
    let Ok(replica) = replica.parse::<u64>() else {
        return text(plain(
            StatusCode::BAD_REQUEST,
            &format!(
                "{replica:?} is not a replica number (0, 1, 2...: as `troupe db status` lists them)"
            ),
        ));
    };
    match db.change_members(add, replica).await {
        Ok(voters) => {
            tracing::warn!(%operator, db = %name, replica, add, ?voters, "operator changed a database's voters");
            json(&voters)
        }
        Err(err) => {
            tracing::warn!(%operator, db = %name, replica, add, cause = %err, "operator's membership change failed");
            action_error(&err)
        }
    }
}

async fn replay(view: &View, name: &str, item: &str, operator: &str) -> Response<Full<Bytes>> {
    let Some(queue) = view.parts.queues.iter().find(|q| q.name() == name) else {
        return no_such("queue", name, view.parts.queues.iter().map(|q| q.name()));
    };
    let Ok(item) = item.parse::<u64>() else {
        return text(plain(
            StatusCode::BAD_REQUEST,
            &format!("{item:?} is not an item id (a whole number, as dead-letters lists)"),
        ));
    };
    match queue.replay(item).await {
        Ok(()) => {
            tracing::info!(%operator, queue = %name, item, "operator replayed a dead letter");
            text(plain(StatusCode::OK, &format!("item {item} replayed")))
        }
        Err(err) => {
            tracing::warn!(%operator, queue = %name, item, cause = %err, "operator's replay failed");
            action_error(&err)
        }
    }
}

fn no_such<'a>(
    kind: &str,
    name: &str,
    known: impl Iterator<Item = &'a str>,
) -> Response<Full<Bytes>> {
    let known: Vec<&str> = known.collect();
    let known = if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    };
    text(plain(
        StatusCode::NOT_FOUND,
        &format!("no {kind} named {name:?} here; this process knows: {known}"),
    ))
}

fn action_error(err: &ActionError) -> Response<Full<Bytes>> {
    let status = match err {
        ActionError::NotFound(_) => StatusCode::NOT_FOUND,
        ActionError::Refused(_) => StatusCode::CONFLICT,
        ActionError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    text(plain(status, &err.to_string()))
}

fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(body) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(err) => text(plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode the answer: {err}"),
        )),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_goes_to_a_node_of_the_order_or_one_playing_a_role() {
        let nodes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let mut group = crate::DeclaredGroup {
            name: "g".into(),
            order: vec!["b".into(), "c".into()],
            roles: Vec::new(),
        };
        assert_eq!(move_refusal(&group, &nodes, "c", || false), None);
        let (status, why) = move_refusal(&group, &nodes, "z", || false).expect("refused");
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            why.contains(r#"no node named "z""#) && why.contains("a, b, c"),
            "{why}"
        );
        let (status, why) = move_refusal(&group, &nodes, "a", || false).expect("refused");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            why.contains("may run only on b, c (its declared order), not on a"),
            "{why}"
        );
        group.roles = vec!["spare".into()];
        assert_eq!(move_refusal(&group, &nodes, "d", || true), None);
        assert_eq!(move_refusal(&group, &nodes, "a", || true), None);
        let (status, why) = move_refusal(&group, &nodes, "z", || false).expect("refused");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(why.contains("or a node playing spare, not on z"), "{why}");
    }
}
