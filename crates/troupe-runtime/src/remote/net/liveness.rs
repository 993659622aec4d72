//! A peer's link over time: noticing it end, reconnecting, and joining through seeds.

use super::*;

/// Waits for a connection to end, then retires it (calls waiting on it fail), tells the
/// membership protocol if the peer left, and starts reconnecting. Whether the peer is down is
/// not decided here: that is the membership protocol's call (`remote/swim/`).
pub(super) async fn watch_connection(inner: Weak<NetInner>, peer: Arc<Peer>) {
    let reason = peer.conn.closed().await;
    peer.retired.store(true, Ordering::Release);
    let Some(net) = inner.upgrade() else { return };
    let is_current = net
        .peers
        .remove_if(&peer.name, |_, current| Arc::ptr_eq(current, &peer))
        .is_some();
    if !is_current {
        return;
    }
    let swept = net.pending.sweep_node(&peer.name);
    let (left, text) = match &reason {
        quinn::ConnectionError::ApplicationClosed(close)
            if close.error_code == quinn::VarInt::from_u32(close::LEAVE) =>
        {
            (true, "left".to_string())
        }
        quinn::ConnectionError::ApplicationClosed(close)
            if close.error_code == quinn::VarInt::from_u32(close::DUPLICATE) =>
        {
            // the surviving connection replaces this one; nothing to report, unless there is
            // none here: two connections dialed by one side can be resolved differently by
            // the two ends, each closing the one the other kept. Dial again (the reconnection
            // stops at once if the survivor registers meanwhile).
            if !net.peers.contains_key(&*peer.name) && !net.shutting_down.load(Ordering::SeqCst) {
                tracing::debug!(peer = %peer.name, "duplicate closed with no survivor; redialling");
                tokio::spawn(reconnect(inner, peer.name.to_string()));
            }
            return;
        }
        quinn::ConnectionError::ApplicationClosed(close)
            if close.error_code == quinn::VarInt::from_u32(close::LIMIT) =>
        {
            let limit = String::from_utf8_lossy(&close.reason);
            tracing::warn!(peer = %peer.name, %limit, "the peer cut us off: we went past its limit");
            (false, format!("went past the peer's limit {limit}"))
        }
        other => (peer.left.load(Ordering::SeqCst), other.to_string()),
    };
    tracing::info!(peer = %peer.name, reason = %text, swept, "connection ended");
    if left {
        net.swim.left(peer.name.clone(), peer.incarnation);
    } else if !net.shutting_down.load(Ordering::SeqCst) {
        let lost = net
            .members
            .lock()
            .link_lost(&peer.name, peer.incarnation, &text);
        if let Some(event) = lost {
            net.emit(event);
        }
    }
    if !left && !net.shutting_down.load(Ordering::SeqCst) {
        tokio::spawn(reconnect(inner, peer.name.to_string()));
    }
}

/// Redials a lost peer with exponential backoff until it is connected again (by either side),
/// has left, or this node shuts down.
pub(super) async fn reconnect(inner: Weak<NetInner>, name: String) {
    let mut delay = match inner.upgrade() {
        Some(net) => net.config.reconnect_backoff.0,
        None => return,
    };
    loop {
        tokio::time::sleep(delay).await;
        let Some(net) = inner.upgrade() else { return };
        if net.shutting_down.load(Ordering::SeqCst)
            || net.peers.contains_key(name.as_str())
            || net.members.lock().status(&name) == Some(MemberStatus::Left)
        {
            return;
        }
        let Some(addr) = net.members.lock().addr_of(&name) else {
            return;
        };
        if !net.begin_dial(&name) {
            // another dial to it is under way; look again after the pause
            delay = (delay * 2).min(net.config.reconnect_backoff.1);
            continue;
        }
        let dialed = dial(&net, addr, Some(&name)).await;
        net.end_dial(&name);
        match dialed {
            Ok(_) => return,
            Err(e) => tracing::debug!(cause = %e, %name, %addr, "reconnect failed"),
        }
        delay = (delay * 2).min(net.config.reconnect_backoff.1);
    }
}

/// Dials `name` once, at its last known address, as soon as no other dial to it is under way
/// (one begun while the link was cut ends within the handshake timeout), unless it is
/// connected or gone by then; a failure is left to the reconnection already running.
pub(super) async fn redial(inner: Weak<NetInner>, name: String) {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT * 2;
    let (net, addr) = loop {
        let Some(net) = inner.upgrade() else { return };
        if net.shutting_down.load(Ordering::SeqCst) || net.peers.contains_key(name.as_str()) {
            return;
        }
        let Some(addr) = net.members.lock().addr_of(&name) else {
            return;
        };
        if net.begin_dial(&name) {
            break (net, addr);
        }
        drop(net);
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let dialed = dial(&net, addr, Some(&name)).await;
    net.end_dial(&name);
    if let Err(e) = dialed {
        tracing::debug!(cause = %e, %name, %addr, "redial after a healed link failed");
    }
}

/// A seed that does not answer is reported at the default log level after this long, and
/// again every time this long passes (it may simply start after us; not at once).
const SEED_SILENCE_WARNING: Duration = Duration::from_secs(5);

/// Dials a seed until it answers once (it may start after us).
pub(super) async fn join_seed(inner: Weak<NetInner>, seed: SocketAddr) {
    let mut delay = Duration::from_millis(50);
    let started = tokio::time::Instant::now();
    let mut warned_at = started;
    let mut attempts = 0u64;
    loop {
        let Some(net) = inner.upgrade() else { return };
        if net.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        match dial(&net, seed, None).await {
            Ok(peer) => {
                tracing::info!(%seed, peer = %peer.name, "joined through seed");
                return;
            }
            Err(ConnectError::Rejected(reason)) => {
                tracing::error!(%seed, %reason, "seed refused us");
                return;
            }
            Err(e) => {
                attempts += 1;
                let now = tokio::time::Instant::now();
                if now.duration_since(warned_at) >= SEED_SILENCE_WARNING {
                    warned_at = now;
                    tracing::warn!(
                        %seed,
                        cause = %e,
                        attempts,
                        trying_for = ?now.duration_since(started),
                        "cannot reach the seed; still trying (is it running, and is the address right?)"
                    );
                } else {
                    tracing::debug!(cause = %e, %seed, "seed not reachable yet");
                }
            }
        }
        let max = net.config.reconnect_backoff.1;
        drop(net);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(max);
    }
}
