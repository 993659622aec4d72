//! `troupe`: the troupe command line tool.
//!
//! ```text
//! troupe ca init DIR [--cluster NAME]      make a cluster CA: DIR/ca.crt, DIR/ca.key
//! troupe ca issue DIR NODE [--out OUTDIR]  issue NODE's certificate: OUTDIR/NODE.crt, NODE.key
//! troupe status [--admin ADDR] [--json]   a running process: its nodes, actors and members
//! troupe top [--admin ADDR]                its actors by messages per second, refreshed
//! troupe graph [--admin ADDR]              its topology as Graphviz DOT
//! ```
//!
//! Exit codes: 0 on success, 2 for usage and user errors (bad arguments, invalid names, a CA
//! that already exists), 1 for other failures (I/O, unreadable files, ...). Errors are printed
//! to stderr as `error: <message>`.

mod admin;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use troupe_identity::{CA_CERT_FILE, CA_KEY_FILE, IdentityError, init_ca, issue_node};

/// troupe: an actor framework for distributed systems.
#[derive(Debug, Parser)]
#[command(name = "troupe", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Cluster certificate authority: make one, issue node certificates.
    #[command(subcommand)]
    Ca(CaCommand),
    /// A running process, from its admin endpoint: its nodes, their actors and the members
    /// each sees.
    Status {
        /// The process's admin endpoint (what it printed as `admin http://ADDR`).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
        admin: SocketAddr,
        /// Print the state as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// A running process's actors by messages received per second, with their mailbox
    /// depths and restarts, refreshed until interrupted.
    Top {
        /// The process's admin endpoint.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
        admin: SocketAddr,
        /// Milliseconds between screens (at least 100).
        #[arg(long, value_name = "MS", default_value_t = 1000)]
        interval_ms: u64,
        /// Screens to show before exiting (0: until interrupted).
        #[arg(long, value_name = "N", default_value_t = 0)]
        count: u64,
    },
    /// A running process's topology as Graphviz DOT: its nodes, their actors, and the members
    /// each sees (`troupe graph | dot -Tsvg > topology.svg`).
    Graph {
        /// The process's admin endpoint.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
        admin: SocketAddr,
    },
}

/// What a command can fail with.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Create a cluster CA in DIR: ca.crt (copy to every host) and ca.key (keep it here).
    Init {
        /// Directory for the CA files (created if missing; existing CA files are never
        /// overwritten).
        dir: PathBuf,
        /// Cluster name, recorded in the CA certificate's common name.
        #[arg(long, default_value = "troupe")]
        cluster: String,
    },
    /// Issue a certificate for node NODE, signed by the CA in DIR: NODE.crt and NODE.key.
    Issue {
        /// Directory holding the CA (ca.crt and ca.key).
        dir: PathBuf,
        /// Node name: 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'.
        node: String,
        /// Directory for NODE.crt and NODE.key (default: DIR). Existing files are replaced.
        #[arg(long, value_name = "OUTDIR")]
        out: Option<PathBuf>,
    },
}

/// Exit code for usage and user errors.
const USAGE: u8 = 2;
/// Exit code for other failures.
const FAILURE: u8 = 1;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go to stdout with exit code 0; usage errors are printed by clap
        // (`error: ...` plus a usage hint) with exit code 2.
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Status { admin, json } => admin::status(admin, json)?,
        Command::Top {
            admin,
            interval_ms,
            count,
        } => admin::top(admin, Duration::from_millis(interval_ms.max(100)), count)?,
        Command::Graph { admin } => admin::graph(admin)?,
        Command::Ca(CaCommand::Init { dir, cluster }) => {
            let paths = init_ca(&dir, &cluster)?;
            println!("created cluster CA for cluster {cluster:?}:");
            println!(
                "  {}  CA certificate: copy it to every host",
                paths.cert.display()
            );
            println!(
                "  {}  CA private key: keep it here, never copy it",
                paths.key.display()
            );
            println!();
            println!("next: issue a certificate for each node:");
            println!("  troupe ca issue {} NODE", dir.display());
        }
        Command::Ca(CaCommand::Issue { dir, node, out }) => {
            let out = out.unwrap_or_else(|| dir.clone());
            let paths = issue_node(&dir, &node, &out)?;
            let ca_cert = dir.join(CA_CERT_FILE);
            println!("issued a certificate for node {node:?}:");
            println!("  {}", paths.cert.display());
            println!("  {}  (private, mode 0600)", paths.key.display());
            println!();
            println!("copy these files into one directory on {node}'s host:");
            println!("  {}", ca_cert.display());
            println!("  {}", paths.cert.display());
            println!("  {}", paths.key.display());
            println!(
                "and start the node with --node {node} --ca <that directory>.\n\
                 {} must stay in {}; never copy it to a node's host.",
                CA_KEY_FILE,
                dir.display()
            );
        }
    }
    Ok(())
}

/// 2 for errors the user can fix by changing the command line, 1 for everything else.
fn exit_code(e: &CliError) -> u8 {
    match e {
        CliError::Identity(
            IdentityError::InvalidNodeName { .. }
            | IdentityError::InvalidClusterName { .. }
            | IdentityError::AlreadyExists { .. },
        ) => USAGE,
        _ => FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
