//! Delivery streams (ADR 0009, ADR 0014): per (push peer, resource), how far this region's own
//! changes have been delivered, and the ranges of the changelog being sent. The streams are
//! the only delivery path: a dead letter an operator retries goes out in a range too.
//!
//! `sync_delivery` holds one row per stream: every entry of this region's origin with
//! `seq <= delivered_through` is delivered, or has a row in the stream's dead-letter list
//! (`sync_outbox`: dead, retried and waiting, or retried and delivered). `(delivered_through,
//! claimed_through]` is covered by `sync_delivery_ranges` rows and by ranges already delivered;
//! a retried dead letter gets a range of its own, wherever it lies (`requeue`). A range is
//! leased to one dispatcher at a time; several dispatchers send disjoint ranges of one stream
//! at once. A delivered range is deleted and `delivered_through` moves to just below the lowest
//! range left above it.
//!
//! A range sends its entries less those with a dead or delivered row in the list; a retried one
//! (row `pending`) is sent, and its row follows the range: delivered with it, its attempts
//! counted with it, dead again with it.
//!
//! Claims, completions, releases and requeues lock the stream row first (`FOR UPDATE` on
//! MariaDB, the write lock of an immediate transaction on SQLite), then touch the list: one row
//! write per range, none per entry (retried ones aside).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ship::AnyConnection;

use super::outbox;
pub use super::outbox::DeadLetters;
use super::schema::{sync_changelog, sync_delivery, sync_delivery_ranges, sync_sequences};
use crate::models::{outbox_status, ChangeLogEntry};

/// Which streams a claim may take from: every one, or only those of one peer and/or of one
/// resource (`regionsync sync run --peer P --resource R`); and whether a backoff still running
/// holds them back (it does, except for an operator's `sync run`: they asked for it now).
#[derive(Debug, Clone, Default)]
pub struct ClaimFilter {
    pub peer: Option<String>,
    pub resource: Option<String>,
    pub ignore_backoff: bool,
}

impl ClaimFilter {
    /// The latest due time a claim at `now` takes: `now`, or — backoff ignored — the end of
    /// the DATETIME range both backends store (`NaiveDateTime::MAX` is past it).
    pub(crate) fn due_by(&self, now: NaiveDateTime) -> NaiveDateTime {
        if self.ignore_backoff {
            chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
                .and_then(|d| d.and_hms_opt(23, 59, 59))
                .unwrap_or(now)
        } else {
            now
        }
    }
}

/// A range leased to a dispatcher.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct ClaimedRange {
    pub id: i64,
    pub peer: String,
    pub resource: String,
    pub first_seq: i64,
    pub last_seq: i64,
    /// Failed attempts of these entries so far.
    pub attempts: i32,
}

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
    let due_by = only.due_by(now);
    let due: Vec<(String, String)> = sync_delivery::table
        .filter(sync_delivery::next_attempt_at.le(due_by))
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
    diesel::update(
        sync_delivery::table
            .filter(sync_delivery::peer.eq(peer))
            .filter(sync_delivery::next_attempt_at.gt(now)),
    )
    .set((
        sync_delivery::next_attempt_at.eq(now),
        sync_delivery::updated_at.eq(now),
    ))
    .execute(conn)
}

/// A stream row, write-locked until the transaction ends.
struct Locked {
    delivered_through: i64,
    claimed_through: i64,
    next_attempt_at: NaiveDateTime,
}

/// Lock the stream row (`FOR UPDATE` on MariaDB; on SQLite the immediate transaction already
/// holds the database's write lock). `None`: there is no such stream (discarded).
fn lock_stream(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
) -> QueryResult<Option<Locked>> {
    let query = sync_delivery::table.find((peer, resource)).select((
        sync_delivery::delivered_through,
        sync_delivery::claimed_through,
        sync_delivery::next_attempt_at,
    ));
    let row: Option<(i64, i64, NaiveDateTime)> = match conn {
        AnyConnection::Mysql(c) => query.for_update().first(c).optional()?,
        AnyConnection::Pg(c) => query.for_update().first(c).optional()?,
        AnyConnection::Sqlite(c) => query.first(c).optional()?,
    };
    Ok(row.map(
        |(delivered_through, claimed_through, next_attempt_at)| Locked {
            delivered_through,
            claimed_through,
            next_attempt_at,
        },
    ))
}

/// The committed head of `resource`'s changelog: every entry at or below it has committed
/// (appends take the sequence row's lock until they commit), so a range never skips an entry
/// that commits late.
fn committed_head(conn: &mut AnyConnection, resource: &str) -> QueryResult<i64> {
    Ok(sync_sequences::table
        .find(resource)
        .select(sync_sequences::last_seq)
        .first(conn)
        .optional()?
        .unwrap_or(0))
}

/// Claim up to about `limit` entries of the stream `(peer, resource)` for `owner` until
/// `lease_until`: first the ranges given back after a failure (or whose lease ran out), oldest
/// first, adjacent ones with the same attempt count merged; then the entries of `origin` after
/// `claimed_through` up to the committed head, which extend the last of those ranges when it
/// ends there and was never attempted, or make a new range. A stretch of other regions' entries
/// only moves the stream on. Nothing while the stream is backing off, unless `ignore_backoff`
/// (an operator's `sync run`). Runs its own transaction.
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
        let claimed_through = stream.claimed_through;
        let free: Vec<ClaimedRange> = sync_delivery_ranges::table
            .filter(sync_delivery_ranges::peer.eq(peer))
            .filter(sync_delivery_ranges::resource.eq(resource))
            .filter(
                sync_delivery_ranges::lease_until
                    .is_null()
                    .or(sync_delivery_ranges::lease_until.lt(now)),
            )
            .order(sync_delivery_ranges::first_seq.asc())
            .limit(64)
            .select((
                sync_delivery_ranges::id,
                sync_delivery_ranges::peer,
                sync_delivery_ranges::resource,
                sync_delivery_ranges::first_seq,
                sync_delivery_ranges::last_seq,
                sync_delivery_ranges::attempts,
            ))
            .load(conn)?;
        // Take ranges while the seqs they span stay within the limit (at least one); merge
        // each into the one before when they touch and have failed as often (fewer, fuller
        // batches after an outage, and every entry still dies after exactly `max_attempts`).
        let mut taken: Vec<ClaimedRange> = Vec::new();
        let mut merged_away: Vec<i64> = Vec::new();
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
        // New entries: ours, after claimed_through, up to the committed head, in seq order.
        let room = (limit - span).max(0);
        let head = committed_head(conn, resource)?;
        let fresh: Vec<i64> = if room > 0 && head > claimed_through {
            sync_changelog::table
                .filter(sync_changelog::resource.eq(resource))
                .filter(sync_changelog::seq.gt(claimed_through))
                .filter(sync_changelog::seq.le(head))
                .filter(sync_changelog::origin_region.eq(origin))
                .order(sync_changelog::seq.asc())
                .limit(room)
                .select(sync_changelog::seq)
                .load::<i64>(conn)?
        } else {
            Vec::new()
        };
        // How far the stream is cut now: to the last entry taken, or (when the head was
        // reached) to the head, past the other regions' entries after ours.
        let through = match fresh.last() {
            Some(&last) if (fresh.len() as i64) < room => Some(head.max(last)),
            Some(&last) => Some(last),
            None if room > 0 && head > claimed_through => Some(head),
            None => None,
        };
        let mut created = None;
        if let Some(through) = through {
            if !fresh.is_empty() {
                match taken.last_mut() {
                    // Never attempted (its lease ran out): it takes the new entries along.
                    Some(last) if last.last_seq == claimed_through && last.attempts == 0 => {
                        last.last_seq = through
                    }
                    _ => created = Some((claimed_through + 1, through)),
                }
            }
            // Nothing of ours in it, nothing out: the stream is delivered up to the head.
            let idle = fresh.is_empty()
                && taken.is_empty()
                && sync_delivery_ranges::table
                    .filter(sync_delivery_ranges::peer.eq(peer))
                    .filter(sync_delivery_ranges::resource.eq(resource))
                    .count()
                    .get_result::<i64>(conn)?
                    == 0;
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
        }
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
            diesel::insert_into(sync_delivery_ranges::table)
                .values((
                    sync_delivery_ranges::peer.eq(peer),
                    sync_delivery_ranges::resource.eq(resource),
                    sync_delivery_ranges::first_seq.eq(first_seq),
                    sync_delivery_ranges::last_seq.eq(last_seq),
                    sync_delivery_ranges::attempts.eq(0),
                    sync_delivery_ranges::lease_owner.eq(Some(owner)),
                    sync_delivery_ranges::lease_until.eq(Some(lease_until)),
                    sync_delivery_ranges::created_at.eq(now),
                    sync_delivery_ranges::updated_at.eq(now),
                ))
                .execute(conn)?;
            // Ranges of a stream are disjoint: (stream, first_seq) names the new one.
            let id = sync_delivery_ranges::table
                .filter(sync_delivery_ranges::peer.eq(peer))
                .filter(sync_delivery_ranges::resource.eq(resource))
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
    if !missed.is_empty() {
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
        add_ranges(conn, peer, resource, &present, now)?;
    }
    Ok(())
}

/// New ranges (free, never attempted) over `seqs` (sorted, covered by no range), one per run of
/// consecutive seqs.
fn add_ranges(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    seqs: &[i64],
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &seq in seqs {
        match runs.last_mut() {
            Some(run) if run.1 + 1 == seq => run.1 = seq,
            _ => runs.push((seq, seq)),
        }
    }
    for &(first_seq, last_seq) in &runs {
        insert_free_range(conn, peer, resource, (first_seq, last_seq), now)?;
    }
    Ok(runs.len())
}

/// A range over `first..=last` that no dispatcher holds and none has tried yet.
fn insert_free_range(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    (first, last): (i64, i64),
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(sync_delivery_ranges::table)
        .values((
            sync_delivery_ranges::peer.eq(peer),
            sync_delivery_ranges::resource.eq(resource),
            sync_delivery_ranges::first_seq.eq(first),
            sync_delivery_ranges::last_seq.eq(last),
            sync_delivery_ranges::attempts.eq(0),
            sync_delivery_ranges::lease_owner.eq(None::<String>),
            sync_delivery_ranges::lease_until.eq(None::<NaiveDateTime>),
            sync_delivery_ranges::created_at.eq(now),
            sync_delivery_ranges::updated_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// `outbox retry`: the dead letters `id` (or every one) are pending again with their attempts
/// reset, and each stream sends them again: the seqs no range covers get ranges of their own,
/// and the stream is due now. How many entries.
pub fn requeue(conn: &mut AnyConnection, id: Option<i64>) -> QueryResult<usize> {
    let now = ship::db::utc_now();
    let mut retried = 0;
    for (peer, resource) in outbox::dead_streams(conn, id)? {
        let stream = lock_stream(conn, &peer, &resource)?;
        let seqs = outbox::revive(conn, &peer, &resource, id, now)?;
        if seqs.is_empty() {
            continue;
        }
        retried += seqs.len();
        let ranges: Vec<(i64, i64)> = sync_delivery_ranges::table
            .filter(sync_delivery_ranges::peer.eq(&peer))
            .filter(sync_delivery_ranges::resource.eq(&resource))
            .select((
                sync_delivery_ranges::first_seq,
                sync_delivery_ranges::last_seq,
            ))
            .load(conn)?;
        let uncovered: Vec<i64> = seqs
            .into_iter()
            .filter(|seq| !ranges.iter().any(|(a, b)| (*a..=*b).contains(seq)))
            .collect();
        add_ranges(conn, &peer, &resource, &uncovered, now)?;
        if stream.is_some_and(|s| s.next_attempt_at > now) {
            diesel::update(sync_delivery::table.find((&peer, &resource)))
                .set((
                    sync_delivery::next_attempt_at.eq(now),
                    sync_delivery::updated_at.eq(now),
                ))
                .execute(conn)?;
        }
    }
    Ok(retried)
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
    ship::db::transact(conn, |conn| {
        let Some(stream) = lock_stream(conn, &range.peer, &range.resource)? else {
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
            outbox::record_dead(conn, &range.peer, &range.resource, dead)?;
        }
        settle_retried(conn, range, range.first_seq, range.last_seq, sent, now)?;
        // Ranges wholly at or below `delivered_through` (retried dead letters) hold nothing
        // back: their entries have rows in the list.
        let lowest: Option<i64> = sync_delivery_ranges::table
            .filter(sync_delivery_ranges::peer.eq(&range.peer))
            .filter(sync_delivery_ranges::resource.eq(&range.resource))
            .filter(sync_delivery_ranges::last_seq.gt(stream.delivered_through))
            .select(diesel::dsl::min(sync_delivery_ranges::first_seq))
            .first(conn)?;
        let through = lowest
            .map_or(stream.claimed_through, |first| first - 1)
            .max(stream.delivered_through);
        let stream_row = sync_delivery::table.find((&range.peer, &range.resource));
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
    ship::db::transact(conn, |conn| {
        let Some(stream) = lock_stream(conn, &range.peer, &range.resource)? else {
            return Ok(false);
        };
        let released = diesel::update(
            sync_delivery_ranges::table
                .filter(sync_delivery_ranges::id.eq(range.id))
                .filter(sync_delivery_ranges::lease_owner.eq(owner)),
        )
        .set((
            sync_delivery_ranges::first_seq.eq(rest_from.max(range.first_seq)),
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
        let rest_from = rest_from.max(range.first_seq);
        settle_retried(conn, range, range.first_seq, rest_from - 1, sent, now)?;
        let failed = outbox::Failed {
            count_attempt,
            error,
            next_attempt_at,
        };
        outbox::note_failure(
            conn,
            &range.peer,
            &range.resource,
            (rest_from, range.last_seq),
            failed,
        )?;
        diesel::update(sync_delivery::table.find((&range.peer, &range.resource)))
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

/// Every stream, with what it owes (`origin`: this region). `with_delivered`: also count what
/// each delivered (a scan of the retained changelog: for operators, not for the alerts job).
pub fn streams(
    conn: &mut AnyConnection,
    origin: &str,
    with_delivered: bool,
) -> QueryResult<Vec<StreamRow>> {
    type Row = (
        String,
        String,
        i64,
        i32,
        NaiveDateTime,
        Option<String>,
        Option<NaiveDateTime>,
        NaiveDateTime,
    );
    let rows: Vec<Row> = sync_delivery::table
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
    let mut out = Vec::with_capacity(rows.len());
    for (peer, resource, delivered_through, attempts, next_attempt_at, last_error, last, since) in
        rows
    {
        let above = sync_changelog::table
            .filter(sync_changelog::resource.eq(&resource))
            .filter(sync_changelog::seq.gt(delivered_through))
            .filter(sync_changelog::origin_region.eq(origin));
        let ours: i64 = above.count().get_result(conn)?;
        let singled_out = if ours > 0 {
            outbox::listed(conn, &peer, &resource, delivered_through, i64::MAX)?.len() as i64
        } else {
            0
        };
        let pending = (ours - singled_out).max(0);
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
            let entries: i64 = sync_changelog::table
                .filter(sync_changelog::resource.eq(&resource))
                .filter(sync_changelog::seq.le(delivered_through))
                .filter(sync_changelog::origin_region.eq(origin))
                .filter(sync_changelog::created_at.ge(since))
                .count()
                .get_result(conn)?;
            // Dead letters (and retried ones, counted by the outbox) of the same stretch.
            let singled_out =
                outbox::listed_since(conn, &peer, &resource, delivered_through, since)?;
            (entries - singled_out).max(0)
        } else {
            0
        };
        out.push(StreamRow {
            peer,
            resource,
            delivered_through,
            pending,
            delivered,
            oldest_pending_at,
            last_delivered_at: last,
            attempts,
            next_attempt_at,
            last_error,
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
        let singled_out: std::collections::HashSet<i64> = outbox::listed(
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
            .limit(limit + singled_out.len() as i64)
            .select((sync_changelog::seq, sync_changelog::created_at))
            .load(conn)?;
        out.extend(
            owed.into_iter()
                .filter(|(seq, _)| !singled_out.contains(seq))
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

/// Seqs per range a restart cuts (a claim takes free ranges up to its limit, merging those that
/// touch).
const RESTART_RANGE: i64 = 1_000;

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
        let held: Vec<(i64, i64)> = sync_delivery_ranges::table
            .filter(sync_delivery_ranges::peer.eq(peer))
            .filter(sync_delivery_ranges::resource.eq(resource))
            .filter(sync_delivery_ranges::first_seq.le(stream.delivered_through))
            .select((
                sync_delivery_ranges::first_seq,
                sync_delivery_ranges::last_seq,
            ))
            .load(conn)?;
        let mut first = from + 1;
        while first <= stream.delivered_through {
            if let Some(&(_, end)) = held.iter().find(|(a, b)| (*a..=*b).contains(&first)) {
                first = end + 1;
                continue;
            }
            let next_held = held
                .iter()
                .map(|(a, _)| *a)
                .filter(|a| *a > first)
                .min()
                .unwrap_or(i64::MAX);
            let last = (first + RESTART_RANGE - 1)
                .min(stream.delivered_through)
                .min(next_held - 1);
            insert_free_range(conn, peer, resource, (first, last), now)?;
            first = last + 1;
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::data::schema::sync_outbox;
    use chrono::Duration;

    const HERE: &str = "eu";

    /// Changelog entries `seqs` of `origin` for `widgets`, and the sequence moved past them.
    fn append(conn: &mut AnyConnection, seqs: std::ops::RangeInclusive<i64>, origin: &str) {
        super::super::changelog::ensure_sequences(conn, ["widgets"]).unwrap();
        let now = ship::db::utc_now();
        let last = *seqs.end();
        let entries: Vec<ChangeLogEntry> = seqs
            .map(|seq| ChangeLogEntry {
                resource: "widgets".into(),
                seq,
                entity_id: format!("w{seq}"),
                op: "upsert".into(),
                payload: "{}".into(),
                hlc: seq,
                origin_region: origin.into(),
                schema_version: 1,
                created_at: now,
            })
            .collect();
        super::super::changelog::insert_all(conn, &entries).unwrap();
        diesel::update(sync_sequences::table.find("widgets"))
            .set(sync_sequences::last_seq.eq(last))
            .execute(conn)
            .unwrap();
    }

    fn stream(conn: &mut AnyConnection) -> (i64, i64) {
        sync_delivery::table
            .find(("p", "widgets"))
            .select((
                sync_delivery::delivered_through,
                sync_delivery::claimed_through,
            ))
            .first(conn)
            .unwrap()
    }

    /// `owner` claims from the stream ("p", "widgets") at `at`: the ranges.
    fn ranges(
        conn: &mut AnyConnection,
        owner: &str,
        at: NaiveDateTime,
        limit: i64,
    ) -> Vec<ClaimedRange> {
        let until = at + Duration::seconds(60);
        claim(conn, "p", "widgets", HERE, owner, at, until, limit, false).unwrap()
    }

    /// As `ranges`, as (first, last) spans.
    fn take(
        conn: &mut AnyConnection,
        owner: &str,
        at: NaiveDateTime,
        limit: i64,
    ) -> Vec<(i64, i64)> {
        ranges(conn, owner, at, limit)
            .into_iter()
            .map(|r| (r.first_seq, r.last_seq))
            .collect()
    }

    ship::backend_tests! {
        /// ADR 0009: a peer configured later starts at the head; several dispatchers take
        /// disjoint ranges of one stream (only this region's entries), and the stream moves
        /// only over the delivered prefix, whatever order the ranges complete in.
        async fn dispatchers_share_a_stream_in_disjoint_ranges_and_it_advances_over_the_delivered_prefix(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            append(&mut conn, 1..=2, HERE);
            ensure_streams(&mut conn, &["p".into()], ["widgets"]).unwrap();
            assert_eq!(stream(&mut conn), (2, 2), "starts at the head");
            ensure_streams(&mut conn, &["p".into()], ["widgets"]).unwrap();
            assert_eq!(stream(&mut conn), (2, 2), "idempotent");
            append(&mut conn, 3..=6, HERE);
            append(&mut conn, 7..=8, "us");
            append(&mut conn, 9..=12, HERE);
            let now = ship::db::utc_now();
            let a = ranges(&mut conn, "a", now, 4);
            let b = ranges(&mut conn, "b", now, 4);
            let c = ranges(&mut conn, "c", now, 4);
            let spans = |r: &[ClaimedRange]| r.iter().map(|r| (r.first_seq, r.last_seq)).collect::<Vec<_>>();
            assert_eq!((spans(&a), spans(&b), spans(&c)), (vec![(3, 6)], vec![(7, 12)], vec![]), "the other region's 7 and 8 are skipped, not counted");
            assert_eq!(stream(&mut conn), (2, 12));
            let sent: Vec<i64> = entries(&mut conn, &b[0], HERE).unwrap().changes.into_iter().map(|e| e.seq).collect();
            assert_eq!(sent, vec![9, 10, 11, 12], "only this region's entries are sent");
            assert!(complete(&mut conn, &b[0], "b", RangeEnd::Delivered, &[]).unwrap());
            assert_eq!(stream(&mut conn), (2, 12), "3..6 are still in flight");
            assert!(!complete(&mut conn, &a[0], "b", RangeEnd::Delivered, &[]).unwrap(), "not b's range");
            assert!(complete(&mut conn, &a[0], "a", RangeEnd::Delivered, &[]).unwrap());
            assert_eq!(stream(&mut conn), (12, 12));
            assert_eq!(lowest_owed(&mut conn, "widgets").unwrap(), Some(13));
        }

        /// Regression (B5): a delivery set the stream's due time to its own moment, so a
        /// dispatcher whose pass had started just before found no stream due, claimed nothing
        /// and stopped with the backlog half sent.
        async fn a_delivery_never_moves_the_streams_due_time_later(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            ensure_streams(&mut conn, &["p".into()], ["widgets"]).unwrap();
            append(&mut conn, 1..=4, HERE);
            let pass_start = ship::db::utc_now();
            let first = ranges(&mut conn, "a", pass_start, 2);
            std::thread::sleep(std::time::Duration::from_millis(5));
            assert!(complete(&mut conn, &first[0], "a", RangeEnd::Delivered, &[]).unwrap());
            let only = ClaimFilter::default();
            assert_eq!(due_streams(&mut conn, pass_start, &only).unwrap(), vec![("p".to_string(), "widgets".to_string())]);
            assert_eq!(take(&mut conn, "b", pass_start, 2), vec![(3, 4)]);
        }

        /// A failed range is given back from its first unsent entry; the stream backs off
        /// (nothing is claimed before its time), then the given-back ranges come back merged
        /// with what was written since, the youngest attempt count kept.
        async fn a_given_back_range_waits_for_the_stream_and_comes_back_merged(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            ensure_streams(&mut conn, &["p".into()], ["widgets"]).unwrap();
            append(&mut conn, 1..=6, HERE);
            let now = ship::db::utc_now();
            let first = ranges(&mut conn, "a", now, 3);
            let second = ranges(&mut conn, "b", now, 3);
            let retry_at = now + Duration::seconds(30);
            assert!(release(&mut conn, &first[0], "a", 2, "503", retry_at, true, &[]).unwrap());
            assert!(release(&mut conn, &second[0], "b", 4, "503", now + Duration::seconds(10), true, &[]).unwrap());
            assert!(release(&mut conn, &second[0], "b", 4, "503", now, true, &[]).is_ok_and(|released| !released), "no longer leased to b");
            assert_eq!(take(&mut conn, "c", now + Duration::seconds(20), 100), vec![], "the stream waits for the longest backoff");
            append(&mut conn, 7..=8, HERE);
            let later = now + Duration::seconds(31);
            let merged = ranges(&mut conn, "c", later, 100);
            assert_eq!(
                merged.iter().map(|r| (r.first_seq, r.last_seq, r.attempts)).collect::<Vec<_>>(),
                vec![(2, 6, 1), (7, 8, 0)],
                "seq 1 went; 2..6 merged (both failed once); the new 7..8 start at no attempt (regression: they joined the failed range and inherited its count, so a long outage killed fresh writes after one try)"
            );
            assert_eq!(stream(&mut conn), (0, 8));
            assert!(complete(&mut conn, &merged[1], "c", RangeEnd::Delivered, &[]).unwrap());
            assert_eq!(stream(&mut conn), (1, 8), "seq 1 went; 2..6 are still out");
            assert!(complete(&mut conn, &merged[0], "c", RangeEnd::Delivered, &[]).unwrap());
            assert_eq!(stream(&mut conn), (8, 8));
        }

        /// Issue 13.7: a peer seen answering again is served at once — its backing-off streams
        /// are due now (other peers' are left as they are).
        async fn a_peer_seen_back_is_due_at_once(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            ensure_streams(&mut conn, &["p".into(), "q".into()], ["widgets"]).unwrap();
            append(&mut conn, 1..=3, HERE);
            let now = ship::db::utc_now();
            for peer in ["p", "q"] {
                let range = claim(&mut conn, peer, "widgets", HERE, "a", now, now + Duration::seconds(60), 10, false).unwrap();
                assert!(release(&mut conn, &range[0], "a", 1, "503", now + Duration::seconds(300), true, &[]).unwrap());
            }
            let only = ClaimFilter::default();
            assert_eq!(due_streams(&mut conn, now, &only).unwrap(), vec![]);
            assert_eq!(peer_is_back(&mut conn, "p", now).unwrap(), 1);
            assert_eq!(due_streams(&mut conn, now, &only).unwrap(), vec![("p".to_string(), "widgets".to_string())]);
            assert_eq!(take(&mut conn, "b", now, 10), vec![(1, 3)], "the given-back range goes now");
            assert_eq!(peer_is_back(&mut conn, "p", now).unwrap(), 0, "nothing waits any more");
        }

        /// A dispatcher that dies leaves its range leased; once the lease has run out another
        /// takes it, and the first one can no longer complete or give it back.
        async fn a_range_whose_lease_ran_out_is_claimed_again(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            ensure_streams(&mut conn, &["p".into()], ["widgets"]).unwrap();
            append(&mut conn, 1..=3, HERE);
            let now = ship::db::utc_now();
            let dead = ranges(&mut conn, "dead", now, 10);
            assert_eq!(take(&mut conn, "b", now + Duration::seconds(59), 10), vec![], "still leased");
            let b = ranges(&mut conn, "b", now + Duration::seconds(61), 10);
            assert_eq!((b[0].id, b[0].first_seq, b[0].last_seq), (dead[0].id, 1, 3));
            assert_eq!(renew(&mut conn, "dead", &[dead[0].id], now + Duration::seconds(120)).unwrap(), Vec::<i64>::new());
            assert!(!release(&mut conn, &dead[0], "dead", 1, "x", now, true, &[]).unwrap());
            assert!(!complete(&mut conn, &dead[0], "dead", RangeEnd::Delivered, &[]).unwrap());
            assert!(complete(&mut conn, &b[0], "b", RangeEnd::Delivered, &[]).unwrap());
            assert_eq!(stream(&mut conn), (3, 3));
        }

        /// Regression: a stream moved only when it found an entry of ours, so in a region that
        /// only applied other regions' writes it stayed behind for good — prune kept the whole
        /// changelog above it and no tombstone was ever purged.
        async fn a_stream_moves_past_other_regions_entries(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            ensure_streams(&mut conn, &["p".into()], ["widgets"]).unwrap();
            append(&mut conn, 1..=2, HERE);
            append(&mut conn, 3..=5, "us");
            let now = ship::db::utc_now();
            assert_eq!(take(&mut conn, "a", now, 100), vec![(1, 5)], "the range reaches the head");
            append(&mut conn, 6..=9, "us");
            assert_eq!(take(&mut conn, "b", now, 100), vec![], "nothing of ours to send");
            assert_eq!(stream(&mut conn), (0, 9), "cut to the head; 1..5 still out");
            let first = sync_delivery_ranges::table.select(sync_delivery_ranges::id).first::<i64>(&mut *conn).unwrap();
            let range = ClaimedRange { id: first, peer: "p".into(), resource: "widgets".into(), first_seq: 1, last_seq: 5, attempts: 0 };
            assert!(complete(&mut conn, &range, "a", RangeEnd::Delivered, &[]).unwrap());
            assert_eq!(stream(&mut conn), (9, 9));
            append(&mut conn, 10..=12, "us");
            assert_eq!(take(&mut conn, "c", now, 100), vec![]);
            assert_eq!(stream(&mut conn), (12, 12), "idle: delivered up to the head");
            assert_eq!(lowest_owed(&mut conn, "widgets").unwrap(), Some(13));
        }

        /// A range whose last attempt failed completes with its rest as dead letters, in one
        /// transaction, and is not a delivery: the stream keeps its error and its last
        /// delivery (regression: it recorded a delivery, resolving the push-lag alert while
        /// the peer was still down).
        async fn a_range_dead_at_its_last_attempt_is_no_delivery(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            ensure_streams(&mut conn, &["p".into()], ["widgets"]).unwrap();
            append(&mut conn, 1..=3, HERE);
            let r = ranges(&mut conn, "a", ship::db::utc_now(), 10);
            let at = ship::db::utc_now() - Duration::hours(1);
            let dead = DeadLetters { changes: &[(2, at), (3, at)], attempts: 30, error: "503 busy" };
            assert!(!complete(&mut conn, &r[0], "b", RangeEnd::Dead(dead), &[]).unwrap(), "not b's range");
            assert!(complete(&mut conn, &r[0], "a", RangeEnd::Dead(dead), &[]).unwrap());
            let status = streams(&mut conn, HERE, true).unwrap();
            assert_eq!((status[0].delivered_through, status[0].pending, status[0].last_delivered_at, status[0].last_error.as_deref()), (3, 0, None, Some("503 busy")));
            let dead_rows: Vec<(i64, NaiveDateTime)> = sync_outbox::table.filter(sync_outbox::status.eq(outbox_status::DEAD)).order(sync_outbox::seq).select((sync_outbox::seq, sync_outbox::created_at)).load(&mut *conn).unwrap();
            assert_eq!(dead_rows.iter().map(|d| d.0).collect::<Vec<_>>(), vec![2, 3]);
            assert!(dead_rows.iter().all(|d| (d.1 - at).num_milliseconds().abs() < 5), "as old as their changes: {dead_rows:?}");
        }

        /// Dead letters have an outbox row: a range leaves them out, status counts them once,
        /// and `discard` moves the stream to the head.
        async fn dead_letters_are_left_out_of_ranges_and_status(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            ensure_streams(&mut conn, &["p".into()], ["widgets"]).unwrap();
            append(&mut conn, 1..=4, HERE);
            append(&mut conn, 5..=5, "us");
            let r = ranges(&mut conn, "a", ship::db::utc_now(), 10);
            let dead = DeadLetters { changes: &[(2, ship::db::utc_now())], attempts: 1, error: "422" };
            assert!(!dead_letter(&mut conn, &r[0], "b", dead).unwrap(), "not b's range: nothing written");
            assert!(dead_letter(&mut conn, &r[0], "a", dead).unwrap());
            let status = streams(&mut conn, HERE, true).unwrap();
            assert_eq!((status.len(), status[0].pending, status[0].delivered), (1, 3, 0), "{status:?}");
            let sent: Vec<i64> = entries(&mut conn, &r[0], HERE).unwrap().changes.into_iter().map(|e| e.seq).collect();
            assert_eq!(sent, vec![1, 3, 4]);
            let listed: Vec<i64> = owed_entries(&mut conn, HERE, 10).unwrap().into_iter().map(|e| e.seq).collect();
            assert_eq!(listed, vec![1, 3, 4]);
            assert_eq!(discard(&mut conn, "p", HERE).unwrap(), 3);
            assert!(streams(&mut conn, HERE, true).unwrap().is_empty(), "the peer's streams are gone (regression: they stayed, at the head, and owed the peer every later write)");
            assert!(!complete(&mut conn, &r[0], "a", RangeEnd::Delivered, &[]).unwrap(), "the range was discarded");
            assert_eq!(due_streams(&mut conn, ship::db::utc_now(), &ClaimFilter::default()).unwrap(), vec![]);
            ensure_streams(&mut conn, &["p".into()], ["widgets"]).unwrap();
            assert_eq!(stream(&mut conn), (5, 5), "configured again: a new stream at the head");
        }

        /// ADR 0014: `outbox retry` hands a dead letter back to its stream — a range of its
        /// own below `delivered_through`, due at once; a failure counts on its row as on the
        /// range; at the last attempt it is dead again (same row); retried again and sent, its
        /// row is delivered and no range is left.
        async fn a_retried_dead_letter_goes_in_a_range_and_can_die_again(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            ensure_streams(&mut conn, &["p".into()], ["widgets"]).unwrap();
            append(&mut conn, 1..=4, HERE);
            let now = ship::db::utc_now();
            let r = ranges(&mut conn, "a", now, 10);
            let dead = DeadLetters { changes: &[(2, now)], attempts: 1, error: "422" };
            assert!(dead_letter(&mut conn, &r[0], "a", dead).unwrap());
            assert!(complete(&mut conn, &r[0], "a", RangeEnd::Delivered, &[]).unwrap());
            assert_eq!(stream(&mut conn), (4, 4));
            let row = |conn: &mut AnyConnection| -> (i64, String, i32) {
                sync_outbox::table.filter(sync_outbox::seq.eq(2)).select((sync_outbox::id, sync_outbox::status, sync_outbox::attempts)).first(conn).unwrap()
            };
            let (id, _, _) = row(&mut conn);
            // The stream backs off; a retry makes it due now.
            diesel::update(sync_delivery::table).set(sync_delivery::next_attempt_at.eq(now + Duration::hours(1))).execute(&mut *conn).unwrap();
            assert_eq!(requeue(&mut conn, None).unwrap(), 1);
            assert_eq!(requeue(&mut conn, None).unwrap(), 0, "nothing dead any more");
            let later = ship::db::utc_now();
            let b = ranges(&mut conn, "b", later, 10);
            assert_eq!(b.iter().map(|r| (r.first_seq, r.last_seq, r.attempts)).collect::<Vec<_>>(), vec![(2, 2, 0)]);
            let loaded = entries(&mut conn, &b[0], HERE).unwrap();
            assert_eq!((loaded.changes.iter().map(|c| c.seq).collect::<Vec<_>>(), loaded.retried.clone()), (vec![2], vec![2]));
            assert!(release(&mut conn, &b[0], "b", 2, "503", later, true, &loaded.retried).unwrap());
            assert_eq!(row(&mut conn), (id, "pending".to_string(), 1), "the failure counts on the row");
            assert_eq!(stream(&mut conn), (4, 4), "never moves down");
            let c = ranges(&mut conn, "c", later + Duration::seconds(1), 10);
            assert_eq!((c[0].first_seq, c[0].attempts), (2, 1));
            let dead = DeadLetters { changes: &[(2, now)], attempts: 2, error: "503" };
            assert!(complete(&mut conn, &c[0], "c", RangeEnd::Dead(dead), &[2]).unwrap());
            assert_eq!(row(&mut conn), (id, "dead".to_string(), 2), "dead again, the same row");
            assert_eq!(requeue(&mut conn, Some(id)).unwrap(), 1);
            let d = ranges(&mut conn, "d", ship::db::utc_now(), 10);
            assert!(complete(&mut conn, &d[0], "d", RangeEnd::Delivered, &[2]).unwrap());
            assert_eq!(row(&mut conn).1, "delivered");
            assert_eq!(sync_delivery_ranges::table.count().get_result::<i64>(&mut *conn).unwrap(), 0);
            assert_eq!(stream(&mut conn), (4, 4));
        }

        /// A dead letter retried while the range holding it is in flight was not loaded by
        /// that range's dispatcher: when it completes, the entry gets a range of its own (not
        /// a delivery it never had), and holds the stream back until it goes.
        async fn a_dead_letter_retried_while_its_range_is_in_flight_gets_a_range_of_its_own(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            ensure_streams(&mut conn, &["p".into()], ["widgets"]).unwrap();
            append(&mut conn, 1..=4, HERE);
            let now = ship::db::utc_now();
            let a = ranges(&mut conn, "a", now, 10);
            let dead = DeadLetters { changes: &[(2, now)], attempts: 1, error: "422" };
            assert!(dead_letter(&mut conn, &a[0], "a", dead).unwrap());
            assert_eq!(requeue(&mut conn, None).unwrap(), 1);
            assert_eq!(sync_delivery_ranges::table.count().get_result::<i64>(&mut *conn).unwrap(), 1, "inside a's range: no second range over it");
            assert!(complete(&mut conn, &a[0], "a", RangeEnd::Delivered, &[]).unwrap());
            assert_eq!(stream(&mut conn), (1, 4), "2 is still owed");
            assert_eq!(take(&mut conn, "b", ship::db::utc_now(), 10), vec![(2, 2)]);
            let b = sync_delivery_ranges::table.select(sync_delivery_ranges::id).first::<i64>(&mut *conn).unwrap();
            let b = ClaimedRange { id: b, peer: "p".into(), resource: "widgets".into(), first_seq: 2, last_seq: 2, attempts: 0 };
            assert!(complete(&mut conn, &b, "b", RangeEnd::Delivered, &[2]).unwrap());
            assert_eq!(stream(&mut conn), (4, 4));
            let status: String = sync_outbox::table.select(sync_outbox::status).first(&mut *conn).unwrap();
            assert_eq!(status, "delivered");
        }

        /// A peer's new incarnation restarts its stream around a retried dead letter's range
        /// (no two ranges over one seq), and what was retried and delivered goes again.
        async fn a_restart_goes_around_a_retried_dead_letter_and_resends_the_delivered_ones(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            ensure_streams(&mut conn, &["p".into()], ["widgets"]).unwrap();
            append(&mut conn, 1..=6, HERE);
            let now = ship::db::utc_now();
            let r = ranges(&mut conn, "a", now, 10);
            let dead = DeadLetters { changes: &[(2, now), (4, now)], attempts: 1, error: "422" };
            assert!(dead_letter(&mut conn, &r[0], "a", dead).unwrap());
            assert!(complete(&mut conn, &r[0], "a", RangeEnd::Delivered, &[]).unwrap());
            assert_eq!(requeue(&mut conn, None).unwrap(), 2);
            let two = ranges(&mut conn, "b", ship::db::utc_now(), 1);
            assert_eq!((two[0].first_seq, two[0].last_seq), (2, 2));
            assert!(complete(&mut conn, &two[0], "b", RangeEnd::Delivered, &[2]).unwrap());
            assert_eq!(stream(&mut conn), (6, 6));
            // 2 retried and delivered; 4 retried, its range (4, 4) still waiting.
            assert_eq!(restart(&mut conn, "p", ship::db::utc_now()).unwrap(), 6);
            let mut spans: Vec<(i64, i64)> = sync_delivery_ranges::table.select((sync_delivery_ranges::first_seq, sync_delivery_ranges::last_seq)).load(&mut *conn).unwrap();
            spans.sort();
            assert_eq!(spans, vec![(1, 3), (4, 4), (5, 6)], "around the retried 4");
            let sent: Vec<i64> = take(&mut conn, "c", ship::db::utc_now(), 100).into_iter().flat_map(|(a, b)| a..=b).collect();
            assert_eq!(sent, vec![1, 2, 3, 4, 5, 6]);
            let range = ClaimedRange { id: 0, peer: "p".into(), resource: "widgets".into(), first_seq: 1, last_seq: 6, attempts: 0 };
            assert_eq!(entries(&mut conn, &range, HERE).unwrap().changes.len(), 6, "2 (delivered before) goes again");
        }
    }
}
