//! On-disk CA and node files: init, issue, load, and their typed errors.

use std::path::Path;

use troupe_identity::{
    CLUSTER_SERVER_NAME, IdentityError, NodeIdentity, NodePaths, init_ca, issue_node,
    verify_peer_name,
};

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_issue_load_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("ca"); // does not exist yet: init creates it
    let ca = init_ca(&ca_dir, "shop").unwrap();
    assert_eq!(ca.cert, ca_dir.join("ca.crt"));
    assert_eq!(ca.key, ca_dir.join("ca.key"));
    assert!(ca.cert.is_file() && ca.key.is_file());
    let ca_pem = std::fs::read_to_string(&ca.cert).unwrap();
    assert!(
        ca_pem.starts_with("-----BEGIN CERTIFICATE-----"),
        "{ca_pem}"
    );

    let node = issue_node(&ca_dir, "app-1", &ca_dir).unwrap();
    assert_eq!(node, NodePaths::new(&ca_dir, "app-1"));
    assert!(node.cert.is_file() && node.key.is_file());

    #[cfg(unix)]
    {
        assert_eq!(mode(&ca.key), 0o600);
        assert_eq!(mode(&node.key), 0o600);
    }

    let id = NodeIdentity::load(&ca_dir, "app-1").unwrap();
    assert_eq!(id.node(), "app-1");
    assert_eq!(id.ca_certs().len(), 1);
    assert_eq!(id.cert_chain().len(), 1);
    // The certificate carries the node name and the shared cluster name, nothing else usable.
    verify_peer_name(id.cert_chain(), "app-1").unwrap();
    assert!(verify_peer_name(id.cert_chain(), "app-2").is_err());
    assert!(verify_peer_name(id.cert_chain(), CLUSTER_SERVER_NAME).is_err());
    // Building every configuration works.
    id.server_config().unwrap();
    id.client_config().unwrap();
}

#[test]
fn host_directory_needs_only_three_files() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("ca");
    let host = tmp.path().join("host");
    init_ca(&ca_dir, "troupe").unwrap();
    let out = tmp.path().join("out");
    issue_node(&ca_dir, "edge", &out).unwrap();
    assert!(
        !ca_dir.join("edge.crt").exists(),
        "--out puts node files elsewhere"
    );

    std::fs::create_dir(&host).unwrap();
    std::fs::copy(ca_dir.join("ca.crt"), host.join("ca.crt")).unwrap();
    std::fs::copy(out.join("edge.crt"), host.join("edge.crt")).unwrap();
    std::fs::copy(out.join("edge.key"), host.join("edge.key")).unwrap();
    let id = NodeIdentity::load(&host, "edge").unwrap();
    assert_eq!(id.node(), "edge");
}

#[test]
fn init_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(tmp.path(), "shop").unwrap();
    let before = std::fs::read(&ca.key).unwrap();
    let err = init_ca(tmp.path(), "shop").unwrap_err();
    assert!(matches!(err, IdentityError::AlreadyExists { .. }), "{err}");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&ca.key).unwrap(), before, "key untouched");

    // Also when only one of the two files is there.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("ca.key"), b"x").unwrap();
    let err = init_ca(other.path(), "shop").unwrap_err();
    match err {
        IdentityError::AlreadyExists { path } => assert_eq!(path, other.path().join("ca.key")),
        other => panic!("{other}"),
    }
    assert!(!other.path().join("ca.crt").exists());
}

#[test]
fn reissue_overwrites_and_keeps_key_private() {
    let tmp = tempfile::tempdir().unwrap();
    init_ca(tmp.path(), "shop").unwrap();
    let first = issue_node(tmp.path(), "db", tmp.path()).unwrap();
    let cert1 = std::fs::read(&first.cert).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let loose = std::fs::Permissions::from_mode(0o644);
        std::fs::set_permissions(&first.key, loose).unwrap();
    }
    let second = issue_node(tmp.path(), "db", tmp.path()).unwrap();
    assert_ne!(std::fs::read(&second.cert).unwrap(), cert1);
    #[cfg(unix)]
    assert_eq!(mode(&second.key), 0o600);
    NodeIdentity::load(tmp.path(), "db").unwrap();
}

#[test]
fn issue_with_missing_ca_dir_names_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let err = issue_node(&missing, "app", tmp.path()).unwrap_err();
    match &err {
        IdentityError::Io { path, source } => {
            assert_eq!(path, &missing.join("ca.crt"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string().contains(&*missing.to_string_lossy()),
        "{err}"
    );
    assert!(!tmp.path().join("app.crt").exists());
}

#[test]
fn issue_with_garbage_ca_files_is_a_pem_error() {
    let tmp = tempfile::tempdir().unwrap();
    init_ca(tmp.path(), "shop").unwrap();
    std::fs::write(tmp.path().join("ca.crt"), b"not a certificate\n").unwrap();
    let err = issue_node(tmp.path(), "app", tmp.path()).unwrap_err();
    match &err {
        IdentityError::Pem { path, .. } => assert_eq!(path, &tmp.path().join("ca.crt")),
        other => panic!("{other}"),
    }

    let tmp = tempfile::tempdir().unwrap();
    init_ca(tmp.path(), "shop").unwrap();
    std::fs::write(tmp.path().join("ca.key"), b"").unwrap();
    let err = issue_node(tmp.path(), "app", tmp.path()).unwrap_err();
    match &err {
        IdentityError::Pem { path, .. } => assert_eq!(path, &tmp.path().join("ca.key")),
        other => panic!("{other}"),
    }
}

#[test]
fn issue_with_a_key_of_another_ca_is_detected() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    init_ca(a.path(), "shop").unwrap();
    init_ca(b.path(), "shop").unwrap();
    std::fs::copy(b.path().join("ca.key"), a.path().join("ca.key")).unwrap();
    let err = issue_node(a.path(), "app", a.path()).unwrap_err();
    assert!(matches!(err, IdentityError::Certificate { .. }), "{err}");
    assert!(!a.path().join("app.crt").exists());
}

#[test]
fn invalid_node_names_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    init_ca(tmp.path(), "shop").unwrap();
    let long = "a".repeat(64);
    for name in [
        "Upper",
        "",
        long.as_str(),
        "-lead",
        "trail-",
        "ca",
        CLUSTER_SERVER_NAME,
        "a/b",
        "../x",
    ] {
        let err = issue_node(tmp.path(), name, tmp.path()).unwrap_err();
        assert!(
            matches!(&err, IdentityError::InvalidNodeName { name: n, .. } if n == name),
            "{name:?}: {err}"
        );
    }
    // 63 characters is fine.
    issue_node(tmp.path(), &"a".repeat(63), tmp.path()).unwrap();
}

#[test]
fn load_under_the_wrong_name_is_a_name_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    init_ca(tmp.path(), "shop").unwrap();
    issue_node(tmp.path(), "app", tmp.path()).unwrap();
    std::fs::copy(tmp.path().join("app.crt"), tmp.path().join("db.crt")).unwrap();
    std::fs::copy(tmp.path().join("app.key"), tmp.path().join("db.key")).unwrap();
    let err = NodeIdentity::load(tmp.path(), "db").unwrap_err();
    match &err {
        IdentityError::NameMismatch { claimed, .. } => assert_eq!(claimed, "db"),
        other => panic!("{other}"),
    }
}

#[test]
fn load_rejects_a_cert_of_another_ca_and_a_foreign_key() {
    let tmp = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    init_ca(tmp.path(), "shop").unwrap();
    init_ca(other.path(), "shop").unwrap();
    issue_node(other.path(), "app", tmp.path()).unwrap(); // signed by the other CA
    let err = NodeIdentity::load(tmp.path(), "app").unwrap_err();
    assert!(matches!(err, IdentityError::Certificate { .. }), "{err}");
    // rustls's verdict is kept as the source, not flattened into the message alone.
    let cause = std::error::Error::source(&err).expect("the verifier's error as source");
    assert!(err.to_string().ends_with(&cause.to_string()), "{err}");

    issue_node(tmp.path(), "app", tmp.path()).unwrap();
    issue_node(tmp.path(), "db", tmp.path()).unwrap();
    std::fs::copy(tmp.path().join("db.key"), tmp.path().join("app.key")).unwrap();
    let err = NodeIdentity::load(tmp.path(), "app").unwrap_err();
    assert!(matches!(err, IdentityError::Certificate { .. }), "{err}");
    assert!(err.to_string().contains("private key"), "{err}");
}

#[test]
fn load_with_missing_files_names_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    init_ca(tmp.path(), "shop").unwrap();
    let err = NodeIdentity::load(tmp.path(), "app").unwrap_err();
    match &err {
        IdentityError::Io { path, .. } => assert_eq!(path, &tmp.path().join("app.crt")),
        other => panic!("{other}"),
    }
}
