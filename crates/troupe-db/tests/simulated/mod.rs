//! What the database's simulation tests share: three replicas (four where the group is
//! resized), each on a simulated host, and a client node on another.

use std::path::Path;
use std::time::Duration;

use troupe_db::{AckMode, DbClient, DbSpec};
use troupe_runtime::{Node, Reach};
use troupe_sim::addr;

/// The replicas' hosts (and node names)
pub(crate) const REPLICAS: [&str; 3] = ["r0", "r1", "r2"];

/// The replicas' hosts where the group is resized ([`Mode::RaftResizing`]): `r3` starts
/// outside it
pub(crate) const REPLICAS_RESIZED: [&str; 4] = ["r0", "r1", "r2", "r3"];

/// A peer is reported down after this long without a word
const PEER_DOWN: Duration = Duration::from_secs(1);

/// How the replicas replicate: single-leader with an acknowledgement mode, or Raft
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Single-leader replication, acknowledged as the mode says
    Ack(AckMode),
    /// A Raft group (openraft)
    Raft,
    /// A Raft group of four replicas, three of them voters at first, whose membership an
    /// operator changes while it serves
    #[allow(dead_code, reason = "the partition tests do not resize")]
    RaftResizing,
}

impl Mode {
    /// The replicas' hosts in this mode
    pub(crate) fn replicas(self) -> &'static [&'static str] {
        match self {
            Self::RaftResizing => &REPLICAS_RESIZED,
            _ => &REPLICAS,
        }
    }
}

impl From<AckMode> for Mode {
    fn from(mode: AckMode) -> Self {
        Self::Ack(mode)
    }
}

/// The database: acknowledgements by `mode` and promotion 300 ms after the leader's node is
/// down, or a Raft group; clients and operators anywhere in the cluster
pub(crate) fn spec(dir: &Path, mode: impl Into<Mode>) -> DbSpec {
    let mode = mode.into();
    // the client host changes the Raft group's members: it must be admitted as an operator
    let mut spec = DbSpec::new("db", dir)
        .reachable_from(Reach::cluster())
        .administered_from(Reach::cluster())
        .promote_after(Some(Duration::from_millis(300)));
    spec = match mode {
        Mode::Ack(mode) => spec.ack(mode),
        Mode::Raft => spec.raft(),
        Mode::RaftResizing => spec.raft().voters(3),
    };
    for name in mode.replicas() {
        spec = spec.replica(*name);
    }
    spec
}

/// The file replica `index` of `spec` keeps its state in, whichever the mode
#[allow(dead_code, reason = "the partition tests do not use it")]
pub(crate) fn replica_file(spec: &DbSpec, index: usize) -> std::path::PathBuf {
    if spec.is_raft() {
        spec.raft_path(index)
    } else {
        spec.replica_path(index)
    }
}

/// Adds a host per replica to `sim`, each joining through the others (so a restarted one
/// finds them) and running its replica, acknowledging by `mode`, with files under `dir`
pub(crate) fn replica_hosts(
    sim: &mut turmoil::Sim<'_>,
    ca: &troupe_testkit::Cluster,
    dir: &Path,
    mode: impl Into<Mode>,
) {
    let mode = mode.into();
    let replicas = mode.replicas();
    for (i, name) in replicas.iter().copied().enumerate() {
        let spec = spec(dir, mode);
        let config = ca.config(name, &[]).peer_down_timeout(PEER_DOWN);
        sim.host(name, move || {
            let (spec, config) = (spec.clone(), config.clone());
            async move {
                let seeds = replicas.iter().filter(|r| **r != name).map(|r| addr(r));
                let (node, _net) = troupe_sim::start_node(name, config.seeds(seeds)).await?;
                let (child, _) = spec.child(&node, i)?;
                node.root().ok_or("no root supervisor")?.add(child).await?;
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }
}

/// Starts the client node `app` on the simulated host this runs in, joined through every
/// replica of `mode`; returns the node (keep it) and a client with `timeout` per operation
pub(crate) async fn client(
    ca_config: troupe_runtime::remote::NetConfig,
    dir: &Path,
    timeout: Duration,
    mode: Mode,
) -> Result<(Node, troupe_runtime::remote::NodeNet, DbClient), Box<dyn std::error::Error>> {
    let seeds = mode.replicas().iter().map(|r| addr(r));
    let (node, net) =
        troupe_sim::start_node("app", ca_config.peer_down_timeout(PEER_DOWN).seeds(seeds)).await?;
    // the client reaches the replicas by name, as the mode places them
    let client = spec(dir, mode).client(&node).with_timeout(timeout);
    Ok((node, net, client))
}

/// Every replica's taking of leadership in a simulation: (simulated time, replica, epoch),
/// from the replicas' `leading` log event; and when a leadership may have ended (a replica
/// stepping down, or a replica that has led starting again, as a follower). Clones share the
/// lists.
#[derive(Clone, Default)]
pub(crate) struct Leaderships(
    std::sync::Arc<std::sync::Mutex<Vec<(Duration, u64, u64)>>>,
    std::sync::Arc<std::sync::Mutex<Vec<Duration>>>,
);

impl Leaderships {
    /// Collects leaderships on this thread (every simulated host runs on it) until the guard
    /// is dropped
    pub(crate) fn collect_until_dropped(&self) -> tracing::subscriber::DefaultGuard {
        use tracing_subscriber::Layer as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        // only the database's own info events: quinn's trace events stay disabled
        let only_db = tracing_subscriber::filter::filter_fn(|meta| {
            meta.target().starts_with("troupe_db") && *meta.level() <= tracing::Level::INFO
        });
        // env TROUPE_SIM_LOG (a filter such as `troupe_db=debug`) prints log lines too, each
        // at its simulated time, to follow a failing seed
        let log = troupe_sim::log::env_layer();
        let subscriber = tracing_subscriber::registry()
            .with(self.clone().with_filter(only_db))
            .with(log);
        tracing::subscriber::set_default(subscriber)
    }

    /// `Err` naming the epoch and replicas if two replicas led in one epoch
    pub(crate) fn one_leader_per_epoch(&self) -> Result<(), String> {
        let taken = self.0.lock().map(|l| l.clone()).unwrap_or_default();
        let mut by_epoch: std::collections::BTreeMap<u64, (Duration, u64)> = Default::default();
        for (at, replica, epoch) in taken {
            match by_epoch.get(&epoch) {
                Some((first_at, first)) if *first != replica => {
                    return Err(format!(
                        "two leaders in epoch {epoch}: replica {first} at {first_at:?}, \
                         replica {replica} at {at:?}"
                    ));
                }
                Some(_) => {}
                None => {
                    by_epoch.insert(epoch, (at, replica));
                }
            }
        }
        Ok(())
    }

    /// Notes that `replica` took the lead in `epoch` at `at` (what the log layer does)
    pub(crate) fn taken(&self, at: Duration, replica: u64, epoch: u64) {
        if let Ok(mut taken) = self.0.lock() {
            taken.push((at, replica, epoch));
        }
    }

    /// When leadership last changed hands: the last leadership taken, or the last time a
    /// replica stepped down or started, whichever is later. Until then a leader deposed
    /// without knowing it may still acknowledge writes (in `LeaderOnly` mode, alone).
    #[allow(dead_code, reason = "the partition tests do not use it")]
    pub(crate) fn last_change(&self) -> Option<Duration> {
        let taken = self
            .0
            .lock()
            .ok()
            .and_then(|l| l.iter().map(|(at, _, _)| *at).max());
        let ended = self.1.lock().ok().and_then(|l| l.iter().copied().max());
        taken.max(ended)
    }

    /// How many leaderships were taken
    pub(crate) fn count(&self) -> usize {
        self.0.lock().map(|l| l.len()).unwrap_or_default()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Leaderships {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        #[derive(Default)]
        struct Fields {
            leading: bool,
            stepping_down: bool,
            started: bool,
            replica: Option<u64>,
            epoch: Option<u64>,
        }
        impl tracing::field::Visit for Fields {
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                match field.name() {
                    "replica" => self.replica = Some(value),
                    "epoch" => self.epoch = Some(value),
                    _ => {}
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    let message = format!("{value:?}");
                    self.leading = message == "leading";
                    self.stepping_down = message == "stepping down";
                    self.started = message == "replica started";
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let now = turmoil::sim_elapsed().unwrap_or_default();
        if let (true, Some(replica), Some(epoch)) = (fields.leading, fields.replica, fields.epoch) {
            self.taken(now, replica, epoch);
        }
        // a start ends a leadership only for a replica that has led (a restarted follower
        // changes nothing)
        let has_led = |replica: Option<u64>| {
            self.0
                .lock()
                .is_ok_and(|taken| taken.iter().any(|(_, r, _)| Some(*r) == replica))
        };
        if (fields.stepping_down || (fields.started && has_led(fields.replica)))
            && let Ok(mut ended) = self.1.lock()
        {
            ended.push(now);
        }
    }
}
