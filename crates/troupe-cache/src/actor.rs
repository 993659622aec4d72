//! [`RespServer`]: the configuration, and [`RespServerActor`]: the
//! supervised actor that runs the RESP2 front end

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use troupe_runtime::listener::{ListenerShell, ServerTask, StableListenAddr};
use troupe_runtime::{Actor, ActorError, Ctx, Message, Reply};

use crate::client::CacheClient;
use crate::resp::Limits;
use crate::server::{OVER_LIMIT_REFUSAL, Shared, serve_connection};

/// A password, kept out of `Debug` output.
#[derive(Clone)]
struct Secret(Arc<[u8]>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Default of [`RespServer::query_buffer_limit`]: Redis's `client-query-buffer-limit`.
pub const DEFAULT_QUERY_BUFFER_LIMIT: usize = 1024 * 1024 * 1024;

/// Default of [`RespServer::send_timeout`].
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// A RESP2 front end's configuration: where it listens and its limits (the
/// cache it serves is given when the actor is made)
///
/// Usually declared on the cache itself with
/// [`CacheSpec::resp`](crate::CacheSpec::resp); a string converts into a
/// server with the defaults.
///
/// # Examples
///
/// ```no_run
/// # use troupe_cache::{CacheClient, RespServer};
/// # use troupe_cache::resp::Limits;
/// # fn wire(client: CacheClient) {
/// let server = RespServer::new("127.0.0.1:6379")
///     .max_connections(1_000)
///     .limits(Limits { max_bulk_len: 1 << 20, ..Limits::default() });
/// // on a node of its own: node.child("resp", ChildOptions::permanent(), server.factory(client))
/// # let _ = server.factory(client);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RespServer {
    /// Where it listens; restarts bind the address the first instance bound, so a server
    /// configured with port 0 comes back where its clients know it.
    listen: StableListenAddr,
    limits: Limits,
    /// The password clients must give, if any
    requirepass: Option<Secret>,
    /// How long a client may send nothing before it is closed, if ever
    idle_timeout: Option<Duration>,
    /// Most bytes of requests one client may have buffered (Redis's
    /// `client-query-buffer-limit`)
    query_buffer_limit: usize,
    /// Longest a client may leave replies unread before it is closed
    send_timeout: Option<Duration>,
    /// Connection limits and drain.
    shell: ListenerShell,
}

impl From<&str> for RespServer {
    fn from(addr: &str) -> Self {
        Self::new(addr)
    }
}

impl From<String> for RespServer {
    fn from(addr: String) -> Self {
        Self::new(addr)
    }
}

impl RespServer {
    /// A server on `addr` (`host:port`, port 0 picks a free one), with at
    /// most 16,384 connections (1,024 of them from one client address), the
    /// default [`Limits`] and a 5 s drain on shutdown
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            listen: StableListenAddr::new(addr),
            limits: Limits::default(),
            requirepass: None,
            idle_timeout: None,
            query_buffer_limit: DEFAULT_QUERY_BUFFER_LIMIT,
            send_timeout: Some(DEFAULT_SEND_TIMEOUT),
            shell: ListenerShell::new("resp"),
        }
    }

    /// Closes a client connection that sends nothing for `idle` (Redis's `timeout`; none by
    /// default, as in Redis), counted in `troupe_cache_idle_closed_total`. Zero means never.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = (!idle.is_zero()).then_some(idle);
        self
    }

    /// Most bytes of requests one client may have sent and not yet had parsed (Redis's
    /// `client-query-buffer-limit`; 1 GiB by default, as in Redis): a client past it gets
    /// `-ERR Protocol error: client query buffer limit exceeded`, is closed, and is counted
    /// in `troupe_cache_query_buffer_closed_total`. A request larger than this can never be
    /// sent, so keep it above the longest bulk string [`Limits`] allow.
    pub fn query_buffer_limit(mut self, bytes: usize) -> Self {
        self.query_buffer_limit = bytes.max(1);
        self
    }

    /// Closes a client that reads none of its replies for this long (60 s by default; zero:
    /// never; the deadline starts again whenever it reads some), counted in
    /// `troupe_cache_send_timeout_closed_total`. Replies are written
    /// whenever 1 MiB of them wait, so such a client holds at most that much (and one batch)
    /// in the server meanwhile — what Redis's `client-output-buffer-limit` bounds by bytes,
    /// bounded here by bytes and time.
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// Most connections served at once (at least 1, Redis's `maxclients`);
    /// more get `-ERR max number of clients reached` and are closed, counted
    /// in `troupe_cache_connections_refused_total{limit="total"}`
    pub fn max_connections(mut self, n: usize) -> Self {
        self.shell = self.shell.max_connections(n);
        self
    }

    /// Most connections served at once from one client IP address (at least
    /// 1); more from that address are refused as for
    /// [`max_connections`](Self::max_connections) and counted with
    /// `limit="per_address"`, while other addresses are still served
    pub fn max_connections_per_address(mut self, n: usize) -> Self {
        self.shell = self.shell.max_connections_per_address(n);
        self
    }

    /// Bounds on what one request may announce; a request over them gets
    /// `-ERR Protocol error: ...` and its connection is closed
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How long connections get to finish their current batch on shutdown
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.shell = self.shell.drain_timeout(timeout);
        self
    }

    /// Requires clients to authenticate with `password` (Redis's `requirepass`): every
    /// command but `AUTH`, `HELLO … AUTH` and `QUIT` is answered `-NOAUTH` until
    /// `AUTH password` (or `AUTH default password`) succeeds on the connection; a wrong one
    /// gets `-WRONGPASS` and is counted in `troupe_cache_auth_failures_total`. An empty
    /// password requires none.
    pub fn requirepass(mut self, password: impl AsRef<[u8]>) -> Self {
        let password = password.as_ref();
        self.requirepass = (!password.is_empty()).then(|| Secret(Arc::from(password)));
        self
    }

    /// The address as configured
    pub fn addr(&self) -> &str {
        self.listen.configured()
    }

    /// A fresh actor running this configuration in front of `client`'s
    /// shards
    pub fn actor(&self, client: CacheClient) -> RespServerActor {
        RespServerActor {
            config: self.clone(),
            client,
            running: None,
        }
    }

    /// A factory making the actor at every (re)start, in front of `client`'s
    /// shards: `node.child("resp", ChildOptions::permanent(), server.factory(client))`.
    /// Every instance binds the address the first one bound.
    pub fn factory(
        &self,
        client: CacheClient,
    ) -> impl Fn() -> RespServerActor + Send + Sync + 'static {
        let config = self.clone();
        move || config.actor(client.clone())
    }
}

/// What the RESP server actor answers
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "troupe.cache.RespServer")]
pub enum RespServerMsg {
    /// The address the server is bound to (useful with port 0); `None`
    /// while it is not listening
    LocalAddr(Reply<Option<SocketAddr>>),
}

/// The supervised actor that owns the listener and the connections
///
/// It binds in `started` (a failure to bind fails the start, so the
/// supervisor retries by its policy) and drains in `stopped`; if it crashes,
/// its accept loop and connections are aborted with it and the restarted
/// instance binds the same address again.
pub struct RespServerActor {
    config: RespServer,
    client: CacheClient,
    running: Option<ServerTask>,
}

impl Actor for RespServerActor {
    type Msg = RespServerMsg;

    async fn started(&mut self, _ctx: &mut Ctx<RespServerMsg>) -> Result<(), ActorError> {
        let c = &self.config;
        let listener = c.listen.bind().await?;
        let port = listener.local_addr()?.port();
        let idle_ms = c.idle_timeout.map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
        });
        let shared = Arc::new(Shared {
            client: self.client.clone(),
            through: AtomicBool::new(false),
            plain: AtomicBool::new(false),
            password: c.requirepass.as_ref().map(|s| s.0.clone()),
            idle_timeout_ms: AtomicU64::new(idle_ms),
            query_buffer_limit: AtomicUsize::new(c.query_buffer_limit),
            max_bulk_len: AtomicUsize::new(c.limits.max_bulk_len),
            send_timeout: c.send_timeout,
            limits: c.limits,
            max_connections: c.shell.connection_limit_handle(),
            config_lock: tokio::sync::Mutex::new(()),
            port,
            next_id: AtomicU64::new(0),
        });
        let server = c
            .shell
            .clone()
            .refusal(OVER_LIMIT_REFUSAL)
            .on_refused(|_, why| {
                metrics::counter!("troupe_cache_connections_refused_total", "limit" => why.label())
                    .increment(1);
            })
            .spawn(listener, move |conn| serve_connection(shared.clone(), conn))?;
        tracing::info!(addr = %server.local_addr(), "RESP server listening");
        self.running = Some(server);
        Ok(())
    }

    async fn handle(
        &mut self,
        msg: RespServerMsg,
        _ctx: &mut Ctx<RespServerMsg>,
    ) -> Result<(), ActorError> {
        match msg {
            RespServerMsg::LocalAddr(reply) => {
                reply.send(self.running.as_ref().map(ServerTask::local_addr));
            }
        }
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &mut Ctx<RespServerMsg>) -> Result<(), ActorError> {
        if let Some(server) = self.running.take()
            && !server.stop().await
        {
            tracing::warn!("RESP server did not drain in time");
        }
        Ok(())
    }
}
