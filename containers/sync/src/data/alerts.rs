//! Alert history (`sync_alerts`).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::sync_alerts;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = sync_alerts)]
pub struct Alert {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub state: String,
    pub message: String,
    pub value: i64,
    pub fired_at: NaiveDateTime,
    pub resolved_at: Option<NaiveDateTime>,
    pub notified_at: Option<NaiveDateTime>,
    pub notified_state: Option<String>,
}

pub const FIRING: &str = "firing";
pub const RESOLVED: &str = "resolved";

pub fn open(conn: &mut AnyConnection) -> QueryResult<Vec<Alert>> {
    sync_alerts::table
        .filter(sync_alerts::state.eq(FIRING))
        .select(Alert::as_select())
        .load(conn)
}

/// When `(kind, subject)` last resolved, if ever.
pub fn last_resolved(
    conn: &mut AnyConnection,
    kind: &str,
    subject: &str,
) -> QueryResult<Option<NaiveDateTime>> {
    sync_alerts::table
        .filter(sync_alerts::kind.eq(kind))
        .filter(sync_alerts::subject.eq(subject))
        .filter(sync_alerts::state.eq(RESOLVED))
        .select(diesel::dsl::max(sync_alerts::resolved_at))
        .first(conn)
}

pub fn fire(
    conn: &mut AnyConnection,
    kind: &str,
    subject: &str,
    message: &str,
    value: i64,
) -> QueryResult<()> {
    diesel::insert_into(sync_alerts::table)
        .values((
            sync_alerts::kind.eq(kind),
            sync_alerts::subject.eq(subject),
            sync_alerts::state.eq(FIRING),
            sync_alerts::message.eq(message),
            sync_alerts::value.eq(value),
            sync_alerts::fired_at.eq(ship::db::utc_now()),
        ))
        .execute(conn)
        .map(drop)
}

/// The condition still holds: its latest message and value.
pub fn update(conn: &mut AnyConnection, id: i64, message: &str, value: i64) -> QueryResult<()> {
    diesel::update(sync_alerts::table.find(id))
        .set((
            sync_alerts::message.eq(message),
            sync_alerts::value.eq(value),
        ))
        .execute(conn)
        .map(drop)
}

pub fn resolve(conn: &mut AnyConnection, id: i64) -> QueryResult<()> {
    diesel::update(sync_alerts::table.find(id))
        .set((
            sync_alerts::state.eq(RESOLVED),
            sync_alerts::resolved_at.eq(Some(ship::db::utc_now())),
        ))
        .execute(conn)
        .map(drop)
}

/// Alerts whose webhook has not heard their current state, or (firing) not for `remind_before`.
pub fn to_notify(
    conn: &mut AnyConnection,
    remind_before: NaiveDateTime,
) -> QueryResult<Vec<Alert>> {
    let candidates: Vec<Alert> = sync_alerts::table
        .filter(
            sync_alerts::state
                .eq(FIRING)
                .or(sync_alerts::notified_state.is_null())
                .or(sync_alerts::notified_state.ne(Some(RESOLVED))),
        )
        .order(sync_alerts::id.asc())
        .select(Alert::as_select())
        .load(conn)?;
    let all = candidates
        .into_iter()
        .filter(|a| {
            a.notified_state.as_deref() != Some(a.state.as_str())
                || (a.state == FIRING && a.notified_at.is_some_and(|at| at < remind_before))
        })
        .collect();
    Ok(all)
}

pub fn notified(conn: &mut AnyConnection, id: i64, state: &str) -> QueryResult<()> {
    diesel::update(sync_alerts::table.find(id))
        .set((
            sync_alerts::notified_at.eq(Some(ship::db::utc_now())),
            sync_alerts::notified_state.eq(Some(state)),
        ))
        .execute(conn)
        .map(drop)
}

pub fn list(conn: &mut AnyConnection, limit: i64) -> QueryResult<Vec<Alert>> {
    sync_alerts::table
        .order(sync_alerts::id.desc())
        .limit(limit)
        .select(Alert::as_select())
        .load(conn)
}
