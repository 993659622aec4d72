//! What the nodes of a cluster log as several of them leave together, as an operator reads it:
//! nothing at `warn` or `error`. Before, a node on its way out heard from a peer (which had
//! heard it leave) that it was down, and rejoined the cluster — every leaving node logged "the
//! cluster declared this node down; rejoining" and came back up in the others' views for a
//! moment — and the goodbyes that reached a node after its membership driver had stopped were
//! each logged at `error` as "membership command dropped" (a screenful at the end of every
//! lesson of the guide).
//!
//! A test binary of its own: the subscriber that collects the lines is the process's global one.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use troupe_runtime::{Mesh, Node, NodeConfig, remote::NodeNet};
use troupe_testkit::{Cluster, fully_connected};

/// Every event at `warn` or `error`, as (target, message).
#[derive(Clone, Default)]
struct Loud(Arc<Mutex<Vec<(String, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Loud {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() > tracing::Level::WARN {
            return;
        }
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0
            .lock()
            .push((event.metadata().target().to_string(), message.0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_leaving_together_neither_rejoin_nor_log_errors() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let loud = Loud::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(loud.clone()))
        .expect("the first subscriber of this test binary");

    let cluster = Cluster::new("leaving");
    let mut nodes: Vec<(Node, NodeNet)> = Vec::new();
    for name in ["a", "b", "c", "d", "e", "f"] {
        let node = Node::new(name, &Mesh::new(), NodeConfig::default()).unwrap();
        let seeds: Vec<_> = nodes
            .first()
            .map(|(_, n)| n.local_addr())
            .into_iter()
            .collect();
        let net = cluster.join(&node, &seeds).await;
        nodes.push((node, net));
    }
    let nets: Vec<&NodeNet> = nodes.iter().map(|(_, n)| n).collect();
    fully_connected(&nets, Duration::from_secs(30)).await;
    assert!(loud.0.lock().is_empty(), "{:?}", loud.0.lock());

    // all but `a` at once, as a process running several nodes stops them
    let (staying, leaving) = nodes.split_at(1);
    futures::future::join_all(leaving.iter().map(|(_, net)| net.shutdown())).await;
    futures::future::join_all(leaving.iter().map(|(node, _)| node.shutdown())).await;
    troupe_testkit::eventually(
        "a sees the others gone",
        Duration::from_secs(30),
        async || {
            let live = staying[0].1.live();
            if live.is_empty() { Ok(()) } else { Err(live) }
        },
    )
    .await;
    staying[0].1.shutdown().await;
    staying[0].0.shutdown().await;
    assert!(loud.0.lock().is_empty(), "{:?}", loud.0.lock());
}
