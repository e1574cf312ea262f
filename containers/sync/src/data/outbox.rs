//! The dead-letter lists of the delivery streams (ADR 0014): one `sync_outbox` row per change a
//! stream singled out for its peer — `dead` (a dead letter), `pending` (retried by an operator:
//! a range of the stream sends it again) or `delivered` (retried and delivered; pruned after
//! `outbox_retention`). Nothing here sends: the rows follow the ranges (`data::delivery`).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::sync_outbox;
use crate::models::{outbox_status, NewOutboxEntry};

/// Dead letters to record: (seq, when the change was written) — a dead letter retried later is
/// as old as its change (the backlog alerts measure from there) —, after how many attempts, why.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetters<'a> {
    pub changes: &'a [(i64, NaiveDateTime)],
    pub attempts: i32,
    pub error: &'a str,
}

/// The rows of the stream `(peer, resource)` in `(after, upto]`: (seq, status), in seq order.
pub fn listed(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    after: i64,
    upto: i64,
) -> QueryResult<Vec<(i64, String)>> {
    sync_outbox::table
        .filter(sync_outbox::peer.eq(peer))
        .filter(sync_outbox::resource.eq(resource))
        .filter(sync_outbox::seq.gt(after))
        .filter(sync_outbox::seq.le(upto))
        .order(sync_outbox::seq.asc())
        .select((sync_outbox::seq, sync_outbox::status))
        .load(conn)
}

/// How many rows of the stream `(peer, resource)` are at or below `upto` and as young as
/// `since`.
pub fn listed_since(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    upto: i64,
    since: NaiveDateTime,
) -> QueryResult<i64> {
    sync_outbox::table
        .filter(sync_outbox::peer.eq(peer))
        .filter(sync_outbox::resource.eq(resource))
        .filter(sync_outbox::seq.le(upto))
        .filter(sync_outbox::created_at.ge(since))
        .count()
        .get_result(conn)
}

/// Insert `entries` in one multi-row statement (diesel builds those only on a concrete
/// connection, hence the match on the backend).
fn insert_all(conn: &mut AnyConnection, entries: &[NewOutboxEntry<'_>]) -> QueryResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let query = diesel::insert_into(sync_outbox::table).values(entries);
    match conn {
        AnyConnection::Sqlite(c) => query.execute(c),
        AnyConnection::Mysql(c) => query.execute(c),
        AnyConnection::Pg(c) => query.execute(c),
    }
    .map(drop)
}

/// Record `dead` for the stream `(peer, resource)`: a change that has a row (a retried dead
/// letter dying again) has it made dead again, keeping its id and age; the others get one.
pub fn record_dead(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    dead: DeadLetters<'_>,
) -> QueryResult<()> {
    if dead.changes.is_empty() {
        return Ok(());
    }
    let now = ship::db::utc_now();
    for chunk in dead.changes.chunks(500) {
        let seqs: Vec<i64> = chunk.iter().map(|(seq, _)| *seq).collect();
        let row = sync_outbox::table
            .filter(sync_outbox::peer.eq(peer))
            .filter(sync_outbox::resource.eq(resource))
            .filter(sync_outbox::seq.eq_any(&seqs));
        let existing: Vec<i64> = row.clone().select(sync_outbox::seq).load(conn)?;
        if !existing.is_empty() {
            diesel::update(row)
                .set((
                    sync_outbox::status.eq(outbox_status::DEAD),
                    sync_outbox::attempts.eq(dead.attempts),
                    sync_outbox::next_attempt_at.eq(now),
                    sync_outbox::last_error.eq(Some(dead.error)),
                    sync_outbox::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
        let rows: Vec<NewOutboxEntry<'_>> = chunk
            .iter()
            .filter(|(seq, _)| !existing.contains(seq))
            .map(|&(seq, written)| NewOutboxEntry {
                peer,
                resource,
                seq,
                status: outbox_status::DEAD,
                attempts: dead.attempts,
                next_attempt_at: now,
                last_error: Some(dead.error),
                created_at: written,
                updated_at: now,
            })
            .collect();
        insert_all(conn, &rows)?;
    }
    Ok(())
}

/// The retried dead letters `seqs` of the stream `(peer, resource)` went.
pub fn mark_delivered(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    seqs: &[i64],
    now: NaiveDateTime,
) -> QueryResult<()> {
    for chunk in seqs.chunks(500) {
        diesel::update(
            sync_outbox::table
                .filter(sync_outbox::peer.eq(peer))
                .filter(sync_outbox::resource.eq(resource))
                .filter(sync_outbox::seq.eq_any(chunk))
                .filter(sync_outbox::status.eq(outbox_status::PENDING)),
        )
        .set((
            sync_outbox::status.eq(outbox_status::DELIVERED),
            sync_outbox::delivered_at.eq(Some(now)),
            sync_outbox::updated_at.eq(now),
        ))
        .execute(conn)?;
    }
    Ok(())
}

/// Forget the retried dead letters of the stream `(peer, resource)` in `(after, upto]` that
/// were delivered (their peer lost them: a new incarnation).
pub fn forget_delivered(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    (after, upto): (i64, i64),
) -> QueryResult<usize> {
    diesel::delete(
        sync_outbox::table
            .filter(sync_outbox::peer.eq(peer))
            .filter(sync_outbox::resource.eq(resource))
            .filter(sync_outbox::seq.gt(after))
            .filter(sync_outbox::seq.le(upto))
            .filter(sync_outbox::status.eq(outbox_status::DELIVERED)),
    )
    .execute(conn)
}

/// A failed round of a range, as its retried dead letters record it.
#[derive(Debug, Clone, Copy)]
pub struct Failed<'a> {
    /// One more attempt (not when the reason is not the entries' own: a peer's clock behind).
    pub count_attempt: bool,
    pub error: &'a str,
    pub next_attempt_at: NaiveDateTime,
}

/// The retried dead letters of the stream `(peer, resource)` within `seqs` (a range given
/// back) failed once more.
pub fn note_failure(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    (first, last): (i64, i64),
    failed: Failed<'_>,
) -> QueryResult<usize> {
    diesel::update(
        sync_outbox::table
            .filter(sync_outbox::peer.eq(peer))
            .filter(sync_outbox::resource.eq(resource))
            .filter(sync_outbox::seq.between(first, last))
            .filter(sync_outbox::status.eq(outbox_status::PENDING)),
    )
    .set((
        sync_outbox::attempts.eq(sync_outbox::attempts + i32::from(failed.count_attempt)),
        sync_outbox::next_attempt_at.eq(failed.next_attempt_at),
        sync_outbox::last_error.eq(Some(failed.error)),
        sync_outbox::updated_at.eq(ship::db::utc_now()),
    ))
    .execute(conn)
}

/// The streams with dead letters: of the one `id`, or of all.
pub fn dead_streams(
    conn: &mut AnyConnection,
    id: Option<i64>,
) -> QueryResult<Vec<(String, String)>> {
    let dead = sync_outbox::table
        .filter(sync_outbox::status.eq(outbox_status::DEAD))
        .select((sync_outbox::peer, sync_outbox::resource))
        .distinct()
        .order((sync_outbox::peer, sync_outbox::resource));
    match id {
        Some(id) => dead.filter(sync_outbox::id.eq(id)).load(conn),
        None => dead.load(conn),
    }
}

/// Make the dead letters of the stream `(peer, resource)` pending (the one `id`, or all of
/// them), due now with their attempts reset: their seqs, in order.
pub fn revive(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    id: Option<i64>,
    now: NaiveDateTime,
) -> QueryResult<Vec<i64>> {
    let mut rows: Vec<(i64, i64)> = sync_outbox::table
        .filter(sync_outbox::peer.eq(peer))
        .filter(sync_outbox::resource.eq(resource))
        .filter(sync_outbox::status.eq(outbox_status::DEAD))
        .order(sync_outbox::seq.asc())
        .select((sync_outbox::id, sync_outbox::seq))
        .load(conn)?;
    if let Some(id) = id {
        rows.retain(|(row, _)| *row == id);
    }
    let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
    for chunk in ids.chunks(500) {
        diesel::update(sync_outbox::table.filter(sync_outbox::id.eq_any(chunk)))
            .set((
                sync_outbox::status.eq(outbox_status::PENDING),
                sync_outbox::attempts.eq(0),
                sync_outbox::next_attempt_at.eq(now),
                sync_outbox::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    let seqs = rows.into_iter().map(|(_, seq)| seq).collect();
    Ok(seqs)
}

/// Per (peer, resource, status): entries, the oldest creation, the newest delivery.
pub type StatusRow = (
    String,
    String,
    String,
    i64,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
);

pub fn stats(conn: &mut AnyConnection) -> QueryResult<Vec<StatusRow>> {
    use diesel::dsl::{count_star, max, min};
    sync_outbox::table
        .group_by((
            sync_outbox::peer,
            sync_outbox::resource,
            sync_outbox::status,
        ))
        .select((
            sync_outbox::peer,
            sync_outbox::resource,
            sync_outbox::status,
            count_star(),
            min(sync_outbox::created_at),
            max(sync_outbox::delivered_at),
        ))
        .order((
            sync_outbox::peer,
            sync_outbox::resource,
            sync_outbox::status,
        ))
        .load(conn)
}

/// An entry owed to a peer (or dead) as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, serde::Serialize)]
pub struct EntryRow {
    /// The outbox row's id (what `outbox retry` takes); none for an entry of a delivery
    /// stream, which has no row of its own.
    pub id: Option<i64>,
    pub peer: String,
    pub resource: String,
    pub seq: i64,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
}

/// Up to `limit` entries, oldest first: pending ones, or dead ones.
pub fn list(conn: &mut AnyConnection, dead: bool, limit: i64) -> QueryResult<Vec<EntryRow>> {
    let status = if dead {
        outbox_status::DEAD
    } else {
        outbox_status::PENDING
    };
    sync_outbox::table
        .filter(sync_outbox::status.eq(status))
        .order(sync_outbox::id.asc())
        .limit(limit)
        .select((
            sync_outbox::id.nullable(),
            sync_outbox::peer,
            sync_outbox::resource,
            sync_outbox::seq,
            sync_outbox::status,
            sync_outbox::attempts,
            sync_outbox::next_attempt_at,
            sync_outbox::last_error,
            sync_outbox::created_at,
        ))
        .load(conn)
}

/// Delete undelivered entries: one by id, or every one owed to `peer`. How many.
pub fn discard(
    conn: &mut AnyConnection,
    id: Option<i64>,
    peer: Option<&str>,
) -> QueryResult<usize> {
    let owed = sync_outbox::table.filter(sync_outbox::status.ne(outbox_status::DELIVERED));
    match (id, peer) {
        (Some(id), _) => diesel::delete(owed.filter(sync_outbox::id.eq(id))).execute(conn),
        (None, Some(peer)) => diesel::delete(owed.filter(sync_outbox::peer.eq(peer))).execute(conn),
        (None, None) => Ok(0),
    }
}
