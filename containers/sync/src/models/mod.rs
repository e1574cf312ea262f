//! Rows of the sync tables.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::data::schema::{sync_changelog, sync_outbox};

/// One entry of the changelog.
#[derive(Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = sync_changelog)]
// Every value is bound as given (ADR 0013): with diesel's default, each is `DEFAULT`-able, so
// MariaDB never caches the INSERT and SQLite splits a multi-row one into one per row.
#[diesel(treat_none_as_default_value = false)]
pub struct ChangeLogEntry {
    pub resource: String,
    pub seq: i64,
    pub entity_id: String,
    pub op: String,
    /// The full row state as JSON text.
    pub payload: String,
    pub hlc: i64,
    pub origin_region: String,
    pub schema_version: i32,
    pub created_at: NaiveDateTime,
}

impl ChangeLogEntry {
    /// `change`'s entry, its seq left to the append (`changelog::append` numbers it).
    pub fn of(
        change: &ship::contracts::Change,
        schema_version: i32,
        created_at: NaiveDateTime,
    ) -> Self {
        Self {
            resource: change.resource.clone(),
            seq: 0,
            entity_id: change.entity_id.clone(),
            op: change.kind.as_str().to_string(),
            payload: change.payload.text(),
            hlc: change.version.hlc.as_i64(),
            origin_region: change.version.origin.clone(),
            schema_version,
            created_at,
        }
    }
}

/// A stored row of the changelog (ADR 0026): one entry (`first_seq` `None`), or a *batch row*
/// (op [`crate::data::changelog::BATCH_OP`]) holding the entries `first_seq ..= seq`, upserts
/// of one origin, its payload their `[entity_id, hlc, payload]` in seq order and its `hlc` the
/// last one's (the largest). Only the apply writes batch rows, and never of this region's own
/// writes: delivery, which reads this region's own entries, sees rows of one entry only.
#[derive(Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = sync_changelog)]
#[diesel(treat_none_as_default_value = false)]
pub struct ChangeLogRow {
    /// Every column but `first_seq`: a row of one entry is that entry; a batch row's `seq` is
    /// the last it covers, its `entity_id` empty, its `op` `BATCH_OP`, its `payload` its
    /// entries and its `hlc` its last entry's.
    #[diesel(embed)]
    pub entry: ChangeLogEntry,
    /// The first seq a batch row covers; `None`: the row is one entry.
    pub first_seq: Option<i64>,
}

impl ChangeLogRow {
    /// The row of one entry `entry`.
    pub fn single(entry: ChangeLogEntry) -> Self {
        Self {
            entry,
            first_seq: None,
        }
    }

    /// The entries the row holds, in seq order: itself, or a batch row's from its payload (an
    /// error when the payload does not hold exactly the seqs the row covers).
    pub fn entries(self) -> diesel::QueryResult<Vec<ChangeLogEntry>> {
        let row = self.entry;
        if row.op != crate::data::changelog::BATCH_OP {
            return Ok(vec![row]);
        }
        let (first, elements) =
            crate::data::changelog::elements(&row.resource, row.seq, self.first_seq, &row.payload)?;
        Ok((first..)
            .zip(elements)
            .map(|(seq, e)| ChangeLogEntry {
                resource: row.resource.clone(),
                seq,
                entity_id: e.0.into_owned(),
                op: ship::contracts::OpKind::Upsert.as_str().to_string(),
                payload: e.2.get().to_string(),
                hlc: e.1,
                origin_region: row.origin_region.clone(),
                schema_version: row.schema_version,
                created_at: row.created_at,
            })
            .collect())
    }
}

/// A changelog entry as the feed serves it: the columns a page's JSON carries, nothing else
/// (no `resource`: the page names it once; no `created_at`: not served, and parsing it per row
/// was a tenth of a page's cost on SQLite, B3).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = sync_changelog)]
pub struct FeedRow {
    pub seq: i64,
    pub entity_id: String,
    pub op: String,
    /// The full row state as JSON text.
    pub payload: String,
    pub hlc: i64,
    pub origin_region: String,
    pub schema_version: i32,
}

/// Outbox status values.
pub mod outbox_status {
    pub const PENDING: &str = "pending";
    pub const DELIVERED: &str = "delivered";
    pub const DEAD: &str = "dead";
}

/// A new row of a stream's dead-letter list: change `(resource, seq)` singled out for `peer`
/// (ADR 0014: written dead; `outbox retry` makes it pending, its range delivered).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = sync_outbox)]
// Every value is bound as given (ADR 0013): with diesel's default, each is `DEFAULT`-able, so
// MariaDB never caches the INSERT and SQLite splits a multi-row one into one per row.
#[diesel(treat_none_as_default_value = false)]
pub struct NewOutboxEntry<'a> {
    pub peer: &'a str,
    pub resource: &'a str,
    pub seq: i64,
    pub status: &'a str,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_error: Option<&'a str>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}
pub use crate::data::quarantine::Quarantined;

/// A peer's last measured clock offset (ADR 0016).
pub use crate::data::peer_clocks::PeerClock;

/// A reader of the feed and the oldest entry it has not read (ADR 0016).
pub use crate::data::feed_acks::FeedReader;
