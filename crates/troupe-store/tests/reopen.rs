//! Reopening a file another handle holds: it succeeds once the handle is released, and fails
//! typed after the bound (on tokio's paused clock, so no real waiting).

use std::error::Error as _;
use std::time::Duration;

use troupe_store::{Reopen, StoreError, StoreErrorKind, create, create_when_released};

#[tokio::test(start_paused = true)]
async fn reopening_succeeds_once_the_holder_releases_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("part.redb");
    let holder = create(&path).unwrap();
    // A second handle is refused at once while the first is open ...
    let refused = create(&path).unwrap_err();
    assert!(refused.is_held(), "{refused}");
    // ... and the waiting open gets the file once the holder lets go, 200 ms later.
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(holder);
    });
    let started = tokio::time::Instant::now();
    let db = create_when_released(&path, Reopen::default())
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(started.elapsed() < Reopen::default().max_wait);
    release.await.unwrap();
    db.begin_write().unwrap().commit().unwrap();
}

#[tokio::test(start_paused = true)]
async fn reopening_fails_typed_after_the_time_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("part.redb");
    let _holder = create(&path).unwrap();
    let reopen = Reopen {
        max_attempts: u32::MAX,
        max_wait: Duration::from_millis(100),
        pause: Duration::from_millis(10),
    };
    let err = create_when_released(&path, reopen).await.unwrap_err();
    let StoreError::Held {
        attempts, waited, ..
    } = &err
    else {
        panic!("expected Held, got {err}");
    };
    assert_eq!(*attempts, 11, "attempts at 0, 10, .., 100 ms");
    assert!(*waited <= reopen.max_wait);
    assert_eq!(err.kind(), StoreErrorKind::Held);
    let source = err.source().expect("redb's refusal as source");
    assert!(source.to_string().contains("already open"), "{source}");
}

#[tokio::test(start_paused = true)]
async fn reopening_fails_typed_after_the_attempt_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("part.redb");
    let _holder = create(&path).unwrap();
    let reopen = Reopen {
        max_attempts: 3,
        max_wait: Duration::from_secs(3600),
        pause: Duration::from_millis(10),
    };
    let started = tokio::time::Instant::now();
    let err = create_when_released(&path, reopen).await.unwrap_err();
    assert!(matches!(err, StoreError::Held { attempts: 3, .. }), "{err}");
    assert_eq!(started.elapsed(), Duration::from_millis(20));
}

#[tokio::test]
async fn other_failures_are_returned_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // Not a redb file.
    let garbage = dir.path().join("garbage.redb");
    std::fs::write(&garbage, vec![0xAB; 8192]).unwrap();
    let err = create_when_released(&garbage, Reopen::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Open, "{err}");
    assert!(err.to_string().contains("garbage.redb"), "{err}");
    // A directory that cannot be made: a file is in the way.
    let blocked = garbage.join("part.redb");
    let err = create_when_released(&blocked, Reopen::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err}");
    assert!(err.source().is_some());
    // A missing directory is made.
    let fresh = dir.path().join("a").join("b").join("part.redb");
    assert!(
        create_when_released(&fresh, Reopen::default())
            .await
            .is_ok()
    );
}
