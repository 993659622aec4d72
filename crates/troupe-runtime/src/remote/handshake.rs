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
    /// The peer claims a role its certificate does not carry.
    #[error("the peer {node:?} claims a role its certificate does not carry: {detail}")]
    CertificateRole {
        /// The peer's name.
        node: String,
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

/// What the peer's certificate says of its hello's claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CertCheck {
    /// Whether it carries the claimed name.
    pub(crate) name: Result<(), String>,
    /// Whether it carries every claimed role.
    pub(crate) roles: Result<(), String>,
}

/// Checks a peer's hello against what its certificate says (`cert`).
pub(crate) fn check_hello(
    expect: &Expect<'_>,
    hello: &Hello,
    cert: CertCheck,
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
    if let Err(detail) = cert.name {
        return Err(RejectReason::CertificateName {
            claimed: hello.node.clone(),
            detail,
        });
    }
    if let Err(detail) = cert.roles {
        return Err(RejectReason::CertificateRole {
            node: hello.node.clone(),
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

/// Who dialed a connection, and which of that node's dials it was (`Hello::dial`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dialed<'a> {
    pub(crate) by: &'a str,
    pub(crate) dial: u64,
}

/// Whether connection `new` replaces `old`, both between the same incarnations of two nodes.
/// One dialed by each node: the one dialed by the node whose name sorts first survives. Both
/// dialed by one node (a seed dialed by address while a reconnection dials by name): its later
/// dial survives. Both ends compute the same answer without talking, in whatever order the two
/// connections reached them.
pub(crate) fn replaces(new: Dialed<'_>, old: Dialed<'_>) -> bool {
    if new.by == old.by {
        new.dial > old.dial
    } else {
        new.by < old.by
    }
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
            dial: 0,
            roles: Vec::new(),
        }
    }

    const OK: CertCheck = CertCheck {
        name: Ok(()),
        roles: Ok(()),
    };

    const EXPECT: Expect<'static> = Expect {
        cluster: "prod",
        me: "a",
        protocol: 1,
        dialed: None,
    };

    #[test]
    fn a_matching_hello_is_accepted() {
        assert_eq!(check_hello(&EXPECT, &hello("prod", "b", 1), OK), Ok(()));
    }

    #[test]
    fn each_mismatch_has_its_reason() {
        assert!(matches!(
            check_hello(&EXPECT, &hello("test", "b", 1), OK),
            Err(RejectReason::ClusterMismatch { .. })
        ));
        assert!(matches!(
            check_hello(&EXPECT, &hello("prod", "b", 2), OK),
            Err(RejectReason::ProtocolMismatch { ours: 1, theirs: 2 })
        ));
        assert!(matches!(
            check_hello(&EXPECT, &hello("prod", "a", 1), OK),
            Err(RejectReason::SameName(_))
        ));
        assert!(matches!(
            check_hello(
                &EXPECT,
                &hello("prod", "b", 1),
                CertCheck {
                    name: Err("not b".into()),
                    ..OK
                }
            ),
            Err(RejectReason::CertificateName { .. })
        ));
        assert!(matches!(
            check_hello(
                &EXPECT,
                &hello("prod", "b", 1),
                CertCheck {
                    roles: Err("no role db".into()),
                    ..OK
                }
            ),
            Err(RejectReason::CertificateRole { .. })
        ));
        let dialed_c = Expect {
            dialed: Some("c"),
            ..EXPECT
        };
        assert!(matches!(
            check_hello(&dialed_c, &hello("prod", "b", 1), OK),
            Err(RejectReason::UnexpectedNode { .. })
        ));
    }

    #[test]
    fn both_ends_keep_the_same_connection_whatever_order_they_saw_them_in() {
        let pairs = [
            // one dialed by each node
            (Dialed { by: "a", dial: 1 }, Dialed { by: "b", dial: 9 }),
            (Dialed { by: "n1", dial: 4 }, Dialed { by: "n10", dial: 4 }),
            // both dialed by one node
            (Dialed { by: "app", dial: 3 }, Dialed { by: "app", dial: 7 }),
        ];
        for (x, y) in pairs {
            // an end that saw x first, and one that saw y first, keep the same one
            let kept_seeing_x_first = if replaces(y, x) { y } else { x };
            let kept_seeing_y_first = if replaces(x, y) { x } else { y };
            assert_eq!(kept_seeing_x_first, kept_seeing_y_first, "{x:?} {y:?}");
        }
        assert!(replaces(
            Dialed { by: "a", dial: 1 },
            Dialed { by: "b", dial: 9 }
        ));
        assert!(replaces(
            Dialed { by: "app", dial: 7 },
            Dialed { by: "app", dial: 3 }
        ));
    }
}
