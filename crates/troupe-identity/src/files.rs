//! Reading and writing PEM files, with keys kept private (mode 0600 on unix).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::IdentityError;

/// Reads the whole file, mapping failures to [`IdentityError::Io`] naming `path`.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, IdentityError> {
    fs::read(path).map_err(|e| IdentityError::io(path, e))
}

/// Reads every `CERTIFICATE` section of a PEM file (at least one).
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| IdentityError::pem(path, format!("not a valid PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(IdentityError::pem(
            path,
            "no CERTIFICATE section found (is this a certificate file?)",
        ));
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file.
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, IdentityError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        IdentityError::pem(
            path,
            format!("no usable PRIVATE KEY section found (is this a key file?): {e}"),
        )
    })
}

/// Creates `dir` and its parents if missing.
pub(crate) fn create_dir(dir: &Path) -> Result<(), IdentityError> {
    fs::create_dir_all(dir).map_err(|e| IdentityError::io(dir, e))
}

/// How [`write`] treats an existing file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Fail with [`IdentityError::AlreadyExists`] if the file exists.
    CreateNew,
    /// Replace the file's contents.
    Overwrite,
}

/// Writes `contents` to `path`; when `private`, the file is readable by its owner only
/// (0600 on unix, also when an existing file is overwritten).
pub(crate) fn write(
    path: &Path,
    contents: &[u8],
    mode: Mode,
    private: bool,
) -> Result<(), IdentityError> {
    let mut options = OpenOptions::new();
    options.write(true);
    match mode {
        Mode::CreateNew => options.create_new(true),
        Mode::Overwrite => options.create(true).truncate(true),
    };
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            IdentityError::AlreadyExists {
                path: path.to_owned(),
            }
        } else {
            IdentityError::io(path, e)
        }
    })?;
    if private {
        restrict(&file, path)?;
    }
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| IdentityError::io(path, e))
}

/// Makes an already open file owner-only (it may have existed with wider permissions).
#[cfg(unix)]
fn restrict(file: &File, path: &Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| IdentityError::io(path, e))
}

#[cfg(not(unix))]
fn restrict(_file: &File, _path: &Path) -> Result<(), IdentityError> {
    Ok(())
}
