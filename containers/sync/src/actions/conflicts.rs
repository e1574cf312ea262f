//! The conflict ledger (`regionsync conflicts list | show`): the remote writes that lost by
//! last-writer-wins when they arrived here, each with both versions and both payloads, as
//! `ApplyChangesTask` recorded them in `sync_conflicts`.

use chrono::{DateTime, Utc};
use ship::contracts::Hlc;
use ship::parents::Action;
use ship::DbPool;

use crate::data::conflicts;
pub use crate::data::conflicts::{Conflict, ConflictFilter, ConflictSummary};
use crate::errors::SyncError;

/// The most conflicts one list returns.
pub const MAX_CONFLICTS_LISTED: u32 = 10_000;

/// The rule that decided, in words: `reason` as `ApplyChangesTask` records it.
pub fn rule_in_words(reason: &str) -> &'static str {
    match reason {
        "older_hlc" => "the later clock wins",
        "equal_hlc_origin_tiebreak" => "equal clocks: the greater origin wins",
        _ => "an unknown rule",
    }
}

/// The wall-clock part of an HLC (its high 48 bits, milliseconds since the Unix epoch) as a
/// UTC time; `None` for a value no clock issues (negative).
pub fn hlc_time(hlc: i64) -> Option<DateTime<Utc>> {
    let physical = Hlc::from_i64(hlc).ok()?.physical_ms();
    DateTime::from_timestamp_millis(i64::try_from(physical).ok()?)
}

/// One page of the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListConflictsInput {
    pub filter: ConflictFilter,
    /// At most this many (1 to [`MAX_CONFLICTS_LISTED`]).
    pub limit: i64,
}

/// The recorded conflicts that pass the filter, newest first, without their payloads.
pub struct ListConflictsAction {
    pool: DbPool,
}

impl ListConflictsAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for ListConflictsAction {
    const NAME: &'static str = "sync.list_conflicts";
    type Input = ListConflictsInput;
    type Output = Vec<ConflictSummary>;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.list_conflicts", skip_all, fields(limit = input.limit))]
    async fn run(&self, input: ListConflictsInput) -> Result<Vec<ConflictSummary>, SyncError> {
        if !(1..=i64::from(MAX_CONFLICTS_LISTED)).contains(&input.limit) {
            return Err(SyncError::InvalidLimit {
                max: MAX_CONFLICTS_LISTED,
            });
        }
        self.pool
            .run(move |conn| {
                conflicts::list(conn, &input.filter, input.limit).map_err(SyncError::from)
            })
            .await
    }
}

/// One recorded conflict with both payloads; `None` when no conflict has the id.
pub struct GetConflictAction {
    pool: DbPool,
}

impl GetConflictAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for GetConflictAction {
    const NAME: &'static str = "sync.get_conflict";
    /// The conflict's id.
    type Input = i64;
    type Output = Option<Conflict>;
    type Error = SyncError;

    #[tracing::instrument(name = "sync.get_conflict", skip_all, fields(id = id))]
    async fn run(&self, id: i64) -> Result<Option<Conflict>, SyncError> {
        self.pool
            .run(move |conn| conflicts::get(conn, id).map_err(SyncError::from))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_reads_in_words() {
        assert_eq!(rule_in_words("older_hlc"), "the later clock wins");
        assert_eq!(
            rule_in_words("equal_hlc_origin_tiebreak"),
            "equal clocks: the greater origin wins"
        );
        assert_eq!(rule_in_words("other"), "an unknown rule");
    }

    #[test]
    fn an_hlc_reads_as_its_wall_clock_part() {
        // 2026-12-06T00:31:10.123Z, counter 5.
        let ms = 1_796_517_070_123_i64;
        let t = hlc_time((ms << 16) | 5);
        assert_eq!(
            t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            Some("2026-12-06T00:31:10.123Z".to_string())
        );
        assert_eq!(hlc_time(-1), None);
    }
}
