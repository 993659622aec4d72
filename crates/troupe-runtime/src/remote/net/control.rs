//! The control stream: announced names, leaving, refusals, and the per-peer limits that guard
//! them. (Membership travels in datagrams: `remote/swim/`.)

use super::*;

#[derive(Debug, Serialize, Deserialize)]
pub(super) enum ControlMsg {
    Names(Vec<String>),
    Leave,
    Reject(String),
}

/// Whether a member's announced names are within `limits` (and each a sane length).
pub(super) fn names_within(names: &[String], limits: &crate::remote::PeerLimits) -> bool {
    names.len() <= limits.max_names
        && names
            .iter()
            .all(|n| !n.is_empty() && n.len() <= MAX_NAME_LEN)
}

/// Runs a control frame's body through what a node does with one from a peer: decoding, and
/// the name checks, against a fresh member table with the default limits. For the fuzz target
/// of the control stream (`fuzz/fuzz_targets/control_decode.rs`); returns whether the body was
/// taken in.
#[doc(hidden)]
pub fn fuzz_control_body(body: &[u8]) -> bool {
    let limits = crate::remote::PeerLimits::default();
    let mut members = Members::new("fuzz");
    match rmp_serde::from_slice::<ControlMsg>(body) {
        Ok(ControlMsg::Names(names)) => {
            let ok = names_within(&names, &limits);
            if ok {
                let _ = members.set_names("peer", 1, names);
            }
            ok
        }
        Ok(ControlMsg::Leave | ControlMsg::Reject(_)) => true,
        Err(_) => false,
    }
}

pub(super) fn encode_control(codec: &FrameCodec, msg: &ControlMsg) -> Option<Bytes> {
    let body = rmp_serde::to_vec(msg).ok()?;
    let mut buf = BytesMut::new();
    codec
        .encode(
            &Frame::Control {
                channel: CONTROL_CHANNEL,
                body: Bytes::from(body),
            },
            &mut buf,
        )
        .ok()?;
    Some(buf.freeze())
}

pub(super) async fn write_control(mut send: quinn::SendStream, mut rx: mpsc::Receiver<Bytes>) {
    while let Some(frame) = rx.recv().await {
        let mut batch = vec![frame];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        if send.write_all_chunks(&mut batch).await.is_err() {
            return;
        }
    }
}

/// Disconnects `peer` for going past `limit`, telling it which (its side logs the reason).
pub(super) fn limit_exceeded(inner: &NetInner, peer: &Peer, limit: PeerLimit) {
    if peer.conn.close_reason().is_some() {
        return;
    }
    tracing::error!(peer = %peer.name, %limit, "peer went past a limit; closing the connection");
    metrics::counter!("troupe_remote_limit_exceeded_total", "limit" => limit.as_str()).increment(1);
    peer.conn.close(
        quinn::VarInt::from_u32(close::LIMIT),
        limit.as_str().as_bytes(),
    );
    inner.emit(NodeEvent::LimitExceeded {
        node: peer.name.to_string(),
        limit,
    });
}

pub(super) fn protocol_error(inner: &NetInner, peer: &Peer, cause: String) {
    tracing::error!(cause = %cause, peer = %peer.name, "malformed traffic; closing the connection");
    peer.conn.close(
        quinn::VarInt::from_u32(close::PROTOCOL_ERROR),
        cause.as_bytes(),
    );
    inner.emit(NodeEvent::ProtocolError {
        node: peer.name.to_string(),
        cause,
    });
}

pub(super) async fn read_control(
    inner: Weak<NetInner>,
    peer: Weak<Peer>,
    mut recv: quinn::RecvStream,
    mut buf: BytesMut,
) {
    let Some(codec) = inner.upgrade().map(|i| i.codec) else {
        return;
    };
    loop {
        let frame = read_frame(&codec, &mut recv, &mut buf).await;
        let (Some(inner), Some(peer)) = (inner.upgrade(), peer.upgrade()) else {
            return;
        };
        let body = match frame {
            Ok(Some(Frame::Control { channel, body })) if channel == CONTROL_CHANNEL => body,
            Ok(Some(_)) => {
                protocol_error(
                    &inner,
                    &peer,
                    "unexpected frame on the control stream".into(),
                );
                return;
            }
            Ok(None) => return,
            Err(cause) => {
                if peer.conn.close_reason().is_none() {
                    protocol_error(&inner, &peer, cause.to_string());
                }
                return;
            }
        };
        match rmp_serde::from_slice::<ControlMsg>(&body) {
            Ok(ControlMsg::Names(names)) => {
                if !names_within(&names, &inner.config.limits) {
                    limit_exceeded(&inner, &peer, PeerLimit::Names);
                    return;
                }
                if peer.retired.load(Ordering::Acquire) {
                    // a connection already replaced: the peer's current one speaks for it
                    continue;
                }
                let events = inner
                    .members
                    .lock()
                    .set_names(&peer.name, peer.incarnation, names);
                for e in events {
                    inner.emit(e);
                }
            }
            Ok(ControlMsg::Leave) => {
                peer.left.store(true, Ordering::SeqCst);
                // every member it told reports it left, rather than waiting for it to go
                // silent (or hearing it is down from others first)
                inner.swim.left(peer.name.clone(), peer.incarnation);
            }
            Ok(ControlMsg::Reject(reason)) => {
                tracing::warn!(%reason, peer = %peer.name, "peer refused us");
            }
            Err(e) => {
                protocol_error(&inner, &peer, format!("bad control message: {e}"));
                return;
            }
        }
    }
}

/// Publishes this node's registered names to every peer whenever they change.
pub(super) async fn publish_names(inner: Weak<NetInner>) {
    let Some(mut changes) = inner.upgrade().map(|i| i.node.inner.registry.changes()) else {
        return;
    };
    loop {
        if changes.changed().await.is_err() {
            return;
        }
        // coalesce bursts of registrations into one update
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Some(net) = inner.upgrade() else { return };
        let names = net.node.inner.registry.exposed_names();
        let events = net.members.lock().set_my_names(names.iter().cloned());
        for e in events {
            net.emit(e);
        }
        if let Some(frame) = encode_control(&net.codec, &ControlMsg::Names(names)) {
            net.broadcast_control(&frame);
        }
    }
}
