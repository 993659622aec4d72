//! Node roles: carried by the certificate the CA issues, claimed by the node, checked by peers.
//! A node cannot give itself a role the CA did not sign, nor pass a role for a node name.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use troupe_identity::{
    DevCa, IdentityError, NodeIdentity, init_ca, issue_node, issue_node_with_roles,
    verify_peer_name, verify_peer_roles,
};

fn chain_of(path: &std::path::Path) -> Vec<CertificateDer<'static>> {
    let pem = std::fs::read(path).expect("the certificate file");
    CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM")
}

#[test]
fn a_node_issued_with_roles_claims_them_and_no_others() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = tmp.path();
    init_ca(ca, "shop").expect("ca");
    let spare = issue_node_with_roles(ca, "app-3", &["app", "spare"], ca).expect("issue");
    issue_node(ca, "app-1", ca).expect("issue");
    let chain = chain_of(&spare.cert);

    verify_peer_name(&chain, "app-3").expect("its name");
    verify_peer_roles(&chain, "app-3", &["app"]).expect("one role");
    verify_peer_roles(&chain, "app-3", &["spare", "app"]).expect("both");
    verify_peer_roles::<&str>(&chain, "app-3", &[]).expect("none");
    match verify_peer_roles(&chain, "app-3", &["app", "db"]) {
        Err(IdentityError::RoleMismatch { node, role, reason }) => {
            assert_eq!((node.as_str(), role.as_str()), ("app-3", "db"));
            assert!(reason.contains("--role db"), "{reason}");
        }
        other => panic!("expected a role mismatch, got {other:?}"),
    }
    // a role is never a node name, nor a node name a role
    assert!(verify_peer_name(&chain, "app").is_err());
    assert!(
        verify_peer_roles(
            &chain_of(&troupe_identity::NodePaths::new(ca, "app-1").cert),
            "app-1",
            &["app-1"]
        )
        .is_err()
    );
    // invalid roles are refused typed, before any certificate is looked at
    assert!(matches!(
        verify_peer_roles(&chain, "app-3", &["App"]),
        Err(IdentityError::InvalidRole { .. })
    ));
    assert!(matches!(
        issue_node_with_roles(ca, "x", &["a.role"], ca),
        Err(IdentityError::InvalidRole { .. })
    ));
    let many: Vec<String> = (0..17).map(|i| format!("r{i}")).collect();
    assert!(matches!(
        issue_node_with_roles(ca, "x", &many, ca),
        Err(IdentityError::InvalidRole { .. })
    ));

    // the node itself: claims what its certificate carries, and nothing more
    let loaded = NodeIdentity::load(ca, "app-3").expect("load");
    assert!(loaded.roles().is_empty(), "no claim until asked");
    let claiming = loaded.with_roles(&["spare", "app", "app"]).expect("claim");
    assert_eq!(claiming.roles(), ["app", "spare"]);
    let plain = NodeIdentity::load(ca, "app-1").expect("load");
    assert!(matches!(
        plain.with_roles(&["app"]),
        Err(IdentityError::RoleMismatch { .. })
    ));
}

#[test]
fn a_dev_ca_mints_identities_with_roles() {
    let ca = DevCa::new("shop").expect("dev ca");
    let id = ca
        .identity_with_roles("app-3", &["spare"])
        .expect("identity");
    assert_eq!(id.roles(), ["spare"]);
    verify_peer_roles(id.cert_chain(), "app-3", &["spare"]).expect("carried");
    assert!(ca.identity("app-4").expect("identity").roles().is_empty());
}
