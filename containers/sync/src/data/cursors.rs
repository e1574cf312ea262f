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

/// Store `cursor` for `(peer, resource)`; run in the transaction that applied the page.
pub fn save(conn: &mut AnyConnection, peer: &str, resource: &str, cursor: &str) -> QueryResult<()> {
    let now = ship::db::utc_now();
    let updated = diesel::update(sync_peer_cursors::table.find((peer, resource)))
        .set((
            sync_peer_cursors::peer_cursor.eq(cursor),
            sync_peer_cursors::last_pull_at.eq(now),
            sync_peer_cursors::updated_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(sync_peer_cursors::table)
            .values((
                sync_peer_cursors::peer.eq(peer),
                sync_peer_cursors::resource.eq(resource),
                sync_peer_cursors::peer_cursor.eq(cursor),
                sync_peer_cursors::last_pull_at.eq(now),
                sync_peer_cursors::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}
