//! A node's registry of names: each name maps to the [`Slot`] its handles point at.
//!
//! Registries belong to nodes (never ractor's process-global registry), so several nodes in one
//! process, and tests running in parallel, never collide.

use std::any::Any;
use std::sync::Arc;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;

use crate::error::{CallError, RegistryError};
use crate::message::Message;
use crate::slot::Slot;

struct Entry {
    slot: Arc<dyn Any + Send + Sync>,
    msg_type: &'static str,
}

/// Names registered on one node.
pub(crate) struct Registry {
    node: Arc<str>,
    entries: DashMap<Arc<str>, Entry>,
}

impl Registry {
    pub(crate) fn new(node: Arc<str>) -> Self {
        Self {
            node,
            entries: DashMap::new(),
        }
    }

    /// Registers `name` for messages of type `M`, returning its (empty) slot.
    pub(crate) fn register<M: Message>(
        &self,
        name: &str,
        mailbox_limit: usize,
    ) -> Result<Arc<Slot<M>>, RegistryError> {
        let key: Arc<str> = Arc::from(name);
        match self.entries.entry(key) {
            MapEntry::Occupied(_) => Err(RegistryError::AlreadyRegistered {
                node: self.node.to_string(),
                name: name.to_string(),
            }),
            MapEntry::Vacant(vacant) => {
                let target: Arc<str> = Arc::from(format!("{}/{}", self.node, name));
                let slot = Arc::new(Slot::<M>::new(target, mailbox_limit));
                vacant.insert(Entry {
                    slot: slot.clone(),
                    msg_type: M::NAME,
                });
                Ok(slot)
            }
        }
    }

    /// The slot of `name`, if it handles `M`.
    pub(crate) fn lookup<M: Message>(&self, name: &str) -> Result<Arc<Slot<M>>, CallError> {
        let target = || format!("{}/{}", self.node, name);
        let entry = self
            .entries
            .get(name)
            .ok_or_else(|| CallError::NotFound { target: target() })?;
        entry
            .slot
            .clone()
            .downcast::<Slot<M>>()
            .map_err(|_| CallError::WrongType {
                target: target(),
                expected: M::NAME,
                actual: entry.msg_type.to_string(),
            })
    }

    /// Removes `name`; its handles then fail with `NotFound` (the caller closes the slot).
    pub(crate) fn unregister(&self, name: &str) {
        self.entries.remove(name);
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
