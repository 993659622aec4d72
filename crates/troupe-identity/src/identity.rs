//! A node's identity and the mutual-TLS configurations built from it.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, version::TLS13};

use crate::files;
use crate::{CaPaths, IdentityError, NodePaths, validate_node_name, verify_peer_name};

/// The ALPN protocol id troupe nodes offer and require: `troupe/1`.
pub const ALPN: &[u8] = b"troupe/1";

/// A node's identity: its name, the cluster CA certificate(s) it trusts, its own certificate
/// chain and private key.
///
/// Constructed only through [`NodeIdentity::load`] or [`DevCa::identity`](crate::DevCa::identity),
/// both of which guarantee that the certificate is valid for the node name (as a DNS subject
/// alternative name), chains to the CA for both TLS server and TLS client use, and matches the
/// private key.
///
/// The configurations it builds use the *ring* crypto provider explicitly (never a process-wide
/// default provider), TLS 1.3 only, ALPN [`ALPN`], and mutual authentication against the CA.
pub struct NodeIdentity {
    node: String,
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The roles it claims, each checked against its certificate
    roles: Vec<String>,
}

impl NodeIdentity {
    /// Loads node `node`'s identity from `dir`, which must hold `ca.crt`, `NODE.crt` and
    /// `NODE.key` (PEM). `NODE.crt` may hold intermediate certificates after the node's own.
    ///
    /// # Errors
    /// - [`IdentityError::InvalidNodeName`] if `node` is not a valid node name;
    /// - [`IdentityError::Io`] / [`IdentityError::Pem`] naming the file that is missing,
    ///   unreadable or not parsable;
    /// - [`IdentityError::NameMismatch`] if `NODE.crt` is not valid for the name `node`;
    /// - [`IdentityError::Certificate`] if `NODE.crt` does not chain to `ca.crt` (or is expired,
    ///   or lacks the server or client usage), or `NODE.key` does not belong to it.
    pub fn load(dir: &Path, node: &str) -> Result<Self, IdentityError> {
        validate_node_name(node)?;
        let ca_path = CaPaths::new(dir).cert;
        let paths = NodePaths::new(dir, node);
        let ca = files::read_certs(&ca_path)?;
        let chain = files::read_certs(&paths.cert)?;
        let key = files::read_key(&paths.key)?;
        Self::from_parts(node, ca, chain, key).map_err(|e| match e {
            IdentityError::Certificate { reason, source } => IdentityError::Certificate {
                reason: format!(
                    "{} (CA {}): {reason}",
                    paths.cert.display(),
                    ca_path.display()
                ),
                source,
            },
            other => other,
        })
    }

    /// Builds an identity from its parts after checking them (see the type's guarantees).
    pub(crate) fn from_parts(
        node: &str,
        ca: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, IdentityError> {
        validate_node_name(node)?;
        verify_node_chain(&ca, &chain, node)?;
        CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider()).map_err(|e| {
            IdentityError::certificate(
                "the private key does not belong to the certificate or is not usable",
                e,
            )
        })?;
        Ok(Self {
            node: node.to_owned(),
            ca,
            chain,
            key,
            roles: Vec::new(),
        })
    }

    /// This identity, claiming `roles` (in the handshake with every peer): each must be in its
    /// certificate (issued with [`issue_node_with_roles`](crate::issue_node_with_roles), `troupe
    /// ca issue CA NODE --role ROLE`), which peers check too. Replaces the roles claimed before.
    ///
    /// # Errors
    /// [`IdentityError::InvalidRole`] for an invalid role or more than
    /// [`MAX_ROLES`](crate::MAX_ROLES); [`IdentityError::RoleMismatch`] for a role the
    /// certificate does not carry.
    pub fn with_roles<S: AsRef<str>>(mut self, roles: &[S]) -> Result<Self, IdentityError> {
        crate::verify_peer_roles(&self.chain, &self.node, roles)?;
        let mut roles: Vec<String> = roles.iter().map(|r| r.as_ref().to_owned()).collect();
        roles.sort();
        roles.dedup();
        self.roles = roles;
        Ok(self)
    }

    /// The roles this node claims (sorted, each carried by its certificate); none unless set
    /// with [`NodeIdentity::with_roles`].
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// This node's name (as in its certificate).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The CA certificate(s) this node trusts (DER).
    pub fn ca_certs(&self) -> &[CertificateDer<'static>] {
        &self.ca
    }

    /// This node's certificate chain (DER), its own certificate first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// A TLS server configuration: TLS 1.3 only, ALPN [`ALPN`], presents this node's
    /// certificate, and **requires** a client certificate that chains to the CA (with the TLS
    /// client usage). It does not check which node the client is: do that after the handshake
    /// with [`verify_peer_name`]. 0-RTT is off.
    ///
    /// # Errors
    /// [`IdentityError::Tls`] if rustls rejects the configuration (not expected for an identity
    /// that passed construction).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, IdentityError> {
        mtls_server_config(&self.ca, &self.chain, &self.key, ALPN)
    }

    /// A TLS client configuration: TLS 1.3 only, ALPN [`ALPN`], presents this node's
    /// certificate (client authentication), and verifies the server's chain against the CA and
    /// its name against the server name the dialer passes to `connect`: the peer's node name
    /// when known, else [`CLUSTER_SERVER_NAME`](crate::CLUSTER_SERVER_NAME).
    ///
    /// # Errors
    /// [`IdentityError::Tls`] if rustls rejects the configuration (not expected for an identity
    /// that passed construction).
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, IdentityError> {
        mtls_client_config(&self.ca, &self.chain, &self.key, ALPN)
    }

    pub(crate) fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }
}

/// A TLS 1.3 server configuration with the *ring* provider, ALPN `alpn`, presenting `chain`
/// and `key`, requiring a client certificate that chains to `ca`.
pub(crate) fn mtls_server_config(
    ca: &[CertificateDer<'static>],
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    alpn: &[u8],
) -> Result<Arc<rustls::ServerConfig>, IdentityError> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider.clone())
        .build()
        .map_err(tls_err)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&TLS13])
        .map_err(tls_err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.to_vec(), key.clone_key())
        .map_err(tls_err)?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

/// A TLS 1.3 client configuration with the *ring* provider, ALPN `alpn`, presenting `chain`
/// and `key`, verifying the server's chain against `ca` and its name against the one passed
/// to `connect`.
pub(crate) fn mtls_client_config(
    ca: &[CertificateDer<'static>],
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    alpn: &[u8],
) -> Result<Arc<rustls::ClientConfig>, IdentityError> {
    let provider = provider();
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(ca)?, provider.clone())
        .build()
        .map_err(tls_err)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&TLS13])
        .map_err(tls_err)?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(chain.to_vec(), key.clone_key())
        .map_err(tls_err)?;
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

impl Clone for NodeIdentity {
    fn clone(&self) -> Self {
        Self {
            node: self.node.clone(),
            ca: self.ca.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            roles: self.roles.clone(),
        }
    }
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("node", &self.node)
            .field("ca_certs", &self.ca.len())
            .field("chain_len", &self.chain.len())
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// The *ring* crypto provider, the only one troupe uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub(crate) fn tls_err(e: impl std::error::Error + Send + Sync + 'static) -> IdentityError {
    IdentityError::Tls(Box::new(e))
}

pub(crate) fn roots(ca: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, IdentityError> {
    let mut roots = RootCertStore::empty();
    for cert in ca {
        roots.add(cert.clone()).map_err(|e| {
            IdentityError::certificate("CA certificate is not a usable trust anchor", e)
        })?;
    }
    Ok(Arc::new(roots))
}

/// Checks that `chain` (end entity first) is valid for node name `node` and chains to one of
/// `ca` for both TLS server and TLS client use, now.
pub(crate) fn verify_node_chain(
    ca: &[CertificateDer<'static>],
    chain: &[CertificateDer<'_>],
    node: &str,
) -> Result<(), IdentityError> {
    verify_peer_name(chain, node)?;
    let (end_entity, intermediates) = chain
        .split_first()
        .ok_or_else(|| IdentityError::certificate_reason("no certificate"))?;
    let roots = roots(ca)?;
    let provider = provider();
    let now = UnixTime::now();
    let server_name = ServerName::try_from(node.to_owned())
        .map_err(|e| IdentityError::certificate(format!("{node:?} is not a DNS name"), e))?;

    let server = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider)
        .build()
        .map_err(tls_err)?;
    server
        .verify_server_cert(end_entity, intermediates, &server_name, &[], now)
        .map_err(|e| {
            IdentityError::certificate("not valid as a server certificate of the CA", e)
        })?;

    verify_client_use(roots, end_entity, intermediates, now)
}

/// Checks that `end_entity` (with `intermediates`) chains to `roots` for TLS client use at
/// `now`.
pub(crate) fn verify_client_use(
    roots: Arc<RootCertStore>,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(), IdentityError> {
    WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(tls_err)?
        .verify_client_cert(end_entity, intermediates, now)
        .map_err(|e| {
            IdentityError::certificate("not valid as a client certificate of the CA", e)
        })?;
    Ok(())
}
