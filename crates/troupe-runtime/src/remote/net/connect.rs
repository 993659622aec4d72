//! Connections: dialling and accepting, the handshake and its refusals, and setting up a peer.

use super::*;

/// Why a frame could not be read off a stream.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// The bytes are not a valid frame.
    #[error(transparent)]
    Wire(WireError),
    /// The stream or connection failed.
    #[error(transparent)]
    Stream(quinn::ReadError),
}

/// Reads the next frame off a stream; `Ok(None)` when the stream ends cleanly.
pub(super) async fn read_frame(
    codec: &FrameCodec,
    recv: &mut quinn::RecvStream,
    buf: &mut BytesMut,
) -> Result<Option<Frame>, ReadError> {
    loop {
        match codec.decode(buf) {
            Ok(Some(frame)) => return Ok(Some(frame)),
            Ok(None) => {}
            Err(err) => return Err(ReadError::Wire(err)),
        }
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            Ok(None) => return Ok(None),
            Err(e) => return Err(ReadError::Stream(e)),
        }
    }
}

/// What the peer's certificate says of the name and roles its hello claims.
pub(super) fn cert_check(conn: &quinn::Connection, hello: &Hello) -> CertCheck {
    let Some(chain) = tls::peer_chain(conn) else {
        let none = Err("the peer presented no certificate".to_string());
        return CertCheck {
            name: none.clone(),
            roles: none,
        };
    };
    CertCheck {
        name: troupe_identity::verify_peer_name(&chain, &hello.node).map_err(|e| e.to_string()),
        roles: troupe_identity::verify_peer_roles(&chain, &hello.node, &hello.roles)
            .map_err(|e| e.to_string()),
    }
}

/// Reads the peer's hello, mapping a frame of another protocol version to its reason.
pub(super) async fn read_hello(
    inner: &NetInner,
    recv: &mut quinn::RecvStream,
    buf: &mut BytesMut,
) -> Result<Hello, RejectReason> {
    let frame = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&inner.codec, recv, buf))
        .await
        .map_err(|_| RejectReason::BadHello("no hello in time".into()))?;
    match frame {
        Ok(Some(Frame::Hello(hello))) => Ok(hello),
        Ok(Some(Frame::Control { channel, body })) if channel == CONTROL_CHANNEL => {
            match rmp_serde::from_slice::<ControlMsg>(&body) {
                Ok(ControlMsg::Reject(reason)) => Err(RejectReason::Refused(reason)),
                _ => Err(RejectReason::BadHello("expected a hello".into())),
            }
        }
        Ok(Some(_)) => Err(RejectReason::BadHello("expected a hello".into())),
        Ok(None) => Err(RejectReason::BadHello(
            "stream closed before the hello".into(),
        )),
        Err(ReadError::Wire(WireError::ProtocolVersion { got, supported })) => {
            Err(RejectReason::ProtocolMismatch {
                ours: supported,
                theirs: got,
            })
        }
        Err(e) => Err(RejectReason::BadHello(e.to_string())),
    }
}

pub(super) async fn refuse(
    inner: &NetInner,
    conn: &quinn::Connection,
    send: &mut quinn::SendStream,
    node: Option<String>,
    reason: RejectReason,
) {
    if let Some(frame) = encode_control(&inner.codec, &ControlMsg::Reject(reason.to_string())) {
        let _ = send.write_all(&frame).await;
        let _ = send.finish();
        // let the refusal reach the peer before the connection goes
        let _ = tokio::time::timeout(Duration::from_millis(200), send.stopped()).await;
    }
    conn.close(
        quinn::VarInt::from_u32(close::REJECTED),
        reason.to_string().as_bytes(),
    );
    inner.emit(NodeEvent::PeerRejected {
        addr: conn.remote_address(),
        node,
        reason,
    });
}

/// Dials `addr`; `expected` is the node's name when we know it.
pub(crate) async fn dial(
    inner: &Arc<NetInner>,
    addr: SocketAddr,
    expected: Option<&str>,
) -> Result<Arc<Peer>, ConnectError> {
    if inner.shutting_down.load(Ordering::SeqCst) {
        return Err(ConnectError::ShuttingDown);
    }
    let server_name = expected.unwrap_or(troupe_identity::CLUSTER_SERVER_NAME);
    let connecting = inner
        .endpoint
        .connect_with(inner.client_config.clone(), addr, server_name)?;
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(Err(e)) => {
            if tls::is_tls_failure(&e) {
                inner.emit(NodeEvent::PeerRejected {
                    addr,
                    node: expected.map(str::to_string),
                    reason: RejectReason::Tls(e.to_string()),
                });
            }
            return Err(ConnectError::Connection(e));
        }
        Ok(Ok(conn)) => conn,
    };
    let (mut send, mut recv) = conn.open_bi().await?;
    let mut out = BytesMut::new();
    let dial = inner.dials.fetch_add(1, Ordering::Relaxed) + 1;
    inner
        .codec
        .encode(&Frame::Hello(inner.hello().dialing(dial)), &mut out)?;
    send.write_all(&out).await?;
    let mut buf = BytesMut::new();
    let hello = match read_hello(inner, &mut recv, &mut buf).await {
        Ok(hello) => hello,
        Err(_) if conn.close_reason().is_some() => {
            if let Some(quinn::ConnectionError::ApplicationClosed(close)) = conn.close_reason()
                && close.error_code == quinn::VarInt::from_u32(close::DUPLICATE)
            {
                // we dialed a node that was dialing us: its connection survives
                let name = String::from_utf8_lossy(&close.reason).into_owned();
                return surviving_peer(inner, &name).await;
            }
            let (reason, error) = match conn.close_reason() {
                // the peer refused our hello and said why
                Some(quinn::ConnectionError::ApplicationClosed(close))
                    if close.error_code == quinn::VarInt::from_u32(close::REJECTED) =>
                {
                    let why = String::from_utf8_lossy(&close.reason).into_owned();
                    let reason = RejectReason::Refused(why);
                    (reason.clone(), ConnectError::Rejected(reason))
                }
                // the server refused our certificate: TLS lets the client finish its side of
                // the handshake, and the refusal arrives as the connection closing (the guard
                // above says there is a close reason)
                other => {
                    let err = other.unwrap_or(quinn::ConnectionError::LocallyClosed);
                    (
                        RejectReason::Tls(err.to_string()),
                        ConnectError::Connection(err),
                    )
                }
            };
            inner.emit(NodeEvent::PeerRejected {
                addr,
                node: expected.map(str::to_string),
                reason,
            });
            return Err(error);
        }
        Err(reason) => {
            if !matches!(reason, RejectReason::Refused(_)) {
                refuse(inner, &conn, &mut send, None, reason.clone()).await;
            } else {
                inner.emit(NodeEvent::PeerRejected {
                    addr,
                    node: expected.map(str::to_string),
                    reason: reason.clone(),
                });
            }
            return Err(ConnectError::Rejected(reason));
        }
    };
    let expect = Expect {
        cluster: &inner.config.cluster,
        me: inner.node.name(),
        protocol: PROTOCOL_VERSION,
        dialed: expected,
    };
    if let Err(reason) = check_hello(&expect, &hello, cert_check(&conn, &hello)) {
        refuse(
            inner,
            &conn,
            &mut send,
            Some(hello.node.clone()),
            reason.clone(),
        )
        .await;
        return Err(ConnectError::Rejected(reason));
    }
    if inner
        .cuts
        .cut_too_if_cut(&hello.node, conn.remote_address())
    {
        // reached at an address not yet cut (it restarted on another port, say): that one is
        // cut too, and the connection dropped
        return Err(ConnectError::LinkCut(hello.node));
    }
    Ok(establish(
        inner,
        conn,
        send,
        recv,
        buf,
        hello,
        Some((dial, addr)),
    ))
}

/// Waits (bounded) for the connection that survived a simultaneous dial to be registered.
pub(super) async fn surviving_peer(
    inner: &NetInner,
    name: &str,
) -> Result<Arc<Peer>, ConnectError> {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    loop {
        if let Some(peer) = inner.peers.get(name) {
            return Ok(peer.clone());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(ConnectError::Timeout);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(super) async fn accept_loop(inner: Weak<NetInner>) {
    loop {
        let Some(endpoint) = inner.upgrade().map(|i| i.endpoint.clone()) else {
            return;
        };
        let Some(incoming) = endpoint.accept().await else {
            return;
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            let Some(net) = inner.upgrade() else { return };
            let addr = incoming.remote_address();
            let conn = match incoming.await {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(cause = %e, %addr, "incoming connection failed");
                    if tls::is_tls_failure(&e) {
                        net.emit(NodeEvent::PeerRejected {
                            addr,
                            node: None,
                            reason: RejectReason::Tls(e.to_string()),
                        });
                    }
                    return;
                }
            };
            accept(&net, conn).await;
        });
    }
}

pub(super) async fn accept(inner: &Arc<NetInner>, conn: quinn::Connection) {
    let Ok(Ok((mut send, mut recv))) =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.accept_bi()).await
    else {
        conn.close(
            quinn::VarInt::from_u32(close::PROTOCOL_ERROR),
            b"no handshake",
        );
        return;
    };
    let mut buf = BytesMut::new();
    let hello = match read_hello(inner, &mut recv, &mut buf).await {
        Ok(hello) => hello,
        Err(reason) => {
            refuse(inner, &conn, &mut send, None, reason).await;
            return;
        }
    };
    let expect = Expect {
        cluster: &inner.config.cluster,
        me: inner.node.name(),
        protocol: PROTOCOL_VERSION,
        dialed: None,
    };
    if let Err(reason) = check_hello(&expect, &hello, cert_check(&conn, &hello)) {
        refuse(inner, &conn, &mut send, Some(hello.node.clone()), reason).await;
        return;
    }
    if inner
        .cuts
        .cut_too_if_cut(&hello.node, conn.remote_address())
    {
        // a cut-off peer dialling from an address not yet known: that one is cut too, and the
        // connection dies unanswered, as the partition would have it
        return;
    }
    let mut out = BytesMut::new();
    if inner
        .codec
        .encode(&Frame::Hello(inner.hello()), &mut out)
        .is_err()
        || send.write_all(&out).await.is_err()
    {
        return;
    }
    establish(inner, conn, send, recv, buf, hello, None);
}

/// Registers a handshaken connection (resolving duplicates), tells the membership protocol,
/// starts its tasks and sends this node's names; `dialed` is the dial number and address when
/// this node dialed it.
#[allow(clippy::too_many_arguments)]
pub(super) fn establish(
    inner: &Arc<NetInner>,
    conn: quinn::Connection,
    control_send: quinn::SendStream,
    control_recv: quinn::RecvStream,
    control_buf: BytesMut,
    hello: Hello,
    dialed: Option<(u64, SocketAddr)>,
) -> Arc<Peer> {
    let name: Arc<str> = Arc::from(hello.node.as_str());
    let origin = match dialed {
        Some((dial, _)) => Origin {
            dialed_by_me: true,
            dial,
        },
        None => Origin {
            dialed_by_me: false,
            dial: hello.dial,
        },
    };
    let (control_tx, control_rx) = mpsc::channel(inner.config.limits.control_queue.max(1));
    let peer = Peer::new(
        name.clone(),
        hello.incarnation,
        conn.clone(),
        inner.config.lanes,
        inner.config.lane_buffer,
        inner.config.large_message_threshold,
        inner.codec,
        control_tx,
        inner.spinner.clone(),
        Arc::downgrade(inner),
        inner.config.max_frame_len,
        origin,
    );
    let mut replaced = None;
    {
        let me = inner.node.name();
        let entry = inner.peers.entry(name.clone());
        match entry {
            dashmap::mapref::entry::Entry::Occupied(mut existing) => {
                let old = existing.get().clone();
                let same_incarnation = old.incarnation == hello.incarnation;
                let dialed = |origin: Origin| Dialed {
                    by: if origin.dialed_by_me { me } else { &name },
                    dial: origin.dial,
                };
                let new_wins = !same_incarnation
                    || old.conn.close_reason().is_some()
                    || replaces(dialed(origin), dialed(old.origin));
                if !new_wins {
                    // the reason names us, so a dialer that did not know whom it dialed can
                    // find the surviving connection
                    conn.close(quinn::VarInt::from_u32(close::DUPLICATE), me.as_bytes());
                    return old;
                }
                existing.insert(peer.clone());
                replaced = Some(old);
            }
            dashmap::mapref::entry::Entry::Vacant(v) => {
                v.insert(peer.clone());
            }
        }
    }
    // checked against its certificate in the handshake
    inner.node.learn_roles(&name, &hello.roles);
    *inner.connections.lock().entry(name.clone()).or_insert(0) += 1;
    inner.connected.notify_waiters();
    if let Some(old) = replaced {
        old.retired.store(true, Ordering::Release);
        old.conn.close(
            quinn::VarInt::from_u32(close::DUPLICATE),
            inner.node.name().as_bytes(),
        );
        if old.incarnation != hello.incarnation {
            inner.pending.sweep_node(&name);
        }
    }
    // where to dial it again: the address dialled, else the one its datagrams come from (one
    // socket per endpoint, so its listening address unless a NAT is in the way; its own word
    // on where it listens comes with its first membership packet)
    let addr = dialed.map_or_else(|| conn.remote_address(), |(_, addr)| addr);
    let back = {
        let mut members = inner.members.lock();
        members.connected(&name, hello.incarnation, addr);
        members.link_back(&name)
    };
    if let Some(event) = back {
        inner.emit(event);
    }
    if conn
        .max_datagram_size()
        .is_none_or(|max| max < swim::MAX_PACKET + 1)
    {
        tracing::error!(
            peer = %name,
            max = ?conn.max_datagram_size(),
            "the link cannot carry membership datagrams; the peer will be declared down"
        );
    }
    inner
        .swim
        .authenticated(name.clone(), hello.incarnation, addr);
    inner.swim.spawn_reader(
        conn.clone(),
        swim::Sender {
            name: name.clone(),
            generation: hello.incarnation,
            remote: conn.remote_address(),
        },
    );
    tokio::spawn(write_control(control_send, control_rx));
    tokio::spawn(read_control(
        Arc::downgrade(inner),
        Arc::downgrade(&peer),
        control_recv,
        control_buf,
    ));
    tokio::spawn(accept_streams(Arc::downgrade(inner), Arc::downgrade(&peer)));
    tokio::spawn(watch_connection(Arc::downgrade(inner), peer.clone()));
    // introduce ourselves: our names
    let names = inner.node.inner.registry.exposed_names();
    if let Some(frame) = encode_control(&inner.codec, &ControlMsg::Names(names)) {
        inner.send_control(&peer, frame);
    }
    peer
}
