//! Sending again what a stream had given up on or delivered: an operator's retry of dead
//! letters (`outbox retry`), and a peer whose database is a new incarnation (ADR 0012).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ship::AnyConnection;

use super::{add_ranges, insert_range, lock_stream, make_due, spans};
use crate::data::outbox;
use crate::data::schema::{sync_delivery, sync_sequences};

/// Seqs per range a restart cuts (a claim takes free ranges up to its limit, merging those that
/// touch).
const RESTART_RANGE: i64 = 1_000;

/// `outbox retry`: the dead letters `id` (or every one) are pending again with their attempts
/// reset, and each stream sends them again: the seqs no range covers get ranges of their own,
/// and the stream is due now. How many entries.
pub fn requeue(conn: &mut AnyConnection, id: Option<i64>) -> QueryResult<usize> {
    let now = ship::db::utc_now();
    let mut retried = 0;
    for (peer, resource) in outbox::dead_streams(conn, id)? {
        lock_stream(conn, &peer, &resource)?;
        let seqs = outbox::revive(conn, &peer, &resource, id, now)?;
        if seqs.is_empty() {
            continue;
        }
        retried += seqs.len();
        let held = spans(conn, &peer, &resource)?;
        let uncovered: Vec<i64> = seqs
            .into_iter()
            .filter(|seq| !held.iter().any(|(a, b)| (*a..=*b).contains(seq)))
            .collect();
        add_ranges(conn, &peer, &resource, &uncovered, now)?;
        make_due(conn, &peer, Some(&resource), now)?;
    }
    Ok(retried)
}

/// `peer`'s database is a new incarnation (rebuilt or restored, ADR 0012): it acknowledges
/// nothing our streams delivered before. Each of its streams restarts from the oldest entry
/// still in the changelog (everything pruned before it, it gets from a bootstrap): the
/// delivered part `(pruned_through, delivered_through]` becomes free ranges to send again,
/// and the stream is due now. Entries it already holds come back `duplicate` or `stale`.
/// The new ranges go around those already there (retried dead letters may lie at or below
/// `delivered_through`: ranges of a stream never overlap), and the retried dead letters it was
/// delivered are forgotten from the list, so they go again too (dead ones stay dead).
/// Locks each stream row as a claim does. How many seqs were put back.
pub fn restart(conn: &mut AnyConnection, peer: &str, now: NaiveDateTime) -> QueryResult<i64> {
    let resources: Vec<String> = sync_delivery::table
        .filter(sync_delivery::peer.eq(peer))
        .select(sync_delivery::resource)
        .load(conn)?;
    let mut put_back = 0;
    for resource in &resources {
        let Some(stream) = lock_stream(conn, peer, resource)? else {
            continue;
        };
        let pruned_through: i64 = sync_sequences::table
            .find(resource)
            .select(sync_sequences::pruned_through)
            .first(conn)
            .optional()?
            .unwrap_or(0);
        let from = pruned_through.min(stream.delivered_through);
        outbox::forget_delivered(conn, peer, resource, (from, stream.delivered_through))?;
        let held = spans(conn, peer, resource)?;
        for piece in around(from + 1, stream.delivered_through, &held, RESTART_RANGE) {
            insert_range(conn, peer, resource, piece, None, now)?;
        }
        put_back += stream.delivered_through - from;
        diesel::update(sync_delivery::table.find((peer, resource)))
            .set((
                sync_delivery::delivered_through.eq(from),
                sync_delivery::attempts.eq(0),
                sync_delivery::next_attempt_at.eq(now),
                sync_delivery::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(put_back)
}

/// `first..=last` less the spans `held` (disjoint), in pieces of at most `size` seqs, in order.
pub(super) fn around(first: i64, last: i64, held: &[(i64, i64)], size: i64) -> Vec<(i64, i64)> {
    let mut pieces = Vec::new();
    let mut at = first;
    while at <= last {
        if let Some(&(_, end)) = held.iter().find(|(a, b)| (*a..=*b).contains(&at)) {
            at = end + 1;
            continue;
        }
        let next_held = held
            .iter()
            .map(|(a, _)| *a)
            .filter(|a| *a > at)
            .min()
            .unwrap_or(i64::MAX);
        let end = (at + size - 1).min(last).min(next_held - 1);
        pieces.push((at, end));
        at = end + 1;
    }
    pieces
}
