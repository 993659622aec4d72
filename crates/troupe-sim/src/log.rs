//! Log lines at simulated time, to follow a failing seed.

use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// Formats a log line's time as the simulation's elapsed time (zero outside a simulation)
#[derive(Clone, Copy, Debug, Default)]
pub struct SimTime;

impl FormatTime for SimTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        write!(w, "{:?}", turmoil::sim_elapsed().unwrap_or_default())
    }
}

/// A layer printing the log lines the `TROUPE_SIM_LOG` filter (e.g. `troupe_runtime=debug`)
/// selects, each at its simulated time; `None` when the variable is unset, so a passing run
/// prints nothing.
pub fn env_layer<S>() -> Option<impl Layer<S>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let filter = std::env::var("TROUPE_SIM_LOG").ok()?;
    Some(
        tracing_subscriber::fmt::layer()
            .with_timer(SimTime)
            .with_filter(tracing_subscriber::EnvFilter::new(filter)),
    )
}

/// Prints `TROUPE_SIM_LOG`'s log lines at simulated time on this thread (where every simulated
/// host runs) until the guard is dropped; does nothing when the variable is unset.
pub fn from_env() -> tracing::subscriber::DefaultGuard {
    use tracing_subscriber::layer::SubscriberExt as _;
    tracing::subscriber::set_default(tracing_subscriber::registry().with(env_layer()))
}
