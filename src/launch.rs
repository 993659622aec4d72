//! [`launch`]: run a topology until Ctrl-C/SIGTERM, or until it fails.

use std::future::Future;
use std::time::Duration;

use crate::topology::{LaunchError, Topology};

/// Flags every troupe program accepts; examples flatten them into their own with
/// `#[command(flatten)]`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct LaunchArgs {
    /// Run only these nodes of the topology in this process (repeatable; default: all).
    #[arg(long = "node", value_name = "NAME")]
    pub nodes: Vec<String>,

    /// Seconds each node gets to stop its actors gracefully on shutdown before the rest are
    /// killed.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub shutdown_timeout: u64,
}

/// Starts `topology` and runs it until Ctrl-C or SIGTERM, then shuts it down gracefully:
/// nodes in reverse start order, each stopping its actors in reverse start order within the
/// shutdown timeout.
///
/// # Errors
/// As [`Topology::start`]; [`LaunchError::NodeFailed`] if a node's root supervisor gives up
/// (restart intensity exceeded at the top of its tree) — the other nodes are shut down first,
/// so the process never keeps running half dead.
pub async fn launch(topology: Topology, args: LaunchArgs) -> Result<(), LaunchError> {
    let signal = shutdown_signal()?;
    launch_until(topology, args, signal).await
}

/// As [`launch`], but shuts down when `stop` completes instead of on a signal.
///
/// # Errors
/// As [`launch`].
pub async fn launch_until(
    mut topology: Topology,
    args: LaunchArgs,
    stop: impl Future<Output = ()>,
) -> Result<(), LaunchError> {
    let declared: Vec<String> = topology
        .node_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    for wanted in &args.nodes {
        if !declared.contains(wanted) {
            return Err(LaunchError::UnknownNode(wanted.clone(), declared));
        }
    }
    if args.shutdown_timeout > 0 {
        topology.set_shutdown_timeout(Duration::from_secs(args.shutdown_timeout));
    }
    let only = (!args.nodes.is_empty()).then_some(args.nodes.as_slice());
    let running = topology.start_nodes(only).await?;
    for node in running.nodes() {
        tracing::info!(node = %node.name(), actors = node.names().len(), "node started");
    }
    let outcome = tokio::select! {
        failed = running.wait() => failed,
        () = stop => Ok(()),
    };
    if let Err(err) = &outcome {
        tracing::error!(cause = %err, "a node failed; shutting the rest down");
    } else {
        tracing::info!("shutting down");
    }
    running.shutdown().await;
    outcome
}

/// Completes on Ctrl-C or (on Unix) SIGTERM.
fn shutdown_signal() -> Result<impl Future<Output = ()>, LaunchError> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| LaunchError::Signals(e.to_string()))?;
    Ok(async move {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    })
}
