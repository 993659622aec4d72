//! The lease register on a real troupe database: compare-and-set from a record compares the
//! bytes the register held, so a record another build encoded (here: before `draining`
//! existed) can still be renewed or claimed from.

use std::time::Duration;

use bytes::Bytes;
use troupe_db::DbSpec;
use troupe_failover::{DbRegister, LEASE_PREFIX, LeaseRegister};
use troupe_placement::{LeaseRecord, WriteOutcome};
use troupe_runtime::{Mesh, Node, NodeConfig, SupervisorSpec};

#[tokio::test]
async fn a_record_written_by_an_older_build_is_compared_as_held() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let spec = DbSpec::new("meta", dir.path()).replica("n");
    let (child, _) = spec.child(&node, 0).unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![child])
        .await
        .unwrap();
    let client = spec.client(&node);
    // the record as a build without `draining` wrote it: four fields
    let old = rmp_serde::to_vec(&("app-1", 7u64, 3000u64, false)).unwrap();
    client
        .put(format!("{LEASE_PREFIX}svc"), Bytes::from(old))
        .await
        .unwrap();

    let register = DbRegister::new(&client, Duration::from_secs(2));
    let held = register.read("svc").await.unwrap().expect("a record");
    assert_eq!(
        held,
        LeaseRecord {
            holder: "app-1".into(),
            generation: 7,
            term_ms: 3000,
            released: false,
            draining: false,
            benched: Vec::new(),
        }
    );
    let renewed = held.renewed();
    assert_eq!(
        register
            .compare_and_set("svc", Some(held.clone()), renewed.clone())
            .await,
        WriteOutcome::Applied
    );
    // and from what was written since, by this build
    assert_eq!(
        register
            .compare_and_set("svc", Some(renewed.clone()), renewed.released())
            .await,
        WriteOutcome::Applied
    );
    // a stale expectation is refused with what the register holds
    assert_eq!(
        register
            .compare_and_set("svc", Some(held), renewed.renewed())
            .await,
        WriteOutcome::Mismatch(Some(renewed.released()))
    );
    node.shutdown().await;
}
