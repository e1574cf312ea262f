//! Bootstraps under way: where each one resumes (ADR 0011).

use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::sync_bootstraps;

/// The bootstrap of `(peer, resource)` under way: (next snapshot cursor, rows applied so far).
pub fn get(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
) -> QueryResult<Option<(String, i64)>> {
    sync_bootstraps::table
        .find((peer, resource))
        .select((sync_bootstraps::next_cursor, sync_bootstraps::rows_applied))
        .first(conn)
        .optional()
}

/// Record where the bootstrap resumes; run in the transaction that applied the page.
pub fn save(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    next_cursor: &str,
    rows_applied: i64,
) -> QueryResult<()> {
    let now = ship::db::utc_now();
    let updated = diesel::update(sync_bootstraps::table.find((peer, resource)))
        .set((
            sync_bootstraps::next_cursor.eq(next_cursor),
            sync_bootstraps::rows_applied.eq(rows_applied),
            sync_bootstraps::updated_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(sync_bootstraps::table)
            .values((
                sync_bootstraps::peer.eq(peer),
                sync_bootstraps::resource.eq(resource),
                sync_bootstraps::next_cursor.eq(next_cursor),
                sync_bootstraps::rows_applied.eq(rows_applied),
                sync_bootstraps::started_at.eq(now),
                sync_bootstraps::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The bootstrap is over (finished, or its snapshot can no longer continue).
pub fn delete(conn: &mut AnyConnection, peer: &str, resource: &str) -> QueryResult<()> {
    diesel::delete(sync_bootstraps::table.find((peer, resource)))
        .execute(conn)
        .map(drop)
}
