//! The streams as a whole: made for each configured peer, due or backing off, what each owes
//! (for `sync status`, `outbox list` and the alerts), the prune's floor, and a peer given up.

use std::collections::HashSet;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ship::AnyConnection;

use super::{committed_head, lock_stream, make_due, ClaimFilter};
use crate::data::outbox;
use crate::data::schema::{sync_changelog, sync_delivery, sync_delivery_ranges};
use crate::models::outbox_status;

/// Create the stream of each (peer, resource) that has none, starting at the resource's head:
/// a peer receives the changes written from its first configuration on (what came before, it
/// gets by pulling or bootstrapping). Idempotent; run at start, after the sequences exist,
/// outside any transaction.
pub fn ensure_streams<'a>(
    conn: &mut AnyConnection,
    peers: &[String],
    resources: impl IntoIterator<Item = &'a str>,
) -> QueryResult<()> {
    let now = ship::db::utc_now();
    for resource in resources {
        for peer in peers {
            let exists = sync_delivery::table
                .find((peer, resource))
                .count()
                .get_result::<i64>(conn)?
                > 0;
            if exists {
                continue;
            }
            let head = committed_head(conn, resource)?;
            // Created by another process a moment ago: 0 inserted, nothing to do.
            ship::insert_if_absent!(
                conn,
                sync_delivery::table,
                (
                    sync_delivery::peer.eq(peer),
                    sync_delivery::resource.eq(resource),
                    sync_delivery::delivered_through.eq(head),
                    sync_delivery::claimed_through.eq(head),
                    sync_delivery::attempts.eq(0),
                    sync_delivery::next_attempt_at.eq(now),
                    sync_delivery::created_at.eq(now),
                    sync_delivery::updated_at.eq(now),
                )
            )?;
        }
    }
    Ok(())
}

/// The streams whose time has come (not backing off), within `only`.
pub fn due_streams(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    only: &ClaimFilter,
) -> QueryResult<Vec<(String, String)>> {
    // Few rows (peers × resources): filtered here rather than in a boxed (per-backend) query.
    let due: Vec<(String, String)> = sync_delivery::table
        .filter(sync_delivery::next_attempt_at.le(only.due_by(now)))
        .select((sync_delivery::peer, sync_delivery::resource))
        .order((sync_delivery::peer, sync_delivery::resource))
        .load(conn)?;
    Ok(due
        .into_iter()
        .filter(|(peer, resource)| {
            only.peer.as_ref().is_none_or(|p| p == peer)
                && only.resource.as_ref().is_none_or(|r| r == resource)
        })
        .collect())
}

/// `peer` was seen answering (a pull from it succeeded): its streams waiting out a backoff are
/// due now, so the backlog goes out at the next pass instead of after the longest backoff.
/// Their attempt counts stay (a failure right after still backs off as far). How many.
pub fn peer_is_back(
    conn: &mut AnyConnection,
    peer: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    make_due(conn, peer, None, now)
}

/// One stream as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRow {
    pub peer: String,
    pub resource: String,
    pub delivered_through: i64,
    /// Entries of ours above `delivered_through` that are not dead letters.
    pub pending: i64,
    /// Entries of ours at or below `delivered_through`, written since the stream exists and
    /// still in the changelog (not yet pruned), dead letters left out (0 unless asked for).
    pub delivered: i64,
    /// The creation of the oldest of them.
    pub oldest_pending_at: Option<NaiveDateTime>,
    pub last_delivered_at: Option<NaiveDateTime>,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub last_error: Option<String>,
}

/// A `sync_delivery` row as `streams` reads it.
#[derive(Queryable)]
struct Stored {
    peer: String,
    resource: String,
    delivered_through: i64,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    last_error: Option<String>,
    last_delivered_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
}

/// Every stream, with what it owes (`origin`: this region). `with_delivered`: also count what
/// each delivered (a scan of the retained changelog: for operators, not for the alerts job).
pub fn streams(
    conn: &mut AnyConnection,
    origin: &str,
    with_delivered: bool,
) -> QueryResult<Vec<StreamRow>> {
    let stored: Vec<Stored> = sync_delivery::table
        .order((sync_delivery::peer, sync_delivery::resource))
        .select((
            sync_delivery::peer,
            sync_delivery::resource,
            sync_delivery::delivered_through,
            sync_delivery::attempts,
            sync_delivery::next_attempt_at,
            sync_delivery::last_error,
            sync_delivery::last_delivered_at,
            sync_delivery::created_at,
        ))
        .load(conn)?;
    let mut out = Vec::with_capacity(stored.len());
    for s in stored {
        let ours = sync_changelog::table
            .filter(sync_changelog::resource.eq(&s.resource))
            .filter(sync_changelog::origin_region.eq(origin));
        let above = ours.filter(sync_changelog::seq.gt(s.delivered_through));
        let owed: i64 = above.count().get_result(conn)?;
        let singled_out = if owed > 0 {
            outbox::listed(conn, &s.peer, &s.resource, s.delivered_through, i64::MAX)?.len() as i64
        } else {
            0
        };
        let pending = (owed - singled_out).max(0);
        let oldest_pending_at = if pending > 0 {
            above
                .order(sync_changelog::seq.asc())
                .select(sync_changelog::created_at)
                .first(conn)
                .optional()?
        } else {
            None
        };
        let delivered = if with_delivered {
            let entries: i64 = ours
                .filter(sync_changelog::seq.le(s.delivered_through))
                .filter(sync_changelog::created_at.ge(s.created_at))
                .count()
                .get_result(conn)?;
            // Dead letters (and retried ones, counted by the outbox) of the same stretch.
            let singled_out = outbox::listed_since(
                conn,
                &s.peer,
                &s.resource,
                s.delivered_through,
                s.created_at,
            )?;
            (entries - singled_out).max(0)
        } else {
            0
        };
        out.push(StreamRow {
            peer: s.peer,
            resource: s.resource,
            delivered_through: s.delivered_through,
            pending,
            delivered,
            oldest_pending_at,
            last_delivered_at: s.last_delivered_at,
            attempts: s.attempts,
            next_attempt_at: s.next_attempt_at,
            last_error: s.last_error,
        });
    }
    Ok(out)
}

/// The lowest seq of `resource` some push peer still waits for (prune keeps it and above).
pub fn lowest_owed(conn: &mut AnyConnection, resource: &str) -> QueryResult<Option<i64>> {
    let lowest: Option<i64> = sync_delivery::table
        .filter(sync_delivery::resource.eq(resource))
        .select(diesel::dsl::min(sync_delivery::delivered_through))
        .first(conn)?;
    Ok(lowest.map(|through| through + 1))
}

/// Give up on everything owed to `peer` (`outbox discard --peer`): its streams and their
/// ranges are deleted (a process that starts with the peer still configured makes a new
/// stream at the head). How many entries of `origin` were owed. The streams are locked first,
/// as a claim locks them, so no range is cut while they go.
pub fn discard(conn: &mut AnyConnection, peer: &str, origin: &str) -> QueryResult<usize> {
    let resources: Vec<String> = sync_delivery::table
        .filter(sync_delivery::peer.eq(peer))
        .select(sync_delivery::resource)
        .load(conn)?;
    for resource in &resources {
        lock_stream(conn, peer, resource)?;
    }
    let owed: i64 = streams(conn, origin, false)?
        .iter()
        .filter(|s| s.peer == peer)
        .map(|s| s.pending)
        .sum();
    diesel::delete(sync_delivery_ranges::table.filter(sync_delivery_ranges::peer.eq(peer)))
        .execute(conn)?;
    diesel::delete(sync_delivery::table.filter(sync_delivery::peer.eq(peer))).execute(conn)?;
    Ok(usize::try_from(owed).unwrap_or(usize::MAX))
}

/// Up to `limit` entries of `origin` owed by the streams, oldest first per stream (what
/// `outbox list` shows next to the single entries): with the stream's attempts, next attempt
/// and last error.
pub fn owed_entries(
    conn: &mut AnyConnection,
    origin: &str,
    limit: i64,
) -> QueryResult<Vec<outbox::EntryRow>> {
    let mut out = Vec::new();
    for stream in streams(conn, origin, false)?
        .into_iter()
        .filter(|s| s.pending > 0)
    {
        // Dead, retried or delivered after a retry: listed, not owed by the stream.
        let skip: HashSet<i64> = outbox::listed(
            conn,
            &stream.peer,
            &stream.resource,
            stream.delivered_through,
            i64::MAX,
        )?
        .into_iter()
        .map(|(seq, _)| seq)
        .collect();
        let owed: Vec<(i64, NaiveDateTime)> = sync_changelog::table
            .filter(sync_changelog::resource.eq(&stream.resource))
            .filter(sync_changelog::seq.gt(stream.delivered_through))
            .filter(sync_changelog::origin_region.eq(origin))
            .order(sync_changelog::seq.asc())
            .limit(limit + skip.len() as i64)
            .select((sync_changelog::seq, sync_changelog::created_at))
            .load(conn)?;
        out.extend(
            owed.into_iter()
                .filter(|(seq, _)| !skip.contains(seq))
                .take(usize::try_from(limit).unwrap_or(0))
                .map(|(seq, created_at)| outbox::EntryRow {
                    id: None,
                    peer: stream.peer.clone(),
                    resource: stream.resource.clone(),
                    seq,
                    status: outbox_status::PENDING.to_string(),
                    attempts: stream.attempts,
                    next_attempt_at: stream.next_attempt_at,
                    last_error: stream.last_error.clone(),
                    created_at,
                }),
        );
    }
    Ok(out)
}
