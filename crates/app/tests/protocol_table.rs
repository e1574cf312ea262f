//! docs/PROTOCOL.md's error table is a contract: every (status, code) it lists is answered as
//! listed. Each row is either provoked here against a real region (on each backend), or named
//! with the test that pins it elsewhere (a database outage, a peer that misbehaves, a token of
//! each defect); a row added to the table without either fails this test, and so does a code
//! tested here that the table does not list.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;

use common::{register_region, settings_for, Region};
use serde_json::{json, Value};

/// Rows pinned by another test: (code, the file, the test function that asserts it).
const ELSEWHERE: &[(&str, &str, &str)] = &[
    (
        "unreadable_body",
        "crates/app/tests/compression.rs",
        "a_gzipped_body_that_decodes_past_the_limit_is_a_413_and_applies_nothing",
    ),
    (
        "customer_referenced",
        "crates/app/tests/references.rs",
        "a_customer_that_live_orders_name_cannot_be_deleted_here",
    ),
    (
        "order_not_found",
        "containers/orders/tests/orders_http.rs",
        "create_get_patch_delete",
    ),
    (
        "invalid_status_transition",
        "containers/orders/tests/orders_http.rs",
        "conflicts_are_409",
    ),
    (
        "order_not_editable",
        "containers/orders/tests/orders_http.rs",
        "conflicts_are_409",
    ),
    (
        "database_unavailable",
        "ship/src/errors.rs",
        "server_errors_hide_their_cause",
    ),
    (
        "database_busy",
        "ship/src/errors.rs",
        "transient_database_errors_are_retryable_503s",
    ),
    (
        "internal_error",
        "ship/src/errors.rs",
        "server_errors_hide_their_cause",
    ),
    (
        "migrations_pending",
        "ship/tests/http.rs",
        "readiness_reports_pending_migrations_then_ready",
    ),
    (
        "invalid_path",
        "ship/tests/http.rs",
        "malformed_requests_get_the_envelope",
    ),
    (
        "cursor_expired",
        "containers/sync/tests/changes_feed.rs",
        "malformed_feed_requests_get_the_envelope",
    ),
    (
        "token_expired",
        "crates/app/tests/auth.rs",
        "every_bad_token_is_refused",
    ),
    (
        "token_not_yet_valid",
        "crates/app/tests/auth.rs",
        "every_bad_token_is_refused",
    ),
    (
        "token_wrong_audience",
        "crates/app/tests/auth.rs",
        "every_bad_token_is_refused",
    ),
    (
        "token_scope",
        "crates/app/tests/auth.rs",
        "every_bad_token_is_refused",
    ),
    (
        "region_exists",
        "containers/broker/tests/registry.rs",
        "registering_an_existing_id_is_refused_with_region_exists",
    ),
    (
        "peer_unreachable",
        "containers/sync/src/errors.rs",
        "outbound_failures_answer_the_documented_status_and_code",
    ),
    (
        "peer_refused",
        "containers/sync/src/errors.rs",
        "outbound_failures_answer_the_documented_status_and_code",
    ),
    (
        "peer_auth_refused",
        "containers/sync/src/errors.rs",
        "outbound_failures_answer_the_documented_status_and_code",
    ),
    (
        "peer_cursor_expired",
        "containers/sync/src/errors.rs",
        "outbound_failures_answer_the_documented_status_and_code",
    ),
    (
        "peer_cursor_diverged",
        "containers/sync/src/errors.rs",
        "outbound_failures_answer_the_documented_status_and_code",
    ),
    (
        "bootstrap_first",
        "containers/sync/src/errors.rs",
        "outbound_failures_answer_the_documented_status_and_code",
    ),
    (
        "cursor_diverged",
        "containers/sync/tests/changes_feed.rs",
        "malformed_feed_requests_get_the_envelope",
    ),
    (
        "peer_sent_invalid_ops",
        "containers/sync/src/errors.rs",
        "outbound_failures_answer_the_documented_status_and_code",
    ),
    (
        "broker_unreachable",
        "containers/sync/src/errors.rs",
        "outbound_failures_answer_the_documented_status_and_code",
    ),
    (
        "broker_refused",
        "containers/sync/src/errors.rs",
        "outbound_failures_answer_the_documented_status_and_code",
    ),
    (
        "peer_url_insecure",
        "containers/sync/src/errors.rs",
        "outbound_failures_answer_the_documented_status_and_code",
    ),
    (
        "unknown_peer",
        "containers/sync/src/errors.rs",
        "outbound_failures_answer_the_documented_status_and_code",
    ),
    (
        "bootstrap_loop",
        "containers/sync/src/errors.rs",
        "outbound_failures_answer_the_documented_status_and_code",
    ),
    (
        "peer_conflict_policy_mismatch",
        "containers/sync/src/errors.rs",
        "outbound_failures_answer_the_documented_status_and_code",
    ),
];

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .parent()
        .unwrap()
}

/// (code → status) of every row of the table that opens docs/PROTOCOL.md.
fn documented() -> BTreeMap<String, u16> {
    let text = std::fs::read_to_string(workspace().join("docs/PROTOCOL.md")).unwrap();
    let table = text
        .split("| status | code | when |")
        .nth(1)
        .expect("the error table")
        .split("\n\n")
        .next()
        .unwrap();
    let mut out = BTreeMap::new();
    for row in table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("|---"))
    {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Ok(status) = cells[1].parse::<u16>() else {
            continue;
        };
        for code in cells[2].split('`').skip(1).step_by(2) {
            let before = out.insert(code.to_string(), status);
            assert!(
                before.is_none_or(|s| s == status),
                "`{code}` is listed with two statuses"
            );
        }
    }
    assert!(out.len() > 30, "the table parsed to {out:?}");
    out
}

/// One raw exchange (for what a client library will not send): the answer as text, read until
/// the server closes the connection (within 20 s, or the test fails).
fn raw(base: &str, request: &'static str) -> String {
    let addr = base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let closed = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(
        closed.is_ok(),
        "the server answered but kept the connection open: {closed:?} {text}"
    );
    text
}

#[test]
fn every_documented_row_is_tested_and_every_tested_code_documented() {
    let documented = documented();
    let elsewhere: BTreeSet<&str> = ELSEWHERE.iter().map(|(c, _, _)| *c).collect();
    let here: BTreeSet<&str> = LIVE.iter().copied().collect();
    for (code, file, test) in ELSEWHERE {
        let source = std::fs::read_to_string(workspace().join(file)).unwrap();
        assert!(
            source.contains(&format!("fn {test}")),
            "{file} has no test `{test}` (for {code})"
        );
        assert!(
            source.contains(&format!("\"{code}\"")),
            "{file} never names `{code}`"
        );
    }
    for code in documented.keys() {
        assert!(
            here.contains(code.as_str()) || elsewhere.contains(code.as_str()),
            "PROTOCOL.md documents `{code}` but no test answers it"
        );
    }
    for code in here.iter().chain(elsewhere.iter()) {
        assert!(
            documented.contains_key(*code),
            "`{code}` is tested but not in PROTOCOL.md's table"
        );
    }
}

/// The codes [`the_documented_rows_are_what_a_region_answers`] provokes.
const LIVE: &[&str] = &[
    "invalid_json",
    "invalid_body",
    "payload_too_large",
    "request_timeout",
    "unsupported_media_type",
    "invalid_query",
    "not_found",
    "method_not_allowed",
    "unknown_resource",
    "invalid_cursor",
    "invalid_limit",
    "batch_too_large",
    "invalid_batch",
    "invalid_ops",
    "conflict_policy_mismatch",
    "validation_failed",
    "customer_not_found",
    "token_missing",
    "token_invalid",
    "token_wrong_subject",
    "credential_missing",
    "credential_invalid",
    "unknown_tenant",
    "unknown_region",
    "invalid_request",
];

ship::backend_tests! {
    async fn the_documented_rows_are_what_a_region_answers(db: TestDb) {
        let documented = documented();
        let mut settings = settings_for(&db, "eu-west");
        settings.http.max_body_bytes = 64 * 1024;
        settings.http.body_idle_timeout_secs = 1;
        settings.sync.max_ops_per_batch = 1;
        let region = Region::start(&settings).await;
        let credential = register_region(&db, "us-east", "http://127.0.0.1:9").await;
        let c = &region.client;
        let peer_token = region.token_from("us-east");
        let op = |origin: &str| json!({"op_id": "o", "entity_id": "01939d2e-0000-7000-8000-00000000000a", "kind": "delete",
            "hlc": (ship::contracts::hlc::system_time_ms() as i64) << 16, "origin": origin, "payload": {}});
        let batch = |ops: Vec<Value>| json!({"source_region": "us-east", "batch_id": "b", "schema_version": 1, "ops": ops});
        let ops = region.url("/sync/customers/ops");
        let resolve = region.url("/api/v1/broker/resolve");
        let customers = region.url("/api/v1/customers");

        let requests: Vec<(&str, reqwest::RequestBuilder)> = vec![
            ("invalid_json", c.post(&customers).header("content-type", "application/json").body("{")),
            ("invalid_body", c.post(&ops).bearer_auth(&peer_token).json(&json!({"x": 1}))),
            ("payload_too_large", c.post(&customers).header("content-type", "application/json").body(vec![b' '; 100 * 1024])),
            ("unsupported_media_type", c.post(&customers).header("content-type", "text/plain").body("{}")),
            ("invalid_query", c.get(region.url("/api/v1/customers?tenant_id=t&bogus=1"))),
            ("not_found", c.get(region.url("/no/such/route"))),
            ("method_not_allowed", c.delete(region.url("/health/live"))),
            ("unknown_resource", c.get(region.url("/sync/nope/changes")).bearer_auth(&peer_token)),
            ("invalid_cursor", c.get(region.url("/sync/customers/changes?since=!!!")).bearer_auth(&peer_token)),
            ("invalid_limit", c.get(region.url("/sync/customers/changes?limit=-1")).bearer_auth(&peer_token)),
            ("batch_too_large", c.post(&ops).bearer_auth(&peer_token).json(&batch(vec![op("us-east"), op("us-east")]))),
            ("invalid_batch", c.post(&ops).bearer_auth(&peer_token).json(&batch(vec![]))),
            ("invalid_ops", c.post(&ops).bearer_auth(&peer_token).json(&batch(vec![op("ap-south")]))),
            ("conflict_policy_mismatch", c.post(&ops).bearer_auth(&peer_token).header("regionsync-conflict-policy", "delete_wins").json(&batch(vec![op("us-east")]))),
            ("validation_failed", c.post(&customers).json(&json!({}))),
            ("customer_not_found", c.get(region.url("/api/v1/customers/01939d2e-0000-7000-8000-00000000000a"))),
            ("token_missing", c.get(region.url("/sync/customers/changes"))),
            ("token_invalid", c.get(region.url("/sync/customers/changes")).bearer_auth("x.y.z")),
            ("token_wrong_subject", c.post(&ops).bearer_auth(region.token_from("ap-south")).json(&batch(vec![op("us-east")]))),
            ("credential_missing", c.post(&resolve).json(&json!({}))),
            ("credential_invalid", c.post(&resolve).bearer_auth("rsc_nope").json(&json!({}))),
            ("unknown_tenant", c.post(&resolve).bearer_auth(&credential).json(&json!({"tenant_id": "nope"}))),
            ("unknown_region", c.post(&resolve).bearer_auth(&credential).json(&json!({"target_region": "nope"}))),
            ("invalid_request", c.post(&resolve).bearer_auth(&credential).json(&json!({"tenant_id": "t", "target_region": "us-east"}))),
        ];
        let mut seen = BTreeSet::new();
        for (code, request) in requests {
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            assert_eq!((status, body["error"].as_str().unwrap_or("")), (documented[code], code), "{body}");
            seen.insert(code);
        }
        // A body announced and never sent.
        let base = region.base.clone();
        let answer = tokio::task::spawn_blocking(move || {
            raw(&base, "POST /api/v1/customers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{")
        })
        .await
        .unwrap();
        assert!(answer.starts_with(&format!("HTTP/1.1 {}", documented["request_timeout"])), "{answer}");
        assert!(answer.contains("\"error\":\"request_timeout\""), "{answer}");
        seen.insert("request_timeout");
        // A token refusal before the body is read: answered at once with its request id, and a
        // body that never ends is not drained (the connection closes).
        let base = region.base.clone();
        let answer = tokio::task::spawn_blocking(move || {
            raw(&base, "POST /sync/customers/ops HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n")
        })
        .await
        .unwrap();
        assert!(answer.starts_with(&format!("HTTP/1.1 {}", documented["token_missing"])), "{answer}");
        assert!(answer.contains("\"error\":\"token_missing\"") && answer.contains("x-request-id: "), "{answer}");
        assert_eq!(seen, LIVE.iter().copied().collect::<BTreeSet<_>>(), "LIVE lists what this test provokes");
        region.stop().await;
    }
}
