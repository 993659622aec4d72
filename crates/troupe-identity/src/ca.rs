//! Making a cluster CA and issuing node certificates, on disk ([`init_ca`], [`issue_node`]) or in
//! memory ([`DevCa`], single host only).

use std::fmt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::files::{self, Mode};
use crate::identity::verify_node_chain;
use crate::{
    CLUSTER_SERVER_NAME, IdentityError, NodeIdentity, validate_cluster_name, validate_node_name,
};

/// File name of the CA certificate (PEM) in a CA directory and on every host.
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of the CA private key (PEM, mode 0600) in the CA directory. It never leaves it.
pub const CA_KEY_FILE: &str = "ca.key";

/// How long a CA certificate is valid: about 10 years.
const CA_VALIDITY: Duration = Duration::days(3650);
/// How long a node certificate is valid: about 2 years.
const NODE_VALIDITY: Duration = Duration::days(730);
/// Certificates are valid from a little before they were made, to tolerate clock skew.
const BACKDATE: Duration = Duration::hours(1);

/// Where a cluster CA's files live: `DIR/ca.crt` and `DIR/ca.key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaPaths {
    /// The CA certificate, `DIR/ca.crt` (PEM). Copy it to every host.
    pub cert: PathBuf,
    /// The CA private key, `DIR/ca.key` (PEM, mode 0600). It stays where it was made.
    pub key: PathBuf,
}

impl CaPaths {
    /// The CA file paths inside `dir` (nothing is checked or created).
    pub fn new(dir: &Path) -> Self {
        Self {
            cert: dir.join(CA_CERT_FILE),
            key: dir.join(CA_KEY_FILE),
        }
    }
}

/// Where a node's files live: `DIR/NODE.crt` and `DIR/NODE.key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePaths {
    /// The node certificate, `DIR/NODE.crt` (PEM).
    pub cert: PathBuf,
    /// The node private key, `DIR/NODE.key` (PEM, mode 0600).
    pub key: PathBuf,
}

impl NodePaths {
    /// The file paths of node `node` inside `dir` (nothing is checked or created; validate the
    /// name with [`validate_node_name`] first if it comes from a user).
    pub fn new(dir: &Path, node: &str) -> Self {
        Self {
            cert: dir.join(format!("{node}.crt")),
            key: dir.join(format!("{node}.key")),
        }
    }
}

/// Creates a cluster CA in `dir`: `dir/ca.crt` and `dir/ca.key` (mode 0600).
///
/// `dir` is created if missing. The CA certificate is self-signed, with common name
/// `troupe cluster CA <cluster>`, may sign node certificates but no further CAs (path length 0),
/// has key usages certificate signing and CRL signing, and is valid for about 10 years.
/// The key is Ed25519, as every node key minted here is.
///
/// # Errors
/// - [`IdentityError::InvalidClusterName`] if `cluster` is not a valid cluster name;
/// - [`IdentityError::AlreadyExists`] if `ca.crt` or `ca.key` already exists in `dir`
///   (nothing is overwritten);
/// - [`IdentityError::Io`] if the directory or files cannot be created;
/// - [`IdentityError::Certificate`] if the certificate cannot be generated.
pub fn init_ca(dir: &Path, cluster: &str) -> Result<CaPaths, IdentityError> {
    validate_cluster_name(cluster)?;
    let paths = CaPaths::new(dir);
    files::create_dir(dir)?;
    for path in [&paths.cert, &paths.key] {
        if path
            .try_exists()
            .map_err(|e| IdentityError::io(path.as_path(), e))?
        {
            return Err(IdentityError::AlreadyExists { path: path.clone() });
        }
    }
    let ca = MintedCa::new(cluster)?;
    files::write(
        &paths.key,
        ca.issuer.key().serialize_pem().as_bytes(),
        Mode::CreateNew,
        true,
    )?;
    if let Err(e) = files::write(
        &paths.cert,
        ca.cert.pem().as_bytes(),
        Mode::CreateNew,
        false,
    ) {
        // Do not leave a key without its certificate behind; the key was ours.
        let _ = std::fs::remove_file(&paths.key);
        return Err(e);
    }
    Ok(paths)
}

/// Issues a certificate for node `node`, signed by the CA in `ca_dir`, and writes
/// `out_dir/NODE.crt` and `out_dir/NODE.key` (mode 0600).
///
/// `out_dir` is created if missing; existing node files are overwritten (re-issuing a node is
/// allowed). The certificate has common name `node`, DNS subject alternative names `node` and
/// [`CLUSTER_SERVER_NAME`], extended key usages TLS server and TLS client, is not a CA, and is
/// valid for about 2 years. Before anything is written, the new certificate is verified against
/// `ca.crt`, so a `ca.key` that does not belong to `ca.crt` is detected here.
///
/// # Errors
/// - [`IdentityError::InvalidNodeName`] if `node` is not a valid node name;
/// - [`IdentityError::Io`] naming `ca_dir/ca.crt` or `ca_dir/ca.key` if they cannot be read
///   (e.g. `ca_dir` does not exist), or naming an output file that cannot be written;
/// - [`IdentityError::Pem`] naming the file if `ca.crt` or `ca.key` cannot be parsed;
/// - [`IdentityError::Certificate`] if signing fails or the result does not verify against
///   `ca.crt`.
pub fn issue_node(ca_dir: &Path, node: &str, out_dir: &Path) -> Result<NodePaths, IdentityError> {
    issue_node_with_roles::<&str>(ca_dir, node, &[], out_dir)
}

/// As [`issue_node`], the certificate also carrying each of `roles` (as DNS name `ROLE.role`,
/// [`ROLE_SUFFIX`](crate::ROLE_SUFFIX)): the node may then claim them, and peers hold it to
/// play them ([`verify_peer_roles`](crate::verify_peer_roles)). A node that joins a cluster
/// without being declared in its topology is placed by its roles.
///
/// # Errors
/// As [`issue_node`], and [`IdentityError::InvalidRole`] for an invalid role or more than
/// [`MAX_ROLES`](crate::MAX_ROLES).
pub fn issue_node_with_roles<S: AsRef<str>>(
    ca_dir: &Path,
    node: &str,
    roles: &[S],
    out_dir: &Path,
) -> Result<NodePaths, IdentityError> {
    validate_node_name(node)?;
    crate::name::validate_roles(roles)?;
    let ca_paths = CaPaths::new(ca_dir);
    let (ca_certs, issuer) = load_issuer(ca_dir)?;
    let (cert, key) = mint_node(&issuer, node, roles)?;
    verify_node_chain(&ca_certs, std::slice::from_ref(cert.der()), node).map_err(|e| {
        IdentityError::certificate(
            format!(
                "the newly issued certificate does not verify against {} (does {} belong to it?)",
                ca_paths.cert.display(),
                ca_paths.key.display()
            ),
            e,
        )
    })?;

    let paths = NodePaths::new(out_dir, node);
    write_leaf(out_dir, &paths.cert, &paths.key, &cert, &key)?;
    Ok(paths)
}

/// Writes a minted certificate and its key (mode 0600) into `out_dir`, replacing old ones.
pub(crate) fn write_leaf(
    out_dir: &Path,
    cert_path: &Path,
    key_path: &Path,
    cert: &rcgen::Certificate,
    key: &KeyPair,
) -> Result<(), IdentityError> {
    files::create_dir(out_dir)?;
    files::write(
        key_path,
        key.serialize_pem().as_bytes(),
        Mode::Overwrite,
        true,
    )?;
    files::write(cert_path, cert.pem().as_bytes(), Mode::Overwrite, false)
}

/// An in-memory cluster CA for **dev mode: a single host only**.
///
/// Every process that creates a `DevCa` gets a different CA, so nodes built from two different
/// `DevCa`s (e.g. two processes or two hosts) refuse each other. Use it to run all of a cluster's
/// nodes in one process, or in tests; for anything spanning processes or hosts, make a CA with
/// [`init_ca`] / `troupe ca init` and issue node certificates with [`issue_node`] /
/// `troupe ca issue`. Nothing touches the disk.
pub struct DevCa {
    cluster: String,
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl DevCa {
    /// Mints a fresh in-memory CA for cluster `cluster` (same certificate profile as
    /// [`init_ca`]).
    ///
    /// # Errors
    /// [`IdentityError::InvalidClusterName`] for an invalid cluster name;
    /// [`IdentityError::Certificate`] if generation fails.
    pub fn new(cluster: &str) -> Result<Self, IdentityError> {
        validate_cluster_name(cluster)?;
        let ca = MintedCa::new(cluster)?;
        Ok(Self {
            cluster: cluster.to_owned(),
            cert: ca.cert.der().clone(),
            issuer: ca.issuer,
        })
    }

    /// The cluster name this CA was made for.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The CA certificate (DER).
    pub fn ca_cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// Mints a node identity for `node`, signed by this CA (same certificate profile as
    /// [`issue_node`]), already checked like [`NodeIdentity::load`] checks files.
    ///
    /// # Errors
    /// [`IdentityError::InvalidNodeName`] for an invalid node name;
    /// [`IdentityError::Certificate`] if generation fails.
    pub fn identity(&self, node: &str) -> Result<NodeIdentity, IdentityError> {
        self.identity_with_roles::<&str>(node, &[])
    }

    /// As [`DevCa::identity`], the certificate carrying `roles` and the identity claiming them
    /// (see [`issue_node_with_roles`], [`NodeIdentity::with_roles`]).
    ///
    /// # Errors
    /// As [`DevCa::identity`], and [`IdentityError::InvalidRole`] for an invalid role.
    pub fn identity_with_roles<S: AsRef<str>>(
        &self,
        node: &str,
        roles: &[S],
    ) -> Result<NodeIdentity, IdentityError> {
        crate::name::validate_roles(roles)?;
        let (cert, key) = mint_node(&self.issuer, node, roles)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        NodeIdentity::from_parts(node, vec![self.cert.clone()], vec![cert.der().clone()], key)?
            .with_roles(roles)
    }
}

impl fmt::Debug for DevCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevCa")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// A freshly generated CA: its certificate and an issuer holding its key.
struct MintedCa {
    cert: rcgen::Certificate,
    issuer: Issuer<'static, KeyPair>,
}

impl MintedCa {
    fn new(cluster: &str) -> Result<Self, IdentityError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("troupe cluster CA {cluster}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        (params.not_before, params.not_after) = validity(CA_VALIDITY);
        let key =
            KeyPair::generate_for(KEY_ALGORITHM).map_err(cert_err("generating the CA key"))?;
        let cert = params
            .self_signed(&key)
            .map_err(cert_err("self-signing the CA certificate"))?;
        Ok(Self {
            cert,
            issuer: Issuer::new(params, key),
        })
    }
}

/// The signature algorithm of every key minted here: Ed25519, whose signatures have one length
/// (an ECDSA signature's DER encoding varies by a byte or two with its random nonce, so the
/// size of a handshake did too, and a simulated seed did not replay exactly).
const KEY_ALGORITHM: &rcgen::SignatureAlgorithm = &rcgen::PKCS_ED25519;

/// Generates a key and a certificate for `node`, carrying `roles`, signed by `issuer`.
fn mint_node<S: AsRef<str>>(
    issuer: &Issuer<'_, KeyPair>,
    node: &str,
    roles: &[S],
) -> Result<(rcgen::Certificate, KeyPair), IdentityError> {
    validate_node_name(node)?;
    let mut names = vec![node.to_owned(), CLUSTER_SERVER_NAME.to_owned()];
    names.extend(
        roles
            .iter()
            .map(|r| format!("{}{}", r.as_ref(), crate::ROLE_SUFFIX)),
    );
    mint_leaf(
        issuer,
        node,
        names,
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    )
}

/// Generates a key and an end-entity certificate with common name `common_name`, DNS names
/// `names` and extended key usages `usages`, signed by `issuer`.
pub(crate) fn mint_leaf(
    issuer: &Issuer<'_, KeyPair>,
    common_name: &str,
    names: Vec<String>,
    usages: Vec<ExtendedKeyUsagePurpose>,
) -> Result<(rcgen::Certificate, KeyPair), IdentityError> {
    let mut params =
        CertificateParams::new(names).map_err(cert_err("building the certificate's names"))?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages;
    params.use_authority_key_identifier_extension = true;
    (params.not_before, params.not_after) = validity(NODE_VALIDITY);
    let key = KeyPair::generate_for(KEY_ALGORITHM).map_err(cert_err("generating the key"))?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(cert_err("signing the certificate"))?;
    Ok((cert, key))
}

/// The CA in `ca_dir` as an issuer, with its certificates.
pub(crate) fn load_issuer(
    ca_dir: &Path,
) -> Result<(Vec<CertificateDer<'static>>, Issuer<'static, KeyPair>), IdentityError> {
    let ca_paths = CaPaths::new(ca_dir);
    let ca_certs = files::read_certs(&ca_paths.cert)?;
    let ca_key = files::read_key(&ca_paths.key)?;
    let key_pair = KeyPair::try_from(&ca_key).map_err(|e| {
        IdentityError::pem(&ca_paths.key, format!("not a usable CA private key: {e}"))
    })?;
    let issuer = Issuer::from_ca_cert_der(&ca_certs[0], key_pair).map_err(|e| {
        IdentityError::pem(&ca_paths.cert, format!("not a usable CA certificate: {e}"))
    })?;
    Ok((ca_certs, issuer))
}

fn validity(length: Duration) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - BACKDATE, now + length)
}

fn cert_err(context: &'static str) -> impl Fn(rcgen::Error) -> IdentityError {
    move |e| IdentityError::certificate(context, e)
}
