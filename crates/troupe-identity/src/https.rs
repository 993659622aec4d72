//! TLS for public-facing servers (the gateway's HTTPS): a certificate and key from PEM files,
//! any client welcome (no client certificate), the *ring* provider only.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

use crate::identity::{provider, tls_err};
use crate::{IdentityError, files};

/// ALPN protocols an HTTPS server offers, in preference order: HTTP/2, then HTTP/1.1.
pub const HTTPS_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A TLS server configuration for serving HTTPS to any client: TLS 1.2 and 1.3 (rustls's
/// safe defaults, *ring* provider), the certificate chain in `cert` (PEM: the server's
/// certificate first, then any intermediates) with the private key in `key` (PEM), ALPN
/// [`HTTPS_ALPN`], no client authentication.
///
/// # Errors
/// [`IdentityError::Io`] / [`IdentityError::Pem`] naming the file that is missing, unreadable
/// or holds no certificate or key; [`IdentityError::Tls`] if the key does not match the
/// certificate or rustls refuses them.
pub fn https_server_config(
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, IdentityError> {
    let chain: Vec<CertificateDer<'static>> = files::read_certs(cert)?;
    let key = files::read_key(key)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(tls_err)?;
    config.alpn_protocols = HTTPS_ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_certificate_serves_https_and_missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        crate::init_ca(dir.path(), "c").unwrap();
        let paths = crate::issue_node(dir.path(), "edge", dir.path()).unwrap();
        let config = https_server_config(&paths.cert, &paths.key).unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let missing = dir.path().join("nope.crt");
        let err = https_server_config(&missing, &paths.key).unwrap_err();
        assert!(err.to_string().contains("nope.crt"), "{err}");
        // a key that is not the certificate's
        let other = crate::issue_node(dir.path(), "other", dir.path()).unwrap();
        assert!(https_server_config(&paths.cert, &other.key).is_err());
    }
}
