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
    /// The resource's payload schema version the op was validated against.
    pub schema_version: i32,
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
/// re-delivered op parks once): multi-row `INSERT OR IGNORE` (SQLite) / `INSERT IGNORE`
/// (MariaDB) in primary-key order, so two transactions parking the same op at once (its push
/// and a relayed pull) neither fail on the duplicate key nor deadlock. How many were parked now.
pub fn park_all(conn: &mut AnyConnection, ops: &[ParkedOp]) -> QueryResult<usize> {
    let mut rows: Vec<&ParkedOp> = ops.iter().collect();
    rows.sort_by_key(|o| key(o));
    rows.dedup_by_key(|o| key(o));
    let mut parked = 0;
    let mut start = 0;
    while start < rows.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < rows.len() && end - start < CHUNK && (end == start || bytes < CHUNK_BYTES) {
            bytes += rows[end].payload.len();
            end += 1;
        }
        let chunk: Vec<ParkedOp> = rows[start..end].iter().map(|o| (*o).clone()).collect();
        let query = diesel::insert_or_ignore_into(sync_parked_ops::table).values(&chunk);
        parked += match conn {
            AnyConnection::Sqlite(c) => query.execute(c),
            AnyConnection::Mysql(c) => query.execute(c),
            // diesel has no `INSERT OR IGNORE` for PostgreSQL: the same skip of a parked key.
            AnyConnection::Pg(c) => diesel::insert_into(sync_parked_ops::table)
                .values(&chunk)
                .on_conflict_do_nothing()
                .execute(c),
        }?;
        start = end;
    }
    Ok(parked)
}

/// Whether any op waits for a row of `resource`: one cached, indexed probe, so a batch of a
/// resource nothing waits for (the usual case) skips [`waiting_on`]'s reads of its ids. As
/// racy as that read itself (READ COMMITTED, nothing locked): an op parked by a concurrent
/// transaction is released by the sweep.
pub fn any_waiting_on(conn: &mut AnyConnection, resource: &str) -> QueryResult<bool> {
    Ok(sync_parked_ops::table
        .filter(sync_parked_ops::waits_resource.eq(resource))
        .select(sync_parked_ops::waits_id)
        .first::<String>(conn)
        .optional()?
        .is_some())
}

/// Up to `limit` of the ops parked waiting for one of `ids` of `resource`, oldest first.
pub fn waiting_on(
    conn: &mut AnyConnection,
    resource: &str,
    ids: &[&str],
    limit: usize,
) -> QueryResult<Vec<ParkedOp>> {
    let mut found = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        found.extend(
            sync_parked_ops::table
                .filter(sync_parked_ops::waits_resource.eq(resource))
                .filter(sync_parked_ops::waits_id.eq_any(chunk))
                .order((
                    sync_parked_ops::parked_at.asc(),
                    sync_parked_ops::resource.asc(),
                ))
                .limit(limit as i64)
                .select(ParkedOp::as_select())
                .load(conn)?,
        );
    }
    found.sort_by(|a, b| a.parked_at.cmp(&b.parked_at).then(key(a).cmp(&key(b))));
    found.truncate(limit);
    Ok(found)
}

/// Up to `limit` parked ops after the first `offset`, oldest first (for the sweep and the CLI).
pub fn oldest(conn: &mut AnyConnection, offset: i64, limit: i64) -> QueryResult<Vec<ParkedOp>> {
    sync_parked_ops::table
        // A total order (the primary key after the time): pages read in separate
        // transactions neither skip nor repeat ties.
        .order((
            sync_parked_ops::parked_at.asc(),
            sync_parked_ops::resource.asc(),
            sync_parked_ops::entity_id.asc(),
            sync_parked_ops::hlc.asc(),
            sync_parked_ops::origin_region.asc(),
        ))
        .offset(offset)
        .limit(limit)
        .select(ParkedOp::as_select())
        .load(conn)
}

/// Take these parked ops out of the table, in primary-key order; the ones this transaction
/// removed (an op another transaction took first — the sweep beside an inline release — is
/// theirs to apply).
pub fn take_all(conn: &mut AnyConnection, ops: Vec<ParkedOp>) -> QueryResult<Vec<ParkedOp>> {
    let mut ops = ops;
    ops.sort_by_key(key);
    ops.dedup_by_key(|o| key(o));
    let mut taken = Vec::with_capacity(ops.len());
    for op in ops {
        let removed = diesel::delete(
            sync_parked_ops::table
                .filter(sync_parked_ops::resource.eq(&op.resource))
                .filter(sync_parked_ops::entity_id.eq(&op.entity_id))
                .filter(sync_parked_ops::hlc.eq(op.hlc))
                .filter(sync_parked_ops::origin_region.eq(&op.origin_region)),
        )
        .execute(conn)?;
        if removed > 0 {
            taken.push(op);
        }
    }
    Ok(taken)
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
