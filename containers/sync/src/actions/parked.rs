//! Parked ops (ADR 0015): the sweep that applies those whose row has arrived
//! (`sync.release_parked`, and `regionsync sync parked release`), and what is parked
//! (`regionsync sync parked list`, `sync status`, `/metrics`).

use chrono::NaiveDateTime;
use ship::contracts::ResourceRegistry;
use ship::parents::Action;
use ship::DbPool;

use crate::data::parked_ops::{self, ParkedOp};
use crate::errors::SyncError;
use crate::tasks::apply_changes::ApplyChangesTask;

/// Parked ops looked at per sweep transaction.
const SWEEP: i64 = 1_000;

/// Apply the parked ops whose missing row is here now, oldest first, looking at a thousand
/// per transaction, through all of them. The inline release (a batch that brings a row
/// releases the ops waiting for it) does this at once; the sweep catches an op that parked
/// while its row was being written by a concurrent transaction (MariaDB), and ops parked
/// before a restart of the process that would have released them.
pub struct ReleaseParkedAction {
    pool: DbPool,
    registry: ResourceRegistry,
}

impl ReleaseParkedAction {
    pub fn new(pool: DbPool, registry: ResourceRegistry) -> Self {
        Self { pool, registry }
    }
}

impl Action for ReleaseParkedAction {
    const NAME: &'static str = "sync.release_parked";
    type Input = ();
    /// How many ops were released (applied, found stale or duplicate, or parked again on
    /// another row they name).
    type Output = usize;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.release_parked", skip_all)]
    async fn run(&self, _input: ()) -> Result<usize, SyncError> {
        let (mut released, mut offset) = (0, 0i64);
        // Bounded: a million parked ops looked at per run at the most.
        for _ in 0..1_000 {
            let registry = self.registry.clone();
            let (seen, now) = self
                .pool
                .transaction(move |conn| {
                    ApplyChangesTask::release_ready(conn, &registry, offset, SWEEP)
                })
                .await?;
            released += now;
            if (seen as i64) < SWEEP {
                break;
            }
            // The released ones left the table (or parked again, at its end).
            offset += (seen - now) as i64;
        }
        if released > 0 {
            tracing::info!(released, "parked ops released by the sweep");
        }
        Ok(released)
    }
}

/// Parked ops of one resource: how many, since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedCount {
    pub resource: String,
    pub count: i64,
    pub oldest: NaiveDateTime,
}

/// What is parked: the counts per resource and the oldest `limit` ops.
#[derive(Debug, Clone, Default)]
pub struct ParkedView {
    pub counts: Vec<ParkedCount>,
    pub oldest: Vec<ParkedOp>,
}

pub struct ListParkedAction {
    pool: DbPool,
}

impl ListParkedAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for ListParkedAction {
    const NAME: &'static str = "sync.list_parked";
    /// How many of the oldest ops to list (0: counts only).
    type Input = i64;
    type Output = ParkedView;
    type Error = SyncError;

    async fn run(&self, limit: i64) -> Result<ParkedView, SyncError> {
        self.pool
            .run(move |conn| {
                let counts = parked_ops::counts(conn)?
                    .into_iter()
                    .map(|(resource, count, oldest)| ParkedCount {
                        resource,
                        count,
                        oldest,
                    })
                    .collect();
                let oldest = if limit > 0 {
                    parked_ops::oldest(conn, 0, limit)?
                } else {
                    Vec::new()
                };
                Ok::<_, SyncError>(ParkedView { counts, oldest })
            })
            .await
    }
}
