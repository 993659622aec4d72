//! A node's registry of names: each name maps to the [`Slot`] its handles point at.
//!
//! Registries belong to nodes (never ractor's process-global registry), so several nodes in one
//! process, and tests running in parallel, never collide.

use std::any::Any;
use std::sync::Arc;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;
use tokio::sync::watch;
use troupe_wire::Envelope;

use crate::error::{CallError, RegistryError};
use crate::message::{Mail, Message, ReplyFailure, refuse, with_reply_context};
use crate::node::Node;
use crate::remote::Replier;
use crate::slot::Slot;

/// Delivery of a message that arrived from another node, decoded for the registered type.
pub(crate) trait RemoteInbox: Send + Sync {
    /// Decodes `env`'s payload and delivers it. On failure the error is returned with the
    /// replier if it was not consumed (the caller answers the remote caller with the error).
    fn deliver_remote(
        &self,
        node: &Node,
        env: &Envelope,
        replier: Option<Replier>,
    ) -> Result<(), (CallError, Option<Replier>)>;

    /// Kills the current instance, as a crash would (its supervisor restarts it by policy).
    fn kill(&self) -> bool;

    /// The slot itself, for a typed look-up.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;

    /// The name of the message type the slot takes.
    fn msg_type(&self) -> &'static str;
}

impl<M: Message> RemoteInbox for Slot<M> {
    fn kill(&self) -> bool {
        self.kill_current()
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn msg_type(&self) -> &'static str {
        M::NAME
    }

    fn deliver_remote(
        &self,
        node: &Node,
        env: &Envelope,
        replier: Option<Replier>,
    ) -> Result<(), (CallError, Option<Replier>)> {
        let (decoded, unused) = with_reply_context(replier, || {
            crate::codec::decode_message::<M>(node, &env.msg_type, &env.payload)
        });
        let msg = match decoded {
            Ok(msg) => msg,
            Err(err) => return Err((err, unused)),
        };
        if let Some(replier) = unused {
            // a call whose message carries no reply port: nobody can ever answer it
            replier.answer::<()>(Err(ReplyFailure::Dropped));
        }
        self.deliver(Mail::user(msg)).map_err(|undelivered| {
            // the refusal goes back to the caller through the message's own reply port
            let error = undelivered.error;
            if let Some(mail) = undelivered.mail {
                refuse(mail, &error);
            }
            (error, None)
        })
    }
}

/// Names registered on one node, each with its slot (one pointer per name: a node may hold
/// hundreds of thousands).
pub(crate) struct Registry {
    node: Arc<str>,
    entries: DashMap<Arc<str>, Arc<dyn RemoteInbox>>,
    changes: watch::Sender<u64>,
}

impl Registry {
    pub(crate) fn new(node: Arc<str>) -> Self {
        Self {
            node,
            entries: DashMap::new(),
            changes: watch::Sender::new(0),
        }
    }

    /// Notified (with a counter) whenever a name is registered or removed.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        // Nobody to wake (a node without a network endpoint): skip the notification. A
        // receiver subscribed later starts from the names as they are then.
        if self.changes.receiver_count() > 0 {
            self.changes.send_modify(|v| *v += 1);
        }
    }

    /// The type-erased inbox of `name`, for messages from other nodes.
    pub(crate) fn inbox(&self, name: &str) -> Option<Arc<dyn RemoteInbox>> {
        self.entries.get(name).map(|e| e.value().clone())
    }

    /// Registers `name` for messages of type `M`, returning its (empty) slot. The registry
    /// keeps `name` itself as its key.
    pub(crate) fn register<M: Message>(
        &self,
        name: &Arc<str>,
        mailbox_limit: usize,
    ) -> Result<Arc<Slot<M>>, RegistryError> {
        match self.entries.entry(name.clone()) {
            MapEntry::Occupied(_) => Err(RegistryError::AlreadyRegistered {
                node: self.node.to_string(),
                name: name.to_string(),
            }),
            MapEntry::Vacant(vacant) => {
                let target: Arc<str> = Arc::from([&*self.node, "/", name].concat());
                let slot = Arc::new(Slot::<M>::new(target, mailbox_limit));
                vacant.insert(slot.clone());
                self.changed();
                Ok(slot)
            }
        }
    }

    /// The slot of `name`, if it handles `M`.
    pub(crate) fn lookup<M: Message>(&self, name: &str) -> Result<Arc<Slot<M>>, CallError> {
        let target = || format!("{}/{}", self.node, name);
        let inbox = self
            .entries
            .get(name)
            .map(|e| e.value().clone())
            .ok_or_else(|| CallError::NotFound { target: target() })?;
        let actual = inbox.msg_type();
        inbox
            .into_any()
            .downcast::<Slot<M>>()
            .map_err(|_| CallError::WrongType {
                target: target(),
                expected: M::NAME,
                actual: actual.to_string(),
            })
    }

    /// Removes `name`; its handles then fail with `NotFound` (the caller closes the slot).
    pub(crate) fn unregister(&self, name: &str) {
        if self.entries.remove(name).is_some() {
            self.changed();
        }
    }

    /// Whether `name` is registered.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// All registered names, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.iter().map(|e| e.key().to_string()).collect();
        names.sort();
        names
    }
}
