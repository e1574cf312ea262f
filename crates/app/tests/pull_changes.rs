//! Pulling a peer's feed (anti-entropy) between two real regions over HTTP, on each backend:
//! pages applied with their cursor in one transaction, idempotent re-pulls, and the failures
//! that must stop a pull without moving its cursor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use app::startup::{prepare, StartOptions};
use common::{count, customers_digest, register_region, settings_for, Region};
use serde_json::json;
use ship::parents::Action;
use ship::testing::TestDb;
use sync::actions::{AlertsInput, PullChangesAction, PullChangesInput};
use sync::{PeerConfig, SyncError};

/// Region us-east on `db`, running the broker role (with the test key, which eu-west also
/// trusts), with eu-west registered at `peer_base`.
async fn puller(db: &TestDb, peer_base: &str) -> PullChangesAction {
    puller_with(db, peer_base, true).await
}

/// [`puller`], pulled upserts stored as batch rows or not (`sync.batch_rows`).
async fn puller_with(db: &TestDb, peer_base: &str, batch_rows: bool) -> PullChangesAction {
    let mut settings = settings_for(db, "us-east");
    settings.sync.peers = vec![PeerConfig::both("eu-west")];
    settings.sync.batch_rows = batch_rows;
    let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
    register_region(db, "eu-west", peer_base).await;
    wiring.pull_action(&pool, &settings).unwrap()
}

/// `n` customers created at `region` through its API (`c0`, `c1`, …).
async fn create_customers(region: &Region, n: usize) {
    for i in 0..n {
        let (status, _) = region
            .post(
                "/api/v1/customers",
                &json!({"tenant_id": "t", "name": format!("c{i}"), "email": "c@example.com"}),
            )
            .await;
        assert_eq!(status, 201);
    }
}

fn input(peer: &str) -> PullChangesInput {
    PullChangesInput {
        peer: peer.into(),
        resource: "customers".into(),
        page_limit: 2,
        max_pages: 100,
        run_for: None,
    }
}

fn stored_cursor(db: &TestDb) -> i64 {
    count(
        &mut db.pool.get().unwrap(),
        "SELECT COUNT(*) FROM sync_peer_cursors WHERE peer = 'eu-west'",
    )
}

ship::backend_tests! {
    /// `sync.batch_rows = false` reaches the pull: pulled pages are stored a row per entry,
    /// and replicate the same.
    async fn with_batch_rows_off_a_pull_stores_a_row_per_entry(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        create_customers(&a, 5).await;
        let pull = puller_with(&db_b, &a.base, false).await;
        let done = pull.run(input("eu-west")).await.unwrap();
        assert_eq!((done.applied, done.caught_up), (5, true), "{done:?}");
        assert_eq!(customers_digest(&db), customers_digest(&db_b));
        let mut c = db_b.pool.get().unwrap();
        assert_eq!(count(&mut c, "SELECT COUNT(*) FROM sync_changelog"), 5);
        assert_eq!(count(&mut c, "SELECT COUNT(*) FROM sync_changelog WHERE op = 'batch'"), 0);
        a.stop().await;
    }

    async fn a_pull_replicates_page_by_page_and_remembers_where_it_stopped(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        create_customers(&a, 5).await;
        let pull = puller(&db_b, &a.base).await;

        // A flag left by an earlier 410 goes once a pull catches up.
        diesel::connection::SimpleConnection::batch_execute(
            &mut *db_b.pool.get().unwrap(),
            "INSERT INTO sync_peer_flags (peer, resource, needs_bootstrap_since) VALUES ('eu-west', 'customers', '2026-01-01 00:00:00')",
        )
        .unwrap();
        let first = pull.run(input("eu-west")).await.unwrap();
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_peer_flags"), 0);
        assert_eq!((first.pages, first.applied, first.caught_up), (3, 5, true), "{first:?}");
        assert_eq!(customers_digest(&db), customers_digest(&db_b));
        assert_eq!(stored_cursor(&db_b), 1);

        let again = pull.run(input("eu-west")).await.unwrap();
        assert_eq!((again.pages, again.applied, again.duplicate), (1, 0, 0), "nothing new: {again:?}");

        let (status, _) = a.post("/api/v1/customers", &json!({"tenant_id": "t", "name": "late", "email": "c@example.com"})).await;
        assert_eq!(status, 201);
        let late = pull.run(input("eu-west")).await.unwrap();
        assert_eq!(late.applied, 1);
        assert_eq!(customers_digest(&db), customers_digest(&db_b));
        // Pulled changes are relayed in B's feed with A's origin, never queued for push.
        let mut c = db_b.pool.get().unwrap();
        assert_eq!(common::entry_count(&mut c, "origin_region = 'eu-west'"), 6);
        // Pages of 2, 2 and 1, then 1 (ADR 0026): the pairs as batch rows, the others alone.
        assert_eq!(count(&mut c, "SELECT COUNT(*) FROM sync_changelog WHERE op = 'batch' AND seq = first_seq + 1"), 2);
        assert_eq!(count(&mut c, "SELECT COUNT(*) FROM sync_changelog"), 4);
        assert_eq!(count(&mut c, "SELECT COUNT(*) FROM sync_outbox"), 0);
        a.stop().await;
    }

    async fn a_pull_stops_without_moving_its_cursor_when_the_peer_cannot_serve_it(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        let (status, _) = a.post("/api/v1/customers", &json!({"tenant_id": "t", "name": "c", "email": "c@example.com"})).await;
        assert_eq!(status, 201);
        let pull = puller(&db_b, &a.base).await;

        // Nothing listens on port 1.
        register_region(&db_b, "dead", "http://127.0.0.1:1").await;
        let err = pull.run(input("dead")).await.unwrap_err();
        assert!(matches!(err, SyncError::PeerUnreachable { .. }), "{err}");

        // A peer serving another schema version of the resource is refused, cursor unmoved.
        diesel::connection::SimpleConnection::batch_execute(
            &mut *db.pool.get().unwrap(),
            "UPDATE sync_changelog SET schema_version = 2",
        )
        .unwrap();
        let err = pull.run(input("eu-west")).await.unwrap_err();
        assert!(matches!(err, SyncError::PeerRefused { .. }) && err.to_string().contains("schema version"), "{err}");
        assert_eq!(stored_cursor(&db_b), 0);

        // History pruned at the peer: 410, a bootstrap is needed, never a restart from zero.
        diesel::connection::SimpleConnection::batch_execute(
            &mut *db.pool.get().unwrap(),
            "UPDATE sync_sequences SET pruned_through = 1",
        )
        .unwrap();
        let err = pull.run(input("eu-west")).await.unwrap_err();
        assert!(matches!(err, SyncError::PeerCursorExpired { .. }), "{err}");
        assert_eq!(stored_cursor(&db_b), 0);
        // The peer is flagged for a bootstrap, and an alert says so.
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_peer_flags WHERE peer = 'eu-west'"), 1);
        let settings = settings_for(&db_b, "us-east");
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let alerts = wiring.alerts_action(&pool, &settings).unwrap().run(AlertsInput::default()).await.unwrap();
        assert_eq!(alerts.fired, 1);
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_alerts WHERE kind = 'bootstrap_needed' AND subject = 'eu-west/customers'"), 1);
        a.stop().await;
    }
}

ship::backend_tests! {
    /// A pull stopped between pages (a kill after the page's commit, modelled by a page
    /// budget of one) resumes from the stored cursor: nothing skipped, nothing applied twice.
    async fn a_pull_stopped_between_pages_resumes_where_it_stopped(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        create_customers(&a, 5).await;
        let pull = puller(&db_b, &a.base).await;
        let one_page = || PullChangesInput { max_pages: 1, ..input("eu-west") };
        let mut applied = 0;
        let mut runs = 0;
        loop {
            let s = pull.run(one_page()).await.unwrap();
            applied += s.applied;
            runs += 1;
            assert_eq!((s.stale, s.duplicate), (0, 0), "a resumed pull never re-reads a committed page: {s:?}");
            if s.caught_up {
                break;
            }
            assert!(runs < 10, "the cursor moves on");
        }
        assert_eq!((applied, runs), (5, 3), "pages of 2: 2 + 2 + 1");
        assert_eq!(customers_digest(&db), customers_digest(&db_b));
        a.stop().await;
    }
}

ship::backend_tests! {
    /// Issue 14.3: a pull goes on while the feed has more, bounded by time (not by a page
    /// count), fetching each next page while it applies the one before — and what it
    /// acknowledges at the peer is only what it applied.
    async fn a_pull_runs_while_the_feed_has_more_within_its_time(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        for i in 0..7 {
            let (status, _) = a.post("/api/v1/customers", &json!({"tenant_id": "t", "name": format!("c{i}"), "email": "c@example.com"})).await;
            assert_eq!(status, 201);
        }
        let pull = puller(&db_b, &a.base).await;
        let timed = |secs: u64| PullChangesInput {
            max_pages: u32::MAX,
            run_for: Some(std::time::Duration::from_secs(secs)),
            ..input("eu-west")
        };
        // No time left: one page (a run always makes progress), then it stops.
        let first = pull.run(timed(0)).await.unwrap();
        assert_eq!((first.pages, first.applied, first.caught_up), (1, 2, false), "{first:?}");
        // Time enough: every page that is left, in one run (pages of 2: 2 + 2 + 1).
        let rest = pull.run(timed(60)).await.unwrap();
        assert_eq!((rest.pages, rest.applied, rest.caught_up), (3, 5, true), "{rest:?}");
        assert_eq!(customers_digest(&db), customers_digest(&db_b));
        // The last page (seq 7) was fetched while the one before (5–6) was being applied: it
        // acknowledged what was saved then — never a page ahead of the data. On MariaDB and
        // PostgreSQL the pages' transactions are pipelined (the 3–4 one was still running
        // beside 5–6): 2.
        let acked = || count(&mut db.pool.get().unwrap(), "SELECT acked_seq FROM sync_feed_acks WHERE peer = 'us-east' AND resource = 'customers'");
        let saved_then = if db.backend() == ship::db::Backend::Sqlite { 4 } else { 2 };
        assert_eq!(acked(), saved_then);
        let idle = pull.run(timed(60)).await.unwrap();
        assert_eq!((idle.pages, idle.applied, idle.caught_up), (1, 0, true), "{idle:?}");
        assert_eq!(acked(), 7, "the next read acknowledges everything");
        a.stop().await;
    }
}

ship::backend_tests! {
    /// Issue 12: a feed relays every region's changes but never the puller's own — an entry of
    /// a peer that serves one (it ignored `exclude_origin`, or forged it) is quarantined, never
    /// applied; applied, it would be pushed on as this region's own write.
    async fn a_pulled_page_with_our_own_origin_is_refused(db: TestDb) {
        use actix_web::{web, App, HttpResponse, HttpServer};
        let now = ship::contracts::hlc::system_time_ms() as i64;
        let entry = |seq: i64, origin: &str| {
            let id = format!("01939d2e-0000-7000-8000-00000000000{seq}");
            json!({"seq": seq, "entity_id": id, "kind": "upsert", "hlc": now << 16, "origin": origin, "schema_version": 1,
                   "payload": {"id": id, "tenant_id": "t", "name": "forged", "email": "f@example.com", "status": "active",
                               "created_at": "2026-12-01T00:00:00Z", "updated_at": "2026-12-01T00:00:00Z", "deleted_at": null}})
        };
        let page = json!({"resource": "customers", "changes": [entry(1, "ap-south"), entry(2, "us-east")],
                          "next_cursor": "djE6Mg", "has_more": false, "high_watermark": "djE6Mg", "schema_version": 1});
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            let page = page.clone();
            App::new().route("/sync/customers/changes", web::get().to(move || {
                let page = page.clone();
                async move { HttpResponse::Ok().json(page) }
            }))
        })
        .listen(listener)
        .unwrap()
        .workers(1)
        .run();
        let handle = server.handle();
        tokio::spawn(server);

        let pull = puller(&db, &base).await;
        let summary = pull.run(input("eu-west")).await.unwrap();
        assert_eq!((summary.applied, summary.quarantined), (1, 1), "{summary:?}");
        let parked = "SELECT COUNT(*) FROM sync_quarantine WHERE seq = 2 AND reason LIKE 'own_origin%'";
        assert_eq!(count(&mut db.pool.get().unwrap(), parked), 1, "the forged entry is parked, never applied");
        assert_eq!(count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM customers WHERE sync_origin = 'us-east'"), 0);
        assert_eq!(count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM customers"), 1, "ap-south's entry applied");
        handle.stop(true).await;
    }
}

ship::backend_tests! {
    /// Issue 13.7: a peer that comes back (a pull finds it again after finding it unreachable)
    /// is served at once — our streams to it stop waiting out their backoff. A peer that merely
    /// answers pulls while our pushes back off keeps its backoff.
    async fn a_peer_that_comes_back_ends_the_backoff_of_our_streams_to_it(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        let pull = puller(&db_b, "http://127.0.0.1:1").await;
        let later = "UPDATE sync_delivery SET next_attempt_at = '2099-01-01 00:00:00' WHERE peer = 'eu-west'";
        let waiting = "SELECT COUNT(*) FROM sync_delivery WHERE peer = 'eu-west' AND next_attempt_at > '2098-01-01 00:00:00'";
        diesel::connection::SimpleConnection::batch_execute(&mut *db_b.pool.get().unwrap(), later).unwrap();
        assert_eq!(count(&mut db_b.pool.get().unwrap(), waiting), 2, "the streams to eu-west (customers, orders), backing off");

        let err = pull.run(input("eu-west")).await.unwrap_err();
        assert!(matches!(err, SyncError::PeerUnreachable { .. }), "{err}");
        // eu-west is back, at its address.
        let moved = format!("UPDATE broker_regions SET base_url = '{}' WHERE id = 'eu-west'", a.base);
        diesel::connection::SimpleConnection::batch_execute(&mut *db_b.pool.get().unwrap(), &moved).unwrap();
        pull.run(input("eu-west")).await.unwrap();
        assert_eq!(count(&mut db_b.pool.get().unwrap(), waiting), 0, "due now");

        // Answering pulls is no comeback: a backoff set now stays.
        diesel::connection::SimpleConnection::batch_execute(&mut *db_b.pool.get().unwrap(), later).unwrap();
        pull.run(input("eu-west")).await.unwrap();
        assert_eq!(count(&mut db_b.pool.get().unwrap(), waiting), 2);
        a.stop().await;
    }
}

ship::backend_tests! {
    /// Issue 13.4: an entry of a peer's feed that can never apply as it is is parked; the entries
    /// after it apply and the cursor moves on; an alert says so; retry applies it once its cause
    /// is gone; discard forgets it.
    async fn a_poison_entry_is_quarantined_and_the_feed_goes_on(db: TestDb) {
        use sync::actions::{DiscardQuarantineAction, ListQuarantineAction, RetryQuarantineAction};
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        for name in ["one", "two", "three"] {
            let (status, _) = a.post("/api/v1/customers", &json!({"tenant_id": "t", "name": name, "email": format!("{name}@example.com")})).await;
            assert_eq!(status, 201);
        }
        let good_payload: String = {
            let (_, feed) = a.get("/sync/customers/changes").await;
            feed["changes"][1]["payload"].to_string()
        };
        diesel::connection::SimpleConnection::batch_execute(
            &mut *db.pool.get().unwrap(),
            "UPDATE sync_changelog SET payload = '{\"id\": 5}' WHERE seq = 2",
        )
        .unwrap();
        let pull = puller(&db_b, &a.base).await;
        let summary = pull.run(input("eu-west")).await.unwrap();
        assert_eq!((summary.applied, summary.quarantined, summary.caught_up), (2, 1, true), "{summary:?}");
        assert_eq!(stored_cursor(&db_b), 1, "the cursor moved past the parked entry");
        let parked = ListQuarantineAction::new(db_b.pool.clone()).run(()).await.unwrap();
        assert_eq!(parked.len(), 1);
        assert_eq!((parked[0].peer.as_str(), parked[0].resource.as_str(), parked[0].seq), ("eu-west", "customers", 2));
        assert!(parked[0].reason.contains("payload"), "{}", parked[0].reason);
        // `sync status` and /metrics count it.
        let status = sync::actions::SyncStatusAction::new(db_b.pool.clone(), "us-east").run(()).await.unwrap();
        assert_eq!(status.iter().find(|s| s.peer == "eu-west").map(|s| s.quarantined), Some(1));
        let metrics = sync::ui::metrics::SyncMetrics::new(sync::actions::SyncMetricsAction::new(db_b.pool.clone(), "us-east"));
        let gauges = ship::contracts::MetricsSource::collect(&metrics).await.unwrap();
        let parked_gauge = gauges.iter().find(|g| g.name == "regionsync_sync_quarantined" && g.labels.contains(&("peer", "eu-west".to_string())));
        assert_eq!(parked_gauge.map(|g| g.value), Some(1.0));

        // The alert fires while entries are parked.
        let settings = settings_for(&db_b, "us-east");
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        wiring.alerts_action(&pool, &settings).unwrap().run(AlertsInput::default()).await.unwrap();
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_alerts WHERE kind = 'quarantined' AND subject = 'eu-west/customers'"), 1);

        // Retried as it is: still refused, still parked.
        let retry = RetryQuarantineAction::new(db_b.pool.clone(), app::wiring::resources().unwrap(), std::sync::Arc::clone(&wiring.clock), "us-east");
        let again = retry.run(None).await.unwrap();
        assert_eq!((again.applied, again.still_refused), (0, 1));
        // The cause gone (here: the entry as it should have been), a retry applies it.
        let entry = serde_json::from_str::<serde_json::Value>(&parked[0].entry).unwrap();
        let mut fixed = entry.clone();
        fixed["payload"] = serde_json::from_str(&good_payload).unwrap();
        let sql = format!("UPDATE sync_quarantine SET entry = '{}' WHERE id = {}", fixed.to_string().replace('\'', "''"), parked[0].id);
        diesel::connection::SimpleConnection::batch_execute(&mut *db_b.pool.get().unwrap(), &sql).unwrap();
        let done = retry.run(Some(parked[0].id)).await.unwrap();
        assert_eq!((done.applied, done.still_refused), (1, 0));
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM customers"), 3);
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_quarantine"), 0);

        // Discard forgets an entry for good.
        diesel::connection::SimpleConnection::batch_execute(
            &mut *db.pool.get().unwrap(),
            "UPDATE sync_changelog SET payload = '{\"id\": 6}' WHERE seq = 3",
        )
        .unwrap();
        diesel::connection::SimpleConnection::batch_execute(&mut *db_b.pool.get().unwrap(), "DELETE FROM sync_peer_cursors").unwrap();
        // (pulled again from the start: seq 2 is still poisoned at the peer, and now seq 3)
        pull.run(input("eu-west")).await.unwrap();
        let parked = ListQuarantineAction::new(db_b.pool.clone()).run(()).await.unwrap();
        assert_eq!(parked.iter().map(|q| q.seq).collect::<Vec<_>>(), vec![2, 3]);
        for q in &parked {
            assert_eq!(DiscardQuarantineAction::new(db_b.pool.clone()).run(q.id).await.unwrap(), 1);
        }
        assert_eq!(DiscardQuarantineAction::new(db_b.pool.clone()).run(parked[0].id).await.unwrap(), 0, "gone");
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_quarantine"), 0);
        a.stop().await;
    }
}

ship::backend_tests! {
    /// Issue 13: a pull-only peer gets no delivery stream (nothing is pushed to it), a push-only
    /// peer is not pulled — and a list of push-only peers pulls nobody, not every region.
    async fn push_and_pull_are_explicit_per_peer(db: TestDb) {
        let mut settings = settings_for(&db, "us-east");
        let mut pull_only = PeerConfig::both("eu-west");
        pull_only.push = false;
        let mut push_only = PeerConfig::both("ap-south");
        push_only.pull = false;
        settings.sync.peers = vec![pull_only, push_only];
        let (_, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let streams = |peer: &str| count(&mut db.pool.get().unwrap(), &format!("SELECT COUNT(*) FROM sync_delivery WHERE peer = '{peer}'"));
        assert_eq!((streams("eu-west"), streams("ap-south")), (0, 2), "a stream per resource to the push peer");
        assert_eq!(wiring.peers_to_pull(&settings, None).await.unwrap(), vec!["eu-west".to_string()]);
        settings.sync.peers.retain(|p| p.id == "ap-south");
        assert_eq!(wiring.peers_to_pull(&settings, None).await.unwrap(), Vec::<String>::new());
    }
}

ship::backend_tests! {
    /// Issue 14.3: many small pages, the same customers written again in later pages (on
    /// MariaDB two pages' transactions run at once and lock the same rows): every row ends at
    /// its last version, the cursor at the end of the feed, one page after another.
    async fn a_pipelined_pull_of_rows_written_again_ends_where_the_feed_ends(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        let mut ids = Vec::new();
        for i in 0..12 {
            let (status, body) = a.post("/api/v1/customers", &json!({"tenant_id": "t", "name": format!("c{i}"), "email": "c@example.com"})).await;
            assert_eq!(status, 201);
            ids.push(body["id"].as_str().unwrap().to_string());
        }
        for round in 0..3 {
            for id in &ids {
                let res = a.client.patch(a.url(&format!("/api/v1/customers/{id}"))).json(&json!({"name": format!("{id} r{round}")})).send().await.unwrap();
                assert_eq!(res.status().as_u16(), 200);
            }
        }
        let pull = puller(&db_b, &a.base).await;
        let summary = pull.run(PullChangesInput { page_limit: 3, max_pages: u32::MAX, ..input("eu-west") }).await.unwrap();
        assert_eq!((summary.pages, summary.applied, summary.caught_up), (16, 48, true), "{summary:?}");
        assert_eq!(customers_digest(&db), customers_digest(&db_b));
        // The cursor stands at the end: the next run reads nothing more.
        let again = pull.run(input("eu-west")).await.unwrap();
        assert_eq!((again.pages, again.applied, again.caught_up), (1, 0, true), "{again:?}");
        a.stop().await;
    }

}

ship::backend_tests! {
    /// A pull from no cursor acknowledges nothing it has not saved: the first page is applied
    /// and saved before the second is asked for (naming it in `ack`), and a page fetched ahead
    /// names the cursor saved last, never the position it reads from (which a peer takes as
    /// the acknowledgment when `ack` is absent). Regression: the second page used to be asked
    /// for ahead with no `ack` while the first was still being applied.
    async fn a_first_pull_acknowledges_only_saved_pages(db: TestDb) {
        use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        create_customers(&a, 5).await;
        // A proxy in front of eu-west that records each feed request's query, and the cursor
        // us-east had saved when it came.
        type Asked = std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;
        let asked: Asked = Default::default();
        let (target, log, puller_pool) = (a.base.clone(), asked.clone(), db_b.pool.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            let (target, log, puller_pool) = (target.clone(), log.clone(), puller_pool.clone());
            App::new().route("/sync/customers/changes", web::get().to(move |req: HttpRequest| {
                let (target, log, puller_pool) = (target.clone(), log.clone(), puller_pool.clone());
                async move {
                    #[derive(diesel::QueryableByName)]
                    struct Saved {
                        #[diesel(sql_type = diesel::sql_types::Text)]
                        peer_cursor: String,
                    }
                    let saved: Option<String> = {
                        use diesel::RunQueryDsl;
                        let mut conn = puller_pool.get().unwrap();
                        diesel::sql_query("SELECT peer_cursor FROM sync_peer_cursors WHERE peer = 'eu-west'")
                            .load::<Saved>(&mut *conn)
                            .unwrap()
                            .pop()
                            .map(|s| s.peer_cursor)
                    };
                    log.lock().unwrap().push((req.query_string().to_string(), saved));
                    let mut forward = reqwest::Client::new().get(format!("{target}{}", req.uri()));
                    for (name, value) in req.headers() {
                        if name == "authorization" || name.as_str().starts_with("regionsync") {
                            forward = forward.header(name.as_str(), value.as_bytes());
                        }
                    }
                    let res = forward.send().await.unwrap();
                    let status = res.status().as_u16();
                    let mut answer = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
                    for (name, value) in res.headers() {
                        if name.as_str().starts_with("regionsync") || name == "content-type" {
                            answer.insert_header((name.as_str(), value.as_bytes()));
                        }
                    }
                    answer.body(res.bytes().await.unwrap())
                }
            }))
        })
        .listen(listener)
        .unwrap()
        .workers(1)
        .run();
        let handle = server.handle();
        tokio::spawn(server);

        let pull = puller(&db_b, &base).await;
        let summary = pull.run(PullChangesInput { max_pages: u32::MAX, ..input("eu-west") }).await.unwrap();
        assert_eq!((summary.pages, summary.applied, summary.caught_up), (3, 5, true), "{summary:?}");
        let asked = asked.lock().unwrap().clone();
        let param = |query: &str, name: &str| -> Option<String> {
            query.split('&').find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_string))
        };
        assert_eq!(asked.len(), 3, "{asked:?}");
        // What a request acknowledges: `ack`, or without it the position it reads from.
        let mut saved_so_far = Vec::new();
        for (query, saved) in &asked {
            saved_so_far.extend(saved.clone());
            let acknowledged = param(query, "ack").or_else(|| param(query, "since"));
            if let Some(acknowledged) = acknowledged {
                let decoded = |c: &str| c.replace("%3D", "=");
                assert!(
                    saved_so_far.iter().any(|s| decoded(s).trim_end_matches('=') == decoded(&acknowledged).trim_end_matches('=')),
                    "{query} acknowledges a page not saved yet (saved: {saved:?}); all: {asked:?}"
                );
            }
        }
        // The third page is asked for while the second is applied: it names the first in `ack`.
        assert!(param(&asked[2].0, "ack").is_some(), "{asked:?}");
        assert_eq!(customers_digest(&db), customers_digest(&db_b));
        handle.stop(true).await;
        a.stop().await;
    }
}

ship::backend_tests! {
    /// Issue 16.2: a peer that decides `customers` by another conflict policy is refused by
    /// its feed (409), so the pull applies nothing and keeps no cursor, with a clear error; the
    /// orders (same policy on both sides) still pull.
    async fn a_peer_with_another_conflict_policy_is_not_pulled(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.conflict_policy.insert("customers".into(), ship::contracts::ConflictPolicy::DeleteWins);
        let a = Region::start(&settings).await;
        let (status, _) = a.post("/api/v1/customers", &json!({"tenant_id": "t", "name": "c", "email": "c@example.com"})).await;
        assert_eq!(status, 201);
        let pull = puller(&db_b, &a.base).await;
        let refused = pull.run(input("eu-west")).await.unwrap_err();
        assert!(
            matches!(&refused, SyncError::PeerPolicyMismatch { peer, resource, ours, .. } if peer == "eu-west" && resource == "customers" && ours == "lww"),
            "{refused:?}"
        );
        assert!(refused.to_string().contains("sync.conflict_policy"), "{refused}");
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM customers"), 0);
        assert_eq!(stored_cursor(&db_b), 0);
        let orders = pull.run(PullChangesInput { resource: "orders".into(), ..input("eu-west") }).await.unwrap();
        assert!(orders.caught_up, "{orders:?}");

        // A puller on delete_wins too reads it (its header says so).
        let db_c = TestDb::new(db.backend());
        let mut settings = settings_for(&db_c, "ap-south");
        settings.sync.peers = vec![PeerConfig::both("eu-west")];
        settings.sync.conflict_policy.insert("customers".into(), ship::contracts::ConflictPolicy::DeleteWins);
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        register_region(&db_c, "eu-west", &a.base).await;
        let pulled = wiring.pull_action(&pool, &settings).unwrap().run(input("eu-west")).await.unwrap();
        assert_eq!((pulled.applied, pulled.caught_up), (1, true), "{pulled:?}");
        assert_eq!(customers_digest(&db), customers_digest(&db_c));
        a.stop().await;
    }
}
