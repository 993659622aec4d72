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
