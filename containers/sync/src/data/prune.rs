//! Retention: what may be deleted, and only that (docs/PROTOCOL.md, "Retention").

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ship::AnyConnection;

use super::feed_acks;
use super::schema::{sync_changelog, sync_outbox, sync_sequences};
use crate::models::outbox_status;

/// Delete delivered outbox entries delivered before `before`.
pub fn delivered_outbox(conn: &mut AnyConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(
        sync_outbox::table
            .filter(sync_outbox::status.eq(outbox_status::DELIVERED))
            .filter(sync_outbox::delivered_at.lt(before)),
    )
    .execute(conn)
}

/// Delete `resource`'s changelog entries that are older than `before` *and* below every entry
/// that must stay: one created at or after `before`, one still owed to a push peer (above its
/// delivery stream's `delivered_through`, or a pending or dead outbox entry), or one above the lowest acknowledgment of a peer that reads the
/// feed (`sync_feed_acks`: a pull-only peer has no outbox entries). The feed's `pruned_through` moves to the last deleted seq, so a
/// cursor below it is answered 410 `cursor_expired`. Locks the resource's sequence row first
/// (appends wait). Returns how many entries were deleted.
///
/// `hold_before` caps what the readers' acknowledgments hold back (`sync.feed_hold_max_hours`,
/// ADR 0016): with `Some(t)`, an entry created before `t` is no longer kept for a reader that
/// has not acknowledged it (that reader gets 410 and bootstraps). What a push peer is owed is
/// never capped. `None`: the acknowledgments hold back for ever (ADR 0008).
pub fn changelog(
    conn: &mut AnyConnection,
    resource: &str,
    before: NaiveDateTime,
    hold_before: Option<NaiveDateTime>,
) -> QueryResult<i64> {
    diesel::update(sync_sequences::table.find(resource))
        .set(sync_sequences::last_seq.eq(sync_sequences::last_seq))
        .execute(conn)?;
    let (last_seq, pruned_through): (i64, i64) = sync_sequences::table
        .find(resource)
        .select((sync_sequences::last_seq, sync_sequences::pruned_through))
        .first(conn)?;
    let young: Option<i64> = sync_changelog::table
        .filter(sync_changelog::resource.eq(resource))
        .filter(sync_changelog::created_at.ge(before))
        .select(diesel::dsl::min(sync_changelog::seq))
        .first(conn)?;
    let owed: Option<i64> = sync_outbox::table
        .filter(sync_outbox::resource.eq(resource))
        .filter(sync_outbox::status.ne(outbox_status::DELIVERED))
        .select(diesel::dsl::min(sync_outbox::seq))
        .first(conn)?;
    let streaming = super::delivery::lowest_owed(conn, resource)?;
    let mut unacknowledged = feed_acks::lowest(conn, resource)?.map(|acked| acked + 1);
    if let (Some(from), Some(cut)) = (unacknowledged, hold_before) {
        // The readers hold back only the entries created at or after the cap's cut (none:
        // nothing is held for them); what precedes them goes like an acknowledged entry.
        let held: Option<i64> = sync_changelog::table
            .filter(sync_changelog::resource.eq(resource))
            .filter(sync_changelog::created_at.ge(cut))
            .select(diesel::dsl::min(sync_changelog::seq))
            .first(conn)?;
        unacknowledged = Some(from.max(held.unwrap_or(last_seq + 1)));
    }
    let keep_from = [young, owed, streaming, unacknowledged]
        .into_iter()
        .flatten()
        .min();
    let upto = whole_rows(conn, resource, keep_from.map_or(last_seq, |seq| seq - 1))?;
    if upto <= pruned_through {
        return Ok(0);
    }
    // Entries, not rows: a batch row holds several (ADR 0026).
    let batch_rows: Vec<(i64, Option<i64>)> = sync_changelog::table
        .filter(sync_changelog::resource.eq(resource))
        .filter(sync_changelog::seq.le(upto))
        .filter(sync_changelog::first_seq.is_not_null())
        .select((sync_changelog::seq, sync_changelog::first_seq))
        .load(conn)?;
    let deleted = diesel::delete(
        sync_changelog::table
            .filter(sync_changelog::resource.eq(resource))
            .filter(sync_changelog::seq.le(upto)),
    )
    .execute(conn)? as i64
        + batch_rows
            .iter()
            .map(|(seq, first)| first.map_or(0, |first| seq - first))
            .sum::<i64>();
    diesel::update(sync_sequences::table.find(resource))
        .set(sync_sequences::pruned_through.eq(upto))
        .execute(conn)?;
    Ok(deleted)
}

/// `upto`, or the seq before the batch row holding the entry after it (ADR 0026): what may go
/// goes in whole rows, so `pruned_through` never falls inside one (a cursor there would be
/// answered 410 while its entries are still here).
pub fn whole_rows(conn: &mut AnyConnection, resource: &str, upto: i64) -> QueryResult<i64> {
    let next: Option<Option<i64>> = sync_changelog::table
        .filter(sync_changelog::resource.eq(resource))
        .filter(sync_changelog::seq.gt(upto))
        .order(sync_changelog::seq)
        .select(sync_changelog::first_seq)
        .first(conn)
        .optional()?;
    Ok(match next.flatten() {
        Some(first) if first <= upto => first - 1,
        _ => upto,
    })
}

/// Whether a reader of `resource`'s feed has lost history: its acknowledgment is below what
/// prune deleted (the feed hold cap let prune pass it, ADR 0016). While one has, no tombstone
/// of the resource is purged: a tombstone in the snapshot it bootstraps from is its only way to
/// learn of a delete it missed (review: with the cap, a reader away longer than the tombstone
/// retention bootstrapped and kept rows deleted meanwhile). Its acknowledgment moves on when it
/// bootstraps (the snapshot acknowledges its watermark), or it is forgotten.
pub fn a_reader_lost_history(conn: &mut AnyConnection, resource: &str) -> QueryResult<bool> {
    let Some(lowest) = feed_acks::lowest(conn, resource)? else {
        return Ok(false);
    };
    let pruned_through: Option<i64> = sync_sequences::table
        .find(resource)
        .select(sync_sequences::pruned_through)
        .first(conn)
        .optional()?;
    Ok(pruned_through.is_some_and(|pruned| lowest < pruned))
}

/// The entities of `resource` with a change still owed to some peer: a pending or dead outbox
/// entry, or a delete above the lowest `delivered_through` of a push stream or the lowest
/// feed acknowledgment (pull peers). For the
/// latter only deletes matter: a tombstone's latest change is its delete, so a peer that
/// acknowledged that delete has every change of the entity, and one that did not sees the
/// delete above its acknowledgment (kept by `changelog`). Restricting to deletes keeps the
/// set to tombstones instead of every entity changed since the slowest reader.
pub fn owed_entities(
    conn: &mut AnyConnection,
    resource: &str,
) -> QueryResult<std::collections::HashSet<String>> {
    let seqs: Vec<i64> = sync_outbox::table
        .filter(sync_outbox::resource.eq(resource))
        .filter(sync_outbox::status.ne(outbox_status::DELIVERED))
        .select(sync_outbox::seq)
        .distinct()
        .load(conn)?;
    let mut out = std::collections::HashSet::new();
    for chunk in seqs.chunks(500) {
        out.extend(
            sync_changelog::table
                .filter(sync_changelog::resource.eq(resource))
                .filter(sync_changelog::seq.eq_any(chunk))
                .select(sync_changelog::entity_id)
                .load::<String>(conn)?,
        );
    }
    // Push streams: the same reasoning as for the feed's readers below, from the lowest
    // `delivered_through` (every entry up to it is delivered to every push peer).
    let lowest = [
        super::delivery::lowest_owed(conn, resource)?,
        feed_acks::lowest(conn, resource)?.map(|acked| acked + 1),
    ]
    .into_iter()
    .flatten()
    .min();
    if let Some(from) = lowest {
        let acked = from - 1;
        out.extend(
            sync_changelog::table
                .filter(sync_changelog::resource.eq(resource))
                .filter(sync_changelog::seq.gt(acked))
                .filter(sync_changelog::op.eq(ship::contracts::OpKind::Delete.as_str()))
                .select(sync_changelog::entity_id)
                .distinct()
                .load::<String>(conn)?,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::changelog;
    use crate::models::{ChangeLogEntry, ChangeLogRow};

    ship::backend_tests! {
        /// ADR 0026: prune deletes whole rows. A reader that has read into a batch row keeps
        /// all of it (and `pruned_through` stays before it, so no cursor into it is answered
        /// 410); once it has read the row, the row goes, counted as the entries it held; the
        /// reader's oldest needed entry is the one after its acknowledgment, inside the row.
        async fn prune_deletes_whole_batch_rows_and_counts_their_entries(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            let old = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
            let single = |place: i64| ChangeLogEntry {
                resource: "widgets".into(),
                seq: place,
                entity_id: format!("w{place}"),
                op: "upsert".into(),
                payload: "{}".into(),
                hlc: place << 16,
                origin_region: "eu".into(),
                schema_version: 1,
                created_at: old,
            };
            let p = ship::contracts::Payload::serialized(&serde_json::json!({})).unwrap();
            let texts: Vec<String> = (2..=6).map(|k| changelog::batch_element(&format!("b{k}"), k << 16, &p).unwrap()).collect();
            let batch = ChangeLogRow {
                entry: ChangeLogEntry {
                    seq: 6,
                    entity_id: String::new(),
                    op: changelog::BATCH_OP.into(),
                    payload: changelog::batch_payload(texts.iter().map(String::as_str)),
                    hlc: 6 << 16,
                    origin_region: "us".into(),
                    ..single(6)
                },
                first_seq: Some(2),
            };
            changelog::ensure_sequences(&mut conn, ["widgets"]).unwrap();
            ship::db::transact(&mut conn, |c| {
                changelog::append_rows(c, "widgets", vec![ChangeLogRow::single(single(1)), batch, ChangeLogRow::single(single(7))], 7, 7 << 16)
            })
            .unwrap();
            let now = ship::db::utc_now();
            feed_acks::record(&mut conn, "ap-south", "widgets", 3, now).unwrap();
            let readers = feed_acks::readers(&mut conn).unwrap();
            assert_eq!(readers[0].oldest_needed.map(|(seq, _)| seq), Some(4), "the entry after 3, inside the batch row");
            assert_eq!(whole_rows(&mut conn, "widgets", 3).unwrap(), 1);
            assert_eq!(whole_rows(&mut conn, "widgets", 6).unwrap(), 6);
            assert_eq!(whole_rows(&mut conn, "widgets", 1).unwrap(), 1);
            let deleted = ship::db::transact(&mut conn, |c| changelog(c, "widgets", now, None)).unwrap();
            assert_eq!(deleted, 1, "the row before the batch row only");
            assert_eq!(changelog::watermark(&mut conn, "widgets").unwrap(), (7, 1));
            assert_eq!(changelog::hlc_at(&mut conn, "widgets", 4).unwrap(), Some(4 << 16), "still served");
            feed_acks::record(&mut conn, "ap-south", "widgets", 6, now).unwrap();
            let deleted = ship::db::transact(&mut conn, |c| changelog(c, "widgets", now, None)).unwrap();
            assert_eq!(deleted, 5, "the batch row's five entries");
            assert_eq!(changelog::watermark(&mut conn, "widgets").unwrap(), (7, 6));
            let readers = feed_acks::readers(&mut conn).unwrap();
            assert_eq!(readers[0].oldest_needed.map(|(seq, _)| seq), Some(7));
        }
    }
}
