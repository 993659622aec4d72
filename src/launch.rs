//! [`launch`]: run a topology — every node in this process, or one node of it on this host —
//! until Ctrl-C/SIGTERM or an operator's `POST /leave` to its admin endpoint, or until it
//! fails.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use troupe_runtime::remote::{NetConfig, NodeNet};

use crate::topology::{LaunchError, Topology};

/// Flags every troupe program accepts: parse them on their own with [`LaunchArgs::parse`], or
/// flatten them into a program's own flags with `#[command(flatten)]`.
///
/// With no flags every node of the topology runs in this process and messages between them
/// are handed over in memory. `--quic` keeps one process but routes them through QUIC on
/// loopback. `--node NAME --listen ADDR --seed ADDR --ca DIR` runs one node of the topology on
/// this host and joins the others over QUIC with mutual TLS.
#[derive(Clone, Debug, clap::Parser)]
#[command(about = "Runs a troupe topology: every node here, or one node of it per host")]
pub struct LaunchArgs {
    /// Run only this node of the topology here, on the network (needs --ca, or --dev-ca).
    /// Repeatable: several nodes share this process, each with its own endpoint.
    #[arg(long = "node", value_name = "NAME")]
    pub nodes: Vec<String>,

    /// Join as a node the topology does not declare, playing this role (repeatable; with one
    /// --node): it runs the failover groups placed on the role (`Topology::failover_role`)
    /// when the cluster places them there. Its certificate must carry the role (`troupe ca
    /// issue CA NODE --role ROLE`); peers check it.
    #[arg(long = "role", value_name = "ROLE")]
    pub roles: Vec<String>,

    /// UDP address to listen on (port 0 picks one; the node prints `listening <addr>`). With
    /// several `--node`, the first listens here and the others on the same IP, port 0.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Address of a cluster member to join through (repeatable).
    #[arg(long = "seed", value_name = "ADDR")]
    pub seeds: Vec<SocketAddr>,

    /// Directory with `ca.crt`, `NODE.crt` and `NODE.key` (from `troupe ca issue`).
    #[arg(long, value_name = "DIR")]
    pub ca: Option<PathBuf>,

    /// Dev mode, one process only: mint an in-memory CA instead of reading --ca.
    #[arg(long)]
    pub dev_ca: bool,

    /// Messages between the nodes of this process cross QUIC on loopback instead of memory:
    /// with no --node, every node of the topology (with an in-memory dev CA); with several
    /// --node, those nodes (with their own identities). A link cut between two nodes of one
    /// process (`troupe::faults`) only holds this way.
    #[arg(long)]
    pub quic: bool,

    /// The cluster's name (default: the topology's); peers of another cluster are refused.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,

    /// Address peers should dial to reach this node (default: the listen address).
    #[arg(long, value_name = "ADDR")]
    pub advertise: Option<SocketAddr>,

    /// A killed peer is reported down within about this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub peer_down_ms: u64,

    /// After remote traffic, keep one thread spinning this many microseconds so the CPUs do
    /// not fall asleep between messages: lower call latency on machines whose idle CPUs sleep
    /// deeply (virtual machines), for one busy CPU while traffic flows. 0: off.
    #[arg(long, value_name = "US", default_value_t = 0)]
    pub spin_after_traffic_us: u64,

    /// Seconds each node gets to stop its actors gracefully on shutdown before the rest are
    /// killed.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub shutdown_timeout: u64,

    /// Serve the admin endpoint here: /metrics (Prometheus), /health, /ready, /state, /db,
    /// /queue, /placement; with --ca, operators change state over TLS on the same port (and
    /// may ask the process to leave the cluster: POST /leave).
    /// Default: 127.0.0.1:7090 when every node runs in this process (a free port if that one
    /// is taken), none with --node. The address is printed as `admin http://ADDR`.
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,

    /// Serve no admin endpoint, not even the one-process default.
    #[arg(long, conflicts_with = "admin")]
    pub no_admin: bool,
}

impl Default for LaunchArgs {
    /// The flags of a command line with none given (every node in this process, defaults
    /// for the rest), not the program's actual command line: see [`LaunchArgs::parse`].
    fn default() -> Self {
        <Self as clap::Parser>::parse_from(["troupe"])
    }
}

impl LaunchArgs {
    /// The flags from this process's command line; prints help or the error and exits on
    /// `--help` or bad flags, as clap does.
    pub fn parse() -> Self {
        <Self as clap::Parser>::parse()
    }

    /// The flags from `args` (the first item is the program's name).
    ///
    /// # Errors
    /// clap's error for unknown or malformed flags (its `Display` is the usage message).
    pub fn try_parse_from<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        <Self as clap::Parser>::try_parse_from(args)
    }
}

/// Starts `topology` and runs it until Ctrl-C or SIGTERM, then shuts it down gracefully:
/// nodes in reverse start order, each stopping its actors in reverse start order within the
/// shutdown timeout, and leaving the cluster so peers see it go at once.
///
/// An operator can ask for the same shutdown through the admin endpoint (`POST /leave`, over
/// TLS with an operator certificate; `troupe drain NODE --leave` drains the node first): the
/// endpoint answers `202` and the launch then ends as on Ctrl-C, with `Ok(())`.
///
/// When it runs nodes on the network (`--node`), it writes `listening <addr> node <name>` as a
/// line to standard output once each node's endpoint is bound (in `--node` order), for
/// scripts and tests to read.
///
/// # Errors
/// As [`Topology::start`]; [`LaunchError::NodeFailed`] if a node's root supervisor gives up
/// (restart intensity exceeded at the top of its tree) — the other nodes are shut down first,
/// so the process never keeps running half dead; `Identity`, `Network` or `Flags` when the
/// network flags cannot be honoured.
///
/// # Cancel safety
/// Not cancel safe, as [`launch_until`]; in addition the signal handlers it installs stay
/// installed for the life of the process (see [`shutdown_signal`]).
pub async fn launch(topology: Topology, args: LaunchArgs) -> Result<(), LaunchError> {
    let signal = shutdown_signal()?;
    launch_until(topology, args, signal).await
}

/// As [`launch`], but shuts down when `stop` completes instead of on a signal (or, as
/// [`launch`], on an operator's `POST /leave` to the admin endpoint).
///
/// # Errors
/// As [`launch`].
///
/// # Cancel safety
/// Not cancel safe: to end it early, complete `stop` rather than dropping the future.
/// Dropped once it has started anything, it leaves that running with no handle to stop it,
/// until the tokio runtime ends: bound network endpoints keep their sockets and peers, and
/// started nodes keep their actors (and the ports their servers listen on). Dropped during
/// its final shutdown, the rest of it is skipped (see
/// [`Running::shutdown`](crate::Running::shutdown)).
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
    // a node the topology does not declare joins with roles: alone in its process
    let joined = match (args.roles.is_empty(), args.nodes.as_slice()) {
        (true, _) => None,
        (false, [one]) if !declared.contains(one) => Some(one.clone()),
        (false, [one]) => {
            return Err(LaunchError::Flags(format!(
                "node {one:?} is declared in the topology: its roles are declared there \
                 (Topology::role), not with --role"
            )));
        }
        (false, _) => {
            return Err(LaunchError::Flags(
                "--role joins one node the topology does not declare: give exactly one --node"
                    .into(),
            ));
        }
    };
    if let Some(unknown) = args
        .nodes
        .iter()
        .find(|n| !declared.contains(n) && joined.as_ref() != Some(*n))
    {
        return Err(LaunchError::UnknownNode(unknown.clone(), declared));
    }
    if args.shutdown_timeout > 0 {
        topology.set_shutdown_timeout(Duration::from_secs(args.shutdown_timeout));
    }
    let cluster = args
        .cluster
        .clone()
        .unwrap_or_else(|| topology.name().to_string());
    let only = (!args.nodes.is_empty()).then_some(args.nodes.as_slice());
    let prepared = topology.prepare_joined(
        only,
        joined.as_deref().map(|name| (name, args.roles.as_slice())),
    )?;
    // each node's identity, read once: its endpoint's, and the first one's for the admin
    // endpoint's operators
    let identities = if args.nodes.is_empty() {
        Vec::new()
    } else {
        // One dev CA for every node of this process, so they trust each other.
        let dev_ca = match (&args.ca, args.dev_ca) {
            (None, true) => Some(troupe_identity::DevCa::new(&cluster)?),
            _ => None,
        };
        prepared
            .nodes()
            .map(|node| load_identity(&args, node.name(), dev_ca.as_ref()))
            .collect::<Result<Vec<_>, _>>()?
    };
    // before anything starts, so the recorder sees every metric and /ready says "starting"
    let admin = Admin::start(&args, &prepared, identities.first()).await?;
    let mut nets: Vec<NodeNet> = Vec::new();
    if !args.nodes.is_empty() {
        let first_listen = args
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        for ((i, node), identity) in prepared.nodes().enumerate().zip(identities) {
            let mut config = net_config(&args, &cluster, identity);
            let listen = if i == 0 {
                first_listen
            } else {
                // The others join through the first node of this process, too.
                config.advertise = None;
                config.seeds.extend(nets.first().map(NodeNet::local_addr));
                SocketAddr::new(first_listen.ip(), 0)
            };
            let net = NodeNet::bind(node, listen, config)
                .await
                .map_err(|source| LaunchError::Network {
                    node: node.name().to_string(),
                    source,
                })?;
            announce(net.local_addr(), node.name());
            nets.push(net);
        }
        if args.quic {
            prepared.mesh.route_through_quic(true);
            // every message between them now crosses QUIC: connect them before anything runs
            wait_for_full_mesh(&nets).await?;
        }
    } else if args.quic {
        prepared.mesh.route_through_quic(true);
        let ca = troupe_identity::DevCa::new(&cluster)?;
        let mut seed: Option<SocketAddr> = None;
        for node in prepared.nodes() {
            let identity = ca.identity(node.name())?;
            let mut config = net_config(&args, &cluster, identity);
            config.seeds = seed.into_iter().collect();
            let net = NodeNet::bind(node, SocketAddr::from(([127, 0, 0, 1], 0)), config)
                .await
                .map_err(|source| LaunchError::Network {
                    node: node.name().to_string(),
                    source,
                })?;
            seed.get_or_insert(net.local_addr());
            nets.push(net);
        }
        wait_for_full_mesh(&nets).await?;
    }
    let running = prepared.start(nets).await?;
    for node in running.nodes() {
        tracing::info!(node = %node.name(), actors = node.names().len(), "node started");
    }
    admin.ready();
    let outcome = tokio::select! {
        failed = running.wait() => failed,
        () = stop => Ok(()),
        () = admin.leave_requested() => {
            tracing::info!("an operator asked this process to leave the cluster");
            Ok(())
        }
    };
    if let Err(err) = &outcome {
        tracing::error!(cause = %err, "a node failed; shutting the rest down");
    } else {
        tracing::info!("shutting down");
    }
    admin.stopping();
    running.shutdown().await;
    admin.stop().await;
    outcome
}

/// The admin endpoint of a launch, if it serves one, its readiness, and where an operator's
/// `POST /leave` asks the launch to end.
#[cfg(feature = "admin")]
struct Admin(
    Option<(
        troupe_admin::AdminServer,
        troupe_admin::Readiness,
        troupe_admin::Leave,
    )>,
);

#[cfg(feature = "admin")]
impl Admin {
    /// The one-process default, tried first; a free port if it is taken. Not 9090
    /// (Prometheus's) nor 3000 (Grafana's): those run beside it.
    const DEFAULT: SocketAddr = SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        troupe_admin::DEFAULT_PORT,
    );

    async fn start(
        args: &LaunchArgs,
        prepared: &crate::topology::Prepared,
        identity: Option<&troupe_identity::NodeIdentity>,
    ) -> Result<Self, LaunchError> {
        if args.admin.is_none() && (args.no_admin || !args.nodes.is_empty()) {
            return Ok(Self(None));
        }
        let readiness = troupe_admin::Readiness::new();
        // operators change state over TLS with a certificate of the cluster's CA; a run with
        // no CA on disk (one process, --dev-ca) has none to check theirs against
        let operator_tls = match identity {
            Some(identity) if args.ca.is_some() => Some(identity.admin_server_config()?),
            _ => None,
        };
        let leave = troupe_admin::Leave::new();
        let options = troupe_admin::AdminOptions {
            parts: prepared.admin_parts.clone(),
            operator_tls,
            leave: Some(leave.clone()),
        };
        let mesh = &prepared.mesh;
        let start = |addr| {
            troupe_admin::AdminServer::start_with(
                addr,
                mesh.clone(),
                readiness.clone(),
                options.clone(),
            )
        };
        let server = match args.admin {
            Some(addr) => start(addr).await?,
            None => match start(Self::DEFAULT).await {
                Ok(server) => server,
                Err(troupe_admin::AdminError::Bind { source, .. }) => {
                    tracing::warn!(
                        addr = %Self::DEFAULT,
                        cause = %source,
                        "the default admin address is taken; serving on a free port"
                    );
                    start(SocketAddr::new(Self::DEFAULT.ip(), 0)).await?
                }
                Err(err) => return Err(err.into()),
            },
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "admin http://{}", server.local_addr());
        let _ = out.flush();
        Ok(Self(Some((server, readiness, leave))))
    }

    fn ready(&self) {
        if let Some((_, readiness, _)) = &self.0 {
            readiness.set_ready();
        }
    }

    fn stopping(&self) {
        if let Some((_, readiness, _)) = &self.0 {
            readiness.set_stopping();
        }
    }

    /// Completes once an operator asks the process to leave (`POST /leave`); never without an
    /// endpoint.
    async fn leave_requested(&self) {
        match &self.0 {
            Some((_, _, leave)) => leave.requested().await,
            None => std::future::pending().await,
        }
    }

    /// Stops serving, letting the requests in flight (a `POST /leave`'s answer) finish.
    async fn stop(self) {
        if let Some((server, _, _)) = self.0 {
            server.stop().await;
        }
    }
}

/// Built without the `admin` feature: `--admin` is refused, nothing else is served.
#[cfg(not(feature = "admin"))]
struct Admin;

#[cfg(not(feature = "admin"))]
impl Admin {
    async fn start(
        args: &LaunchArgs,
        _prepared: &crate::topology::Prepared,
        _identity: Option<&troupe_identity::NodeIdentity>,
    ) -> Result<Self, LaunchError> {
        match args.admin {
            Some(_) => Err(LaunchError::Flags(
                "--admin needs troupe built with its `admin` feature".into(),
            )),
            None => Ok(Self),
        }
    }

    fn ready(&self) {}

    fn stopping(&self) {}

    async fn leave_requested(&self) {
        std::future::pending().await
    }

    async fn stop(self) {}
}

fn net_config(
    args: &LaunchArgs,
    cluster: &str,
    identity: troupe_identity::NodeIdentity,
) -> NetConfig {
    let mut config = NetConfig::new(cluster, identity)
        .seeds(args.seeds.iter().copied())
        .peer_down_timeout(Duration::from_millis(args.peer_down_ms.max(100)));
    config.advertise = args.advertise;
    if args.spin_after_traffic_us > 0 {
        config = config.spin_after_traffic(Duration::from_micros(args.spin_after_traffic_us));
    }
    config
}

fn load_identity(
    args: &LaunchArgs,
    node: &str,
    dev_ca: Option<&troupe_identity::DevCa>,
) -> Result<troupe_identity::NodeIdentity, LaunchError> {
    // the roles a joining node claims, which its certificate must carry
    match (&args.ca, dev_ca) {
        (Some(dir), _) => {
            Ok(troupe_identity::NodeIdentity::load(dir, node)?.with_roles(&args.roles)?)
        }
        (None, Some(ca)) => Ok(ca.identity_with_roles(node, &args.roles)?),
        (None, None) => Err(LaunchError::Flags(
            "--node needs --ca DIR (from `troupe ca issue`), or --dev-ca for a lone dev node"
                .into(),
        )),
    }
}

/// Prints the bound address and its node for whoever started this process (a documented
/// contract).
fn announce(addr: SocketAddr, node: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening {addr} node {node}");
    let _ = out.flush();
}

/// Waits (bounded) until every endpoint in this process is connected to every other (by name:
/// connections to nodes of other processes do not count).
async fn wait_for_full_mesh(nets: &[NodeNet]) -> Result<(), LaunchError> {
    let want = nets.len().saturating_sub(1);
    let limit = Duration::from_secs(10);
    let started = tokio::time::Instant::now();
    let deadline = started + limit;
    let mut reported = started;
    let local = |n: &NodeNet| {
        let connected = n.connected();
        nets.iter()
            .filter(|o| {
                o.node_name() != n.node_name() && connected.iter().any(|c| c == o.node_name())
            })
            .count()
    };
    while nets.iter().any(|n| local(n) < want) {
        let now = tokio::time::Instant::now();
        if now > deadline {
            return Err(LaunchError::MeshTimeout(limit));
        }
        if now.duration_since(reported) >= Duration::from_secs(2) {
            reported = now;
            let connected: Vec<String> = nets
                .iter()
                .map(|n| format!("{} {}/{want}", n.node_name(), local(n)))
                .collect();
            tracing::info!(?connected, waited = ?now.duration_since(started), "waiting for the nodes of this process to connect");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// A future that completes on Ctrl-C or (on Unix) SIGTERM — what [`launch`] waits for; for
/// programs that pass their own stop future to [`launch_until`] and still want the signals.
///
/// # Errors
/// [`LaunchError::Signals`] if the signal handlers cannot be installed.
///
/// # Cancel safety
/// Dropping the future stops listening, but tokio never removes a signal handler: from this
/// call on (SIGTERM) and from the future's first poll on (Ctrl-C), those signals no longer end
/// the process by themselves, for as long as it runs.
pub fn shutdown_signal() -> Result<impl Future<Output = ()>, LaunchError> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(LaunchError::Signals)?;
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
