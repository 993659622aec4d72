//! Membership and failure detection: foca (SWIM with indirect probes and suspicion) over QUIC
//! datagrams on the authenticated connections, behind an identity filter.
//!
//! One task per endpoint (the *driver*) owns the foca instance. Everything reaches it through
//! two bounded channels: commands from the endpoint (a connection authenticated, a peer
//! leaving) and membership datagrams read off each connection (one reader task per connection,
//! with a per-peer rate cap). The driver keeps foca's timers in a heap on tokio's clock and
//! hands each back when due, so a simulated clock drives the protocol exactly; it reads no
//! other clock and starts no thread. What foca decides (a member up, down, renamed after a
//! restart) becomes the endpoint's `NodeEvent`s and its live view.
//!
//! # Layout
//! - `id.rs`: a member's identity (name, generation, rejoin count, address).
//! - `codec.rs`: the packets' bytes.
//! - `filter.rs`: what of a peer's packet is vouched for (pure).
//! - `config.rs`: foca's settings from `peer_down_timeout` (pure).
//! - `timers.rs`, `rate.rs`: the timer heap and the per-peer token bucket (pure).

mod codec;
mod config;
mod filter;
mod id;
mod rate;
mod timers;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use foca::{Foca, Member, NoCustomBroadcast, OwnedNotification, Runtime, Timer};
use parking_lot::Mutex;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub(crate) use codec::{Packet, decode_packet, encode_packet};
pub(crate) use config::{MAX_PACKET, Settings, settings};
pub(crate) use filter::{Dropped, Filter, Sender};
pub(crate) use id::SwimId;
use rate::TokenBucket;
use timers::TimerQueue;

use super::NetInner;

/// First byte of a QUIC datagram between nodes: what it carries. Membership is the only kind.
pub(crate) const DATAGRAM_MEMBERSHIP: u8 = 1;

/// Membership datagrams waiting for the driver, from every peer together; past it they are
/// dropped (and counted), as a full socket buffer drops them.
const INBOUND_QUEUE: usize = 1024;

/// Commands waiting for the driver (a connection authenticated, a peer leaving).
const COMMAND_QUEUE: usize = 4096;

/// Dials to nodes only named in membership gossip under way at once; hints past it are dropped
/// (gossip names them again).
const MAX_HINT_DIALS: usize = 16;

/// What this node's membership protocol did with its datagrams, as
/// [`NodeNet::membership_stats`](super::NodeNet::membership_stats) reports it. Counts since the
/// endpoint started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MembershipStats {
    /// Membership datagrams read off the peers' connections.
    pub datagrams_received: u64,
    /// Membership datagrams sent.
    pub datagrams_sent: u64,
    /// Packets foca addressed to a member this node has no connection to (at that member's
    /// generation): lost, as a datagram to an unreachable host is.
    pub unsent: u64,
    /// Datagrams dropped because their peer sent more than its rate allows.
    pub dropped_rate: u64,
    /// Datagrams dropped because the driver's queue was full.
    pub dropped_queue: u64,
    /// Datagrams that were not membership packets.
    pub dropped_malformed: u64,
    /// Packets whose sender was not the peer they came from (another name or generation).
    pub dropped_spoofed: u64,
    /// Packets addressed to another node.
    pub dropped_misaddressed: u64,
    /// Packets naming, as a probe's target or origin, an identity this node cannot vouch for.
    pub dropped_unvouched: u64,
    /// Member updates taken out of packets because no certificate-checked connection vouched
    /// for their identity (see `docs/security.md`).
    pub updates_stripped: u64,
    /// Nodes named in gossip that this node dialled to learn of them.
    pub dial_hints: u64,
    /// Errors foca reported (a packet from ourselves, a probe cycle cut short, …).
    pub errors: u64,
    /// Times the cluster declared this node down while it ran, and it rejoined.
    pub rejoins: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    received: AtomicU64,
    sent: AtomicU64,
    unsent: AtomicU64,
    rate: AtomicU64,
    queue: AtomicU64,
    malformed: AtomicU64,
    spoofed: AtomicU64,
    misaddressed: AtomicU64,
    unvouched: AtomicU64,
    stripped: AtomicU64,
    hints: AtomicU64,
    errors: AtomicU64,
    rejoins: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

fn dropped(reason: &'static str) {
    metrics::counter!("troupe_membership_dropped_total", "reason" => reason).increment(1);
}

/// What the endpoint tells the driver.
#[derive(Debug)]
enum Command {
    /// A connection to this peer passed the certificate and `Hello` checks; `addr` is where to
    /// dial it.
    Authenticated {
        name: Arc<str>,
        generation: u64,
        addr: SocketAddr,
    },
    /// The peer said it is leaving.
    Left { name: Arc<str>, generation: u64 },
    /// The endpoint is shutting down.
    Stop,
}

/// A membership packet from a peer.
struct Inbound {
    from: Sender,
    data: Bytes,
}

struct Receivers {
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Receiver<Inbound>,
}

/// The endpoint's handle on its membership driver.
pub(crate) struct Swim {
    commands: mpsc::Sender<Command>,
    inbound: mpsc::Sender<Inbound>,
    receivers: Mutex<Option<Receivers>>,
    settings: Settings,
    counters: Arc<Counters>,
}

impl Swim {
    /// The channels, before the driver runs ([`Swim::run`]).
    pub(crate) fn new(settings: Settings) -> Self {
        let (commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (inbound, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        Self {
            commands,
            inbound,
            receivers: Mutex::new(Some(Receivers {
                commands: commands_rx,
                inbound: inbound_rx,
            })),
            settings,
            counters: Arc::default(),
        }
    }

    /// Starts the driver for `net` as `me`, its random choices from `seed`.
    pub(crate) fn run(&self, net: Weak<NetInner>, me: SwimId, seed: u64, max_members: usize) {
        let Some(receivers) = self.receivers.lock().take() else {
            return;
        };
        let driver = Driver {
            net,
            filter: Filter::new(me.name.clone(), me.generation),
            foca: Foca::new(
                me,
                self.settings.foca.clone(),
                SmallRng::seed_from_u64(seed),
                codec::SwimCodec::default(),
            ),
            timers: TimerQueue::default(),
            notes: Vec::new(),
            left: BTreeMap::new(),
            hinted_by: BTreeMap::new(),
            counters: self.counters.clone(),
            max_members,
        };
        tokio::spawn(driver.run(receivers));
    }

    fn command(&self, command: Command) {
        match self.commands.try_send(command) {
            Ok(()) => {}
            // thousands of connection events unhandled: the driver is stuck
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::error!("membership command dropped: the membership driver is stuck");
                bump(&self.counters.errors, 1);
            }
            // the driver stopped: this endpoint is leaving, and what its peers do meanwhile
            // (leaving too) no longer matters to it
            Err(mpsc::error::TrySendError::Closed(command)) => {
                tracing::debug!(?command, "membership command after the driver stopped");
            }
        }
    }

    /// A connection to `name` at `generation` passed its checks; `addr` is where to dial it.
    pub(crate) fn authenticated(&self, name: Arc<str>, generation: u64, addr: SocketAddr) {
        self.command(Command::Authenticated {
            name,
            generation,
            addr,
        });
    }

    /// `name` at `generation` said it is leaving.
    pub(crate) fn left(&self, name: Arc<str>, generation: u64) {
        self.command(Command::Left { name, generation });
    }

    /// Stops the driver.
    pub(crate) fn stop(&self) {
        self.command(Command::Stop);
    }

    /// Reads the membership datagrams of `conn`, an authenticated connection to `from`, until
    /// it closes: each within the peer's rate goes to the driver, the rest are dropped.
    pub(crate) fn spawn_reader(&self, conn: quinn::Connection, from: Sender) {
        let inbound = self.inbound.clone();
        let counters = self.counters.clone();
        let (rate, burst) = (self.settings.peer_rate, self.settings.peer_burst);
        tokio::spawn(async move {
            let mut bucket = TokenBucket::new(rate, burst, Instant::now());
            while let Ok(datagram) = conn.read_datagram().await {
                bump(&counters.received, 1);
                if datagram.first() != Some(&DATAGRAM_MEMBERSHIP) || datagram.len() > MAX_PACKET + 1
                {
                    bump(&counters.malformed, 1);
                    dropped("malformed");
                    continue;
                }
                if !bucket.allow(Instant::now()) {
                    bump(&counters.rate, 1);
                    dropped("rate");
                    continue;
                }
                let data = datagram.slice(1..);
                match inbound.try_send(Inbound {
                    from: from.clone(),
                    data,
                }) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        bump(&counters.queue, 1);
                        dropped("queue");
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        });
    }

    /// The counts so far.
    pub(crate) fn stats(&self) -> MembershipStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MembershipStats {
            datagrams_received: get(&c.received),
            datagrams_sent: get(&c.sent),
            unsent: get(&c.unsent),
            dropped_rate: get(&c.rate),
            dropped_queue: get(&c.queue),
            dropped_malformed: get(&c.malformed),
            dropped_spoofed: get(&c.spoofed),
            dropped_misaddressed: get(&c.misaddressed),
            dropped_unvouched: get(&c.unvouched),
            updates_stripped: get(&c.stripped),
            dial_hints: get(&c.hints),
            errors: get(&c.errors),
            rejoins: get(&c.rejoins),
        }
    }

    /// Counts a datagram sent, or one foca addressed to a member with no connection.
    pub(crate) fn count_send(&self, sent: bool) {
        bump(
            if sent {
                &self.counters.sent
            } else {
                &self.counters.unsent
            },
            1,
        );
    }
}

/// foca's way out: packets to the endpoint, timers to the heap, notifications kept for after.
struct Io<'a> {
    net: &'a NetInner,
    now: Instant,
    timers: &'a mut TimerQueue<Timer<SwimId>>,
    notes: &'a mut Vec<OwnedNotification<SwimId>>,
}

impl Runtime<SwimId> for Io<'_> {
    fn notify(&mut self, notification: foca::Notification<'_, SwimId>) {
        self.notes.push(notification.to_owned());
    }

    fn send_to(&mut self, to: SwimId, data: &[u8]) {
        self.net.swim_send(&to.name, to.generation, data);
    }

    fn submit_after(&mut self, event: Timer<SwimId>, after: Duration) {
        self.timers.push(self.now, after, event);
    }
}

type SwimFoca = Foca<SwimId, codec::SwimCodec, SmallRng, NoCustomBroadcast>;

/// Owns foca and everything around it; runs as one task.
struct Driver {
    net: Weak<NetInner>,
    foca: SwimFoca,
    timers: TimerQueue<Timer<SwimId>>,
    filter: Filter,
    notes: Vec<OwnedNotification<SwimId>>,
    /// The generation each name said it left at (latest only).
    left: BTreeMap<Arc<str>, u64>,
    /// Per peer (at a generation): the unknown names its gossip made this node dial.
    hinted_by: BTreeMap<Arc<str>, (u64, BTreeSet<Arc<str>>)>,
    counters: Arc<Counters>,
    max_members: usize,
}

/// Calls foca with an [`Io`] built from the driver's other fields.
macro_rules! with_io {
    ($self:ident, $net:expr, |$foca:ident, $io:ident| $body:expr) => {{
        let $foca = &mut $self.foca;
        let $io = Io {
            net: $net,
            now: Instant::now(),
            timers: &mut $self.timers,
            notes: &mut $self.notes,
        };
        $body
    }};
}

impl Driver {
    async fn run(mut self, mut rx: Receivers) {
        loop {
            let next = self.timers.next_deadline();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                command = rx.commands.recv() => match command {
                    Some(Command::Stop) | None => return,
                    Some(command) => {
                        let Some(net) = self.net.upgrade() else { return };
                        self.command(&net, command);
                        self.settle(&net);
                    }
                },
                Some(inbound) = rx.inbound.recv() => {
                    let Some(net) = self.net.upgrade() else { return };
                    self.inbound(&net, inbound);
                    self.settle(&net);
                }
                () = sleep => {
                    let Some(net) = self.net.upgrade() else { return };
                    let now = Instant::now();
                    while let Some(timer) = self.timers.pop_due(now) {
                        let result = with_io!(self, &net, |foca, io| foca.handle_timer(timer, io));
                        self.count_error(result);
                    }
                    self.settle(&net);
                }
            }
        }
    }

    fn count_error(&self, result: Result<(), foca::Error>) {
        if let Err(e) = result {
            bump(&self.counters.errors, 1);
            match e {
                foca::Error::IncompleteProbeCycle => {
                    tracing::warn!(cause = %e, "membership: a probe cycle did not complete")
                }
                e => tracing::debug!(cause = %e, "membership"),
            }
        }
    }

    fn command(&mut self, net: &Arc<NetInner>, command: Command) {
        match command {
            Command::Authenticated {
                name,
                generation,
                addr,
            } => {
                self.filter.authenticated(&name, generation, addr);
                let id = SwimId::new(name.clone(), generation, addr);
                // direct evidence that it is alive; foca keeps a later identity it knows of
                let alive = Member::alive(id.clone());
                let result = with_io!(self, net, |foca, io| foca.apply_many(
                    std::iter::once(alive),
                    true,
                    io
                ));
                self.count_error(result);
                // and the join protocol: its answer lists the members it knows
                let result = with_io!(self, net, |foca, io| foca.announce(id, io));
                self.count_error(result);
                if let Some((_, names)) = self.hinted_by.get_mut(&name) {
                    names.clear();
                }
                for (_, names) in self.hinted_by.values_mut() {
                    names.remove(&name);
                }
            }
            Command::Left { name, generation } => {
                self.left.insert(name.clone(), generation);
                if self.left.len() > self.max_members {
                    // the oldest entries are by name, not age; any bound will do here
                    self.left.pop_first();
                }
                let known = self
                    .foca
                    .iter_membership_state()
                    .find(|m| m.id().name == name && m.id().generation == generation)
                    .map(|m| m.id().clone());
                if let Some(id) = known {
                    let down = Member::down(id);
                    let result = with_io!(self, net, |foca, io| foca.apply_many(
                        std::iter::once(down),
                        true,
                        io
                    ));
                    self.count_error(result);
                }
                // reported down before it said so (gossip overtook it): it left all the same
                net.swim_down(&name, generation, true);
            }
            Command::Stop => {}
        }
    }

    fn inbound(&mut self, net: &Arc<NetInner>, Inbound { from, data }: Inbound) {
        let passed = match self.filter.check(&from, &data) {
            Ok(passed) => passed,
            Err(why) => {
                let (counter, reason) = match &why {
                    Dropped::Malformed(_) => (&self.counters.malformed, "malformed"),
                    Dropped::Spoofed { .. } => (&self.counters.spoofed, "spoofed"),
                    Dropped::Misaddressed(_) => (&self.counters.misaddressed, "misaddressed"),
                    Dropped::Unvouched(_) => (&self.counters.unvouched, "unvouched"),
                };
                bump(counter, 1);
                dropped(reason);
                if matches!(why, Dropped::Spoofed { .. }) {
                    tracing::warn!(peer = %from.name, %why, "membership packet dropped");
                } else {
                    tracing::debug!(peer = %from.name, %why, "membership packet dropped");
                }
                return;
            }
        };
        if passed.stripped > 0 {
            bump(&self.counters.stripped, passed.stripped as u64);
            metrics::counter!("troupe_membership_updates_stripped_total")
                .increment(passed.stripped as u64);
        }
        if let Some(addr) = self.filter.addr_of(&from.name) {
            net.swim_addr(&from.name, from.generation, addr);
        }
        if !passed.hints.is_empty() && !self.hints(net, &from, passed.hints) {
            return;
        }
        let result = with_io!(self, net, |foca, io| foca.handle_data(&passed.packet, io));
        self.count_error(result);
    }

    /// Dials the nodes `from` named that this node does not know; `false` if `from` named more
    /// than this node may track (it is cut off, and its packet dropped).
    fn hints(
        &mut self,
        net: &Arc<NetInner>,
        from: &Sender,
        hints: Vec<(Arc<str>, SocketAddr)>,
    ) -> bool {
        let entry = self
            .hinted_by
            .entry(from.name.clone())
            .or_insert_with(|| (from.generation, BTreeSet::new()));
        if entry.0 != from.generation {
            *entry = (from.generation, BTreeSet::new());
        }
        for (name, _) in &hints {
            entry.1.insert(name.clone());
        }
        if entry.1.len() + self.filter.len() > self.max_members {
            entry.1.clear();
            net.swim_too_many_members(&from.name, from.generation);
            return false;
        }
        for (name, addr) in hints {
            if net.swim_hint(&name, addr, MAX_HINT_DIALS) {
                bump(&self.counters.hints, 1);
            }
        }
        true
    }

    /// Turns what foca noticed into the endpoint's events, until it has nothing more to say.
    fn settle(&mut self, net: &Arc<NetInner>) {
        // each round answers the last one's rejoin at most: a handful of rounds at most
        for _ in 0..8 {
            if self.notes.is_empty() {
                return;
            }
            let notes = std::mem::take(&mut self.notes);
            for note in notes {
                self.note(net, note);
            }
        }
    }

    fn is_active(&self, id: &SwimId) -> bool {
        self.foca.iter_members().any(|m| m.id() == id)
    }

    fn note(&mut self, net: &Arc<NetInner>, note: OwnedNotification<SwimId>) {
        match note {
            OwnedNotification::MemberUp(id) => {
                let addr = self.filter.addr_of(&id.name).unwrap_or(id.addr);
                net.swim_up(&id.name, id.generation, addr);
            }
            OwnedNotification::Rename(old, new) => {
                tracing::debug!(?old, ?new, "membership: a member's identity changed");
                if self.is_active(&new) {
                    let addr = self.filter.addr_of(&new.name).unwrap_or(new.addr);
                    net.swim_up(&new.name, new.generation, addr);
                }
            }
            OwnedNotification::MemberDown(id) => {
                let left = self.left.get(&id.name) == Some(&id.generation);
                net.swim_down(&id.name, id.generation, left);
            }
            OwnedNotification::Rejoin(me) => {
                bump(&self.counters.rejoins, 1);
                metrics::counter!("troupe_membership_rejoins_total").increment(1);
                tracing::warn!(
                    bump = me.bump,
                    "the cluster declared this node down (a stall, or a partition); rejoining"
                );
                // tell every peer at once rather than at the next periodic announce
                for (name, generation, addr) in net.swim_peers() {
                    let id = SwimId::new(name, generation, addr);
                    let result = with_io!(self, net, |foca, io| foca.announce(id, io));
                    self.count_error(result);
                }
            }
            OwnedNotification::Defunct => {
                // identities renew themselves, so this takes 65,535 rejoins in one run
                tracing::error!("membership: this node's identity is down and cannot renew");
                bump(&self.counters.errors, 1);
            }
            OwnedNotification::Active => tracing::debug!("membership: active"),
            OwnedNotification::Idle => {
                tracing::info!("membership: no other member is up")
            }
        }
    }
}

/// Runs what a node does with a membership datagram's bytes from an authenticated peer: the
/// identity filter (against a node `fuzz` that authenticated `a` and `b` at generation 1), then
/// foca itself. For the fuzz target `fuzz/fuzz_targets/swim_decode.rs`; returns whether the
/// packet was let through. Checks that whatever passes names only vouched identities.
#[doc(hidden)]
pub fn fuzz_swim_datagram(data: &[u8]) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], 4433));
    let mut filter = Filter::new(Arc::from("fuzz"), 1);
    for name in ["a", "b"] {
        filter.authenticated(&Arc::from(name), 1, addr);
    }
    let from = Sender {
        name: Arc::from("a"),
        generation: 1,
        remote: addr,
    };
    let Ok(passed) = filter.check(&from, data) else {
        return false;
    };
    let Ok(packet) = decode_packet(&passed.packet) else {
        panic!("the filter let through a packet it cannot read back");
    };
    for m in packet.updates.iter().flatten() {
        let id = m.id();
        assert!(
            ["fuzz", "a", "b"].contains(&&*id.name) && id.generation == 1,
            "an unvouched identity passed: {id:?}"
        );
    }
    struct Null;
    impl Runtime<SwimId> for Null {
        fn notify(&mut self, _: foca::Notification<'_, SwimId>) {}
        fn send_to(&mut self, _: SwimId, _: &[u8]) {}
        fn submit_after(&mut self, _: Timer<SwimId>, _: Duration) {}
    }
    let mut foca: SwimFoca = Foca::new(
        SwimId::new(Arc::from("fuzz"), 1, addr),
        settings(Duration::from_secs(3)).foca,
        SmallRng::seed_from_u64(1),
        codec::SwimCodec::default(),
    );
    let _ = foca.handle_data(&passed.packet, Null);
    true
}

/// The answer a node gives a membership datagram, for tests that play a peer by hand: an `Ack`
/// to a `Ping`, a `Feed` naming no one to an `Announce`, an `IndirectAck` to an
/// `IndirectPing`; `None` to anything else (or to bytes that are not a membership datagram).
/// A hand-played peer that answers with it stays up in the node's membership.
#[doc(hidden)]
pub fn answer_membership(datagram: &[u8]) -> Option<Bytes> {
    let (&kind, packet) = datagram.split_first()?;
    if kind != DATAGRAM_MEMBERSHIP {
        return None;
    }
    let header = decode_packet(packet).ok()?.header;
    let message = match header.message {
        foca::Message::Ping(n) => foca::Message::Ack(n),
        foca::Message::Announce => foca::Message::Feed,
        foca::Message::IndirectPing {
            origin,
            probe_number,
        } => foca::Message::IndirectAck {
            target: origin,
            probe_number,
        },
        _ => return None,
    };
    let answer = Packet {
        header: foca::Header {
            src: header.dst,
            src_incarnation: 0,
            dst: header.src,
            message,
        },
        updates: Some(Vec::new()),
    };
    let mut out = vec![DATAGRAM_MEMBERSHIP];
    out.extend_from_slice(&encode_packet(&answer));
    Some(Bytes::from(out))
}

/// Encodes a membership datagram as a node would send it: `src` (name, generation) to `dst`
/// with a `Gossip` message carrying `members` (name, generation, address) as alive. For tests
/// that play a peer speaking the protocol by hand.
#[doc(hidden)]
pub fn forge_membership_gossip(
    src: (&str, u64, SocketAddr),
    dst: (&str, u64),
    members: &[(String, u64, SocketAddr)],
) -> Bytes {
    let id = |name: &str, generation: u64, addr: SocketAddr| {
        SwimId::new(Arc::from(name), generation, addr)
    };
    let packet = Packet {
        header: foca::Header {
            src: id(src.0, src.1, src.2),
            src_incarnation: 0,
            dst: id(dst.0, dst.1, src.2),
            message: foca::Message::Gossip,
        },
        updates: Some(
            members
                .iter()
                .map(|(n, g, a)| Member::alive(id(n, *g, *a)))
                .collect(),
        ),
    };
    let mut out = vec![DATAGRAM_MEMBERSHIP];
    out.extend_from_slice(&encode_packet(&packet));
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A gossip from `a` to the fuzz node naming vouched and unvouched members.
    fn packet() -> Vec<u8> {
        let addr: SocketAddr = "127.0.0.1:4433".parse().unwrap();
        let members = [
            ("a".to_string(), 1, addr),
            ("b".to_string(), 1, addr),
            ("b".to_string(), 2, addr),
            ("c".to_string(), 1, addr),
            ("fuzz".to_string(), 1, addr),
        ];
        forge_membership_gossip(("a", 1, addr), ("fuzz", 1), &members)[1..].to_vec()
    }

    #[test]
    fn a_packet_from_an_authenticated_peer_passes_with_its_unvouched_members_stripped() {
        assert!(fuzz_swim_datagram(&packet()));
        let mut from_b = packet();
        // the sender's name is the packet's first identity: "a" becomes "b"
        from_b[1] = b'b';
        assert!(!fuzz_swim_datagram(&from_b), "sent in another's name");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1200)) {
            fuzz_swim_datagram(&data);
        }

        #[test]
        fn a_mutated_packet_never_panics_nor_lets_an_unvouched_identity_through(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut data = packet();
            for (at, byte) in flips {
                let i = at.index(data.len());
                data[i] = byte;
            }
            fuzz_swim_datagram(&data);
            let keep = cut.index(data.len() + 1);
            fuzz_swim_datagram(&data[..keep]);
        }
    }
}
