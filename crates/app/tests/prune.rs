//! Retention on each backend: delivered outbox entries go after their retention; changelog
//! entries go only when old *and* owed to no peer, and the feed then answers 410 to cursors
//! below what was pruned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::{count, settings_for, Region};
use serde_json::json;
use ship::parents::Action;
use ship::testing::TestDb;
use sync::actions::{PruneAction, PruneInput};
use sync::PeerConfig;

fn exec(db: &TestDb, sql: &str) {
    diesel::RunQueryDsl::execute(diesel::sql_query(sql), &mut db.pool.get().unwrap()).unwrap();
}

fn cursor(seq: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1:{seq}"))
}

ship::backend_tests! {
    async fn prune_never_deletes_what_a_peer_is_owed(db: TestDb) {
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![PeerConfig { id: "us-east".into() }];
        let region = Region::start(&settings).await;
        for i in 0..6 {
            let (status, _) = region.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": format!("c{i}"), "email": "x@example.com"})).await;
            assert_eq!(status, 201);
        }
        // seq 1..5 are ten days old, 6 is new; every entry but seq 3 was delivered two days ago.
        exec(&db, "UPDATE sync_changelog SET created_at = '2020-01-01 00:00:00' WHERE seq <= 5");
        exec(&db, "UPDATE sync_outbox SET status = 'delivered', delivered_at = '2020-01-01 00:00:00' WHERE seq <> 3");
        let prune = PruneAction::new(db.pool.clone(), app::wiring::resources().unwrap());
        let input = PruneInput {
            outbox_retention: Duration::from_secs(24 * 3600),
            changelog_retention: Duration::from_secs(7 * 24 * 3600),
            tombstone_retention: Duration::from_secs(30 * 24 * 3600),
        };
        let first = prune.run(input).await.unwrap();
        assert_eq!((first.outbox_deleted, first.changelog_deleted), (5, 2), "seq 3 is owed: only 1 and 2 go");
        let remaining = |db: &TestDb| count(&mut db.pool.get().unwrap(), "SELECT MIN(seq) FROM sync_changelog");
        assert_eq!(remaining(&db), 3);
        assert_eq!(count(&mut db.pool.get().unwrap(), "SELECT pruned_through FROM sync_sequences WHERE resource = 'customers'"), 2);

        // A cursor below what was pruned is gone for good; one at the watermark still reads.
        let (status, body) = region.get(&format!("/sync/customers/changes?since={}", cursor(1))).await;
        assert_eq!((status, body["error"].as_str()), (410, Some("cursor_expired")), "{body}");
        let (status, body) = region.get(&format!("/sync/customers/changes?since={}", cursor(2))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["changes"][0]["seq"], 3);

        // Seq 3 delivered just now: the changelog may go up to the young entry; the fresh
        // delivery record stays for its retention.
        exec(&db, "UPDATE sync_outbox SET status = 'delivered', delivered_at = CURRENT_TIMESTAMP WHERE seq = 3");
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
        settings.sync.peers = vec![PeerConfig { id: "us-east".into() }];
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
        // Tombstones 0 and 1 are old, 2 is recent; everything was delivered except the delete
        // of customer 1.
        exec(&db, &format!("UPDATE customers SET deleted_at = '2020-01-01 00:00:00' WHERE id IN ('{}', '{}')", ids[0], ids[1]));
        exec(&db, "UPDATE sync_outbox SET status = 'delivered', delivered_at = CURRENT_TIMESTAMP");
        exec(&db, &format!(
            "UPDATE sync_outbox SET status = 'pending' WHERE seq = (SELECT MAX(seq) FROM sync_changelog WHERE entity_id = '{}')",
            ids[1]
        ));
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
