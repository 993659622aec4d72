//! Addr handles: cast, call, order, every local CallError, restarts, handles in messages.

mod common;

use std::time::Duration;
use troupe_runtime::Reply;

use common::*;
use troupe_runtime::{
    CallError, ChildOptions, Mesh, Node, NodeConfig, RegistryError, SpawnError, SupervisorSpec,
    with_decode_context,
};

#[tokio::test]
async fn cast_then_call_sees_the_cast() {
    let journal = Journal::default();
    let (_node, addr) = node_with_probe("a", &journal).await;
    addr.cast(Probe::Push(1, Reply::none())).unwrap();
    addr.cast(Probe::Push(2, Reply::none())).unwrap();
    assert_eq!(addr.call(Probe::Log, T).await.unwrap(), (vec![1, 2]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_one_sender_arrive_in_send_order() {
    let journal = Journal::default();
    let (_node, addr) = node_with_probe("a", &journal).await;
    // four concurrent senders, each with its own tagged sequence
    let mut tasks = Vec::new();
    for sender in 0..4u64 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..2_000u64 {
                addr.cast(Probe::Push(sender * 1_000_000 + i, Reply::none()))
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let log = addr.call(Probe::Log, T).await.unwrap();
    assert_eq!(log.len(), 8_000);
    for sender in 0..4u64 {
        let seq: Vec<u64> = log
            .iter()
            .filter(|v| **v / 1_000_000 == sender)
            .map(|v| v % 1_000_000)
            .collect();
        assert_eq!(
            seq,
            (0..2_000).collect::<Vec<_>>(),
            "sender {sender} reordered"
        );
    }
}

/// Timeouts of 100 ms and more wait on the watch list first and get a timer of their own only
/// after a sweep; they must still end on time: never early, and not long after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_and_short_call_timeouts_end_on_time() {
    let journal = Journal::default();
    let (_node, addr) = node_with_probe("a", &journal).await;
    for timeout_ms in [30u64, 150, 400] {
        let timeout = Duration::from_millis(timeout_ms);
        let started = std::time::Instant::now();
        let err = addr
            .call(|r| Probe::Sleep(timeout_ms + 600, r), timeout)
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");
        assert!(
            took >= timeout,
            "{timeout_ms} ms timeout ended early: {took:?}"
        );
        assert!(
            took < timeout + Duration::from_millis(100),
            "{timeout_ms} ms timeout ended late: {took:?}"
        );
        // let the sleeping handler finish before the next round
        eventually("probe free", T, async || {
            addr.call(Probe::Log, Duration::from_millis(50))
                .await
                .is_ok()
        })
        .await;
    }
}

/// `Duration::MAX` waits without a deadline; a timeout too long to add to the clock waits the
/// same way once it outlives a sweep of the watch list (no overflow panic).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_a_deadline_end_on_the_reply_or_its_loss() {
    let journal = Journal::default();
    let (_node, addr) = node_with_probe("a", &journal).await;
    assert_eq!(
        addr.call(|r| Probe::Push(1, r), Duration::MAX)
            .await
            .unwrap(),
        1
    );
    let err = addr.call(Probe::Drop, Duration::MAX).await.unwrap_err();
    assert!(matches!(err, CallError::NoReply { .. }), "{err:?}");
    let huge = Duration::from_secs(u64::MAX / 2);
    assert_eq!(addr.call(|r| Probe::Sleep(200, r), huge).await.unwrap(), ());
}

#[tokio::test]
async fn call_errors_are_typed() {
    let journal = Journal::default();
    let (node, addr) = node_with_probe("a", &journal).await;

    // Timeout
    let err = addr
        .call(|r| Probe::Sleep(500, r), Duration::from_millis(20))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Timeout { .. }), "{err:?}");

    // NoReply: the handler dropped the reply handle
    let err = addr.call(Probe::Drop, T).await.unwrap_err();
    assert!(matches!(err, CallError::NoReply { .. }), "{err:?}");

    // ActorFailed: the handler panicked holding the reply handle
    let err = addr.call(Probe::Panic, T).await.unwrap_err();
    assert!(matches!(err, CallError::ActorFailed { .. }), "{err:?}");

    // NotFound: nothing under that name
    let missing = node.addr::<Probe>("a", "nobody");
    let err = missing.call(Probe::Log, T).await.unwrap_err();
    assert_eq!(
        err,
        CallError::NotFound {
            target: "a/nobody".into()
        }
    );
    assert!(matches!(
        node.lookup::<Probe>("nobody"),
        Err(CallError::NotFound { .. })
    ));

    // Unreachable: no such node
    let far = node.addr::<Probe>("elsewhere", "probe");
    let err = far.cast(Probe::Log(Reply::none())).unwrap_err();
    assert!(matches!(err, CallError::Unreachable { .. }), "{err:?}");

    // WrongType: the name handles another message type
    let err = node.lookup::<Other>("probe").unwrap_err();
    assert!(matches!(err, CallError::WrongType { .. }), "{err:?}");

    // an actor can answer a call with a typed error
    assert_eq!(
        addr.call(Probe::Refuse, T).await,
        Err(CallError::Overloaded {
            target: "refused on purpose".into(),
            limit: 7
        })
    );

    // a reply handed to another task is still answered
    assert_eq!(addr.call(|r| Probe::Defer(10, r), T).await.unwrap(), ());
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Other;
impl troupe_runtime::Message for Other {
    const NAME: &'static str = "test.Other";
}

// a paused clock: the sleep below ends only once every other task is idle, so the actor has
// taken the first message
#[tokio::test(start_paused = true)]
async fn a_full_mailbox_refuses_with_overloaded_and_counts() {
    let journal = Journal::default();
    let node = Node::new("a", &Mesh::new(), NodeConfig::default()).unwrap();
    let j = journal.clone();
    let (spec, addr) = node
        .child(
            "slow",
            ChildOptions::permanent().mailbox_limit(4),
            move || ProbeActor::new(&j),
        )
        .unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![spec])
        .await
        .unwrap();
    // the first message occupies the actor; four more fill the mailbox
    addr.cast(Probe::Sleep(300, Reply::none())).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..4 {
        addr.cast(Probe::Push(i, Reply::none())).unwrap();
    }
    let err = addr.cast(Probe::Push(99, Reply::none())).unwrap_err();
    assert!(
        matches!(err, CallError::Overloaded { limit: 4, .. }),
        "{err:?}"
    );
    let err = addr.call(Probe::Log, T).await.unwrap_err();
    assert!(matches!(err, CallError::Overloaded { .. }), "{err:?}");
    assert_eq!(addr.dropped(), 2);
    // once drained, it accepts again and nothing accepted was lost
    eventually("mailbox drained", T, async || {
        addr.call(Probe::Log, T).await.is_ok()
    })
    .await;
    assert_eq!(addr.call(Probe::Log, T).await.unwrap(), (vec![0, 1, 2, 3]));
}

#[tokio::test]
async fn a_handle_reaches_the_restarted_instance() {
    let journal = Journal::default();
    let (_node, addr) = node_with_probe("a", &journal).await;
    let held = addr.clone();
    assert_eq!(held.call(Probe::Starts, T).await.unwrap(), 1);
    held.cast(Probe::Push(1, Reply::none())).unwrap();
    for round in 2..=3 {
        addr.cast(Probe::Panic(Reply::none())).unwrap();
        // calls queued behind the crash are lost with that instance's mailbox (and fail
        // typed); a caller that retries reaches the new instance through the same handle
        eventually("restart", T, async || {
            held.call(Probe::Starts, T).await == Ok(round)
        })
        .await;
    }
    // state is fresh after a restart
    assert_eq!(held.call(Probe::Log, T).await.unwrap(), (vec![]));
}

#[tokio::test]
async fn messages_sent_while_restarting_wait_for_the_new_instance_in_order() {
    let journal = Journal::default();
    let node = Node::new("a", &Mesh::new(), NodeConfig::default()).unwrap();
    let j = journal.clone();
    let (spec, addr) = node
        .child("p", ChildOptions::permanent(), move || ProbeActor::new(&j))
        .unwrap();
    let spec_sup =
        SupervisorSpec::one_for_one().backoff(Duration::from_millis(200), Duration::from_secs(1));
    node.start(spec_sup, vec![spec]).await.unwrap();
    let mut reports = node.supervision_reports();
    addr.cast(Probe::Panic(Reply::none())).unwrap();
    let report = tokio::time::timeout(T, reports.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        report.action,
        troupe_runtime::SupervisionAction::Restarted { delay, .. } if delay == Duration::from_millis(200)
    ));
    // the slot is empty for the next 200 ms: these are parked, not lost
    for i in 0..100 {
        addr.cast(Probe::Push(i, Reply::none())).unwrap();
    }
    assert_eq!(journal.starts("p"), 1);
    assert_eq!(
        addr.call(Probe::Log, T).await.unwrap(),
        (0..100).collect::<Vec<u64>>()
    );
    assert_eq!(journal.starts("p"), 2);
}

#[tokio::test]
async fn an_addr_travels_inside_a_message() {
    let journal = Journal::default();
    let mesh = Mesh::new();
    let a = Node::new("a", &mesh, NodeConfig::default()).unwrap();
    let b = Node::new("b", &mesh, NodeConfig::default()).unwrap();
    let (ja, jb) = (journal.clone(), journal.clone());
    let (spec_a, on_a) = a
        .child("x", ChildOptions::permanent(), move || ProbeActor::new(&ja))
        .unwrap();
    let (spec_b, on_b) = b
        .child("y", ChildOptions::permanent(), move || ProbeActor::new(&jb))
        .unwrap();
    a.start(SupervisorSpec::one_for_one(), vec![spec_a])
        .await
        .unwrap();
    b.start(SupervisorSpec::one_for_one(), vec![spec_b])
        .await
        .unwrap();

    // moved locally: actor a/x calls b/y through the handle it was given
    assert_eq!(
        on_a.call(|r| Probe::Forward(on_b.clone(), 7, r), T)
            .await
            .unwrap(),
        1
    );

    // serialized as (node, name) and resolved where it is decoded
    let bytes = rmp_serde::to_vec(&Probe::Forward(on_b.clone(), 8, Reply::none())).unwrap();
    let decoded: Probe = with_decode_context(&a, || rmp_serde::from_slice(&bytes)).unwrap();
    let Probe::Forward(travelled, n, _) = decoded else {
        panic!("decoded {decoded:?}")
    };
    assert_eq!(travelled.node(), "b");
    assert_eq!(travelled.name(), "y");
    assert_eq!(
        on_a.call(|r| Probe::Forward(travelled, n, r), T)
            .await
            .unwrap(),
        2
    );

    // decoded outside any node: it does not resolve, and says so
    let orphan: Probe = rmp_serde::from_slice(&bytes).unwrap();
    let Probe::Forward(orphan, _, _) = orphan else {
        panic!()
    };
    assert!(matches!(
        orphan.cast(Probe::Log(Reply::none())),
        Err(CallError::Unreachable { .. })
    ));
}

#[tokio::test]
async fn names_are_per_node_and_unique_within_one() {
    let journal = Journal::default();
    let mesh = Mesh::new();
    let a = Node::new("a", &mesh, NodeConfig::default()).unwrap();
    let b = Node::new("b", &mesh, NodeConfig::default()).unwrap();
    assert_eq!(
        Node::new("a", &mesh, NodeConfig::default()).unwrap_err(),
        RegistryError::DuplicateNode("a".into())
    );
    let j = journal.clone();
    let (_spec, _addr) = a
        .child("same", ChildOptions::permanent(), move || {
            ProbeActor::new(&j)
        })
        .unwrap();
    let j = journal.clone();
    let err = a
        .child("same", ChildOptions::permanent(), move || {
            ProbeActor::new(&j)
        })
        .unwrap_err();
    assert_eq!(
        err,
        RegistryError::AlreadyRegistered {
            node: "a".into(),
            name: "same".into()
        }
    );
    // another node may use the same name
    let j = journal.clone();
    assert!(
        b.child("same", ChildOptions::permanent(), move || ProbeActor::new(
            &j
        ))
        .is_ok()
    );

    // and at runtime through a supervisor
    let root = a
        .start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    let j = journal.clone();
    root.spawn("dyn", ChildOptions::permanent(), move || {
        ProbeActor::new(&j)
    })
    .await
    .unwrap();
    let j = journal.clone();
    let err = root
        .spawn("dyn", ChildOptions::permanent(), move || {
            ProbeActor::new(&j)
        })
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        SpawnError::Registry(RegistryError::AlreadyRegistered { .. })
    ));
}

#[derive(Debug, serde::Serialize, serde::Deserialize, troupe_runtime::Request)]
#[request(name = "test.Double", response = u64, version = 2, crate = "troupe_runtime")]
struct Double(u64);

struct Doubler;

impl troupe_runtime::Actor for Doubler {
    type Msg = troupe_runtime::Ask<Double>;

    async fn handle(
        &mut self,
        ask: troupe_runtime::Ask<Double>,
        _ctx: &mut troupe_runtime::Ctx<Self::Msg>,
    ) -> Result<(), troupe_runtime::ActorError> {
        ask.reply.send(ask.request.0 * 2);
        Ok(())
    }
}

#[tokio::test]
async fn a_request_type_is_asked_and_named_by_its_derive() {
    use troupe_runtime::{Message, Request};
    assert_eq!(<Double as Request>::NAME, "test.Double");
    assert_eq!(<troupe_runtime::Ask<Double> as Message>::VERSION, 2);
    let node = Node::new("a", &Mesh::new(), NodeConfig::default()).unwrap();
    let (spec, doubler) = node
        .child("doubler", ChildOptions::permanent(), || Doubler)
        .unwrap();
    node.start(SupervisorSpec::one_for_one(), vec![spec])
        .await
        .unwrap();
    assert_eq!(doubler.ask(Double(21), T).await.unwrap(), 42);
}
