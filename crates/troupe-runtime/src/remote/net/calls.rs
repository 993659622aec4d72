//! Casts and calls to actors on other nodes: encoding, the pending-call table entry, typed errors.

use super::*;

/// The endpoint of this process to reach `node` from, or `Unreachable` when it has none.
fn sender(mesh: &MeshInner, node: &str) -> Result<Arc<NetInner>, CallError> {
    mesh.net_for_send(node)
        .ok_or_else(|| CallError::Unreachable {
            node: node.to_string(),
        })
}

/// Sends a cast over the network to `name` on `node`.
pub(crate) fn remote_cast<M: Message>(
    mesh: &MeshInner,
    node: &str,
    name: &str,
    msg: M,
) -> Result<(), CallError> {
    let net = sender(mesh, node)?;
    if node == net.node.name() {
        // an actor of the sending node itself: no network hop
        return net.node.lookup::<M>(name)?.cast(msg);
    }
    let frame = net.encode_request(EnvelopeKind::Cast, node, name, &msg)?;
    net.queue(node, name, frame)
}

/// Calls `name` on `node` over the network and decodes its reply.
pub(crate) async fn remote_call<M: Message, R: ReplyValue>(
    mesh: &MeshInner,
    node: &str,
    name: &str,
    make: impl FnOnce(Reply<R>) -> M,
    timeout: Duration,
) -> Result<R, CallError> {
    let target = || format!("{node}/{name}");
    let net = sender(mesh, node)?;
    if node == net.node.name() {
        let local = net.node.lookup::<M>(name)?;
        return Box::pin(local.call(make, timeout)).await;
    }
    let msg = make(Reply::outbound());
    let request_id = net.next_request.fetch_add(1, Ordering::Relaxed);
    let kind = EnvelopeKind::Call {
        request_id,
        timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
    };
    let frame = net.encode_request(kind, node, name, &msg)?;
    let reply = net.pending.insert(request_id, Arc::from(node));
    // whatever ends this call early (its caller dropping the future included) takes its entry
    // out of the table; after an answer the entry is gone already and this does nothing
    let _entry = PendingEntry {
        pending: &net.pending,
        id: request_id,
    };
    // the call's timeout covers waiting for a connection too
    let sent_and_answered = async {
        net.queue_call(node, name, frame).await?;
        Ok::<_, CallError>(reply.await)
    };
    let outcome = match tokio::time::timeout(timeout, sent_and_answered).await {
        Ok(Err(unsent)) => return Err(unsent),
        Ok(Ok(answered)) => Ok(answered),
        Err(elapsed) => Err(elapsed),
    };
    match outcome {
        Ok(Ok(Ok(payload))) => {
            crate::addr::with_decode_context(&net.node, || rmp_serde::from_slice::<R>(&payload))
                .map_err(|e| CallError::Decode(format!("reply from {}: {e}", target())))
        }
        Ok(Ok(Err(err))) => Err(match err {
            CallError::Timeout { .. } => CallError::Timeout {
                target: target(),
                after: timeout,
            },
            other => with_target(other, target()),
        }),
        Ok(Err(_)) => Err(CallError::Unreachable {
            node: node.to_string(),
        }),
        Err(_) => Err(CallError::Timeout {
            target: target(),
            after: timeout,
        }),
    }
}

/// A remote call's entry in the pending table, removed when the call ends however it ends.
pub(super) struct PendingEntry<'a> {
    pending: &'a Pending,
    id: u64,
}

impl Drop for PendingEntry<'_> {
    fn drop(&mut self) {
        self.pending.remove(self.id);
    }
}

/// `err` naming the actor the caller addressed (`node/name`) rather than only its node.
pub(super) fn with_target(err: CallError, target: String) -> CallError {
    match err {
        CallError::NotFound { .. } => CallError::NotFound { target },
        CallError::Forbidden { .. } => CallError::Forbidden { target },
        CallError::NoReply { .. } => CallError::NoReply { target },
        CallError::Overloaded { limit, .. } => CallError::Overloaded { target, limit },
        CallError::ActorFailed { reason, .. } => CallError::ActorFailed { target, reason },
        other => other,
    }
}
