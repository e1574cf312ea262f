//! Peer cursors: how far this region has pulled each peer's feed, per resource.
//!
//! A cursor belongs to the incarnation of this database it was saved in (ADR 0012): once this
//! database has a new incarnation (it was found to be an older copy of the region), the cursors
//! saved before are void — read as none, so the pull bootstraps from the peer's snapshot, which
//! holds this region's own writes that the copy lacks. '' = saved before incarnations (valid).

use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::sync_peer_cursors;

/// The stored cursor for `(peer, resource)` that is valid in this database's `incarnation`;
/// `None` before the first pull and once the one stored is void.
pub fn get(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    incarnation: &str,
) -> QueryResult<Option<String>> {
    let stored: Option<(String, String)> = sync_peer_cursors::table
        .find((peer, resource))
        .select((
            sync_peer_cursors::peer_cursor,
            sync_peer_cursors::local_incarnation,
        ))
        .first(conn)
        .optional()?;
    Ok(stored
        .filter(|(_, saved_in)| saved_in.is_empty() || saved_in == incarnation)
        .map(|(cursor, _)| cursor))
}

/// Forget the cursor for `(peer, resource)`: the peer's feed no longer continues it.
pub fn forget(conn: &mut AnyConnection, peer: &str, resource: &str) -> QueryResult<()> {
    diesel::delete(sync_peer_cursors::table.find((peer, resource)))
        .execute(conn)
        .map(drop)
}

/// Store `cursor` for `(peer, resource)`, valid in this database's `incarnation` (the one the
/// pull started in: a pull that spans a new incarnation saves a void cursor); run in the
/// transaction that applied the page. One upsert statement, so two first pulls of the same
/// peer cannot both try to insert.
pub fn save(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    cursor: &str,
    incarnation: &str,
) -> QueryResult<()> {
    let now = ship::db::utc_now();
    let row = (
        sync_peer_cursors::peer.eq(peer),
        sync_peer_cursors::resource.eq(resource),
        sync_peer_cursors::peer_cursor.eq(cursor),
        sync_peer_cursors::last_pull_at.eq(now),
        sync_peer_cursors::updated_at.eq(now),
        sync_peer_cursors::local_incarnation.eq(incarnation),
    );
    let changes = (
        sync_peer_cursors::peer_cursor.eq(cursor),
        sync_peer_cursors::last_pull_at.eq(now),
        sync_peer_cursors::updated_at.eq(now),
        sync_peer_cursors::local_incarnation.eq(incarnation),
    );
    match conn {
        AnyConnection::Sqlite(c) => diesel::insert_into(sync_peer_cursors::table)
            .values(row)
            .on_conflict((sync_peer_cursors::peer, sync_peer_cursors::resource))
            .do_update()
            .set(changes)
            .execute(c),
        AnyConnection::Pg(c) => diesel::insert_into(sync_peer_cursors::table)
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

/// Move the cursor for `(peer, resource)` from `from` to `to` — only if it is `from` now (a
/// pipelined pull's page saves its cursor only over the page before it: if that page's
/// transaction has not committed, or failed, nothing moves). Whether it moved.
pub fn advance(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    (from, to): (&str, &str),
    incarnation: &str,
) -> QueryResult<bool> {
    let now = ship::db::utc_now();
    let moved = diesel::update(
        sync_peer_cursors::table
            .find((peer, resource))
            .filter(sync_peer_cursors::peer_cursor.eq(from)),
    )
    .set((
        sync_peer_cursors::peer_cursor.eq(to),
        sync_peer_cursors::last_pull_at.eq(now),
        sync_peer_cursors::updated_at.eq(now),
        sync_peer_cursors::local_incarnation.eq(incarnation),
    ))
    .execute(conn)?;
    Ok(moved == 1)
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
        // 0 inserted: a concurrent pull flagged it first, flagged either way.
        ship::insert_if_absent!(
            conn,
            sync_peer_flags::table,
            (
                sync_peer_flags::peer.eq(peer),
                sync_peer_flags::resource.eq(resource),
                sync_peer_flags::needs_bootstrap_since.eq(ship::db::utc_now()),
            )
        )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    ship::backend_tests! {
    /// A pipelined page moves the cursor only over the page before it.
    async fn a_cursor_advances_only_from_the_page_before(db: TestDb) {
        let mut conn = db.pool.get().unwrap();
        let inc = ship::db::incarnation(&mut conn).unwrap().id;
        save(&mut conn, "p", "customers", "c1", &inc).unwrap();
        assert!(!advance(&mut conn, "p", "customers", ("c2", "c3"), &inc).unwrap(), "c2 is not saved yet");
        assert_eq!(get(&mut conn, "p", "customers", &inc).unwrap().as_deref(), Some("c1"));
        assert!(advance(&mut conn, "p", "customers", ("c1", "c2"), &inc).unwrap());
        assert_eq!(get(&mut conn, "p", "customers", &inc).unwrap().as_deref(), Some("c2"));
        assert!(!advance(&mut conn, "q", "customers", ("c1", "c2"), &inc).unwrap(), "no cursor for q");
    }
    }
}
