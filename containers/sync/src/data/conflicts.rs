//! Conflict records.

use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::{sync_conflict_resolutions, sync_conflicts};

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = sync_conflicts)]
// Every value is bound as given (ADR 0013): with diesel's default, each is `DEFAULT`-able, so
// MariaDB never caches the INSERT and SQLite splits a multi-row one into one per row.
#[diesel(treat_none_as_default_value = false)]
pub struct NewConflict {
    pub resource: String,
    pub entity_id: String,
    pub winner_hlc: i64,
    pub winner_origin: String,
    pub winner_payload: String,
    pub loser_hlc: i64,
    pub loser_origin: String,
    pub loser_payload: String,
    pub reason: String,
    pub detected_at: chrono::NaiveDateTime,
}

/// Ids per `IN (…)` list, and rows per multi-row `INSERT`.
const CHUNK: usize = 500;

/// Payload bytes per multi-row `INSERT` (the two payloads of each row): a statement stays far
/// below MariaDB's `max_allowed_packet` (16 MiB by default, 1 MiB at the least) whatever the
/// payloads' size.
const CHUNK_BYTES: usize = 512 * 1024;

/// Record each of `conflicts` unless the same losing version of the same entity is already
/// recorded (a re-delivered batch records nothing new). Set-wise: one read of the losing versions already
/// recorded for these entities, then multi-row inserts of the others (bounded by [`CHUNK`] rows
/// and [`CHUNK_BYTES`] of payload each). A conflict already recorded, or twice in `conflicts`,
/// is recorded once. Returns how many were recorded.
pub fn insert_all_once(conn: &mut AnyConnection, conflicts: &[NewConflict]) -> QueryResult<usize> {
    use std::collections::HashSet;
    let mut known: HashSet<(String, String, i64, String)> = HashSet::new();
    let mut resources: Vec<&str> = conflicts.iter().map(|c| c.resource.as_str()).collect();
    resources.sort_unstable();
    resources.dedup();
    for resource in resources {
        let mut ids: Vec<&str> = conflicts
            .iter()
            .filter(|c| c.resource == resource)
            .map(|c| c.entity_id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(CHUNK) {
            let rows: Vec<(String, i64, String)> = sync_conflicts::table
                .filter(sync_conflicts::resource.eq(resource))
                .filter(sync_conflicts::entity_id.eq_any(chunk))
                .select((
                    sync_conflicts::entity_id,
                    sync_conflicts::loser_hlc,
                    sync_conflicts::loser_origin,
                ))
                .load(conn)?;
            known.extend(
                rows.into_iter()
                    .map(|(id, hlc, origin)| (resource.to_string(), id, hlc, origin)),
            );
        }
    }
    let fresh: Vec<NewConflict> = conflicts
        .iter()
        .filter(|c| {
            known.insert((
                c.resource.clone(),
                c.entity_id.clone(),
                c.loser_hlc,
                c.loser_origin.clone(),
            ))
        })
        .cloned()
        .collect();
    let mut start = 0;
    while start < fresh.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < fresh.len() && end - start < CHUNK && (end == start || bytes < CHUNK_BYTES) {
            bytes += fresh[end].winner_payload.len() + fresh[end].loser_payload.len();
            end += 1;
        }
        let query = diesel::insert_into(sync_conflicts::table).values(&fresh[start..end]);
        match conn {
            AnyConnection::Sqlite(c) => query.execute(c),
            AnyConnection::Mysql(c) => query.execute(c),
            AnyConnection::Pg(c) => query.execute(c),
        }?;
        start = end;
    }
    Ok(fresh.len())
}

/// A recorded conflict, both versions and both payloads (`regionsync conflicts show`).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = sync_conflicts)]
pub struct Conflict {
    pub id: i64,
    pub resource: String,
    pub entity_id: String,
    pub winner_hlc: i64,
    pub winner_origin: String,
    pub winner_payload: String,
    pub loser_hlc: i64,
    pub loser_origin: String,
    pub loser_payload: String,
    /// The rule that decided: `older_hlc`, `equal_hlc_origin_tiebreak` or `delete_wins`.
    pub reason: String,
    pub detected_at: chrono::NaiveDateTime,
}

/// A recorded conflict without its payloads (`regionsync conflicts list`).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = sync_conflicts)]
pub struct ConflictSummary {
    pub id: i64,
    pub resource: String,
    pub entity_id: String,
    pub winner_hlc: i64,
    pub winner_origin: String,
    pub loser_hlc: i64,
    pub loser_origin: String,
    pub reason: String,
    pub detected_at: chrono::NaiveDateTime,
}

/// Which conflicts to list: all of them unless a field says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConflictFilter {
    pub resource: Option<String>,
    pub entity_id: Option<String>,
    /// Detected at or after this time (UTC).
    pub since: Option<chrono::NaiveDateTime>,
}

/// Up to `limit` conflicts that pass `filter`, newest first (the later detection first, the
/// greater id among those detected at the same time).
pub fn list(
    conn: &mut AnyConnection,
    filter: &ConflictFilter,
    limit: i64,
) -> QueryResult<Vec<ConflictSummary>> {
    let mut query = sync_conflicts::table
        .select(ConflictSummary::as_select())
        .order((
            sync_conflicts::detected_at.desc(),
            sync_conflicts::id.desc(),
        ))
        .limit(limit)
        .into_boxed();
    if let Some(resource) = &filter.resource {
        query = query.filter(sync_conflicts::resource.eq(resource.clone()));
    }
    if let Some(entity_id) = &filter.entity_id {
        query = query.filter(sync_conflicts::entity_id.eq(entity_id.clone()));
    }
    if let Some(since) = filter.since {
        query = query.filter(sync_conflicts::detected_at.ge(since));
    }
    query.load(conn)
}

/// The conflict with this id, if there is one.
pub fn get(conn: &mut AnyConnection, id: i64) -> QueryResult<Option<Conflict>> {
    sync_conflicts::table
        .find(id)
        .select(Conflict::as_select())
        .first(conn)
        .optional()
}

/// Up to `limit` recorded conflicts of `resource` with an id above `after`, by id, with their
/// payloads (`conflicts what-if` reads the ledger a page at a time).
pub fn page_of(
    conn: &mut AnyConnection,
    resource: &str,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<Conflict>> {
    sync_conflicts::table
        .filter(sync_conflicts::resource.eq(resource))
        .filter(sync_conflicts::id.gt(after))
        .order(sync_conflicts::id.asc())
        .limit(limit)
        .select(Conflict::as_select())
        .load(conn)
}

/// An operator's resolution of a conflict (`regionsync conflicts resolve`).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = sync_conflict_resolutions)]
#[diesel(treat_none_as_default_value = false)]
pub struct Resolution {
    pub conflict_id: i64,
    /// `winner` or `loser`: the version written again.
    pub took: String,
    /// The version the new local write got.
    pub hlc: i64,
    pub origin_region: String,
    pub resolved_by: String,
    pub why: String,
    pub resolved_at: chrono::NaiveDateTime,
}

/// The resolution of conflict `id`, if it was resolved.
pub fn resolution(conn: &mut AnyConnection, id: i64) -> QueryResult<Option<Resolution>> {
    sync_conflict_resolutions::table
        .find(id)
        .select(Resolution::as_select())
        .first(conn)
        .optional()
}

pub fn record_resolution(conn: &mut AnyConnection, row: &Resolution) -> QueryResult<()> {
    let query = diesel::insert_into(sync_conflict_resolutions::table).values(row.clone());
    match conn {
        AnyConnection::Sqlite(c) => query.execute(c),
        AnyConnection::Mysql(c) => query.execute(c),
        AnyConnection::Pg(c) => query.execute(c),
    }?;
    Ok(())
}

/// Delete at most `limit` recorded conflicts detected before `before` (oldest ids first) with
/// their resolutions — except a conflict resolved at or after `before` (an operator's recent
/// resolution stays, with its conflict, until it is as old as the retention); how many
/// conflicts were deleted.
pub fn delete_detected_before(
    conn: &mut AnyConnection,
    before: chrono::NaiveDateTime,
    limit: usize,
) -> QueryResult<usize> {
    let resolved_since = sync_conflict_resolutions::table
        .filter(sync_conflict_resolutions::conflict_id.eq(sync_conflicts::id))
        .filter(sync_conflict_resolutions::resolved_at.ge(before));
    let ids: Vec<i64> = sync_conflicts::table
        .filter(sync_conflicts::detected_at.lt(before))
        .filter(diesel::dsl::not(diesel::dsl::exists(resolved_since)))
        .order(sync_conflicts::id.asc())
        .select(sync_conflicts::id)
        .limit(i64::try_from(limit).unwrap_or(i64::MAX))
        .load(conn)?;
    for chunk in ids.chunks(CHUNK) {
        diesel::delete(
            sync_conflict_resolutions::table
                .filter(sync_conflict_resolutions::conflict_id.eq_any(chunk)),
        )
        .execute(conn)?;
        diesel::delete(sync_conflicts::table.filter(sync_conflicts::id.eq_any(chunk)))
            .execute(conn)?;
    }
    Ok(ids.len())
}

/// Recorded conflicts per resource and rule: (resource, reason, count).
pub fn counts(conn: &mut AnyConnection) -> QueryResult<Vec<(String, String, i64)>> {
    sync_conflicts::table
        .group_by((sync_conflicts::resource, sync_conflicts::reason))
        .select((
            sync_conflicts::resource,
            sync_conflicts::reason,
            diesel::dsl::count_star(),
        ))
        .order((sync_conflicts::resource, sync_conflicts::reason))
        .load(conn)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn conflict(entity: u32, loser_hlc: i64, payload_bytes: usize) -> NewConflict {
        NewConflict {
            resource: "customers".into(),
            entity_id: format!("e{entity:04}"),
            winner_hlc: 100,
            winner_origin: "us".into(),
            winner_payload: "w".repeat(payload_bytes),
            loser_hlc,
            loser_origin: "ap".into(),
            loser_payload: "l".repeat(payload_bytes),
            reason: "older_hlc".into(),
            detected_at: ship::db::utc_now(),
        }
    }

    fn recorded(conn: &mut AnyConnection) -> Vec<(String, i64)> {
        sync_conflicts::table
            .select((sync_conflicts::entity_id, sync_conflicts::loser_hlc))
            .order((sync_conflicts::entity_id, sync_conflicts::loser_hlc))
            .load(conn)
            .unwrap()
    }

    ship::backend_tests! {
        async fn each_losing_version_is_recorded_once(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            // Twice in one call: once.
            let first = [conflict(1, 5, 10), conflict(2, 5, 10), conflict(1, 5, 10)];
            assert_eq!(insert_all_once(&mut conn, &first).unwrap(), 2);
            // Again, with one new losing version: only that one.
            let again = [conflict(2, 5, 10), conflict(1, 5, 10), conflict(1, 6, 10)];
            assert_eq!(insert_all_once(&mut conn, &again).unwrap(), 1);
            assert_eq!(
                recorded(&mut conn),
                vec![("e0001".into(), 5), ("e0001".into(), 6), ("e0002".into(), 5)]
            );
            assert_eq!(insert_all_once(&mut conn, &[]).unwrap(), 0);
        }

        async fn conflicts_are_listed_newest_first_and_counted(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            let at = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap();
            let mut rows = vec![conflict(1, 1, 3), conflict(2, 1, 3), conflict(3, 1, 3)];
            rows[0].detected_at = at("2026-12-06 00:00:01.5");
            rows[1].detected_at = at("2026-12-06 00:00:02");
            // Detected at the same time as the second: the later id is the newer.
            rows[2].detected_at = at("2026-12-06 00:00:02");
            rows[2].resource = "orders".into();
            rows[2].reason = "equal_hlc_origin_tiebreak".into();
            for row in &rows {
                insert_all_once(&mut conn, std::slice::from_ref(row)).unwrap();
            }
            let ids = |filter: &ConflictFilter, limit| -> Vec<String> {
                list(&mut db.pool.get().unwrap(), filter, limit).unwrap().into_iter().map(|c| c.entity_id).collect()
            };
            let all = ConflictFilter::default();
            assert_eq!(ids(&all, 10), ["e0003", "e0002", "e0001"]);
            assert_eq!(ids(&all, 2), ["e0003", "e0002"]);
            let customers = ConflictFilter { resource: Some("customers".into()), ..Default::default() };
            assert_eq!(ids(&customers, 10), ["e0002", "e0001"]);
            let one = ConflictFilter { entity_id: Some("e0001".into()), ..Default::default() };
            assert_eq!(ids(&one, 10), ["e0001"]);
            let since = ConflictFilter { since: Some(at("2026-12-06 00:00:01.6")), ..Default::default() };
            assert_eq!(ids(&since, 10), ["e0003", "e0002"]);
            let exact = ConflictFilter { since: Some(at("2026-12-06 00:00:01.5")), ..Default::default() };
            assert_eq!(ids(&exact, 10).len(), 3, "since is inclusive");

            let newest = list(&mut conn, &all, 1).unwrap().remove(0);
            let full = get(&mut conn, newest.id).unwrap().unwrap();
            assert_eq!((full.entity_id.as_str(), full.winner_payload.as_str(), full.loser_payload.as_str()), ("e0003", "www", "lll"));
            assert_eq!(get(&mut conn, newest.id + 100).unwrap(), None);
            assert_eq!(
                counts(&mut conn).unwrap(),
                vec![
                    ("customers".to_string(), "older_hlc".to_string(), 2),
                    ("orders".to_string(), "equal_hlc_origin_tiebreak".to_string(), 1),
                ]
            );
        }

        async fn many_and_large_conflicts_are_split_into_statements(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            // More rows than one statement takes, and more payload than one statement carries.
            let many: Vec<NewConflict> = (0..CHUNK as u32 + 7).map(|k| conflict(k, 1, 10)).collect();
            assert_eq!(insert_all_once(&mut conn, &many).unwrap(), many.len());
            let large: Vec<NewConflict> = (0..12).map(|k| conflict(10_000 + k, 1, 100_000)).collect();
            assert_eq!(insert_all_once(&mut conn, &large).unwrap(), large.len());
            assert_eq!(recorded(&mut conn).len(), many.len() + large.len());
            assert_eq!(insert_all_once(&mut conn, &many).unwrap(), 0, "all known");
        }
    }
}
