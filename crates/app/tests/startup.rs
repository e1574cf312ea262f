//! The web process built in-process on each backend: migrations, region binding, the route
//! table from every container, graceful stop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use app::startup::{Application, StartOptions};
use ship::testing::TestDb;

mod common;
use common::{settings_for, Region};

ship::backend_tests! {
    async fn the_app_serves_health_and_the_error_envelope(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let (status, _) = region.get("/health/ready").await;
        assert_eq!(status, 200);
        let (status, body) = region.get("/nope").await;
        assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
        // The sync container's routes are wired, and refuse a resource nobody registered.
        let (status, body) = region.get("/sync/nope/changes").await;
        assert_eq!((status, body["error"].as_str()), (404, Some("unknown_resource")));
        region.stop().await;
    }

    /// `[sync.conflict_policy]` naming a resource this binary does not sync is refused at
    /// start, naming the key (a typo would otherwise leave the resource on `lww` silently).
    async fn a_conflict_policy_for_an_unknown_resource_is_refused_at_start(db: TestDb) {
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.conflict_policy.insert("custmers".into(), ship::contracts::ConflictPolicy::DeleteWins);
        let err = Application::build(&settings, StartOptions::default())
            .await
            .err()
            .expect("refused");
        let message = err.to_string();
        assert!(message.contains("sync.conflict_policy") && message.contains("custmers") && message.contains("customers, orders"), "{message}");
    }

    async fn a_second_region_cannot_start_on_the_same_database(db: TestDb) {
        let first = Application::build(&settings_for(&db, "eu-west"), StartOptions::default()).await.unwrap();
        first.run_until(async {}).await.unwrap();
        let err = Application::build(&settings_for(&db, "us-east"), StartOptions::default())
            .await
            .err()
            .expect("a second region is refused");
        let message = err.to_string();
        assert!(message.contains("eu-west") && message.contains("us-east"), "{message}");
        // The same region starts again.
        let again = Application::build(&settings_for(&db, "eu-west"), StartOptions::default()).await.unwrap();
        again.run_until(async {}).await.unwrap();
    }
}

/// `serve --no-migrate` on a database whose binding table exists still checks the region.
#[tokio::test]
async fn no_migrate_still_checks_the_region_binding() {
    let db = TestDb::sqlite();
    ship::db::bind_region(&mut db.pool.get().unwrap(), "eu-west").unwrap();
    let err = Application::build(
        &settings_for(&db, "us-east"),
        StartOptions { migrate: false },
    )
    .await
    .err()
    .expect("a foreign region is refused without migrating too");
    assert!(err.to_string().contains("eu-west"), "{err}");
}

/// `serve --no-migrate` on a schema behind the binary is refused at start, naming the fix.
#[tokio::test]
async fn no_migrate_refuses_a_schema_with_pending_migrations() {
    let db = TestDb::sqlite();
    ship::db::migrations::revert_last(&mut db.pool.get().unwrap()).unwrap();
    let err = Application::build(
        &settings_for(&db, "eu-west"),
        StartOptions { migrate: false },
    )
    .await
    .err()
    .expect("pending migrations are refused");
    assert!(err.to_string().contains("regionsync migrate run"), "{err}");
}

/// The app registers every synced resource once, and orders go after the customers they
/// name.
#[test]
fn every_resource_is_registered_once() {
    let registry = app::wiring::resources().unwrap();
    let names: Vec<_> = registry.names().collect();
    assert_eq!(names, ["customers", "orders"]);
    assert_eq!(
        registry.dependency_order().unwrap(),
        ["customers", "orders"]
    );
    let referrers: Vec<_> = registry
        .referrers("customers")
        .map(|(r, _)| r.name())
        .collect();
    assert_eq!(referrers, ["orders"]);
}

ship::backend_tests! {
    /// End to end inside one region: a customer written through the REST API appears in the
    /// changes feed, owed to each configured peer.
    async fn a_customer_write_appears_in_the_changes_feed(db: TestDb) {
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![sync::PeerConfig::both("us-east")];
        let region = Region::start(&settings).await;
        let (status, customer) = region
            .post("/api/v1/customers", &serde_json::json!({"tenant_id": "t1", "name": "Ada Lovelace", "email": "ada@example.com"}))
            .await;
        assert_eq!(status, 201);
        let id = customer["id"].as_str().unwrap().to_string();

        let (_, feed) = region.get("/sync/customers/changes").await;
        let changes = feed["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "{feed}");
        assert_eq!(changes[0]["entity_id"], id.as_str());
        assert_eq!(changes[0]["origin"], "eu-west");
        assert_eq!(changes[0]["payload"]["name"], "Ada Lovelace");

        assert_eq!(common::owed(&db, "eu-west", "us-east"), 1);
        region.stop().await;
    }
}

ship::backend_tests! {
    /// `GET /metrics` (OpenMetrics text, for Prometheus): what `sync status` says per peer and
    /// resource, read from the database by the web process.
    async fn metrics_report_what_each_peer_is_owed(db: TestDb) {
        let mut settings = common::settings_for(&db, "eu-west");
        settings.sync.peers = vec![sync::PeerConfig::both("us-east")];
        let region = common::Region::start(&settings).await;
        let mut last = String::new();
        for i in 0..2 {
            let (status, created) = region
                .post("/api/v1/customers", &serde_json::json!({"tenant_id": "t1", "name": format!("c{i}"), "email": "x@example.com"}))
                .await;
            assert_eq!(status, 201);
            last = created["id"].as_str().unwrap().to_string();
        }
        // Both domains (issue 15): an order of the last customer, and an order from a peer
        // whose customer is not here yet (parked).
        let (status, _) = region
            .post("/api/v1/orders", &serde_json::json!({"tenant_id": "t1", "customer_id": last, "number": "SO-1", "currency": "EUR", "lines": [{"sku": "A", "quantity": 1, "unit_price_minor": 100}]}))
            .await;
        assert_eq!(status, 201);
        let waiting = "01939d2e-0000-7000-8000-0000000000e9";
        let op = serde_json::json!({"op_id": "o1", "entity_id": waiting, "kind": "upsert", "hlc": common::hlc(-1_000), "origin": "us-east",
            "payload": common::order(waiting, "01939d2e-0000-7000-8000-0000000000c9", "pending", false)});
        let (status, body) = region
            .post("/sync/orders/ops", &serde_json::json!({"source_region": "us-east", "batch_id": "b1", "schema_version": 1, "ops": [op]}))
            .await;
        assert_eq!((status, body["parked"].as_u64()), (200, Some(1)), "{body}");
        let res = reqwest::get(format!("{}/metrics", region.base)).await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
        let text = res.text().await.unwrap();
        assert!(text.contains("regionsync_sync_pending{peer=\"us-east\",resource=\"customers\"} 2.0"), "{text}");
        assert!(text.contains("regionsync_sync_pending{peer=\"us-east\",resource=\"orders\"} 1.0"), "{text}");
        assert!(text.contains("regionsync_sync_parked_ops{resource=\"orders\"} 1.0"), "{text}");
        assert!(text.contains("regionsync_sync_parked_oldest_age_seconds{resource=\"orders\"}"), "{text}");
        assert!(text.contains("regionsync_sync_dead_letters{peer=\"us-east\",resource=\"customers\"} 0.0"), "{text}");
        assert!(text.contains("regionsync_sync_delivered_through{peer=\"us-east\",resource=\"customers\"} 0.0"), "{text}");
        assert!(text.contains("# TYPE regionsync_sync_oldest_pending_age_seconds gauge"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        // A source that cannot read fails the scrape with the JSON envelope, not a partial page.
        diesel::RunQueryDsl::execute(diesel::sql_query("DROP TABLE sync_alerts"), &mut db.pool.get().unwrap()).unwrap();
        let res = reqwest::get(format!("{}/metrics", region.base)).await.unwrap();
        assert_eq!(res.status().as_u16(), 503);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"], "metrics_unavailable", "{body}");
        region.stop().await;
    }
}

ship::backend_tests! {
    /// Regression: a local write must be newer than the row it overwrites even when that row's
    /// version came from a clock ahead of this process's (another process of the region, a
    /// backfill) — otherwise peers would drop the write as stale and diverge for good.
    async fn a_local_update_is_newer_than_the_version_it_overwrites(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let (_, created) = region
            .post("/api/v1/customers", &serde_json::json!({"tenant_id": "t1", "name": "Ada", "email": "ada@example.com"}))
            .await;
        let id = created["id"].as_str().unwrap().to_string();

        // Another process, its clock an hour ahead, wrote the row.
        let ahead = (ship::contracts::hlc::system_time_ms() as i64 + 3_600_000) << 16;
        diesel::connection::SimpleConnection::batch_execute(
            &mut *db.pool.get().unwrap(),
            &format!("UPDATE customers SET sync_version = {ahead} WHERE id = '{id}'"),
        )
        .unwrap();

        let res = region.client.patch(region.url(&format!("/api/v1/customers/{id}"))).json(&serde_json::json!({"name": "Ada L."})).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let stored = common::count(&mut db.pool.get().unwrap(), &format!("SELECT sync_version FROM customers WHERE id = '{id}'"));
        assert!(stored > ahead, "{stored} > {ahead}");
        // ... and the region's clock was not dragged an hour ahead with it: the next new
        // customer is stamped near now, not beyond every peer's drift bound.
        let (_, other) = region
            .post("/api/v1/customers", &serde_json::json!({"tenant_id": "t1", "name": "Grace", "email": "g@example.com"}))
            .await;
        let other_id = other["id"].as_str().unwrap().to_string();
        let fresh = common::count(&mut db.pool.get().unwrap(), &format!("SELECT sync_version FROM customers WHERE id = '{other_id}'"));
        assert!(fresh < ahead, "{fresh} < {ahead}");
        region.stop().await;
    }
}
