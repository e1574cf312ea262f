//! Parked ops: remote ops that name a row of another resource which is not here yet, kept
//! until that row arrives (ADR 0015).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::sync_parked_ops;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = sync_parked_ops)]
// Every value is bound as given (ADR 0013).
#[diesel(treat_none_as_default_value = false)]
pub struct ParkedOp {
    pub resource: String,
    pub entity_id: String,
    pub hlc: i64,
    pub origin_region: String,
    pub op: String,
    pub payload: String,
    /// The first row the op names that is not here: its resource and id.
    pub waits_resource: String,
    pub waits_id: String,
    pub parked_at: NaiveDateTime,
}

/// Ids per `IN (…)` list, and rows per multi-row `INSERT`.
const CHUNK: usize = 500;

/// Payload bytes per multi-row `INSERT` (far below MariaDB's `max_allowed_packet`).
const CHUNK_BYTES: usize = 512 * 1024;

type Key = (String, String, i64, String);

fn key(op: &ParkedOp) -> Key {
    (
        op.resource.clone(),
        op.entity_id.clone(),
        op.hlc,
        op.origin_region.clone(),
    )
}

/// Park each of `ops` unless the same version of the same entity is parked already (a
/// re-delivered op parks once). One read of the versions parked for these entities, then
/// multi-row inserts. How many were parked now.
pub fn park_all(conn: &mut AnyConnection, ops: &[ParkedOp]) -> QueryResult<usize> {
    use std::collections::HashSet;
    let mut known: HashSet<Key> = HashSet::new();
    let mut resources: Vec<&str> = ops.iter().map(|o| o.resource.as_str()).collect();
    resources.sort_unstable();
    resources.dedup();
    for resource in resources {
        let mut ids: Vec<&str> = ops
            .iter()
            .filter(|o| o.resource == resource)
            .map(|o| o.entity_id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(CHUNK) {
            let rows: Vec<ParkedOp> = sync_parked_ops::table
                .filter(sync_parked_ops::resource.eq(resource))
                .filter(sync_parked_ops::entity_id.eq_any(chunk))
                .select(ParkedOp::as_select())
                .load(conn)?;
            known.extend(rows.iter().map(key));
        }
    }
    let fresh: Vec<&ParkedOp> = ops.iter().filter(|o| known.insert(key(o))).collect();
    let mut start = 0;
    while start < fresh.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < fresh.len() && end - start < CHUNK && (end == start || bytes < CHUNK_BYTES) {
            bytes += fresh[end].payload.len();
            end += 1;
        }
        let rows: Vec<ParkedOp> = fresh[start..end].iter().map(|o| (*o).clone()).collect();
        let query = diesel::insert_into(sync_parked_ops::table).values(&rows);
        match conn {
            AnyConnection::Sqlite(c) => query.execute(c),
            AnyConnection::Mysql(c) => query.execute(c),
        }?;
        start = end;
    }
    Ok(fresh.len())
}

/// The ops parked waiting for one of `ids` of `resource`, oldest first.
pub fn waiting_on(
    conn: &mut AnyConnection,
    resource: &str,
    ids: &[&str],
) -> QueryResult<Vec<ParkedOp>> {
    let mut found = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        found.extend(
            sync_parked_ops::table
                .filter(sync_parked_ops::waits_resource.eq(resource))
                .filter(sync_parked_ops::waits_id.eq_any(chunk))
                .select(ParkedOp::as_select())
                .load(conn)?,
        );
    }
    found.sort_by(|a, b| a.parked_at.cmp(&b.parked_at).then(key(a).cmp(&key(b))));
    Ok(found)
}

/// Up to `limit` parked ops after the first `offset`, oldest first (for the sweep and the CLI).
pub fn oldest(conn: &mut AnyConnection, offset: i64, limit: i64) -> QueryResult<Vec<ParkedOp>> {
    sync_parked_ops::table
        .order((
            sync_parked_ops::parked_at.asc(),
            sync_parked_ops::resource.asc(),
            sync_parked_ops::entity_id.asc(),
        ))
        .offset(offset)
        .limit(limit)
        .select(ParkedOp::as_select())
        .load(conn)
}

/// Remove these parked ops (they are being applied, or parked again with what they wait for
/// now).
pub fn remove_all(conn: &mut AnyConnection, ops: &[ParkedOp]) -> QueryResult<usize> {
    let mut removed = 0;
    for op in ops {
        removed += diesel::delete(
            sync_parked_ops::table
                .filter(sync_parked_ops::resource.eq(&op.resource))
                .filter(sync_parked_ops::entity_id.eq(&op.entity_id))
                .filter(sync_parked_ops::hlc.eq(op.hlc))
                .filter(sync_parked_ops::origin_region.eq(&op.origin_region)),
        )
        .execute(conn)?;
    }
    Ok(removed)
}

/// Parked ops per resource: (resource, count, oldest `parked_at`).
pub fn counts(conn: &mut AnyConnection) -> QueryResult<Vec<(String, i64, NaiveDateTime)>> {
    let rows: Vec<(String, i64, Option<NaiveDateTime>)> = sync_parked_ops::table
        .group_by(sync_parked_ops::resource)
        .select((
            sync_parked_ops::resource,
            diesel::dsl::count_star(),
            diesel::dsl::min(sync_parked_ops::parked_at),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(r, n, at)| at.map(|at| (r, n, at)))
        .collect())
}
