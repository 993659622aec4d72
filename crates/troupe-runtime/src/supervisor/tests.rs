//! The hand-over of children started by `add` when the supervisor hears of them first: an event
//! of a child that overtakes its hand-over, made to happen by pausing between the two steps.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::*;
use crate::{ActorError, CallError, ChildOptions, Ctx, Mesh, Message, NodeConfig, Reply};

const T: Duration = Duration::from_secs(5);

#[derive(Serialize, Deserialize)]
struct Ping(Reply<()>);

impl Message for Ping {
    const NAME: &'static str = "test.Ping";
}

struct Idle;

impl Actor for Idle {
    type Msg = Ping;

    async fn handle(&mut self, Ping(reply): Ping, _: &mut Ctx<Ping>) -> Result<(), ActorError> {
        reply.send(());
        Ok(())
    }
}

/// Waits (polling, with a deadline) until the supervisor keeps an early event for `cell`.
async fn heard_early(root: &SupervisorRef, cell: &ActorCell, started: bool) {
    let pid = cell.get_id().pid();
    let deadline = Instant::now() + T;
    loop {
        let heard = match root.shared.adoptions.lock().early.get(&pid) {
            Some(Early::Started) => started,
            Some(Early::Exited(..)) => !started,
            None => false,
        };
        if heard {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the supervisor never heard of the child"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn root_with_late_child() -> (
    Node,
    SupervisorRef,
    Addr<Ping>,
    Arc<ActorRef<SupMsg>>,
    Adoption,
) {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let root = node
        .start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    let (spec, addr) = node
        .child("late", ChildOptions::permanent(), || Idle)
        .unwrap();
    let (actor, adoption) = root.start_here(spec).await.unwrap();
    (node, root, addr, actor, adoption)
}

#[tokio::test]
async fn an_exit_before_the_hand_over_is_handled_when_the_child_arrives() {
    let (node, root, addr, actor, adoption) = root_with_late_child().await;
    let mut reports = node.supervision_reports();
    let cell = adoption.cell.clone().unwrap();
    cell.kill();
    heard_early(&root, &cell, false).await;
    root.hand_over(&actor, adoption).unwrap();

    let report = tokio::time::timeout(T, reports.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.child, "late");
    assert_eq!(report.exit, Exit::Failed);
    assert!(
        matches!(report.action, SupervisionAction::Restarted { .. }),
        "{report:?}"
    );
    addr.call(Ping, T).await.unwrap();
    assert_eq!(root.children().await.unwrap(), vec!["late"]);
    assert!(root.shared.adoptions.lock().early.is_empty());
}

#[tokio::test]
async fn a_start_before_the_hand_over_leaves_the_child_recorded() {
    let (node, root, addr, actor, adoption) = root_with_late_child().await;
    let mut reports = node.supervision_reports();
    let cell = adoption.cell.clone().unwrap();
    heard_early(&root, &cell, true).await;
    root.hand_over(&actor, adoption).unwrap();

    assert_eq!(root.children().await.unwrap(), vec!["late"]);
    addr.call(Ping, T).await.unwrap();
    // recorded with its instance: a crash of it is seen and restarted
    assert!(node.kill("late"));
    let report = tokio::time::timeout(T, reports.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(report.action, SupervisionAction::Restarted { .. }),
        "{report:?}"
    );
    addr.call(Ping, T).await.unwrap();
}

#[tokio::test]
async fn a_child_handed_over_to_an_ended_supervisor_is_stopped_and_its_name_released() {
    let (node, root, addr, actor, adoption) = root_with_late_child().await;
    node.shutdown().await;
    assert!(matches!(
        root.hand_over(&actor, adoption),
        Err(SpawnError::SupervisorGone(_))
    ));
    assert!(!node.is_registered("late"));
    assert!(addr.call(Ping, T).await.is_err());
}

#[tokio::test]
async fn a_removed_child_stops_for_good_and_its_name_can_be_registered_again() {
    let node = Node::new("n", &Mesh::new(), NodeConfig::default()).unwrap();
    let root = node
        .start(SupervisorSpec::one_for_one(), vec![])
        .await
        .unwrap();
    let (spec, addr) = node
        .child("worker", ChildOptions::permanent(), || Idle)
        .unwrap();
    root.add(spec).await.unwrap();
    addr.call(Ping, T).await.unwrap();
    let mut reports = node.supervision_reports();

    assert!(root.remove("worker").await.unwrap());
    assert!(!node.is_registered("worker"));
    assert!(matches!(
        addr.call(Ping, T).await,
        Err(CallError::NotFound { .. })
    ));
    assert!(root.children().await.unwrap().is_empty());
    assert!(!root.remove("worker").await.unwrap(), "removed twice");
    // its stop was asked for: no crash, no restart reported
    assert!(reports.try_recv().is_err());

    let (spec, again) = node
        .child("worker", ChildOptions::permanent(), || Idle)
        .unwrap();
    root.add(spec).await.unwrap();
    again.call(Ping, T).await.unwrap();
    addr.call(Ping, T).await.unwrap();
    node.shutdown().await;
}
