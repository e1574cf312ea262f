//! The feed hold cap (`sync.feed_hold_max_hours`, ADR 0016) on each backend: without it a
//! stalled reader's acknowledgment holds the changelog back for ever (ADR 0008); with it,
//! prune deletes what the reader has not read once older than the cap (it gets 410), but never
//! what a push peer is owed. The `history_loss_risk` alert predicts it from the reader's rate:
//! a stalled reader fires, one with nothing left to read or catching up does not (and
//! resolves), one that lost its history fires.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use app::startup::{prepare, StartOptions};
use base64::Engine as _;
use common::{count, settings_for, Region};
use serde_json::json;
use ship::parents::Action;
use ship::testing::TestDb;
use sync::actions::{AlertsInput, ListAlertsAction, PruneAction, PruneInput};
use sync::PeerConfig;

fn exec(db: &TestDb, sql: &str) {
    diesel::RunQueryDsl::execute(diesel::sql_query(sql), &mut db.pool.get().unwrap()).unwrap();
}

fn cursor(seq: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{seq}"))
}

/// `peer` reads the customers feed after `since`: the status (200, or 410 past what was
/// pruned); an answered read acknowledges `since`.
async fn read_as(region: &Region, peer: &str, since: i64) -> u16 {
    let path = format!(
        "/sync/customers/changes?since={}&exclude_origin={peer}",
        cursor(since)
    );
    let (status, body) = region.get_with(&path, Some(&region.token_from(peer))).await;
    assert!(status == 200 || status == 410, "{status} {body}");
    status
}

/// `n` new customers on `region`.
async fn create(region: &Region, n: usize) {
    for i in 0..n {
        let body = json!({"tenant_id": "t1", "name": format!("c{i}"), "email": "x@example.com"});
        assert_eq!(region.post("/api/v1/customers", &body).await.0, 201);
    }
}

/// The customers changelog seqs still there.
fn seqs(db: &TestDb) -> Vec<i64> {
    #[derive(diesel::QueryableByName)]
    struct Seq {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        seq: i64,
    }
    let rows: Vec<Seq> = diesel::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT seq FROM sync_changelog WHERE resource = 'customers' ORDER BY seq",
        ),
        &mut db.pool.get().unwrap(),
    )
    .unwrap();
    rows.into_iter().map(|r| r.seq).collect()
}

/// An SQL timestamp `ago` before now.
fn ago(ago: Duration) -> String {
    let at = ship::db::utc_now() - chrono::Duration::from_std(ago).unwrap();
    format!("'{}'", at.format("%Y-%m-%d %H:%M:%S"))
}

fn input() -> PruneInput {
    PruneInput {
        outbox_retention: Duration::from_secs(24 * 3600),
        changelog_retention: Duration::from_secs(7 * 24 * 3600),
        tombstone_retention: Duration::from_secs(30 * 24 * 3600),
    }
}

/// (subject, state) of the `history_loss_risk` alerts, oldest first.
async fn history_alerts(db: &TestDb) -> Vec<(String, String)> {
    common::alert_history(db)
        .await
        .into_iter()
        .filter(|(kind, _, _)| kind == "history_loss_risk")
        .map(|(_, subject, state)| (subject, state))
        .collect()
}

fn firing(subject: &str) -> (String, String) {
    (subject.into(), "firing".into())
}

ship::backend_tests! {
    async fn the_cap_prunes_what_a_stalled_reader_has_not_read_but_not_what_a_push_peer_is_owed(db: TestDb) {
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![PeerConfig { id: "ap-south".into(), push: true, pull: false }];
        let region = Region::start(&settings).await;
        create(&region, 6).await;
        // Seq 1..5 are ten days old, 6 is new. us-east (a pull-only reader) stalled after
        // reading to 2; the push peer ap-south was delivered through 3.
        exec(&db, "UPDATE sync_changelog SET created_at = '2020-01-01 00:00:00' WHERE seq <= 5");
        assert_eq!(read_as(&region, "us-east", 2).await, 200);
        common::mark_delivered_through(&db, "ap-south", 3, "'2020-01-01 00:00:00'");
        let registry = || app::wiring::resources().unwrap();

        // Without the cap (the default): us-east's acknowledgment holds 3.. back.
        let held = PruneAction::new(db.pool.clone(), registry())
            .holding_feed_for(Duration::ZERO)
            .run(input())
            .await
            .unwrap();
        assert_eq!(held.changelog_deleted, 2);
        assert_eq!(seqs(&db), [3, 4, 5, 6]);
        assert_eq!(read_as(&region, "us-east", 2).await, 200, "nothing it needs is gone");

        // A cap of a day: what us-east has not read goes once older than that, except what
        // ap-south is still owed (4.. : the push is never capped).
        let capped = PruneAction::new(db.pool.clone(), registry())
            .holding_feed_for(Duration::from_secs(24 * 3600));
        assert_eq!(capped.run(input()).await.unwrap().changelog_deleted, 1);
        assert_eq!(seqs(&db), [4, 5, 6]);
        common::mark_delivered_through(&db, "ap-south", 6, "CURRENT_TIMESTAMP");
        assert_eq!(capped.run(input()).await.unwrap().changelog_deleted, 2);
        assert_eq!(seqs(&db), [6], "the young entry stays");
        assert_eq!(count(&mut db.pool.get().unwrap(), "SELECT pruned_through FROM sync_sequences WHERE resource = 'customers'"), 5);
        assert_eq!(read_as(&region, "us-east", 2).await, 410, "us-east needs a bootstrap now");

        // The alert says so: us-east lost its history.
        settings.sync.feed_hold_max_hours = 24;
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        wiring.alerts_action(&pool, &settings).unwrap().run(AlertsInput::default()).await.unwrap();
        assert_eq!(history_alerts(&db).await, vec![firing("us-east/customers")]);
        let message = ListAlertsAction::new(db.pool.clone()).run(10).await.unwrap()
            .into_iter().find(|a| a.kind == "history_loss_risk").unwrap().message;
        assert!(message.contains("has lost customers history"), "{message}");
        region.stop().await;
    }
}

ship::backend_tests! {
    /// Cap 2 h (retention 1 h), horizon 1 h. Entries 1..2 were written 100 min ago, 3 just now.
    /// us-east stalled before 1: from the second evaluation on (the first has no rate to
    /// judge by, so it changes nothing — a restarted scheduler raises no false alert) at 1 s/s
    /// its oldest unread entry passes the cap within the hour — fires. ap-south read everything, sa-east only misses the fresh 3: neither fires.
    /// us-east catches up to 2: its oldest unread entry is the fresh one, its age fell — it
    /// resolves. Without a cap nothing is predicted (a new stalled reader fires only with it).
    async fn history_loss_risk_fires_for_a_stalled_reader_and_resolves_when_it_catches_up(db: TestDb) {
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.feed_hold_max_hours = 2;
        settings.sync.changelog_retention_hours = 1;
        settings.alerts.history_loss_horizon_secs = 3600;
        let region = Region::start(&settings).await;
        create(&region, 3).await;
        exec(&db, &format!("UPDATE sync_changelog SET created_at = {} WHERE seq <= 2", ago(Duration::from_secs(100 * 60))));
        assert_eq!(read_as(&region, "us-east", 0).await, 200);
        assert_eq!(read_as(&region, "ap-south", 3).await, 200);
        assert_eq!(read_as(&region, "sa-east", 2).await, 200);

        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let alerts = wiring.alerts_action(&pool, &settings).unwrap();
        alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!(history_alerts(&db).await, vec![], "one sample: no rate yet, nothing judged");
        tokio::time::sleep(Duration::from_millis(50)).await;
        alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!(history_alerts(&db).await, vec![firing("us-east/customers")]);
        // Still stalled: still firing, and the gauge shows its oldest unread entry's age.
        alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!(history_alerts(&db).await, vec![firing("us-east/customers")]);
        let text = reqwest::get(region.url("/metrics")).await.unwrap().text().await.unwrap();
        let age: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("regionsync_sync_feed_oldest_unread_age_seconds{peer=\"us-east\",resource=\"customers\"} "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(age >= 100.0 * 60.0, "{age}");
        assert!(text.contains("regionsync_sync_feed_oldest_unread_age_seconds{peer=\"ap-south\",resource=\"customers\"} 0"), "{text}");

        // us-east catches up.
        assert_eq!(read_as(&region, "us-east", 2).await, 200);
        alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!(history_alerts(&db).await, vec![("us-east/customers".into(), "resolved".into())]);

        // Without a cap a reader never loses history: nothing to predict, even for a new
        // reader stalled before the old entries (with the cap it fires).
        assert_eq!(read_as(&region, "me-central", 0).await, 200);
        let mut uncapped = settings.clone();
        uncapped.sync.feed_hold_max_hours = 0;
        wiring.alerts_action(&pool, &uncapped).unwrap().run(AlertsInput::default()).await.unwrap();
        assert_eq!(history_alerts(&db).await, vec![("us-east/customers".into(), "resolved".into())]);
        alerts.run(AlertsInput::default()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!(history_alerts(&db).await, vec![("us-east/customers".into(), "resolved".into()), firing("me-central/customers")]);
        region.stop().await;
    }
}

ship::backend_tests! {
    /// Review: with the cap, a reader away longer than the tombstone retention bootstrapped
    /// and kept the rows deleted meanwhile (their deletes pruned by the cap, then their
    /// tombstones purged). While a reader has lost history no tombstone is purged; once it
    /// has bootstrapped (its acknowledgment at the snapshot's watermark) they go again.
    async fn no_tombstone_is_purged_while_a_reader_has_lost_history(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let body = json!({"tenant_id": "t1", "name": "gone", "email": "x@example.com"});
        let (status, created) = region.post("/api/v1/customers", &body).await;
        assert_eq!(status, 201);
        let id = created["id"].as_str().unwrap().to_string();
        let res = region.client.delete(region.url(&format!("/api/v1/customers/{id}"))).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 204);
        assert_eq!(read_as(&region, "us-east", 0).await, 200);
        // Everything is old: the create and the delete, and the tombstone.
        exec(&db, "UPDATE sync_changelog SET created_at = '2020-01-01 00:00:00'");
        exec(&db, "UPDATE customers SET deleted_at = '2020-01-01 00:00:00' WHERE deleted_at IS NOT NULL");
        let prune = PruneAction::new(db.pool.clone(), app::wiring::resources().unwrap())
            .holding_feed_for(Duration::from_secs(24 * 3600));
        let first = prune.run(input()).await.unwrap();
        assert_eq!((first.changelog_deleted, first.tombstones_purged), (2, 0), "the deletes went, the tombstone stays");
        assert_eq!(read_as(&region, "us-east", 0).await, 410, "us-east lost its history");
        assert_eq!(count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM customers"), 1);
        assert_eq!(prune.run(input()).await.unwrap().tombstones_purged, 0, "still lost: still kept");

        // us-east bootstraps: its snapshot read acknowledges the watermark.
        let (status, _) = region.get_with("/sync/customers/snapshot", Some(&region.token_from("us-east"))).await;
        assert_eq!(status, 200);
        assert_eq!(prune.run(input()).await.unwrap().tombstones_purged, 1);
        assert_eq!(count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM customers"), 0);
        region.stop().await;
    }
}
