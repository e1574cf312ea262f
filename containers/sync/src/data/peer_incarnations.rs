//! The incarnation each peer region last showed (ADR 0012): a change means its database was
//! replaced or restored.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::sync_peer_incarnations;

/// Record that `peer` shows `incarnation`. Returns the incarnation it showed before when that
/// is another one (the peer's database was replaced), `None` when it is the first seen or the
/// same.
pub fn observe(
    conn: &mut AnyConnection,
    peer: &str,
    incarnation: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<String>> {
    let known: Option<String> = sync_peer_incarnations::table
        .find(peer)
        .select(sync_peer_incarnations::incarnation)
        .first(conn)
        .optional()?;
    match known {
        Some(known) if known == incarnation => Ok(None),
        Some(known) => {
            diesel::update(
                sync_peer_incarnations::table
                    .find(peer)
                    .filter(sync_peer_incarnations::incarnation.eq(&known)),
            )
            .set((
                sync_peer_incarnations::incarnation.eq(incarnation),
                sync_peer_incarnations::previous.eq(&known),
                sync_peer_incarnations::changed_at.eq(Some(now)),
            ))
            .execute(conn)?;
            Ok(Some(known))
        }
        None => {
            // 0 inserted: another process recorded it a moment ago.
            ship::insert_if_absent!(
                conn,
                sync_peer_incarnations::table,
                (
                    sync_peer_incarnations::peer.eq(peer),
                    sync_peer_incarnations::incarnation.eq(incarnation),
                    sync_peer_incarnations::previous.eq(""),
                    sync_peer_incarnations::first_seen_at.eq(now),
                )
            )?;
            Ok(None)
        }
    }
}

/// Peers whose incarnation changed at or after `since`: (peer, incarnation, previous, when).
pub fn changed_since(
    conn: &mut AnyConnection,
    since: NaiveDateTime,
) -> QueryResult<Vec<(String, String, String, NaiveDateTime)>> {
    let rows: Vec<(String, String, String, Option<NaiveDateTime>)> = sync_peer_incarnations::table
        .filter(sync_peer_incarnations::changed_at.ge(since))
        .select((
            sync_peer_incarnations::peer,
            sync_peer_incarnations::incarnation,
            sync_peer_incarnations::previous,
            sync_peer_incarnations::changed_at,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(p, i, prev, at)| at.map(|at| (p, i, prev, at)))
        .collect())
}

/// Every peer's incarnation as last seen: (peer, incarnation).
pub fn all(conn: &mut AnyConnection) -> QueryResult<Vec<(String, String)>> {
    sync_peer_incarnations::table
        .select((
            sync_peer_incarnations::peer,
            sync_peer_incarnations::incarnation,
        ))
        .order(sync_peer_incarnations::peer)
        .load(conn)
}
