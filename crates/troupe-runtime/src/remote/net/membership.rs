//! What the membership driver (`remote/swim/`) asks of the endpoint: sending its datagrams on
//! the authenticated connections, turning its decisions into events and the member table, and
//! dialling the nodes gossip names.

use super::*;

impl NetInner {
    /// Sends a membership packet to `name` on its connection, if that connection is to the
    /// `generation` foca means; lost otherwise, as a datagram to an unreachable host is.
    pub(crate) fn swim_send(&self, name: &str, generation: u64, packet: &[u8]) {
        let Some(peer) = self.connected_peer(name, generation) else {
            self.swim.count_send(false);
            return;
        };
        let mut datagram = BytesMut::with_capacity(packet.len() + 1);
        datagram.extend_from_slice(&[swim::DATAGRAM_MEMBERSHIP]);
        datagram.extend_from_slice(packet);
        // never waits: quinn drops the oldest datagram when its send buffer is full
        let sent = peer.conn.send_datagram(datagram.freeze()).is_ok();
        self.swim.count_send(sent);
    }

    /// The membership protocol holds `name` at `generation` up, dialled at `addr`.
    pub(crate) fn swim_up(&self, name: &str, generation: u64, addr: SocketAddr) {
        if let Some(peer) = self.connected_peer(name, generation) {
            peer.declared_down.store(false, Ordering::Relaxed);
        }
        let events = self.members.lock().up(name, generation, Some(addr));
        for event in events {
            self.emit(event);
        }
    }

    /// The membership protocol declared `name` at `generation` down, or it `left`.
    ///
    /// Calls waiting on it fail now, and new sends to it fail `Unreachable` at once while its
    /// connection stays silent. That connection, if one is still open, is left to QUIC's idle
    /// timeout: a member declared down by mistake keeps its link while it rejoins.
    pub(crate) fn swim_down(&self, name: &str, generation: u64, left: bool) {
        if let Some(peer) = self.connected_peer(name, generation) {
            peer.declare_down();
        }
        let event = if left {
            self.members.lock().left(name, generation)
        } else {
            self.members.lock().down(
                name,
                generation,
                "no answer to direct or indirect probes: declared down by the membership protocol",
            )
        };
        if let Some(event) = event {
            let swept = self.pending.sweep_node(name);
            tracing::debug!(peer = %name, swept, "member down; its waiting calls failed");
            self.emit(event);
        }
    }

    /// `name` at `generation` says peers dial it at `addr`.
    pub(crate) fn swim_addr(&self, name: &str, generation: u64, addr: SocketAddr) {
        self.members.lock().set_addr(name, generation, addr);
    }

    /// Dials `name`, named in gossip, at `addr` (with the name expected, so its certificate
    /// decides), unless it is connected, being dialled, or `max` such dials are under way;
    /// whether a dial started.
    pub(crate) fn swim_hint(self: &Arc<Self>, name: &str, addr: SocketAddr, max: usize) -> bool {
        if self.shutting_down.load(Ordering::SeqCst)
            || self.peers.contains_key(name)
            || self.cuts.peers().iter().any(|p| p == name)
        {
            return false;
        }
        {
            let mut hinted = self.hinted.lock();
            if hinted.len() >= max || !hinted.insert(name.to_string()) {
                return false;
            }
        }
        let inner = Arc::downgrade(self);
        tokio::spawn(dial_hint(inner, name.to_string(), addr));
        true
    }

    /// `name` at `generation` named more unknown members than this node may track: cut off.
    pub(crate) fn swim_too_many_members(&self, name: &str, generation: u64) {
        if let Some(peer) = self.connected_peer(name, generation) {
            limit_exceeded(self, &peer, PeerLimit::Members);
        }
    }

    /// The peers connected now: name, generation, address.
    pub(crate) fn swim_peers(&self) -> Vec<(Arc<str>, u64, SocketAddr)> {
        self.peers_by_name()
            .into_iter()
            .map(|p| (p.name.clone(), p.incarnation, p.conn.remote_address()))
            .collect()
    }
}

/// Dials a node gossip named until it answers, up to `max_gossip_dials` attempts with backoff;
/// it is forgotten after that (gossip names it again if it is there).
async fn dial_hint(inner: Weak<NetInner>, name: String, addr: SocketAddr) {
    let mut delay = match inner.upgrade() {
        Some(net) => net.config.reconnect_backoff.0,
        None => return,
    };
    let mut attempts = 0u32;
    loop {
        let Some(net) = inner.upgrade() else { return };
        if net.shutting_down.load(Ordering::SeqCst) || net.peers.contains_key(name.as_str()) {
            break;
        }
        if net.begin_dial(&name) {
            let dialed = dial(&net, addr, Some(&name)).await;
            net.end_dial(&name);
            match dialed {
                Ok(_) => break,
                Err(e) => tracing::debug!(cause = %e, %name, %addr, "dial from gossip failed"),
            }
            attempts += 1;
            if attempts >= net.config.limits.max_gossip_dials {
                tracing::warn!(%name, %addr, attempts, "a member named in gossip never answered; forgetting it");
                break;
            }
        }
        let max = net.config.reconnect_backoff.1;
        drop(net);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(max);
    }
    if let Some(net) = inner.upgrade() {
        net.hinted.lock().remove(&name);
    }
}
