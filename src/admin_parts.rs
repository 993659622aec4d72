//! The databases, queues and failover placement of a topology as its admin endpoint reports on
//! them and acts on them (`/db`, `/queue`, `/placement`, and the operators' promote, replay,
//! move and drain), through the clients the topology handed out.

use troupe_admin::{
    ActionError, DbAdmin, DbState, DeadLetterState, PartFuture, PromotedState, QueueAdmin,
    QueueState, ReplicaState, error_text,
};

/// One replicated database: its client and where each replica runs.
#[cfg(feature = "db")]
pub(crate) struct DbPart {
    pub(crate) name: String,
    pub(crate) client: troupe_db::DbClient,
    /// Each replica's actor name and node, replica 0 first.
    pub(crate) replicas: Vec<(String, String)>,
}

#[cfg(feature = "db")]
impl DbAdmin for DbPart {
    fn name(&self) -> &str {
        &self.name
    }

    fn status(&self) -> PartFuture<'_, DbState> {
        Box::pin(async move {
            let statuses = self.client.statuses().await;
            let leader_last = statuses
                .iter()
                .flatten()
                .filter(|s| s.role == troupe_db::Role::Leader)
                .map(|s| s.last_index)
                .max();
            let replicas = statuses
                .into_iter()
                .enumerate()
                .map(|(i, status)| {
                    let (name, node) = self.replicas.get(i).cloned().unwrap_or_default();
                    match status {
                        Ok(s) => ReplicaState {
                            name,
                            node,
                            role: Some(
                                match s.role {
                                    troupe_db::Role::Leader => "leader",
                                    troupe_db::Role::Follower => "follower",
                                }
                                .to_string(),
                            ),
                            epoch: s.epoch,
                            last_index: s.last_index,
                            applied_index: s.applied_index,
                            lag: leader_last.map(|last| last.saturating_sub(s.last_index)),
                            error: s.storage_fault.map(|f| format!("storage: {f}")),
                        },
                        Err(err) => ReplicaState {
                            name,
                            node,
                            role: None,
                            epoch: 0,
                            last_index: 0,
                            applied_index: 0,
                            lag: None,
                            error: Some(error_text(&err)),
                        },
                    }
                })
                .collect();
            DbState {
                name: self.name.clone(),
                replicas,
            }
        })
    }

    fn promote(&self) -> PartFuture<'_, Result<PromotedState, ActionError>> {
        Box::pin(async move {
            match self.client.promote().await {
                Ok(promoted) => Ok(PromotedState {
                    leader: self
                        .replicas
                        .get(promoted.leader as usize)
                        .map(|(name, _)| name.clone())
                        .unwrap_or_else(|| format!("replica {}", promoted.leader)),
                    epoch: promoted.epoch,
                }),
                Err(err) => Err(action_error(&err)),
            }
        })
    }

    fn change_members(
        &self,
        add: bool,
        replica: u64,
    ) -> PartFuture<'_, Result<Vec<u64>, ActionError>> {
        Box::pin(async move {
            let changed = if add {
                self.client.add_replica(replica).await
            } else {
                self.client.remove_replica(replica).await
            };
            match changed {
                Ok(voters) => Ok(voters),
                Err(err) => Err(action_error(&err)),
            }
        })
    }
}

/// One queue and its client.
#[cfg(feature = "queue")]
pub(crate) struct QueuePart {
    pub(crate) name: String,
    pub(crate) client: troupe_queue::QueueClient,
}

#[cfg(feature = "queue")]
impl QueueAdmin for QueuePart {
    fn name(&self) -> &str {
        &self.name
    }

    fn stats(&self) -> PartFuture<'_, QueueState> {
        Box::pin(async move {
            let mut state = QueueState {
                name: self.name.clone(),
                ready: 0,
                leased: 0,
                dead: 0,
                enqueued: 0,
                acked: 0,
                redelivered: 0,
                error: None,
            };
            match self.client.stats().await {
                Ok(s) => {
                    state.ready = s.ready;
                    state.leased = s.leased;
                    state.dead = s.dead;
                    state.enqueued = s.enqueued;
                    state.acked = s.acked;
                    state.redelivered = s.redelivered;
                }
                Err(err) => state.error = Some(error_text(&err)),
            }
            state
        })
    }

    fn dead_letters(&self) -> PartFuture<'_, Result<Vec<DeadLetterState>, ActionError>> {
        Box::pin(async move {
            let letters = self
                .client
                .dead_letters()
                .await
                .map_err(|err| queue_error(&err))?;
            Ok(letters
                .into_iter()
                .map(|d| DeadLetterState {
                    item: d.item.0,
                    attempts: d.attempts,
                    reason: d.reason,
                    bytes: d.payload.len(),
                    preview: DeadLetterState::preview_of(&d.payload),
                })
                .collect())
        })
    }

    fn replay(&self, item: u64) -> PartFuture<'_, Result<(), ActionError>> {
        Box::pin(async move {
            self.client
                .replay(troupe_queue::ItemId(item))
                .await
                .map_err(|err| queue_error(&err))
        })
    }
}

#[cfg(feature = "queue")]
fn queue_error(err: &troupe_queue::QueueError) -> ActionError {
    use troupe_queue::{QueueError, QueueFailure};
    match err {
        QueueError::Refused(QueueFailure::NotDead { .. }) => ActionError::NotFound(error_text(err)),
        QueueError::Refused(_) => ActionError::Refused(error_text(err)),
        QueueError::Call(_) => ActionError::Unavailable(error_text(err)),
    }
}

/// What an operator's failed database action says: refused (409) when the database or the
/// cluster's rules said no, unavailable (503) when nothing answered in time.
fn action_error(err: &troupe_db::DbError) -> ActionError {
    match err {
        troupe_db::DbError::Refused(_) => ActionError::Refused(error_text(err)),
        troupe_db::DbError::Call(troupe_runtime::CallError::Forbidden { .. }) => {
            ActionError::Refused(format!(
                "{}: only the database's own nodes may fail it over or change its members \
                 (DbSpec::administered_from); ask the admin endpoint of a process that runs a replica",
                error_text(err)
            ))
        }
        _ => ActionError::Unavailable(error_text(err)),
    }
}

/// The placement of a topology's failover groups: their declared orders, and the register in
/// the metadata group their leases and the operators' directions live in.
#[cfg(feature = "db")]
pub(crate) struct PlacementPart {
    pub(crate) register: troupe_failover::DbRegister,
    pub(crate) groups: Vec<troupe_admin::DeclaredGroup>,
    /// Whether each group of `groups` moves back to an earlier node (declared takeover)
    pub(crate) takeover: Vec<bool>,
    pub(crate) nodes: Vec<String>,
}

#[cfg(feature = "db")]
impl PlacementPart {
    /// How long one read or write of the register may take, retries included: the state's
    /// reads run side by side, so `/placement` answers within about twice this (the CLI waits
    /// 5 s)
    pub(crate) const WITHIN: std::time::Duration = std::time::Duration::from_secs(2);
}

#[cfg(feature = "db")]
impl troupe_admin::PlacementAdmin for PlacementPart {
    fn groups(&self) -> &[troupe_admin::DeclaredGroup] {
        &self.groups
    }

    fn nodes(&self) -> &[String] {
        &self.nodes
    }

    fn state(&self) -> PartFuture<'_, troupe_admin::PlacementState> {
        use troupe_failover::LeaseRegister;
        Box::pin(async move {
            let leases =
                futures::future::join_all(self.groups.iter().map(|g| self.register.lease(&g.name)));
            let (directions, leases) = futures::join!(self.register.directions(), leases);
            let (directions, error) = match directions {
                Ok(directions) => (directions, None),
                Err(err) => (
                    troupe_failover::Directions::default(),
                    Some(format!(
                        "cannot read the operators' directions: {}",
                        error_text(&err)
                    )),
                ),
            };
            let groups = self
                .groups
                .iter()
                .zip(&self.takeover)
                .zip(leases)
                .map(|((group, &takeover), lease)| {
                    let moved_to = directions.moved.get(&group.name).cloned();
                    // a move to a node playing one of its roles puts that node first
                    let moved_member = moved_to.iter().filter(|_| !group.roles.is_empty());
                    let directed = troupe_failover::Placement::new(group.order.clone(), takeover)
                        .with_roles(group.roles.iter().cloned())
                        .with_members(moved_member)
                        .directed(moved_to.as_deref(), &|n| directions.drained.contains(n));
                    let mut state = troupe_admin::GroupPlacementState {
                        name: group.name.clone(),
                        order: group.order.clone(),
                        directed: directed.nodes().to_vec(),
                        roles: group.roles.clone(),
                        takeover: directed.takeover(),
                        moved_to,
                        holder: None,
                        generation: 0,
                        draining: false,
                        released: false,
                        error: None,
                    };
                    match lease {
                        Ok(Some(record)) => {
                            state.holder = Some(record.holder);
                            state.generation = record.generation;
                            state.draining = record.draining;
                            state.released = record.released;
                        }
                        Ok(None) => {}
                        Err(err) => state.error = Some(error_text(&err)),
                    }
                    state
                })
                .collect();
            troupe_admin::PlacementState {
                groups,
                drained: directions.drained.into_iter().collect(),
                error,
            }
        })
    }

    fn move_group(
        &self,
        group: &str,
        node: Option<&str>,
    ) -> PartFuture<'_, Result<(), ActionError>> {
        use troupe_failover::LeaseRegister;
        let (group, node) = (group.to_string(), node.map(str::to_string));
        Box::pin(async move {
            if let Some(node) = &node {
                // a move to a drained node would be ignored until it is undrained: say so now
                let directions = self.register.directions().await.map_err(|err| {
                    ActionError::Unavailable(format!(
                        "the metadata group did not answer: {}",
                        error_text(&err)
                    ))
                })?;
                if directions.drained.contains(node) {
                    return Err(ActionError::Refused(format!(
                        "{node} is drained: undrain it first (`troupe drain {node} --undo`)"
                    )));
                }
            }
            self.register
                .move_child(&group, node.as_deref())
                .await
                .map_err(|err| register_error(&err))
        })
    }

    fn drain(&self, node: &str, drained: bool) -> PartFuture<'_, Result<(), ActionError>> {
        let node = node.to_string();
        Box::pin(async move {
            self.register
                .drain_node(&node, drained)
                .await
                .map_err(|err| register_error(&err))
        })
    }
}

/// An operator's direction the metadata group did not acknowledge in time: it may still take
/// effect.
#[cfg(feature = "db")]
fn register_error(err: &troupe_failover::RegisterError) -> ActionError {
    ActionError::Unavailable(format!(
        "the metadata group did not acknowledge it in time (it may still take effect; \
         `troupe placement` shows it): {}",
        error_text(err)
    ))
}
