//! GetSnapshot: a page of a resource's rows (`GET /sync/{resource}/snapshot`), for a region
//! that joins with data that exists or recovers from `410 cursor_expired` (ADR 0011).
//!
//! The first page reads the resource's committed changelog watermark `W` **before** it reads
//! any row; every later page carries `W` in its cursor. Every change at or below `W` is
//! committed before its row is read (gap safety, PROTOCOL.md), so the rows served reflect at
//! least every change up to `W`; a reader that applies every page by last-writer-wins and then
//! pulls the feed from `W` gets every change after it, and a row read newer than `W` is
//! replayed by the feed as `duplicate` or `stale`. Nothing is lost, nothing regresses.
//!
//! The cursor names the incarnation of the database that served the first page (ADR 0012): a
//! snapshot is continued only by that incarnation (`409 cursor_diverged` otherwise: the reader
//! starts a new one), and its watermark is handed out as an anchored feed cursor.
//!
//! Each answered page acknowledges `W` for the reader (`sync_feed_acks`), so prune keeps the
//! feed after `W` for as long as the reader needs it to continue.

use ship::contracts::{Change, ConflictPolicy, ResourceRegistry, Version};
use ship::parents::Action;
use ship::DbPool;

use crate::cursor::{Anchor, FeedCursor, SnapshotCursor};
use crate::data::{changelog, feed_acks};
use crate::errors::SyncError;
use crate::tasks::check_cursor::CheckCursorTask;

pub struct GetSnapshotInput {
    pub resource: String,
    /// `None` = the first page (a new watermark).
    pub after: Option<SnapshotCursor>,
    pub limit: u32,
    /// The page's payloads stop growing past this many bytes (at least one row is served).
    pub max_bytes: usize,
    /// The calling region (the token's `sub`): each page acknowledges the watermark for it.
    pub reader: Option<String>,
    /// The reader's conflict policy (`Regionsync-Conflict-Policy`), judged as the feed does
    /// (`GetChangesInput::reader_policy`).
    pub reader_policy: Option<String>,
}

#[derive(Debug)]
pub struct SnapshotPage {
    pub resource: String,
    pub rows: Vec<Change>,
    /// Where the next page starts; `None` when this was the last page.
    pub next: Option<SnapshotCursor>,
    /// The changelog position to pull the feed from once every page is applied.
    pub watermark: FeedCursor,
    pub schema_version: u32,
    /// The incarnation of the database that served the page.
    pub incarnation: String,
    /// On the first page, how many rows the snapshot holds (when the resource can tell).
    pub total_rows: Option<i64>,
    /// How this region decides the resource's conflicts (`Regionsync-Conflict-Policy`).
    pub policy: ConflictPolicy,
}

pub struct GetSnapshotAction {
    pool: DbPool,
    registry: ResourceRegistry,
    /// Names rows written before the database was bound to a region (their origin is "").
    region_id: String,
}

impl GetSnapshotAction {
    pub fn new(pool: DbPool, registry: ResourceRegistry, region_id: impl Into<String>) -> Self {
        Self {
            pool,
            registry,
            region_id: region_id.into(),
        }
    }
}

impl Action for GetSnapshotAction {
    const NAME: &'static str = "sync.get_snapshot";
    type Input = GetSnapshotInput;
    type Output = SnapshotPage;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.get_snapshot", skip_all, fields(resource = %input.resource))]
    async fn run(&self, input: GetSnapshotInput) -> Result<SnapshotPage, SyncError> {
        let resource = super::synced(&self.registry, &input.resource)?;
        let region_id = self.region_id.clone();
        let registry_policy = self.registry.policy(resource.name());
        if let Some(theirs) = input.reader_policy.as_deref() {
            super::apply_ops::check_policy(theirs, resource.name(), &self.registry)?;
        }
        self.pool
            .run(move |conn| {
                let name = resource.name();
                let (last_seq, pruned_through) = changelog::watermark(conn, name)?;
                let ours = ship::db::incarnation(conn)?;
                let (watermark, after) = match input.after {
                    None => (last_seq, None),
                    Some(cursor) => {
                        let anchor = cursor.incarnation.as_ref().map(|i| Anchor {
                            hlc: 0,
                            incarnation: i.clone(),
                        });
                        CheckCursorTask::enforce(
                            conn,
                            name,
                            cursor.watermark,
                            anchor.as_ref(),
                            (last_seq, pruned_through),
                            &ours.id,
                        )?;
                        if cursor.watermark < pruned_through {
                            // The feed can no longer continue from this snapshot: a new one.
                            return Err(SyncError::CursorExpired { pruned_through });
                        }
                        (cursor.watermark, Some(cursor.after))
                    }
                };
                let total_rows = match after {
                    None => resource.row_count(conn)?,
                    Some(_) => None,
                };
                let limit = i64::from(input.limit);
                let mut rows = resource.snapshot_page(conn, after.as_deref(), limit)?;
                let mut more = rows.len() as i64 == limit;
                // Bounded by bytes too: stop after the row that crosses `max_bytes`.
                let mut bytes = 0usize;
                if let Some(cut) = rows.iter().position(|row| {
                    bytes += row.payload.to_string().len();
                    bytes > input.max_bytes
                }) {
                    more |= cut + 1 < rows.len();
                    rows.truncate(cut + 1);
                }
                for row in &mut rows {
                    if row.version.origin.is_empty() {
                        row.version = Version::new(row.version.hlc, region_id.clone());
                    }
                }
                if let Some(reader) = input.reader.as_deref() {
                    if ship::config::check_region_id(reader).is_ok() {
                        if let Err(e) =
                            feed_acks::record(conn, reader, name, watermark, ship::db::utc_now())
                        {
                            tracing::warn!(error = %e, reader, "could not record the snapshot reader's watermark");
                        }
                    }
                }
                let next = match rows.last() {
                    Some(last) if more => Some(SnapshotCursor {
                        watermark,
                        incarnation: Some(ours.id.clone()),
                        after: last.entity_id.clone(),
                    }),
                    _ => None,
                };
                let watermark = CheckCursorTask::anchor(conn, name, watermark, None, &ours.id)?;
                Ok(SnapshotPage {
                    resource: name.to_string(),
                    rows,
                    next,
                    watermark,
                    schema_version: resource.schema_version(),
                    incarnation: ours.id,
                    total_rows,
                    policy: registry_policy,
                })
            })
            .await
    }
}
