//! Anomaly alerts on each backend, against a local webhook receiver: an alert fires once,
//! is deduplicated while it holds, resolves with a "resolved" notification, and a condition
//! that comes back within the cool-down does not fire again; each kind fires and resolves on
//! its own condition (backlog size, push lag, pull lag, broker reachability); a firing alert is
//! re-sent after the cool-down; the webhook is retried, and a silent one holds an evaluation
//! for one notification's attempts at most.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use app::startup::{prepare, StartOptions};
use common::{register_region, settings_for, Region};
use serde_json::{json, Value};
use ship::contracts::{
    BoxFuture, DirectoryError, DirectoryHealth, PeerDirectory, PeerGrant, Refresh,
};
use ship::parents::{Action, Job};
use ship::testing::TestDb;
use sync::actions::{AlertsInput, EvaluateAlertsAction, ListAlertsAction, RetryDeadAction};
use sync::ui::jobs::SendAnomalyAlertJob;
use sync::AlertsConfig;
use sync::PeerConfig;

fn exec(db: &TestDb, sql: &str) {
    diesel::RunQueryDsl::execute(diesel::sql_query(sql), &mut db.pool.get().unwrap()).unwrap();
}

fn receiver() -> (String, Arc<Mutex<Vec<Value>>>, actix_web::dev::ServerHandle) {
    let (url, got, _, handle) = receiver_failing(0);
    (url, got, handle)
}

/// A webhook receiver that answers 500 to its first `fail_first` requests, then 204 and keeps
/// the alerts it took; also the number of requests it got.
fn receiver_failing(
    fail_first: usize,
) -> (
    String,
    Arc<Mutex<Vec<Value>>>,
    Arc<AtomicUsize>,
    actix_web::dev::ServerHandle,
) {
    receiver_answering(move |n, _| if n < fail_first { 500 } else { 204 })
}

/// A webhook receiver that answers 400 to alerts of `kind` and takes the others (204).
fn receiver_refusing(
    kind: &'static str,
) -> (
    String,
    Arc<Mutex<Vec<Value>>>,
    Arc<AtomicUsize>,
    actix_web::dev::ServerHandle,
) {
    receiver_answering(move |_, alert| if alert["kind"] == kind { 400 } else { 204 })
}

/// A webhook receiver whose answer to its `n`th request (from 0) carrying `alert` is
/// `status(n, alert)`; it keeps the alerts it answered 204 to, and counts the requests.
fn receiver_answering(
    status: impl Fn(usize, &Value) -> u16 + Clone + Send + 'static,
) -> (
    String,
    Arc<Mutex<Vec<Value>>>,
    Arc<AtomicUsize>,
    actix_web::dev::ServerHandle,
) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let requests: Arc<AtomicUsize> = Arc::default();
    let (g, r) = (Arc::clone(&got), Arc::clone(&requests));
    let server = HttpServer::new(move || {
        let (got, requests, status) = (Arc::clone(&g), Arc::clone(&r), status.clone());
        App::new().route(
            "/hook",
            web::post().to(move |body: web::Json<Value>| {
                let n = requests.fetch_add(1, Ordering::SeqCst);
                let code = status(n, &body.0);
                if code == 204 {
                    got.lock().unwrap().push(body.0);
                }
                let response =
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(code).unwrap())
                        .finish();
                async { response }
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
    (url, got, requests, handle)
}

/// A webhook that accepts connections and never answers; the connections it accepted.
async fn silent_receiver() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let accepted: Arc<AtomicUsize> = Arc::default();
    let a = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (url, accepted, task)
}

/// A peer directory whose broker is reachable or not, as the test says; it lists `peers`.
struct FlakyBroker {
    reachable: AtomicBool,
    peers: Vec<String>,
    /// The peers it lists offline (their heartbeats stopped).
    offline: Mutex<Vec<String>>,
}

impl FlakyBroker {
    fn new(peers: &[&str]) -> Arc<Self> {
        Arc::new(Self {
            reachable: AtomicBool::new(true),
            peers: peers.iter().map(|p| p.to_string()).collect(),
            offline: Mutex::new(Vec::new()),
        })
    }

    fn grant(&self, id: &str) -> PeerGrant {
        PeerGrant {
            id: id.into(),
            base_url: "http://127.0.0.1:9".into(),
            status: if self.offline.lock().unwrap().iter().any(|p| p == id) {
                "offline".into()
            } else {
                "online".into()
            },
            token: "t".into(),
            expires_at: i64::MAX,
        }
    }
}

impl PeerDirectory for FlakyBroker {
    fn peers(&self) -> BoxFuture<'_, Result<Vec<PeerGrant>, DirectoryError>> {
        Box::pin(async move {
            if self.reachable.load(Ordering::SeqCst) {
                Ok(self.peers.iter().map(|p| self.grant(p)).collect())
            } else {
                Err(DirectoryError::BrokerUnreachable(
                    "connection refused".into(),
                ))
            }
        })
    }

    fn grant<'a>(
        &'a self,
        peer: &'a str,
        _refresh: Refresh,
    ) -> BoxFuture<'a, Result<PeerGrant, DirectoryError>> {
        Box::pin(async move { Ok(self.grant(peer)) })
    }

    fn health(&self) -> DirectoryHealth {
        let reachable = self.reachable.load(Ordering::SeqCst);
        DirectoryHealth {
            broker_reachable: reachable,
            last_error: (!reachable).then(|| "connection refused".to_string()),
            last_success_at: None,
            served_from_cache: 0,
        }
    }

    fn invalidate(&self, _peer: &str) {}
}

/// The (kind, subject, state) of every alert recorded, oldest first.
async fn history(db: &TestDb) -> Vec<(String, String, String)> {
    common::alert_history(db).await
}

/// The (kind, subject, state) of every notification the webhook took, in order.
fn heard(got: &Mutex<Vec<Value>>) -> Vec<(String, String, String)> {
    got.lock()
        .unwrap()
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            (s("kind"), s("subject"), s("state"))
        })
        .collect()
}

fn alert(kind: &str, subject: &str, state: &str) -> (String, String, String) {
    (kind.into(), subject.into(), state.into())
}

/// Write one customer in `region` (one more change owed to each configured push peer).
async fn write(region: &Region, n: usize) {
    let body = json!({"tenant_id": "t1", "name": format!("Ada {n}"), "email": format!("ada{n}@example.com")});
    assert_eq!(region.post("/api/v1/customers", &body).await.0, 201);
}

ship::backend_tests! {
    async fn an_alert_fires_once_resolves_and_does_not_flap(db: TestDb) {
        let (hook, got, handle) = receiver();
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![PeerConfig::both("us-east")];
        settings.alerts.webhook_url = Some(hook);
        let region = Region::start(&settings).await;
        register_region(&db, "us-east", "http://127.0.0.1:9").await;
        assert_eq!(region.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": "Ada", "email": "x@example.com"})).await.0, 201);
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let alerts = wiring.alerts_action(&pool, &settings).unwrap();

        let quiet = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!((quiet.fired, got.lock().unwrap().len()), (0, 0), "a young pending entry is fine");

        common::dead_letter_all(&db, "eu-west", "us-east");
        assert_eq!((common::owed(&db, "eu-west", "us-east"), common::dead_letters(&db, "us-east")), (0, 1));
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
        // Other conditions still fire: the entry is retried again, old and owed (backlog_age),
        // and nothing was ever delivered to us-east (push_lag). Old: the change was written, and
        // died, long ago.
        exec(&db, "UPDATE sync_changelog SET created_at = '2020-01-01 00:00:00'");
        exec(&db, "UPDATE sync_outbox SET status = 'pending', created_at = '2020-01-01 00:00:00'");
        assert_eq!((common::owed(&db, "eu-west", "us-east"), common::dead_letters(&db, "us-east")), (1, 0));
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

ship::backend_tests! {
    /// `backlog_size` counts what is owed to a peer: over `backlog_max_entries` it fires, at or
    /// under it resolves; young entries raise nothing else.
    async fn backlog_size_fires_over_the_count_and_resolves_under_it(db: TestDb) {
        let (hook, got, handle) = receiver();
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![PeerConfig::both("us-east")];
        settings.alerts.webhook_url = Some(hook);
        settings.alerts.backlog_max_entries = 2;
        let region = Region::start(&settings).await;
        register_region(&db, "us-east", "http://127.0.0.1:9").await;
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let alerts = wiring.alerts_action(&pool, &settings).unwrap();

        write(&region, 1).await;
        write(&region, 2).await;
        assert_eq!(alerts.run(AlertsInput::default()).await.unwrap().fired, 0, "2 owed is not over 2");
        write(&region, 3).await;
        let fired = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!((fired.fired, fired.notified), (1, 1), "{fired:?}");
        assert_eq!(heard(&got), vec![alert("backlog_size", "us-east", "firing")]);
        assert_eq!(got.lock().unwrap()[0]["value"], 3);

        // One is delivered: 2 owed, resolved, and the webhook hears it.
        assert_eq!(common::owed(&db, "eu-west", "us-east"), 3);
        let first = common::count(&mut db.pool.get().unwrap(), "SELECT MIN(seq) FROM sync_changelog");
        common::mark_delivered_through(&db, "us-east", first, "CURRENT_TIMESTAMP");
        assert_eq!(common::owed(&db, "eu-west", "us-east"), 2);
        let resolved = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!((resolved.fired, resolved.resolved, resolved.notified), (0, 1, 1), "{resolved:?}");
        assert_eq!(heard(&got), vec![alert("backlog_size", "us-east", "firing"), alert("backlog_size", "us-east", "resolved")]);
        assert_eq!(history(&db).await, vec![alert("backlog_size", "us-east", "resolved")]);
        handle.stop(true).await;
        region.stop().await;
    }
}

ship::backend_tests! {
    /// `broker_unreachable` follows the directory's health (the `PeerDirectory` contract): it
    /// fires while the broker cannot be reached — the evaluation still runs although the
    /// broker's peer list cannot be had — and resolves once it answers again.
    async fn broker_unreachable_fires_and_resolves_with_the_directory_health(db: TestDb) {
        let (hook, got, handle) = receiver();
        let config = AlertsConfig { webhook_url: Some(hook), ..AlertsConfig::default() };
        let broker = FlakyBroker::new(&["us-east"]);
        let directory: Arc<dyn PeerDirectory> = broker.clone();
        let action = EvaluateAlertsAction::new(db.pool.clone(), Arc::clone(&directory), reqwest::Client::new(), "eu-west", config);
        let job = SendAnomalyAlertJob::new(action, directory, None);

        job.handle().await.unwrap();
        assert_eq!(history(&db).await, vec![], "a reachable broker raises nothing");
        broker.reachable.store(false, Ordering::SeqCst);
        job.handle().await.unwrap();
        assert_eq!(history(&db).await, vec![alert("broker_unreachable", "", "firing")]);
        assert_eq!(heard(&got), vec![alert("broker_unreachable", "", "firing")]);
        assert!(got.lock().unwrap()[0]["message"].as_str().unwrap().contains("connection refused"));
        job.handle().await.unwrap();
        assert_eq!(got.lock().unwrap().len(), 1, "deduplicated while it holds");

        broker.reachable.store(true, Ordering::SeqCst);
        job.handle().await.unwrap();
        assert_eq!(history(&db).await, vec![alert("broker_unreachable", "", "resolved")]);
        assert_eq!(heard(&got), vec![alert("broker_unreachable", "", "firing"), alert("broker_unreachable", "", "resolved")]);
        handle.stop(true).await;
    }
}

ship::backend_tests! {
    /// `peer_offline` (issue 16.5) follows the broker's heartbeat view of each region; while
    /// the broker's list cannot be had it is kept as it is, neither resolved nor re-judged.
    async fn peer_offline_follows_the_brokers_heartbeat_view(db: TestDb) {
        let (hook, got, handle) = receiver();
        let config = AlertsConfig { webhook_url: Some(hook), ..AlertsConfig::default() };
        let broker = FlakyBroker::new(&["us-east", "ap-south"]);
        let directory: Arc<dyn PeerDirectory> = broker.clone();
        let action = EvaluateAlertsAction::new(db.pool.clone(), Arc::clone(&directory), reqwest::Client::new(), "eu-west", config);
        let job = SendAnomalyAlertJob::new(action, directory, Some(vec![]));

        job.handle().await.unwrap();
        assert_eq!(history(&db).await, vec![]);
        broker.offline.lock().unwrap().push("ap-south".into());
        job.handle().await.unwrap();
        assert_eq!(history(&db).await, vec![alert("peer_offline", "ap-south", "firing")]);
        assert!(got.lock().unwrap()[0]["message"].as_str().unwrap().contains("ap-south offline"));
        // The broker cannot be reached: the alert stands (beside broker_unreachable).
        broker.reachable.store(false, Ordering::SeqCst);
        job.handle().await.unwrap();
        let open: Vec<_> = history(&db).await.into_iter().filter(|a| a.2 == "firing").collect();
        assert!(open.contains(&alert("peer_offline", "ap-south", "firing")), "{open:?}");
        broker.reachable.store(true, Ordering::SeqCst);
        broker.offline.lock().unwrap().clear();
        job.handle().await.unwrap();
        assert!(history(&db).await.contains(&alert("peer_offline", "ap-south", "resolved")));
        handle.stop(true).await;
    }
}

ship::backend_tests! {
    /// `push_lag`: changes owed to a peer and nothing reached it for `push_lag_max_secs`,
    /// counted from the later of its last delivery and its oldest pending change. Three changes,
    /// the first two old. us-east: old entries, never delivered → fires; ap-south: the first
    /// delivered just now, the old second one pending → the push moves, no lag; sa-east: the
    /// first two delivered long ago, only the fresh third owed (a write after a quiet spell) →
    /// no lag. Delivering us-east's entries resolves it.
    async fn push_lag_fires_for_a_peer_not_delivered_to_and_resolves_after_delivery(db: TestDb) {
        let (hook, got, handle) = receiver();
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = ["us-east", "ap-south", "sa-east"].iter().map(|p| PeerConfig::both(*p)).collect();
        settings.alerts.webhook_url = Some(hook);
        settings.alerts.push_lag_max_secs = 60;
        settings.alerts.backlog_max_age_secs = 10_000_000_000; // only push_lag here
        let region = Region::start(&settings).await;
        for peer in ["us-east", "ap-south", "sa-east"] {
            register_region(&db, peer, "http://127.0.0.1:9").await;
        }
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let alerts = wiring.alerts_action(&pool, &settings).unwrap();

        write(&region, 1).await;
        write(&region, 2).await;
        write(&region, 3).await;
        assert_eq!(alerts.run(AlertsInput::default()).await.unwrap().fired, 0, "young entries are not late");

        let (first, third) = {
            let mut conn = db.pool.get().unwrap();
            (common::count(&mut conn, "SELECT MIN(seq) FROM sync_changelog"), common::count(&mut conn, "SELECT MAX(seq) FROM sync_changelog"))
        };
        let second = first + 1;
        assert_eq!(third, first + 2);
        exec(&db, &format!("UPDATE sync_changelog SET created_at = '2020-01-01 00:00:00' WHERE seq <= {second}"));
        common::mark_delivered_through(&db, "ap-south", first, "CURRENT_TIMESTAMP");
        common::mark_delivered_through(&db, "sa-east", second, "'2020-01-01 00:00:00'");
        let owed = |peer: &str| common::owed(&db, "eu-west", peer);
        assert_eq!((owed("us-east"), owed("ap-south"), owed("sa-east")), (3, 2, 1));
        let fired = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!((fired.fired, fired.notified), (1, 1), "{fired:?}");
        assert_eq!(heard(&got), vec![alert("push_lag", "us-east", "firing")]);
        assert!(got.lock().unwrap()[0]["value"].as_i64().unwrap() > 60);
        assert!(got.lock().unwrap()[0]["message"].as_str().unwrap().contains("no delivery on record"), "{:?}", got.lock().unwrap()[0]);

        // us-east catches up: nothing owed, no push lag.
        common::mark_delivered_through(&db, "us-east", third, "CURRENT_TIMESTAMP");
        let resolved = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!((resolved.fired, resolved.resolved), (0, 1), "{resolved:?}");
        assert_eq!(heard(&got), vec![alert("push_lag", "us-east", "firing"), alert("push_lag", "us-east", "resolved")]);
        assert_eq!(history(&db).await, vec![alert("push_lag", "us-east", "resolved")]);
        handle.stop(true).await;
        region.stop().await;
    }
}

ship::backend_tests! {
    /// `pull_lag` covers the peers the pull reads — here the broker's list, as in the README
    /// setup of the broker region (no `[[sync.peers]]`). us-east was never pulled: it lags from
    /// when the evaluation first listed it, fires once that exceeds `pull_lag_max_secs`, and
    /// keeps firing after a restart of the evaluator; ap-south was pulled just now (no alert),
    /// then its last pull is old (fires), then a pull succeeds (resolves).
    async fn pull_lag_fires_for_a_never_pulled_peer_from_the_broker_list(db: TestDb) {
        let (hook, got, handle) = receiver();
        let mut settings = settings_for(&db, "eu-west");
        settings.alerts.webhook_url = Some(hook);
        settings.alerts.pull_lag_max_secs = 1;
        assert!(settings.sync.peers.is_empty());
        register_region(&db, "us-east", "http://127.0.0.1:9").await;
        register_region(&db, "ap-south", "http://127.0.0.1:9").await;
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let job = wiring.alerts_job(&pool, &settings).unwrap();

        job.handle().await.unwrap();
        assert_eq!(history(&db).await, vec![], "just listed: no lag yet");
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        exec(&db, "INSERT INTO sync_peer_cursors (peer, resource, peer_cursor, last_pull_at, updated_at) VALUES ('ap-south', 'customers', 'c', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)");
        job.handle().await.unwrap();
        assert_eq!(history(&db).await, vec![alert("pull_lag", "us-east", "firing")]);
        assert_eq!(heard(&got), vec![alert("pull_lag", "us-east", "firing")]);
        assert!(got.lock().unwrap()[0]["message"].as_str().unwrap().contains("never pulled"));

        // A new scheduler process (a restart): us-east still was never pulled, still firing.
        let restarted = wiring.alerts_job(&pool, &settings).unwrap();
        restarted.handle().await.unwrap();
        assert_eq!(history(&db).await, vec![alert("pull_lag", "us-east", "firing")], "a restart does not resolve it");

        exec(&db, "UPDATE sync_peer_cursors SET last_pull_at = '2020-01-01 00:00:00' WHERE peer = 'ap-south'");
        restarted.handle().await.unwrap();
        assert_eq!(history(&db).await, vec![alert("pull_lag", "us-east", "firing"), alert("pull_lag", "ap-south", "firing")]);
        assert!(got.lock().unwrap()[1]["message"].as_str().unwrap().contains("last pulled"));
        exec(&db, "UPDATE sync_peer_cursors SET last_pull_at = CURRENT_TIMESTAMP WHERE peer = 'ap-south'");
        restarted.handle().await.unwrap();
        assert_eq!(history(&db).await, vec![alert("pull_lag", "us-east", "firing"), alert("pull_lag", "ap-south", "resolved")]);
        assert_eq!(heard(&got).last(), Some(&alert("pull_lag", "ap-south", "resolved")));
        handle.stop(true).await;
    }
}

ship::backend_tests! {
    /// A firing alert is re-sent once `cool_down_secs` passed since the webhook last heard it,
    /// not before, and then not again until the next cool-down.
    async fn a_firing_alert_is_re_sent_after_the_cool_down_and_not_before(db: TestDb) {
        let (hook, got, handle) = receiver();
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![PeerConfig::both("us-east")];
        settings.alerts.webhook_url = Some(hook);
        settings.alerts.cool_down_secs = 2;
        let region = Region::start(&settings).await;
        register_region(&db, "us-east", "http://127.0.0.1:9").await;
        write(&region, 1).await;
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let alerts = wiring.alerts_action(&pool, &settings).unwrap();
        common::dead_letter_all(&db, "eu-west", "us-east");

        let fired = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!((fired.fired, fired.notified), (1, 1));
        let again = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!((again.fired, again.notified, got.lock().unwrap().len()), (0, 0, 1), "not within the cool-down");

        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let reminded = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!((reminded.fired, reminded.notified), (0, 1), "{reminded:?}");
        assert_eq!(heard(&got), vec![alert("dead_letters", "us-east", "firing"), alert("dead_letters", "us-east", "firing")]);
        {
            let got = got.lock().unwrap();
            assert_eq!(got[0]["fired_at"], got[1]["fired_at"], "the same alert, re-sent");
        }
        let after = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!((after.notified, got.lock().unwrap().len()), (0, 2), "once per cool-down");
        assert_eq!(history(&db).await, vec![alert("dead_letters", "us-east", "firing")]);
        handle.stop(true).await;
        region.stop().await;
    }
}

ship::backend_tests! {
    /// The webhook is retried within one notification (`webhook_attempts`): a receiver that
    /// answers 500 twice then 204 gets the alert on the third request. With fewer attempts
    /// than failures the notification is not counted as heard, and the next evaluation sends
    /// it again.
    async fn the_webhook_is_retried_until_it_takes_the_alert(db: TestDb) {
        let (hook, got, requests, handle) = receiver_failing(2);
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![PeerConfig::both("us-east")];
        settings.alerts.webhook_url = Some(hook);
        settings.alerts.webhook_attempts = 3;
        let region = Region::start(&settings).await;
        register_region(&db, "us-east", "http://127.0.0.1:9").await;
        write(&region, 1).await;
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        common::dead_letter_all(&db, "eu-west", "us-east");
        let summary = wiring.alerts_action(&pool, &settings).unwrap().run(AlertsInput::default()).await.unwrap();
        assert_eq!((summary.fired, summary.notified), (1, 1), "{summary:?}");
        assert_eq!(requests.load(Ordering::SeqCst), 3, "two refusals, then taken");
        assert_eq!(heard(&got), vec![alert("dead_letters", "us-east", "firing")]);
        handle.stop(true).await;

        // Three refusals, two attempts per notification: not heard this time, heard the next.
        let (hook, got, requests, handle) = receiver_failing(3);
        settings.alerts.webhook_url = Some(hook);
        settings.alerts.webhook_attempts = 2;
        let alerts = wiring.alerts_action(&pool, &settings).unwrap();
        exec(&db, "UPDATE sync_outbox SET status = 'pending'"); // the dead letter retried
        let resolved = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!((resolved.resolved, resolved.notified), (1, 0), "{resolved:?}");
        assert_eq!(requests.load(Ordering::SeqCst), 2);
        assert_eq!(common::count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_alerts WHERE notified_state = 'resolved'"), 0);
        let next = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!(next.notified, 1, "{next:?}");
        assert_eq!(requests.load(Ordering::SeqCst), 4);
        assert_eq!(heard(&got), vec![alert("dead_letters", "us-east", "resolved")]);
        assert_eq!(common::count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_alerts WHERE notified_state = 'resolved'"), 1);
        handle.stop(true).await;
        region.stop().await;
    }
}

ship::backend_tests! {
    /// A webhook that accepts the connection and never answers: each attempt ends at
    /// `webhook_timeout_secs`, and after one notification's attempts failed the other waits
    /// for the next evaluation — so two firing alerts cost one notification's attempts, the
    /// evaluation returns, and both alerts are recorded (not yet heard).
    async fn a_silent_webhook_holds_the_evaluation_for_one_notifications_attempts(db: TestDb) {
        let (hook, accepted, receiver) = silent_receiver().await;
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![PeerConfig::both("us-east")];
        settings.alerts.webhook_url = Some(hook);
        settings.alerts.webhook_timeout_secs = 1;
        settings.alerts.webhook_attempts = 2;
        settings.alerts.backlog_max_entries = 1;
        let region = Region::start(&settings).await;
        register_region(&db, "us-east", "http://127.0.0.1:9").await;
        // 1 dead (dead_letters), then 2 owed (backlog_size over 1): two alerts to send.
        write(&region, 1).await;
        common::dead_letter_all(&db, "eu-west", "us-east");
        write(&region, 2).await;
        write(&region, 3).await;
        assert_eq!((common::owed(&db, "eu-west", "us-east"), common::dead_letters(&db, "us-east")), (2, 1));
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let alerts = wiring.alerts_action(&pool, &settings).unwrap();

        let started = Instant::now();
        let summary = tokio::time::timeout(Duration::from_secs(30), alerts.run(AlertsInput::default()))
            .await
            .expect("the evaluation returns")
            .unwrap();
        let took = started.elapsed();
        assert_eq!((summary.fired, summary.notified), (2, 0), "{summary:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "one notification's two attempts, not four");
        // 2 attempts × 1 s + 0.5 s backoff; generous either way.
        assert!(took >= Duration::from_millis(1_900), "each attempt waits out its timeout: {took:?}");
        assert!(took < Duration::from_secs(8), "bounded by one notification's attempts: {took:?}");
        let mut recorded = history(&db).await;
        recorded.sort();
        assert_eq!(recorded, vec![alert("backlog_size", "us-east", "firing"), alert("dead_letters", "us-east", "firing")]);
        assert_eq!(common::count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM sync_alerts WHERE notified_at IS NULL"), 2);
        receiver.abort();
        region.stop().await;
    }
}

ship::backend_tests! {
    /// Regression (review): after one notification failed, the evaluation stopped, and alerts
    /// are sent oldest first — so a webhook refusing one alert's payload (a 4xx, e.g. 400 or
    /// 413) silenced every alert behind it for good. A 4xx is a verdict on that alert: it is
    /// not retried within the evaluation and the next alerts still go out.
    async fn a_webhook_refusing_one_alert_does_not_silence_the_others(db: TestDb) {
        let (hook, got, requests, handle) = receiver_refusing("dead_letters");
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![PeerConfig::both("us-east")];
        settings.alerts.webhook_url = Some(hook);
        settings.alerts.webhook_attempts = 3;
        settings.alerts.backlog_max_entries = 1;
        let region = Region::start(&settings).await;
        register_region(&db, "us-east", "http://127.0.0.1:9").await;
        write(&region, 1).await;
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let alerts = wiring.alerts_action(&pool, &settings).unwrap();
        // The older alert: a dead letter, which this webhook refuses.
        common::dead_letter_all(&db, "eu-west", "us-east");
        let first = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!((first.fired, first.notified), (1, 0), "{first:?}");
        assert_eq!(requests.load(Ordering::SeqCst), 1, "a 4xx is not retried");
        // A newer alert behind it: two entries owed (over 1).
        write(&region, 2).await;
        write(&region, 3).await;
        let second = alerts.run(AlertsInput::default()).await.unwrap();
        assert_eq!(second.notified, 1, "{second:?}");
        assert_eq!(heard(&got), vec![alert("backlog_size", "us-east", "firing")]);
        assert_eq!(requests.load(Ordering::SeqCst), 3, "the refused one asked once more, then the next one");
        handle.stop(true).await;
        region.stop().await;
    }
}

ship::backend_tests! {
    /// Regression (review): a fresh scheduler process whose broker is down has no peer list;
    /// its first evaluation resolved every firing `pull_lag` alert (no peer, no lag), and the
    /// cool-down then kept them from firing again for an hour. With the list unknown they are
    /// left as they are; with a list that no longer names the peer they resolve.
    async fn pull_lag_alerts_stand_while_the_peer_list_is_unknown(db: TestDb) {
        let mut settings = settings_for(&db, "eu-west");
        settings.alerts.pull_lag_max_secs = 1;
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let alerts = wiring.alerts_action(&pool, &settings).unwrap();
        exec(&db, "INSERT INTO sync_peer_cursors (peer, resource, peer_cursor, last_pull_at, updated_at) VALUES ('us-east', 'customers', 'c', '2020-01-01 00:00:00', CURRENT_TIMESTAMP)");
        let known = |peers: &[&str]| AlertsInput { peers: peers.iter().map(|p| p.to_string()).collect(), peers_unknown: false };
        assert_eq!(alerts.run(known(&["us-east"])).await.unwrap().fired, 1);
        let unknown = AlertsInput { peers: Vec::new(), peers_unknown: true };
        let summary = alerts.run(unknown).await.unwrap();
        assert_eq!((summary.fired, summary.resolved), (0, 0), "{summary:?}");
        assert_eq!(history(&db).await, vec![alert("pull_lag", "us-east", "firing")]);
        let summary = alerts.run(known(&[])).await.unwrap();
        assert_eq!(summary.resolved, 1, "a known list without the peer resolves it: {summary:?}");
    }
}
