//! [`Balancer`]: membership, node events, picking and outcomes

use std::collections::HashSet;
use std::mem;
use std::time::Instant;

use rand::{Rng, RngExt};

use super::breaker::{Admission, Breaker, BreakerConfig, BreakerState};
use super::hash::key_hash;
use super::ring::Ring;
use super::{HealthChange, MemberId, MemberView, Outcome, Pick, Strategy};

/// One member's state
#[derive(Debug, Clone)]
struct Member {
    id: MemberId,
    /// At least 1
    weight: u32,
    node: Option<String>,
    /// Cached `node ∈ Balancer::down_nodes`, kept in step by `add`, `node_down` and `node_up`
    node_down: bool,
    breaker: Breaker,
    /// Tickets of picks not yet finished. A set rather than a count so that a pick reported
    /// twice, or a pick of an earlier member with the same id, cannot skew the count. Its size
    /// is bounded by the requests the shell lets into flight.
    in_flight: HashSet<u64>,
    /// The ticket of the outstanding probe; `Some` exactly while the breaker is half-open
    probe: Option<u64>,
    /// Smooth weighted round robin's running score (nginx's `current_weight`)
    score: i64,
    /// Outcomes of picks with a lower ticket do not feed the breaker: they were picked before
    /// the member's latest re-admission, and judged the member as it was then
    counts_from: u64,
}

impl Member {
    fn new(
        id: MemberId,
        weight: u32,
        node: Option<String>,
        node_down: bool,
        breaker: BreakerConfig,
    ) -> Self {
        Self {
            id,
            weight,
            node,
            node_down,
            breaker: Breaker::new(breaker),
            in_flight: HashSet::new(),
            probe: None,
            score: 0,
            counts_from: 0,
        }
    }

    /// Whether a request may go to this member at `now`, and as what
    fn admission(&self, now: Instant) -> Admission {
        if self.node_down {
            Admission::Reject
        } else {
            self.breaker.can_pass(now)
        }
    }

    /// Whether strategies may choose this member at `now` (normally or as the probe)
    fn eligible(&self, now: Instant) -> bool {
        self.admission(now) != Admission::Reject
    }

    fn outstanding(&self) -> usize {
        self.in_flight.len()
    }

    fn available(&self) -> bool {
        !self.node_down && self.breaker.state() == BreakerState::Closed
    }

    fn view(&self) -> MemberView {
        MemberView {
            id: self.id,
            weight: self.weight,
            node: self.node.clone(),
            outstanding: self.outstanding(),
            state: self.breaker.state(),
            node_down: self.node_down,
            available: self.available(),
        }
    }
}

/// The load balancer's state: members, their outstanding requests and health, and the strategy
///
/// Pure state: it reads no clock and does no I/O; `now` and the RNG come from the caller.
///
/// # Guarantees
///
/// - [`pick`](Self::pick) returns only an *eligible* member: present, not on a node reported
///   down, and admitted by its circuit breaker (closed, or open with its period ended, in which
///   case the pick is the one probe). It returns `None` exactly when no member is eligible.
/// - Each pick is outstanding on its member until [`finished`](Self::finished) reports it; a
///   second report of the same pick, or a report for a member removed since, is ignored.
/// - A member ejected by its breaker gets no request until its open period has ended, then
///   exactly one probe, and no other request while the probe is outstanding.
/// - No sequence of calls panics (weights of 0 count as 1; unknown ids and nodes are ignored).
///
/// See [`Strategy`] for what each strategy promises about the choice itself.
#[derive(Debug, Clone)]
pub struct Balancer {
    strategy: Strategy,
    breaker: BreakerConfig,
    /// Sorted by id, unique ids
    members: Vec<Member>,
    /// Nodes reported down and not yet up. Kept even when no member lives there, so a member
    /// added later on a down node starts unavailable; bounded by the cluster's node count.
    down_nodes: HashSet<String>,
    /// The consistent-hash ring; empty for other strategies. Rebuilt on every membership or
    /// weight change, since it refers to members by index.
    ring: Ring,
    /// The last member picked: round robin (and least-outstanding ties) continue after it
    last: Option<MemberId>,
    next_ticket: u64,
    /// Reused buffer of eligible member indices, so power of two choices does not allocate
    scratch: Vec<usize>,
}

impl Balancer {
    /// An empty balancer choosing by `strategy`, with a circuit breaker per member configured
    /// by `breaker`
    pub fn new(strategy: Strategy, breaker: BreakerConfig) -> Self {
        Self {
            strategy,
            breaker,
            members: Vec::new(),
            down_nodes: HashSet::new(),
            ring: Ring::default(),
            last: None,
            next_ticket: 0,
            scratch: Vec::new(),
        }
    }

    /// The strategy this balancer picks by
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The breaker config each new member's circuit breaker gets
    pub fn breaker_config(&self) -> BreakerConfig {
        self.breaker
    }

    /// Adds member `id` with `weight` (0 counts as 1), living on `node` if given; or, if `id` is
    /// already a member, updates its weight and node
    ///
    /// Idempotent. An update keeps the member's outstanding requests and breaker state. A new
    /// member starts closed, and unavailable if `node` is currently reported down.
    pub fn add(&mut self, id: MemberId, weight: u32, node: Option<String>) {
        let weight = weight.max(1);
        let node_down = node
            .as_ref()
            .is_some_and(|node| self.down_nodes.contains(node));
        match self.index_of(id) {
            Ok(index) => {
                let member = &mut self.members[index];
                let reweighted = member.weight != weight;
                member.weight = weight;
                member.node = node;
                member.node_down = node_down;
                if reweighted {
                    self.membership_changed();
                }
            }
            Err(index) => {
                let member = Member::new(id, weight, node, node_down, self.breaker);
                self.members.insert(index, member);
                self.membership_changed();
            }
        }
    }

    /// Removes member `id`, if present
    ///
    /// Its outstanding picks are forgotten: reporting them to [`finished`](Self::finished) later
    /// does nothing, even if `id` has been added again.
    pub fn remove(&mut self, id: MemberId) {
        if let Ok(index) = self.index_of(id) {
            self.members.remove(index);
            self.membership_changed();
        }
    }

    /// Whether `id` is a member
    pub fn contains(&self, id: MemberId) -> bool {
        self.index_of(id).is_ok()
    }

    /// How many members there are, available or not
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members at all
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Reports `node` down: its members (present and future) are not picked until
    /// [`node_up`](Self::node_up) for the same node
    ///
    /// The members are kept, with their outstanding requests and breaker state. Idempotent.
    pub fn node_down(&mut self, node: &str) {
        self.down_nodes.insert(node.to_owned());
        self.set_node_down(node, true);
    }

    /// Reports `node` up again: its members may be picked again (subject to their breakers)
    ///
    /// Idempotent; a node never reported down is ignored.
    pub fn node_up(&mut self, node: &str) {
        self.down_nodes.remove(node);
        self.set_node_down(node, false);
    }

    /// Picks a member for a request at `now`, or `None` when no member is eligible
    ///
    /// `key` is used by [`Strategy::ConsistentHash`] and ignored by other strategies; `rng` is
    /// used by [`Strategy::PowerOfTwoChoices`] only. The pick is outstanding on its member until
    /// passed to [`finished`](Self::finished). If the chosen member is open with its period
    /// ended, the pick is its probe ([`Pick::probe`]) and the member takes no other request until
    /// the probe is reported.
    pub fn pick<R: Rng + ?Sized>(
        &mut self,
        key: Option<&[u8]>,
        now: Instant,
        rng: &mut R,
    ) -> Option<Pick> {
        let (index, sampled) = match self.strategy {
            Strategy::RoundRobin => (self.pick_round_robin(now)?, None),
            Strategy::WeightedRoundRobin => (self.pick_weighted(now)?, None),
            Strategy::LeastOutstanding => (self.pick_least_outstanding(now)?, None),
            Strategy::PowerOfTwoChoices => self.pick_two_choices(now, rng)?,
            Strategy::ConsistentHash { .. } => match key {
                Some(key) => (self.pick_hashed(key, now)?, None),
                None => (self.pick_round_robin(now)?, None),
            },
        };
        Some(self.assign(index, sampled, now))
    }

    /// Reports how a picked request ended, at `now`
    ///
    /// The request stops counting as outstanding. Its outcome feeds the member's breaker when it
    /// is the probe, or when the member is closed and the request was picked after the member
    /// was last re-admitted; outcomes of requests picked before an ejection or re-admission are
    /// stale and only end the request. Returns the breaker's change of state, if any.
    ///
    /// A pick already reported, or whose member was removed since, is ignored (`None`).
    pub fn finished(&mut self, pick: Pick, outcome: Outcome, now: Instant) -> Option<HealthChange> {
        let index = self.index_of(pick.member).ok()?;
        let next_ticket = self.next_ticket;
        let member = &mut self.members[index];
        if !member.in_flight.remove(&pick.ticket) {
            return None;
        }
        if outcome == Outcome::Abandoned && member.probe != Some(pick.ticket) {
            return None;
        }
        if member.probe == Some(pick.ticket) {
            debug_assert_eq!(member.breaker.state(), BreakerState::HalfOpen);
            member.probe = None;
        } else if member.breaker.state() != BreakerState::Closed || pick.ticket < member.counts_from
        {
            return None;
        }
        let transition = match outcome {
            Outcome::Success => member.breaker.on_success(now),
            Outcome::Error | Outcome::Timeout | Outcome::Abandoned => {
                member.breaker.on_failure(now)
            }
        }?;
        if transition.to == BreakerState::Closed {
            member.counts_from = next_ticket;
        }
        debug_assert_eq!(
            member.probe.is_some(),
            member.breaker.state() == BreakerState::HalfOpen
        );
        Some(HealthChange {
            member: member.id,
            from: transition.from,
            to: transition.to,
        })
    }

    /// A snapshot of every member, in id order
    pub fn members(&self) -> Vec<MemberView> {
        self.members.iter().map(Member::view).collect()
    }

    /// A snapshot of member `id`, if present
    pub fn member(&self, id: MemberId) -> Option<MemberView> {
        self.index_of(id)
            .ok()
            .map(|index| self.members[index].view())
    }

    /// How many members may take ordinary requests: node not down and breaker closed
    ///
    /// When this is 0, [`pick`](Self::pick) may still return a probe to an ejected member whose
    /// open period has ended.
    pub fn available(&self) -> usize {
        self.members
            .iter()
            .filter(|member| member.available())
            .count()
    }

    fn index_of(&self, id: MemberId) -> Result<usize, usize> {
        self.members.binary_search_by_key(&id, |member| member.id)
    }

    fn set_node_down(&mut self, node: &str, down: bool) {
        for member in &mut self.members {
            if member.node.as_deref() == Some(node) {
                member.node_down = down;
            }
        }
    }

    /// Restarts weighted round robin's scores and rebuilds the ring, after a member was added or
    /// removed or a weight changed
    fn membership_changed(&mut self) {
        for member in &mut self.members {
            member.score = 0;
        }
        if let Strategy::ConsistentHash { vnodes_per_weight } = self.strategy {
            let members = self.members.iter().enumerate();
            self.ring = Ring::build(
                members.map(|(index, member)| (index, member.id.0, member.weight)),
                vnodes_per_weight,
            );
        }
    }

    /// Records the pick of member `index`: a fresh ticket, outstanding, and the probe if the
    /// member's breaker is due one
    fn assign(&mut self, index: usize, sampled: Option<[MemberId; 2]>, now: Instant) -> Pick {
        let ticket = self.next_ticket;
        self.next_ticket = self.next_ticket.wrapping_add(1);
        let member = &mut self.members[index];
        let probe = member.admission(now) == Admission::Probe
            && member.breaker.on_probe_sent(now).is_some();
        if probe {
            member.probe = Some(ticket);
        }
        member.in_flight.insert(ticket);
        self.last = Some(member.id);
        Pick {
            member: member.id,
            probe,
            sampled,
            ticket,
        }
    }

    /// Member indices in round-robin order: those after the last pick's id, then the rest
    fn rotation(&self) -> impl Iterator<Item = usize> + use<> {
        let start = match self.last {
            Some(last) => self.members.partition_point(|member| member.id <= last),
            None => 0,
        };
        (start..self.members.len()).chain(0..start)
    }

    fn pick_round_robin(&self, now: Instant) -> Option<usize> {
        self.rotation()
            .find(|&index| self.members[index].eligible(now))
    }

    fn pick_least_outstanding(&self, now: Instant) -> Option<usize> {
        let eligible = self.members.iter().filter(|member| member.eligible(now));
        let least = eligible.map(Member::outstanding).min()?;
        self.rotation().find(|&index| {
            let member = &self.members[index];
            member.eligible(now) && member.outstanding() == least
        })
    }

    /// nginx's smooth weighted round robin (`ngx_http_upstream_get_peer`)
    fn pick_weighted(&mut self, now: Instant) -> Option<usize> {
        let mut total: i64 = 0;
        let mut best: Option<(usize, i64)> = None;
        for (index, member) in self.members.iter_mut().enumerate() {
            if !member.eligible(now) {
                continue;
            }
            let weight = i64::from(member.weight);
            member.score = member.score.saturating_add(weight);
            total = total.saturating_add(weight);
            if best.is_none_or(|(_, score)| member.score > score) {
                best = Some((index, member.score));
            }
        }
        let (index, _) = best?;
        let member = &mut self.members[index];
        member.score = member.score.saturating_sub(total);
        Some(index)
    }

    fn pick_two_choices<R: Rng + ?Sized>(
        &mut self,
        now: Instant,
        rng: &mut R,
    ) -> Option<(usize, Option<[MemberId; 2]>)> {
        let mut eligible = mem::take(&mut self.scratch);
        eligible.clear();
        eligible.extend((0..self.members.len()).filter(|&index| self.members[index].eligible(now)));
        let chosen = match eligible.len() {
            0 => None,
            1 => Some((eligible[0], None)),
            count => {
                let first = rng.random_range(0..count);
                let mut second = rng.random_range(0..count - 1);
                if second >= first {
                    second += 1;
                }
                let (a, b) = (eligible[first], eligible[second]);
                let (member_a, member_b) = (&self.members[a], &self.members[b]);
                let chosen = if member_b.outstanding() < member_a.outstanding() {
                    b
                } else {
                    a
                };
                Some((chosen, Some([member_a.id, member_b.id])))
            }
        };
        self.scratch = eligible;
        chosen
    }

    fn pick_hashed(&self, key: &[u8], now: Instant) -> Option<usize> {
        self.ring
            .lookup(key_hash(key), |index| self.members[index].eligible(now))
    }
}
