//! A dispatcher's side of the streams: it claims ranges, loads their entries, sends them, and
//! then completes the range (delivered, or dead after its last attempt), gives it back after a
//! failure, or renews its lease while a long send goes on. Each step runs in its own transaction
//! and locks the stream row first; one whose lease is gone writes nothing and says `false`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ship::AnyConnection;

use super::{
    add_ranges, committed_head, insert_range, lock_stream, ranges_of, ClaimedRange, DeadLetters,
    Locked,
};
use crate::data::outbox;
use crate::data::schema::{sync_changelog, sync_delivery, sync_delivery_ranges};
use crate::models::{outbox_status, ChangeLogEntry};

/// Free ranges a claim looks at, oldest first.
const FREE_RANGES_READ: i64 = 64;

/// Claim up to about `limit` entries of the stream `(peer, resource)` for `owner` until
/// `lease_until`: first the ranges given back after a failure (or whose lease ran out), oldest
/// first, adjacent ones with the same attempt count merged (`take_free`); then the entries of
/// `origin` after `claimed_through` up to the committed head (`cut_fresh`). Nothing while the
/// stream is backing off, unless `ignore_backoff` (an operator's `sync run`). Runs its own
/// transaction.
#[allow(clippy::too_many_arguments)]
pub fn claim(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    origin: &str,
    owner: &str,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
    ignore_backoff: bool,
) -> QueryResult<Vec<ClaimedRange>> {
    ship::db::transact(conn, |conn| {
        let Some(stream) = lock_stream(conn, peer, resource)? else {
            return Ok(Vec::new());
        };
        if stream.next_attempt_at > now && !ignore_backoff {
            return Ok(Vec::new());
        }
        let free: Vec<ClaimedRange> = ranges_of(peer, resource)
            .filter(
                sync_delivery_ranges::lease_until
                    .is_null()
                    .or(sync_delivery_ranges::lease_until.lt(now)),
            )
            .order(sync_delivery_ranges::first_seq.asc())
            .limit(FREE_RANGES_READ)
            .select((
                sync_delivery_ranges::id,
                sync_delivery_ranges::peer,
                sync_delivery_ranges::resource,
                sync_delivery_ranges::first_seq,
                sync_delivery_ranges::last_seq,
                sync_delivery_ranges::attempts,
            ))
            .load(conn)?;
        let (mut taken, merged_away) = take_free(free, limit);
        let span: i64 = taken.iter().map(|r| r.last_seq - r.first_seq + 1).sum();
        let room = (limit - span).max(0);
        let created = cut_fresh(
            conn,
            (peer, resource),
            origin,
            &stream,
            room,
            &mut taken,
            now,
        )?;
        if !merged_away.is_empty() {
            diesel::delete(
                sync_delivery_ranges::table.filter(sync_delivery_ranges::id.eq_any(&merged_away)),
            )
            .execute(conn)?;
        }
        for range in &taken {
            diesel::update(sync_delivery_ranges::table.find(range.id))
                .set((
                    sync_delivery_ranges::last_seq.eq(range.last_seq),
                    sync_delivery_ranges::lease_owner.eq(Some(owner)),
                    sync_delivery_ranges::lease_until.eq(Some(lease_until)),
                    sync_delivery_ranges::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
        if let Some((first_seq, last_seq)) = created {
            let lease = Some((owner, lease_until));
            insert_range(conn, peer, resource, (first_seq, last_seq), lease, now)?;
            // Ranges of a stream are disjoint: (stream, first_seq) names the new one.
            let id = ranges_of(peer, resource)
                .filter(sync_delivery_ranges::first_seq.eq(first_seq))
                .select(sync_delivery_ranges::id)
                .first::<i64>(conn)?;
            taken.push(ClaimedRange {
                id,
                peer: peer.to_string(),
                resource: resource.to_string(),
                first_seq,
                last_seq,
                attempts: 0,
            });
        }
        Ok(taken)
    })
}

/// Take `free` ranges (oldest first) while the seqs they span stay within `limit` (at least
/// one), merging each into the one before when they touch and have failed as often (fewer,
/// fuller batches after an outage, and every entry still dies after exactly `max_attempts`).
/// The ranges taken, and the ids of those merged away.
pub(super) fn take_free(free: Vec<ClaimedRange>, limit: i64) -> (Vec<ClaimedRange>, Vec<i64>) {
    let mut taken: Vec<ClaimedRange> = Vec::new();
    let mut merged_away = Vec::new();
    let mut span = 0;
    for range in free {
        let len = range.last_seq - range.first_seq + 1;
        if !taken.is_empty() && span + len > limit {
            break;
        }
        span += len;
        match taken.last_mut() {
            Some(last)
                if last.last_seq + 1 == range.first_seq && last.attempts == range.attempts =>
            {
                last.last_seq = range.last_seq;
                merged_away.push(range.id);
            }
            _ => taken.push(range),
        }
    }
    (taken, merged_away)
}

/// Cut the stream's new entries: `origin`'s after `claimed_through`, up to the committed head,
/// at most `room` of them. They extend the last of `taken` when it ends at `claimed_through`
/// and was never attempted (its lease ran out), or make a new range, returned for the caller
/// to insert. A stretch of other regions' entries only moves the stream on, and a stream with
/// nothing of ours out is delivered up to the head.
fn cut_fresh(
    conn: &mut AnyConnection,
    (peer, resource): (&str, &str),
    origin: &str,
    stream: &Locked,
    room: i64,
    taken: &mut [ClaimedRange],
    now: NaiveDateTime,
) -> QueryResult<Option<(i64, i64)>> {
    let claimed_through = stream.claimed_through;
    if room == 0 {
        return Ok(None);
    }
    let head = committed_head(conn, resource)?;
    if head <= claimed_through {
        return Ok(None);
    }
    let fresh: Vec<i64> = sync_changelog::table
        .filter(sync_changelog::resource.eq(resource))
        .filter(sync_changelog::seq.gt(claimed_through))
        .filter(sync_changelog::seq.le(head))
        .filter(sync_changelog::origin_region.eq(origin))
        .order(sync_changelog::seq.asc())
        .limit(room)
        .select(sync_changelog::seq)
        .load(conn)?;
    // Cut to the last entry taken or, when the head was reached, to the head: past the other
    // regions' entries after ours.
    let through = match fresh.last() {
        Some(&last) if (fresh.len() as i64) < room => head.max(last),
        Some(&last) => last,
        None => head,
    };
    let mut created = None;
    if !fresh.is_empty() {
        match taken.last_mut() {
            Some(last) if last.last_seq == claimed_through && last.attempts == 0 => {
                last.last_seq = through
            }
            _ => created = Some((claimed_through + 1, through)),
        }
    }
    let idle = fresh.is_empty()
        && taken.is_empty()
        && ranges_of(peer, resource).count().get_result::<i64>(conn)? == 0;
    let delivered_through = if idle {
        through
    } else {
        stream.delivered_through
    };
    diesel::update(sync_delivery::table.find((peer, resource)))
        .set((
            sync_delivery::claimed_through.eq(through),
            sync_delivery::delivered_through.eq(delivered_through),
            sync_delivery::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(created)
}

/// What a range sends: its changes, and which of them are retried dead letters (their rows in
/// the list are settled with the range).
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub changes: Vec<ChangeLogEntry>,
    pub retried: Vec<i64>,
}

/// The entries of `range` to send: `origin`'s, in seq order, without those that have a dead or
/// delivered row in the stream's list (a dead letter goes only when an operator retries it).
pub fn entries(
    conn: &mut AnyConnection,
    range: &ClaimedRange,
    origin: &str,
) -> QueryResult<Loaded> {
    let mut changes: Vec<ChangeLogEntry> = sync_changelog::table
        .filter(sync_changelog::resource.eq(&range.resource))
        .filter(sync_changelog::seq.between(range.first_seq, range.last_seq))
        .filter(sync_changelog::origin_region.eq(origin))
        .order(sync_changelog::seq.asc())
        .select(ChangeLogEntry::as_select())
        .load(conn)?;
    let listed: std::collections::HashMap<i64, String> = outbox::listed(
        conn,
        &range.peer,
        &range.resource,
        range.first_seq - 1,
        range.last_seq,
    )?
    .into_iter()
    .collect();
    changes.retain(|e| {
        listed
            .get(&e.seq)
            .is_none_or(|status| status == outbox_status::PENDING)
    });
    let retried = changes
        .iter()
        .map(|e| e.seq)
        .filter(|seq| listed.contains_key(seq))
        .collect();
    Ok(Loaded { changes, retried })
}

/// Whether `owner` still leases `range` (inside a transaction that locked the stream).
fn holds(conn: &mut AnyConnection, range: &ClaimedRange, owner: &str) -> QueryResult<bool> {
    Ok(sync_delivery_ranges::table
        .filter(sync_delivery_ranges::id.eq(range.id))
        .filter(sync_delivery_ranges::lease_owner.eq(owner))
        .count()
        .get_result::<i64>(conn)?
        > 0)
}

/// Record dead letters of `range` while `owner` still leases it (the rest of the range goes
/// on). `false`, and nothing written, when the range is no longer `owner`'s.
pub fn dead_letter(
    conn: &mut AnyConnection,
    range: &ClaimedRange,
    owner: &str,
    dead: DeadLetters<'_>,
) -> QueryResult<bool> {
    ship::db::transact(conn, |conn| {
        if lock_stream(conn, &range.peer, &range.resource)?.is_none() || !holds(conn, range, owner)?
        {
            return Ok(false);
        }
        outbox::record_dead(conn, &range.peer, &range.resource, dead)?;
        Ok(true)
    })
}

/// How a range ended.
#[derive(Debug, Clone, Copy)]
pub enum RangeEnd<'a> {
    /// Every entry went (or is already a dead letter): the peer was delivered to.
    Delivered,
    /// The last attempt failed: the rest are dead letters; the peer got nothing.
    Dead(DeadLetters<'a>),
}

/// `owner` is done with `range`: the range is deleted and `delivered_through` moves up to just
/// below the lowest range left above it (never down). `RangeEnd::Delivered` also records the
/// delivery (last delivery now, failure count and error cleared, any backoff over);
/// `RangeEnd::Dead` writes the dead letters in the same transaction and keeps the stream's
/// failure state. The retried dead letters it sent (`sent`: `Loaded::retried`) are delivered.
/// `false`, and nothing written, when the lease was no longer `owner`'s.
pub fn complete(
    conn: &mut AnyConnection,
    range: &ClaimedRange,
    owner: &str,
    end: RangeEnd<'_>,
    sent: &[i64],
) -> QueryResult<bool> {
    let now = ship::db::utc_now();
    let (peer, resource) = (range.peer.as_str(), range.resource.as_str());
    ship::db::transact(conn, |conn| {
        let Some(stream) = lock_stream(conn, peer, resource)? else {
            return Ok(false);
        };
        let deleted = diesel::delete(
            sync_delivery_ranges::table
                .filter(sync_delivery_ranges::id.eq(range.id))
                .filter(sync_delivery_ranges::lease_owner.eq(owner)),
        )
        .execute(conn)?;
        if deleted == 0 {
            return Ok(false);
        }
        if let RangeEnd::Dead(dead) = end {
            outbox::record_dead(conn, peer, resource, dead)?;
        }
        settle_retried(conn, range, range.first_seq, range.last_seq, sent, now)?;
        // Ranges wholly at or below `delivered_through` (retried dead letters) hold nothing
        // back: their entries have rows in the list.
        let lowest: Option<i64> = ranges_of(peer, resource)
            .filter(sync_delivery_ranges::last_seq.gt(stream.delivered_through))
            .select(diesel::dsl::min(sync_delivery_ranges::first_seq))
            .first(conn)?;
        let through = lowest
            .map_or(stream.claimed_through, |first| first - 1)
            .max(stream.delivered_through);
        let stream_row = sync_delivery::table.find((peer, resource));
        match end {
            RangeEnd::Delivered => diesel::update(stream_row)
                .set((
                    sync_delivery::delivered_through.eq(through),
                    sync_delivery::attempts.eq(0),
                    // A delivery ends a backoff, but never moves the due time later: a pass
                    // that started before this moment must still find the stream due
                    // (regression: it found none and a dispatcher stopped early with the
                    // backlog half sent, B5).
                    sync_delivery::next_attempt_at.eq(stream.next_attempt_at.min(now)),
                    sync_delivery::last_error.eq(None::<String>),
                    sync_delivery::last_delivered_at.eq(Some(now)),
                    sync_delivery::updated_at.eq(now),
                ))
                .execute(conn)?,
            RangeEnd::Dead(dead) => diesel::update(stream_row)
                .set((
                    sync_delivery::delivered_through.eq(through),
                    sync_delivery::last_error.eq(Some(dead.error)),
                    sync_delivery::updated_at.eq(now),
                ))
                .execute(conn)?,
        };
        Ok(true)
    })
}

/// `owner` gives `range` back from `rest_from` on (what came before it went, with the retried
/// dead letters of it in `sent`): its lease is dropped, one more attempt counted when
/// `count_attempt` (for the retried dead letters of the rest too), and the stream waits until
/// `next_attempt_at` at least. `false` when the lease was no longer `owner`'s.
#[allow(clippy::too_many_arguments)]
pub fn release(
    conn: &mut AnyConnection,
    range: &ClaimedRange,
    owner: &str,
    rest_from: i64,
    error: &str,
    next_attempt_at: NaiveDateTime,
    count_attempt: bool,
    sent: &[i64],
) -> QueryResult<bool> {
    let now = ship::db::utc_now();
    let (peer, resource) = (range.peer.as_str(), range.resource.as_str());
    let rest_from = rest_from.max(range.first_seq);
    ship::db::transact(conn, |conn| {
        let Some(stream) = lock_stream(conn, peer, resource)? else {
            return Ok(false);
        };
        let released = diesel::update(
            sync_delivery_ranges::table
                .filter(sync_delivery_ranges::id.eq(range.id))
                .filter(sync_delivery_ranges::lease_owner.eq(owner)),
        )
        .set((
            sync_delivery_ranges::first_seq.eq(rest_from),
            sync_delivery_ranges::attempts
                .eq(sync_delivery_ranges::attempts + i32::from(count_attempt)),
            sync_delivery_ranges::lease_owner.eq(None::<String>),
            sync_delivery_ranges::lease_until.eq(None::<NaiveDateTime>),
            sync_delivery_ranges::last_error.eq(Some(error)),
            sync_delivery_ranges::updated_at.eq(now),
        ))
        .execute(conn)?;
        if released == 0 {
            return Ok(false);
        }
        settle_retried(conn, range, range.first_seq, rest_from - 1, sent, now)?;
        let failed = outbox::Failed {
            count_attempt,
            error,
            next_attempt_at,
        };
        outbox::note_failure(conn, peer, resource, (rest_from, range.last_seq), failed)?;
        diesel::update(sync_delivery::table.find((peer, resource)))
            .set((
                sync_delivery::attempts.eq(sync_delivery::attempts + i32::from(count_attempt)),
                // The longest wait of the ranges that failed in this round.
                sync_delivery::next_attempt_at.eq(stream.next_attempt_at.max(next_attempt_at)),
                sync_delivery::last_error.eq(Some(error)),
                sync_delivery::updated_at.eq(now),
            ))
            .execute(conn)?;
        Ok(true)
    })
}

/// The retried dead letters of `range` in `[from, upto]` once its holder is done with that
/// stretch: those it sent (`sent`, sorted) are delivered; one retried while the range was in
/// flight was not loaded, so it gets a range of its own (or dies, its change gone).
fn settle_retried(
    conn: &mut AnyConnection,
    range: &ClaimedRange,
    from: i64,
    upto: i64,
    sent: &[i64],
    now: NaiveDateTime,
) -> QueryResult<()> {
    if from > upto {
        return Ok(());
    }
    let (peer, resource) = (range.peer.as_str(), range.resource.as_str());
    let waiting: Vec<i64> = outbox::listed(conn, peer, resource, from - 1, upto)?
        .into_iter()
        .filter(|(_, status)| status == outbox_status::PENDING)
        .map(|(seq, _)| seq)
        .collect();
    let (went, missed): (Vec<i64>, Vec<i64>) = waiting
        .into_iter()
        .partition(|seq| sent.binary_search(seq).is_ok());
    outbox::mark_delivered(conn, peer, resource, &went, now)?;
    if missed.is_empty() {
        return Ok(());
    }
    let present: Vec<i64> = sync_changelog::table
        .filter(sync_changelog::resource.eq(resource))
        .filter(sync_changelog::seq.eq_any(&missed))
        .order(sync_changelog::seq.asc())
        .select(sync_changelog::seq)
        .load(conn)?;
    let gone: Vec<(i64, NaiveDateTime)> = missed
        .iter()
        .filter(|seq| !present.contains(seq))
        .map(|&seq| (seq, now))
        .collect();
    let dead = DeadLetters {
        changes: &gone,
        attempts: 0,
        error: "the change is no longer in the changelog",
    };
    outbox::record_dead(conn, peer, resource, dead)?;
    add_ranges(conn, peer, resource, &present, now)
}

/// Extend `owner`'s lease on the ranges `ids` to `until`, only where it still holds it and it
/// has not run out; the ids whose lease was extended.
pub fn renew(
    conn: &mut AnyConnection,
    owner: &str,
    ids: &[i64],
    until: NaiveDateTime,
) -> QueryResult<Vec<i64>> {
    let now = ship::db::utc_now();
    let extended = diesel::update(
        sync_delivery_ranges::table
            .filter(sync_delivery_ranges::id.eq_any(ids))
            .filter(sync_delivery_ranges::lease_owner.eq(owner))
            .filter(sync_delivery_ranges::lease_until.ge(now)),
    )
    .set(sync_delivery_ranges::lease_until.eq(Some(until)))
    .execute(conn)?;
    if extended == ids.len() {
        return Ok(ids.to_vec());
    }
    sync_delivery_ranges::table
        .filter(sync_delivery_ranges::id.eq_any(ids))
        .filter(sync_delivery_ranges::lease_owner.eq(owner))
        .filter(sync_delivery_ranges::lease_until.eq(Some(until)))
        .select(sync_delivery_ranges::id)
        .load(conn)
}
