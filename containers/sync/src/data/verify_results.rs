//! The last verify of each peer and resource.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::sync_verify_results;

/// Record a comparison, replacing the previous one (run it in a transaction).
pub fn record(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    differing: i64,
    rows: (i64, i64),
) -> QueryResult<()> {
    diesel::delete(sync_verify_results::table.find((peer, resource))).execute(conn)?;
    diesel::insert_into(sync_verify_results::table)
        .values((
            sync_verify_results::peer.eq(peer),
            sync_verify_results::resource.eq(resource),
            sync_verify_results::differing.eq(differing),
            sync_verify_results::rows_local.eq(rows.0),
            sync_verify_results::rows_remote.eq(rows.1),
            sync_verify_results::checked_at.eq(ship::db::utc_now()),
        ))
        .execute(conn)
        .map(drop)
}

/// Every last comparison: (peer, resource, differing, checked at).
pub fn all(conn: &mut AnyConnection) -> QueryResult<Vec<(String, String, i64, NaiveDateTime)>> {
    sync_verify_results::table
        .select((
            sync_verify_results::peer,
            sync_verify_results::resource,
            sync_verify_results::differing,
            sync_verify_results::checked_at,
        ))
        .load(conn)
}
