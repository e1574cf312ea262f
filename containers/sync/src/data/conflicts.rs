//! Conflict records.

use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::sync_conflicts;

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = sync_conflicts)]
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

/// Record `conflict` unless the same losing version of the same entity is already recorded
/// (a re-delivered batch records nothing new).
pub fn insert_once(conn: &mut AnyConnection, conflict: &NewConflict) -> QueryResult<bool> {
    let known: i64 = sync_conflicts::table
        .filter(sync_conflicts::resource.eq(&conflict.resource))
        .filter(sync_conflicts::entity_id.eq(&conflict.entity_id))
        .filter(sync_conflicts::loser_hlc.eq(conflict.loser_hlc))
        .filter(sync_conflicts::loser_origin.eq(&conflict.loser_origin))
        .count()
        .get_result(conn)?;
    if known > 0 {
        return Ok(false);
    }
    diesel::insert_into(sync_conflicts::table)
        .values(conflict)
        .execute(conn)
        .map(|_| true)
}
