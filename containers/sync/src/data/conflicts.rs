//! Conflict records.

use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::sync_conflicts;

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
        }?;
        start = end;
    }
    Ok(fresh.len())
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
