//! Typed errors returned by handles, registries and supervisors.

use std::time::Duration;

/// Why a [`cast`](crate::Addr::cast) or [`call`](crate::Addr::call) did not get its answer.
///
/// Every failure of a send or call is one of these; a call never hangs past its timeout and
/// never panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No reply arrived within the call's timeout (the actor may still handle the message).
    #[error("call to {target} timed out after {after:?}")]
    Timeout {
        /// The called actor, as `node/name`.
        target: String,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// No actor is registered under that name (or it was removed for good).
    #[error("no actor {target}")]
    NotFound {
        /// The addressed actor, as `node/name`.
        target: String,
    },
    /// The node hosting the actor is down or cannot be reached.
    #[error("node {node} is unreachable")]
    Unreachable {
        /// The unreachable node.
        node: String,
    },
    /// A message or reply could not be decoded.
    #[error("decode error: {0}")]
    Decode(String),
    /// The actor failed (panicked or returned an error) while handling the call.
    #[error("actor {target} failed while handling the call: {reason}")]
    ActorFailed {
        /// The called actor, as `node/name`.
        target: String,
        /// What the failure said.
        reason: String,
    },
    /// The actor's mailbox (or the link to its node) is full; the message was not sent.
    #[error("actor {target} is overloaded (mailbox limit {limit})")]
    Overloaded {
        /// The addressed actor, as `node/name`.
        target: String,
        /// The limit that was reached.
        limit: usize,
    },
    /// The encoded message exceeds the frame size limit.
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Encoded size.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// The name is registered, but for another message type.
    #[error("actor {target} handles {actual}, not {expected}")]
    WrongType {
        /// The addressed actor, as `node/name`.
        target: String,
        /// The message type the caller used.
        expected: &'static str,
        /// The message type the actor handles.
        actual: String,
    },
    /// The actor dropped the reply handle without answering.
    #[error("actor {target} dropped the reply handle without answering")]
    NoReply {
        /// The called actor, as `node/name`.
        target: String,
    },
    /// The actor does not accept messages from the sending node: it is not reachable from
    /// other nodes at all, or not from this one (see [`Reach`](crate::Reach)).
    #[error("actor {target} does not accept messages from this node")]
    Forbidden {
        /// The addressed actor, as `node/name`.
        target: String,
    },
}

/// Registering a name failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The node already has an actor under this name.
    #[error("name {name} is already registered on node {node}")]
    AlreadyRegistered {
        /// The node.
        node: String,
        /// The name.
        name: String,
    },
    /// No actor taking the expected message type is registered under this name.
    #[error("no actor taking {msg_type} is registered as {name} on node {node}")]
    NotRegistered {
        /// The node.
        node: String,
        /// The name.
        name: String,
        /// The message type it should take.
        msg_type: &'static str,
    },
    /// A node with this name already exists in this process.
    #[error("a node named {0} already exists in this process")]
    DuplicateNode(String),
}

/// Starting an actor or supervisor failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// The name is taken.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The actor failed in its start hook, or the runtime refused to spawn it.
    #[error("actor {name} failed to start: {reason}")]
    StartFailed {
        /// The actor's name.
        name: String,
        /// What failed.
        reason: String,
    },
    /// The supervisor asked to start the child is not running.
    #[error("supervisor {0} is not running")]
    SupervisorGone(String),
}
