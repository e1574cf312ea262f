//! Rows of the sync tables.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::data::schema::{sync_changelog, sync_outbox};

/// One entry of the changelog.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
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
