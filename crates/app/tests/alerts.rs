//! Anomaly alerts on each backend, against a local webhook receiver: an alert fires once,
//! is deduplicated while it holds, resolves with a "resolved" notification, and a condition
//! that comes back within the cool-down does not fire again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpResponse, HttpServer};
use app::startup::{prepare, StartOptions};
use common::{register_region, settings_for, Region};
use serde_json::{json, Value};
use ship::parents::Action;
use ship::testing::TestDb;
use sync::actions::{AlertsInput, ListAlertsAction, RetryDeadAction};
use sync::PeerConfig;

fn exec(db: &TestDb, sql: &str) {
    diesel::RunQueryDsl::execute(diesel::sql_query(sql), &mut db.pool.get().unwrap()).unwrap();
}

fn receiver() -> (String, Arc<Mutex<Vec<Value>>>, actix_web::dev::ServerHandle) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let g = Arc::clone(&got);
    let server = HttpServer::new(move || {
        let got = Arc::clone(&g);
        App::new().route(
            "/hook",
            web::post().to(move |body: web::Json<Value>| {
                got.lock().unwrap().push(body.0);
                async { HttpResponse::NoContent().finish() }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let url = format!("http://{}/hook", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    (url, got, handle)
}

ship::backend_tests! {
    async fn an_alert_fires_once_resolves_and_does_not_flap(db: TestDb) {
        let (hook, got, handle) = receiver();
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![PeerConfig { id: "us-east".into() }];
        settings.alerts.webhook_url = Some(hook);
        let region = Region::start(&settings).await;
        register_region(&db, "us-east", "http://127.0.0.1:9").await;
        assert_eq!(region.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": "Ada", "email": "x@example.com"})).await.0, 201);
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let alerts = wiring.alerts_action(&pool, &settings).unwrap();

        let quiet = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!((quiet.fired, got.lock().unwrap().len()), (0, 0), "a young pending entry is fine");

        exec(&db, "UPDATE sync_outbox SET status = 'dead', last_error = '422'");
        let fired = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!((fired.fired, fired.notified), (1, 1));
        {
            let got = got.lock().unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!((got[0]["kind"].as_str(), got[0]["subject"].as_str(), got[0]["state"].as_str()), (Some("dead_letters"), Some("us-east"), Some("firing")));
            assert_eq!(got[0]["region"], "eu-west");
        }
        let again = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!((again.fired, again.notified, got.lock().unwrap().len()), (0, 0, 1), "deduplicated while it holds");

        // Repaired: resolved, and the webhook hears it.
        RetryDeadAction::new(db.pool.clone()).run(None).await.unwrap();
        let resolved = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!((resolved.resolved, resolved.notified), (1, 1));
        assert_eq!(got.lock().unwrap()[1]["state"], "resolved");

        // Dead again right away: within the cool-down it does not fire again.
        exec(&db, "UPDATE sync_outbox SET status = 'dead'");
        assert_eq!(alerts.run(AlertsInput::default()).await.unwrap().fired, 0, "flapping is not re-alerted");
        // Other conditions still fire: the entry is old and owed (backlog_age), and nothing was
        // ever delivered to us-east since (push_lag).
        exec(&db, "UPDATE sync_outbox SET status = 'pending', created_at = '2020-01-01 00:00:00'");
        let backlog = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!(backlog.fired, 2);
        let mut last_two: Vec<String> = got.lock().unwrap()[2..].iter().map(|v| v["kind"].as_str().unwrap().to_string()).collect();
        last_two.sort();
        assert_eq!(last_two, vec!["backlog_age", "push_lag"]);

        let history = ListAlertsAction::new(db.pool.clone()).run(10).await.unwrap();
        let mut states: Vec<(&str, &str)> = history.iter().map(|a| (a.kind.as_str(), a.state.as_str())).collect();
        states.sort();
        assert_eq!(states, vec![("backlog_age", "firing"), ("dead_letters", "resolved"), ("push_lag", "firing")]);
        handle.stop(true).await;
        region.stop().await;
    }
}

ship::backend_tests! {
    /// Refusals happen in the web process; the scheduler's alerts see them through
    /// `sync_refusals`: clock-drift refusals per source, token refusals per code.
    async fn refusals_in_the_web_process_raise_alerts(db: TestDb) {
        let mut settings = settings_for(&db, "eu-west");
        settings.broker.heartbeat_interval_secs = 1; // the web process flushes its counts
        let region = Region::start(&settings).await;
        let ahead = common::hlc(600_000);
        let id = "01939d2e-0000-7000-8000-0000000000aa";
        let batch = json!({"source_region": "us-east", "batch_id": "b", "schema_version": 1, "ops": [
            {"op_id": "x", "entity_id": id, "kind": "upsert", "hlc": ahead, "origin": "us-east", "payload": common::customer(id, "Ada", false)}
        ]});
        let (status, body) = region.post("/sync/customers/ops", &batch).await;
        assert_eq!((status, body["error"].as_str()), (422, Some("invalid_ops")), "{body}");
        let (status, _) = region.get_with("/sync/customers/changes", None).await;
        assert_eq!(status, 401);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        while common::count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_refusals WHERE kind = 'token_missing'") == 0 {
            assert!(tokio::time::Instant::now() < deadline, "token refusals never reached the database");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let summary = wiring.alerts_action(&pool, &settings).unwrap().run(AlertsInput::default()).await.unwrap();
        assert_eq!(summary.fired, 2, "{summary:?}");
        let history = ListAlertsAction::new(db.pool.clone()).run(10).await.unwrap();
        let mut raised: Vec<(String, String)> = history.iter().map(|a| (a.kind.clone(), a.subject.clone())).collect();
        raised.sort();
        assert_eq!(raised, vec![("auth_refusals".into(), "token_missing".into()), ("clock_drift_refusals".into(), "us-east".into())]);
        region.stop().await;
    }
}
