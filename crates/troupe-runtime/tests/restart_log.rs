//! The supervisor's log line for a restart, as an operator reads it: at `warn`, naming the
//! child, with the reason and how many times it has been restarted.
//!
//! A test binary of its own: tracing caches whether a log line is wanted per call site,
//! process-wide, so a capturing subscriber must be the first to see the supervisor's lines.

mod common;

use common::*;
use troupe_runtime::SupervisorSpec;

/// The `restarting a failed child` log lines, as (child, restarts, level).
#[derive(Clone, Default)]
struct RestartLines(std::sync::Arc<parking_lot::Mutex<Vec<(String, u64, tracing::Level)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RestartLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        #[derive(Default)]
        struct Fields(String, Option<String>, Option<u64>);
        impl tracing::field::Visit for Fields {
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                if field.name() == "restarts" {
                    self.2 = Some(value);
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                match field.name() {
                    "message" => self.0 = format!("{value:?}"),
                    "child" => self.1 = Some(format!("{value:?}")),
                    _ => {}
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let (true, Some(child), Some(restarts)) =
            (fields.0 == "restarting a failed child", fields.1, fields.2)
        {
            self.0
                .lock()
                .push((child, restarts, *event.metadata().level()));
        }
    }
}

#[tokio::test]
async fn a_restart_is_logged_at_warn_with_the_child_the_reason_and_the_count() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let lines = RestartLines::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(lines.clone()));
    let journal = Journal::default();
    let (node, addrs) = tree(SupervisorSpec::one_for_one(), 2, &journal).await;
    crash_and_settle(&addrs[1], &node).await;
    crash_and_settle(&addrs[1], &node).await;
    assert_eq!(
        *lines.0.lock(),
        vec![
            ("c1".to_string(), 1, tracing::Level::WARN),
            ("c1".to_string(), 2, tracing::Level::WARN)
        ]
    );
}
