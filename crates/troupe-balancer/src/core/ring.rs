//! The consistent-hash ring: virtual nodes of every member, sorted by position

use super::hash::vnode_point;

/// Ring points per unit of weight used by [`Strategy::consistent_hash`](super::Strategy::consistent_hash)
///
/// 160 is ketama's choice: with it, each member's share of keys is within a few percent of its
/// weight's share for pools of tens of members.
pub const DEFAULT_VNODES_PER_WEIGHT: u32 = 160;

/// The most ring points one member gets, whatever its weight, so that one huge weight cannot
/// make the ring (and its rebuild on every membership change) unbounded
///
/// Weights above `MAX_VNODES_PER_MEMBER / vnodes_per_weight` therefore all get the same share.
pub const MAX_VNODES_PER_MEMBER: u32 = 1 << 16;

/// Virtual nodes sorted by position, each naming its member by index into the balancer's member
/// list (which is sorted by id, so index order is id order)
#[derive(Debug, Clone, Default)]
pub(super) struct Ring {
    /// `(position, member index)`, sorted; ties in position (vanishingly rare) are ordered by
    /// member index, so the ring is fully deterministic
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// The ring for members given as `(index, raw id, weight)`, with `vnodes_per_weight` points
    /// per unit of weight (normalized: at least 1 per unit, at least 1 and at most
    /// [`MAX_VNODES_PER_MEMBER`] per member)
    pub(super) fn build(
        members: impl Iterator<Item = (usize, u64, u32)>,
        vnodes_per_weight: u32,
    ) -> Self {
        let per_weight = vnodes_per_weight.max(1);
        let mut points = Vec::new();
        for (index, id, weight) in members {
            let vnodes = per_weight
                .saturating_mul(weight.max(1))
                .min(MAX_VNODES_PER_MEMBER);
            points.extend((0..vnodes).map(|replica| (vnode_point(id, replica), index)));
        }
        points.sort_unstable();
        Self { points }
    }

    /// The member owning the first point at or clockwise after `hash` for which `eligible`
    /// holds; `None` when no point's member is eligible
    ///
    /// Visits each point at most once.
    pub(super) fn lookup(
        &self,
        hash: u64,
        mut eligible: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let len = self.points.len();
        let start = self
            .points
            .partition_point(|&(position, _)| position < hash);
        (0..len)
            .map(|offset| self.points[(start + offset) % len].1)
            .find(|&index| eligible(index))
    }
}
