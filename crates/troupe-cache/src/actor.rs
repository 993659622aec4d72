//! [`RespServer`]: the configuration, and [`RespServerActor`]: the
//! supervised actor that runs the RESP2 front end

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use troupe_runtime::{Actor, ActorError, Ctx, Message, ReplyTo};

use crate::client::CacheClient;
use crate::resp::Limits;
use crate::server::{Shared, serve};

/// A RESP2 front end's configuration: where it listens, the cache it serves
/// and its limits
///
/// # Examples
///
/// ```no_run
/// # use troupe_cache::{CacheClient, RespServer};
/// # use troupe_cache::resp::Limits;
/// # fn wire(client: CacheClient) {
/// let server = RespServer::new("127.0.0.1:6379", client)
///     .max_connections(1_000)
///     .limits(Limits { max_bulk_len: 1 << 20, ..Limits::default() });
/// // in a topology: t.add(node, "resp", server.factory());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RespServer {
    addr: String,
    /// The address the first instance bound; restarts bind it again, so a
    /// server configured with port 0 comes back where its clients know it.
    bound: Arc<OnceLock<SocketAddr>>,
    client: CacheClient,
    max_connections: usize,
    limits: Limits,
    drain_timeout: Duration,
}

impl RespServer {
    /// A server on `addr` in front of `client`'s shards, with 10,000
    /// connections, the default [`Limits`] and a 5 s drain on shutdown
    pub fn new(addr: impl Into<String>, client: CacheClient) -> Self {
        Self {
            addr: addr.into(),
            bound: Arc::new(OnceLock::new()),
            client,
            max_connections: 10_000,
            limits: Limits::default(),
            drain_timeout: Duration::from_secs(5),
        }
    }

    /// Most connections served at once; more get
    /// `-ERR max number of clients reached` and are closed
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
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
        self.drain_timeout = timeout;
        self
    }

    /// A fresh actor running this configuration
    pub fn actor(&self) -> RespServerActor {
        RespServerActor {
            config: self.clone(),
            running: None,
        }
    }

    /// A factory for topologies: `t.add(node, "resp", server.factory())`
    pub fn factory(self) -> impl Fn() -> RespServerActor + Send + Sync + 'static {
        move || self.actor()
    }
}

/// What the RESP server actor answers
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RespServerMsg {
    /// The address the server is bound to (useful with port 0)
    LocalAddr,
}

impl Message for RespServerMsg {
    const NAME: &'static str = "troupe.cache.RespServer";
    type Reply = Option<SocketAddr>;
}

struct Running {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    drain_timeout: Duration,
}

impl Drop for Running {
    /// A crashed server must not leave its listener or connections running:
    /// the restart binds again.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The supervised actor that owns the listener and the connections
///
/// It binds in `started` (a failure to bind fails the start, so the
/// supervisor retries by its policy) and drains in `stopped`; if it crashes,
/// its accept loop and connections are aborted with it and the restarted
/// instance binds the same address again.
pub struct RespServerActor {
    config: RespServer,
    running: Option<Running>,
}

impl Actor for RespServerActor {
    type Msg = RespServerMsg;

    async fn started(&mut self, _ctx: &Ctx<RespServerMsg>) -> Result<(), ActorError> {
        let c = &self.config;
        let listener = match c.bound.get() {
            Some(addr) => tokio::net::TcpListener::bind(addr).await,
            None => tokio::net::TcpListener::bind(&c.addr).await,
        }
        .map_err(|e| format!("cannot listen on {}: {e}", c.addr))?;
        let local_addr = listener.local_addr()?;
        let _ = c.bound.set(local_addr);
        let shared = Arc::new(Shared {
            client: c.client.clone(),
            limits: c.limits,
            max_connections: c.max_connections,
            drain_timeout: c.drain_timeout,
            port: local_addr.port(),
            next_id: AtomicU64::new(0),
        });
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, shared, rx));
        tracing::info!(addr = %local_addr, "RESP server listening");
        self.running = Some(Running {
            local_addr,
            shutdown,
            task,
            drain_timeout: c.drain_timeout,
        });
        Ok(())
    }

    async fn handle(
        &mut self,
        msg: RespServerMsg,
        reply: ReplyTo<Option<SocketAddr>>,
        _ctx: &Ctx<RespServerMsg>,
    ) -> Result<(), ActorError> {
        match msg {
            RespServerMsg::LocalAddr => {
                reply.send(self.running.as_ref().map(|r| r.local_addr));
            }
        }
        Ok(())
    }

    async fn stopped(&mut self, _ctx: &Ctx<RespServerMsg>) -> Result<(), ActorError> {
        if let Some(mut running) = self.running.take() {
            let _ = running.shutdown.send(true);
            let bound = running.drain_timeout + Duration::from_secs(1);
            if tokio::time::timeout(bound, &mut running.task)
                .await
                .is_err()
            {
                tracing::warn!("RESP server did not drain in time");
            }
        }
        Ok(())
    }
}
