//! Two regions whose schedulers replicate on their own (issue 5): nothing is pulled by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{customers_digest, register_region, remote_settings_with, settings_for, Region};
use serde_json::json;
use ship::testing::TestDb;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

ship::backend_tests! {
    async fn two_regions_with_schedulers_converge_without_a_manual_call(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let mut a_settings = settings_for(&db, "eu-west");
        a_settings.sync.pull_interval_secs = 1;
        let a = Region::start_with_scheduler(&a_settings).await;
        let credential = register_region(&db, "us-east", "http://127.0.0.1:9").await;

        let port = free_port();
        let mut b_settings = remote_settings_with(&db_b, &a.base, &credential);
        b_settings.http.bind = format!("127.0.0.1:{port}");
        b_settings.broker.public_url = Some(format!("http://127.0.0.1:{port}"));
        b_settings.sync.pull_interval_secs = 1;
        let b = Region::start_with_scheduler(&b_settings).await;

        for (region, name) in [(&a, "Ada"), (&b, "Grace"), (&a, "Edsger")] {
            let (status, _) = region.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": name, "email": "x@example.com"})).await;
            assert_eq!(status, 201);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (da, db_) = (customers_digest(&db), customers_digest(&db_b));
            let (_, list) = b.get("/api/v1/customers?tenant_id=t1").await;
            if da == db_ && list["items"].as_array().map_or(0, Vec::len) == 3 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no convergence within 30 s: {list}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The schedulers recorded their runs.
        let runs = common::count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM ship_scheduler_runs WHERE job = 'sync.pull_changes' AND outcome = 'ok'");
        assert!(runs >= 1, "{runs}");
        a.stop().await;
        b.stop().await;
    }
}

ship::backend_tests! {
    /// Push only (pulls an hour apart, dispatcher polls a minute apart): a local write wakes the
    /// dispatcher of its process, so the peer has it long before the next poll.
    async fn a_local_write_is_pushed_at_once(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let b_port = free_port();
        let mut a_settings = settings_for(&db, "eu-west");
        a_settings.sync.peers = vec![sync::PeerConfig { id: "us-east".into() }];
        a_settings.sync.pull_interval_secs = 3600;
        a_settings.sync.dispatch_interval_secs = 60;
        let a = Region::start_with_scheduler(&a_settings).await;
        let credential = register_region(&db, "us-east", &format!("http://127.0.0.1:{b_port}")).await;

        let mut b_settings = remote_settings_with(&db_b, &a.base, &credential);
        b_settings.http.bind = format!("127.0.0.1:{b_port}");
        let b = Region::start(&b_settings).await;
        // Let the scheduler's first (empty) pass go by, so the next one is the woken one.
        tokio::time::sleep(Duration::from_millis(500)).await;

        let (status, created) = a.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": "Ada", "email": "x@example.com"})).await;
        assert_eq!(status, 201);
        let path = format!("/api/v1/customers/{}", created["id"].as_str().unwrap());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while b.get(&path).await.0 != 200 {
            assert!(tokio::time::Instant::now() < deadline, "not pushed within 20 s (the poll is 60 s)");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(common::count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_outbox WHERE status = 'delivered'"), 1);
        a.stop().await;
        b.stop().await;
    }
}

/// `regionsync sync run`: the operator's manual sync pushes the outbox and pulls the peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_run_pushes_and_pulls_by_hand() {
    let (db, db_b) = (TestDb::sqlite(), TestDb::sqlite());
    let mut a_settings = settings_for(&db, "eu-west");
    a_settings.sync.peers = vec![sync::PeerConfig {
        id: "us-east".into(),
    }];
    let a = Region::start(&a_settings).await;
    let b_port = free_port();
    let credential = register_region(&db, "us-east", &format!("http://127.0.0.1:{b_port}")).await;
    let mut b_settings = remote_settings_with(&db_b, &a.base, &credential);
    b_settings.http.bind = format!("127.0.0.1:{b_port}");
    let b = Region::start(&b_settings).await;
    for name in ["Ada", "Grace", "Edsger"] {
        assert_eq!(
            a.post(
                "/api/v1/customers",
                &json!({"tenant_id": "t1", "name": name, "email": "x@example.com"})
            )
            .await
            .0,
            201
        );
    }
    assert_eq!(
        b.post(
            "/api/v1/customers",
            &json!({"tenant_id": "t1", "name": "Barbara", "email": "x@example.com"})
        )
        .await
        .0,
        201
    );

    // Region eu-west's configuration as a file, for the command line.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("eu-west.toml");
    let key = ship::testing::test_signing_key_pem();
    std::fs::write(
        &config,
        format!(
            "region_id = \"eu-west\"\n[database]\nurl = \"{}\"\n[broker]\nsigning_key = '''\n{key}'''\n[[sync.peers]]\nid = \"us-east\"\n",
            db.url.expose()
        ),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_regionsync"))
            .args(["--config", &config.to_string_lossy(), "sync", "run"])
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("push: 3 delivered, 0 dead-lettered"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pull: 1 applied from 1 feed(s)"),
        "{stdout}"
    );
    assert_eq!(
        customers_digest(&db),
        customers_digest(&db_b),
        "converged by hand"
    );
    a.stop().await;
    b.stop().await;
}
