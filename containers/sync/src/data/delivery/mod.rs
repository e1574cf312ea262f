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
//! MariaDB and PostgreSQL, the write lock of an immediate transaction on SQLite), then touch the
//! list: one row write per range, none per entry (retried ones aside).
//!
//! The code map:
//! - `lease`: a dispatcher's side — claim ranges, load their entries, then complete, release
//!   or renew them, recording dead letters on the way;
//! - `streams`: the streams as a whole — created, due, what each owes (`sync status`,
//!   `outbox list`, the alerts), the prune's floor, a peer discarded;
//! - `recovery`: an operator's retry of dead letters, and a peer's new incarnation.

mod lease;
mod recovery;
mod streams;
#[cfg(test)]
mod tests;

pub use super::outbox::DeadLetters;
pub use lease::{claim, complete, dead_letter, entries, release, renew, RangeEnd};
pub use recovery::{requeue, restart};
pub use streams::{
    discard, due_streams, ensure_streams, lowest_owed, owed_entries, peer_is_back, streams,
};

use chrono::NaiveDateTime;
use diesel::dsl::{Eq, Filter};
use diesel::prelude::*;
use ship::AnyConnection;

use super::schema::{sync_delivery, sync_delivery_ranges, sync_sequences};

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

/// A stream row, write-locked until the transaction ends.
#[derive(Queryable)]
struct Locked {
    delivered_through: i64,
    claimed_through: i64,
    next_attempt_at: NaiveDateTime,
}

/// Lock the stream row (`FOR UPDATE` on MariaDB and PostgreSQL; on SQLite the immediate
/// transaction already holds the database's write lock). `None`: there is no such stream
/// (discarded).
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
    match conn {
        AnyConnection::Mysql(c) => query.for_update().first(c).optional(),
        AnyConnection::Pg(c) => query.for_update().first(c).optional(),
        AnyConnection::Sqlite(c) => query.first(c).optional(),
    }
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

/// The stream `(peer, resource)`'s rows in `sync_delivery_ranges`.
type RangesOf<'a> = Filter<
    Filter<sync_delivery_ranges::table, Eq<sync_delivery_ranges::peer, &'a str>>,
    Eq<sync_delivery_ranges::resource, &'a str>,
>;

fn ranges_of<'a>(peer: &'a str, resource: &'a str) -> RangesOf<'a> {
    sync_delivery_ranges::table
        .filter(sync_delivery_ranges::peer.eq(peer))
        .filter(sync_delivery_ranges::resource.eq(resource))
}

/// The (first, last) spans of the stream's ranges, in no particular order.
fn spans(conn: &mut AnyConnection, peer: &str, resource: &str) -> QueryResult<Vec<(i64, i64)>> {
    ranges_of(peer, resource)
        .select((
            sync_delivery_ranges::first_seq,
            sync_delivery_ranges::last_seq,
        ))
        .load(conn)
}

/// Insert a never-attempted range over `first..=last`, leased to `lease` = (owner, until), or
/// free for any dispatcher when `None`.
fn insert_range(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    (first, last): (i64, i64),
    lease: Option<(&str, NaiveDateTime)>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(sync_delivery_ranges::table)
        .values((
            sync_delivery_ranges::peer.eq(peer),
            sync_delivery_ranges::resource.eq(resource),
            sync_delivery_ranges::first_seq.eq(first),
            sync_delivery_ranges::last_seq.eq(last),
            sync_delivery_ranges::attempts.eq(0),
            sync_delivery_ranges::lease_owner.eq(lease.map(|(owner, _)| owner)),
            sync_delivery_ranges::lease_until.eq(lease.map(|(_, until)| until)),
            sync_delivery_ranges::created_at.eq(now),
            sync_delivery_ranges::updated_at.eq(now),
        ))
        .execute(conn)
        .map(drop)
}

/// Free ranges over `seqs` (sorted, covered by no range), one per run of consecutive seqs.
fn add_ranges(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    seqs: &[i64],
    now: NaiveDateTime,
) -> QueryResult<()> {
    for run in runs(seqs) {
        insert_range(conn, peer, resource, run, None, now)?;
    }
    Ok(())
}

/// The runs of consecutive values in `seqs` (sorted), as (first, last).
fn runs(seqs: &[i64]) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &seq in seqs {
        match runs.last_mut() {
            Some(run) if run.1 + 1 == seq => run.1 = seq,
            _ => runs.push((seq, seq)),
        }
    }
    runs
}

/// Make the stream `(peer, resource)` due at `now` if it waits for later (a backoff ends).
fn make_due(
    conn: &mut AnyConnection,
    peer: &str,
    resource: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let later = sync_delivery::table
        .filter(sync_delivery::peer.eq(peer))
        .filter(sync_delivery::next_attempt_at.gt(now));
    let set = (
        sync_delivery::next_attempt_at.eq(now),
        sync_delivery::updated_at.eq(now),
    );
    match resource {
        Some(resource) => diesel::update(later.filter(sync_delivery::resource.eq(resource)))
            .set(set)
            .execute(conn),
        None => diesel::update(later).set(set).execute(conn),
    }
}
