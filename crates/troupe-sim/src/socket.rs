//! [`SimUdpSocket`]: quinn's socket over turmoil's simulated UDP

use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

type Readable = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

/// A turmoil UDP socket as quinn's [`AsyncUdpSocket`], for
/// [`NodeNet::start`](troupe_runtime::remote::NodeNet::start) on a simulated host
///
/// Datagrams go through turmoil's network, so its partitions, losses and latencies apply to
/// them. One datagram per transmit and per receive (no segmentation offload).
pub struct SimUdpSocket {
    socket: Arc<turmoil::net::UdpSocket>,
    local: SocketAddr,
    /// The pending wait for a datagram, kept across polls so its registration is not lost
    readable: Mutex<Option<Readable>>,
}

impl fmt::Debug for SimUdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimUdpSocket")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl SimUdpSocket {
    /// Binds `addr` on the simulated host this runs in
    ///
    /// # Errors
    ///
    /// As turmoil's `UdpSocket::bind` (the port is taken, or this is not a simulated host).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: binding does not wait.
    pub async fn bind(addr: SocketAddr) -> io::Result<Arc<Self>> {
        let socket = turmoil::net::UdpSocket::bind(addr).await?;
        let local = socket.local_addr()?;
        Ok(Arc::new(Self {
            socket: Arc::new(socket),
            local,
            readable: Mutex::new(None),
        }))
    }
}

/// Always writable: turmoil's UDP has no backpressure.
#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncUdpSocket for SimUdpSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        crate::trace::datagram_sent(transmit.destination, transmit.contents.len());
        match self
            .socket
            .try_send_to(transmit.contents, transmit.destination)
        {
            Ok(_) => Ok(()),
            // a host the simulation does not know, or a partition turmoil reports as an
            // error: the datagram is lost, as on a real network
            Err(err) if err.kind() != io::ErrorKind::WouldBlock => {
                tracing::trace!(to = %transmit.destination, cause = %err, "datagram dropped");
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(slot)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        let mut readable = self
            .readable
            .lock()
            .map_err(|_| io::Error::other("socket lock poisoned"))?;
        loop {
            match self.socket.try_recv_from(buf) {
                Ok((len, from)) => {
                    *readable = None;
                    *slot = RecvMeta {
                        addr: from,
                        len,
                        stride: len,
                        ecn: None,
                        dst_ip: Some(self.local.ip()),
                    };
                    return Poll::Ready(Ok(1));
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Poll::Ready(Err(err)),
            }
            let wait = readable.get_or_insert_with(|| {
                let socket = self.socket.clone();
                Box::pin(async move { socket.readable().await })
            });
            match wait.as_mut().poll(cx) {
                Poll::Ready(result) => {
                    *readable = None;
                    result?;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn may_fragment(&self) -> bool {
        false
    }
}
