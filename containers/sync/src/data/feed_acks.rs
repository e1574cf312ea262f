//! Feed acknowledgments (`sync_feed_acks`): per (peer, resource), the highest `since` cursor
//! the peer read our feed with — everything up to it is applied there — and when it last read.
//! Prune keeps what any acknowledging peer has not acknowledged yet (`data::prune`).

use chrono::NaiveDateTime;
use diesel::dsl::case_when;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use ship::AnyConnection;

use super::schema::{sync_changelog, sync_feed_acks, sync_sequences};

/// Record that `peer` has applied `resource`'s changes up to `seq`, seen at `now`. The
/// acknowledgment only ever rises: a lower `seq` (a stale or replayed cursor) refreshes
/// `last_seen_at` and leaves `acked_seq` alone. One `UPDATE` once the row exists, in its own
/// statement (no transaction needed: the update is atomic, and a racing first insert loses on
/// the primary key and updates instead).
pub fn record(
    conn: &mut AnyConnection,
    peer: &str,
    resource: &str,
    seq: i64,
    now: NaiveDateTime,
) -> QueryResult<()> {
    for _ in 0..2 {
        // Both backends report matched rows (diesel sets CLIENT_FOUND_ROWS on MariaDB), so an
        // existing row counts even when nothing changed.
        let updated = diesel::update(sync_feed_acks::table.find((peer, resource)))
            .set((
                sync_feed_acks::acked_seq.eq(case_when::<_, _, BigInt>(
                    sync_feed_acks::acked_seq.lt(seq),
                    seq.into_sql::<BigInt>(),
                )
                .otherwise(sync_feed_acks::acked_seq)),
                sync_feed_acks::last_seen_at.eq(now),
            ))
            .execute(conn)?;
        if updated > 0 {
            return Ok(());
        }
        let inserted = ship::insert_if_absent!(
            conn,
            sync_feed_acks::table,
            (
                sync_feed_acks::peer.eq(peer),
                sync_feed_acks::resource.eq(resource),
                sync_feed_acks::acked_seq.eq(seq),
                sync_feed_acks::last_seen_at.eq(now),
            )
        );
        match inserted {
            // Inserted concurrently: raise that row instead.
            Ok(0) => continue,
            other => return other.map(drop),
        }
    }
    Ok(())
}

/// The lowest acknowledgment of `resource` among the peers that ever read its feed; `None`
/// when none did.
pub fn lowest(conn: &mut AnyConnection, resource: &str) -> QueryResult<Option<i64>> {
    sync_feed_acks::table
        .filter(sync_feed_acks::resource.eq(resource))
        .select(diesel::dsl::min(sync_feed_acks::acked_seq))
        .first(conn)
}

/// Every acknowledgment: (peer, resource, acked_seq, last_seen_at).
pub fn all(conn: &mut AnyConnection) -> QueryResult<Vec<(String, String, i64, NaiveDateTime)>> {
    sync_feed_acks::table
        .select((
            sync_feed_acks::peer,
            sync_feed_acks::resource,
            sync_feed_acks::acked_seq,
            sync_feed_acks::last_seen_at,
        ))
        .order((sync_feed_acks::peer, sync_feed_acks::resource))
        .load(conn)
}

/// A reader of the feed and the oldest entry it still needs (ADR 0016).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedReader {
    pub peer: String,
    pub resource: String,
    pub acked_seq: i64,
    pub last_seen_at: NaiveDateTime,
    /// The first changelog entry after `acked_seq` still here: (seq, created_at); `None` when
    /// the reader has read everything there is.
    pub oldest_needed: Option<(i64, NaiveDateTime)>,
    /// Entries it has not read are gone already: its acknowledgment is below the resource's
    /// `pruned_through` (its next read is answered 410 and it needs a bootstrap).
    pub lost: bool,
}

/// Every acknowledgment with the oldest entry the reader still needs: one range read of the
/// changelog's primary key per (reader, resource).
pub fn readers(conn: &mut AnyConnection) -> QueryResult<Vec<FeedReader>> {
    let mut out = Vec::new();
    for (peer, resource, acked_seq, last_seen_at) in all(conn)? {
        // The first row holding an entry after `acked_seq` (a batch row may hold some up to it
        // as well, ADR 0026).
        let oldest_needed: Option<(i64, NaiveDateTime)> = sync_changelog::table
            .filter(sync_changelog::resource.eq(&resource))
            .filter(sync_changelog::seq.gt(acked_seq))
            .order(sync_changelog::seq)
            .select((
                sync_changelog::seq,
                sync_changelog::first_seq,
                sync_changelog::created_at,
            ))
            .first::<(i64, Option<i64>, NaiveDateTime)>(conn)
            .optional()?
            .map(|(seq, first, at)| (first.unwrap_or(seq).max(acked_seq + 1), at));
        let pruned_through: Option<i64> = sync_sequences::table
            .find(&resource)
            .select(sync_sequences::pruned_through)
            .first(conn)
            .optional()?;
        out.push(FeedReader {
            lost: pruned_through.is_some_and(|p| acked_seq < p),
            peer,
            resource,
            acked_seq,
            last_seen_at,
            oldest_needed,
        });
    }
    Ok(out)
}

/// Forget `peer`'s acknowledgments (a region gone for good), so they no longer hold back
/// pruning. How many rows went. A peer that still reads the feed records a new one.
pub fn forget(conn: &mut AnyConnection, peer: &str) -> QueryResult<usize> {
    diesel::delete(sync_feed_acks::table.filter(sync_feed_acks::peer.eq(peer))).execute(conn)
}
