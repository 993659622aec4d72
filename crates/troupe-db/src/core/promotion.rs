//! Choosing the follower to promote when the leader is lost

use std::time::{Duration, Instant};

use super::ReplicaId;
use super::leader::AckMode;

/// One reachable follower's standing: the epoch and index of its last log entry
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The follower
    pub id: ReplicaId,
    /// Newest leader epoch it has seen (it may exceed `last_epoch`, e.g. after fencing)
    pub epoch: u64,
    /// Epoch of its last log entry
    pub last_epoch: u64,
    /// Index of its last log entry
    pub last_index: u64,
}

/// The decision: which follower leads next, at which epoch
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Promotion {
    /// The follower to promote
    pub leader: ReplicaId,
    /// Its epoch: one above the newest epoch among the old leader and the candidates (so
    /// `old_epoch + 1` unless an earlier promotion attempt fenced a candidate higher)
    pub epoch: u64,
}

/// Why no follower can be promoted without risking acknowledged writes
#[derive(
    serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, thiserror::Error,
)]
pub enum PromotionError {
    /// No candidates at all
    #[error("no follower is reachable")]
    NoCandidates,
    /// Too few replicas consulted: one holding an acknowledged write might be
    /// missing from the candidates
    #[error("{have} replicas consulted, {need} needed to promote (a majority)")]
    NoQuorum {
        /// Candidates consulted
        have: usize,
        /// Candidates needed
        need: usize,
    },
}

/// Choose the follower to promote after the leader of `old_epoch` was lost
///
/// `replicas` is the database's replica count, old leader included; `candidates` are the
/// reachable followers. The most up-to-date candidate wins: highest `(last_epoch, last_index)`,
/// ties broken by the lowest id so every caller decides alike. The caller then fences the
/// consulted candidates at the new epoch ([`super::Follower::fence`]).
///
/// Promoting the most up-to-date of at least a majority keeps every [`AckMode::Majority`]
/// acknowledged write; [`AckMode::All`] would keep them with any one candidate, and
/// [`AckMode::LeaderOnly`] loses what the promoted candidate lacks (see [`super`]'s
/// `# Durability on leader loss`). Every mode needs a majority all the same: the candidates
/// are the replicas the caller fenced, and only a majority fenced at the new epoch keeps a
/// second coordinator, which cannot reach them, from promoting another leader in that same
/// epoch (two coordinators each fencing one replica did, in the simulator).
///
/// # Errors
///
/// - [`PromotionError::NoCandidates`] if `candidates` is empty.
/// - [`PromotionError::NoQuorum`] with fewer than `floor(replicas/2) + 1` candidates.
pub fn promote(
    replicas: usize,
    old_epoch: u64,
    candidates: &[Candidate],
) -> Result<Promotion, PromotionError> {
    // the quorum that makes the new epoch this promotion's alone, whatever the write mode
    let need = AckMode::Majority.required(replicas);
    let best = candidates
        .iter()
        .max_by(|a, b| {
            (a.last_epoch, a.last_index)
                .cmp(&(b.last_epoch, b.last_index))
                .then(b.id.cmp(&a.id))
        })
        .ok_or(PromotionError::NoCandidates)?;
    if candidates.len() < need {
        return Err(PromotionError::NoQuorum {
            have: candidates.len(),
            need,
        });
    }
    let newest = candidates
        .iter()
        .map(|c| c.epoch.max(c.last_epoch))
        .max()
        .unwrap_or(0)
        .max(old_epoch);
    Ok(Promotion {
        leader: best.id,
        epoch: newest.saturating_add(1),
    })
}

/// What a replica that led its newest epoch before a restart (or replica 0 of a fresh
/// database) does once the others have answered ([`resume`])
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Lead again, at this epoch
    Lead {
        /// One above the newest epoch this replica and the answering peers have seen
        epoch: u64,
    },
    /// Follow instead: `ahead` leads, has seen a newer epoch, or holds a newer log
    Follow {
        /// The peer that is ahead
        ahead: ReplicaId,
        /// Whether it said it leads
        leading: bool,
    },
    /// Too few answers to decide; ask again later
    Wait {
        /// Replicas that answered, this one included
        have: usize,
        /// Replicas needed (a majority)
        need: usize,
    },
}

/// Decide whether replica `me` may lead again, from the answers of `peers` (each with
/// whether it said it leads), in a database of `replicas`
///
/// It may only if no answering peer leads, none has seen a newer epoch, and none holds a
/// newer log (higher `(last_epoch, last_index)`), and a majority answered, itself included.
/// The log rule is what keeps acknowledged writes: a replica that was paused or cut off while
/// the others went on (and was since told of their epoch by a leader it could not follow)
/// would otherwise lead with a log that lacks them, as the simulator found (seed 6482).
pub fn resume(replicas: usize, me: Candidate, peers: &[(Candidate, bool)]) -> Resume {
    let mine = (me.last_epoch, me.last_index);
    if let Some((ahead, leading)) = peers
        .iter()
        .find(|(p, leading)| *leading || p.epoch > me.epoch || (p.last_epoch, p.last_index) > mine)
    {
        return Resume::Follow {
            ahead: ahead.id,
            leading: *leading,
        };
    }
    let need = AckMode::Majority.required(replicas);
    if peers.len() + 1 < need {
        return Resume::Wait {
            have: peers.len() + 1,
            need,
        };
    }
    let newest = peers
        .iter()
        .map(|(p, _)| p.epoch.max(p.last_epoch))
        .chain([me.epoch, me.last_epoch])
        .max()
        .unwrap_or(0);
    Resume::Lead {
        epoch: newest.saturating_add(1),
    }
}

/// A follower whose known leader's node is up but that has heard nothing from it for this many
/// times the promotion delay treats it as no leader (see [`lost_leader`])
pub const SILENT_LEADER_FACTOR: u32 = 4;

/// What a follower knows when it asks whether the leader is lost ([`lost_leader`])
#[derive(Clone, Copy)]
pub struct LeaderWatch<'a> {
    /// This follower
    pub me: ReplicaId,
    /// The database's replica count
    pub replicas: usize,
    /// The leader it knows of, if any
    pub leader: Option<ReplicaId>,
    /// When it last heard from a leader
    pub heard_leader: Instant,
    /// Since when each replica's node has been reported down (`None`: not reported down)
    pub down_since: &'a dyn Fn(ReplicaId) -> Option<Instant>,
    /// How long a loss must last (the spec's `promote_after`)
    pub delay: Duration,
}

/// Whether follower `watch.me` is to coordinate a promotion at `now`, and if so which leader
/// it replaces (`Some(None)`: no leader is known, and the promotion gives up at the sight of
/// any).
///
/// A known leader is lost once its node has been reported down, and the leader not heard from,
/// for the delay: a leader still heard from is never replaced, whatever the membership says,
/// and its last messages may come just after the report (a node that leaves says so before its
/// replica stops), so the delay counts from the later of the two. A known leader whose node is
/// up but that has been silent for [`SILENT_LEADER_FACTOR`] times the delay (it may have
/// stepped down) counts as none; with none known, once no leader has been heard from for the
/// delay. The coordinator is the lowest-numbered replica other than the lost leader whose node
/// is not reported down, so that one replica coordinates.
pub fn lost_leader(watch: &LeaderWatch<'_>, now: Instant) -> Option<Option<ReplicaId>> {
    let since = |at: Instant| now.saturating_duration_since(at);
    let mut leader = watch.leader.filter(|&l| l != watch.me);
    match leader {
        Some(known) => match (watch.down_since)(known) {
            Some(reported) => {
                if since(reported.max(watch.heard_leader)) < watch.delay {
                    return None;
                }
            }
            None => {
                if since(watch.heard_leader) < watch.delay * SILENT_LEADER_FACTOR {
                    return None;
                }
                leader = None;
            }
        },
        None => {
            if since(watch.heard_leader) < watch.delay {
                return None;
            }
        }
    }
    let coordinator = (0..watch.replicas as u64)
        .map(ReplicaId)
        .find(|&id| Some(id) != leader && (watch.down_since)(id).is_none());
    (coordinator == Some(watch.me)).then_some(leader)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: Duration = Duration::from_secs(1);

    fn watch<'a>(
        me: u64,
        heard: Instant,
        down: &'a dyn Fn(ReplicaId) -> Option<Instant>,
    ) -> LeaderWatch<'a> {
        LeaderWatch {
            me: ReplicaId(me),
            replicas: 3,
            leader: Some(ReplicaId(0)),
            heard_leader: heard,
            down_since: down,
            delay: DELAY,
        }
    }

    #[test]
    fn a_leader_reported_down_and_silent_for_the_delay_is_replaced_by_the_lowest_live() {
        let t0 = Instant::now();
        let down = |id: ReplicaId| (id == ReplicaId(0)).then_some(t0);
        let one = watch(1, t0 - DELAY, &down);
        assert_eq!(lost_leader(&one, t0 + DELAY / 2), None, "not yet");
        assert_eq!(lost_leader(&one, t0 + DELAY), Some(Some(ReplicaId(0))));
        // replica 2 leaves it to replica 1
        assert_eq!(lost_leader(&watch(2, t0 - DELAY, &down), t0 + DELAY), None);
    }

    #[test]
    fn a_leaders_last_words_after_the_report_put_the_promotion_off_not_for_ever() {
        let t0 = Instant::now();
        let down = |id: ReplicaId| (id == ReplicaId(0)).then_some(t0);
        // heard 100 ms after its node was reported down (it said it was leaving first)
        let heard = t0 + Duration::from_millis(100);
        let one = watch(1, heard, &down);
        assert_eq!(lost_leader(&one, t0 + DELAY), None);
        assert_eq!(lost_leader(&one, heard + DELAY), Some(Some(ReplicaId(0))));
    }

    #[test]
    fn a_leader_still_heard_from_is_never_replaced() {
        let t0 = Instant::now();
        let down = |id: ReplicaId| (id == ReplicaId(0)).then_some(t0);
        for k in 1..20u32 {
            let now = t0 + DELAY / 2 * k;
            let heard = now - Duration::from_millis(10);
            assert_eq!(lost_leader(&watch(1, heard, &down), now), None, "at {k}");
        }
    }

    #[test]
    fn a_silent_leader_on_a_live_node_counts_as_none_after_four_delays() {
        let t0 = Instant::now();
        let up = |_: ReplicaId| None;
        let one = watch(1, t0, &up);
        assert_eq!(lost_leader(&one, t0 + DELAY * 3), None);
        // replica 0 is not reported down, so it is the coordinator, not replica 1
        assert_eq!(lost_leader(&one, t0 + DELAY * 4), None);
        let zero = LeaderWatch {
            leader: Some(ReplicaId(2)),
            ..watch(0, t0, &up)
        };
        assert_eq!(lost_leader(&zero, t0 + DELAY * 4), Some(None));
        // with no leader known, once none was heard from for the delay
        let none = LeaderWatch {
            leader: None,
            ..watch(0, t0, &up)
        };
        assert_eq!(lost_leader(&none, t0 + DELAY / 2), None);
        assert_eq!(lost_leader(&none, t0 + DELAY), Some(None));
    }
}
