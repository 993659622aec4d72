//! Streams from a peer: lanes of frames and large messages on streams of their own, bounded.

use super::*;

pub(super) async fn accept_streams(inner: Weak<NetInner>, peer: Weak<Peer>) {
    loop {
        let Some(conn) = peer.upgrade().map(|p| p.conn.clone()) else {
            return;
        };
        let Ok(mut recv) = conn.accept_uni().await else {
            return;
        };
        let Some(open) = peer.upgrade().map(|p| p.streams_in.open()) else {
            return;
        };
        let (inner, peer) = (inner.clone(), peer.clone());
        tokio::spawn(async move {
            let _open = open;
            let mut head = [0u8; 1];
            if recv.read_exact(&mut head).await.is_err() {
                return;
            }
            match head[0] {
                STREAM_LANE => {
                    let mut index = [0u8; 1];
                    if recv.read_exact(&mut index).await.is_ok() {
                        read_lane(inner, peer, recv).await;
                    }
                }
                STREAM_LARGE => read_large(inner, peer, recv).await,
                other => {
                    if let (Some(i), Some(p)) = (inner.upgrade(), peer.upgrade()) {
                        protocol_error(&i, &p, format!("unknown stream kind {other}"));
                    }
                }
            }
        });
    }
}

pub(super) async fn read_lane(
    inner: Weak<NetInner>,
    peer: Weak<Peer>,
    mut recv: quinn::RecvStream,
) {
    let Some(codec) = inner.upgrade().map(|i| i.codec) else {
        return;
    };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let chunk = recv.read_chunk(256 * 1024, true).await;
        let (Some(net), Some(p)) = (inner.upgrade(), peer.upgrade()) else {
            return;
        };
        if let Some(spinner) = &net.spinner {
            spinner.touch();
        }
        match chunk {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            Ok(None) | Err(_) => return,
        }
        let mut frames = 0u64;
        let ended = loop {
            match codec.decode(&mut buf) {
                Ok(Some(Frame::Envelope(env))) => {
                    frames += 1;
                    net.dispatch(&p, env);
                }
                Ok(Some(Frame::LargeMarker { stream_seq })) => {
                    frames += 1;
                    // later messages on this lane wait for the large one: per-pair order
                    let deadline = net.config.limits.large_message_deadline;
                    match tokio::time::timeout(deadline, p.large(stream_seq)).await {
                        Ok(Some(env)) => net.dispatch(&p, env),
                        Ok(None) => break true,
                        Err(_) => {
                            limit_exceeded(&net, &p, PeerLimit::LargeDeadline);
                            break true;
                        }
                    }
                }
                Ok(Some(_)) => {
                    protocol_error(&net, &p, "unexpected frame on a lane".into());
                    break true;
                }
                Ok(None) => break false,
                Err(err) => {
                    protocol_error(&net, &p, err.to_string());
                    break true;
                }
            }
        };
        p.frames_received.fetch_add(frames, Ordering::Relaxed);
        if ended {
            return;
        }
    }
}

pub(super) async fn read_large(
    inner: Weak<NetInner>,
    peer: Weak<Peer>,
    mut recv: quinn::RecvStream,
) {
    let (Some(net), Some(p)) = (inner.upgrade(), peer.upgrade()) else {
        return;
    };
    let limits = &net.config.limits;
    // counted while it is read, and while it waits for its marker
    let reading = StreamCount::enter(&p.large_streams);
    if reading.count + p.large_waiting() > limits.max_large_in_flight {
        limit_exceeded(&net, &p, PeerLimit::LargeInFlight);
        return;
    }
    let (deadline, limit) = (limits.large_message_deadline, net.config.max_frame_len + 16);
    let read = tokio::time::timeout(deadline, async {
        let mut seq = [0u8; 8];
        recv.read_exact(&mut seq).await.map_err(|e| e.to_string())?;
        let bytes = recv.read_to_end(limit).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((u64::from_be_bytes(seq), bytes))
    })
    .await;
    drop(reading);
    let (seq, bytes) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(e)) => {
            protocol_error(&net, &p, format!("large message stream: {e}"));
            return;
        }
        Err(_) => {
            limit_exceeded(&net, &p, PeerLimit::LargeDeadline);
            return;
        }
    };
    if p.large_waiting() >= limits.max_large_in_flight {
        limit_exceeded(&net, &p, PeerLimit::LargeInFlight);
        return;
    }
    let mut buf = BytesMut::from(&bytes[..]);
    match net.codec.decode(&mut buf) {
        Ok(Some(Frame::Envelope(env))) if buf.is_empty() => p.large_arrived(seq, env),
        Ok(_) => protocol_error(&net, &p, "malformed large message stream".into()),
        Err(err) => protocol_error(&net, &p, err.to_string()),
    }
}

/// One more reader of a kind, counted until it is dropped.
pub(super) struct StreamCount<'a> {
    counter: &'a std::sync::atomic::AtomicUsize,
    /// How many, this one included, when it entered.
    count: usize,
}

impl<'a> StreamCount<'a> {
    fn enter(counter: &'a std::sync::atomic::AtomicUsize) -> Self {
        let count = counter.fetch_add(1, Ordering::Relaxed) + 1;
        Self { counter, count }
    }
}

impl Drop for StreamCount<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Relaxed);
    }
}
