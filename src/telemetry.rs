//! Logs and traces for a troupe program, set up with one call: [`init`].
//!
//! Log lines go to standard error, filtered by `RUST_LOG` (default `warn`). With the `otlp`
//! feature and `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set,
//! spans are also exported over OTLP/HTTP to that collector (Jaeger, Tempo, the OpenTelemetry
//! Collector), in batches, as the OpenTelemetry environment variables say
//! (`OTEL_EXPORTER_OTLP_PROTOCOL` `http/protobuf` (default) or `http/json`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_SCHEDULE_DELAY`, ...). Then the
//! runtime carries each span's W3C trace context in every message it sends, on this node and
//! to others, and handles a message that carries one in a `troupe.handle` span of the same
//! trace: one request through the gateway is one trace across every node it touches.
//!
//! Which spans are exported: those at `INFO` and above, from every crate but the network
//! stack's own and ractor's (whose span per actor lives as long as the actor, and would make
//! every message its actor sends part of one endless trace); `OTEL_TRACES_FILTER` replaces
//! that rule, in `RUST_LOG`'s syntax.
//!
//! Which traces are recorded: as `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` say
//! (default `parentbased_always_on`: every one). The gateway decides at the door, before it
//! opens a request's span (`troupe_runtime::trace::head_sample`): a request whose trace is not
//! recorded makes no span anywhere, which is what keeps a 1% sampler's cost near nothing. A new
//! trace is kept for every `1/ratio`-th request rather than by its trace id, and the SDK's
//! sampler keeps the spans the gateway marks so (`sampling.priority`); every other span is
//! sampled by the SDK as the variables say.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The spans exported unless `OTEL_TRACES_FILTER` says otherwise.
#[cfg(feature = "otlp")]
const DEFAULT_TRACES_FILTER: &str = "info,ractor=off,quinn=off,quinn_proto=off,quinn_udp=off,\
     h2=off,hyper=off,hyper_util=off,rustls=off";

/// What [`init`] set up; [`shutdown`](Self::shutdown) it before the program exits so the last
/// spans are sent.
#[must_use = "shut it down before exiting, or the last spans are lost"]
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("exporting", &self.is_exporting())
            .finish()
    }
}

impl Telemetry {
    /// Whether spans are exported over OTLP.
    pub fn is_exporting(&self) -> bool {
        #[cfg(feature = "otlp")]
        return self.provider.is_some();
        #[cfg(not(feature = "otlp"))]
        false
    }

    /// Sends the spans not yet sent (waiting up to the exporter's timeout) and stops
    /// exporting.
    ///
    /// # Cancel safety
    /// Dropping the future stops waiting; the flush goes on on a blocking thread.
    pub async fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider {
            // the SDK blocks the calling thread until its batch task has exported
            let flushed = tokio::task::spawn_blocking(move || {
                let _ = provider.force_flush();
                provider.shutdown()
            })
            .await;
            if let Ok(Err(err)) = flushed {
                tracing::warn!(cause = %err, "the last spans may not have been exported");
            }
        }
    }
}

/// Installs the process's `tracing` subscriber: log lines to standard error (`RUST_LOG`,
/// default `warn`), and OTLP export of spans for `service` (unless `OTEL_SERVICE_NAME` names
/// it) where the environment asks for it (see the [module docs](self)).
///
/// Call it once, early, inside the tokio runtime (the exporter runs on it). A process that
/// already has a subscriber keeps it: this one is then not installed, and a warning says so.
pub fn init(service: &str) -> Telemetry {
    init_with(service, "warn")
}

/// As [`init`], with `default_logs` (in `RUST_LOG`'s syntax, such as `warn,troupe_db=info`) as
/// the log filter when `RUST_LOG` is not set. openraft's own lines are off unless the filter
/// names `openraft`: it logs a peer that is down or a vote that moved on at `WARN` and `ERROR`
/// many times a second, while the database logs its elections, hand-overs and storage faults
/// itself.
pub fn init_with(service: &str, default_logs: &str) -> Telemetry {
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(with_quiet_engines(default_logs))),
        );
    let wants_export = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|var| std::env::var_os(var).is_some_and(|v| !v.is_empty()));
    #[cfg(feature = "otlp")]
    let (provider, export_error) = match wants_export.then(|| otlp::provider(service)) {
        Some(Ok(provider)) => (Some(provider), None),
        Some(Err(err)) => (None, Some(err)),
        None => (None, None),
    };
    #[cfg(feature = "otlp")]
    let traces = provider.as_ref().map(otlp::layer);
    #[cfg(not(feature = "otlp"))]
    let traces: Option<tracing_subscriber::layer::Identity> = None;
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init();
    if let Err(err) = &installed {
        tracing::warn!(cause = %err, "a tracing subscriber was installed before; keeping it, and exporting no spans");
    }
    #[cfg(feature = "otlp")]
    if let Some(err) = export_error {
        tracing::warn!(cause = %err, "cannot export traces over OTLP; logging only");
    }
    if wants_export && cfg!(not(feature = "otlp")) {
        tracing::warn!(
            %service,
            "OTEL_EXPORTER_OTLP_ENDPOINT is set, but troupe was built without its `otlp` feature: no spans are exported"
        );
    }
    #[cfg(feature = "otlp")]
    let provider = provider.filter(|_| installed.is_ok());
    #[cfg(feature = "otlp")]
    if provider.is_some() {
        let sampling = otlp::Sampling::from_env();
        troupe_runtime::trace::set_head_sampling(sampling.ratio, sampling.parent_based);
        troupe_runtime::trace::enable();
    }
    Telemetry {
        #[cfg(feature = "otlp")]
        provider,
    }
}

/// `filter`, with openraft's lines off unless it names them.
fn with_quiet_engines(filter: &str) -> String {
    if filter.contains("openraft") {
        filter.to_string()
    } else {
        format!("{filter},openraft=off")
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use tracing_subscriber::registry::LookupSpan;
    use tracing_subscriber::{EnvFilter, Layer};

    use super::DEFAULT_TRACES_FILTER;

    /// The layer that hands `provider` the spans `OTEL_TRACES_FILTER` (or the default rule)
    /// lets through.
    pub(super) fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        let filter = std::env::var("OTEL_TRACES_FILTER")
            .ok()
            .and_then(|f| EnvFilter::try_new(f).ok())
            .unwrap_or_else(|| EnvFilter::new(DEFAULT_TRACES_FILTER));
        // no per-span thread, target, source location or busy/idle timing attributes, and no
        // OpenTelemetry context made current on every poll of a span (the runtime reads a
        // span's context where it needs it): each cost every span an allocation, a clock read
        // or a context switch per enter, and the request path makes three spans per request
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("troupe"))
            .with_tracked_inactivity(false)
            .with_context_activation(false)
            .with_threads(false)
            .with_target(false)
            .with_location(false)
            .with_filter(filter)
    }
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::runtime::Tokio;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
    use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};

    /// The trace sampler `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` name.
    #[derive(Clone, Copy, Debug, PartialEq)]
    pub(super) struct Sampling {
        /// The share of new traces kept, 0 to 1.
        pub(super) ratio: f64,
        /// Whether a span with a parent follows the parent's decision.
        pub(super) parent_based: bool,
    }

    impl Sampling {
        pub(super) fn from_env() -> Self {
            let name = std::env::var("OTEL_TRACES_SAMPLER").ok();
            let arg = std::env::var("OTEL_TRACES_SAMPLER_ARG").ok();
            Self::named(name.as_deref(), arg.as_deref())
        }

        /// As the OpenTelemetry specification reads the two variables: an unknown sampler is
        /// `parentbased_always_on`, a missing or out-of-range ratio is 1.
        pub(super) fn named(name: Option<&str>, arg: Option<&str>) -> Self {
            let ratio = || {
                arg.and_then(|a| a.trim().parse::<f64>().ok())
                    .filter(|r| (0.0..=1.0).contains(r))
                    .unwrap_or(1.0)
            };
            let (ratio, parent_based) = match name.map(str::trim) {
                Some("always_on") => (1.0, false),
                Some("always_off") => (0.0, false),
                Some("traceidratio") => (ratio(), false),
                Some("parentbased_always_off") => (0.0, true),
                Some("parentbased_traceidratio") => (ratio(), true),
                Some("parentbased_always_on") | None => (1.0, true),
                Some(other) => {
                    tracing::warn!(
                        sampler = other,
                        "unknown OTEL_TRACES_SAMPLER; recording every trace (parentbased_always_on)"
                    );
                    (1.0, true)
                }
            };
            Self {
                ratio,
                parent_based,
            }
        }

        /// The SDK's sampler for the same rule.
        pub(super) fn sampler(self) -> Sampler {
            let root = Sampler::TraceIdRatioBased(self.ratio);
            if self.parent_based {
                Sampler::ParentBased(Box::new(root))
            } else {
                root
            }
        }
    }

    /// The SDK's sampler, but a trace's first span marked `sampling.priority` above 0 (the
    /// gateway's, when its head sampler kept the request) is kept.
    #[derive(Clone, Debug)]
    pub(super) struct HeadSampled(pub(super) Sampler);

    impl ShouldSample for HeadSampled {
        fn should_sample(
            &self,
            parent_context: Option<&opentelemetry::Context>,
            trace_id: opentelemetry::trace::TraceId,
            name: &str,
            span_kind: &opentelemetry::trace::SpanKind,
            attributes: &[opentelemetry::KeyValue],
            links: &[opentelemetry::trace::Link],
        ) -> SamplingResult {
            use opentelemetry::trace::TraceContextExt;
            let has_parent = parent_context.is_some_and(|cx| cx.span().span_context().is_valid());
            let marked = || {
                attributes.iter().any(|kv| {
                    kv.key.as_str() == troupe_runtime::trace::SAMPLING_PRIORITY
                        && matches!(kv.value, opentelemetry::Value::I64(p) if p > 0)
                })
            };
            if !has_parent && marked() {
                return SamplingResult {
                    decision: SamplingDecision::RecordAndSample,
                    attributes: Vec::new(),
                    trace_state: Default::default(),
                };
            }
            self.0
                .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
        }
    }

    /// A tracer provider exporting in batches over OTLP/HTTP, configured by the environment.
    pub(super) fn provider(
        service: &str,
    ) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
        let protocol = match std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
            Ok("http/json") => Protocol::HttpJson,
            _ => Protocol::HttpBinary,
        };
        // the endpoint comes from the environment, as the OTLP specification spells it
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .build()?;
        // the SDK's own batch processor runs its export on a thread of its own, where the
        // hyper client finds no tokio runtime: this one runs on the program's
        let processor = BatchSpanProcessor::builder(exporter, Tokio).build();
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(service.to_string());
        }
        Ok(SdkTracerProvider::builder()
            .with_sampler(HeadSampled(Sampling::from_env().sampler()))
            .with_span_processor(processor)
            .with_resource(resource.build())
            .build())
    }
}

#[cfg(all(test, feature = "otlp"))]
mod tests {
    use opentelemetry::trace::{SpanKind, TraceId};
    use opentelemetry::{Context, KeyValue};
    use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample};

    use super::otlp::{HeadSampled, Sampling};

    #[test]
    fn the_sampler_variables_read_as_the_specification_says() {
        let s = |name, arg| Sampling::named(name, arg);
        let rule = |ratio, parent_based| Sampling {
            ratio,
            parent_based,
        };
        assert_eq!(s(None, None), rule(1.0, true));
        assert_eq!(s(Some("always_off"), None), rule(0.0, false));
        assert_eq!(s(Some("traceidratio"), Some("0.25")), rule(0.25, false));
        assert_eq!(
            s(Some("parentbased_traceidratio"), Some("0.01")),
            rule(0.01, true)
        );
        assert_eq!(
            s(Some("parentbased_traceidratio"), Some("7")),
            rule(1.0, true)
        );
        assert_eq!(s(Some("parentbased_always_off"), None), rule(0.0, true));
        assert_eq!(s(Some("jaeger_remote"), None), rule(1.0, true));
    }

    #[test]
    fn a_first_span_the_gateway_kept_is_kept_whatever_the_ratio() {
        let never = HeadSampled(Sampling::named(Some("parentbased_always_off"), None).sampler());
        let decide = |attributes: &[KeyValue]| {
            never
                .should_sample(
                    Some(&Context::new()),
                    TraceId::from(7u128),
                    "http.request",
                    &SpanKind::Internal,
                    attributes,
                    &[],
                )
                .decision
        };
        assert_eq!(decide(&[]), SamplingDecision::Drop);
        assert_eq!(
            decide(&[KeyValue::new("sampling.priority", 1i64)]),
            SamplingDecision::RecordAndSample
        );
        assert_eq!(
            decide(&[KeyValue::new("sampling.priority", 0i64)]),
            SamplingDecision::Drop
        );
    }
}
