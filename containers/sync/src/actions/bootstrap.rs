//! Bootstrap: load a peer's snapshot of one resource (`GET /sync/{resource}/snapshot`), page by
//! page, through the same validation and last-writer-wins apply as ops — so a live local or
//! remote write is never overwritten by an older snapshot row — then continue pulling the
//! peer's feed from the snapshot's watermark (ADR 0011).
//!
//! Each page is applied in one transaction with the position to resume from
//! (`sync_bootstraps`), so a bootstrap killed mid-way resumes from its last applied page. The
//! last page's transaction also stores the pull cursor (the watermark), clears the peer's
//! `bootstrap_needed` flag and forgets the progress row. Live sync goes on meanwhile: local
//! writes, pushes in and other peers' pulls take the same row locks as any apply.

use std::sync::Arc;

use serde_json::{json, Value};
use ship::contracts::{HybridClock, PeerDirectory, Refresh, ResourceRegistry};
use ship::parents::Action;
use ship::DbPool;

use crate::data::{bootstraps, cursors};
use crate::errors::SyncError;
use crate::tasks::apply_changes::{ApplyChangesTask, OpStatus};
use crate::tasks::fetch_snapshot::FetchSnapshotTask;
use crate::tasks::observe_peer::ObservePeerTask;
use crate::tasks::validate_ops::{Origins, ValidateOpsTask};

pub struct BootstrapInput {
    pub peer: String,
    pub resource: String,
    /// Rows per page asked of the peer.
    pub page_limit: u32,
    /// Stop after this many pages (a later run resumes where this one stopped).
    pub max_pages: u32,
    /// Started by the pull job after a 410 (`sync.bootstrap = "auto"`): refuses to start
    /// again when the pull right after a finished bootstrap met 410 once more (a loop). An
    /// operator's run (`false`) always starts (a new snapshot, after a finished or looping one).
    pub auto: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BootstrapSummary {
    pub pages: u32,
    /// Rows applied over the whole bootstrap so far (also by earlier, interrupted runs).
    pub rows: i64,
    pub applied: usize,
    pub stale: usize,
    pub duplicate: usize,
    /// Ops kept until a row they name arrives (ADR 0015).
    pub parked: usize,
    /// True when the last page is applied and the pull continues from the watermark.
    pub done: bool,
    /// How many rows the peer's snapshot holds, when its first page (read by this run) said.
    pub total_rows: Option<i64>,
}

pub struct BootstrapAction {
    pool: DbPool,
    registry: ResourceRegistry,
    clock: Arc<HybridClock>,
    client: reqwest::Client,
    directory: Arc<dyn PeerDirectory>,
}

impl BootstrapAction {
    pub fn new(
        pool: DbPool,
        registry: ResourceRegistry,
        clock: Arc<HybridClock>,
        client: reqwest::Client,
        directory: Arc<dyn PeerDirectory>,
    ) -> Self {
        Self {
            pool,
            registry,
            clock,
            client,
            directory,
        }
    }
}

impl Action for BootstrapAction {
    const NAME: &'static str = "sync.bootstrap";
    type Input = BootstrapInput;
    type Output = BootstrapSummary;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.bootstrap", skip_all, fields(peer = %input.peer, resource = %input.resource))]
    async fn run(&self, input: BootstrapInput) -> Result<BootstrapSummary, SyncError> {
        let resource = super::synced(&self.registry, &input.resource)?;
        let (peer, name) = (input.peer.clone(), resource.name());
        let (ours, progress) = self
            .pool
            .run(move |conn| {
                let ours = ship::db::incarnation(conn)?.id;
                Ok::<_, SyncError>((ours, bootstraps::get(conn, &peer, name)?))
            })
            .await?;
        let over = |state: &str| state == bootstraps::FINISHED || state == bootstraps::LOOPING;
        let progress = match progress {
            Some((state, _)) if input.auto && over(&state) => {
                // The feed answered 410 again right after a bootstrap: never a loop.
                let (peer, res) = (input.peer.clone(), name);
                self.pool
                    .run(move |conn| {
                        bootstraps::save(conn, &peer, res, bootstraps::LOOPING, 0)
                            .map_err(SyncError::from)
                    })
                    .await?;
                return Err(SyncError::BootstrapLoop {
                    peer: input.peer.clone(),
                    resource: name.to_string(),
                });
            }
            Some((state, _)) if over(&state) => None,
            other => other,
        };
        let mut summary = BootstrapSummary {
            rows: progress.as_ref().map_or(0, |(_, rows)| *rows),
            ..BootstrapSummary::default()
        };
        let mut after = progress.map(|(cursor, _)| cursor);
        let mut refreshed = false;
        while summary.pages < input.max_pages {
            let refresh = if refreshed {
                Refresh::Force
            } else {
                Refresh::IfNeeded
            };
            let grant = self.directory.grant(&input.peer, refresh).await?;
            let fetched = FetchSnapshotTask::run(
                &self.client,
                &grant,
                name,
                after.as_deref(),
                input.page_limit,
                (&ours, self.registry.policy(name)),
            )
            .await;
            let page = match fetched {
                Err(SyncError::PeerAuthRefused { code, .. })
                    if code == "token_expired" && !refreshed =>
                {
                    refreshed = true;
                    continue;
                }
                // The peer pruned past this snapshot's watermark, or no longer continues it (its
                // database was replaced or restored: `cursor_diverged`): the next run starts a
                // new snapshot (never a loop within this one, never stuck on a dead cursor).
                Err(e @ SyncError::PeerUnreachable { .. }) => {
                    // Its address may have changed at the broker: ask again next time (a
                    // region that joins meets a peer still registered at its old address).
                    self.directory.invalidate(&input.peer);
                    return Err(e);
                }
                Err(e @ SyncError::PeerCursorExpired { .. })
                | Err(e @ SyncError::PeerCursorDiverged { .. })
                | Err(e @ SyncError::PeerRefused { status: 400, .. }) => {
                    let (peer, res) = (input.peer.clone(), name);
                    self.pool
                        .run(move |conn| {
                            bootstraps::delete(conn, &peer, res).map_err(SyncError::from)
                        })
                        .await?;
                    return Err(e);
                }
                other => other?,
            };
            refreshed = false;
            summary.pages += 1;
            if page.total_rows.is_some() {
                summary.total_rows = page.total_rows.filter(|n| *n >= 0);
            }
            // What the peer hands us to store must be ours to read back: a feed cursor as a
            // watermark, a snapshot cursor that fits its column.
            let watermark_at = crate::cursor::FeedCursor::decode(&page.watermark).map_err(|e| {
                SyncError::PeerRefused {
                    peer: input.peer.clone(),
                    status: 200,
                    message: format!("the snapshot's watermark is not a feed cursor: {e}"),
                }
            })?;
            if page
                .next_cursor
                .as_ref()
                .is_some_and(|c| c.is_empty() || c.len() > 200 || c.starts_with('!'))
            {
                return Err(SyncError::PeerRefused {
                    peer: input.peer.clone(),
                    status: 200,
                    message: "the snapshot's next_cursor is empty or longer than 200 bytes".into(),
                });
            }
            let ours = resource.schema_version();
            if page.schema_version != ours {
                return Err(SyncError::PeerRefused {
                    peer: input.peer.clone(),
                    status: 200,
                    message: format!(
                        "the peer serves `{name}` at schema version {} and this region is at \
                         {ours}; upgrade the older region first",
                        page.schema_version
                    ),
                });
            }
            if page.has_more && (page.next_cursor.is_none() || page.next_cursor == after) {
                return Err(SyncError::PeerRefused {
                    peer: input.peer.clone(),
                    status: 200,
                    message: "the peer's snapshot cursor did not advance although it has more"
                        .into(),
                });
            }
            let ops: Vec<Value> = page.rows.iter().enumerate().map(row_to_op).collect();
            let mut valid =
                ValidateOpsTask::run_owned(resource.as_ref(), &self.clock, Origins::Any, ops)
                    .map_err(|errors| SyncError::PeerSentInvalid {
                        peer: input.peer.clone(),
                        errors,
                    })?;
            let newest = valid.iter().map(|op| op.change.version.hlc).max();
            let rows = summary.rows + valid.len() as i64;
            let (peer, res, next, watermark, theirs) = (
                input.peer.clone(),
                Arc::clone(&resource),
                page.next_cursor.clone().filter(|_| page.has_more),
                page.watermark.clone(),
                page.incarnation.clone().unwrap_or_default(),
            );
            let registry = self.registry.clone();
            let statuses = self
                .pool
                .transaction(move |conn| {
                    ObservePeerTask::run(conn, &peer, &theirs)?;
                    let statuses = ApplyChangesTask::run(
                        conn,
                        &registry,
                        res.as_ref(),
                        &mut valid,
                        // A snapshot holds this region's own rows too: a row per entry.
                        None,
                    )?;
                    match &next {
                        Some(next) => bootstraps::save(conn, &peer, res.name(), next, rows)?,
                        None => {
                            // The last page: pull the feed from the watermark from now on; the
                            // bootstrap is over with the first pull that succeeds.
                            // Never behind where a pull running meanwhile already got in the
                            // same feed (the same incarnation of the peer).
                            let incarnation = ship::db::incarnation(conn)?.id;
                            let stored = cursors::get(conn, &peer, res.name(), &incarnation)?
                                .and_then(|c| crate::cursor::FeedCursor::decode(&c).ok());
                            let ahead = stored.is_some_and(|s| {
                                s.seq >= watermark_at.seq && same_feed(&s, &watermark_at)
                            });
                            if !ahead {
                                cursors::save(conn, &peer, res.name(), &watermark, &incarnation)?;
                            }
                            cursors::clear_bootstrap(conn, &peer, res.name())?;
                            bootstraps::save(conn, &peer, res.name(), bootstraps::FINISHED, rows)?;
                        }
                    }
                    Ok::<_, SyncError>(statuses)
                })
                .await?;
            if let Some(newest) = newest {
                // Checked against the drift bound by the validation above; only after commit.
                let _ = self.clock.observe(newest);
            }
            summary.rows = rows;
            for status in statuses {
                match status {
                    OpStatus::Applied => summary.applied += 1,
                    OpStatus::Stale => summary.stale += 1,
                    OpStatus::Duplicate => summary.duplicate += 1,
                    OpStatus::Parked => summary.parked += 1,
                }
            }
            if !page.has_more {
                summary.done = true;
                break;
            }
            after = page.next_cursor;
        }
        tracing::debug!(
            pages = summary.pages,
            rows = summary.rows,
            applied = summary.applied,
            done = summary.done,
            "bootstrap progressed"
        );
        Ok(summary)
    }
}

/// Two cursors into the same feed: issued by the same incarnation of the peer's database.
fn same_feed(a: &crate::cursor::FeedCursor, b: &crate::cursor::FeedCursor) -> bool {
    let incarnation =
        |c: &crate::cursor::FeedCursor| c.anchor.as_ref().map(|a| a.incarnation.clone());
    incarnation(a) == incarnation(b)
}

/// A snapshot row as an op (`op_id` = `snapshot-<index>`, the other fields as they are).
fn row_to_op((index, row): (usize, &Value)) -> Value {
    json!({
        "op_id": format!("snapshot-{index}"),
        "entity_id": row["entity_id"],
        "kind": row["kind"],
        "hlc": row["hlc"],
        "origin": row["origin"],
        "payload": row["payload"],
    })
}
