//! Quarantined feed entries: parked so a pull moves on past what can never apply as it is.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::sync_quarantine;

/// One parked entry.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = sync_quarantine)]
pub struct Quarantined {
    pub id: i64,
    pub peer: String,
    pub resource: String,
    pub seq: i64,
    pub entity_id: String,
    /// The feed entry as the peer served it (JSON).
    pub entry: String,
    pub reason: String,
    pub created_at: NaiveDateTime,
}

/// One entry to quarantine: (seq, entity id, the entry's JSON, why).
pub type NewEntry = (i64, String, String, String);

/// Park entries of `peer`'s feed.
pub fn add(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    entries: &[NewEntry],
) -> QueryResult<()> {
    let now = ship::db::utc_now();
    for (seq, entity_id, entry, reason) in entries {
        diesel::insert_into(sync_quarantine::table)
            .values((
                sync_quarantine::peer.eq(peer),
                sync_quarantine::resource.eq(resource),
                sync_quarantine::seq.eq(seq),
                sync_quarantine::entity_id.eq(entity_id),
                sync_quarantine::entry.eq(entry),
                sync_quarantine::reason.eq(reason),
                sync_quarantine::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Parked entries, oldest first; `only` one id.
pub fn list(conn: &mut AnyConnection, only: Option<i64>) -> QueryResult<Vec<Quarantined>> {
    let mut query = sync_quarantine::table
        .select(Quarantined::as_select())
        .order(sync_quarantine::id.asc())
        .into_boxed();
    if let Some(id) = only {
        query = query.filter(sync_quarantine::id.eq(id));
    }
    query.load(conn)
}

/// Parked entries per (peer, resource): (peer, resource, count, oldest).
pub fn counts(conn: &mut AnyConnection) -> QueryResult<Vec<(String, String, i64, NaiveDateTime)>> {
    let rows: Vec<(String, String, i64, Option<NaiveDateTime>)> = sync_quarantine::table
        .group_by((sync_quarantine::peer, sync_quarantine::resource))
        .select((
            sync_quarantine::peer,
            sync_quarantine::resource,
            diesel::dsl::count_star(),
            diesel::dsl::min(sync_quarantine::created_at),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(p, r, n, at)| at.map(|at| (p, r, n, at)))
        .collect())
}

/// Record a new reason for a parked entry that still does not apply.
pub fn set_reason(conn: &mut AnyConnection, id: i64, reason: &str) -> QueryResult<()> {
    diesel::update(sync_quarantine::table.find(id))
        .set(sync_quarantine::reason.eq(reason))
        .execute(conn)
        .map(drop)
}

/// Forget parked entries. How many went.
pub fn remove(conn: &mut AnyConnection, ids: &[i64]) -> QueryResult<usize> {
    diesel::delete(sync_quarantine::table.filter(sync_quarantine::id.eq_any(ids))).execute(conn)
}
