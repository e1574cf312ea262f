//! Peer clocks (issue 16.5, ADR 0016) on each backend: two regions over real HTTP, one of them
//! with its clock 3 s ahead. Every sync answer carries the answering region's wall clock
//! (`Regionsync-Clock`); the caller of a pull or a push measures the peer round trip, the
//! receiver one way; `sync_peer_clocks` keeps them, and the `clock_skew` alert fires on a
//! skewed peer, stands while the measurement is stale, and resolves on a fresh one within the
//! bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use app::startup::{prepare, Application, StartOptions};
use common::{register_region, remote_settings_with, settings_for, Region};
use serde_json::json;
use ship::contracts::HybridClock;
use ship::parents::{Action, Job};
use ship::testing::TestDb;
use sync::actions::{AlertsInput, PeerClockMeter};
use sync::peer_clock::{ClockSample, CLOCK_HEADER};
use sync::PeerConfig;

/// How far ahead us-east's clock runs.
const SKEW_MS: i64 = 3_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(diesel::QueryableByName, Debug)]
struct Clock {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    offset_ms: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    round_trip_ms: Option<i64>,
}

/// `peer`'s row in `sync_peer_clocks` of `db`.
fn clock_of(db: &TestDb, peer: &str) -> Option<Clock> {
    let rows: Vec<Clock> = diesel::RunQueryDsl::load(
        diesel::sql_query(format!(
            "SELECT offset_ms, round_trip_ms FROM sync_peer_clocks WHERE peer = '{peer}'"
        )),
        &mut db.pool.get().unwrap(),
    )
    .unwrap();
    rows.into_iter().next()
}

/// Wait (measurements are written in the background) until `peer`'s row in `db` satisfies
/// `ok`; the row.
async fn measured(db: &TestDb, peer: &str, ok: impl Fn(&Clock) -> bool) -> Clock {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match clock_of(db, peer) {
            Some(row) if ok(&row) => return row,
            row => assert!(
                tokio::time::Instant::now() < deadline,
                "{peer}'s clock was not measured as expected: {row:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// us-east as a running web process on `db`, its clock `SKEW_MS` ahead; its clock.
async fn start_skewed(
    settings: &app::Settings,
) -> (Arc<HybridClock>, actix_web::dev::ServerHandle) {
    let app = Application::build(settings, StartOptions::default())
        .await
        .unwrap();
    let clock = Arc::clone(&app.wiring().clock);
    clock.skew_for_tests(SKEW_MS);
    let handle = app.handle();
    tokio::spawn(app.run_until(std::future::pending()));
    (clock, handle)
}

/// (kind, subject, state) of the alerts of `db`, oldest first.
async fn alerts(db: &TestDb) -> Vec<(String, String, String)> {
    common::alert_history(db).await
}

fn alert(kind: &str, subject: &str, state: &str) -> (String, String, String) {
    (kind.into(), subject.into(), state.into())
}

/// eu-west's scheduled pull of us-east's customers, measuring (a fresh process: its own
/// throttle).
async fn pull_us_east(settings: &app::Settings) {
    let (pool, wiring) = prepare(settings, StartOptions::default()).await.unwrap();
    let job = wiring.measuring(sync::ui::jobs::PullChangesJob::new(
        wiring.pull_action(&pool, settings).unwrap(),
        wiring.directory(),
        Some(vec!["us-east".into()]),
        vec!["customers".into()],
        100,
    ));
    job.handle().await.unwrap();
}

ship::backend_tests! {
    async fn clocks_are_measured_both_ways_over_http_and_a_skewed_peer_alerts(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let mut a_settings = settings_for(&db, "eu-west");
        a_settings.sync.peers = vec![PeerConfig { id: "us-east".into(), push: false, pull: true }];
        let a = Region::start(&a_settings).await;
        let b_port = free_port();
        let b_url = format!("http://127.0.0.1:{b_port}");
        let credential = register_region(&db, "us-east", &b_url).await;
        let mut b_settings = remote_settings_with(&db_b, &a.base, &credential);
        b_settings.http.bind = format!("127.0.0.1:{b_port}");
        b_settings.broker.public_url = Some(b_url.clone());
        b_settings.sync.peers = vec![PeerConfig { id: "eu-west".into(), push: true, pull: false }];
        let (b_clock, b_handle) = start_skewed(&b_settings).await;

        // Every answer of the sync routes carries the answering region's clock, a refusal too.
        let res = reqwest::get(format!("{b_url}/sync/customers/changes")).await.unwrap();
        assert_eq!(res.status().as_u16(), 401);
        let theirs: i64 = res.headers()[CLOCK_HEADER].to_str().unwrap().parse().unwrap();
        let ours = ship::contracts::system_time_ms() as i64;
        assert!(theirs - ours > SKEW_MS / 2, "us-east answers with its clock ahead: {theirs} vs {ours}");

        // eu-west pulls us-east: round trip at eu-west (us-east ahead), one way at us-east
        // (eu-west behind, by the transit time more).
        pull_us_east(&a_settings).await;
        let at_a = measured(&db, "us-east", |c| c.round_trip_ms.is_some()).await;
        assert!((at_a.offset_ms - SKEW_MS).abs() < 1_000, "{at_a:?}");
        let at_b = measured(&db_b, "eu-west", |_| true).await;
        assert_eq!(at_b.round_trip_ms, None, "one way: from eu-west's request");
        assert!((at_b.offset_ms + SKEW_MS).abs() < 1_000, "{at_b:?}");

        // us-east pushes a write to eu-west: now us-east measured round trip, and eu-west's
        // one-way measurement does not replace its fresh round-trip one.
        let (status, _) = reqwest::Client::new()
            .post(format!("{b_url}/api/v1/customers"))
            .json(&json!({"tenant_id": "t1", "name": "Ada", "email": "ada@example.com"}))
            .send()
            .await
            .map(|r| (r.status().as_u16(), ()))
            .unwrap();
        assert_eq!(status, 201);
        let (pool_b, wiring_b) = prepare(&b_settings, StartOptions::default()).await.unwrap();
        wiring_b.clock.skew_for_tests(SKEW_MS);
        let sink: Arc<dyn sync::peer_clock::ClockSink> = Arc::new(wiring_b.clock_meter.clone());
        let dispatch = wiring_b.dispatch_action(&pool_b, &b_settings).unwrap();
        let sent = sync::peer_clock::measuring(sink, dispatch.run("test".into())).await.unwrap();
        assert_eq!(sent.delivered, 1, "{sent:?}");
        let at_b = measured(&db_b, "eu-west", |c| c.round_trip_ms.is_some()).await;
        assert!((at_b.offset_ms + SKEW_MS).abs() < 1_000, "{at_b:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(clock_of(&db, "us-east").unwrap().round_trip_ms.is_some());

        // Each region alerts on the other's clock (bound 1000 ms by default).
        let (pool_a, wiring_a) = prepare(&a_settings, StartOptions::default()).await.unwrap();
        let alerts_a = wiring_a.alerts_action(&pool_a, &a_settings).unwrap();
        alerts_a.run(AlertsInput::default()).await.unwrap();
        assert!(alerts(&db).await.contains(&alert("clock_skew", "us-east", "firing")), "{:?}", alerts(&db).await);
        let alerts_b = wiring_b.alerts_action(&pool_b, &b_settings).unwrap();
        alerts_b.run(AlertsInput::default()).await.unwrap();
        assert!(alerts(&db_b).await.contains(&alert("clock_skew", "eu-west", "firing")), "{:?}", alerts(&db_b).await);

        // us-east's clock is fixed: the next pull measures it right, and the alert resolves.
        b_clock.skew_for_tests(0);
        pull_us_east(&a_settings).await;
        measured(&db, "us-east", |c| c.offset_ms.abs() < 1_000).await;
        alerts_a.run(AlertsInput::default()).await.unwrap();
        assert!(alerts(&db).await.contains(&alert("clock_skew", "us-east", "resolved")), "{:?}", alerts(&db).await);

        b_handle.stop(true).await;
        a.stop().await;
    }
}

ship::backend_tests! {
    /// The alert from the measurements as the meter records them: past the bound it fires; a
    /// round trip's error (half of it) is not counted as skew; a one-way reading fires only for
    /// a peer ahead (behind, it may be transit time); a stale measurement neither resolves nor
    /// fires, one older than a day resolves; a fresh one within the bound resolves it; a
    /// one-way measurement does not replace a fresh round-trip one.
    async fn clock_skew_fires_stands_while_stale_and_resolves(db: TestDb) {
        let mut settings = settings_for(&db, "eu-west");
        settings.alerts.clock_skew_max_ms = 1_000;
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let alerts_action = wiring.alerts_action(&pool, &settings).unwrap();
        // A fresh meter per measurement: each is a process of its own (no throttle between).
        let record = |peer: &str, offset_ms: i64, round_trip_ms: Option<i64>| {
            let meter = PeerClockMeter::new(pool.clone(), Arc::clone(&wiring.clock));
            let sample = ClockSample { peer: peer.into(), offset_ms, round_trip_ms };
            async move { meter.run(sample).await.unwrap() }
        };
        assert!(record("us-east", 4_000, Some(20)).await);
        assert!(record("ap-south", -1_500, Some(1_200)).await, "within its error: ±600 ms");
        assert!(record("sa-east", 2_500, None).await);
        assert!(record("af-south", -2_500, None).await, "one way and behind: not judged");
        alerts_action.run(AlertsInput::default()).await.unwrap();
        assert_eq!(
            alerts(&db).await,
            vec![alert("clock_skew", "sa-east", "firing"), alert("clock_skew", "us-east", "firing")]
        );
        // One meter writes one measurement per peer and kind per ~10 s.
        let meter = PeerClockMeter::new(pool.clone(), Arc::clone(&wiring.clock));
        let sample = ClockSample { peer: "ap-south".into(), offset_ms: 0, round_trip_ms: Some(1) };
        assert!(meter.run(sample.clone()).await.unwrap());
        assert!(!meter.run(sample).await.unwrap(), "throttled");
        // A one-way measurement leaves a fresh round-trip one alone.
        assert!(!record("us-east", 0, None).await);
        assert_eq!(clock_of(&db, "us-east").unwrap().offset_ms, 4_000);

        // us-east's measurement is an hour old (it is not exchanged with any more): its alert
        // stands; a day old, it resolves (review: it stood for ever).
        let hour_ago = (ship::db::utc_now() - chrono::Duration::hours(1)).format("%Y-%m-%d %H:%M:%S");
        diesel::RunQueryDsl::execute(
            diesel::sql_query(format!("UPDATE sync_peer_clocks SET offset_ms = 0, measured_at = '{hour_ago}' WHERE peer = 'us-east'")),
            &mut db.pool.get().unwrap(),
        )
        .unwrap();
        alerts_action.run(AlertsInput::default()).await.unwrap();
        assert!(alerts(&db).await.contains(&alert("clock_skew", "us-east", "firing")));
        diesel::RunQueryDsl::execute(
            diesel::sql_query("UPDATE sync_peer_clocks SET offset_ms = 0, measured_at = '2020-01-01 00:00:00' WHERE peer = 'us-east'"),
            &mut db.pool.get().unwrap(),
        )
        .unwrap();
        alerts_action.run(AlertsInput::default()).await.unwrap();
        assert!(alerts(&db).await.contains(&alert("clock_skew", "us-east", "resolved")), "{:?}", alerts(&db).await);
        // A fresh one within the bound resolves it; so does forgetting a peer.
        assert!(record("us-east", 300, Some(40)).await);
        sync::actions::DiscardOutboxAction::new(pool.clone(), "eu-west")
            .run((None, Some("sa-east".into())))
            .await
            .unwrap();
        alerts_action.run(AlertsInput::default()).await.unwrap();
        assert_eq!(
            alerts(&db).await,
            vec![alert("clock_skew", "sa-east", "resolved"), alert("clock_skew", "us-east", "resolved")]
        );
    }
}
