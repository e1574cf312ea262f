//! The HTTP plumbing: every failure answers with the JSON envelope and a 4xx/5xx status, every
//! response carries a request id, and readiness reflects the database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use ship::config::HttpSettings;
use ship::db::{migrations, Backend};
use ship::errors::{ApiError, HttpError, StatusCode};
use ship::testing::{spawn_app, spawn_app_with, TestApp, TestDb};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Probe {
    name: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Page {
    limit: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("name is taken")]
struct Taken;

impl ApiError for Taken {
    fn status(&self) -> StatusCode {
        StatusCode::CONFLICT
    }
    fn code(&self) -> &'static str {
        "name_taken"
    }
    fn details(&self) -> Option<Value> {
        Some(json!({"field": "name"}))
    }
}

/// Routes that exist only in this test, to exercise each extractor. Routes are registered as
/// `web::resource(..).route(..)`, as the containers do, so a wrong method is a 405 (actix's
/// `cfg.route(path, web::post())` would turn it into a 404).
fn probe_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/probe/json").route(web::post().to(
        |body: web::Json<Probe>| async move { HttpResponse::Ok().json(json!({"name": body.name})) },
    )))
    .service(
        web::resource("/probe/guarded")
            .wrap(actix_web::middleware::from_fn(
                |req: actix_web::dev::ServiceRequest,
                 _next: actix_web::middleware::Next<actix_web::body::BoxBody>| async move {
                    // Refuses as ship's token check does: an answer, before the body is read.
                    Ok::<_, actix_web::Error>(req.error_response(HttpError::new(
                        StatusCode::UNAUTHORIZED,
                        "token_missing",
                        "no token",
                    )))
                },
            ))
            .route(web::post().to(|| async { HttpResponse::Ok().finish() })),
    )
    .service(web::resource("/probe/typed").route(web::post().to(
        |body: ship::http::Json<Probe>| async move {
            HttpResponse::Ok().json(json!({"name": body.name}))
        },
    )))
    .route(
        "/probe/query",
        web::get().to(|q: web::Query<Page>| async move {
            HttpResponse::Ok().json(json!({"limit": q.limit}))
        }),
    )
    .route(
        "/probe/path/{n}",
        web::get().to(|n: web::Path<u32>| async move { HttpResponse::Ok().json(json!({"n": *n})) }),
    )
    .route(
        "/probe/conflict",
        web::post().to(|| async { Err::<HttpResponse, HttpError>(Taken.into()) }),
    );
}

async fn probe_app(db: &TestDb) -> TestApp {
    let settings = HttpSettings {
        max_body_bytes: 1024,
        ..HttpSettings::default()
    };
    spawn_app_with(db.pool.clone(), settings, Arc::new(probe_routes)).await
}

/// Assert the response is the envelope with `status` and `code`; return the body.
async fn expect_envelope(res: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status().as_u16(), status, "status for {code}");
    assert!(
        res.headers().contains_key("x-request-id"),
        "request id header"
    );
    let content_type = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body.as_object().unwrap().contains_key("details"), "{body}");
    body
}

#[tokio::test]
async fn malformed_requests_get_the_envelope() {
    let db = TestDb::sqlite();
    let app = probe_app(&db).await;
    let c = &app.client;

    let ok = c
        .post(app.url("/probe/json"))
        .json(&json!({"name": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "the probe itself works");

    let res = c.get(app.url("/no/such/route")).send().await.unwrap();
    expect_envelope(res, 404, "not_found").await;

    let res = c.delete(app.url("/health/live")).send().await.unwrap();
    assert_eq!(res.headers()["allow"], "GET");
    expect_envelope(res, 405, "method_not_allowed").await;

    let res = c
        .put(app.url("/probe/json"))
        .json(&json!({"name": "a"}))
        .send()
        .await
        .unwrap();
    expect_envelope(res, 405, "method_not_allowed").await;

    let bad_json = c
        .post(app.url("/probe/json"))
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    expect_envelope(bad_json, 400, "invalid_json").await;

    for wrong_shape in [
        json!({"name": 5}),
        json!({}),
        json!({"name": "a", "extra": 1}),
        json!([1]),
    ] {
        let res = c
            .post(app.url("/probe/json"))
            .json(&wrong_shape)
            .send()
            .await
            .unwrap();
        expect_envelope(res, 422, "invalid_body").await;
    }

    let res = c
        .post(app.url("/probe/json"))
        .body("{\"name\": \"a\"}")
        .send()
        .await
        .unwrap();
    expect_envelope(res, 415, "unsupported_media_type").await;

    let big = json!({"name": "x".repeat(2048)});
    let res = c
        .post(app.url("/probe/json"))
        .json(&big)
        .send()
        .await
        .unwrap();
    expect_envelope(res, 413, "payload_too_large").await;

    let res = c
        .get(app.url("/probe/query?limit=many"))
        .send()
        .await
        .unwrap();
    expect_envelope(res, 400, "invalid_query").await;
    let res = c.get(app.url("/probe/query")).send().await.unwrap();
    expect_envelope(res, 400, "invalid_query").await;

    let res = c
        .get(app.url("/probe/path/minus-one"))
        .send()
        .await
        .unwrap();
    expect_envelope(res, 400, "invalid_path").await;

    let res = c.post(app.url("/probe/conflict")).send().await.unwrap();
    let body = expect_envelope(res, 409, "name_taken").await;
    assert_eq!(body["details"], json!({"field": "name"}));
    assert_eq!(body["message"], "name is taken");

    app.stop().await;
}

/// A chunked body has no Content-Length, so the limit is only found while reading it.
#[tokio::test]
async fn an_oversized_chunked_body_is_refused_with_the_envelope() {
    let db = TestDb::sqlite();
    let app = probe_app(&db).await;
    let addr = app.address.trim_start_matches("http://").to_string();
    let raw = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let chunk = format!("{{\"name\": \"{}\"}}", "y".repeat(4000));
        let request = format!(
            "POST /probe/json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
            chunk.len()
        );
        // The server may answer and close before it has read everything.
        let _ = stream.write_all(request.as_bytes());
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response
    })
    .await
    .unwrap();
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.contains("\"error\":\"payload_too_large\""), "{raw}");
    app.stop().await;
}

#[tokio::test]
async fn readiness_reports_pending_migrations_then_ready() {
    let db = TestDb::unmigrated(Backend::Sqlite);
    let app = spawn_app(db.pool.clone(), Arc::new(|_| {})).await;

    let live = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);

    let res = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    let body = expect_envelope(res, 503, "migrations_pending").await;
    assert!(
        !body["details"]["pending"].as_array().unwrap().is_empty(),
        "{body}"
    );

    migrations::run_pending(&mut db.pool.get().unwrap()).unwrap();
    let res = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    app.stop().await;
}

ship::backend_tests! {
    async fn ready_on_a_migrated_database(db: TestDb) {
        let app = spawn_app(db.pool.clone(), Arc::new(|_| {})).await;
        let res = app.client.get(app.url("/health/ready")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["backend"], db.backend().name());
        assert_eq!(body["migrations"], "current");
        app.stop().await;
    }
}

/// A probe app with the given body deadlines and a 4 MiB body limit.
async fn app_with(db: &TestDb, idle: u64, total: u64) -> TestApp {
    let settings = HttpSettings {
        max_body_bytes: 4 << 20,
        body_idle_timeout_secs: idle,
        body_timeout_secs: total,
        ..HttpSettings::default()
    };
    spawn_app_with(db.pool.clone(), settings, Arc::new(probe_routes)).await
}

/// Send `head`, then each of `pieces` after `pause`; read until the server closes (bounded by
/// a 20 s read timeout, so a server that never answers fails the test instead of hanging it).
async fn raw_exchange(
    app: &TestApp,
    head: &'static str,
    pieces: Vec<&'static str>,
    pause: std::time::Duration,
) -> String {
    let addr = app.address.trim_start_matches("http://").to_string();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        for piece in pieces {
            std::thread::sleep(pause);
            if stream.write_all(piece.as_bytes()).is_err() {
                break;
            }
        }
        let mut response = Vec::new();
        let read = stream.read_to_end(&mut response);
        let text = String::from_utf8_lossy(&response).into_owned();
        assert!(
            read.is_ok(),
            "the server neither answered nor closed: {read:?} {text}"
        );
        text
    })
    .await
    .unwrap()
}

ship::backend_tests! {
/// Issue 12: a body announced and never sent, a chunked body that never ends, and a body
/// dripped a byte at a time are answered 408 in the envelope and the connection is closed —
/// before, all three held the connection open past 90 s.
async fn a_stalled_or_dripped_body_is_answered_408_and_the_connection_closed(db: TestDb) {
    let app = app_with(&db, 1, 3).await;
    let never_sent = "POST /probe/json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                      Content-Length: 100\r\n\r\n{\"na";
    let never_ends = "POST /probe/typed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                      Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n";
    let dripped = "POST /probe/json HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                   Content-Length: 40\r\n\r\n";
    let no_pause = std::time::Duration::ZERO;
    let drip = vec!["{"; 40];
    // A middleware's refusal before the body is read (the token check on /sync/*): answered at
    // once, with its request id, and the never-ending body is not drained.
    let refused = raw_exchange(
        &app,
        "POST /probe/guarded HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n",
        vec![],
        no_pause,
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(refused.contains("\"error\":\"token_missing\""), "{refused}");
    assert!(refused.contains("x-request-id: "), "{refused}");
    // It says the connection closes: a keep-alive client must not send its next request on it
    // (regression: such a request got no answer at all, `IncompleteMessage`).
    assert!(
        refused.to_ascii_lowercase().contains("connection: close"),
        "{refused}"
    );
    for (what, raw) in [
        (
            "announced, never sent",
            raw_exchange(&app, never_sent, vec![], no_pause).await,
        ),
        (
            "chunked, never ends",
            raw_exchange(&app, never_ends, vec![], no_pause).await,
        ),
        (
            "a byte every 400 ms (never idle for 1 s, over 3 s in all)",
            raw_exchange(&app, dripped, drip, std::time::Duration::from_millis(400)).await,
        ),
    ] {
        assert!(raw.starts_with("HTTP/1.1 408"), "{what}: {raw}");
        assert!(
            raw.contains("\"error\":\"request_timeout\""),
            "{what}: {raw}"
        );
        assert!(
            raw.to_ascii_lowercase().contains("connection: close"),
            "{what}: {raw}"
        );
    }
    // A body that arrives in time is served as before.
    let res = app
        .client
        .post(app.url("/probe/typed"))
        .json(&json!({"name": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.stop().await;
}

/// Issue 12: a megabyte of client text is echoed as a short prefix: the answer to a 1 MiB
/// unknown key was 1–3 MB; every 4xx is counted in /metrics instead of logged at WARN.
async fn answers_echo_a_bounded_prefix_and_refusals_are_counted(db: TestDb) {
    let app = app_with(&db, 5, 30).await;
    let key = "k".repeat(1 << 20);
    for path in ["/probe/json", "/probe/typed"] {
        let mut body = serde_json::Map::new();
        body.insert("name".into(), json!("a"));
        body.insert(key.clone(), json!(1));
        let res = app
            .client
            .post(app.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let text = res.text().await.unwrap();
        assert!(text.len() < 2048, "{path}: {} bytes", text.len());
        let envelope: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(envelope["error"], "invalid_body", "{path}");
        assert!(
            envelope["message"]
                .as_str()
                .unwrap()
                .contains("(cut, 1048576 bytes)"),
            "{path}: {envelope}"
        );
    }
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("regionsync_http_refusals{")
                && l.contains("code=\"invalid_body\"")
                && l.contains("status=\"422\"")
        })
        .unwrap_or_else(|| panic!("no refusal count: {metrics}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 2.0, "{line}");
    app.stop().await;
}

/// Issue 12: the documented rule — JSON first (nesting deeper than 128 is `invalid_json`),
/// then shape (`invalid_body`) — whatever the top level is. `web::Json<T>` answered a deep
/// top-level array `invalid_body`, and took an array of the right length as the struct.
async fn typed_bodies_are_json_first_then_an_object_of_the_right_shape(db: TestDb) {
    let app = app_with(&db, 5, 30).await;
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let deep_in_object = format!("{{\"name\": {}{}}}", "[".repeat(200), "]".repeat(200));
    for (body, status, code) in [
        (deep.as_str(), 400, "invalid_json"),
        (deep_in_object.as_str(), 400, "invalid_json"),
        ("[\"positional\"]", 422, "invalid_body"),
        ("[]", 422, "invalid_body"),
        ("\"a string\"", 422, "invalid_body"),
        ("{\"name\": 1}", 422, "invalid_body"),
        ("{\"name\": ", 400, "invalid_json"),
    ] {
        let res = app
            .client
            .post(app.url("/probe/typed"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        expect_envelope(res, status, code).await;
    }
    app.stop().await;
}
}
