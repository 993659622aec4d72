//! Choosing the follower to promote when the leader is lost

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
