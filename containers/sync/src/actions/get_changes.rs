//! GetChanges: one page of a resource's changelog after a cursor (`GET /sync/{resource}/changes`).
//!
//! Gap safety: the watermark (`sync_sequences.last_seq`) is read first and the page is bounded
//! by it. Appends bump `last_seq` under the row lock in their own transaction, so when a
//! watermark `H` is visible every entry `seq <= H` is committed and visible too: a page never
//! skips an entry that commits later with a lower seq.
//!
//! Continuity (ADR 0012): the cursor's anchor is checked first (`CheckCursorTask`). A cursor
//! this feed no longer continues is answered `409 cursor_diverged` (the reader bootstraps);
//! when the cursor proves this database is an older copy of itself, the database gets a new
//! incarnation here, which voids this region's own pull cursors (it bootstraps from its peers
//! and so gets back its own writes that the copy lacks). Every cursor handed out is anchored.
//!
//! Acknowledgment: a reader's `since` says it has applied everything up to that cursor (a
//! puller stores a cursor only in the transaction that applied the page it ends), so a read
//! that is answered records it for the calling region (`data::feed_acks`), and prune keeps
//! what the reader has not acknowledged. The write is a separate statement after the page was
//! read, never part of the answer: if it fails (or times out waiting for SQLite's write lock)
//! the read still answers and the acknowledgment stays where it was — lower, so prune keeps
//! more (a reader's first acknowledgment excepted: until one write succeeded the reader holds
//! nothing back). Recording it inside a transaction with the read would buy nothing (the
//! acknowledgment is a lower bound either way) and would make the read fail with the write.

use diesel::result::Error as DieselError;
use diesel::QueryResult;
use ship::contracts::{ConflictPolicy, ResourceRegistry};
use ship::parents::Action;
use ship::{AnyConnection, DbPool};

use crate::cursor::FeedCursor;
use crate::data::{changelog, feed_acks};
use crate::errors::SyncError;
use crate::models::{ChangeLogEntry, FeedRow};
use crate::tasks::check_cursor::CheckCursorTask;

pub struct GetChangesInput {
    pub resource: String,
    /// `None` = from the beginning.
    pub since: Option<FeedCursor>,
    pub limit: u32,
    /// Leave out entries from this origin (the caller's own region).
    pub exclude_origin: Option<String>,
    /// The calling region (the token's `sub`): an answered read records `since` as its
    /// acknowledgment of the resource. `None` records nothing.
    pub reader: Option<String>,
    /// What the reader acknowledges when it is behind `since` (a reader that fetches a page
    /// ahead while it applies the one before); `None`: `since`.
    pub ack: Option<i64>,
    /// The reader's conflict policy for the resource (its `Regionsync-Conflict-Policy`
    /// header, '' when absent: `lww`): another than ours is refused (409
    /// `conflict_policy_mismatch`). `None`: not judged (an in-process caller).
    pub reader_policy: Option<String>,
}

/// A page of the feed. `changes` holds its entries as the caller took them: the entries
/// themselves for [`GetChangesAction::run`] ([`ChangesPage`]), or what an [`EntrySink`] made of
/// them as they were read ([`GetChangesAction::run_into`]: the HTTP answer writes its JSON).
#[derive(Debug)]
pub struct Page<T> {
    pub resource: String,
    pub changes: T,
    pub next_cursor: FeedCursor,
    pub has_more: bool,
    pub high_watermark: FeedCursor,
    pub schema_version: u32,
    /// The incarnation of the database that served the page.
    pub incarnation: String,
    /// How this region decides the resource's conflicts (answered in the
    /// `Regionsync-Conflict-Policy` header; a reader with another policy refuses the page).
    pub policy: ConflictPolicy,
}

/// A page with its entries as changelog rows (in-process callers).
pub type ChangesPage = Page<Vec<ChangeLogEntry>>;

/// What a reader of the feed does with a page's entries, one by one as they are read, on the
/// blocking pool inside the read (so a page is never held as a thousand rows: B3).
pub trait EntrySink: Send + 'static {
    /// Before the first entry, with the resource's name.
    fn begin(&mut self, resource: &str) -> Result<(), SinkError>;
    /// Each entry, in feed order.
    fn entry(&mut self, entry: &FeedRow) -> Result<(), SinkError>;
}

/// Why an [`EntrySink`] could not take an entry (the read fails with it).
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

pub struct GetChangesAction {
    pool: DbPool,
    registry: ResourceRegistry,
}

impl GetChangesAction {
    pub fn new(pool: DbPool, registry: ResourceRegistry) -> Self {
        Self { pool, registry }
    }
}

/// Best effort: a failed acknowledgment is logged and the read goes on.
fn record_ack(conn: &mut AnyConnection, reader: &str, resource: &str, seq: i64) {
    if ship::config::check_region_id(reader).is_err() {
        tracing::warn!(
            reader,
            "a feed reader whose id is not a region id: its acknowledgment is not recorded"
        );
        return;
    }
    if let Err(e) = feed_acks::record(conn, reader, resource, seq, ship::db::utc_now()) {
        tracing::warn!(error = %e, reader, seq, "could not record the reader's acknowledgment; the read is answered anyway");
    }
}

/// The entries of a page as the page query gives them: what the caller made of them, and what
/// the read saw.
type Entries<T> = (T, changelog::PageRead);

impl GetChangesAction {
    /// As [`Action::run`], the page's entries handed to `sink` as they are read instead of
    /// collected (only the columns the feed serves are read: [`FeedRow`]).
    pub async fn run_into<S: EntrySink>(
        &self,
        input: GetChangesInput,
        sink: S,
    ) -> Result<Page<S>, SyncError> {
        self.serve(
            input,
            move |conn, name, after, upto, exclude_origin, limit| {
                let mut sink = sink;
                sink.begin(name).map_err(DieselError::SerializationError)?;
                let read =
                    changelog::page_each(conn, name, after, upto, exclude_origin, limit, |row| {
                        sink.entry(&row).map_err(DieselError::SerializationError)
                    })?;
                Ok((sink, read))
            },
        )
        .await
    }

    /// One page: the watermark, the cursor's check, the entries (`read`), the acknowledgment
    /// and the cursors handed out.
    #[tracing::instrument(name = "sync.get_changes", skip_all, fields(resource = %input.resource))]
    async fn serve<T, R>(&self, input: GetChangesInput, read: R) -> Result<Page<T>, SyncError>
    where
        T: Send + 'static,
        R: FnOnce(
                &mut AnyConnection,
                &'static str,
                i64,
                i64,
                Option<&str>,
                i64,
            ) -> QueryResult<Entries<T>>
            + Send
            + 'static,
    {
        let resource = self
            .registry
            .get(&input.resource)
            .ok_or_else(|| SyncError::UnknownResource(input.resource.clone()))?;
        let schema_version = resource.schema_version();
        let name = resource.name();
        let policy = self.registry.policy(name);
        if let Some(theirs) = input.reader_policy.as_deref() {
            super::apply_ops::check_policy(theirs, name, &self.registry)?;
        }

        self.pool
            .run(move |conn| {
                let (last_seq, pruned_through) = changelog::watermark(conn, name)?;
                let ours = ship::db::incarnation(conn)?;
                let since = input.since.unwrap_or(FeedCursor {
                    seq: 0,
                    anchor: None,
                });
                CheckCursorTask::enforce(
                    conn,
                    name,
                    since.seq,
                    since.anchor.as_ref(),
                    (last_seq, pruned_through),
                    &ours.id,
                )?;
                let since = since.position();
                if since.0 < pruned_through {
                    return Err(SyncError::CursorExpired { pruned_through });
                }
                let limit = i64::from(input.limit);
                let (changes, read) = read(
                    conn,
                    name,
                    since.0,
                    last_seq,
                    input.exclude_origin.as_deref(),
                    limit,
                )?;
                // A prune committed between the watermark read and the page query may have
                // deleted entries after `since`: check again, so such a page is a 410 and never
                // a silent gap.
                let (_, pruned_now) = changelog::watermark(conn, name)?;
                if since.0 < pruned_now {
                    return Err(SyncError::CursorExpired {
                        pruned_through: pruned_now,
                    });
                }
                if let Some(reader) = input.reader.as_deref() {
                    record_ack(
                        conn,
                        reader,
                        name,
                        input.ack.unwrap_or(since.0).min(since.0),
                    );
                }
                // A full page ends at its last entry; a short one has seen every entry through
                // the watermark, even those it left out, unless it stopped short of it on rows
                // it left out (ADR 0026).
                let (next, last) = (read.seen_through, read.last);
                // The clock at a position is at hand when it is the page's last entry.
                let anchor = |conn: &mut AnyConnection, seq: i64| {
                    let known = last.filter(|(s, _)| *s == seq).map(|(_, hlc)| hlc);
                    CheckCursorTask::anchor(conn, name, seq, known, &ours.id)
                };
                Ok(Page {
                    resource: name.to_string(),
                    next_cursor: anchor(conn, next)?,
                    has_more: next < last_seq,
                    high_watermark: anchor(conn, last_seq)?,
                    changes,
                    schema_version,
                    incarnation: ours.id.clone(),
                    policy,
                })
            })
            .await
    }
}

impl Action for GetChangesAction {
    const NAME: &'static str = "sync.get_changes";
    type Input = GetChangesInput;
    type Output = ChangesPage;
    type Error = SyncError;

    async fn run(&self, input: GetChangesInput) -> Result<ChangesPage, SyncError> {
        self.serve(input, |conn, name, after, upto, exclude_origin, limit| {
            changelog::page(conn, name, after, upto, exclude_origin, limit)
        })
        .await
    }
}
