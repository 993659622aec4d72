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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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

/// The share of new traces [`head_sample`] keeps, in millionths; `u64::MAX` until
/// [`set_head_sampling`] (every request gets its span, as `tracing` alone would).
static HEAD_RATIO: AtomicU64 = AtomicU64::new(u64::MAX);
/// Whether a request that comes with a trace context follows its sampled flag.
static HEAD_PARENT_BASED: AtomicBool = AtomicBool::new(true);
/// Requests [`head_sample`] has decided on for a new trace.
static HEAD_COUNT: AtomicU64 = AtomicU64::new(0);

/// The attribute a span made by a head-sampled request carries: OpenTracing's
/// `sampling.priority`, which asks the exporting side to keep it whatever its own sampler would
/// decide (the facade's sampler honours it on a trace's first span).
pub const SAMPLING_PRIORITY: &str = "sampling.priority";

/// Decides at the door which requests start or join a recorded trace, so a request the trace
/// sampler would drop costs no span at all: the gateway asks [`head_sample`] before it opens
/// its span. `ratio` (0 to 1) is the share of new traces kept — every `1/ratio`-th request,
/// counted across the process, so the share is exact however requests arrive; with
/// `parent_based`, a request carrying a `traceparent` follows that context's sampled flag
/// instead. The facade's `telemetry::init` sets it from `OTEL_TRACES_SAMPLER` and
/// `OTEL_TRACES_SAMPLER_ARG`, with a sampler that keeps what this keeps.
pub fn set_head_sampling(ratio: f64, parent_based: bool) {
    let millionths = (ratio.clamp(0.0, 1.0) * 1e6).round() as u64;
    HEAD_RATIO.store(millionths, Ordering::Relaxed);
    HEAD_PARENT_BASED.store(parent_based, Ordering::Relaxed);
}

/// What to do about the trace of a request entering the system; see [`head_sample`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadSample {
    /// No span: the trace is not recorded.
    Skip,
    /// A span, child of the request's context if it has one.
    Span,
    /// A span that starts a new recorded trace: mark it with [`SAMPLING_PRIORITY`] `1`.
    NewTrace,
}

/// Whether a request entering the system (with `parent`, the context it came with, if any)
/// gets a span, under the rule [`set_head_sampling`] set. Before that rule is set (no
/// exporter), every request gets one, so spans go to `tracing` as usual.
pub fn head_sample(parent: Option<&TraceParent>) -> HeadSample {
    let ratio = HEAD_RATIO.load(Ordering::Relaxed);
    if ratio == u64::MAX {
        return HeadSample::Span;
    }
    if let Some(parent) = parent
        && HEAD_PARENT_BASED.load(Ordering::Relaxed)
    {
        return if parent.flags.is_sampled() {
            HeadSample::Span
        } else {
            HeadSample::Skip
        };
    }
    let n = HEAD_COUNT.fetch_add(1, Ordering::Relaxed);
    if keeps(ratio, n) {
        HeadSample::NewTrace
    } else {
        HeadSample::Skip
    }
}

/// Whether the `n`-th request (from 0) is kept at `millionths` per million: the running count
/// of kept requests steps up exactly on those.
fn keeps(millionths: u64, n: u64) -> bool {
    let kept = |k: u64| (u128::from(k) * u128::from(millionths)) / 1_000_000;
    kept(n + 1) > kept(n)
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
    fn the_head_sampler_keeps_exactly_its_share_spread_out() {
        for (millionths, every) in [(10_000, 100), (250_000, 4), (1_000_000, 1)] {
            let kept: Vec<u64> = (0..1_000).filter(|&n| keeps(millionths, n)).collect();
            assert_eq!(kept.len() as u64, 1_000 / every, "{millionths}");
            assert!(kept.windows(2).all(|w| w[1] - w[0] == every), "{kept:?}");
        }
        assert!((0..10_000).all(|n| !keeps(0, n)));
        // a third: every third request, as the running count rounds down
        let thirds = (0..9).filter(|&n| keeps(333_334, n)).count();
        assert_eq!(thirds, 3);
    }

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
