//! The ways a balancer chooses among its available members

/// How a [`Balancer`](super::Balancer) chooses a member for a request
///
/// Every strategy chooses only among *eligible* members: present, not on a node reported down,
/// and admitted by their circuit breaker (see [`Balancer::pick`](super::Balancer::pick)).
/// "In order" below means ascending [`MemberId`](super::MemberId) order, which does not depend on
/// the order members were added in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Cycles through eligible members in order, starting after the last member picked
    ///
    /// With a fixed set of eligible members, `k * N` picks give each of the `N` members exactly
    /// `k`. Weights are ignored.
    RoundRobin,
    /// Smooth weighted round robin, nginx's algorithm
    ///
    /// Each pick adds every eligible member's weight to its running score, picks the highest
    /// score (the first in order on a tie) and subtracts the eligible total from it. With a
    /// fixed set of eligible members of total weight `W`, every window of `W` consecutive picks
    /// gives each member exactly its weight, interleaved rather than in bursts. The scores are
    /// reset when membership or a weight changes.
    WeightedRoundRobin,
    /// The eligible member with the fewest outstanding requests
    ///
    /// Never picks a member while an eligible one has fewer outstanding requests. Ties go round
    /// robin (in order, starting after the last member picked). Weights are ignored.
    LeastOutstanding,
    /// Power of two choices: samples two distinct eligible members uniformly at random (from the
    /// caller's RNG) and picks the one with fewer outstanding requests (the first sampled on a
    /// tie)
    ///
    /// With one eligible member, picks it. The sampled pair is reported in
    /// [`Pick::sampled`](super::Pick::sampled). Weights are ignored.
    PowerOfTwoChoices,
    /// A consistent-hash ring keyed by the request key
    ///
    /// Each member owns `vnodes_per_weight * weight` points on the ring (at least 1, at most
    /// [`MAX_VNODES_PER_MEMBER`](super::MAX_VNODES_PER_MEMBER); a `vnodes_per_weight` of 0 is
    /// treated as 1), placed by [`key_hash`](super::hash::key_hash). A key goes to the member
    /// owning the first point clockwise from the key's hash, skipping points of members that are
    /// not eligible, so:
    ///
    /// - the same key goes to the same member for as long as the eligible set is unchanged, and
    ///   in every process (the hash is fixed, positions depend only on member ids and weights);
    /// - when a member joins, only keys that now land on it move (about `1/N` of them); when a
    ///   member leaves or becomes ineligible, only its keys move, and they move back when it
    ///   returns.
    ///
    /// A pick without a key falls back to [`RoundRobin`](Self::RoundRobin).
    ConsistentHash {
        /// Ring points per unit of weight; more points spread keys more evenly (relative spread
        /// about `1/sqrt(points)`) at the cost of memory and rebuild time. See
        /// [`DEFAULT_VNODES_PER_WEIGHT`](super::DEFAULT_VNODES_PER_WEIGHT).
        vnodes_per_weight: u32,
    },
}

impl Strategy {
    /// [`ConsistentHash`](Self::ConsistentHash) with
    /// [`DEFAULT_VNODES_PER_WEIGHT`](super::DEFAULT_VNODES_PER_WEIGHT) points per unit of weight
    pub fn consistent_hash() -> Self {
        Self::ConsistentHash {
            vnodes_per_weight: super::DEFAULT_VNODES_PER_WEIGHT,
        }
    }
}
