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
/// the log filter when `RUST_LOG` is not set.
pub fn init_with(service: &str, default_logs: &str) -> Telemetry {
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_logs)),
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
        troupe_runtime::trace::enable();
    }
    Telemetry {
        #[cfg(feature = "otlp")]
        provider,
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
            .with_span_processor(processor)
            .with_resource(resource.build())
            .build())
    }
}
