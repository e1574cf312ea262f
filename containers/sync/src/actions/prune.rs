//! Prune (retention, SYNC-PROTOCOL §10): delivered outbox entries after `outbox_retention`;
//! changelog entries only when older than `changelog_retention` and owed to no peer (see
//! `data::prune`). Tombstones are not purged yet: a purged tombstone lets an older write that
//! is still in flight resurrect the row, so purging needs every peer's acknowledgement of the
//! delete, which the outbox only keeps for `outbox_retention`.

use std::time::Duration;

use ship::contracts::ResourceRegistry;
use ship::parents::Action;
use ship::DbPool;

use crate::data::prune;
use crate::errors::SyncError;

#[derive(Debug, Clone, Copy)]
pub struct PruneInput {
    pub outbox_retention: Duration,
    pub changelog_retention: Duration,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneSummary {
    pub outbox_deleted: usize,
    pub changelog_deleted: i64,
}

pub struct PruneAction {
    pool: DbPool,
    registry: ResourceRegistry,
}

impl PruneAction {
    pub fn new(pool: DbPool, registry: ResourceRegistry) -> Self {
        Self { pool, registry }
    }
}

fn before(retention: Duration) -> chrono::NaiveDateTime {
    ship::db::utc_now()
        - chrono::Duration::from_std(retention).unwrap_or_else(|_| chrono::Duration::days(36_500))
}

impl Action for PruneAction {
    const NAME: &'static str = "sync.prune";
    type Input = PruneInput;
    type Output = PruneSummary;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.prune", skip_all)]
    async fn run(&self, input: PruneInput) -> Result<PruneSummary, SyncError> {
        let outbox_before = before(input.outbox_retention);
        let outbox_deleted = self
            .pool
            .transaction(move |conn| {
                prune::delivered_outbox(conn, outbox_before).map_err(SyncError::from)
            })
            .await?;
        let mut summary = PruneSummary {
            outbox_deleted,
            ..PruneSummary::default()
        };
        let changelog_before = before(input.changelog_retention);
        for name in self.registry.names() {
            summary.changelog_deleted += self
                .pool
                .transaction(move |conn| {
                    prune::changelog(conn, name, changelog_before).map_err(SyncError::from)
                })
                .await?;
        }
        tracing::info!(
            outbox = summary.outbox_deleted,
            changelog = summary.changelog_deleted,
            "pruned"
        );
        Ok(summary)
    }
}
