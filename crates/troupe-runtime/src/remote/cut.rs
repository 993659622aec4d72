//! Links cut on purpose: the endpoint's socket drops every datagram to and from the addresses
//! of the peers it is told to cut off, as a network partition would, so failure detection,
//! reconnection and everything built on them see a real partition — in one process (nodes
//! routed through QUIC on loopback) as across hosts, with no firewall rules.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use parking_lot::RwLock;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// The peers one endpoint is cut off from, by name and by every address their datagrams use.
#[derive(Default)]
pub(crate) struct CutLinks {
    /// Whether any link is cut: the only thing the socket reads per datagram otherwise.
    any: AtomicBool,
    /// Addresses whose datagrams are dropped, each with the peer it belongs to.
    addrs: RwLock<HashMap<SocketAddr, Arc<str>>>,
    /// Datagrams dropped so far, both ways.
    dropped: AtomicU64,
}

impl CutLinks {
    /// Cuts the link to `peer`, reached at `addrs`.
    pub(crate) fn cut(&self, peer: &str, addrs: impl IntoIterator<Item = SocketAddr>) {
        let peer: Arc<str> = Arc::from(peer);
        let mut table = self.addrs.write();
        for addr in addrs {
            table.insert(addr, peer.clone());
        }
        self.any.store(!table.is_empty(), Ordering::Release);
    }

    /// Heals the link to `peer`; whether it was cut.
    pub(crate) fn heal(&self, peer: &str) -> bool {
        let mut table = self.addrs.write();
        let before = table.len();
        table.retain(|_, name| &**name != peer);
        self.any.store(!table.is_empty(), Ordering::Release);
        table.len() != before
    }

    /// The peers cut off now, sorted.
    pub(crate) fn peers(&self) -> Vec<String> {
        let mut peers: Vec<String> = self.addrs.read().values().map(|p| p.to_string()).collect();
        peers.sort();
        peers.dedup();
        peers
    }

    /// If `name` is cut off, cuts `addr` too (a new address of it) and says so; one lock, so
    /// a heal in between cannot be undone. A peer keeps at most [`MAX_CUT_ADDRS`] addresses
    /// in the table (it cannot grow it by dialling from new ports); past that its connections
    /// are still refused at the handshake, by the answer this gives.
    pub(crate) fn cut_too_if_cut(&self, name: &str, addr: SocketAddr) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let mut table = self.addrs.write();
        let Some(peer) = table.values().find(|p| &***p == name).cloned() else {
            return false;
        };
        if table.values().filter(|p| **p == peer).count() < MAX_CUT_ADDRS {
            table.insert(addr, peer);
        }
        true
    }

    /// Datagrams dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn blocks(&self, addr: &SocketAddr) -> bool {
        self.any.load(Ordering::Acquire) && self.addrs.read().contains_key(addr)
    }
}

/// Most addresses kept for one cut peer.
const MAX_CUT_ADDRS: usize = 16;

/// Reads in a row whose every datagram came from a cut peer before `poll_recv` yields.
const MAX_DROPPED_READS: usize = 64;

/// An endpoint's socket with the cut links applied.
pub(crate) struct CuttableSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    cuts: Arc<CutLinks>,
}

impl CuttableSocket {
    pub(crate) fn new(inner: Arc<dyn AsyncUdpSocket>, cuts: Arc<CutLinks>) -> Self {
        Self { inner, cuts }
    }
}

impl fmt::Debug for CuttableSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CuttableSocket")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl AsyncUdpSocket for CuttableSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.inner.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        if self.cuts.blocks(&transmit.destination) {
            // lost on the way, as a partition loses it
            self.cuts.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.inner.try_send(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        for _ in 0..MAX_DROPPED_READS {
            let received = match self.inner.poll_recv(cx, bufs, meta) {
                Poll::Ready(Ok(n)) => n,
                other => return other,
            };
            if !self.cuts.any.load(Ordering::Acquire) {
                return Poll::Ready(Ok(received));
            }
            let kept = keep_uncut(&self.cuts, bufs, meta, received);
            if kept > 0 || received == 0 {
                return Poll::Ready(Ok(kept));
            }
            // everything read came from cut peers: read again (the inner socket registers the
            // waker when nothing is left)
        }
        // a cut peer sending faster than this drains: let the endpoint's other work run, and
        // come back at once
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn max_transmit_segments(&self) -> usize {
        self.inner.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.inner.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.inner.may_fragment()
    }
}

/// Moves the datagrams of the first `received` entries that come from peers not cut off to the
/// front; how many there are.
fn keep_uncut(
    cuts: &CutLinks,
    bufs: &mut [IoSliceMut<'_>],
    meta: &mut [RecvMeta],
    received: usize,
) -> usize {
    let mut kept = 0;
    for i in 0..received.min(meta.len()).min(bufs.len()) {
        if cuts.blocks(&meta[i].addr) {
            // one entry holds several datagrams when the socket coalesces them
            let datagrams = meta[i].len.div_ceil(meta[i].stride.max(1)).max(1);
            cuts.dropped.fetch_add(datagrams as u64, Ordering::Relaxed);
            continue;
        }
        if kept != i {
            let (front, back) = bufs.split_at_mut(i);
            let to = &mut front[kept];
            let n = meta[i].len.min(to.len()).min(back[0].len());
            to[..n].copy_from_slice(&back[0][..n]);
            meta[kept] = meta[i];
            // quinn's buffers are all one size, so nothing is cut short; if one were, the
            // entry must not claim more than was copied
            meta[kept].len = n;
            meta[kept].stride = meta[kept].stride.min(n.max(1));
        }
        kept += 1;
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_from_cut_peers_are_taken_out_of_a_batch_and_the_rest_moved_up() {
        let cuts = CutLinks::default();
        let (cut, kept) = (
            SocketAddr::from(([127, 0, 0, 1], 1)),
            SocketAddr::from(([127, 0, 0, 1], 2)),
        );
        cuts.cut("gone", [cut]);
        let mut storage = [[0u8; 8]; 4];
        for (i, buf) in storage.iter_mut().enumerate() {
            buf.fill(i as u8 + 1);
        }
        let from = [cut, kept, cut, kept];
        let mut meta: Vec<RecvMeta> = from
            .iter()
            .map(|addr| RecvMeta {
                addr: *addr,
                len: 8,
                stride: 4,
                ecn: None,
                dst_ip: None,
            })
            .collect();
        let mut bufs: Vec<IoSliceMut<'_>> =
            storage.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        assert_eq!(keep_uncut(&cuts, &mut bufs, &mut meta, 4), 2);
        assert_eq!((&*bufs[0], &*bufs[1]), (&[2u8; 8][..], &[4u8; 8][..]));
        assert!(meta[..2].iter().all(|m| m.addr == kept && m.len == 8));
        // two entries of two coalesced datagrams each
        assert_eq!(cuts.dropped(), 4);
    }

    #[test]
    fn a_cut_peer_is_known_by_each_of_its_addresses_until_healed() {
        let cuts = CutLinks::default();
        let (a, b) = (
            SocketAddr::from(([127, 0, 0, 1], 1)),
            SocketAddr::from(([127, 0, 0, 2], 2)),
        );
        assert!(!cuts.blocks(&a));
        cuts.cut("app", [a, b]);
        assert!(cuts.blocks(&a) && cuts.blocks(&b));
        let c = SocketAddr::from(([127, 0, 0, 3], 3));
        assert!(cuts.cut_too_if_cut("app", c) && cuts.blocks(&c));
        assert!(!cuts.cut_too_if_cut("other", a));
        // a peer dialling from ever new ports cannot grow the table
        for port in 100..200 {
            assert!(cuts.cut_too_if_cut("app", SocketAddr::from(([127, 0, 0, 9], port))));
        }
        assert_eq!(cuts.addrs.read().len(), MAX_CUT_ADDRS);
        assert_eq!(cuts.peers(), vec!["app".to_string()]);
        assert!(cuts.heal("app"));
        assert!(!cuts.heal("app"));
        assert!(!cuts.blocks(&a) && !cuts.blocks(&c));
        assert!(!cuts.cut_too_if_cut("app", a));
        assert!(cuts.peers().is_empty());
    }
}
