//! Building blocks for actors that own a TCP listener (the proxy, the RESP front end, and any
//! later server): an address that survives restarts, and one listener shell that accepts,
//! limits, serves and drains connections, so each server writes only what it does with one
//! connection.
//!
//! # The shell
//! [`ListenerShell`] holds the limits and timings; [`ListenerShell::spawn`] takes a bound
//! [`TcpListener`] and a per-connection async fn and returns a [`ServerTask`]. The task:
//!
//! - accepts in a loop; an accept error (out of file descriptors and the like) is logged and
//!   retried after a pause that doubles from 1 ms up to 1 s, on tokio's clock, and resets on the
//!   next success;
//! - admits a connection only while its client IP address has fewer than
//!   [`max_connections_per_address`](ListenerShell::max_connections_per_address) open and the
//!   listener fewer than [`max_connections`](ListenerShell::max_connections); a connection over
//!   either limit is refused at once (the server's [`refusal`](ListenerShell::refusal) bytes,
//!   if any, are written, then it is closed) and counted in [`ListenerStats`], never queued;
//! - on [`ServerTask::stop`], stops accepting (the listening socket is closed), tells every
//!   open connection through its [`Drain`], waits for them up to the drain timeout and then
//!   drops the rest;
//! - if the [`ServerTask`] is dropped instead (its actor crashed), aborts the accept loop and
//!   every connection at once.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::actor::ActorError;

/// A listen address that the first successful bind pins: later binds (by restarted instances
/// of the actor) use the address actually bound, so a server configured with port 0 comes back
/// where its clients know it. Clones share the pin.
#[derive(Clone, Debug)]
pub struct StableListenAddr {
    configured: String,
    bound: Arc<OnceLock<SocketAddr>>,
}

impl StableListenAddr {
    /// An address as configured (`host:port`, port 0 allowed), not yet pinned.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            configured: addr.into(),
            bound: Arc::new(OnceLock::new()),
        }
    }

    /// The address as configured.
    pub fn configured(&self) -> &str {
        &self.configured
    }

    /// Binds the pinned address, or the configured one the first time, and pins it.
    ///
    /// # Errors
    /// The bind failure, naming the configured address.
    ///
    /// # Cancel safety
    /// Cancelling it before it returns leaves nothing bound and nothing pinned.
    pub async fn bind(&self) -> Result<TcpListener, ActorError> {
        let listener = match self.bound.get() {
            Some(addr) => TcpListener::bind(addr).await,
            None => TcpListener::bind(&self.configured).await,
        }
        .map_err(|e| format!("cannot listen on {}: {e}", self.configured))?;
        let _ = self.bound.set(listener.local_addr()?);
        Ok(listener)
    }
}

/// Default of [`ListenerShell::max_connections_per_address`].
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 1_024;
/// Default of [`ListenerShell::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 16_384;
/// Default of [`ListenerShell::drain_timeout`].
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The first pause after a failed accept; it doubles on each further failure.
const BACKOFF_FIRST: Duration = Duration::from_millis(1);
/// The longest pause after failed accepts.
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Refused connections being answered at once; past it, a refused connection is closed
/// without its refusal bytes.
const MAX_REFUSING: usize = 64;
/// How long one refused connection may take to receive its refusal and close.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(1);
/// What a refused client may have sent that is read and discarded before closing (so the
/// close is a FIN after the refusal, not a reset that could destroy it), at most.
const REFUSAL_DISCARD: usize = 64 * 1024;

/// The pause after failed accepts: doubling from [`BACKOFF_FIRST`] up to [`BACKOFF_MAX`],
/// back to the first after a success.
#[derive(Debug)]
struct AcceptBackoff {
    next: Duration,
}

impl AcceptBackoff {
    fn new() -> Self {
        Self {
            next: BACKOFF_FIRST,
        }
    }

    /// An accept failed: how long to pause before the next.
    fn failed(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        pause
    }

    /// An accept succeeded.
    fn succeeded(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

/// A listener's total connection limit, shared with whoever may change it while it runs
#[derive(Debug, Clone)]
pub struct ConnectionLimit(Arc<AtomicUsize>);

impl ConnectionLimit {
    /// A limit of `n` connections (at least 1)
    pub fn new(n: usize) -> Self {
        Self(Arc::new(AtomicUsize::new(n.max(1))))
    }

    /// The limit now
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Admit at most `n` connections (at least 1) from now on
    pub fn set(&self, n: usize) {
        self.0.store(n.max(1), Ordering::Relaxed);
    }
}

/// Which limit refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refused {
    /// Its client address already had the most connections allowed per address.
    PerAddress,
    /// The listener already had the most connections allowed in all.
    Total,
}

impl Refused {
    /// A short label for logs and metrics: `per_address` or `total`.
    pub fn label(self) -> &'static str {
        match self {
            Self::PerAddress => "per_address",
            Self::Total => "total",
        }
    }
}

type RefusedHook = Arc<dyn Fn(SocketAddr, Refused) + Send + Sync>;

/// The limits and timings of one listener, and how it refuses: configure it, then
/// [`spawn`](Self::spawn) it on a bound listener with a per-connection async fn.
///
/// Defaults: 1,024 connections per client IP address, 16,384 in all, a 5 s drain, no
/// refusal bytes (a refused connection is just closed).
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use tokio::io::AsyncWriteExt;
/// use troupe_runtime::listener::ListenerShell;
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let server = ListenerShell::new("greeter")
///     .max_connections_per_address(8)
///     .refusal("busy\n")
///     .spawn(listener, |mut conn| async move {
///         let _ = conn.stream.write_all(b"hello\n").await;
///     })?;
/// // ... later, on a graceful stop:
/// server.stop().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ListenerShell {
    name: &'static str,
    max_connections: ConnectionLimit,
    max_per_address: usize,
    drain_timeout: Duration,
    refusal: Option<Bytes>,
    on_refused: Option<RefusedHook>,
}

impl fmt::Debug for ListenerShell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerShell")
            .field("name", &self.name)
            .field("max_connections", &self.max_connections.get())
            .field("max_per_address", &self.max_per_address)
            .field("drain_timeout", &self.drain_timeout)
            .field("refusal", &self.refusal)
            .field("on_refused", &self.on_refused.is_some())
            .finish()
    }
}

impl ListenerShell {
    /// A shell with the default limits; `name` names the server in its logs.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            max_connections: ConnectionLimit::new(DEFAULT_MAX_CONNECTIONS),
            max_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            refusal: None,
            on_refused: None,
        }
    }

    /// Most connections open at once in all (at least 1); more are refused.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = ConnectionLimit::new(n);
        self
    }

    /// Most connections open at once from one client IP address (at least 1); more from that
    /// address are refused while other addresses are still served.
    pub fn max_connections_per_address(mut self, n: usize) -> Self {
        self.max_per_address = n.max(1);
        self
    }

    /// How long open connections get to finish after [`ServerTask::stop`] before they are
    /// dropped.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Bytes written to a refused connection before it is closed (a protocol's "too many
    /// clients" answer). Written only if the socket takes them within 1 s and at most 64
    /// refusals are being written at once; otherwise the connection is just closed.
    pub fn refusal(mut self, bytes: impl Into<Bytes>) -> Self {
        self.refusal = Some(bytes.into());
        self
    }

    /// Calls `hook` on every refusal (for the server's own metrics), in the accept loop: it
    /// must return quickly.
    pub fn on_refused(
        mut self,
        hook: impl Fn(SocketAddr, Refused) + Send + Sync + 'static,
    ) -> Self {
        self.on_refused = Some(Arc::new(hook));
        self
    }

    /// The most connections in all.
    pub fn connection_limit(&self) -> usize {
        self.max_connections.get()
    }

    /// The total connection limit as a handle that changes it while the listener runs
    /// (Redis's `CONFIG SET maxclients`): connections already open stay, new ones are
    /// admitted against the new limit. Clones of this shell share it.
    pub fn connection_limit_handle(&self) -> ConnectionLimit {
        self.max_connections.clone()
    }

    /// The most connections per client address.
    pub fn connection_limit_per_address(&self) -> usize {
        self.max_per_address
    }

    /// The drain timeout.
    pub fn drain_limit(&self) -> Duration {
        self.drain_timeout
    }

    /// Spawns the accept loop on `listener`: each admitted connection runs `serve(connection)`
    /// as a task of its own, which should finish soon after its [`Drain`] fires.
    ///
    /// # Errors
    /// If the listener's local address cannot be read.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn spawn<F, Fut>(self, listener: TcpListener, serve: F) -> std::io::Result<ServerTask>
    where
        F: Fn(Connection) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let local_addr = listener.local_addr()?;
        let (shutdown, rx) = watch::channel(false);
        let stats = ListenerStats::default();
        let drain_timeout = self.drain_timeout;
        // connections send from the node of the actor that owns the listener
        let task = tokio::spawn(crate::node::keep_origin(accept_loop(
            self,
            listener,
            serve,
            rx,
            stats.clone(),
        )));
        Ok(ServerTask {
            local_addr,
            shutdown,
            task,
            drain_timeout,
            stats,
        })
    }
}

/// One admitted connection, handed to the server's per-connection fn.
#[derive(Debug)]
pub struct Connection {
    /// The socket, with `TCP_NODELAY` set.
    pub stream: TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// Fires when the server drains: finish the request at hand and return.
    pub drain: Drain,
    /// The listener's counters (e.g. to report the clients connected).
    pub stats: ListenerStats,
}

/// Tells a connection that its server is draining. Clones observe the same signal.
#[derive(Clone, Debug)]
pub struct Drain {
    rx: watch::Receiver<bool>,
}

impl Drain {
    /// Whether the server has begun draining (or is gone).
    pub fn is_draining(&self) -> bool {
        *self.rx.borrow() || self.rx.has_changed().is_err()
    }

    /// Resolves once the server begins draining (at once if it has).
    ///
    /// # Cancel safety
    /// Cancel safe: cancelling it loses nothing, a later call sees the same signal.
    pub async fn wait(&mut self) {
        // an error means the server is gone, which is draining too
        let _ = self.rx.wait_for(|draining| *draining).await;
    }
}

/// A listener's counters, shared by the [`ServerTask`] and its connections.
#[derive(Clone, Debug, Default)]
pub struct ListenerStats {
    inner: Arc<StatsInner>,
}

#[derive(Debug, Default)]
struct StatsInner {
    open: Mutex<Occupancy>,
    accepted: AtomicU64,
    refused_per_address: AtomicU64,
    refused_total: AtomicU64,
}

/// Open connections, in all and per client address (an address with none has no entry, so
/// the map never holds more entries than the total limit).
#[derive(Debug, Default)]
struct Occupancy {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl ListenerStats {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.inner.open.lock().total
    }

    /// Connections open now from `ip`.
    pub fn open_from(&self, ip: IpAddr) -> usize {
        let ip = ip.to_canonical();
        self.inner
            .open
            .lock()
            .per_address
            .get(&ip)
            .copied()
            .unwrap_or(0)
    }

    /// Connections admitted since the listener started.
    pub fn accepted(&self) -> u64 {
        self.inner.accepted.load(Ordering::Relaxed)
    }

    /// Connections refused since the listener started, by the limit that refused them.
    pub fn refused(&self, why: Refused) -> u64 {
        match why {
            Refused::PerAddress => self.inner.refused_per_address.load(Ordering::Relaxed),
            Refused::Total => self.inner.refused_total.load(Ordering::Relaxed),
        }
    }

    /// Takes a place for a connection from `ip`, or says which limit is full.
    fn admit(
        &self,
        ip: IpAddr,
        max_total: usize,
        max_per_address: usize,
    ) -> Result<Place, Refused> {
        let ip = ip.to_canonical();
        let mut open = self.inner.open.lock();
        if open.total >= max_total {
            return Err(Refused::Total);
        }
        let from_ip = open.per_address.get(&ip).copied().unwrap_or(0);
        if from_ip >= max_per_address {
            return Err(Refused::PerAddress);
        }
        open.total += 1;
        open.per_address.insert(ip, from_ip + 1);
        Ok(Place {
            stats: self.clone(),
            ip,
        })
    }

    fn count_refused(&self, why: Refused) {
        let counter = match why {
            Refused::PerAddress => &self.inner.refused_per_address,
            Refused::Total => &self.inner.refused_total,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One connection's place in the limits, given back when dropped (also when its task is
/// aborted or panics).
struct Place {
    stats: ListenerStats,
    ip: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.stats.inner.open.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_address.remove(&self.ip);
            }
        }
    }
}

async fn accept_loop<F, Fut>(
    shell: ListenerShell,
    listener: TcpListener,
    serve: F,
    mut shutdown: watch::Receiver<bool>,
    stats: ListenerStats,
) where
    F: Fn(Connection) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let name = shell.name;
    let mut conns = JoinSet::new();
    let mut refusing = JoinSet::new();
    let mut backoff = AcceptBackoff::new();
    loop {
        let accepted = tokio::select! {
            () = draining(&mut shutdown) => break,
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(err) = done
                    && err.is_panic()
                {
                    tracing::warn!(server = name, cause = %err, "a connection task panicked");
                }
                continue;
            }
            Some(_) = refusing.join_next(), if !refusing.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(ok) => {
                backoff.succeeded();
                ok
            }
            Err(err) => {
                // out of file descriptors and the like: pause rather than spin
                let pause = backoff.failed();
                tracing::warn!(server = name, cause = %err, ?pause, "accept failed");
                tokio::select! {
                    () = draining(&mut shutdown) => break,
                    () = tokio::time::sleep(pause) => {}
                }
                continue;
            }
        };
        match stats.admit(
            peer.ip(),
            shell.max_connections.get(),
            shell.max_per_address,
        ) {
            Ok(place) => {
                stats.inner.accepted.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                let connection = Connection {
                    stream,
                    peer,
                    drain: Drain {
                        rx: shutdown.clone(),
                    },
                    stats: stats.clone(),
                };
                let served = crate::node::keep_origin(serve(connection));
                conns.spawn(async move {
                    served.await;
                    drop(place);
                });
            }
            Err(why) => {
                stats.count_refused(why);
                if let Some(hook) = &shell.on_refused {
                    hook(peer, why);
                }
                tracing::warn!(server = name, %peer, limit = why.label(), "connection limit reached; refusing");
                if refusing.len() < MAX_REFUSING {
                    refusing.spawn(refuse(stream, shell.refusal.clone()));
                }
            }
        }
    }
    drop(listener);
    refusing.abort_all();
    let open = conns.len();
    let drained = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(shell.drain_timeout, drained)
        .await
        .is_err()
    {
        tracing::warn!(
            server = name,
            open,
            left = conns.len(),
            timeout = ?shell.drain_timeout,
            "connections did not finish draining in time; dropping them"
        );
    }
    // dropping `conns` aborts whatever is left
}

/// Resolves once shutdown is signalled (or its sender is gone).
async fn draining(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Writes the refusal (if any), closes the write side, and reads what the client had already
/// sent until it closes, so that the close does not reset the connection before the client
/// has read the refusal; all within [`REFUSAL_DEADLINE`].
async fn refuse(mut stream: TcpStream, refusal: Option<Bytes>) {
    let _ = tokio::time::timeout(REFUSAL_DEADLINE, async {
        if let Some(bytes) = refusal {
            stream.write_all(&bytes).await?;
        }
        stream.shutdown().await?;
        let mut buf = [0u8; 4096];
        let mut left = REFUSAL_DISCARD;
        while left > 0 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// A server's accept loop running as a task (made by [`ListenerShell::spawn`]): aborted with
/// its connections when dropped (a crashed actor must not leave its listener serving), or
/// stopped gracefully with [`ServerTask::stop`].
#[derive(Debug)]
pub struct ServerTask {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    drain_timeout: Duration,
    stats: ListenerStats,
}

impl ServerTask {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The listener's counters.
    pub fn stats(&self) -> &ListenerStats {
        &self.stats
    }

    /// Stops accepting, drains open connections for at most the drain timeout and drops the
    /// rest. Returns `false` if the task did not finish within the drain timeout plus a second
    /// (it is then aborted).
    ///
    /// # Cancel safety
    /// Cancelling it drops the task, which aborts the accept loop and every connection at
    /// once, drained or not; so does dropping the future unpolled, since it owns the task.
    pub async fn stop(mut self) -> bool {
        let _ = self.shutdown.send(true);
        let bound = self.drain_timeout + Duration::from_secs(1);
        tokio::time::timeout(bound, &mut self.task).await.is_ok()
    }
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Asks `server` for the address its listener is bound to until it reports one, for up to
/// `within` on the runtime's clock; `None` if it never does
///
/// For actors that own a listener and answer `ask(reply)` with `Some(addr)` once bound (the
/// gateway, the RESP server): a process that binds port 0 prints this address for the tests
/// and scripts that start it. Each ask waits at most a second.
///
/// # Cancel safety
///
/// Cancel safe: it only asks.
pub async fn bound_addr<M: crate::Message>(
    server: &crate::Addr<M>,
    ask: impl Fn(crate::Reply<Option<SocketAddr>>) -> M,
    within: Duration,
) -> Option<SocketAddr> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let wait = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(Duration::from_secs(1));
        if let Ok(Some(addr)) = server.call(&ask, wait).await {
            return Some(addr);
        }
        if tokio::time::Instant::now() + Duration::from_millis(50) >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_to_its_cap_and_resets_on_success() {
        let mut b = AcceptBackoff::new();
        let pauses: Vec<u128> = (0..13).map(|_| b.failed().as_millis()).collect();
        assert_eq!(
            pauses,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 1000, 1000]
        );
        b.succeeded();
        assert_eq!(b.failed(), BACKOFF_FIRST);
    }

    #[test]
    fn places_are_given_back_and_empty_addresses_forgotten() {
        let stats = ListenerStats::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = stats.admit(a, 3, 2).unwrap();
        let a2 = stats.admit(a, 3, 2).unwrap();
        assert_eq!(stats.admit(a, 3, 2).err(), Some(Refused::PerAddress));
        let b1 = stats.admit(b, 3, 2).unwrap();
        assert_eq!(stats.admit(b, 3, 2).err(), Some(Refused::Total));
        assert_eq!((stats.open(), stats.open_from(a)), (3, 2));
        drop((a1, a2));
        assert_eq!((stats.open(), stats.open_from(a)), (1, 0));
        assert_eq!(stats.inner.open.lock().per_address.len(), 1);
        drop(b1);
        assert!(stats.inner.open.lock().per_address.is_empty());
    }

    #[test]
    fn an_ipv4_mapped_address_counts_as_its_ipv4_address() {
        let stats = ListenerStats::default();
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let _p = stats.admit(v4, 10, 1).unwrap();
        assert_eq!(stats.admit(mapped, 10, 1).err(), Some(Refused::PerAddress));
    }
}
