//! Refusal counts (`sync_refusals`).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::sync_refusals;

/// Count `n` more refusals of `kind` from `source`.
pub fn add(conn: &mut AnyConnection, kind: &str, source: &str, n: i64) -> QueryResult<()> {
    let now = ship::db::utc_now();
    for _ in 0..2 {
        let updated = diesel::update(sync_refusals::table.find((kind, source)))
            .set((
                sync_refusals::refused.eq(sync_refusals::refused + n),
                sync_refusals::last_at.eq(now),
            ))
            .execute(conn)?;
        if updated > 0 {
            return Ok(());
        }
        let inserted = ship::insert_if_absent!(
            conn,
            sync_refusals::table,
            (
                sync_refusals::kind.eq(kind),
                sync_refusals::source.eq(source),
                sync_refusals::refused.eq(n),
                sync_refusals::last_at.eq(now),
            )
        );
        match inserted {
            // Inserted concurrently: add to it.
            Ok(0) => continue,
            other => return other.map(drop),
        }
    }
    Ok(())
}

/// Refusal counts whose last refusal is after `since`: (kind, source, refused, last).
pub fn recent(
    conn: &mut AnyConnection,
    since: NaiveDateTime,
) -> QueryResult<Vec<(String, String, i64, NaiveDateTime)>> {
    sync_refusals::table
        .filter(sync_refusals::last_at.gt(since))
        .select((
            sync_refusals::kind,
            sync_refusals::source,
            sync_refusals::refused,
            sync_refusals::last_at,
        ))
        .load(conn)
}
