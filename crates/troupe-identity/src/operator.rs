//! Operators: people and tools that change a running cluster's state through a node's admin
//! endpoint (promote a database replica, replay a dead letter), proving who they are with a
//! certificate from the cluster CA, as nodes do.
//!
//! An operator certificate carries one DNS name, `NAME.operator`, and the TLS client usage only.
//! It can never pass for a node: node names have no dot, and a node certificate never carries a
//! name ending in [`OPERATOR_SUFFIX`], so neither kind of certificate is accepted as the other.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::ExtendedKeyUsagePurpose;
use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::sign::CertifiedKey;

use crate::ca::{load_issuer, mint_leaf, write_leaf};
use crate::files;
use crate::identity::{mtls_client_config, mtls_server_config, provider, roots, verify_client_use};
use crate::{CaPaths, IdentityError, NodeIdentity, validate_node_name};

/// What an operator certificate's one DNS name ends with: operator `alice` is `alice.operator`.
pub const OPERATOR_SUFFIX: &str = ".operator";

/// The ALPN protocol the admin endpoint's TLS side speaks: HTTP/1.1.
pub const ADMIN_ALPN: &[u8] = b"http/1.1";

/// Where an operator's files live: `DIR/NAME.operator.crt` and `DIR/NAME.operator.key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorPaths {
    /// The operator certificate (PEM).
    pub cert: PathBuf,
    /// The operator's private key (PEM, mode 0600).
    pub key: PathBuf,
}

impl OperatorPaths {
    /// The file paths of operator `name` inside `dir` (nothing is checked or created).
    pub fn new(dir: &Path, name: &str) -> Self {
        Self {
            cert: dir.join(format!("{name}{OPERATOR_SUFFIX}.crt")),
            key: dir.join(format!("{name}{OPERATOR_SUFFIX}.key")),
        }
    }
}

/// Issues an operator certificate for `name` (the node-name rules apply to it), signed by the
/// CA in `ca_dir`, and writes `out_dir/NAME.operator.crt` and `out_dir/NAME.operator.key`
/// (mode 0600), replacing existing ones.
///
/// # Errors
/// As [`issue_node`](crate::issue_node): an invalid name, unreadable CA files, files that
/// cannot be written, or a certificate that does not verify against `ca.crt`.
pub fn issue_operator(
    ca_dir: &Path,
    name: &str,
    out_dir: &Path,
) -> Result<OperatorPaths, IdentityError> {
    validate_node_name(name)?;
    let (ca_certs, issuer) = load_issuer(ca_dir)?;
    let (cert, key) = mint_leaf(
        &issuer,
        name,
        vec![format!("{name}{OPERATOR_SUFFIX}")],
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    )?;
    verify_operator_chain(&ca_certs, std::slice::from_ref(cert.der()), name).map_err(|e| {
        IdentityError::certificate(
            format!(
                "the newly issued certificate does not verify against {}",
                CaPaths::new(ca_dir).cert.display()
            ),
            e,
        )
    })?;
    let paths = OperatorPaths::new(out_dir, name);
    write_leaf(out_dir, &paths.cert, &paths.key, &cert, &key)?;
    Ok(paths)
}

/// Checks that the client whose certificate chain is `chain` (verified against the CA during
/// the handshake) is operator `name`: the certificate carries `NAME.operator`.
///
/// # Errors
/// [`IdentityError::InvalidNodeName`] for a name that breaks the node-name rules;
/// [`IdentityError::NameMismatch`] if there is no certificate or it does not carry the name.
pub fn verify_operator(chain: &[CertificateDer<'_>], name: &str) -> Result<(), IdentityError> {
    validate_node_name(name)?;
    let mismatch = |reason: String| IdentityError::NameMismatch {
        claimed: format!("{name}{OPERATOR_SUFFIX}"),
        reason,
    };
    let end_entity = chain
        .first()
        .ok_or_else(|| mismatch("no client certificate was presented".into()))?;
    let dns = DnsName::try_from(format!("{name}{OPERATOR_SUFFIX}"))
        .map_err(|e| mismatch(format!("not a DNS name: {e}")))?;
    let parsed = ParsedCertificate::try_from(end_entity)
        .map_err(|e| mismatch(format!("the certificate cannot be parsed: {e}")))?;
    rustls::client::verify_server_name(&parsed, &ServerName::DnsName(dns))
        .map_err(|e| mismatch(format!("not an operator certificate of this name ({e})")))
}

/// An operator's identity: the CA it trusts, its certificate chain and key, checked to belong
/// together and to the name.
pub struct OperatorIdentity {
    name: String,
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl OperatorIdentity {
    /// Loads operator `name` from `dir`, which must hold `ca.crt`, `NAME.operator.crt` and
    /// `NAME.operator.key` (what `troupe ca issue DIR NAME --operator` writes, plus the CA
    /// certificate).
    ///
    /// # Errors
    /// The file that is missing or unparsable, a certificate that does not carry
    /// `NAME.operator` or does not chain to `ca.crt`, or a key that does not belong to it.
    pub fn load(dir: &Path, name: &str) -> Result<Self, IdentityError> {
        validate_node_name(name)?;
        let ca = files::read_certs(&CaPaths::new(dir).cert)?;
        let paths = OperatorPaths::new(dir, name);
        let chain = files::read_certs(&paths.cert)?;
        let key = files::read_key(&paths.key)?;
        verify_operator_chain(&ca, &chain, name)?;
        CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider()).map_err(|e| {
            IdentityError::certificate(
                format!(
                    "{} does not belong to {}",
                    paths.key.display(),
                    paths.cert.display()
                ),
                e,
            )
        })?;
        Ok(Self {
            name: name.to_owned(),
            ca,
            chain,
            key,
        })
    }

    /// The operator's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A TLS client configuration for a node's admin endpoint: TLS 1.3, ALPN
    /// [`ADMIN_ALPN`], this operator's certificate presented, and the node's certificate
    /// verified against the CA (connect with [`CLUSTER_SERVER_NAME`](crate::CLUSTER_SERVER_NAME)
    /// as the server name, which every node certificate carries).
    ///
    /// # Errors
    /// [`IdentityError::Tls`] if rustls rejects the configuration.
    pub fn admin_client_config(&self) -> Result<Arc<rustls::ClientConfig>, IdentityError> {
        mtls_client_config(&self.ca, &self.chain, &self.key, ADMIN_ALPN)
    }
}

impl fmt::Debug for OperatorIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OperatorIdentity")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// A TLS server configuration for this node's admin endpoint: TLS 1.3, ALPN
    /// [`ADMIN_ALPN`], this node's certificate presented, and a client certificate that chains
    /// to the CA **required**. Which operator the client is, is checked per request with
    /// [`verify_operator`].
    ///
    /// # Errors
    /// [`IdentityError::Tls`] if rustls rejects the configuration.
    pub fn admin_server_config(&self) -> Result<Arc<rustls::ServerConfig>, IdentityError> {
        mtls_server_config(self.ca_certs(), self.cert_chain(), self.key(), ADMIN_ALPN)
    }
}

/// Checks that `chain` is operator `name`'s and chains to one of `ca` for TLS client use, now.
fn verify_operator_chain(
    ca: &[CertificateDer<'static>],
    chain: &[CertificateDer<'_>],
    name: &str,
) -> Result<(), IdentityError> {
    verify_operator(chain, name)?;
    let (end_entity, intermediates) = chain
        .split_first()
        .ok_or_else(|| IdentityError::certificate_reason("no certificate"))?;
    verify_client_use(roots(ca)?, end_entity, intermediates, UnixTime::now())
}
