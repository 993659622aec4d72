//! The trace context a message carries: the W3C trace context of the span it was sent from,
//! so the span its receiver handles it in, on this node or another, joins the same trace.
//!
//! A send takes the context of the sender's current `tracing` span as OpenTelemetry sees it
//! (through `tracing-opentelemetry`'s layer, which a program installs to export traces; the
//! facade's `telemetry::init` does, and calls [`enable`]). Until [`enable`] is called, or
//! outside any span, there is no context: nothing is carried, no span is opened on the
//! receiving side, and a send costs one relaxed load of a flag. A message that carries a context is handled inside a span
//! `troupe.handle` (fields `node` and `actor`) whose parent it is; between nodes the context
//! rides in the envelope as a `traceparent` header value.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Whether sends look for a trace context at all: off until [`enable`].
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Makes every send from now on carry the trace context of its current span. Call it once the
/// process's subscriber has a `tracing-opentelemetry` layer (the facade's `telemetry::init`
/// does); before, sends skip the look-up, which without that layer finds nothing anyway.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether [`enable`] was called.
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A span's identity in a trace, as the W3C `traceparent` header carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: TraceId,
    span_id: SpanId,
    flags: TraceFlags,
}

impl TraceParent {
    /// The context of the current `tracing` span, if tracing is [enabled](enable) and the
    /// span belongs to a sampled trace (the OpenTelemetry layer records it).
    pub fn current() -> Option<Self> {
        if !is_enabled() {
            return None;
        }
        let span = tracing::Span::current();
        if span.is_none() {
            return None;
        }
        Self::of(&span.context())
    }

    /// The span context of `cx`, if it has a valid one that is sampled: a trace the sampler
    /// dropped is not carried on, so the messages of a request that is not recorded cost no
    /// span at all downstream.
    fn of(cx: &Context) -> Option<Self> {
        let span = cx.span();
        let sc = span.span_context();
        (sc.is_valid() && sc.is_sampled()).then(|| Self {
            trace_id: sc.trace_id(),
            span_id: sc.span_id(),
            flags: sc.trace_flags(),
        })
    }

    /// Parses a `traceparent` header value (version `00`: `00-TRACE-SPAN-FLAGS`); `None` if it
    /// is not one or names the invalid all-zero trace or span.
    pub fn parse(header: &str) -> Option<Self> {
        let mut fields = header.trim().split('-');
        let (version, trace, span, flags) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        if version != "00"
            || fields.next().is_some()
            || trace.len() != 32
            || span.len() != 16
            || flags.len() != 2
        {
            return None;
        }
        let parsed = Self {
            trace_id: TraceId::from_hex(trace).ok()?,
            span_id: SpanId::from_hex(span).ok()?,
            flags: TraceFlags::new(
                u8::from_str_radix(flags, 16).ok()? & TraceFlags::SAMPLED.to_u8(),
            ),
        };
        (parsed.trace_id != TraceId::INVALID && parsed.span_id != SpanId::INVALID).then_some(parsed)
    }

    /// The trace's id as 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        self.trace_id.to_string()
    }

    /// Makes this the remote parent of `span`, which must not have been entered yet. Without
    /// an OpenTelemetry layer it does nothing.
    pub fn adopt(&self, span: &tracing::Span) {
        let sc = SpanContext::new(
            self.trace_id,
            self.span_id,
            self.flags,
            true,
            TraceState::default(),
        );
        // refused only without the layer, or for a disabled or started span: then the
        // span has no trace to join
        let _ = span.set_parent(Context::new().with_remote_span_context(sc));
    }

    /// A span to handle a message in, for actor `actor` on node `node`, child of this context.
    pub(crate) fn handling_span(&self, node: &str, actor: &str) -> tracing::Span {
        let span = tracing::info_span!("troupe.handle", node = %node, actor = %actor);
        self.adopt(&span);
        span
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.span_id,
            self.flags.to_u8()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips_and_nonsense_is_none() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = TraceParent::parse(header).expect("a traceparent");
        assert_eq!(parsed.to_string(), header);
        assert_eq!(parsed.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn outside_a_span_there_is_no_context() {
        assert_eq!(TraceParent::current(), None);
    }
}
