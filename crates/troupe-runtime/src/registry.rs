//! A node's registry of names: each name maps to the [`Slot`] its handles point at.
//!
//! Registries belong to nodes (never ractor's process-global registry), so several nodes in one
//! process, and tests running in parallel, never collide.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;
use tokio::sync::watch;
use troupe_wire::{Envelope, EnvelopeKind};

/// A concurrent map hashed with foldhash: registry names and call ids are looked up on every
/// remote message and every spawn, where SipHash cost a few hundred instructions a key.
/// Seeded per process, so keys sent by peers cannot be chosen to collide.
pub(crate) type FastMap<K, V> = DashMap<K, V, foldhash::fast::RandomState>;

use crate::error::{CallError, RegistryError};
use crate::message::{Mail, Message, ReplyFailure, refuse, with_reply_context};
use crate::node::{Node, Route};
use crate::reach::{NodeRoles, Reach};
use crate::remote::Replier;
use crate::slot::{ActorStats, Slot};
use crate::trace::TraceParent;

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

    /// Whether a message delivered now would be handled: `false` for a gated actor (a
    /// failover child) whose gate is closed or whose instance has not started. `true` for a
    /// facet (its actor decides).
    fn serving(&self) -> bool {
        true
    }

    /// The slot itself, for a typed look-up.
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;

    /// The name of the message type the slot takes.
    fn msg_type(&self) -> &'static str;

    /// For a facet: its `Arc<dyn Inlet<P>>`, boxed, for a typed look-up by `P`.
    fn inlet(self: Arc<Self>) -> Option<Box<dyn Any + Send + Sync>> {
        None
    }

    /// An actor's counters; `None` for a facet (its actor reports them).
    fn stats(&self) -> Option<ActorStats> {
        None
    }

    /// Gates the actor's messages (see [`Gate`](crate::placed::Gate)); `false` for a facet
    /// (gate its actor) or an actor gated already.
    fn set_gate(&self, gate: crate::placed::Gate) -> bool {
        let _ = gate;
        false
    }

    /// The gate of the actor's messages, if it has one (`None` for a facet).
    fn gate(&self) -> Option<crate::placed::Gate> {
        None
    }

    /// Drops the messages parked for the next instance; how many (0 for a facet).
    fn drop_parked(&self) -> usize {
        0
    }

    /// Whether an instance runs now (`false` for a facet).
    fn is_running(&self) -> bool {
        false
    }
}

/// Delivery of `P` messages into an actor that takes another type: what a handle to a facet
/// sends through.
pub(crate) trait Inlet<P>: Send + Sync {
    /// Wraps `msg` into the actor's own message type and queues it.
    fn deliver(&self, msg: P) -> Result<(), CallError>;

    /// Messages refused so far because the actor's mailbox was full.
    fn dropped(&self) -> u64;
}

/// A second name for an actor, taking messages of another type `P` that it wraps into the
/// actor's own `M` (so a part's peer protocol can be a type of its own, reachable by other
/// nodes than its client messages).
pub(crate) struct Facet<P, M: Message> {
    target: Arc<Slot<M>>,
    wrap: fn(P) -> M,
}

impl<P: Message, M: Message> Inlet<P> for Facet<P, M> {
    fn deliver(&self, msg: P) -> Result<(), CallError> {
        self.target
            .deliver(Mail::sent((self.wrap)(msg)))
            .map_err(|undelivered| undelivered.error)
    }

    fn dropped(&self) -> u64 {
        self.target.dropped()
    }
}

impl<P: Message, M: Message> RemoteInbox for Facet<P, M> {
    fn deliver_remote(
        &self,
        node: &Node,
        env: &Envelope,
        replier: Option<Replier>,
    ) -> Result<(), (CallError, Option<Replier>)> {
        let msg = decode_remote::<P>(node, env, replier)?;
        deliver_or_refuse(&self.target, (self.wrap)(msg), due(env), trace(env))
    }

    fn kill(&self) -> bool {
        self.target.kill_current()
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn msg_type(&self) -> &'static str {
        P::NAME
    }

    fn inlet(self: Arc<Self>) -> Option<Box<dyn Any + Send + Sync>> {
        let inlet: Arc<dyn Inlet<P>> = self;
        Some(Box::new(inlet))
    }
}

/// Decodes a message from another node as an `M`, binding the reply port it carries to the
/// call's `replier`. On failure the replier comes back unused, for the caller to answer.
fn decode_remote<M: Message>(
    node: &Node,
    env: &Envelope,
    replier: Option<Replier>,
) -> Result<M, (CallError, Option<Replier>)> {
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
    Ok(msg)
}

/// When a call that arrived now stops being worth starting: its caller's timeout from now
/// (the transit time is unknown, so this errs towards starting it). Casts have none.
fn due(env: &Envelope) -> Option<tokio::time::Instant> {
    match env.kind {
        EnvelopeKind::Call { timeout_ms, .. } if timeout_ms != u32::MAX => Some(
            tokio::time::Instant::now() + std::time::Duration::from_millis(u64::from(timeout_ms)),
        ),
        _ => None,
    }
}

/// The trace a message from another node belongs to, from its envelope (a context that does
/// not parse is ignored: the message is handled untraced).
fn trace(env: &Envelope) -> Option<TraceParent> {
    env.trace
        .as_ref()
        .and_then(|t| TraceParent::parse(&t.traceparent))
}

/// Queues `msg` in `slot`; a refusal goes back to the caller through the message's own
/// reply port.
fn deliver_or_refuse<M: Message>(
    slot: &Slot<M>,
    msg: M,
    due: Option<tokio::time::Instant>,
    trace: Option<TraceParent>,
) -> Result<(), (CallError, Option<Replier>)> {
    let mail = Mail::remote(msg, due, trace);
    slot.deliver(mail).map_err(|undelivered| {
        let error = undelivered.error;
        if let Some(mail) = undelivered.mail {
            refuse(mail, &error);
        }
        (error, None)
    })
}

impl<M: Message> RemoteInbox for Slot<M> {
    fn kill(&self) -> bool {
        self.kill_current()
    }

    fn serving(&self) -> bool {
        self.serving()
    }

    fn set_gate(&self, gate: crate::placed::Gate) -> bool {
        self.gate.set(gate).is_ok()
    }

    fn gate(&self) -> Option<crate::placed::Gate> {
        self.gate.get().cloned()
    }

    fn drop_parked(&self) -> usize {
        Self::drop_parked(self)
    }

    fn is_running(&self) -> bool {
        self.has_instance()
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn msg_type(&self) -> &'static str {
        M::NAME
    }

    fn stats(&self) -> Option<ActorStats> {
        Some(Self::stats(self))
    }

    fn deliver_remote(
        &self,
        node: &Node,
        env: &Envelope,
        replier: Option<Replier>,
    ) -> Result<(), (CallError, Option<Replier>)> {
        let msg = decode_remote::<M>(node, env, replier)?;
        deliver_or_refuse(self, msg, due(env), trace(env))
    }
}

/// Names registered on one node, each with its slot (one pointer per name: a node may hold
/// hundreds of thousands), and the few that other nodes may reach.
pub(crate) struct Registry {
    node: Arc<str>,
    entries: FastMap<Arc<str>, Arc<dyn RemoteInbox>>,
    /// The names other nodes may reach and who may; a name absent here is local-only (most
    /// are, so they cost nothing here).
    exposed: FastMap<Arc<str>, Reach>,
    /// The facets registered for an actor's name, removed with it.
    facets_of: FastMap<Arc<str>, Vec<Arc<str>>>,
    /// Which roles each node plays, for reaches by role.
    roles: NodeRoles,
    /// Roles nodes proved with their certificates (a peer's handshake, this node's own
    /// identity), besides the table: how a node the topology does not declare plays a role.
    learned_roles: parking_lot::RwLock<BTreeMap<Arc<str>, BTreeSet<String>>>,
    changes: watch::Sender<u64>,
}

/// The most nodes whose proved roles one node keeps (beyond it, new ones are not learnt)
const MAX_LEARNED_ROLES: usize = 10_000;

impl Registry {
    pub(crate) fn new(node: Arc<str>, roles: NodeRoles) -> Self {
        Self {
            roles,
            learned_roles: parking_lot::RwLock::new(BTreeMap::new()),
            node,
            entries: FastMap::default(),
            exposed: FastMap::default(),
            facets_of: FastMap::default(),
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

    /// Every registered actor's counters, sorted by name.
    pub(crate) fn stats(&self) -> Vec<ActorStats> {
        let mut stats: Vec<ActorStats> = self
            .entries
            .iter()
            .filter_map(|entry| entry.value().stats())
            .collect();
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        stats
    }

    /// The inbox of `name`, for operations on its slot whatever its type.
    pub(crate) fn entry(&self, name: &str) -> Option<Arc<dyn RemoteInbox>> {
        self.entries.get(name).map(|e| e.value().clone())
    }

    /// Gates the messages of the actor registered as `name`; see `Node::gate`.
    pub(crate) fn set_gate(&self, name: &str, gate: crate::placed::Gate) -> bool {
        self.entries
            .get(name)
            .is_some_and(|entry| entry.value().set_gate(gate))
    }

    /// The type-erased inbox of `name`, for messages from other nodes.
    pub(crate) fn inbox(&self, name: &str) -> Option<Arc<dyn RemoteInbox>> {
        self.entries.get(name).map(|e| e.value().clone())
    }

    /// Registers `name` for messages of type `M`, reachable from other nodes as `reach`
    /// says, returning its (empty) slot. The registry keeps `name` itself as its key.
    pub(crate) fn register<M: Message>(
        &self,
        name: &Arc<str>,
        mailbox_limit: usize,
        reach: Reach,
        gate: Option<crate::placed::Gate>,
    ) -> Result<Arc<Slot<M>>, RegistryError> {
        match self.entries.entry(name.clone()) {
            MapEntry::Occupied(_) => Err(RegistryError::AlreadyRegistered {
                node: self.node.to_string(),
                name: name.to_string(),
            }),
            MapEntry::Vacant(vacant) => {
                let slot = Arc::new(Slot::<M>::new(
                    self.node.clone(),
                    name.clone(),
                    mailbox_limit,
                    gate,
                ));
                if reach.is_exposed() {
                    self.exposed.insert(name.clone(), reach);
                }
                vacant.insert(slot.clone());
                self.changed();
                Ok(slot)
            }
        }
    }

    /// The slot of `name`, if it handles `M`.
    pub(crate) fn lookup<M: Message>(&self, name: &str) -> Result<Arc<Slot<M>>, CallError> {
        match self.route::<M>(name)? {
            Route::Local(slot) => Ok(slot),
            _ => Err(self.wrong_type::<M>(name, "a facet")),
        }
    }

    /// How a handle of this process reaches `name` with messages of type `M`: its slot, or
    /// the inlet of a facet taking `M`.
    pub(crate) fn route<M: Message>(&self, name: &str) -> Result<Route<M>, CallError> {
        let inbox = self
            .entries
            .get(name)
            .map(|e| e.value().clone())
            .ok_or_else(|| CallError::NotFound {
                target: format!("{}/{}", self.node, name),
            })?;
        let actual = inbox.msg_type();
        if let Ok(slot) = inbox.clone().into_any().downcast::<Slot<M>>() {
            return Ok(Route::Local(slot));
        }
        match inbox.inlet().map(|any| any.downcast::<Arc<dyn Inlet<M>>>()) {
            Some(Ok(inlet)) => Ok(Route::Inlet(*inlet)),
            _ => Err(self.wrong_type::<M>(name, actual)),
        }
    }

    fn wrong_type<M: Message>(&self, name: &str, actual: &str) -> CallError {
        CallError::WrongType {
            target: format!("{}/{}", self.node, name),
            expected: M::NAME,
            actual: actual.to_string(),
        }
    }

    /// Registers `name` as a facet of the actor registered as `of`: messages of type `P`
    /// sent to `name` reach that actor wrapped by `wrap`, from the nodes `reach` allows.
    pub(crate) fn register_facet<P: Message, M: Message>(
        &self,
        name: &Arc<str>,
        of: &str,
        wrap: fn(P) -> M,
        reach: Reach,
    ) -> Result<(), RegistryError> {
        let target = self
            .lookup::<M>(of)
            .map_err(|_| RegistryError::NotRegistered {
                node: self.node.to_string(),
                name: of.to_string(),
                msg_type: M::NAME,
            })?;
        match self.entries.entry(name.clone()) {
            MapEntry::Occupied(_) => Err(RegistryError::AlreadyRegistered {
                node: self.node.to_string(),
                name: name.to_string(),
            }),
            MapEntry::Vacant(vacant) => {
                if reach.is_exposed() {
                    self.exposed.insert(name.clone(), reach);
                }
                vacant.insert(Arc::new(Facet { target, wrap }));
                self.facets_of
                    .entry(Arc::from(of))
                    .or_default()
                    .push(name.clone());
                self.changed();
                Ok(())
            }
        }
    }

    /// Removes `name`; its handles then fail with `NotFound` (the caller closes the slot).
    pub(crate) fn unregister(&self, name: &str) {
        if let Some((_, facets)) = self.facets_of.remove(name) {
            for facet in facets {
                self.unregister(&facet);
            }
        }
        self.exposed.remove(name);
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

    /// The names other nodes may reach (the ones announced to peers), sorted.
    pub(crate) fn exposed_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.exposed.iter().map(|e| e.key().to_string()).collect();
        names.sort();
        names
    }

    /// Whether node `peer` may send messages to `name`.
    pub(crate) fn reachable_from(&self, name: &str, peer: &str) -> bool {
        self.exposed.get(name).is_some_and(|reach| {
            reach.allows_with(peer, &self.roles)
                || match &*reach {
                    Reach::Roles(wanted) => self
                        .learned_roles
                        .read()
                        .get(peer)
                        .is_some_and(|has| wanted.iter().any(|r| has.contains(&**r))),
                    _ => false,
                }
        })
    }

    /// Records the roles `node` proved with its certificate (replacing what it proved
    /// before); bounded: past [`MAX_LEARNED_ROLES`] nodes, new ones are not recorded.
    pub(crate) fn learn_roles(&self, node: &str, roles: &[String]) {
        let mut learned = self.learned_roles.write();
        if roles.is_empty() {
            learned.remove(node);
            return;
        }
        if learned.len() >= MAX_LEARNED_ROLES && !learned.contains_key(node) {
            tracing::warn!(%node, "too many nodes with roles known: this one's are not recorded");
            return;
        }
        learned.insert(Arc::from(node), roles.iter().cloned().collect());
    }

    /// The roles `node` plays: as the table states them, and as it proved them
    pub(crate) fn roles_of(&self, node: &str) -> BTreeSet<String> {
        let mut roles = self.roles.get(node).cloned().unwrap_or_default();
        if let Some(learned) = self.learned_roles.read().get(node) {
            roles.extend(learned.iter().cloned());
        }
        roles
    }
}
