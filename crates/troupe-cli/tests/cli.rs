//! The `troupe` binary end to end, in a temporary directory.

mod common;

use std::path::Path;

use common::{text, troupe_blocking as troupe};

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn init_then_issue() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca");

    let out = troupe(&["ca", "init", path(&ca), "--cluster", "shop"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("ca.crt") && stdout.contains("ca.key"),
        "{stdout}"
    );
    assert!(
        stdout.contains("troupe ca issue"),
        "next step shown: {stdout}"
    );
    assert!(ca.join("ca.crt").is_file() && ca.join("ca.key").is_file());

    let out = troupe(&["ca", "issue", path(&ca), "app-1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for file in ["ca.crt", "app-1.crt", "app-1.key"] {
        assert!(stdout.contains(file), "{file} in {stdout}");
    }
    assert!(stdout.contains("ca.key must stay"), "{stdout}");
    assert!(ca.join("app-1.crt").is_file() && ca.join("app-1.key").is_file());

    let elsewhere = tmp.path().join("out");
    let out = troupe(&["ca", "issue", path(&ca), "db", "--out", path(&elsewhere)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(elsewhere.join("db.crt").is_file() && elsewhere.join("db.key").is_file());
    assert!(!ca.join("db.crt").exists());

    // What was issued loads as a node identity.
    troupe_identity::NodeIdentity::load(&ca, "app-1").unwrap();
}

#[test]
fn init_twice_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(troupe(&["ca", "init", path(tmp.path())]).status.success());
    let out = troupe(&["ca", "init", path(tmp.path())]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("already exists"), "{stderr}");
}

#[test]
fn invalid_node_name_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(troupe(&["ca", "init", path(tmp.path())]).status.success());
    let out = troupe(&["ca", "issue", path(tmp.path()), "Bad_Name"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: invalid node name \"Bad_Name\""),
        "{stderr}"
    );
    assert!(!tmp.path().join("Bad_Name.crt").exists());
}

#[test]
fn issue_without_ca_fails_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let out = troupe(&["ca", "issue", path(&missing), "app"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(path(&missing.join("ca.crt"))), "{stderr}");
}

#[test]
fn help_and_usage_errors() {
    let out = troupe(&["--help"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(stdout.contains("ca"), "{stdout}");

    let out = troupe(&["ca", "--help"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("init") && stdout.contains("issue"),
        "{stdout}"
    );

    for args in [&[][..], &["ca"][..], &["ca", "issue"][..], &["nope"][..]] {
        let out = troupe(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("error") || text(&out.stderr).contains("Usage"));
    }
}
