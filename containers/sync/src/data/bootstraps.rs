//! Bootstraps under way: where each one resumes (ADR 0011). `next_cursor` is a snapshot cursor
//! while pages remain, [`FINISHED`] from the last page until the first pull that succeeds
//! after it, and [`LOOPING`] when that pull answered 410 again (no automatic retry).

use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::sync_bootstraps;

/// The bootstrap applied its last page; the pull from the watermark has not succeeded yet.
pub const FINISHED: &str = "";
/// A pull answered 410 right after a finished bootstrap: not retried by itself.
pub const LOOPING: &str = "!loop";

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

/// Bootstraps with pages still to load: (peer, resource, rows applied so far).
pub fn under_way(conn: &mut AnyConnection) -> QueryResult<Vec<(String, String, i64)>> {
    sync_bootstraps::table
        .filter(sync_bootstraps::next_cursor.ne(FINISHED))
        .filter(sync_bootstraps::next_cursor.ne(LOOPING))
        .select((
            sync_bootstraps::peer,
            sync_bootstraps::resource,
            sync_bootstraps::rows_applied,
        ))
        .load(conn)
}

/// Bootstraps stopped as a loop (a 410 right after a finished one): (peer, resource, since).
pub fn looping(
    conn: &mut AnyConnection,
) -> QueryResult<Vec<(String, String, chrono::NaiveDateTime)>> {
    sync_bootstraps::table
        .filter(sync_bootstraps::next_cursor.eq(LOOPING))
        .select((
            sync_bootstraps::peer,
            sync_bootstraps::resource,
            sync_bootstraps::updated_at,
        ))
        .load(conn)
}

/// A pull succeeded: a finished bootstrap is over (one in progress or looping stays).
pub fn forget_finished(conn: &mut AnyConnection, peer: &str, resource: &str) -> QueryResult<()> {
    diesel::delete(
        sync_bootstraps::table
            .find((peer, resource))
            .filter(sync_bootstraps::next_cursor.eq(FINISHED)),
    )
    .execute(conn)
    .map(drop)
}

/// The bootstrap is forgotten (its snapshot can no longer continue).
pub fn delete(conn: &mut AnyConnection, peer: &str, resource: &str) -> QueryResult<()> {
    diesel::delete(sync_bootstraps::table.find((peer, resource)))
        .execute(conn)
        .map(drop)
}
