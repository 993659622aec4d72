//! Node and cluster name rules.

use rustls::pki_types::DnsName;

use crate::IdentityError;

/// The DNS name every node certificate carries besides the node's own name.
///
/// A node dialing a seed address whose node name it does not know yet uses this as the TLS
/// server name: the handshake then proves only that the peer holds *some* certificate of the
/// cluster CA. Once the peer has said who it is, check that claim with
/// [`verify_peer_name`](crate::verify_peer_name). It is never a valid node name.
pub const CLUSTER_SERVER_NAME: &str = "cluster.troupe.internal";

/// Node names that are refused because they would collide with CA files (`ca.crt`, `ca.key`).
const RESERVED_NODE_NAMES: &[&str] = &["ca"];

/// Longest node or cluster name, in bytes (a DNS label's limit).
pub const MAX_NAME_LEN: usize = 63;

/// Checks that `name` can be used as a node name.
///
/// A node name becomes a DNS subject alternative name of the node's certificate and a file name
/// (`NODE.crt`, `NODE.key`), so it must be a single DNS label:
/// - 1 to 63 characters from `a-z`, `0-9` and `-`;
/// - not starting or ending with `-`;
/// - not all digits, and not hex-number-like such as `0x1f` (those are not valid DNS names);
/// - not [`CLUSTER_SERVER_NAME`] and not `ca` (reserved).
///
/// # Errors
/// [`IdentityError::InvalidNodeName`] naming the rule that was broken.
pub fn validate_node_name(name: &str) -> Result<(), IdentityError> {
    let invalid = |reason: &str| IdentityError::InvalidNodeName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name == CLUSTER_SERVER_NAME {
        return Err(invalid(
            "reserved: every node certificate carries this name",
        ));
    }
    if RESERVED_NODE_NAMES.contains(&name) {
        return Err(invalid(
            "reserved: it would collide with the CA's files (ca.crt, ca.key)",
        ));
    }
    if name.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("must be at most 63 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid(
            "may only contain lowercase letters a-z, digits 0-9 and '-'",
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(invalid("must not start or end with '-'"));
    }
    if DnsName::try_from(name).is_err() {
        return Err(invalid(
            "is not a valid DNS name (all-digit and hex-number-like names are not allowed)",
        ));
    }
    Ok(())
}

/// What a node certificate's DNS name for a role ends with: a node issued with role `app`
/// carries `app.role`. Node names have no dot, and operator names end in
/// [`OPERATOR_SUFFIX`](crate::OPERATOR_SUFFIX), so a role name is never taken for either.
pub const ROLE_SUFFIX: &str = ".role";

/// The most roles one node certificate may carry (and one node may claim).
pub const MAX_ROLES: usize = 16;

/// Checks that `role` can be used as a node role: the node-name rules
/// ([`validate_node_name`]), since it becomes part of a DNS name of the certificate.
///
/// # Errors
/// [`IdentityError::InvalidRole`] naming the rule that was broken.
pub fn validate_role(role: &str) -> Result<(), IdentityError> {
    validate_node_name(role).map_err(|e| match e {
        IdentityError::InvalidNodeName { reason, .. } => IdentityError::InvalidRole {
            role: role.to_owned(),
            reason,
        },
        other => other,
    })
}

/// Checks a list of roles: each valid, at most [`MAX_ROLES`].
pub(crate) fn validate_roles<S: AsRef<str>>(roles: &[S]) -> Result<(), IdentityError> {
    if roles.len() > MAX_ROLES {
        return Err(IdentityError::InvalidRole {
            role: roles
                .iter()
                .map(|r| r.as_ref())
                .collect::<Vec<_>>()
                .join(","),
            reason: format!("at most {MAX_ROLES} roles per node"),
        });
    }
    roles.iter().try_for_each(|r| validate_role(r.as_ref()))
}

/// Checks that `name` can be used as a cluster name (it appears in the CA certificate's
/// common name, `troupe cluster CA <name>`).
///
/// A cluster name is 1 to 63 characters of printable ASCII (letters, digits, punctuation,
/// spaces), not starting or ending with a space.
///
/// # Errors
/// [`IdentityError::InvalidClusterName`] naming the rule that was broken.
pub fn validate_cluster_name(name: &str) -> Result<(), IdentityError> {
    let invalid = |reason: &str| IdentityError::InvalidClusterName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("must be at most 63 characters"));
    }
    if !name.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err(invalid("may only contain printable ASCII characters"));
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return Err(invalid("must not start or end with a space"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names() {
        for name in ["a", "node-1", "edge", "n0", "a-b-c", "1a", &"x".repeat(63)] {
            validate_node_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn bad_names() {
        for name in [
            "",
            "Node",
            "NODE",
            "-a",
            "a-",
            "a.b",
            "a_b",
            "a b",
            "ünï",
            "123",
            "0",
            "0x1f",
            "ca",
            CLUSTER_SERVER_NAME,
            &"x".repeat(64),
        ] {
            let err = validate_node_name(name).expect_err(name);
            assert!(
                matches!(&err, IdentityError::InvalidNodeName { name: n, .. } if n == name),
                "{err}"
            );
        }
    }

    #[test]
    fn cluster_names() {
        validate_cluster_name("troupe").unwrap();
        validate_cluster_name("My Shop 2").unwrap();
        assert!(validate_cluster_name("").is_err());
        assert!(validate_cluster_name(" x").is_err());
        assert!(validate_cluster_name("a\nb").is_err());
        assert!(validate_cluster_name(&"x".repeat(64)).is_err());
    }
}
