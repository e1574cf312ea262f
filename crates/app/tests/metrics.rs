//! Lag and throughput metrics (issue 16.4) against a real region on each backend: the sync
//! counters per peer, resource and outcome, the request-duration histogram by route and status,
//! push and pull lag per peer; and docs/grafana-dashboard.json uses only names `/metrics`
//! serves.
//!
//! The counters are per process, and the tests of this file run in parallel in one process:
//! each test speaks for peers of its own (suffixed with the backend), and reads only their
//! series.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use app::startup::{prepare, StartOptions};
use common::{customer, hlc, order, register_region, settings_for, Region};
use serde_json::{json, Value};
use ship::testing::TestDb;
use sync::PeerConfig;

const X: &str = "01939d2e-0000-7000-8000-00000000001a";
const Y: &str = "01939d2e-0000-7000-8000-00000000001b";
const Z: &str = "01939d2e-0000-7000-8000-00000000001c";
const W: &str = "01939d2e-0000-7000-8000-00000000001d";

/// A region id unique to this test and backend.
fn peer_id(db: &TestDb, what: &str) -> String {
    format!("{what}-{:?}", db.backend()).to_lowercase()
}

fn op(op_id: &str, id: &str, hlc: i64, origin: &str, payload: Value) -> Value {
    json!({"op_id": op_id, "entity_id": id, "kind": "upsert", "hlc": hlc, "origin": origin, "payload": payload})
}

/// POST `ops` to `resource`'s ops route as `source` (its incarnation header too, as a region
/// sends it): the answer's body.
async fn push(region: &Region, resource: &str, source: &str, ops: Vec<Value>) -> Value {
    let body = json!({"source_region": source, "batch_id": "b-1", "schema_version": 1, "ops": ops});
    let res = region
        .client
        .post(region.url(&format!("/sync/{resource}/ops")))
        .bearer_auth(region.token_from(source))
        .header(
            ship::http::INCARNATION_HEADER,
            "0123456789abcdef0123456789abcdef",
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.json().await.unwrap()
}

async fn scrape(region: &Region) -> String {
    let res = reqwest::get(region.url("/metrics")).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    res.text().await.unwrap()
}

/// The value of the sample `series` (name and labels exactly as printed), if there is one.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

/// The compact JSON length of `values` (what the received-bytes counter adds).
fn json_bytes(values: &[Value]) -> f64 {
    values.iter().map(|v| v.to_string().len()).sum::<usize>() as f64
}

ship::backend_tests! {
    async fn ops_are_counted_per_peer_resource_and_outcome(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let (source, other) = (peer_id(&db, "mc-src"), peer_id(&db, "mc-other"));
        let ops_of = |outcome: &str, resource: &str| {
            format!("regionsync_sync_ops_total{{peer=\"{source}\",resource=\"{resource}\",outcome=\"{outcome}\"}}")
        };
        let text = scrape(&region).await;
        assert_eq!(sample(&text, &ops_of("applied", "customers")), None, "not a peer of this region's");

        // Another region's newer write to Y, then ours: X applied; then again X (duplicate),
        // Y older than the other region's (stale), Z new (applied).
        let (h0, h1) = (hlc(-2_000), hlc(-1_000));
        push(&region, "customers", &other, vec![op("p1", Y, h1, &other, customer(Y, "theirs", false))]).await;
        let first = vec![op("o1", X, h1, &source, customer(X, "x", false))];
        push(&region, "customers", &source, first.clone()).await;
        let second = vec![
            op("o1", X, h1, &source, customer(X, "x", false)),
            op("o2", Y, h0, &source, customer(Y, "ours", false)),
            op("o3", Z, h0, &source, customer(Z, "z", false)),
        ];
        let answer = push(&region, "customers", &source, second.clone()).await;
        assert_eq!((answer["applied"].as_u64(), answer["stale"].as_u64(), answer["duplicate"].as_u64()), (Some(1), Some(1), Some(1)), "{answer}");
        // An order whose customer is not here: parked.
        let waiting = vec![op("o4", W, h0, &source, order(W, "01939d2e-0000-7000-8000-0000000000f9", "pending", false))];
        let answer = push(&region, "orders", &source, waiting.clone()).await;
        assert_eq!(answer["parked"].as_u64(), Some(1), "{answer}");

        let text = scrape(&region).await;
        assert_eq!(sample(&text, &ops_of("applied", "customers")), Some(2.0), "{text}");
        assert_eq!(sample(&text, &ops_of("stale", "customers")), Some(1.0), "{text}");
        assert_eq!(sample(&text, &ops_of("duplicate", "customers")), Some(1.0), "{text}");
        assert_eq!(sample(&text, &ops_of("parked", "customers")), None, "{text}");
        assert_eq!(sample(&text, &ops_of("parked", "orders")), Some(1.0), "{text}");
        let received = |what: &str, resource: &str| {
            sample(&text, &format!("regionsync_sync_received_{what}_total{{peer=\"{source}\",resource=\"{resource}\"}}"))
        };
        assert_eq!(received("entries", "customers"), Some(4.0), "{text}");
        let all: Vec<Value> = first.iter().chain(&second).cloned().collect();
        assert_eq!(received("bytes", "customers"), Some(json_bytes(&all)), "{text}");
        assert_eq!(received("entries", "orders"), Some(1.0), "{text}");
        assert_eq!(received("bytes", "orders"), Some(json_bytes(&waiting)), "{text}");
        assert!(text.contains("# TYPE regionsync_sync_ops counter\n"), "{text}");
        region.stop().await;
    }

    async fn request_durations_are_observed_by_route_and_status(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let source = peer_id(&db, "md-src");
        push(&region, "customers", &source, vec![op("o1", X, hlc(-500), &source, customer(X, "x", false))]).await;
        let res = reqwest::get(region.url("/no/such/path-7f3a")).await.unwrap();
        assert_eq!(res.status().as_u16(), 404);
        let text = scrape(&region).await;
        assert!(text.contains("# TYPE regionsync_http_request_duration_seconds histogram\n"), "{text}");
        let ops = "route=\"/sync/{resource}/ops\",status=\"200\"";
        let count = sample(&text, &format!("regionsync_http_request_duration_seconds_count{{{ops}}}")).unwrap();
        assert!(count >= 1.0, "{text}");
        let all = sample(&text, &format!("regionsync_http_request_duration_seconds_bucket{{le=\"+Inf\",{ops}}}")).expect(&text);
        assert_eq!(all, count, "every request is in the +Inf bucket");
        assert!(sample(&text, &format!("regionsync_http_request_duration_seconds_bucket{{le=\"10.0\",{ops}}}")).is_some(), "{text}");
        assert!(sample(&text, "regionsync_http_request_duration_seconds_count{route=\"unmatched\",status=\"404\"}").unwrap() >= 1.0, "{text}");
        // Never a raw path: the label set stays bounded.
        assert!(!text.contains("route=\"/sync/customers/ops\""), "{text}");
        assert!(!text.contains("path-7f3a"), "{text}");
        region.stop().await;
    }

    async fn push_and_pull_lag_are_reported_per_peer(db: TestDb) {
        let peer = peer_id(&db, "ml-peer");
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![PeerConfig::both(peer.clone())];
        let region = Region::start(&settings).await;
        let text = scrape(&region).await;
        let push_lag = format!("regionsync_sync_push_lag_seconds{{peer=\"{peer}\",resource=\"customers\"}}");
        let pull_lag = format!("regionsync_sync_pull_lag_seconds{{peer=\"{peer}\",resource=\"customers\"}}");
        assert_eq!(sample(&text, &push_lag), Some(0.0), "nothing owed: {text}");
        assert_eq!(sample(&text, &pull_lag), None, "nothing applied from it: {text}");
        // A peer of the region has its counters listed from the start, at 0.
        for series in ["sent_entries", "sent_bytes", "received_entries", "received_bytes"] {
            let name = format!("regionsync_sync_{series}_total{{peer=\"{peer}\",resource=\"customers\"}}");
            assert_eq!(sample(&text, &name), Some(0.0), "{name}: {text}");
        }
        let applied = format!("regionsync_sync_ops_total{{peer=\"{peer}\",resource=\"orders\",outcome=\"applied\"}}");
        assert_eq!(sample(&text, &applied), Some(0.0), "{text}");

        // A change of ours owed to the peer; a change of the peer's, written 3 s ago.
        let (status, _) = region.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": "c", "email": "x@example.com"})).await;
        assert_eq!(status, 201);
        push(&region, "customers", &peer, vec![op("o1", X, hlc(-3_000), &peer, customer(X, "x", false))]).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let text = scrape(&region).await;
        let owed = sample(&text, &push_lag).unwrap();
        assert!(owed > 0.0 && owed < 60.0, "{owed}: {text}");
        let pulled = sample(&text, &pull_lag).unwrap();
        assert!((3.0..60.0).contains(&pulled), "{pulled}: {text}");
        // Our own changes are no peer's.
        assert!(!text.contains("regionsync_sync_pull_lag_seconds{peer=\"eu-west\""), "{text}");
        region.stop().await;
    }

    async fn entries_and_bytes_sent_are_counted_per_peer(db: TestDb) {
        let (a_id, b_id) = (peer_id(&db, "ms-a"), peer_id(&db, "ms-b"));
        let db_b = TestDb::new(db.backend());
        let b = Region::start(&settings_for(&db_b, &b_id)).await;
        let mut settings = settings_for(&db, &a_id);
        settings.sync.peers = vec![PeerConfig::both(b_id.clone())];
        let a = Region::start(&settings).await;
        register_region(&db, &b_id, &b.base).await;
        for i in 0..2 {
            let (status, _) = a.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": format!("c{i}"), "email": "x@example.com"})).await;
            assert_eq!(status, 201);
        }
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let dispatch = wiring.dispatch_action(&pool, &settings).unwrap();
        let summary = ship::parents::Action::run(&dispatch, "w".into()).await.unwrap();
        assert_eq!(summary.delivered, 2, "{summary:?}");

        let text = scrape(&a).await;
        let series = |name: &str, peer: &str| {
            sample(&text, &format!("regionsync_sync_{name}_total{{peer=\"{peer}\",resource=\"customers\"}}"))
        };
        assert_eq!(series("sent_entries", &b_id), Some(2.0), "{text}");
        // B took them: received from A, applied.
        assert_eq!(series("received_entries", &a_id), Some(2.0), "{text}");
        let (sent, received) = (series("sent_bytes", &b_id).unwrap(), series("received_bytes", &a_id).unwrap());
        assert!(received > 0.0 && sent > received, "the body is the ops and its envelope: {sent} > {received}");
        assert_eq!(
            sample(&text, &format!("regionsync_sync_ops_total{{peer=\"{a_id}\",resource=\"customers\",outcome=\"applied\"}}")),
            Some(2.0),
            "{text}"
        );
        a.stop().await;
        b.stop().await;
    }
}

/// Every `regionsync_…` name in `text`.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("regionsync_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// The families `/metrics` lists, by type (`# TYPE name type`).
fn families(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(name, kind)| (name.to_string(), kind.to_string()))
        .collect()
}

/// Whether a series named `name` is one `/metrics` serves, given its families: a gauge by its
/// name, a counter's samples with `_total`, a histogram's with `_bucket`, `_count`, `_sum`
/// (or the histogram's name itself, as a description may say).
fn served(name: &str, families: &std::collections::BTreeMap<String, String>) -> bool {
    let is = |family: &str, kind: &str| families.get(family).is_some_and(|k| k == kind);
    if is(name, "gauge") || is(name, "histogram") {
        return true;
    }
    if let Some(family) = name.strip_suffix("_total") {
        return is(family, "counter");
    }
    ["_bucket", "_count", "_sum"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|family| is(family, "histogram"))
    })
}

#[test]
fn served_reads_the_families_by_type() {
    let text = "# TYPE a_g gauge\n# TYPE a_c counter\n# TYPE a_h histogram\n# EOF\n";
    let f = families(text);
    for yes in [
        "a_g",
        "a_c_total",
        "a_h",
        "a_h_bucket",
        "a_h_count",
        "a_h_sum",
    ] {
        assert!(served(yes, &f), "{yes}");
    }
    for no in [
        "a_c",
        "a_g_total",
        "a_h_total",
        "a_g_bucket",
        "a_x",
        "a_c_count",
    ] {
        assert!(!served(no, &f), "{no}");
    }
    assert_eq!(
        metric_names("rate(regionsync_sync_ops_total{x=\"regionsync_\"}[5m]) regionsync_a_b"),
        ["regionsync_", "regionsync_a_b", "regionsync_sync_ops_total"]
            .map(String::from)
            .into()
    );
}

/// docs/grafana-dashboard.json is a Grafana dashboard built only from names `/metrics` serves:
/// a region with something in every series the dashboard reads (owed changes, a peer's changes
/// applied, a conflict, a parked op, a refusal, an alert firing) lists each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_uses_only_names_metrics_serves() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/grafana-dashboard.json"
    );
    let raw = std::fs::read_to_string(path).unwrap();
    let dashboard: Value = serde_json::from_str(&raw).unwrap();
    assert!(
        dashboard["schemaVersion"].as_u64().unwrap() >= 36,
        "a current Grafana schema"
    );
    assert!(!dashboard["panels"].as_array().unwrap().is_empty());
    let exprs: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    assert!(
        raw.contains("${DS_PROMETHEUS}"),
        "panels read the Prometheus data source variable"
    );
    // Every name anywhere in the file (expressions, variables, descriptions).
    let names = metric_names(&raw);
    assert!(names.len() >= 10, "{names:?}");

    let db = TestDb::sqlite();
    let peer = "dash-peer";
    let mut settings = settings_for(&db, "eu-west");
    settings.sync.peers = vec![PeerConfig::both(peer)];
    let region = Region::start(&settings).await;
    let (status, _) = region
        .post(
            "/api/v1/customers",
            &json!({"tenant_id": "t1", "name": "c", "email": "x@example.com"}),
        )
        .await;
    assert_eq!(status, 201);
    push(
        &region,
        "customers",
        peer,
        vec![op("o1", X, hlc(-1_000), peer, customer(X, "new", false))],
    )
    .await;
    push(
        &region,
        "customers",
        "dash-other",
        vec![op(
            "o2",
            X,
            hlc(-2_000),
            "dash-other",
            customer(X, "old", false),
        )],
    )
    .await;
    push(
        &region,
        "orders",
        peer,
        vec![op(
            "o3",
            W,
            hlc(-1_000),
            peer,
            order(W, "01939d2e-0000-7000-8000-0000000000f8", "pending", false),
        )],
    )
    .await;
    let (status, _) = region.get("/api/v1/customers/not-an-id").await;
    assert!((400..500).contains(&status), "{status}");
    // The peer reads our feed with its clock on the request (ADR 0016): a feed
    // acknowledgment and a (one-way) measurement of its clock, written in the background.
    let res = region
        .client
        .get(region.url(&format!("/sync/customers/changes?exclude_origin={peer}")))
        .bearer_auth(region.token_from(peer))
        .header(
            sync::peer_clock::CLOCK_HEADER,
            ship::contracts::system_time_ms().to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let measured = "SELECT COUNT(*) FROM sync_peer_clocks WHERE peer = 'dash-peer'";
    for _ in 0..100 {
        if common::count(&mut db.pool.get().unwrap(), measured) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    diesel::connection::SimpleConnection::batch_execute(
        &mut *db.pool.get().unwrap(),
        "INSERT INTO sync_alerts (kind, subject, state, message, value, fired_at) \
         VALUES ('push_lag', 'dash-peer', 'firing', 'test', 1, '2026-01-01 00:00:00')",
    )
    .unwrap();

    let text = scrape(&region).await;
    let families = families(&text);
    let missing: Vec<&String> = names.iter().filter(|n| !served(n, &families)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard names what /metrics does not serve: {missing:?}\n{text}"
    );
    region.stop().await;
}
