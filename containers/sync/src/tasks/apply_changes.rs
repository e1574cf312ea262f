//! ApplyChanges: apply validated changes inside the caller's transaction — entity rows first, in
//! entity-id order (a fixed lock order), then the winners' changelog entries (the sequence row
//! is locked last, as local writes do), then the conflict records. Shared by the ops route and
//! the pull, which each own their transaction.
//!
//! Set-wise: the resource applies the batch in one call (`apply_batch`; customers: a constant
//! number of statements, ADR 0013), the winners take their sequence numbers in one update and
//! go to the changelog in multi-row inserts, and the conflicts are checked in one read and
//! recorded in multi-row inserts.

use ship::contracts::{ApplyOutcome, SyncResource};
use ship::db::utc_now;
use ship::parents::Task;

use crate::data::changelog;
use crate::data::conflicts::{self, NewConflict};
use crate::errors::SyncError;
use crate::models::ChangeLogEntry;
use crate::tasks::validate_ops::ValidOp;

/// The outcome of one op, in batch order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpStatus {
    Applied,
    Stale,
    Duplicate,
}

impl OpStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OpStatus::Applied => "applied",
            OpStatus::Stale => "stale",
            OpStatus::Duplicate => "duplicate",
        }
    }
}

pub(crate) struct ApplyChangesTask;

impl Task for ApplyChangesTask {
    const NAME: &'static str = "sync.apply_changes";
}

impl ApplyChangesTask {
    /// Apply `ops` inside the caller's transaction; the statuses in batch order.
    pub(crate) fn run(
        conn: &mut ship::AnyConnection,
        resource: &dyn SyncResource,
        ops: &[ValidOp],
    ) -> Result<Vec<OpStatus>, SyncError> {
        let mut order: Vec<usize> = (0..ops.len()).collect();
        order.sort_by(|&a, &b| {
            ops[a]
                .change
                .entity_id
                .cmp(&ops[b].change.entity_id)
                .then(a.cmp(&b))
        });

        let mut statuses = vec![OpStatus::Duplicate; ops.len()];
        let mut winners = Vec::new();
        let mut lost = Vec::new();
        let batch: Vec<&ship::contracts::Change> = order.iter().map(|&i| &ops[i].change).collect();
        let outcomes = resource.apply_batch(conn, &batch)?;
        for (i, outcome) in order.into_iter().zip(outcomes) {
            let change = &ops[i].change;
            statuses[i] = match outcome {
                ApplyOutcome::Applied => {
                    winners.push(i);
                    OpStatus::Applied
                }
                ApplyOutcome::Duplicate => OpStatus::Duplicate,
                ApplyOutcome::Stale {
                    current,
                    current_payload,
                } => {
                    // Another region's write lost: keep both versions. A stale op of the stored
                    // write's own origin is just an old, superseded write, not a conflict.
                    if current.origin != change.version.origin {
                        let reason = if current.hlc == change.version.hlc {
                            "equal_hlc_origin_tiebreak"
                        } else {
                            "older_hlc"
                        };
                        lost.push((i, current, current_payload, reason));
                    }
                    OpStatus::Stale
                }
            };
        }

        if !winners.is_empty() {
            let first = changelog::allocate_seqs(conn, resource.name(), winners.len() as i64)?;
            let now = utc_now();
            let entries: Vec<ChangeLogEntry> = winners
                .iter()
                .enumerate()
                .map(|(k, &i)| {
                    let change = &ops[i].change;
                    ChangeLogEntry {
                        resource: change.resource.clone(),
                        seq: first + k as i64,
                        entity_id: change.entity_id.clone(),
                        op: change.kind.as_str().to_string(),
                        payload: change.payload.to_string(),
                        hlc: change.version.hlc.as_i64(),
                        origin_region: change.version.origin.clone(),
                        schema_version: resource.schema_version() as i32,
                        created_at: now,
                    }
                })
                .collect();
            changelog::insert_all(conn, &entries)?;
        }
        if !lost.is_empty() {
            let now = utc_now();
            let records: Vec<NewConflict> = lost
                .into_iter()
                .map(|(i, winner, winner_payload, reason)| {
                    let loser = &ops[i].change;
                    NewConflict {
                        resource: loser.resource.clone(),
                        entity_id: loser.entity_id.clone(),
                        winner_hlc: winner.hlc.as_i64(),
                        winner_origin: winner.origin,
                        winner_payload: winner_payload.to_string(),
                        loser_hlc: loser.version.hlc.as_i64(),
                        loser_origin: loser.version.origin.clone(),
                        loser_payload: loser.payload.to_string(),
                        reason: reason.to_string(),
                        detected_at: now,
                    }
                })
                .collect();
            conflicts::insert_all_once(conn, &records)?;
        }
        Ok(statuses)
    }
}
