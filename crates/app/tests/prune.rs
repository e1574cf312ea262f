//! Retention on each backend: delivered outbox entries go after their retention; changelog
//! entries go only when old, owed to no push peer *and* acknowledged by every peer that reads
//! the feed, and the feed then answers 410 to cursors below what was pruned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{count, settings_for, Region};
use serde_json::json;
use ship::parents::Action;
use ship::testing::TestDb;
use sync::actions::DiscardOutboxAction;
use sync::actions::{PruneAction, PruneInput};
use sync::PeerConfig;

fn exec(db: &TestDb, sql: &str) {
    diesel::RunQueryDsl::execute(diesel::sql_query(sql), &mut db.pool.get().unwrap()).unwrap();
}

/// Change `seq` of customers was a dead letter for `peer` that an operator retried, and it was
/// delivered at `at` (an SQL expression): a single outbox entry, delivered.
fn retried_and_delivered(db: &TestDb, peer: &str, seq: i64, at: &str) {
    exec(
        db,
        &format!(
            "INSERT INTO sync_outbox (peer, resource, seq, status, attempts, next_attempt_at, created_at, updated_at, delivered_at) \
             VALUES ('{peer}', 'customers', {seq}, 'delivered', 0, {at}, {at}, {at}, {at})"
        ),
    );
}

fn cursor(seq: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{seq}"))
}

fn input() -> PruneInput {
    PruneInput {
        outbox_retention: Duration::from_secs(24 * 3600),
        changelog_retention: Duration::from_secs(7 * 24 * 3600),
        tombstone_retention: Duration::from_secs(30 * 24 * 3600),
    }
}

#[derive(diesel::QueryableByName)]
struct Seq {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    seq: i64,
}

/// The changelog seqs still there, in order.
fn seqs(db: &TestDb) -> Vec<i64> {
    let rows: Vec<Seq> = diesel::RunQueryDsl::load(
        diesel::sql_query("SELECT seq FROM sync_changelog ORDER BY seq"),
        &mut db.pool.get().unwrap(),
    )
    .unwrap();
    rows.into_iter().map(|r| r.seq).collect()
}

/// `peer` reads the customers feed after `since` (None: from the start); the status.
async fn read_as(region: &Region, peer: &str, since: Option<i64>) -> u16 {
    let path = match since {
        Some(seq) => format!(
            "/sync/customers/changes?since={}&exclude_origin={peer}",
            cursor(seq)
        ),
        None => format!("/sync/customers/changes?exclude_origin={peer}"),
    };
    let (status, body) = region.get_with(&path, Some(&region.token_from(peer))).await;
    assert!(status == 200 || status == 410, "{status} {body}");
    status
}

fn acked(db: &TestDb, peer: &str) -> i64 {
    count(
        &mut db.pool.get().unwrap(),
        &format!(
            "SELECT acked_seq FROM sync_feed_acks WHERE peer = '{peer}' AND resource = 'customers'"
        ),
    )
}

/// `n` new customers on `region`; their ids.
async fn create(region: &Region, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (status, body) = region
            .post(
                "/api/v1/customers",
                &json!({"tenant_id": "t1", "name": format!("c{i}"), "email": "x@example.com"}),
            )
            .await;
        assert_eq!(status, 201);
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    ids
}

ship::backend_tests! {
    async fn prune_never_deletes_what_a_peer_is_owed(db: TestDb) {
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![PeerConfig::both("us-east")];
        let region = Region::start(&settings).await;
        for i in 0..6 {
            let (status, _) = region.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": format!("c{i}"), "email": "x@example.com"})).await;
            assert_eq!(status, 201);
        }
        // seq 1..5 are ten days old, 6 is new; us-east's stream was delivered through 2 two days
        // ago (1 and 2 as retried dead letters: their delivery records are past the retention).
        exec(&db, "UPDATE sync_changelog SET created_at = '2020-01-01 00:00:00' WHERE seq <= 5");
        common::mark_delivered_through(&db, "us-east", 2, "'2020-01-01 00:00:00'");
        for seq in [1, 2] {
            retried_and_delivered(&db, "us-east", seq, "'2020-01-01 00:00:00'");
        }
        assert_eq!(common::owed(&db, "eu-west", "us-east"), 4);
        let prune = PruneAction::new(db.pool.clone(), app::wiring::resources().unwrap());
        let input = PruneInput {
            outbox_retention: Duration::from_secs(24 * 3600),
            changelog_retention: Duration::from_secs(7 * 24 * 3600),
            tombstone_retention: Duration::from_secs(30 * 24 * 3600),
        };
        let first = prune.run(input).await.unwrap();
        assert_eq!((first.outbox_deleted, first.changelog_deleted), (2, 2), "seq 3 is owed: only 1 and 2 go");
        let remaining = |db: &TestDb| count(&mut db.pool.get().unwrap(), "SELECT MIN(seq) FROM sync_changelog");
        assert_eq!(remaining(&db), 3);
        assert_eq!(count(&mut db.pool.get().unwrap(), "SELECT pruned_through FROM sync_sequences WHERE resource = 'customers'"), 2);

        // A cursor below what was pruned is gone for good; one at the watermark still reads.
        let (status, body) = region.get(&format!("/sync/customers/changes?since={}", cursor(1))).await;
        assert_eq!((status, body["error"].as_str()), (410, Some("cursor_expired")), "{body}");
        let (status, body) = region.get(&format!("/sync/customers/changes?since={}", cursor(2))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["changes"][0]["seq"], 3);
        // That read acknowledged seq 2 for its reader; it catches up to the watermark, so
        // only the push stream is left to hold anything back.
        let (status, body) = region.get(&format!("/sync/customers/changes?since={}", cursor(6))).await;
        assert_eq!(status, 200, "{body}");

        // 3..5 delivered just now (5 as a retried dead letter): the changelog may go up to the
        // young entry; the fresh delivery record stays for its retention.
        common::mark_delivered_through(&db, "us-east", 5, "CURRENT_TIMESTAMP");
        retried_and_delivered(&db, "us-east", 5, "CURRENT_TIMESTAMP");
        let second = prune.run(input).await.unwrap();
        assert_eq!((second.outbox_deleted, second.changelog_deleted), (0, 3));
        assert_eq!(remaining(&db), 6, "the young entry stays");
        assert_eq!(count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_outbox"), 1);
        let third = prune.run(input).await.unwrap();
        assert_eq!((third.outbox_deleted, third.changelog_deleted), (0, 0), "idempotent");
        region.stop().await;
    }
}

ship::backend_tests! {
    async fn old_tombstones_go_unless_a_peer_is_owed_their_delete(db: TestDb) {
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![PeerConfig::both("us-east")];
        let region = Region::start(&settings).await;
        let mut ids = Vec::new();
        for i in 0..4 {
            let (status, body) = region.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": format!("c{i}"), "email": "x@example.com"})).await;
            assert_eq!(status, 201);
            ids.push(body["id"].as_str().unwrap().to_string());
        }
        for id in &ids[..3] {
            let res = region.client.delete(region.url(&format!("/api/v1/customers/{id}"))).send().await.unwrap();
            assert_eq!(res.status(), 204);
        }
        // Tombstones 0 and 1 are old, 2 is recent; us-east's stream was delivered up to the
        // delete of customer 0, not the delete of customer 1.
        exec(&db, &format!("UPDATE customers SET deleted_at = '2020-01-01 00:00:00' WHERE id IN ('{}', '{}')", ids[0], ids[1]));
        let delete_seq = |id: &str| count(&mut db.pool.get().unwrap(), &format!("SELECT seq FROM sync_changelog WHERE entity_id = '{id}' AND op = 'delete'"));
        let (d0, d1) = (delete_seq(&ids[0]), delete_seq(&ids[1]));
        assert!(d0 < d1);
        common::mark_delivered_through(&db, "us-east", d0, "CURRENT_TIMESTAMP");
        let prune = PruneAction::new(db.pool.clone(), app::wiring::resources().unwrap());
        let input = PruneInput {
            outbox_retention: Duration::from_secs(24 * 3600),
            changelog_retention: Duration::from_secs(7 * 24 * 3600),
            tombstone_retention: Duration::from_secs(30 * 24 * 3600),
        };
        let summary = prune.run(input).await.unwrap();
        assert_eq!(summary.tombstones_purged, 1, "only the old, acknowledged tombstone");
        let left = |id: &str| count(&mut db.pool.get().unwrap(), &format!("SELECT COUNT(*) FROM customers WHERE id = '{id}'"));
        assert_eq!((left(&ids[0]), left(&ids[1]), left(&ids[2]), left(&ids[3])), (0, 1, 1, 1));
        region.stop().await;
    }
}

ship::backend_tests! {
    /// The broker region of the README: no `[[sync.peers]]`, so no outbox; us-east only pulls.
    async fn a_pull_only_peer_keeps_what_it_has_not_read(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        create(&region, 6).await;
        exec(&db, "UPDATE sync_changelog SET created_at = '2020-01-01 00:00:00'");
        assert_eq!(count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_delivery"), 0, "no push peer");
        let prune = PruneAction::new(db.pool.clone(), app::wiring::resources().unwrap());

        // us-east has applied up to 3 (its cursor): 4..6 are not read yet.
        assert_eq!(read_as(&region, "us-east", Some(3)).await, 200);
        let summary = prune.run(input()).await.unwrap();
        assert_eq!(summary.changelog_deleted, 3);
        assert_eq!(seqs(&db), vec![4, 5, 6]);
        assert_eq!(read_as(&region, "us-east", Some(3)).await, 200, "its next read still works");

        assert_eq!(read_as(&region, "us-east", Some(5)).await, 200);
        assert_eq!(prune.run(input()).await.unwrap().changelog_deleted, 2);
        assert_eq!(seqs(&db), vec![6]);

        // us-east is gone for good: the operator forgets it, and it holds back nothing more.
        let gone = DiscardOutboxAction::new(db.pool.clone(), "eu-west").run((None, Some("us-east".into()))).await.unwrap();
        assert_eq!((gone.entries, gone.feed_acks), (0, 1));
        assert_eq!(prune.run(input()).await.unwrap().changelog_deleted, 1);
        assert_eq!(seqs(&db), Vec::<i64>::new());
        region.stop().await;
    }
}

ship::backend_tests! {
    async fn a_stale_cursor_never_lowers_the_acknowledgment(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        create(&region, 6).await;
        exec(&db, "UPDATE sync_changelog SET created_at = '2020-01-01 00:00:00'");
        assert_eq!(read_as(&region, "us-east", Some(5)).await, 200);
        assert_eq!(acked(&db, "us-east"), 5);
        exec(&db, "UPDATE sync_feed_acks SET last_seen_at = '2020-01-01 00:00:00'");
        // A replayed older cursor, and a read from the start: the acknowledgment stays.
        assert_eq!(read_as(&region, "us-east", Some(2)).await, 200);
        assert_eq!(read_as(&region, "us-east", None).await, 200);
        assert_eq!(acked(&db, "us-east"), 5);
        let seen = count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_feed_acks WHERE last_seen_at > '2021-01-01 00:00:00'");
        assert_eq!(seen, 1, "a stale read still counts as seen");
        let prune = PruneAction::new(db.pool.clone(), app::wiring::resources().unwrap());
        assert_eq!(prune.run(input()).await.unwrap().changelog_deleted, 5);
        assert_eq!(seqs(&db), vec![6]);
        region.stop().await;
    }
}

ship::backend_tests! {
    async fn push_and_pull_peers_each_keep_what_they_still_need(db: TestDb) {
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![PeerConfig::both("us-east")];
        let region = Region::start(&settings).await;
        create(&region, 6).await;
        exec(&db, "UPDATE sync_changelog SET created_at = '2020-01-01 00:00:00'");
        // The push peer us-east has 1..4; ap-south pulls and has read up to 2.
        common::mark_delivered_through(&db, "us-east", 4, "CURRENT_TIMESTAMP");
        assert_eq!(read_as(&region, "ap-south", Some(2)).await, 200);
        let prune = PruneAction::new(db.pool.clone(), app::wiring::resources().unwrap());
        assert_eq!(prune.run(input()).await.unwrap().changelog_deleted, 2);
        assert_eq!(seqs(&db), vec![3, 4, 5, 6], "ap-south has not read 3");

        // ap-south catches up: now us-east's undelivered 5 and 6 hold.
        assert_eq!(read_as(&region, "ap-south", Some(6)).await, 200);
        assert_eq!(prune.run(input()).await.unwrap().changelog_deleted, 2);
        assert_eq!(seqs(&db), vec![5, 6], "us-east is owed 5 and 6");

        common::mark_delivered_through(&db, "us-east", 5, "CURRENT_TIMESTAMP");
        assert_eq!(prune.run(input()).await.unwrap().changelog_deleted, 1);
        assert_eq!(seqs(&db), vec![6]);
        region.stop().await;
    }
}

ship::backend_tests! {
    async fn a_pull_only_peer_keeps_the_tombstones_it_has_not_acknowledged(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let ids = create(&region, 4).await;
        for id in &ids[..3] {
            let res = region.client.delete(region.url(&format!("/api/v1/customers/{id}"))).send().await.unwrap();
            assert_eq!(res.status(), 204);
        }
        // Tombstones 0 and 1 are old, 2 is recent; no push peer.
        exec(&db, &format!("UPDATE customers SET deleted_at = '2020-01-01 00:00:00' WHERE id IN ('{}', '{}')", ids[0], ids[1]));
        let delete_seq = |id: &str| count(&mut db.pool.get().unwrap(), &format!("SELECT seq FROM sync_changelog WHERE entity_id = '{id}' AND op = 'delete'"));
        let (d0, d1) = (delete_seq(&ids[0]), delete_seq(&ids[1]));
        assert!(d0 < d1);
        let left = |id: &str| count(&mut db.pool.get().unwrap(), &format!("SELECT COUNT(*) FROM customers WHERE id = '{id}'"));
        let prune = PruneAction::new(db.pool.clone(), app::wiring::resources().unwrap());

        // us-east has the delete of customer 0, not the one of customer 1.
        assert_eq!(read_as(&region, "us-east", Some(d0)).await, 200);
        assert_eq!(prune.run(input()).await.unwrap().tombstones_purged, 1);
        assert_eq!((left(&ids[0]), left(&ids[1]), left(&ids[2]), left(&ids[3])), (0, 1, 1, 1));

        assert_eq!(read_as(&region, "us-east", Some(d1)).await, 200);
        assert_eq!(prune.run(input()).await.unwrap().tombstones_purged, 1);
        assert_eq!((left(&ids[0]), left(&ids[1]), left(&ids[2]), left(&ids[3])), (0, 0, 1, 1));
        region.stop().await;
    }
}

ship::backend_tests! {
    async fn a_feed_read_is_answered_when_its_acknowledgment_cannot_be_written(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        create(&region, 3).await;
        exec(&db, "DROP TABLE sync_feed_acks");
        let (status, body) = region
            .get_with(&format!("/sync/customers/changes?since={}", cursor(1)), Some(&region.token_from("us-east")))
            .await;
        assert_eq!(status, 200, "{body}");
        let got: Vec<i64> = body["changes"].as_array().unwrap().iter().map(|c| c["seq"].as_i64().unwrap()).collect();
        assert_eq!(got, vec![2, 3]);
        region.stop().await;
    }
}

ship::backend_tests! {
    /// `sync.conflict_retention_days`: prune deletes the conflicts detected before it, with
    /// their resolutions, and keeps the younger ones; without it the ledger is kept for ever.
    async fn old_conflicts_and_their_resolutions_go_after_their_retention(db: TestDb) {
        // A started region: its changelog sequences exist (prune reads them).
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let conflicts_at = [("e-old", "2020-01-01 00:00:00"), ("e-resolved", "2020-01-02 00:00:00"), ("e-resolved-lately", "2020-01-03 00:00:00"), ("e-new", "2100-01-01 00:00:00")];
        for (entity, detected) in conflicts_at {
            exec(&db, &format!(
                "INSERT INTO sync_conflicts (resource, entity_id, winner_hlc, winner_origin, winner_payload, \
                 loser_hlc, loser_origin, loser_payload, reason, detected_at) \
                 VALUES ('customers', '{entity}', 2, 'us-east', '{{}}', 1, 'ap-south', '{{}}', 'older_hlc', '{detected}')"
            ));
        }
        let id_of = |entity: &str| count(&mut db.pool.get().unwrap(), &format!("SELECT id FROM sync_conflicts WHERE entity_id = '{entity}'"));
        exec(&db, &format!(
            "INSERT INTO sync_conflict_resolutions (conflict_id, took, hlc, origin_region, resolved_by, why, resolved_at) \
             VALUES ({}, 'loser', 3, 'eu-west', 'ops', 'test', '2020-01-03 00:00:00')",
            id_of("e-resolved")
        ));
        // Resolved within the retention (a date to come stands for "lately"): it stays.
        exec(&db, &format!(
            "INSERT INTO sync_conflict_resolutions (conflict_id, took, hlc, origin_region, resolved_by, why, resolved_at) \
             VALUES ({}, 'winner', 4, 'eu-west', 'ops', 'test', '2100-01-02 00:00:00')",
            id_of("e-resolved-lately")
        ));
        let conflicts = || count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_conflicts");
        let resolutions = || count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_conflict_resolutions");

        let kept_for_ever = PruneAction::new(db.pool.clone(), app::wiring::resources().unwrap());
        assert_eq!(kept_for_ever.run(input()).await.unwrap().conflicts_deleted, 0);
        let zero = PruneAction::new(db.pool.clone(), app::wiring::resources().unwrap()).keeping_conflicts_for(Duration::ZERO);
        assert_eq!(zero.run(input()).await.unwrap().conflicts_deleted, 0, "0: kept for ever");
        assert_eq!((conflicts(), resolutions()), (4, 2));

        let prune = PruneAction::new(db.pool.clone(), app::wiring::resources().unwrap())
            .keeping_conflicts_for(Duration::from_secs(90 * 86_400));
        assert_eq!(prune.run(input()).await.unwrap().conflicts_deleted, 2);
        assert_eq!((conflicts(), resolutions()), (2, 1), "the young one and the lately resolved one stay; the old resolution went with its conflict");
        assert!(id_of("e-new") > 0 && id_of("e-resolved-lately") > 0);
        assert_eq!(prune.run(input()).await.unwrap().conflicts_deleted, 0, "nothing more to delete");
        region.stop().await;
    }
}
