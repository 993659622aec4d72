//! TLS termination with certificate reload: the certificate and key files are read at start
//! (a start fails, naming the file, if they cannot be used) and looked at again every reload
//! period; when either file's modification time or size has changed, they are read again and
//! new handshakes use them, while connections already open keep theirs. A changed pair that
//! cannot be used (half-written, mismatched) is logged and counted, and the previous one stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use tokio_rustls::TlsAcceptor;

/// What identifies a version of a file: its modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The acceptor new connections use, reloaded from its files when they change.
pub(crate) struct ReloadingTls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(TlsAcceptor, Stamp, Stamp)>,
}

impl ReloadingTls {
    /// Reads `cert` and `key`.
    ///
    /// # Errors
    /// Either file is missing or unusable (the error names it).
    pub(crate) fn load(
        cert: &Path,
        key: &Path,
    ) -> Result<Arc<Self>, troupe_identity::IdentityError> {
        let (cert_stamp, key_stamp) = (stamp(cert), stamp(key));
        let acceptor = TlsAcceptor::from(troupe_identity::https_server_config(cert, key)?);
        Ok(Arc::new(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new((acceptor, cert_stamp, key_stamp)),
        }))
    }

    /// The acceptor for a new connection.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// Reads the files again if either has changed since last read; whether a new pair is
    /// now in use. A changed pair that fails to load keeps the old one (and is tried again
    /// at the next check only if the files change again).
    pub(crate) fn reload_if_changed(&self) -> bool {
        let (cert_stamp, key_stamp) = (stamp(&self.cert), stamp(&self.key));
        {
            let current = self.current.read().unwrap_or_else(|p| p.into_inner());
            if current.1 == cert_stamp && current.2 == key_stamp {
                return false;
            }
        }
        let loaded = troupe_identity::https_server_config(&self.cert, &self.key);
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        current.1 = cert_stamp;
        current.2 = key_stamp;
        match loaded {
            Ok(config) => {
                current.0 = TlsAcceptor::from(config);
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                metrics::counter!("troupe_proxy_tls_reloads_total", "result" => "loaded")
                    .increment(1);
                true
            }
            Err(err) => {
                tracing::warn!(cause = %err, cert = %self.cert.display(), "a changed TLS certificate could not be loaded; the previous one stays in use");
                metrics::counter!("troupe_proxy_tls_reloads_total", "result" => "failed")
                    .increment(1);
                false
            }
        }
    }
}
