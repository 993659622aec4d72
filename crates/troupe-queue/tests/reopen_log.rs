//! A reopened durable queue says what it holds, at the default `info` level.
//!
//! A test binary of its own: tracing caches whether a log line is wanted per call site,
//! process-wide, so a capturing subscriber must be the first to see the line.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use troupe_queue::core::{ConsumerId, QueueConfig};
use troupe_queue::storage::Storage;

/// The `queue reopened` lines' (ready, leased) fields.
#[derive(Clone, Default)]
struct Reopened(Arc<Mutex<Vec<(u64, u64)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Reopened {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        #[derive(Default)]
        struct Fields(String, u64, u64);
        impl tracing::field::Visit for Fields {
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                match field.name() {
                    "ready" => self.1 = value,
                    "leased" => self.2 = value,
                    _ => {}
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if fields.0 == "queue reopened"
            && *event.metadata().level() == tracing::Level::INFO
            && let Ok(mut seen) = self.0.lock()
        {
            seen.push((fields.1, fields.2));
        }
    }
}

#[test]
fn reopening_a_queue_logs_what_it_holds() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let seen = Reopened::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(seen.clone()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.redb");
    let now = Instant::now();
    {
        let (storage, mut queue) = Storage::open(&path, QueueConfig::default()).unwrap();
        for i in 0..3 {
            queue.enqueue(format!("item {i}").into(), now).unwrap();
        }
        queue.take(ConsumerId(1), now, None).unwrap();
        let events: Vec<_> = std::iter::from_fn(|| queue.poll_event()).collect();
        storage.commit(&events).unwrap();
    }
    let _reopened = Storage::open(&path, QueueConfig::default()).unwrap();
    // the first open found nothing; the second, three items (the lease does not survive a
    // restart: recovery makes it ready again)
    assert_eq!(*seen.0.lock().unwrap(), vec![(0, 0), (3, 0)]);
}
