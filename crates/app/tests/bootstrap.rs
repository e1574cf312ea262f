//! Issue 13 (first part): a region joins with the data that exists. A peer's snapshot
//! (`GET /sync/{resource}/snapshot`) is loaded page by page through the LWW apply while writes
//! go on, an interrupted bootstrap resumes from its last page, and the pull then continues from
//! the snapshot's watermark — on each backend, between two real regions over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use app::startup::{prepare, StartOptions};
use common::{count, customers_digest, register_region, settings_for, Region};
use diesel::connection::SimpleConnection;
use serde_json::{json, Value};
use ship::parents::Action;
use ship::parents::Job;
use ship::testing::TestDb;
use sync::actions::{BootstrapAction, BootstrapInput, PullChangesAction, PullChangesInput};
use sync::{PeerConfig, SyncError};

/// Region us-east on `db` (broker role, test key), with eu-west registered at `peer_base`.
async fn joiner(db: &TestDb, peer_base: &str) -> (BootstrapAction, PullChangesAction) {
    let mut settings = settings_for(db, "us-east");
    settings.sync.peers = vec![PeerConfig::both("eu-west")];
    let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
    register_region(db, "eu-west", peer_base).await;
    (
        wiring.bootstrap_action(&pool, &settings).unwrap(),
        wiring.pull_action(&pool, &settings).unwrap(),
    )
}

fn bootstrap_input(max_pages: u32) -> BootstrapInput {
    BootstrapInput {
        peer: "eu-west".into(),
        resource: "customers".into(),
        page_limit: 5,
        max_pages,
        auto: false,
    }
}

fn pull_input() -> PullChangesInput {
    PullChangesInput {
        peer: "eu-west".into(),
        resource: "customers".into(),
        page_limit: 5,
        max_pages: 100,
        run_for: None,
    }
}

async fn create(region: &Region, name: &str) -> String {
    let (status, body) = region
        .post(
            "/api/v1/customers",
            &json!({"tenant_id": "t1", "name": name, "email": format!("{name}@example.com")}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// Prune every changelog entry of eu-west, as the hourly prune does after the retention.
fn prune_everything(db: &TestDb) {
    db.pool
        .get()
        .unwrap()
        .batch_execute(
            "UPDATE sync_sequences SET pruned_through = last_seq WHERE resource = 'customers'; \
             DELETE FROM sync_changelog",
        )
        .unwrap();
}

ship::backend_tests! {
    /// `sync.bootstrap = "auto"`: a 410 bootstraps by itself, once; a 410 again right after a
    /// finished bootstrap is a loop — refused (and alerted by the flag) until an operator runs
    /// the bootstrap by hand.
    async fn a_410_bootstraps_by_itself_once_and_never_loops(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        for i in 0..12 {
            create(&a, &format!("a{i}")).await;
        }
        prune_everything(&db);
        let (bootstrap, _) = joiner(&db_b, &a.base).await;
        let job = common::auto_pull_job(&db_b, "us-east", "eu-west", 5).await;

        job.handle().await.unwrap();
        assert_eq!(customers_digest(&db), customers_digest(&db_b), "bootstrapped, then pulled");
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_bootstraps"), 0);
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_peer_flags"), 0);
        create(&a, "later").await;
        job.handle().await.unwrap();
        assert_eq!(customers_digest(&db), customers_digest(&db_b), "then pulls as usual");

        // A bootstrap finishes, but eu-west prunes past its watermark before the first pull.
        bootstrap.run(bootstrap_input(100)).await.unwrap();
        create(&a, "pruned-at-once").await;
        prune_everything(&db);
        let err = job.handle().await.unwrap_err();
        assert!(err.to_string().contains("410 again right after a bootstrap"), "{err}");
        let looping = "SELECT COUNT(*) FROM sync_bootstraps WHERE next_cursor = '!loop'";
        assert_eq!(count(&mut db_b.pool.get().unwrap(), looping), 1);
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_peer_flags"), 1, "bootstrap_needed stands");
        let settings = settings_for(&db_b, "us-east");
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        wiring.alerts_action(&pool, &settings).unwrap().run(sync::actions::AlertsInput::default()).await.unwrap();
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_alerts WHERE kind = 'bootstrap_loop' AND subject = 'eu-west/customers' AND resolved_at IS NULL"), 1);
        // Not retried by itself.
        assert!(job.handle().await.is_err());
        assert_eq!(count(&mut db_b.pool.get().unwrap(), looping), 1);
        assert_ne!(customers_digest(&db), customers_digest(&db_b));

        // The operator's bootstrap starts a new snapshot; the job then pulls as usual.
        let fixed = bootstrap.run(bootstrap_input(100)).await.unwrap();
        assert!(fixed.done, "{fixed:?}");
        job.handle().await.unwrap();
        assert_eq!(customers_digest(&db), customers_digest(&db_b));
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_bootstraps"), 0);
        a.stop().await;
    }

    async fn a_region_joins_with_the_data_that_exists_and_resumes_an_interrupted_bootstrap(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        let mut ids = Vec::new();
        for i in 0..23 {
            ids.push(create(&a, &format!("c{i}")).await);
        }
        for id in &ids[..2] {
            let res = a.client.delete(a.url(&format!("/api/v1/customers/{id}"))).send().await.unwrap();
            assert_eq!(res.status(), 204);
        }
        prune_everything(&db);
        let (bootstrap, pull) = joiner(&db_b, &a.base).await;

        // Before: the feed no longer reaches back to the start — a pull can only say so.
        let err = pull.run(pull_input()).await.unwrap_err();
        assert!(matches!(err, SyncError::PeerCursorExpired { .. }), "{err}");

        // Two pages, then the bootstrap is "killed": it resumes from there.
        let first = bootstrap.run(bootstrap_input(2)).await.unwrap();
        assert_eq!((first.pages, first.rows, first.applied, first.done), (2, 10, 10, false));
        assert_eq!(first.total_rows, Some(23), "the first page says how many rows (tombstones too), for the ETA");
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_bootstraps"), 1);
        // `sync status` (and /metrics) show it under way.
        let status = sync::actions::SyncStatusAction::new(db_b.pool.clone(), "us-east").run(()).await.unwrap();
        assert_eq!(status.iter().find(|s| s.peer == "eu-west").and_then(|s| s.bootstrap_rows), Some(10));

        // Writes go on at eu-west meanwhile: one row already loaded changes, one is new.
        let res = a.client.patch(a.url(&format!("/api/v1/customers/{}", ids[3]))).json(&json!({"name": "renamed during the bootstrap"})).send().await.unwrap();
        assert_eq!(res.status(), 200);
        ids.push(create(&a, "late").await);

        let rest = bootstrap.run(bootstrap_input(100)).await.unwrap();
        assert!(rest.done, "{rest:?}");
        assert_eq!(rest.rows, 24, "23 rows + the one created meanwhile, each once: {rest:?}");
        let finished = "SELECT COUNT(*) FROM sync_bootstraps WHERE next_cursor = ''";
        assert_eq!(count(&mut db_b.pool.get().unwrap(), finished), 1, "finished, until a pull succeeds");

        // The feed continues from the watermark: what changed during the bootstrap comes in.
        let pulled = pull.run(pull_input()).await.unwrap();
        assert!(pulled.caught_up, "{pulled:?}");
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_bootstraps"), 0, "over");
        assert_eq!(customers_digest(&db), customers_digest(&db_b), "identical rows, tombstones and versions");

        // And afterwards as usual.
        create(&a, "after").await;
        pull.run(pull_input()).await.unwrap();
        assert_eq!(customers_digest(&db), customers_digest(&db_b));

        // A bootstrap again changes nothing (every row is a duplicate).
        let again = bootstrap.run(bootstrap_input(100)).await.unwrap();
        assert_eq!((again.applied, again.done), (0, true), "{again:?}");
        assert_eq!(customers_digest(&db), customers_digest(&db_b));
        a.stop().await;
    }

    async fn a_snapshot_never_overwrites_a_newer_local_write(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        let id = create(&a, "old").await;
        let (_, body) = a.get(&format!("/api/v1/customers/{id}")).await;
        let (bootstrap, _) = joiner(&db_b, &a.base).await;
        // us-east already holds a newer write of that customer (pushed or written there).
        let b = Region::start(&settings_for(&db_b, "us-east")).await;
        let mut newer = body.clone();
        newer["name"] = json!("newer at us-east");
        let hlc = (ship::contracts::hlc::system_time_ms() as i64) << 16;
        let op = json!({"op_id": "n", "entity_id": id, "kind": "upsert", "hlc": hlc, "origin": "ap-south",
                        "payload": {"id": id, "tenant_id": "t1", "name": "newer at ap-south", "email": "old@example.com",
                                    "status": "active", "created_at": body["created_at"], "updated_at": body["updated_at"], "deleted_at": null}});
        let (status, answer) = b.post("/sync/customers/ops", &json!({"source_region": "ap-south", "batch_id": "x", "schema_version": 1, "ops": [op]})).await;
        assert_eq!(status, 200, "{answer}");
        let done = bootstrap.run(bootstrap_input(100)).await.unwrap();
        assert_eq!((done.applied, done.stale, done.done), (0, 1, true), "{done:?}");
        let (_, kept) = b.get(&format!("/api/v1/customers/{id}")).await;
        assert_eq!(kept["name"], "newer at ap-south");
        b.stop().await;
        a.stop().await;
    }

    async fn the_snapshot_route_pages_by_cursor_and_refuses_what_it_must(db: TestDb) {
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        for i in 0..7 {
            create(&a, &format!("s{i}")).await;
        }
        let (status, body) = a.get_with("/sync/customers/snapshot", None).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("token_missing")));
        let (status, body) = a.get("/sync/customers/snapshot?after=!!!").await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_cursor")));
        let (status, body) = a.get("/sync/customers/snapshot?limit=0").await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_limit")));
        let (status, body) = a.get("/sync/nope/snapshot").await;
        assert_eq!((status, body["error"].as_str()), (404, Some("unknown_resource")));

        let mut ids: Vec<String> = Vec::new();
        let mut after = String::new();
        let mut watermarks = Vec::new();
        loop {
            let (status, page) = a.get(&format!("/sync/customers/snapshot?limit=3{after}")).await;
            assert_eq!(status, 200, "{page}");
            for row in page["rows"].as_array().unwrap() {
                ids.push(row["entity_id"].as_str().unwrap().to_string());
                assert_eq!(row["origin"], "eu-west");
                assert_eq!(row["kind"], "upsert");
            }
            watermarks.push(page["watermark"].clone());
            if page["has_more"] == Value::Bool(false) {
                assert_eq!(page["next_cursor"], Value::Null);
                break;
            }
            after = format!("&after={}", page["next_cursor"].as_str().unwrap());
            // A write between pages does not move the snapshot's watermark.
            create(&a, &format!("between{}", ids.len())).await;
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted, "in id order, each once");
        assert!(ids.len() >= 7, "{ids:?}");
        assert!(watermarks.windows(2).all(|w| w[0] == w[1]), "{watermarks:?}");
        // The watermark is a feed cursor: the feed continues from it.
        let (status, feed) = a.get(&format!("/sync/customers/changes?since={}", watermarks[0].as_str().unwrap())).await;
        assert_eq!(status, 200, "{feed}");
        a.stop().await;
    }
}

ship::backend_tests! {
    /// SIGKILL during `regionsync sync bootstrap` (the binary, as an operator runs it); run
    /// again, it resumes from its last applied page — not from zero — and ends identical.
    async fn a_bootstrap_killed_mid_way_resumes_from_its_page(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        for i in 0..400 {
            create(&a, &format!("k{i}")).await;
        }
        prune_everything(&db);
        // us-east as the binary sees it: its database, the test key, eu-west as its peer.
        let (_bootstrap, _) = joiner(&db_b, &a.base).await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("region.toml");
        std::fs::write(
            &config,
            format!(
                "region_id = \"us-east\"\n[database]\nurl = \"{}\"\n[broker]\nsigning_key = '''\n{}'''\n[[sync.peers]]\nid = \"eu-west\"\n",
                db_b.url.expose(),
                ship::testing::test_signing_key_pem()
            ),
        )
        .unwrap();
        let run = || {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_regionsync"));
            for (key, _) in std::env::vars() {
                if key.starts_with("REGIONSYNC_") || key == "RUST_LOG" {
                    cmd.env_remove(key);
                }
            }
            cmd.arg("--config").arg(&config).args(["sync", "bootstrap", "--peer", "eu-west", "--page-limit", "5"]);
            cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            cmd
        };
        let progress = "SELECT COALESCE(MAX(rows_applied), 0) FROM sync_bootstraps WHERE next_cursor <> ''";
        let mut child = run().spawn().unwrap();
        for _ in 0..2_000 {
            if count(&mut db_b.pool.get().unwrap(), progress) >= 50 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let at_kill = count(&mut db_b.pool.get().unwrap(), progress);
        assert!((50..400).contains(&at_kill), "killed mid-way, after {at_kill} rows");
        let applied_before = count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM customers");
        assert_eq!(applied_before, at_kill, "every applied page has its progress, and nothing more");

        let out = run().output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        let applied: i64 = stdout
            .split("bootstrapped eu-west/customers: ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{stdout}"));
        assert_eq!(applied, 400 - at_kill, "resumed from its page, not from zero");
        assert_eq!(customers_digest(&db), customers_digest(&db_b));
        a.stop().await;
    }
}

/// The orders digest of a database.
fn orders_digest(db: &TestDb) -> String {
    use ship::contracts::SyncResource;
    orders::OrdersResource
        .digest(&mut db.pool.get().unwrap())
        .unwrap()
}

ship::backend_tests! {
    /// References (ADR 0015) through a bootstrap and a pull: a region that loads eu-west's
    /// orders before its customers parks every order, and applies each as the customers'
    /// snapshot brings its customer; an order written later for a new customer arrives by the
    /// pull before that customer's pull, parks, and is applied when the customers' pull runs.
    async fn orders_loaded_before_their_customers_park_and_apply_when_the_customers_come(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        let mut orders = Vec::new();
        for i in 0..7 {
            let customer = create(&a, &format!("a{i}")).await;
            let (status, body) = a.post("/api/v1/orders", &json!({"tenant_id": "t1", "customer_id": customer, "number": format!("SO-{i}"), "currency": "EUR", "lines": [{"sku": "A", "quantity": 1, "unit_price_minor": 100 + i}]})).await;
            assert_eq!(status, 201, "{body}");
            orders.push(body["id"].as_str().unwrap().to_string());
        }
        let (bootstrap, pull) = joiner(&db_b, &a.base).await;
        let parked = |db: &TestDb| count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_parked_ops");

        let first = bootstrap.run(BootstrapInput { resource: "orders".into(), ..bootstrap_input(100) }).await.unwrap();
        assert!(first.done, "{first:?}");
        assert_eq!((first.parked, first.applied), (7, 0), "{first:?}");
        assert_eq!(parked(&db_b), 7);
        let second = bootstrap.run(bootstrap_input(100)).await.unwrap();
        assert_eq!(second.applied, 7, "{second:?}");
        assert_eq!(parked(&db_b), 0, "every order applied with its customer");
        assert_eq!((customers_digest(&db), orders_digest(&db)), (customers_digest(&db_b), orders_digest(&db_b)));

        // Later: a new customer and its order; the orders' pull runs first.
        let customer = create(&a, "late").await;
        let (status, _) = a.post("/api/v1/orders", &json!({"tenant_id": "t1", "customer_id": customer, "number": "SO-late", "currency": "EUR", "lines": [{"sku": "A", "quantity": 3, "unit_price_minor": 5}]})).await;
        assert_eq!(status, 201);
        let got = pull.run(PullChangesInput { resource: "orders".into(), ..pull_input() }).await.unwrap();
        assert_eq!(got.parked, 1, "{got:?}");
        assert_eq!(parked(&db_b), 1);
        pull.run(pull_input()).await.unwrap();
        assert_eq!(parked(&db_b), 0);
        assert_eq!((customers_digest(&db), orders_digest(&db)), (customers_digest(&db_b), orders_digest(&db_b)));
        a.stop().await;
    }
}
