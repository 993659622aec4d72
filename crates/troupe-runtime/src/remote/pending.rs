//! Calls waiting for a reply from another node, swept on timeout and when their node goes down.

use std::sync::Arc;

use crate::registry::FastMap;
use bytes::Bytes;
use tokio::sync::oneshot;

use crate::error::CallError;

/// What a waiting call receives: the reply payload, or why there is none.
pub(crate) type ReplyResult = Result<Bytes, CallError>;

struct PendingCall {
    node: Arc<str>,
    tx: oneshot::Sender<ReplyResult>,
}

/// The table of outstanding remote calls of one node, keyed by request id.
#[derive(Default)]
pub(crate) struct Pending {
    calls: FastMap<u64, PendingCall>,
}

impl Pending {
    /// Registers call `id` to `node`; the receiver gets exactly one answer unless the caller
    /// removes the entry first (on its own timeout).
    pub(crate) fn insert(&self, id: u64, node: Arc<str>) -> oneshot::Receiver<ReplyResult> {
        let (tx, rx) = oneshot::channel();
        self.calls.insert(id, PendingCall { node, tx });
        rx
    }

    /// Completes call `id` with a reply that arrived from node `from`. A reply from any other
    /// node than the one the call went to is not accepted (the entry stays for the real one);
    /// unknown ids (the caller gave up already) are ignored. Returns whether it was accepted.
    pub(crate) fn complete(&self, id: u64, from: &str, result: ReplyResult) -> bool {
        match self.calls.remove_if(&id, |_, call| &*call.node == from) {
            Some((_, call)) => {
                let _ = call.tx.send(result);
                true
            }
            None => false,
        }
    }

    /// Forgets call `id` (its caller gave up).
    pub(crate) fn remove(&self, id: u64) {
        self.calls.remove(&id);
    }

    /// Fails every call waiting on `node` with `Unreachable`; returns how many.
    pub(crate) fn sweep_node(&self, node: &str) -> usize {
        let mut ids: Vec<u64> = self
            .calls
            .iter()
            .filter(|e| &*e.value().node == node)
            .map(|e| *e.key())
            .collect();
        // oldest first, whatever the map's hashing: a simulation replays the wake-ups exactly
        ids.sort_unstable();
        let mut swept = 0;
        for id in ids {
            if let Some((_, call)) = self.calls.remove(&id) {
                let _ = call.tx.send(Err(CallError::Unreachable {
                    node: node.to_string(),
                }));
                swept += 1;
            }
        }
        swept
    }

    /// Calls outstanding.
    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_gets_one_answer_and_sweeps_hit_only_their_node() {
        let pending = Pending::default();
        let mut to_b = pending.insert(1, Arc::from("b"));
        let mut to_c = pending.insert(2, Arc::from("c"));
        let mut late = pending.insert(3, Arc::from("b"));
        // a reply for b's call from c is not taken, and b's own still is
        assert!(!pending.complete(3, "c", Ok(Bytes::from_static(b"forged"))));
        assert!(pending.complete(3, "b", Ok(Bytes::from_static(b"ok"))));
        assert_eq!(pending.sweep_node("b"), 1);
        assert!(matches!(
            to_b.try_recv(),
            Ok(Err(CallError::Unreachable { .. }))
        ));
        assert!(to_c.try_recv().is_err(), "c's call is still waiting");
        assert_eq!(late.try_recv().ok(), Some(Ok(Bytes::from_static(b"ok"))));
        pending.remove(2);
        assert!(!pending.complete(2, "c", Ok(Bytes::new())));
        assert_eq!(pending.len(), 0);
    }
}
