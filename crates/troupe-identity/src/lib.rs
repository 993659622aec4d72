//! Cluster identity for troupe: a cluster CA, node certificates, and the rustls
//! configurations for mutual TLS between nodes.
//!
//! This crate does not depend on QUIC: `troupe_runtime::remote` wraps these configurations for
//! quinn, so tools that only make certificates (the `troupe` CLI) do not build it.
//!
//! Nodes authenticate each other with mutual TLS 1.3 against a cluster CA. The CA key stays
//! where the CA was made; each host gets the CA certificate and its own node certificate and
//! key, issued for its node name. Every node certificate carries two DNS names: the node's
//! name and the shared [`CLUSTER_SERVER_NAME`]. A node dials a peer whose name it knows with
//! that name as TLS server name, and a seed address whose node name it does not know yet with
//! [`CLUSTER_SERVER_NAME`]; either way the chain is verified against the CA during the
//! handshake. After the handshake, the name a peer *claims* must be checked against its
//! certificate with [`verify_peer_name`] (on both sides: the server learns nothing about the
//! client's name from the handshake itself).
//!
//! All TLS configurations use the *ring* crypto provider, passed explicitly; nothing relies on
//! or installs a process-wide default provider.
//!
//! [`DevCa`] is the dev mode: an in-memory CA for runs on a **single host only**.
//!
//! # Layout
//! The CA directory, made by [`init_ca`] (`troupe ca init DIR`):
//! ```text
//! DIR/ca.crt     CA certificate (PEM)                 -> copy to every host
//! DIR/ca.key     CA private key (PEM, mode 0600)      -> never leaves this directory
//! ```
//! [`issue_node`] (`troupe ca issue DIR NODE [--out OUT]`) adds, in `OUT` (default `DIR`):
//! ```text
//! OUT/NODE.crt   node certificate (PEM)               -> copy to NODE's host
//! OUT/NODE.key   node private key (PEM, mode 0600)    -> copy to NODE's host, keep private
//! ```
//! On a node's host, one directory holds `ca.crt`, `NODE.crt` and `NODE.key`; load it with
//! [`NodeIdentity::load`].
//!
//! # Example
//! ```
//! # fn main() -> Result<(), troupe_identity::IdentityError> {
//! use std::sync::Arc;
//! use troupe_identity::{CLUSTER_SERVER_NAME, DevCa};
//!
//! let ca = DevCa::new("shop")?; // single host only
//! let app = ca.identity("app")?;
//! let server: Arc<rustls::ServerConfig> = app.server_config()?;
//! let client: Arc<rustls::ClientConfig> = app.client_config()?;
//! # let _ = (server, client, CLUSTER_SERVER_NAME);
//! # Ok(())
//! # }
//! ```

mod ca;
mod error;
mod files;
mod https;
mod identity;
mod name;
mod operator;
mod peer;

pub use ca::{
    CA_CERT_FILE, CA_KEY_FILE, CaPaths, DevCa, NodePaths, init_ca, issue_node,
    issue_node_with_roles,
};
pub use error::IdentityError;
pub use https::{HTTPS_ALPN, https_server_config};
pub use identity::{ALPN, NodeIdentity};
pub use name::{
    CLUSTER_SERVER_NAME, MAX_NAME_LEN, MAX_ROLES, ROLE_SUFFIX, validate_cluster_name,
    validate_node_name, validate_role,
};
pub use operator::{
    ADMIN_ALPN, OPERATOR_SUFFIX, OperatorIdentity, OperatorPaths, issue_operator, verify_operator,
};
pub use peer::{verify_peer_name, verify_peer_roles};
