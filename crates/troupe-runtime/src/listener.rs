//! Building blocks for actors that own a TCP listener (the proxy, the RESP front end): an
//! address that survives restarts, and a server task that is aborted with a crashed actor and
//! drained on a graceful stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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

/// A server's accept loop running as a task: aborted when dropped (a crashed actor must not
/// leave its listener serving), or stopped gracefully with [`ServerTask::stop`].
#[derive(Debug)]
pub struct ServerTask {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    drain_timeout: Duration,
}

impl ServerTask {
    /// Spawns `serve(listener, shutdown)`; `serve` must stop accepting once `shutdown` turns
    /// true and finish its in-flight work within `drain_timeout`.
    ///
    /// # Errors
    /// If the listener's local address cannot be read.
    pub fn spawn<F, Fut>(
        listener: TcpListener,
        drain_timeout: Duration,
        serve: F,
    ) -> std::io::Result<Self>
    where
        F: FnOnce(TcpListener, watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let local_addr = listener.local_addr()?;
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(serve(listener, rx));
        Ok(Self {
            local_addr,
            shutdown,
            task,
            drain_timeout,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Signals shutdown and waits for the task, at most the drain timeout plus a second.
    /// Returns `false` if it did not finish in time (it is then aborted).
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
