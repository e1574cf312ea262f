//! Issue 13 (verify): two regions compare their rows by hashes over ranges of hashed ids and
//! find exactly the rows made to differ behind the service's back — a direct SQL update, a
//! deleted row, an extra row — while identical regions exchange one answer of 256 hashes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use app::startup::{prepare, StartOptions};
use common::{count, customers_digest, register_region, settings_for, Region};
use diesel::connection::SimpleConnection;
use serde_json::json;
use ship::parents::Action;
use ship::testing::TestDb;
use sync::actions::{BootstrapInput, Prefer, RepairInput, VerifyInput};
use sync::PeerConfig;

ship::backend_tests! {
    async fn verify_finds_exactly_the_rows_that_differ(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        let mut ids = Vec::new();
        for i in 0..300 {
            let (status, body) = a.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": format!("n{i}"), "email": format!("u{i}@example.com")})).await;
            assert_eq!(status, 201, "{body}");
            ids.push(body["id"].as_str().unwrap().to_string());
        }
        let mut settings = settings_for(&db_b, "us-east");
        settings.sync.peers = vec![PeerConfig::both("eu-west")];
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        register_region(&db_b, "eu-west", &a.base).await;
        let loaded = wiring
            .bootstrap_action(&pool, &settings)
            .unwrap()
            .run(BootstrapInput { peer: "eu-west".into(), resource: "customers".into(), page_limit: 500, max_pages: 100, auto: false })
            .await
            .unwrap();
        assert!(loaded.done);
        assert_eq!(customers_digest(&db), customers_digest(&db_b));
        let verify = wiring.verify_action(&pool, &settings).unwrap();
        let input = || VerifyInput { peer: "eu-west".into(), resource: "customers".into() };

        let same = verify.run(input()).await.unwrap();
        assert_eq!((same.rows_local, same.rows_remote, same.differing.len()), (300, 300, 0), "{same:?}");
        assert_eq!(same.requests, 1, "identical: one answer of range hashes");
        assert!(same.bytes < 256 * 100, "O(ranges) bytes, not O(rows): {}", same.bytes);

        // Behind the service's back at us-east: a content edit (same version), a row gone, a
        // row nobody wrote through the service.
        let (edited, gone) = (&ids[10], &ids[200]);
        let extra = "01939d2e-0000-7000-8000-0000000000ee";
        db_b.pool.get().unwrap().batch_execute(&format!(
            "UPDATE customers SET name = 'edited by hand' WHERE id = '{edited}'; \
             DELETE FROM customers WHERE id = '{gone}'; \
             INSERT INTO customers (id, tenant_id, name, email, status, created_at, updated_at, sync_version, sync_origin, deleted_at) \
             VALUES ('{extra}', 't1', 'x', 'x@example.com', 'active', '2026-12-01 00:00:00', '2026-12-01 00:00:00', 5, 'us-east', NULL)"
        )).unwrap();
        let diff = verify.run(input()).await.unwrap();
        let mut found: Vec<&str> = diff.differing.iter().map(|d| d.entity_id.as_str()).collect();
        found.sort_unstable();
        let mut expected = vec![edited.as_str(), gone.as_str(), extra];
        expected.sort_unstable();
        assert_eq!(found, expected, "{diff:?}");
        let by_id = |id: &str| diff.differing.iter().find(|d| d.entity_id == id).unwrap().clone();
        assert_eq!(by_id(gone).local, None);
        assert!(by_id(gone).remote.is_some());
        assert_eq!(by_id(extra).remote, None);
        assert_eq!(by_id(extra).local, Some((5, "us-east".to_string())));
        assert_eq!(by_id(edited).local, by_id(edited).remote, "same version, other content");
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM customers"), 300);
        // The result is kept: /metrics and `sync status` show it, the divergence alert fires.
        let status = sync::actions::SyncStatusAction::new(pool.clone(), "us-east").run(()).await.unwrap();
        assert_eq!(status.iter().find(|s| s.peer == "eu-west").and_then(|s| s.verify_differing), Some(3));
        wiring.alerts_action(&pool, &settings).unwrap().run(sync::actions::AlertsInput::default()).await.unwrap();
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_alerts WHERE kind = 'divergence' AND subject = 'eu-west/customers'"), 1);

        // The route refuses what it must.
        let (status, body) = a.get("/sync/customers/digest?prefix=XYZ").await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_query")));
        let (status, body) = a.get("/sync/customers/digest?depth=9").await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_query")));
        let (status, body) = a.get_with("/sync/customers/digest", None).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("token_missing")));
        a.stop().await;
    }
}

ship::backend_tests! {
    /// Repair, run on each side, takes the peer's newer versions, re-asserts the preferred
    /// content of a row edited behind the service's back (same version), and leaves the rows
    /// newer here for the peer's own repair; afterwards verify is clean and the digests equal.
    async fn repair_on_both_sides_makes_verify_clean(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        let b = Region::start(&settings_for(&db_b, "us-east")).await;
        register_region(&db, "us-east", &b.base).await;
        register_region(&db_b, "eu-west", &a.base).await;
        let mut ids = Vec::new();
        for i in 0..40 {
            let (status, body) = a.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": format!("n{i}"), "email": format!("u{i}@example.com")})).await;
            assert_eq!(status, 201, "{body}");
            ids.push(body["id"].as_str().unwrap().to_string());
        }
        let side = |db: &TestDb, me: &str, peer: &str| {
            let mut settings = settings_for(db, me);
            settings.sync.peers = vec![PeerConfig::both(peer)];
            settings
        };
        let (settings_a, settings_b) = (side(&db, "eu-west", "us-east"), side(&db_b, "us-east", "eu-west"));
        let (pool_a, wiring_a) = prepare(&settings_a, StartOptions::default()).await.unwrap();
        let (pool_b, wiring_b) = prepare(&settings_b, StartOptions::default()).await.unwrap();
        wiring_b
            .bootstrap_action(&pool_b, &settings_b)
            .unwrap()
            .run(BootstrapInput { peer: "eu-west".into(), resource: "customers".into(), page_limit: 500, max_pages: 100, auto: false })
            .await
            .unwrap();
        let (edited, gone) = (&ids[5], &ids[30]);
        let extra = "01939d2e-0000-7000-8000-0000000000ee";
        db_b.pool.get().unwrap().batch_execute(&format!(
            "UPDATE customers SET name = 'edited by hand' WHERE id = '{edited}'; \
             DELETE FROM customers WHERE id = '{gone}'; \
             INSERT INTO customers (id, tenant_id, name, email, status, created_at, updated_at, sync_version, sync_origin, deleted_at) \
             VALUES ('{extra}', 't1', 'x', 'x@example.com', 'active', '2026-12-01 00:00:00', '2026-12-01 00:00:00', 5, 'us-east', NULL)"
        )).unwrap();

        let verify_b = wiring_b.verify_action(&pool_b, &settings_b).unwrap();
        let input = |peer: &str| VerifyInput { peer: peer.into(), resource: "customers".into() };
        let found = verify_b.run(input("eu-west")).await.unwrap();
        assert_eq!(found.differing.len(), 3);
        let done = wiring_b
            .repair_action(&pool_b, &settings_b)
            .unwrap()
            .run(RepairInput { peer: "eu-west".into(), resource: "customers".into(), differing: found.differing, prefer: Prefer::Peer })
            .await
            .unwrap();
        assert_eq!((done.taken, done.reasserted, done.theirs_to_take), (1, 1, 1), "{done:?}");
        let (_, row) = b.get(&format!("/api/v1/customers/{edited}")).await;
        assert_eq!(row["name"], "n5", "eu-west's content, re-asserted at us-east");
        let (status, _) = b.get(&format!("/api/v1/customers/{gone}")).await;
        assert_eq!(status, 200, "taken back from eu-west");

        // eu-west's side: it takes what is newer at us-east (the re-asserted row, the extra one).
        let found = wiring_a.verify_action(&pool_a, &settings_a).unwrap().run(input("us-east")).await.unwrap();
        assert_eq!(found.differing.len(), 2, "{found:?}");
        let done = wiring_a
            .repair_action(&pool_a, &settings_a)
            .unwrap()
            .run(RepairInput { peer: "us-east".into(), resource: "customers".into(), differing: found.differing, prefer: Prefer::Peer })
            .await
            .unwrap();
        assert_eq!((done.taken, done.reasserted, done.theirs_to_take), (2, 0, 0), "{done:?}");
        let clean = verify_b.run(input("eu-west")).await.unwrap();
        assert!(clean.differing.is_empty(), "{clean:?}");
        assert_eq!(customers_digest(&db), customers_digest(&db_b));
        a.stop().await;
        b.stop().await;
    }
}

ship::backend_tests! {
    /// Review fix: a row that changes between verify and repair is left alone (the re-assert
    /// with a fresh clock would have put old content over the newer write), and the next
    /// verify/repair takes the newer write.
    async fn repair_leaves_a_row_that_changed_since_the_verify(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        let (status, body) = a.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": "first", "email": "f@example.com"})).await;
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_str().unwrap().to_string();
        let mut settings = settings_for(&db_b, "us-east");
        settings.sync.peers = vec![PeerConfig::both("eu-west")];
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        register_region(&db_b, "eu-west", &a.base).await;
        wiring
            .bootstrap_action(&pool, &settings)
            .unwrap()
            .run(BootstrapInput { peer: "eu-west".into(), resource: "customers".into(), page_limit: 500, max_pages: 100, auto: false })
            .await
            .unwrap();
        db_b.pool.get().unwrap().batch_execute(&format!("UPDATE customers SET name = 'by hand' WHERE id = '{id}'")).unwrap();
        let input = || VerifyInput { peer: "eu-west".into(), resource: "customers".into() };
        let found = wiring.verify_action(&pool, &settings).unwrap().run(input()).await.unwrap();
        assert_eq!(found.differing.len(), 1);
        // eu-west writes the row again before the repair runs.
        let res = a.client.patch(a.url(&format!("/api/v1/customers/{id}"))).json(&json!({"name": "newer"})).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let repair = wiring.repair_action(&pool, &settings).unwrap();
        let done = repair
            .run(RepairInput { peer: "eu-west".into(), resource: "customers".into(), differing: found.differing, prefer: Prefer::Peer })
            .await
            .unwrap();
        assert_eq!((done.changed, done.reasserted, done.taken), (1, 0, 0), "{done:?}");
        let found = wiring.verify_action(&pool, &settings).unwrap().run(input()).await.unwrap();
        let done = repair
            .run(RepairInput { peer: "eu-west".into(), resource: "customers".into(), differing: found.differing, prefer: Prefer::Peer })
            .await
            .unwrap();
        assert_eq!(done.taken, 1, "{done:?}");
        assert_eq!(customers_digest(&db), customers_digest(&db_b));
        a.stop().await;
    }
}
