//! Prune (retention, SYNC-PROTOCOL §10): delivered outbox entries after `outbox_retention`;
//! changelog entries only when older than `changelog_retention`, owed to no push peer and
//! acknowledged by every peer that reads the feed (see `data::prune`, `data::feed_acks`);
//! tombstones after `tombstone_retention` when no peer is still owed (or has not acknowledged)
//! a change of the entity. A purged tombstone lets a write older than the delete that arrives
//! later resurrect the row, so the tombstone retention must outlast the longest partition (the
//! default is 30 days). A tombstone that a row of another resource names (a deleted customer
//! of an order) is kept (ADR 0015).
//!
//! With a feed hold cap (`sync.feed_hold_max_hours`, [`PruneAction::holding_feed_for`], ADR
//! 0016), a reader's acknowledgment holds back only the entries younger than the cap, as
//! PostgreSQL's `max_slot_wal_keep_size` caps a replication slot: older ones go even when a
//! reader has not acknowledged them (it then gets 410 and bootstraps; the
//! `history_loss_risk` alert warns before). What a push peer is owed is never capped.
//!
//! Recorded conflicts (`sync_conflicts`) and their resolutions go after
//! `sync.conflict_retention_days` ([`PruneAction::keeping_conflicts_for`]): the ledger is an
//! audit of what was overwritten, not state any exchange needs, and `/metrics` counts it on
//! every scrape.

use std::sync::Arc;
use std::time::Duration;

use ship::contracts::ResourceRegistry;
use ship::parents::Action;
use ship::DbPool;

use crate::data::prune;
use crate::errors::SyncError;
use crate::tasks::purge_tombstones::{PurgeTombstonesTask, PurgedPage};

#[derive(Debug, Clone, Copy)]
pub struct PruneInput {
    pub outbox_retention: Duration,
    pub changelog_retention: Duration,
    pub tombstone_retention: Duration,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneSummary {
    pub outbox_deleted: usize,
    pub changelog_deleted: i64,
    pub tombstones_purged: usize,
    pub conflicts_deleted: usize,
}

pub struct PruneAction {
    pool: DbPool,
    registry: ResourceRegistry,
    /// The longest a reader's acknowledgment holds an entry back; `None`: for ever.
    feed_hold: Option<Duration>,
    /// How long recorded conflicts are kept; `None`: for ever.
    conflicts_kept: Option<Duration>,
}

impl PruneAction {
    pub fn new(pool: DbPool, registry: ResourceRegistry) -> Self {
        Self {
            pool,
            registry,
            feed_hold: None,
            conflicts_kept: None,
        }
    }

    /// Delete recorded conflicts (and their resolutions) detected more than `keep` ago, unless
    /// resolved less than `keep` ago (`sync.conflict_retention_days`). Without this call, or
    /// with a zero `keep`, they are kept for ever.
    pub fn keeping_conflicts_for(mut self, keep: Duration) -> Self {
        self.conflicts_kept = (!keep.is_zero()).then_some(keep);
        self
    }

    /// Cap what the readers' acknowledgments hold back at entries younger than `cap`
    /// (`sync.feed_hold_max_hours`); a zero `cap` holds for ever (the default).
    pub fn holding_feed_for(mut self, cap: Duration) -> Self {
        self.feed_hold = (!cap.is_zero()).then_some(cap);
        self
    }
}

/// Tombstones purged per resource and run at the most (the next prune goes on).
const PURGE_MAX: usize = 10_000;

impl PruneAction {
    /// Up to [`PURGE_MAX`] of `name`'s tombstones deleted before `before`, a page per
    /// transaction (`PurgeTombstonesTask`: the page's rows stay locked only while their page
    /// is decided), read past the kept ones so they never starve the others.
    async fn purge_tombstones(
        &self,
        name: &'static str,
        before: chrono::NaiveDateTime,
    ) -> Result<usize, SyncError> {
        let Some(resource) = self.registry.get(name).map(Arc::clone) else {
            return Ok(0);
        };
        let mut purged = 0;
        let mut after: Option<String> = None;
        while purged < PURGE_MAX {
            let (registry, resource) = (self.registry.clone(), Arc::clone(&resource));
            let (room, from) = (PURGE_MAX - purged, after.take());
            let page = self
                .pool
                .transaction(move |conn| {
                    PurgeTombstonesTask::run(
                        conn,
                        &registry,
                        resource.as_ref(),
                        before,
                        from.as_deref(),
                        room,
                    )
                })
                .await?;
            match page {
                PurgedPage::Held => {
                    tracing::info!(resource = name, "a feed reader lost history: no tombstone purged until it bootstraps or is forgotten");
                    break;
                }
                PurgedPage::Done => break,
                PurgedPage::Page { purged: n, last } => {
                    purged += n;
                    after = Some(last);
                }
            }
        }
        Ok(purged)
    }
}

/// Recorded conflicts deleted per transaction.
const CONFLICTS_PER_CHUNK: usize = 5_000;

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
        let hold_before = self.feed_hold.map(before);
        for name in self.registry.names() {
            summary.changelog_deleted += self
                .pool
                .transaction(move |conn| {
                    prune::changelog(conn, name, changelog_before, hold_before)
                        .map_err(SyncError::from)
                })
                .await?;
        }
        let tombstones_before = before(input.tombstone_retention);
        for name in self.registry.names() {
            summary.tombstones_purged += self.purge_tombstones(name, tombstones_before).await?;
        }
        if let Some(keep) = self.conflicts_kept {
            let conflicts_before = before(keep);
            // Chunks of their own transactions: a first prune of a long-kept ledger must not
            // be one huge transaction.
            loop {
                let deleted = self
                    .pool
                    .transaction(move |conn| {
                        crate::data::conflicts::delete_detected_before(
                            conn,
                            conflicts_before,
                            CONFLICTS_PER_CHUNK,
                        )
                        .map_err(SyncError::from)
                    })
                    .await?;
                summary.conflicts_deleted += deleted;
                if deleted < CONFLICTS_PER_CHUNK {
                    break;
                }
            }
        }
        tracing::info!(
            conflicts = summary.conflicts_deleted,
            tombstones = summary.tombstones_purged,
            outbox = summary.outbox_deleted,
            changelog = summary.changelog_deleted,
            "pruned"
        );
        Ok(summary)
    }
}
