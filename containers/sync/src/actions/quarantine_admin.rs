//! The operator's side of the pull-side quarantine (`regionsync sync quarantine …`): list the
//! parked feed entries, retry them once their cause is fixed (an upgrade that accepts them,
//! a corrected peer), or discard them.

use std::sync::Arc;

use serde_json::Value;
use ship::contracts::{HybridClock, ResourceRegistry};
use ship::parents::Action;
use ship::DbPool;

use crate::data::quarantine::{self, Quarantined};
use crate::errors::SyncError;
use crate::tasks::apply_changes::ApplyChangesTask;
use crate::tasks::fetch_changes::entry_to_op;
use crate::tasks::validate_ops::{Origins, ValidateOpsTask};

/// Every parked entry, oldest first.
pub struct ListQuarantineAction {
    pool: DbPool,
}

impl ListQuarantineAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for ListQuarantineAction {
    const NAME: &'static str = "sync.list_quarantine";
    type Input = ();
    type Output = Vec<Quarantined>;
    type Error = SyncError;

    async fn run(&self, _: ()) -> Result<Vec<Quarantined>, SyncError> {
        self.pool
            .run(|conn| quarantine::list(conn, None).map_err(SyncError::from))
            .await
    }
}

/// What a retry did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetrySummary {
    /// Entries that passed and were applied (by last-writer-wins: applied, stale or duplicate).
    pub applied: usize,
    /// Entries that still do not pass, with their new reasons.
    pub still_refused: usize,
}

/// Validate parked entries again (one id, or all of them) and apply those that pass — by
/// last-writer-wins, so an entry older than what the row holds now changes nothing — each in
/// the same transaction as its removal from the quarantine.
pub struct RetryQuarantineAction {
    pool: DbPool,
    registry: ResourceRegistry,
    clock: Arc<HybridClock>,
    region_id: String,
}

impl RetryQuarantineAction {
    pub fn new(
        pool: DbPool,
        registry: ResourceRegistry,
        clock: Arc<HybridClock>,
        region_id: impl Into<String>,
    ) -> Self {
        Self {
            pool,
            registry,
            clock,
            region_id: region_id.into(),
        }
    }
}

impl Action for RetryQuarantineAction {
    const NAME: &'static str = "sync.retry_quarantine";
    /// One id, or `None` for every parked entry.
    type Input = Option<i64>;
    type Output = RetrySummary;
    type Error = SyncError;

    async fn run(&self, only: Option<i64>) -> Result<RetrySummary, SyncError> {
        let parked = self
            .pool
            .run(move |conn| quarantine::list(conn, only).map_err(SyncError::from))
            .await?;
        let mut summary = RetrySummary::default();
        for entry in parked {
            let Some(resource) = self.registry.get(&entry.resource).map(Arc::clone) else {
                let reason = format!("unknown_resource: `{}` is not synced here", entry.resource);
                self.keep(entry.id, reason).await?;
                summary.still_refused += 1;
                continue;
            };
            let change: Value = serde_json::from_str(&entry.entry).unwrap_or(Value::Null);
            let op = entry_to_op(&change);
            let origins = Origins::NotOurs(&self.region_id);
            match ValidateOpsTask::run(resource.as_ref(), &self.clock, origins, &[op]) {
                Ok(mut valid) => {
                    let id = entry.id;
                    let registry = self.registry.clone();
                    self.pool
                        .transaction(move |conn| {
                            ApplyChangesTask::run(
                                conn,
                                &registry,
                                resource.as_ref(),
                                &mut valid,
                                None,
                            )?;
                            quarantine::remove(conn, &[id])?;
                            Ok::<_, SyncError>(())
                        })
                        .await?;
                    summary.applied += 1;
                }
                Err(errors) => {
                    let reason = errors
                        .iter()
                        .map(|e| format!("{}: {}", e.code, e.message))
                        .collect::<Vec<_>>()
                        .join("; ");
                    self.keep(entry.id, reason).await?;
                    summary.still_refused += 1;
                }
            }
        }
        Ok(summary)
    }
}

impl RetryQuarantineAction {
    async fn keep(&self, id: i64, reason: String) -> Result<(), SyncError> {
        self.pool
            .run(move |conn| quarantine::set_reason(conn, id, &reason).map_err(SyncError::from))
            .await
    }
}

/// Forget a parked entry for good. How many went (0: no such id).
pub struct DiscardQuarantineAction {
    pool: DbPool,
}

impl DiscardQuarantineAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for DiscardQuarantineAction {
    const NAME: &'static str = "sync.discard_quarantine";
    type Input = i64;
    type Output = usize;
    type Error = SyncError;

    async fn run(&self, id: i64) -> Result<usize, SyncError> {
        self.pool
            .run(move |conn| quarantine::remove(conn, &[id]).map_err(SyncError::from))
            .await
    }
}
