//! [`MemcacheServer`]: the configuration, and [`MemcacheServerActor`]: the
//! supervised actor that runs memcached's text protocol in front of a
//! cache's shards

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use troupe_runtime::listener::{ListenerShell, ServerTask, StableListenAddr};
use troupe_runtime::{Actor, ActorError, Ctx, Message, Reply};

use super::parse::Limits;
use super::server::{OVER_LIMIT_REFUSAL, Shared, serve_connection};
use crate::actor::DEFAULT_SEND_TIMEOUT;
use crate::client::CacheClient;

/// A memcached front end's configuration: where it listens and its limits
/// (the cache it serves is given when the actor is made)
///
/// Usually declared on the cache itself with
/// [`CacheSpec::memcached`](crate::CacheSpec::memcached); a string converts
/// into a server with the defaults.
///
/// # Examples
///
/// ```no_run
/// # use troupe_cache::{CacheClient, MemcacheServer};
/// # fn wire(client: CacheClient) {
/// let server = MemcacheServer::new("127.0.0.1:11211")
///     .max_connections(1_000)
///     .max_item_size(512 << 10);
/// // on a node of its own:
/// // node.child("memcached", ChildOptions::permanent(), server.factory(client))
/// # let _ = server.factory(client);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct MemcacheServer {
    /// Where it listens; restarts bind the address the first instance bound.
    listen: StableListenAddr,
    limits: Limits,
    idle_timeout: Option<Duration>,
    send_timeout: Option<Duration>,
    shell: ListenerShell,
}

impl From<&str> for MemcacheServer {
    fn from(addr: &str) -> Self {
        Self::new(addr)
    }
}

impl From<String> for MemcacheServer {
    fn from(addr: String) -> Self {
        Self::new(addr)
    }
}

impl MemcacheServer {
    /// A server on `addr` (`host:port`, port 0 picks a free one), with at
    /// most 16,384 connections (1,024 of them from one client address), the
    /// default [`Limits`] (memcached's 2,048-byte lines and 1 MiB items),
    /// no idle timeout (as memcached), a 60 s send timeout and a 5 s drain
    /// on shutdown
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            listen: StableListenAddr::new(addr),
            limits: Limits::default(),
            idle_timeout: None,
            send_timeout: Some(DEFAULT_SEND_TIMEOUT),
            shell: ListenerShell::new("memcached"),
        }
    }

    /// Bounds on lines and items: a line past its bound closes the
    /// connection; a storage command over `max_item_size` is answered
    /// `SERVER_ERROR object too large for cache` and its data discarded as it
    /// arrives. What one connection buffers of its requests is at most
    /// [`Limits::max_request`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The largest data one item may hold (memcached's `-I`; 1 MiB by
    /// default)
    pub fn max_item_size(mut self, bytes: usize) -> Self {
        self.limits.max_item_size = bytes;
        self
    }

    /// Closes a client that sends nothing for `idle` (memcached's
    /// `idle_timeout`; none by default), counted in
    /// `troupe_cache_memcached_idle_closed_total`. Zero means never.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = (!idle.is_zero()).then_some(idle);
        self
    }

    /// Closes a client that reads none of its replies for this long (60 s by
    /// default; zero: never; the deadline starts again whenever it reads
    /// some), counted in `troupe_cache_memcached_send_timeout_closed_total`.
    /// Replies are written whenever 1 MiB of them wait, so such a client
    /// holds at most that much (and one batch) in the server meanwhile.
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// Most connections served at once (at least 1, memcached's `-c`); more
    /// get `ERROR Too many open connections` and are closed, counted in
    /// `troupe_cache_connections_refused_total{limit="total"}`
    pub fn max_connections(mut self, n: usize) -> Self {
        self.shell = self.shell.max_connections(n);
        self
    }

    /// Most connections served at once from one client IP address (at least
    /// 1); more from that address are refused as for
    /// [`max_connections`](Self::max_connections), with `limit="per_address"`
    pub fn max_connections_per_address(mut self, n: usize) -> Self {
        self.shell = self.shell.max_connections_per_address(n);
        self
    }

    /// How long connections get to finish their current batch on shutdown
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.shell = self.shell.drain_timeout(timeout);
        self
    }

    /// The address as configured
    pub fn addr(&self) -> &str {
        self.listen.configured()
    }

    /// A fresh actor running this configuration in front of `client`'s
    /// shards
    pub fn actor(&self, client: CacheClient) -> MemcacheServerActor {
        MemcacheServerActor {
            config: self.clone(),
            client,
            running: None,
        }
    }

    /// A factory making the actor at every (re)start, in front of `client`'s
    /// shards: `node.child("memcached", ChildOptions::permanent(),
    /// server.factory(client))`. Every instance binds the address the first
    /// one bound.
    pub fn factory(
        &self,
        client: CacheClient,
    ) -> impl Fn() -> MemcacheServerActor + Send + Sync + 'static {
        let config = self.clone();
        move || config.actor(client.clone())
    }
}

/// What the memcached server actor answers
#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "troupe.cache.MemcacheServer")]
pub enum MemcacheServerMsg {
    /// The address the server is bound to (useful with port 0); `None`
    /// while it is not listening
    LocalAddr(Reply<Option<SocketAddr>>),
}

/// The supervised actor that owns the memcached listener and its
/// connections
///
/// It binds in `started` (a failure to bind fails the start, so the
/// supervisor retries by its policy) and drains in `stopped`; if it crashes,
/// its accept loop and connections are aborted with it and the restarted
/// instance binds the same address again. Its `stats` counters start again
/// with each instance.
pub struct MemcacheServerActor {
    config: MemcacheServer,
    client: CacheClient,
    running: Option<ServerTask>,
}

impl Actor for MemcacheServerActor {
    type Msg = MemcacheServerMsg;

    async fn started(&mut self, _ctx: &mut Ctx<MemcacheServerMsg>) -> Result<(), ActorError> {
        let c = &self.config;
        let listener = c.listen.bind().await?;
        let shared = Arc::new(Shared::new(
            self.client.clone(),
            c.limits,
            c.idle_timeout,
            c.send_timeout,
            c.shell.connection_limit(),
        ));
        let server = c
            .shell
            .clone()
            .refusal(OVER_LIMIT_REFUSAL)
            .on_refused(|_, why| {
                metrics::counter!("troupe_cache_connections_refused_total", "limit" => why.label())
                    .increment(1);
            })
            .spawn(listener, move |conn| serve_connection(shared.clone(), conn))?;
        tracing::info!(addr = %server.local_addr(), "memcached server listening");
        self.running = Some(server);
        Ok(())
    }

    async fn handle(
        &mut self,
        msg: MemcacheServerMsg,
        _ctx: &mut Ctx<MemcacheServerMsg>,
    ) -> Result<(), ActorError> {
        match msg {
            MemcacheServerMsg::LocalAddr(reply) => {
                reply.send(self.running.as_ref().map(ServerTask::local_addr));
            }
        }
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &mut Ctx<MemcacheServerMsg>) -> Result<(), ActorError> {
        if let Some(server) = self.running.take()
            && !server.stop().await
        {
            tracing::warn!("memcached server did not drain in time");
        }
        Ok(())
    }
}
