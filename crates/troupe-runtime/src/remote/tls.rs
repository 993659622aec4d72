//! QUIC configurations from a node's identity, and the certificate chain a QUIC peer presented
//!
//! `troupe-identity` builds the rustls configurations (mutual TLS 1.3 against the cluster CA)
//! and knows nothing of QUIC, so tools such as the `troupe` CLI that only mint certificates do
//! not build quinn. This module wraps those configurations for quinn.

use std::sync::Arc;

use quinn::crypto::rustls::{NoInitialCipherSuite, QuicClientConfig, QuicServerConfig};
use quinn::rustls::pki_types::CertificateDer;
use troupe_identity::{IdentityError, NodeIdentity};

/// Why a QUIC configuration could not be built from an identity
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// rustls rejected the identity's TLS configuration
    #[error("TLS configuration: {0}")]
    Identity(#[from] IdentityError),
    /// quinn rejected the TLS configuration (it offers no cipher suite QUIC can start with)
    #[error("QUIC rejects the TLS configuration: {0}")]
    Quic(#[from] NoInitialCipherSuite),
}

/// A quinn server configuration wrapping [`NodeIdentity::server_config`] (mutual TLS: the
/// client must present a certificate of the cluster CA), with the given transport settings
/// (idle timeout, keep-alive, stream limits...)
///
/// # Errors
///
/// [`TlsConfigError`] if rustls or quinn rejects the configuration (not expected for an
/// identity that passed construction).
pub fn quinn_server_config(
    identity: &NodeIdentity,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ServerConfig, TlsConfigError> {
    let crypto = QuicServerConfig::try_from(identity.server_config()?)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport);
    Ok(config)
}

/// A quinn client configuration wrapping [`NodeIdentity::client_config`] (presents this node's
/// certificate, verifies the server's against the cluster CA), with the given transport
/// settings
///
/// # Errors
///
/// As [`quinn_server_config`].
pub fn quinn_client_config(
    identity: &NodeIdentity,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ClientConfig, TlsConfigError> {
    let crypto = QuicClientConfig::try_from(identity.client_config()?)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport);
    Ok(config)
}

/// The certificate chain the peer of a quinn connection presented (end entity first), or
/// `None` if the handshake is not complete or the peer presented none
///
/// With the configurations above both sides always present one, so on an established
/// connection this is `Some`. Check the name the peer claims against it with
/// [`troupe_identity::verify_peer_name`].
pub fn peer_chain(conn: &quinn::Connection) -> Option<Vec<CertificateDer<'static>>> {
    conn.peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()
        .map(|chain| *chain)
}

/// Whether a failed connection failed in its TLS handshake (on either side): a transport error
/// or a peer's close whose code is in QUIC's crypto range (a TLS alert)
pub(crate) fn is_tls_failure(err: &quinn::ConnectionError) -> bool {
    let code = match err {
        quinn::ConnectionError::TransportError(e) => e.code,
        quinn::ConnectionError::ConnectionClosed(close) => close.error_code,
        _ => return false,
    };
    (0x100..0x200).contains(&u64::from(code))
}
