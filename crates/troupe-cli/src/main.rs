//! `troupe`: the troupe command line tool.
//!
//! ```text
//! troupe ca init DIR [--cluster NAME]      make a cluster CA: DIR/ca.crt, DIR/ca.key
//! troupe ca issue DIR NODE [--out OUTDIR]  issue NODE's certificate: OUTDIR/NODE.crt, NODE.key
//! troupe ca issue DIR NAME --operator      an operator's: NAME.operator.crt, NAME.operator.key
//! troupe status [--admin ADDR] [--json]   a running process: its nodes, actors and members
//! troupe top [--admin ADDR]                its actors by messages per second, refreshed
//! troupe graph [--admin ADDR]              its topology as Graphviz DOT
//! troupe db status [--admin ADDR]          its databases' replicas: role, epoch, indexes, lag
//! troupe db promote --ca DIR --operator N  manual failover (an operator, over TLS)
//! troupe db add-replica|remove-replica N --ca DIR --operator NAME   Raft voters (an operator)
//! troupe queue stats [--admin ADDR]        its queues' counts
//! troupe queue dead-letters [--queue Q]    a queue's dead letters
//! troupe queue replay ITEM --ca DIR --operator N   a dead letter back in line (an operator)
//! troupe kill NODE/NAME --ca DIR --operator N       an actor killed as a crash would (an operator)
//! troupe placement [--admin ADDR] [--json]  its failover groups: holder, order, state; drained nodes
//! troupe move GROUP NODE|--clear --ca DIR --operator N   a failover group moved (an operator)
//! troupe drain NODE [--undo] [--leave] [--wait SECS] --ca DIR --operator N   a node emptied
//! ```
//!
//! The admin address defaults to 127.0.0.1:7090, where a one-process run serves it.
//!
//! Exit codes: 0 on success, 2 for usage and user errors (bad arguments, invalid names, a CA
//! that already exists), 1 for other failures (I/O, unreadable files, ...). Errors are printed
//! to stderr as `error: <message>`.

mod admin;
mod parts;
mod placement;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use troupe_identity::{
    CA_CERT_FILE, CA_KEY_FILE, IdentityError, init_ca, issue_node_with_roles, issue_operator,
};

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
        #[arg(long, value_name = "ADDR", default_value = DEFAULT_ADMIN)]
        admin: SocketAddr,
        /// Print the state as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// A running process's actors by messages received per second, with their mailbox
    /// depths and restarts, refreshed until interrupted.
    Top {
        /// The process's admin endpoint.
        #[arg(long, value_name = "ADDR", default_value = DEFAULT_ADMIN)]
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
        #[arg(long, value_name = "ADDR", default_value = DEFAULT_ADMIN)]
        admin: SocketAddr,
    },
    /// A running process's databases: their replicas' state, and manual failover.
    #[command(subcommand)]
    Db(DbCommand),
    /// A running process's queues: counts, dead letters, and replaying them.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Kills an actor of a running process as a crash would (its supervisor restarts it by
    /// its policy), to watch supervision work. Needs an operator certificate.
    Kill {
        /// The actor, as NODE/NAME (`troupe status` lists them).
        actor: String,
        #[command(flatten)]
        admin: AdminAddr,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Where the topology's failover groups run: each one's holder, its order (as directed
    /// now, and as declared when that differs) and its lease's state; and the drained nodes.
    Placement {
        #[command(flatten)]
        admin: AdminAddr,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Moves a failover group to one of the nodes of its order: it goes first in the order,
    /// with takeover, and is handed over in order as soon as that node is live, until the move
    /// is cleared (--clear). Needs an operator certificate.
    Move {
        /// The failover group (`troupe placement` lists them; NAME.failover for an actor placed
        /// with `failover_to`).
        group: String,
        /// The node to move it to.
        #[arg(required_unless_present = "clear")]
        node: Option<String>,
        /// Clear the group's move instead: it stays where it runs, in its declared order.
        #[arg(long, conflicts_with = "node")]
        clear: bool,
        #[command(flatten)]
        admin: AdminAddr,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Drains a node before maintenance: it leaves every failover group's order, so what runs
    /// there moves off, handed over in order; waits until nothing runs there, printing what
    /// moved. Needs an operator certificate.
    Drain {
        /// The node (a node of the topology).
        node: String,
        /// Put the node back in service instead (failover groups may run there again; none
        /// moves back by itself unless its order takes over).
        #[arg(long)]
        undo: bool,
        /// Once nothing runs there, ask the process at --admin, which must run NODE, to leave
        /// the cluster (a graceful shutdown, as Ctrl-C).
        #[arg(long, conflicts_with = "undo")]
        leave: bool,
        /// Seconds to wait for the groups to move off (and then, with --leave, for the process
        /// to stop) before giving up with an error.
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        wait: u64,
        #[command(flatten)]
        admin: AdminAddr,
        #[command(flatten)]
        operator: OperatorArgs,
    },
}

/// Where a process's admin endpoint is (what it printed as `admin http://ADDR`).
#[derive(Debug, clap::Args)]
struct AdminAddr {
    /// The process's admin endpoint (what it printed as `admin http://ADDR`).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_ADMIN)]
    admin: SocketAddr,
}

/// Who changes state: an operator certificate of the cluster's CA.
#[derive(Debug, clap::Args)]
struct OperatorArgs {
    /// Directory holding ca.crt and NAME.operator.crt/.key (`troupe ca issue DIR NAME
    /// --operator`).
    #[arg(long, value_name = "DIR")]
    ca: PathBuf,
    /// The operator's name, as in its certificate.
    #[arg(long, value_name = "NAME")]
    operator: String,
}

impl OperatorArgs {
    /// The operator these flags name, as the admin calls take it.
    fn identity(&self) -> parts::Operator<'_> {
        parts::Operator {
            ca: &self.ca,
            name: &self.operator,
        }
    }
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Every replica of every database: node, role, epoch, last and applied index, lag.
    Status {
        #[command(flatten)]
        admin: AdminAddr,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Raft mode: replica N catches up and joins the voters, while writes go on. Needs an
    /// operator certificate.
    AddReplica(MemberArgs),
    /// Raft mode: replica N leaves the voters (a leader hands over first). Needs an operator
    /// certificate.
    RemoveReplica(MemberArgs),
    /// Manual failover: the most up-to-date follower becomes leader (refused if that could
    /// lose acknowledged writes). Needs an operator certificate.
    Promote(DbChange),
}

/// What every `troupe db` command that changes a database takes.
#[derive(Debug, clap::Args)]
struct DbChange {
    #[command(flatten)]
    admin: AdminAddr,
    /// The database (needed when the topology has more than one).
    #[arg(long, value_name = "NAME")]
    db: Option<String>,
    #[command(flatten)]
    operator: OperatorArgs,
    /// Print JSON, for scripts.
    #[arg(long)]
    json: bool,
}

/// What `troupe db add-replica|remove-replica` take.
#[derive(Debug, clap::Args)]
struct MemberArgs {
    /// The replica's number, as `troupe db status` lists them.
    replica: u64,
    #[command(flatten)]
    change: DbChange,
}

#[derive(Debug, Subcommand)]
enum QueueCommand {
    /// Every queue's counts: ready, leased, dead, and what went through it.
    Stats {
        #[command(flatten)]
        admin: AdminAddr,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// A queue's dead letters, oldest first: id, attempts, why, and the payload's start.
    DeadLetters {
        #[command(flatten)]
        admin: AdminAddr,
        /// The queue (needed when the topology has more than one).
        #[arg(long, value_name = "NAME")]
        queue: Option<String>,
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Puts dead letter ITEM back at the tail of its queue, attempts reset. Needs an operator
    /// certificate.
    Replay {
        /// The dead letter's id, as `dead-letters` lists it.
        item: u64,
        #[command(flatten)]
        admin: AdminAddr,
        /// The queue (needed when the topology has more than one).
        #[arg(long, value_name = "NAME")]
        queue: Option<String>,
        #[command(flatten)]
        operator: OperatorArgs,
    },
}

/// Where a one-process run serves its admin endpoint.
const DEFAULT_ADMIN: &str = "127.0.0.1:7090";

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
    /// Issue a certificate for node NODE, signed by the CA in DIR: NODE.crt and NODE.key
    /// (with --operator, an operator's: NODE.operator.crt and NODE.operator.key).
    Issue {
        /// Directory holding the CA (ca.crt and ca.key).
        dir: PathBuf,
        /// Node name: 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'.
        node: String,
        /// Directory for the certificate and key (default: DIR). Existing files are replaced.
        #[arg(long, value_name = "OUTDIR")]
        out: Option<PathBuf>,
        /// Issue an operator certificate instead: it lets its holder change a running
        /// cluster's state through a node's admin endpoint (promote, replay), and can never
        /// pass for a node.
        #[arg(long)]
        operator: bool,
        /// A role the node plays (repeatable; a node certificate only): the node may then
        /// claim it with `--role`, and join a cluster whose topology does not declare it,
        /// to run the failover groups placed on that role.
        #[arg(long = "role", value_name = "ROLE", conflicts_with = "operator")]
        roles: Vec<String>,
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

/// `troupe db add-replica` (`add`) or `remove-replica`.
fn members(args: MemberArgs, add: bool) -> Result<(), admin::AdminError> {
    let change = &args.change;
    parts::db_members(
        change.admin.admin,
        change.db.as_deref(),
        add,
        args.replica,
        &change.operator.identity(),
        change.json,
    )
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
        Command::Db(DbCommand::Status { admin, json }) => parts::db_status(admin.admin, json)?,
        Command::Db(DbCommand::Promote(change)) => parts::db_promote(
            change.admin.admin,
            change.db.as_deref(),
            &change.operator.identity(),
            change.json,
        )?,
        Command::Db(DbCommand::AddReplica(args)) => members(args, true)?,
        Command::Db(DbCommand::RemoveReplica(args)) => members(args, false)?,
        Command::Queue(QueueCommand::Stats { admin, json }) => {
            parts::queue_stats(admin.admin, json)?
        }
        Command::Queue(QueueCommand::DeadLetters { admin, queue, json }) => {
            parts::dead_letters(admin.admin, queue.as_deref(), json)?
        }
        Command::Queue(QueueCommand::Replay {
            item,
            admin,
            queue,
            operator,
        }) => parts::replay(admin.admin, queue.as_deref(), item, &operator.identity())?,
        Command::Kill {
            actor,
            admin,
            operator,
        } => parts::kill(admin.admin, &actor, &operator.identity())?,
        Command::Placement { admin, json } => placement::placement(admin.admin, json)?,
        Command::Move {
            group,
            node,
            clear: _,
            admin,
            operator,
        } => placement::move_group(admin.admin, &group, node.as_deref(), &operator.identity())?,
        Command::Drain {
            node,
            undo,
            leave,
            wait,
            admin,
            operator,
        } => placement::drain(
            admin.admin,
            &node,
            &placement::DrainOptions {
                undo,
                leave,
                wait: Duration::from_secs(wait),
            },
            &operator.identity(),
        )?,
        Command::Ca(CaCommand::Issue {
            dir,
            node,
            out,
            operator: true,
            ..
        }) => {
            let out = out.unwrap_or_else(|| dir.clone());
            let paths = issue_operator(&dir, &node, &out)?;
            println!("issued an operator certificate for {node:?}:");
            println!("  {}", paths.cert.display());
            println!("  {}  (private, mode 0600)", paths.key.display());
            println!();
            println!(
                "keep them with a copy of {} in one directory, and change state with\n  \
                 troupe db promote --admin ADDR --ca <that directory> --operator {node}",
                dir.join(CA_CERT_FILE).display()
            );
        }
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
        Command::Ca(CaCommand::Issue {
            dir,
            node,
            out,
            operator: false,
            roles,
        }) => {
            let out = out.unwrap_or_else(|| dir.clone());
            let paths = issue_node_with_roles(&dir, &node, &roles, &out)?;
            let ca_cert = dir.join(CA_CERT_FILE);
            println!("issued a certificate for node {node:?}:");
            println!("  {}", paths.cert.display());
            println!("  {}  (private, mode 0600)", paths.key.display());
            println!();
            println!("copy these files into one directory on {node}'s host:");
            println!("  {}", ca_cert.display());
            println!("  {}", paths.cert.display());
            println!("  {}", paths.key.display());
            let role_flags: String = roles.iter().map(|r| format!(" --role {r}")).collect();
            println!(
                "and start the node with --node {node}{role_flags} --ca <that directory>.\n\
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
            | IdentityError::InvalidRole { .. }
            | IdentityError::InvalidClusterName { .. }
            | IdentityError::AlreadyExists { .. },
        ) => USAGE,
        CliError::Admin(admin::AdminError::NotItsProcess { .. }) => USAGE,
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
