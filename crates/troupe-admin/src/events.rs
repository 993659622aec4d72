//! `/events`: the live view's feed, as server-sent events. Every half second an `event: state`
//! carries what `/state` answers; every two seconds an `event: parts` carries what `/db` and
//! `/queue` answer, as `{"dbs": [...], "queues": [...]}`.
//!
//! Each stream is bounded: it ends when the endpoint drains, when its client has not taken an
//! event for [`STALL`], and after [`LIFETIME`] in any case (a browser's `EventSource`
//! reconnects by itself, after the `retry` the stream opens with), so a forgotten tab holds
//! one connection of the endpoint's limit, never more, and never forever.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::Response;
use hyper::body::{Body, Frame};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use troupe_runtime::listener::Drain;

use crate::ProcessState;
use crate::server::View;

/// How often the process's state is sent.
const STATE_EVERY: Duration = Duration::from_millis(500);
/// The databases and queues are asked every this many state events (each answer can take a
/// call to every replica).
const PARTS_EVERY: u64 = 4;
/// The longest a stream waits for its client to take the next event.
const STALL: Duration = Duration::from_secs(10);
/// How long one stream lasts before the client is made to reconnect.
const LIFETIME: Duration = Duration::from_secs(600);
/// What the stream opens with: the client's reconnection delay, in milliseconds.
const OPENING: &str = "retry: 1000\n\n";

/// The body of an `/events` answer: the events its feeding task sends, until that task ends.
#[derive(Debug)]
pub(crate) struct EventStream {
    events: mpsc::Receiver<Bytes>,
}

impl Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.events
            .poll_recv(cx)
            .map(|event| event.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// Answers `/events`: starts the task that feeds the stream, which stops when the answer is
/// dropped (the client went away), the endpoint drains, or the stream's time is up.
pub(crate) fn respond(view: Arc<View>, drain: Drain) -> Response<EventStream> {
    // one event waits at most: a slow client is not queued for
    let (tx, events) = mpsc::channel(1);
    tokio::spawn(feed(view, tx, drain));
    let mut response = Response::new(EventStream { events });
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn feed(view: Arc<View>, tx: mpsc::Sender<Bytes>, mut drain: Drain) {
    if tx
        .send(Bytes::from_static(OPENING.as_bytes()))
        .await
        .is_err()
    {
        return;
    }
    let ends = tokio::time::Instant::now() + LIFETIME;
    let mut ticks = tokio::time::interval(STATE_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for sent in 0u64.. {
        tokio::select! {
            _ = ticks.tick() => {}
            () = drain.wait() => return,
            () = tokio::time::sleep_until(ends) => return,
        }
        let mut event = String::new();
        let state = ProcessState::of(&view.mesh, view.readiness.is_ready());
        push_event(&mut event, "state", &state);
        if sent % PARTS_EVERY == 0 {
            let parts = Parts {
                dbs: view.db_statuses().await,
                queues: view.queue_stats().await,
            };
            push_event(&mut event, "parts", &parts);
        }
        match tokio::time::timeout(STALL, tx.send(Bytes::from(event))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                tracing::debug!("an /events client took no event for 10 s; ending its stream");
                return;
            }
        }
    }
}

/// The `parts` event's data.
#[derive(serde::Serialize)]
struct Parts {
    dbs: Vec<crate::DbState>,
    queues: Vec<crate::QueueState>,
}

/// Appends one event named `name` whose data is `value` as JSON (one line: JSON text has no
/// raw line breaks).
fn push_event(out: &mut String, name: &str, value: &impl serde::Serialize) {
    match serde_json::to_string(value) {
        Ok(data) => {
            out.push_str("event: ");
            out.push_str(name);
            out.push_str("\ndata: ");
            out.push_str(&data);
            out.push_str("\n\n");
        }
        Err(err) => tracing::warn!(event = name, cause = %err, "cannot encode an /events event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_its_name_then_one_line_of_json() {
        let mut out = String::new();
        push_event(
            &mut out,
            "parts",
            &serde_json::json!({"dbs": ["a\nb"], "queues": []}),
        );
        assert_eq!(
            out,
            "event: parts\ndata: {\"dbs\":[\"a\\nb\"],\"queues\":[]}\n\n"
        );
    }
}
