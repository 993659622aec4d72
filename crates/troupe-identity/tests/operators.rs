//! Operator certificates: issued from the CA on disk, loaded, and never taken for a node (or a
//! node's certificate for an operator's).

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use troupe_identity::{
    IdentityError, OperatorIdentity, OperatorPaths, init_ca, issue_node, issue_operator,
    verify_operator, verify_peer_name,
};

fn chain_of(path: &std::path::Path) -> Vec<CertificateDer<'static>> {
    let pem = std::fs::read(path).unwrap();
    CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

#[test]
fn an_operator_is_never_a_node_and_a_node_never_an_operator() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path();
    init_ca(ca, "shop").unwrap();
    let node = issue_node(ca, "data", ca).unwrap();
    let alice = issue_operator(ca, "alice", ca).unwrap();
    assert_eq!(alice, OperatorPaths::new(ca, "alice"));
    assert!(alice.cert.ends_with("alice.operator.crt"), "{alice:?}");

    let identity = OperatorIdentity::load(ca, "alice").unwrap();
    assert_eq!(identity.name(), "alice");
    identity.admin_client_config().unwrap();

    let alice_chain = chain_of(&alice.cert);
    let node_chain = chain_of(&node.cert);
    verify_operator(&alice_chain, "alice").unwrap();
    // another name, a node's certificate, or none at all: refused
    assert!(matches!(
        verify_operator(&alice_chain, "bob"),
        Err(IdentityError::NameMismatch { .. })
    ));
    assert!(matches!(
        verify_operator(&node_chain, "data"),
        Err(IdentityError::NameMismatch { .. })
    ));
    assert!(verify_operator(&[], "alice").is_err());
    // the operator cannot claim to be a node, under its own name or any other
    assert!(verify_peer_name(&alice_chain, "alice").is_err());
    assert!(verify_peer_name(&alice_chain, "data").is_err());
    // a node's files do not load as an operator's
    assert!(OperatorIdentity::load(ca, "data").is_err());
}

#[test]
fn an_operator_of_another_cluster_does_not_load() {
    let tmp = tempfile::tempdir().unwrap();
    let (ours, theirs) = (tmp.path().join("ours"), tmp.path().join("theirs"));
    init_ca(&ours, "shop").unwrap();
    init_ca(&theirs, "shop").unwrap();
    issue_operator(&theirs, "mallory", &ours).unwrap();
    let err = OperatorIdentity::load(&ours, "mallory").unwrap_err();
    assert!(matches!(err, IdentityError::Certificate { .. }), "{err}");
}
