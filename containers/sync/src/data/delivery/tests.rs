//! The streams' behaviour on every backend, and the pure steps of a claim and a restart.

use super::lease::take_free;
use super::recovery::around;
use super::*;
use crate::data::schema::{sync_delivery, sync_outbox, sync_sequences};
use crate::models::{outbox_status, ChangeLogEntry};
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
fn take(conn: &mut AnyConnection, owner: &str, at: NaiveDateTime, limit: i64) -> Vec<(i64, i64)> {
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

fn range(id: i64, (first_seq, last_seq): (i64, i64), attempts: i32) -> ClaimedRange {
    ClaimedRange {
        id,
        peer: "p".into(),
        resource: "widgets".into(),
        first_seq,
        last_seq,
        attempts,
    }
}

#[test]
fn a_claim_merges_touching_free_ranges_that_failed_as_often_within_its_limit() {
    let free = vec![
        range(1, (1, 3), 2),
        range(2, (4, 5), 2),
        range(3, (6, 6), 1),
        range(4, (8, 9), 1),
        range(5, (10, 20), 1),
    ];
    let (taken, merged) = take_free(free.clone(), 9);
    let spans: Vec<_> = taken
        .iter()
        .map(|r| (r.first_seq, r.last_seq, r.attempts))
        .collect();
    assert_eq!(
        spans,
        vec![(1, 5, 2), (6, 6, 1), (8, 9, 1)],
        "6 does not join 1..5 (fewer failures), 8 does not touch 6"
    );
    assert_eq!(merged, vec![2]);
    let (taken, merged) = take_free(free[4..].to_vec(), 3);
    assert_eq!(
        (taken.len(), taken[0].last_seq, merged.len()),
        (1, 20, 0),
        "the first range is taken whatever its size"
    );
    assert_eq!(take_free(Vec::new(), 5), (Vec::new(), Vec::new()));
}

#[test]
fn runs_of_consecutive_seqs() {
    assert_eq!(runs(&[1, 2, 3, 5, 7, 8]), vec![(1, 3), (5, 5), (7, 8)]);
    assert!(runs(&[]).is_empty());
}

#[test]
fn a_restart_cuts_pieces_around_the_ranges_held() {
    assert_eq!(around(1, 10, &[], 4), vec![(1, 4), (5, 8), (9, 10)]);
    assert_eq!(around(1, 10, &[(3, 4), (9, 12)], 100), vec![(1, 2), (5, 8)]);
    assert_eq!(around(1, 10, &[(1, 10)], 3), Vec::<(i64, i64)>::new());
    assert_eq!(
        around(5, 4, &[], 3),
        Vec::<(i64, i64)>::new(),
        "nothing delivered, nothing put back"
    );
    assert_eq!(
        around(1, 7, &[(6, 6)], 2),
        vec![(1, 2), (3, 4), (5, 5), (7, 7)]
    );
    assert_eq!(
        around(1, 10, &[(12, 15)], 100),
        vec![(1, 10)],
        "a range beyond: no matter"
    );
    assert_eq!(around(1, 10, &[(8, 15)], 100), vec![(1, 7)]);
}
