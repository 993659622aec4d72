//! Checking who a peer is after the handshake.

use rustls::client::verify_server_name;
use rustls::pki_types::{CertificateDer, DnsName, ServerName};
use rustls::server::ParsedCertificate;

use crate::{IdentityError, validate_node_name};

/// Checks that the peer whose certificate chain is `peer_chain` may call itself `claimed`: the
/// end-entity certificate (the first in the chain) carries `claimed` as a DNS subject
/// alternative name.
///
/// This checks the name only. The chain itself was verified against the CA during the TLS
/// handshake (both [`NodeIdentity::server_config`] and [`NodeIdentity::client_config`] require
/// that), so call this with the chain of an established connection (for QUIC, from
/// `troupe_runtime::remote::peer_chain`).
///
/// `claimed` must be a valid node name; in particular the shared
/// [`CLUSTER_SERVER_NAME`](crate::CLUSTER_SERVER_NAME), which every node certificate carries, is
/// never accepted as a claim.
///
/// [`NodeIdentity::server_config`]: crate::NodeIdentity::server_config
/// [`NodeIdentity::client_config`]: crate::NodeIdentity::client_config
///
/// # Errors
/// [`IdentityError::InvalidNodeName`] if `claimed` is not a valid node name;
/// [`IdentityError::NameMismatch`] if the chain is empty, the certificate cannot be parsed, or
/// it is not valid for `claimed`.
pub fn verify_peer_name(
    peer_chain: &[CertificateDer<'_>],
    claimed: &str,
) -> Result<(), IdentityError> {
    let mismatch = |reason: String| IdentityError::NameMismatch {
        claimed: claimed.to_owned(),
        reason,
    };
    validate_node_name(claimed)?;
    let end_entity = peer_chain
        .first()
        .ok_or_else(|| mismatch("the peer presented no certificate".into()))?;
    let dns_name = DnsName::try_from(claimed)
        .map_err(|e| mismatch(format!("not a DNS name: {e}")))?
        .to_owned();
    let parsed = ParsedCertificate::try_from(end_entity)
        .map_err(|e| mismatch(format!("the certificate cannot be parsed: {e}")))?;
    verify_server_name(&parsed, &ServerName::DnsName(dns_name))
        .map_err(|e| mismatch(format!("the certificate does not carry this name ({e})")))
}

/// Checks that the peer whose certificate chain is `peer_chain` (the end-entity certificate
/// first, already verified against the CA: see [`verify_peer_name`]) was issued every role of
/// `roles`: it carries `ROLE.role` as a DNS subject alternative name for each
/// ([`ROLE_SUFFIX`](crate::ROLE_SUFFIX)). A node's roles come from the CA, never from the
/// node's say-so.
///
/// # Errors
/// [`IdentityError::InvalidRole`] for an invalid role or more than
/// [`MAX_ROLES`](crate::MAX_ROLES); [`IdentityError::RoleMismatch`] naming the first role
/// the certificate does not carry.
pub fn verify_peer_roles<S: AsRef<str>>(
    peer_chain: &[CertificateDer<'_>],
    node: &str,
    roles: &[S],
) -> Result<(), IdentityError> {
    crate::name::validate_roles(roles)?;
    if roles.is_empty() {
        return Ok(());
    }
    let mismatch = |role: &str, reason: String| IdentityError::RoleMismatch {
        node: node.to_owned(),
        role: role.to_owned(),
        reason,
    };
    let first = roles[0].as_ref();
    let end_entity = peer_chain
        .first()
        .ok_or_else(|| mismatch(first, "the peer presented no certificate".into()))?;
    let parsed = ParsedCertificate::try_from(end_entity)
        .map_err(|e| mismatch(first, format!("the certificate cannot be parsed: {e}")))?;
    for role in roles {
        let role = role.as_ref();
        let dns_name = DnsName::try_from(format!("{role}{}", crate::ROLE_SUFFIX))
            .map_err(|e| mismatch(role, format!("not a DNS name: {e}")))?;
        verify_server_name(&parsed, &ServerName::DnsName(dns_name)).map_err(|_| {
            mismatch(
                role,
                format!("it was not issued with it (`troupe ca issue CA {node} --role {role}`)"),
            )
        })?;
    }
    Ok(())
}
