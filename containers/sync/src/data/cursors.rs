//! Peer cursors: how far this region has pulled each peer's feed, per resource.

use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::sync_peer_cursors;

/// The stored cursor for `(peer, resource)`; `None` before the first pull.
pub fn get(conn: &mut AnyConnection, peer: &str, resource: &str) -> QueryResult<Option<String>> {
    sync_peer_cursors::table
        .find((peer, resource))
        .select(sync_peer_cursors::peer_cursor)
        .first(conn)
        .optional()
}

/// Store `cursor` for `(peer, resource)`; run in the transaction that applied the page. One
/// upsert statement, so two first pulls of the same peer cannot both try to insert.
pub fn save(conn: &mut AnyConnection, peer: &str, resource: &str, cursor: &str) -> QueryResult<()> {
    let now = ship::db::utc_now();
    let row = (
        sync_peer_cursors::peer.eq(peer),
        sync_peer_cursors::resource.eq(resource),
        sync_peer_cursors::peer_cursor.eq(cursor),
        sync_peer_cursors::last_pull_at.eq(now),
        sync_peer_cursors::updated_at.eq(now),
    );
    let changes = (
        sync_peer_cursors::peer_cursor.eq(cursor),
        sync_peer_cursors::last_pull_at.eq(now),
        sync_peer_cursors::updated_at.eq(now),
    );
    match conn {
        AnyConnection::Sqlite(c) => diesel::insert_into(sync_peer_cursors::table)
            .values(row)
            .on_conflict((sync_peer_cursors::peer, sync_peer_cursors::resource))
            .do_update()
            .set(changes)
            .execute(c),
        AnyConnection::Mysql(c) => diesel::insert_into(sync_peer_cursors::table)
            .values(row)
            .on_conflict(diesel::dsl::DuplicatedKeys)
            .do_update()
            .set(changes)
            .execute(c),
    }
    .map(drop)
}

use super::schema::sync_peer_flags;

/// Mark `(peer, resource)` as needing a bootstrap (its feed answered 410); keeps the first
/// time it was seen.
pub fn flag_bootstrap(conn: &mut AnyConnection, peer: &str, resource: &str) -> QueryResult<()> {
    let exists = sync_peer_flags::table
        .find((peer, resource))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if !exists {
        let inserted = diesel::insert_into(sync_peer_flags::table)
            .values((
                sync_peer_flags::peer.eq(peer),
                sync_peer_flags::resource.eq(resource),
                sync_peer_flags::needs_bootstrap_since.eq(ship::db::utc_now()),
            ))
            .execute(conn);
        match inserted {
            // A concurrent pull flagged it first: flagged either way.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => {}
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// A pull of `(peer, resource)` succeeded: no bootstrap needed.
pub fn clear_bootstrap(conn: &mut AnyConnection, peer: &str, resource: &str) -> QueryResult<()> {
    diesel::delete(sync_peer_flags::table.find((peer, resource)))
        .execute(conn)
        .map(drop)
}

/// Every `(peer, resource)` waiting for a bootstrap, and since when.
pub fn needing_bootstrap(
    conn: &mut AnyConnection,
) -> QueryResult<Vec<(String, String, chrono::NaiveDateTime)>> {
    sync_peer_flags::table
        .select((
            sync_peer_flags::peer,
            sync_peer_flags::resource,
            sync_peer_flags::needs_bootstrap_since,
        ))
        .load(conn)
}
