//! The connection handshake's rules, as plain functions: what a node accepts in a peer's hello,
//! and which of two connections between the same pair survives.

use troupe_wire::Hello;

/// Why a peer was refused; sent to the peer and reported on both sides as
/// [`NodeEvent::PeerRejected`](super::NodeEvent::PeerRejected).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RejectReason {
    /// The peer belongs to another cluster.
    #[error("cluster mismatch: we are {ours:?}, the peer is {theirs:?}")]
    ClusterMismatch {
        /// Our cluster name.
        ours: String,
        /// Theirs.
        theirs: String,
    },
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: we speak {ours}, the peer {theirs}")]
    ProtocolMismatch {
        /// Our version.
        ours: u16,
        /// Theirs.
        theirs: u16,
    },
    /// The name the peer claims is not the name in its certificate.
    #[error("the peer claims to be {claimed:?} but its certificate says otherwise: {detail}")]
    CertificateName {
        /// The claimed name.
        claimed: String,
        /// What the check said.
        detail: String,
    },
    /// The peer claims our own name.
    #[error("the peer claims our own node name {0:?}")]
    SameName(String),
    /// We dialed one node and another answered.
    #[error("dialed node {expected:?} but {answered:?} answered")]
    UnexpectedNode {
        /// Whom we dialed.
        expected: String,
        /// Who answered.
        answered: String,
    },
    /// The peer's first frame was not a valid hello.
    #[error("bad hello: {0}")]
    BadHello(String),
    /// The TLS handshake failed (for example a certificate from another CA).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The peer refused us (its reason).
    #[error("refused by the peer: {0}")]
    Refused(String),
}

/// What this node expects of a peer's hello.
#[derive(Clone, Debug)]
pub(crate) struct Expect<'a> {
    pub(crate) cluster: &'a str,
    pub(crate) me: &'a str,
    pub(crate) protocol: u16,
    /// The node we dialed, if we knew its name.
    pub(crate) dialed: Option<&'a str>,
}

/// Checks a peer's hello. `cert_check` is the result of matching the claimed name against the
/// peer's certificate.
pub(crate) fn check_hello(
    expect: &Expect<'_>,
    hello: &Hello,
    cert_check: Result<(), String>,
) -> Result<(), RejectReason> {
    if hello.protocol != expect.protocol {
        return Err(RejectReason::ProtocolMismatch {
            ours: expect.protocol,
            theirs: hello.protocol,
        });
    }
    if hello.cluster != expect.cluster {
        return Err(RejectReason::ClusterMismatch {
            ours: expect.cluster.to_string(),
            theirs: hello.cluster.clone(),
        });
    }
    if hello.node == expect.me {
        return Err(RejectReason::SameName(hello.node.clone()));
    }
    if let Err(detail) = cert_check {
        return Err(RejectReason::CertificateName {
            claimed: hello.node.clone(),
            detail,
        });
    }
    if let Some(dialed) = expect.dialed
        && dialed != hello.node
    {
        return Err(RejectReason::UnexpectedNode {
            expected: dialed.to_string(),
            answered: hello.node.clone(),
        });
    }
    Ok(())
}

/// Which connection between nodes `a` and `b` survives when both dialed: the one dialed by the
/// node whose name sorts first. Both sides compute the same answer without talking.
pub(crate) fn keeps_connection_dialed_by(a: &str, b: &str) -> bool {
    a < b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(cluster: &str, node: &str, protocol: u16) -> Hello {
        Hello {
            cluster: cluster.into(),
            node: node.into(),
            protocol,
            incarnation: 1,
        }
    }

    const EXPECT: Expect<'static> = Expect {
        cluster: "prod",
        me: "a",
        protocol: 1,
        dialed: None,
    };

    #[test]
    fn a_matching_hello_is_accepted() {
        assert_eq!(check_hello(&EXPECT, &hello("prod", "b", 1), Ok(())), Ok(()));
    }

    #[test]
    fn each_mismatch_has_its_reason() {
        assert!(matches!(
            check_hello(&EXPECT, &hello("test", "b", 1), Ok(())),
            Err(RejectReason::ClusterMismatch { .. })
        ));
        assert!(matches!(
            check_hello(&EXPECT, &hello("prod", "b", 2), Ok(())),
            Err(RejectReason::ProtocolMismatch { ours: 1, theirs: 2 })
        ));
        assert!(matches!(
            check_hello(&EXPECT, &hello("prod", "a", 1), Ok(())),
            Err(RejectReason::SameName(_))
        ));
        assert!(matches!(
            check_hello(&EXPECT, &hello("prod", "b", 1), Err("not b".into())),
            Err(RejectReason::CertificateName { .. })
        ));
        let dialed_c = Expect {
            dialed: Some("c"),
            ..EXPECT
        };
        assert!(matches!(
            check_hello(&dialed_c, &hello("prod", "b", 1), Ok(())),
            Err(RejectReason::UnexpectedNode { .. })
        ));
    }

    #[test]
    fn both_sides_agree_on_the_surviving_connection() {
        for (a, b) in [("a", "b"), ("edge", "app"), ("n1", "n10")] {
            // exactly one of the two dial directions survives
            assert_ne!(
                keeps_connection_dialed_by(a, b),
                keeps_connection_dialed_by(b, a)
            );
        }
    }
}
