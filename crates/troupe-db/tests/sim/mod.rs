//! A deterministic in-memory cluster for the replication rules, after quinn's `Pair`
//!
//! Messages sit in one FIFO queue; `step()` delivers one, `drive_bounded(n)` runs until idle or
//! `n` steps. A replica in `down` drops every message addressed to it. No time, no threads.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use troupe_db::core::{
    AckMode, AppendEntries, AppendReply, Follower, InstallSnapshot, Leader, Limits, Log, Op,
    ReplicaId, RequestError, StateMachine, WriteId, promote,
};

#[derive(Debug)]
enum Msg {
    Append(ReplicaId, AppendEntries),
    Snapshot(ReplicaId, InstallSnapshot),
    Reply(ReplicaId, u64, AppendReply),
}

pub(crate) struct Sim {
    pub(crate) mode: AckMode,
    pub(crate) leader_id: ReplicaId,
    pub(crate) leader: Option<Leader>,
    pub(crate) leader_state: StateMachine,
    pub(crate) followers: BTreeMap<ReplicaId, Follower>,
    pub(crate) down: BTreeSet<ReplicaId>,
    /// Acknowledged writes: id, log index, op
    pub(crate) acked: Vec<(WriteId, u64)>,
    /// Every proposed write: id to (index, op)
    pub(crate) proposed: BTreeMap<WriteId, (u64, Op)>,
    /// Every entry applied by any follower, per follower, in order
    pub(crate) applied: BTreeMap<ReplicaId, Vec<u64>>,
    queue: VecDeque<Msg>,
    next_write: u64,
}

impl Sim {
    /// Replica 0 leads at epoch 1; replicas `1..n` follow with empty logs
    pub(crate) fn new(n: u64, mode: AckMode) -> Self {
        let followers: BTreeMap<_, _> = (1..n)
            .map(|i| (ReplicaId(i), Follower::new(Limits::default())))
            .collect();
        let leader = Leader::new(
            1,
            Log::new(),
            0,
            followers.keys().copied(),
            mode,
            Limits::default(),
        );
        let mut sim = Self {
            mode,
            leader_id: ReplicaId(0),
            leader: Some(leader),
            leader_state: StateMachine::new(),
            followers,
            down: BTreeSet::new(),
            acked: Vec::new(),
            proposed: BTreeMap::new(),
            applied: BTreeMap::new(),
            queue: VecDeque::new(),
            next_write: 0,
        };
        sim.leader_durable();
        sim
    }

    pub(crate) fn leader(&self) -> &Leader {
        self.leader.as_ref().expect("a leader")
    }

    fn leader_durable(&mut self) {
        let leader = self.leader.as_mut().expect("a leader");
        let last = leader.log().last_index();
        let acked = leader.on_local_durable(last);
        self.record_acked(acked);
    }

    fn record_acked(&mut self, acked: Vec<WriteId>) {
        for w in acked {
            let index = self.proposed[&w].0;
            self.acked.push((w, index));
        }
        self.apply_leader();
    }

    fn apply_leader(&mut self) {
        let leader = self.leader.as_ref().expect("a leader");
        while self.leader_state.applied_index() < leader.commit_index() {
            let entry = leader
                .log()
                .get(self.leader_state.applied_index() + 1)
                .expect("committed entries are kept until a snapshot covers them");
            let _ = self.leader_state.apply_entry(entry);
        }
    }

    /// Propose `op` on the leader and make it durable there
    pub(crate) fn write(&mut self, op: Op) -> u64 {
        let id = WriteId(self.next_write);
        self.next_write += 1;
        let entry = self
            .leader
            .as_mut()
            .expect("a leader")
            .propose(id, op.clone())
            .expect("within limits");
        self.proposed.insert(id, (entry.index, op));
        self.leader_durable();
        entry.index
    }

    /// Queue the next append (or snapshot) for `follower`
    pub(crate) fn send(&mut self, follower: ReplicaId) {
        let leader = self.leader.as_ref().expect("a leader");
        match leader.append_request(follower) {
            Ok(req) => self.queue.push_back(Msg::Append(follower, req)),
            Err(RequestError::NeedSnapshot(_)) => {
                let req = leader.snapshot_request(&self.leader_state);
                self.queue.push_back(Msg::Snapshot(follower, req));
            }
            Err(RequestError::UnknownReplica(r)) => panic!("unknown replica {r:?}"),
        }
    }

    pub(crate) fn broadcast(&mut self) {
        let ids: Vec<_> = self.followers.keys().copied().collect();
        for id in ids {
            self.send(id);
        }
    }

    /// Deliver one message; false when the queue is empty
    pub(crate) fn step(&mut self) -> bool {
        let Some(msg) = self.queue.pop_front() else {
            return false;
        };
        match msg {
            Msg::Append(to, req) => {
                if self.down.contains(&to) {
                    return true;
                }
                let epoch = req.leader_epoch;
                let f = self.followers.get_mut(&to).expect("a follower");
                let resp = f.handle_append(req).expect("well-formed");
                self.applied
                    .entry(to)
                    .or_default()
                    .extend(resp.applied.iter().map(|a| a.index));
                self.queue.push_back(Msg::Reply(to, epoch, resp.reply));
            }
            Msg::Snapshot(to, req) => {
                if self.down.contains(&to) {
                    return true;
                }
                let epoch = req.leader_epoch;
                let f = self.followers.get_mut(&to).expect("a follower");
                let reply = f.handle_snapshot(req);
                self.applied.insert(to, Vec::new());
                self.queue.push_back(Msg::Reply(to, epoch, reply));
            }
            Msg::Reply(from, epoch, reply) => {
                let Some(leader) = self.leader.as_mut() else {
                    return true;
                };
                if leader.epoch() != epoch {
                    return true; // a reply to a deposed leader
                }
                match reply {
                    AppendReply::Success { match_index, .. } => {
                        let acked = leader.on_ack(from, match_index).expect("known");
                        self.record_acked(acked);
                        let leader = self.leader();
                        if leader.progress(from).expect("known").next_index
                            <= leader.log().last_index()
                        {
                            self.send(from);
                        }
                    }
                    AppendReply::Mismatch { last_index, .. } => {
                        leader.on_reject(from, last_index).expect("known");
                        self.send(from);
                    }
                    AppendReply::Diverged { .. } => {
                        leader.on_diverged(from).expect("known");
                        self.send(from);
                    }
                    AppendReply::StaleEpoch { .. } => {}
                }
            }
        }
        true
    }

    /// Run until idle or `max` steps; true if idle
    pub(crate) fn drive_bounded(&mut self, max: usize) -> bool {
        for _ in 0..max {
            if !self.step() {
                return true;
            }
        }
        self.queue.is_empty()
    }

    /// Broadcast (carrying the commit index) and run to idle, twice so followers learn the
    /// final commit index
    pub(crate) fn settle(&mut self) {
        for _ in 0..2 {
            self.broadcast();
            assert!(self.drive_bounded(100_000), "did not settle");
        }
    }

    /// The leader is lost; queued messages to and from it vanish
    pub(crate) fn lose_leader(&mut self) -> Leader {
        self.queue.clear();
        self.leader.take().expect("a leader")
    }

    /// Makes `chosen` lead at the epoch after `old_epoch`, whatever the promotion rule would
    /// pick (a state the rule reaches in other ways, such as an old leader rejoining with
    /// entries the new one lacks); the other followers follow it
    pub(crate) fn lead_with(&mut self, chosen: ReplicaId, old_epoch: u64) {
        let epoch = old_epoch + 2;
        for follower in self.followers.values_mut() {
            follower.fence_unclaimed(epoch - 1);
        }
        let f = self.followers.remove(&chosen).expect("a follower");
        let others: Vec<_> = self.followers.keys().copied().collect();
        let (leader, state) = f.into_leader(epoch, others, self.mode);
        self.leader = Some(leader);
        self.leader_state = state;
        self.leader_id = chosen;
        self.leader_durable();
    }

    /// Promote among `candidates` per the rules; the other followers follow the new leader
    pub(crate) fn promote(&mut self, replicas: usize, old_epoch: u64, candidates: &[ReplicaId]) {
        let cands: Vec<_> = candidates
            .iter()
            .map(|id| self.followers[id].candidate(*id))
            .collect();
        let dry = promote(replicas, old_epoch, &cands).expect("promotable");
        // as the replicas do: fence at the next epoch, then lead at the one after it, which
        // the fenced replicas take from the new leader alone
        for id in candidates {
            self.followers
                .get_mut(id)
                .expect("a follower")
                .fence(dry.epoch, ReplicaId(0))
                .expect("a fence at a new epoch");
        }
        let fenced: Vec<_> = candidates
            .iter()
            .map(|id| self.followers[id].candidate(*id))
            .collect();
        let p = promote(replicas, dry.epoch, &fenced).expect("promotable");
        let f = self.followers.remove(&p.leader).expect("a follower");
        let others: Vec<_> = self.followers.keys().copied().collect();
        let (leader, state) = f.into_leader(p.epoch, others, self.mode);
        self.leader = Some(leader);
        self.leader_state = state;
        self.leader_id = p.leader;
        self.leader_durable();
    }
}

pub(crate) fn put(k: &str, v: &str) -> Op {
    Op::Put {
        key: Bytes::copy_from_slice(k.as_bytes()),
        value: Bytes::copy_from_slice(v.as_bytes()),
    }
}
