//! What the nodes of a cluster log as they leave together, as an operator reads it:
//! nothing at `error`. A node that is leaving stops its membership driver; the goodbyes of the
//! nodes leaving with it that reach it afterwards are expected then, not errors (before, every one
//! of them logged "membership command dropped" at `error`, a screenful at the end of every
//! lesson of the guide).
//!
//! A test binary of its own: the subscriber that counts the lines is the process's global one.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use troupe_runtime::{Mesh, Node, NodeConfig, remote::NodeNet};
use troupe_testkit::{Cluster, fully_connected};

/// Every event at `error`, as (target, message).
#[derive(Clone, Default)]
struct Errors(Arc<Mutex<Vec<(String, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Errors {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() != tracing::Level::ERROR {
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
async fn nodes_leaving_together_log_no_errors() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let errors = Errors::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(errors.clone()))
        .expect("the first subscriber of this test binary");

    let cluster = Cluster::new("leaving");
    let mut nodes: Vec<(Node, NodeNet)> = Vec::new();
    for name in ["a", "b", "c", "d"] {
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
    assert!(errors.0.lock().is_empty(), "{:?}", errors.0.lock());

    // all at once, as a process running several nodes stops them
    futures::future::join_all(nodes.iter().map(|(_, net)| net.shutdown())).await;
    futures::future::join_all(nodes.iter().map(|(node, _)| node.shutdown())).await;
    assert!(errors.0.lock().is_empty(), "{:?}", errors.0.lock());
}
