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
        // us-east is registered before eu-west's scheduler starts: a directory keeps the peer
        // list it fetched for a minute (new regions appear within `list_ttl`), so a first pull
        // that ran before the registration would not see us-east within this test's 30 s
        // (regression: it failed so once on PostgreSQL, whose registration took longer).
        let credential = register_region(&db, "us-east", "http://127.0.0.1:9").await;
        let a = Region::start_with_scheduler(&a_settings).await;

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
        // The schedulers record their runs (eu-west's first pulls may have failed: us-east was
        // registered at a dead address until it registered itself; convergence may come from
        // the pushes before a pull of eu-west's succeeded).
        let ok_runs = "SELECT COUNT(*) FROM ship_scheduler_runs WHERE job = 'sync.pull_changes' AND outcome = 'ok'";
        while common::count(&mut db.pool.get().unwrap(), ok_runs) < 1 {
            assert!(tokio::time::Instant::now() < deadline, "no successful pull run recorded");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
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
        a_settings.sync.peers = vec![sync::PeerConfig::both("us-east")];
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
        // The peer answers before the sender marks the entry delivered (regression: this
        // test read the outbox in between, once).
        while common::delivered_through(&db, "us-east") != 1 {
            assert!(tokio::time::Instant::now() < deadline, "never marked delivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        a.stop().await;
        b.stop().await;
    }
}

/// Run the CLI with `args`: (success, stdout, stderr).
async fn cli(args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_regionsync"))
            .args(&args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The line of `table` that starts with `first` (a row of a CLI table), split on spaces.
fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no `{first}` row in:\n{table}"))
        .split_whitespace()
        .collect()
}

ship::backend_tests! {
    /// `regionsync sync run` and the operator's views: the manual sync pushes the outbox and
    /// pulls the peers, `--push`/`--pull`/`--peer`/`--resource` limit it (regression:
    /// `--resource` was ignored by the push), and `sync status`, `outbox stats` and
    /// `outbox list` show what is owed before and after.
    async fn sync_run_pushes_and_pulls_by_hand(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let mut a_settings = settings_for(&db, "eu-west");
        a_settings.sync.peers = vec![sync::PeerConfig::both("us-east")];
        let a = Region::start(&a_settings).await;
        let b_port = free_port();
        let credential = register_region(&db, "us-east", &format!("http://127.0.0.1:{b_port}")).await;
        let mut b_settings = remote_settings_with(&db_b, &a.base, &credential);
        b_settings.http.bind = format!("127.0.0.1:{b_port}");
        let b = Region::start(&b_settings).await;
        for name in ["Ada", "Grace", "Edsger"] {
            let (status, _) = a.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": name, "email": "x@example.com"})).await;
            assert_eq!(status, 201);
        }
        let (status, _) = b.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": "Barbara", "email": "x@example.com"})).await;
        assert_eq!(status, 201);

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
        let config = config.to_string_lossy().into_owned();
        let run = |args: &[&str]| {
            let mut all = vec!["--config", config.as_str()];
            all.extend_from_slice(args);
            let all: Vec<String> = all.iter().map(|a| a.to_string()).collect();
            async move { cli(&all.iter().map(String::as_str).collect::<Vec<_>>()).await }
        };

        // Owed before: three entries for us-east, shown by status, stats and list.
        let (ok, status, err) = run(&["sync", "status"]).await;
        assert!(ok, "{err}");
        assert_eq!(&row(&status, "us-east")[..4], ["us-east", "customers", "3", "0"], "{status}");
        let (ok, stats, err) = run(&["outbox", "stats"]).await;
        assert!(ok, "{err}");
        assert_eq!(&row(&stats, "us-east")[..5], ["us-east", "customers", "3", "0", "0"], "{stats}");
        let (ok, list, err) = run(&["outbox", "list"]).await;
        assert!(ok, "{err}");
        assert_eq!(list.lines().filter(|l| l.contains("us-east")).count(), 3, "{list}");

        // Limited runs: another peer or the pull alone push nothing; an unknown resource is
        // refused before anything is done.
        let (ok, out, err) = run(&["sync", "run", "--push", "--peer", "ap-south"]).await;
        assert!(ok, "{out}{err}");
        assert!(out.contains("push: 0 delivered"), "{out}");
        assert!(!out.contains("pull:"), "--push alone does not pull: {out}");
        let (ok, out, err) = run(&["sync", "run", "--push", "--resource", "invoices"]).await;
        assert!(!ok, "{out}");
        assert!(err.contains("unknown resource `invoices`"), "{err}");
        let (ok, out, err) = run(&["sync", "run", "--pull"]).await;
        assert!(ok, "{out}{err}");
        assert!(out.contains("pull: 1 applied from 2 feed(s)"), "its customers and its orders: {out}");
        assert!(!out.contains("push:"), "--pull alone does not push: {out}");
        assert_eq!(common::count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM customers"), 1, "nothing pushed yet");

        // The push of the one resource, then a whole run finds nothing left.
        let (ok, out, err) = run(&["sync", "run", "--push", "--resource", "customers", "--peer", "us-east"]).await;
        assert!(ok, "{out}{err}");
        assert!(out.contains("push: 3 delivered, 0 dead-lettered"), "{out}");
        let (ok, out, err) = run(&["sync", "run"]).await;
        assert!(ok, "{out}{err}");
        assert!(out.contains("push: 0 delivered") && out.contains("pull: 0 applied from 2 feed(s)"), "{out}");
        assert_eq!(customers_digest(&db), customers_digest(&db_b), "converged by hand");

        // After: nothing owed, three delivered, a last push and a last pull.
        let (_, status, _) = run(&["sync", "status"]).await;
        let cols = row(&status, "us-east");
        assert_eq!(&cols[..4], ["us-east", "customers", "0", "0"], "{status}");
        assert!(cols.iter().filter(|c| c.len() == 10 && c.starts_with("20")).count() == 2, "last push and last pull dates: {status}");
        let (_, stats, _) = run(&["outbox", "stats"]).await;
        assert_eq!(&row(&stats, "us-east")[..5], ["us-east", "customers", "0", "0", "3"], "{stats}");
        a.stop().await;
        b.stop().await;
    }
}
