//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while making, loading or using a cluster identity.
///
/// Every variant that concerns a file names the file's path, so a message printed to an
/// operator says which file to look at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Reading, writing or creating a file or directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A file that would be overwritten already exists (e.g. `troupe ca init` on an existing CA).
    #[error("{path} already exists; refusing to overwrite it")]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A node name does not follow the node-name rules (see [`validate_node_name`]).
    ///
    /// [`validate_node_name`]: crate::validate_node_name
    #[error("invalid node name {name:?}: {reason}")]
    InvalidNodeName {
        /// The rejected name.
        name: String,
        /// Which rule it broke.
        reason: String,
    },
    /// A cluster name does not follow the cluster-name rules (see [`validate_cluster_name`]).
    ///
    /// [`validate_cluster_name`]: crate::validate_cluster_name
    #[error("invalid cluster name {name:?}: {reason}")]
    InvalidClusterName {
        /// The rejected name.
        name: String,
        /// Which rule it broke.
        reason: String,
    },
    /// A PEM file could not be parsed, or holds no item of the expected kind.
    #[error("{path}: {reason}")]
    Pem {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with its contents.
        reason: String,
    },
    /// A certificate could not be made, parsed or verified (e.g. it does not chain to the CA).
    #[error("certificate error: {reason}{}", cause_suffix(source.as_deref()))]
    Certificate {
        /// What was being done, or what is wrong.
        reason: String,
        /// The underlying error (from rcgen or rustls), if any.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A certificate is not valid for the node name it is used with, or a peer claims a name
    /// its certificate does not carry.
    #[error("certificate is not valid for node name {claimed:?}: {reason}")]
    NameMismatch {
        /// The node name that was expected or claimed.
        claimed: String,
        /// Why the certificate does not match it.
        reason: String,
    },
    /// A node role does not follow the rules (those of node names; see [`validate_role`]).
    ///
    /// [`validate_role`]: crate::validate_role
    #[error("invalid node role {role:?}: {reason}")]
    InvalidRole {
        /// The rejected role.
        role: String,
        /// Which rule it broke.
        reason: String,
    },
    /// A node claims a role its certificate does not carry (issue it with `--role`).
    #[error("the certificate of node {node:?} does not carry role {role:?}: {reason}")]
    RoleMismatch {
        /// The node.
        node: String,
        /// The role claimed.
        role: String,
        /// Why the certificate does not match it.
        reason: String,
    },
    /// Building a rustls configuration failed.
    #[error("TLS configuration error: {0}")]
    Tls(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl IdentityError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`IdentityError::Certificate`]: `reason`, caused by `source`.
    pub(crate) fn certificate(
        reason: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Certificate {
            reason: reason.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A [`IdentityError::Certificate`] with no underlying error.
    pub(crate) fn certificate_reason(reason: impl Into<String>) -> Self {
        Self::Certificate {
            reason: reason.into(),
            source: None,
        }
    }

    pub(crate) fn pem(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Pem {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// `": cause"`, or nothing: the cause's text in a variant's message, so a log line that prints
/// only the error still says what went wrong.
fn cause_suffix(cause: Option<&(dyn std::error::Error + Send + Sync)>) -> String {
    cause.map(|c| format!(": {c}")).unwrap_or_default()
}
