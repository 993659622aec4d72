//! Faults injected from inside a running topology (`troupe::faults`): links cut between nodes
//! of one process routed over QUIC, healed, and actors crashed by name.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use troupe::faults::{FaultError, Faults};
use troupe::prelude::*;
use troupe_testkit::{eventually, within};

const T: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize, Message)]
#[message(name = "faults-test.Relay")]
enum RelayMsg {
    /// Answered with this instance's number.
    Who(Reply<u64>),
    /// Calls the relay on node `to` (300 ms); answered with whether it answered.
    Ping { to: String, reply: Reply<bool> },
}

struct Relay {
    instance: u64,
}

impl Actor for Relay {
    type Msg = RelayMsg;

    async fn handle(&mut self, msg: RelayMsg, ctx: &mut Ctx<RelayMsg>) -> Result<(), ActorError> {
        match msg {
            RelayMsg::Who(reply) => {
                reply.send(self.instance);
            }
            RelayMsg::Ping { to, reply } => {
                let peer = ctx.node().addr::<RelayMsg>(&to, "relay");
                let answered = peer
                    .call(RelayMsg::Who, Duration::from_millis(300))
                    .await
                    .is_ok();
                reply.send(answered);
            }
        }
        Ok(())
    }
}

fn topology() -> (Topology, Faults, Vec<Addr<RelayMsg>>) {
    let mut t = Topology::new("faults-test");
    let relays = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let node = t.node(name);
            let counter = std::sync::atomic::AtomicU64::new(0);
            t.add(
                node,
                "relay",
                (move || Relay {
                    instance: counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                })
                .reachable_from(Reach::cluster()),
            )
        })
        .collect();
    let faults = Faults::on_every_node(&mut t);
    (t, faults, relays)
}

fn args(extra: &[&str]) -> LaunchArgs {
    let mut all = vec!["test", "--no-admin", "--peer-down-ms", "1000"];
    all.extend_from_slice(extra);
    LaunchArgs::try_parse_from(all).expect("flags")
}

async fn pings(from: &Addr<RelayMsg>, to: &str) -> bool {
    let to = to.to_string();
    from.call(|reply| RelayMsg::Ping { to, reply }, T)
        .await
        .expect("the relay answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_in_one_process_cuts_only_the_links_named_until_healed() {
    partition_and_heal(&["--quic"]).await;
}

/// Nodes given by `--node`, several in one process: with `--quic` the links between them are
/// QUIC links too, so cuts between them hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_between_nodes_given_by_flag_in_one_process_holds() {
    partition_and_heal(&[
        "--node", "a", "--node", "b", "--node", "c", "--dev-ca", "--quic",
    ])
    .await;
}

async fn partition_and_heal(flags: &[&str]) {
    let (t, faults, relays) = topology();
    let run = async {
        let (a, b, c) = (&relays[0], &relays[1], &relays[2]);
        eventually("a full mesh of pings", T, async || {
            pings(a, "b").await && pings(b, "c").await && pings(c, "a").await
        })
        .await;
        faults.partition(&["a"], &["b", "c"]).await.expect("cut");
        assert_eq!(
            faults.status("a").await.expect("a answers").cut_from,
            vec!["b".to_string(), "c".to_string()]
        );
        assert!(!pings(a, "b").await && !pings(c, "a").await);
        assert!(
            pings(b, "c").await && pings(c, "b").await,
            "b and c are untouched"
        );
        let healed = faults.heal().await;
        assert!(
            healed
                .iter()
                .any(|(node, h)| node == "a" && h.as_ref().is_ok_and(|p| p.len() == 2)),
            "{healed:?}"
        );
        eventually("a reached again", T, async || {
            pings(a, "b").await && pings(c, "a").await
        })
        .await;
        assert!(matches!(
            faults.cut("a", vec!["nobody".into()]).await,
            Err(FaultError::UnknownPeer { .. })
        ));
        assert!(matches!(
            faults.status("z").await,
            Err(FaultError::UnknownNode(_))
        ));
    };
    within(
        "the test",
        Duration::from_secs(60),
        launch_until(t, args(flags), run),
    )
    .await
    .expect("launch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_are_crashed_by_name_and_links_need_an_endpoint() {
    let (t, faults, relays) = topology();
    let run = async {
        let b = &relays[1];
        let first = b.call(RelayMsg::Who, T).await.expect("who");
        assert_eq!(faults.kill("relay").await.len(), 3);
        eventually("b's relay restarted", T, async || {
            b.call(RelayMsg::Who, T).await.is_ok_and(|n| n > first)
        })
        .await;
        assert!(faults.kill("nothing-by-this-name").await.is_empty());
        let before = b.call(RelayMsg::Who, T).await.expect("who");
        assert_eq!(faults.kill_on("b", "relay").await, Ok(true));
        eventually("only b's relay restarted again", T, async || {
            b.call(RelayMsg::Who, T).await.is_ok_and(|n| n > before)
        })
        .await;
        assert_eq!(faults.kill_on("b", "nothing").await, Ok(false));
        // in memory, there is no link to cut
        assert_eq!(
            faults.partition(&["a"], &["b"]).await,
            Err(FaultError::NoNetwork("a".into()))
        );
    };
    within(
        "the test",
        Duration::from_secs(60),
        launch_until(t, args(&[]), run),
    )
    .await
    .expect("launch");
}
