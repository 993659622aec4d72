//! The process-wide Prometheus recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::AdminError;

static RECORDER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// The handle of the process's Prometheus recorder, installing it as the global `metrics`
/// recorder on the first call; later calls return the same handle.
///
/// Metrics recorded before the first call are not seen (the `metrics` facade drops them while
/// no recorder is installed), so a program calls this before it starts its topology, as the
/// launcher does.
///
/// # Errors
/// [`AdminError::Recorder`] if another recorder was installed first (by this call's first
/// attempt too: the error is kept).
pub fn prometheus() -> Result<PrometheusHandle, AdminError> {
    RECORDER
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .map_err(|err| err.to_string())
        })
        .clone()
        .map_err(AdminError::Recorder)
}
