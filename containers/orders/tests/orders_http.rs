//! The orders REST API through the real server, on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{app, insert_customer, live_customer, raw_rows_of, FakeRecorder};
use serde_json::{json, Value};
use ship::testing::TestApp;

const BASE: &str = "/api/v1/orders";

fn body_of(customer_id: &str) -> Value {
    json!({
        "tenant_id": "acme",
        "customer_id": customer_id,
        "number": "SO-1",
        "currency": "EUR",
        "lines": [{"sku": "TEA", "quantity": 3, "unit_price_minor": 450}],
    })
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        },
    )
}

async fn post(app: &TestApp, body: Value) -> (u16, Value) {
    send(app, reqwest::Method::POST, BASE, Some(body)).await
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    send(app, reqwest::Method::GET, path, None).await
}

async fn patch(app: &TestApp, id: &str, body: Value) -> (u16, Value) {
    send(
        app,
        reqwest::Method::PATCH,
        &format!("{BASE}/{id}"),
        Some(body),
    )
    .await
}

fn field_codes(body: &Value) -> Vec<(String, String)> {
    assert_eq!(body["error"], "validation_failed", "{body}");
    body["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert!(f["message"].is_string(), "{f}");
            (
                f["field"].as_str().unwrap().to_string(),
                f["code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(f, c)| (f.to_string(), c.to_string()))
        .collect()
}

ship::backend_tests! {
    async fn create_get_patch_delete(db: TestDb) {
        let recorder = FakeRecorder::new();
        let app = app(&db.pool, recorder.clone()).await;
        let customer = live_customer(&db.pool, "acme");

        let res = app.client.post(app.url(BASE)).json(&body_of(&customer)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 201);
        let location = res.headers()["location"].to_str().unwrap().to_string();
        let etag = res.headers()["etag"].to_str().unwrap().to_string();
        let created: Value = res.json().await.unwrap();
        let id = created["id"].as_str().unwrap().to_string();
        assert_eq!(location, format!("{BASE}/{id}"));
        let keys: Vec<&str> = created.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = vec!["id", "tenant_id", "customer_id", "number", "status", "currency", "lines", "total_minor", "created_at", "updated_at", "deleted_at", "version", "customer_state"];
        expected.sort_unstable();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, expected);
        assert_eq!((created["status"].as_str(), created["total_minor"].as_i64()), (Some("pending"), Some(1_350)));
        assert_eq!((created["customer_state"].as_str(), created["deleted_at"].clone()), (Some("live"), Value::Null));
        assert_eq!(format!("\"{}\"", created["version"].as_str().unwrap()), etag, "version is the ETag unquoted");
        let ts = created["created_at"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == "2026-11-25T15:00:00.123456Z".len(), "{ts}");

        assert_eq!(get(&app, &location).await, (200, created.clone()));

        let (status, patched) = patch(&app, &id, json!({"lines": [{"sku": "TEA", "quantity": 4, "unit_price_minor": 450}, {"sku": "POT", "quantity": 1, "unit_price_minor": 2_500}], "number": "SO-2"})).await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!((patched["total_minor"].as_i64(), patched["number"].as_str()), (Some(4_300), Some("SO-2")));
        assert!(patched["version"].as_str().unwrap() > created["version"].as_str().unwrap());
        let (status, confirmed) = patch(&app, &id, json!({"status": "confirmed"})).await;
        assert_eq!((status, confirmed["status"].as_str()), (200, Some("confirmed")));
        assert_eq!(get(&app, &location).await, (200, confirmed));

        let res = app.client.delete(app.url(&location)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 204);
        assert!(res.headers().contains_key("etag"));
        assert_eq!(res.text().await.unwrap(), "");
        for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
            let (status, body) = send(&app, method, &location, None).await;
            assert_eq!((status, body["error"].as_str()), (404, Some("order_not_found")));
        }
        let (status, body) = patch(&app, &id, json!({"status": "shipped"})).await;
        assert_eq!((status, body["error"].as_str()), (404, Some("order_not_found")));

        assert_eq!(raw_rows_of(&db.pool).len(), 1, "the tombstone stays");
        let kinds: Vec<_> = recorder.changes().iter().map(|c| c.kind.as_str()).collect();
        assert_eq!(kinds, ["upsert", "upsert", "upsert", "delete"]);
        app.stop().await;
    }

    async fn bad_bodies_are_422_with_field_details(db: TestDb) {
        let app = app(&db.pool, FakeRecorder::new()).await;
        let (status, body) = post(&app, json!({
            "tenant_id": "",
            "customer_id": "NOT-A-UUID",
            "number": 5,
            "currency": "euro",
            "lines": [
                {"sku": "A", "quantity": 1.5, "unit_price_minor": 1},
                "x",
                {"sku": "B", "quantity": 1, "unit_price_minor": -1, "discount": 3},
                {"quantity": 18446744073709551615u64, "unit_price_minor": 1},
            ],
            "status": "confirmed",
            "total_minor": 1,
        })).await;
        assert_eq!(status, 422);
        assert_eq!(field_codes(&body), pairs(&[
            ("total_minor", "unknown_field"),
            ("tenant_id", "blank"),
            ("customer_id", "invalid_uuid"),
            ("number", "invalid_type"),
            ("currency", "invalid_currency"),
            ("lines[0].quantity", "invalid_type"),
            ("lines[1]", "invalid_type"),
            ("lines[2].discount", "unknown_field"),
            ("lines[2].unit_price_minor", "out_of_range"),
            ("lines[3].sku", "required"),
            ("lines[3].quantity", "out_of_range"),
        ]), "{body}");
        // A status other than pending is refused once the rest is valid: orders start pending.
        let customer = live_customer(&db.pool, "acme");
        let mut confirmed = body_of(&customer);
        confirmed["status"] = json!("confirmed");
        let (status, body) = post(&app, confirmed).await;
        assert_eq!((status, field_codes(&body)), (422, pairs(&[("status", "invalid_value")])));
        for (lines, expected) in [
            (json!([]), ("lines", "blank")),
            (json!({"sku": "A"}), ("lines", "invalid_type")),
            (Value::Array(vec![json!({"sku": "A", "quantity": 1, "unit_price_minor": 1}); 101]), ("lines", "too_long")),
            (json!([{"sku": "A", "quantity": 1_000_000, "unit_price_minor": 1_000_000_000_000i64}]), ("lines", "total_too_large")),
            (json!([{"sku": "x".repeat(65), "quantity": 1, "unit_price_minor": 1}]), ("lines[0].sku", "too_long")),
        ] {
            let mut b = body_of(&customer);
            b["lines"] = lines;
            let (status, body) = post(&app, b).await;
            assert_eq!((status, field_codes(&body)), (422, pairs(&[expected])));
        }
        let (status, body) = post(&app, json!({})).await;
        assert_eq!((status, field_codes(&body)), (422, pairs(&[
            ("tenant_id", "required"), ("customer_id", "required"), ("number", "required"),
            ("currency", "required"), ("lines", "required"),
        ])));
        let (status, body) = post(&app, json!(["not", "an", "object"])).await;
        assert_eq!((status, field_codes(&body)), (422, pairs(&[("body", "invalid_type")])));

        // The customer: unknown, deleted, or another tenant's (told apart from unknown never).
        let deleted = uuid::Uuid::now_v7().to_string();
        insert_customer(&db.pool, &deleted, "acme", true);
        let foreign = live_customer(&db.pool, "other");
        for (customer, code) in [(uuid::Uuid::now_v7().to_string(), "unknown_customer"), (deleted, "deleted_customer"), (foreign, "unknown_customer")] {
            let (status, body) = post(&app, body_of(&customer)).await;
            assert_eq!((status, field_codes(&body)), (422, pairs(&[("customer_id", code)])));
        }

        let (_, created) = post(&app, body_of(&customer)).await;
        let id = created["id"].as_str().unwrap();
        for (patch_body, expected) in [
            (json!({}), vec![("body", "no_changes")]),
            (json!({"tenant_id": "other", "customer_id": customer, "currency": "USD"}), vec![("currency", "unknown_field"), ("customer_id", "unknown_field"), ("tenant_id", "unknown_field")]),
            (json!({"total_minor": 5, "status": "lost"}), vec![("total_minor", "unknown_field"), ("status", "invalid_value")]),
            (json!({"number": null, "lines": []}), vec![("number", "invalid_type"), ("lines", "blank")]),
        ] {
            let (status, body) = patch(&app, id, patch_body).await;
            assert_eq!((status, field_codes(&body)), (422, pairs(&expected)));
        }
        assert_eq!(raw_rows_of(&db.pool).len(), 1, "only the valid create wrote");
        app.stop().await;
    }

    async fn conflicts_are_409(db: TestDb) {
        let app = app(&db.pool, FakeRecorder::new()).await;
        let customer = live_customer(&db.pool, "acme");
        let (_, created) = post(&app, body_of(&customer)).await;
        let id = created["id"].as_str().unwrap();
        let (status, body) = patch(&app, id, json!({"status": "delivered"})).await;
        assert_eq!((status, body["error"].as_str()), (409, Some("invalid_status_transition")), "{body}");
        assert_eq!(body["details"], json!({"from": "pending", "to": "delivered"}));
        assert_eq!(patch(&app, id, json!({"status": "confirmed"})).await.0, 200);
        let (status, body) = patch(&app, id, json!({"number": "SO-9"})).await;
        assert_eq!((status, body["error"].as_str()), (409, Some("order_not_editable")), "{body}");
        assert_eq!(body["details"], json!({"status": "confirmed"}));
        let (status, body) = patch(&app, id, json!({"lines": [{"sku": "TEA", "quantity": 3, "unit_price_minor": 450}], "status": "confirmed"})).await;
        assert_eq!(status, 200, "the lines it has and the status it has: no change, no conflict: {body}");
        assert_eq!(body["version"], get(&app, &format!("{BASE}/{id}")).await.1["version"]);
        app.stop().await;
    }

    async fn malformed_json_unknown_ids_and_wrong_methods_are_envelopes(db: TestDb) {
        let app = app(&db.pool, FakeRecorder::new()).await;
        let res = app.client.post(app.url(BASE)).header("content-type", "application/json").body("{\"tenant_id\": ").send().await.unwrap();
        assert_eq!(res.status().as_u16(), 400);
        assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_json");
        for id in [uuid::Uuid::now_v7().to_string(), "not-a-uuid".to_string()] {
            let (status, body) = get(&app, &format!("{BASE}/{id}")).await;
            assert_eq!((status, body["error"].as_str()), (404, Some("order_not_found")));
            assert!(body["message"].as_str().unwrap().contains(&id));
        }
        let (status, body) = send(&app, reqwest::Method::PUT, BASE, None).await;
        assert_eq!((status, body["error"].as_str()), (405, Some("method_not_allowed")));
        assert!(raw_rows_of(&db.pool).is_empty());
        app.stop().await;
    }

    async fn list_pages_by_id_filters_by_customer_and_shows_customer_state(db: TestDb) {
        let app = app(&db.pool, FakeRecorder::new()).await;
        let ada = live_customer(&db.pool, "acme");
        let bob = live_customer(&db.pool, "acme");
        let mut ids = Vec::new();
        for i in 0..7 {
            let (status, body) = post(&app, body_of(if i < 4 { &ada } else { &bob })).await;
            assert_eq!(status, 201, "{body}");
            ids.push(body["id"].as_str().unwrap().to_string());
        }
        post(&app, json!({"tenant_id": "other", "customer_id": live_customer(&db.pool, "other"), "number": "X", "currency": "USD", "lines": [{"sku": "A", "quantity": 1, "unit_price_minor": 1}]})).await;
        let deleted = ids.remove(0);
        send(&app, reqwest::Method::DELETE, &format!("{BASE}/{deleted}"), None).await;
        diesel::connection::SimpleConnection::batch_execute(&mut db.pool.get().unwrap(), &format!("UPDATE customers SET deleted_at = '2026-12-02 00:00:00' WHERE id = '{bob}'")).unwrap();
        diesel::connection::SimpleConnection::batch_execute(&mut db.pool.get().unwrap(), &format!("DELETE FROM customers WHERE id = '{ada}'")).unwrap();
        ids.sort();

        let (status, body) = get(&app, &format!("{BASE}?tenant_id=acme")).await;
        assert_eq!(status, 200);
        let all: Vec<&str> = body["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
        assert_eq!(all, ids, "default limit covers everything, tombstone and other tenant excluded");
        assert_eq!(body["next_after"], Value::Null);
        for item in body["items"].as_array().unwrap() {
            let expected = if item["customer_id"] == ada.as_str() { "missing" } else { "deleted" };
            assert_eq!(item["customer_state"], expected, "{item}");
            let (_, one) = get(&app, &format!("{BASE}/{}", item["id"].as_str().unwrap())).await;
            assert_eq!(&one, item, "an item is what a GET answers");
        }

        let mut seen = Vec::new();
        let mut query = format!("{BASE}?tenant_id=acme&limit=4");
        loop {
            let (status, body) = get(&app, &query).await;
            assert_eq!(status, 200, "{body}");
            seen.extend(body["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_string()));
            match body["next_after"].as_str() {
                Some(next) => query = format!("{BASE}?tenant_id=acme&limit=4&after={next}"),
                None => break,
            }
        }
        assert_eq!(seen, ids);

        let (status, body) = get(&app, &format!("{BASE}?tenant_id=acme&customer_id={}", bob.to_uppercase())).await;
        assert_eq!(status, 200, "{body}");
        let bobs: Vec<&str> = body["items"].as_array().unwrap().iter().map(|o| o["customer_id"].as_str().unwrap()).collect();
        assert_eq!(bobs, vec![bob.as_str(); 3]);
        app.stop().await;
    }

    async fn list_answers_bad_queries_as_the_protocol_table_says(db: TestDb) {
        let app = app(&db.pool, FakeRecorder::new()).await;
        let long = "z".repeat(5000);
        let cases: Vec<(String, u16, &str, Option<&str>)> = vec![
            ("?tenant_id=acme&limti=5".into(), 400, "invalid_query", None),
            ("?tenant_id=acme&limit=abc".into(), 400, "invalid_query", Some("limit")),
            ("?tenant_id=acme&limit=0".into(), 400, "invalid_limit", Some("limit")),
            ("?tenant_id=acme&limit=501".into(), 400, "invalid_limit", Some("limit")),
            ("?tenant_id=acme&after=not-a-uuid".into(), 400, "invalid_query", Some("after")),
            (format!("?tenant_id=acme&after={long}"), 400, "invalid_query", Some("after")),
            ("?tenant_id=acme&customer_id=42".into(), 400, "invalid_query", Some("customer_id")),
            ("?limit=abc".into(), 400, "invalid_query", Some("limit")),
            ("?tenant_id=acme&limit=1&limit=2".into(), 400, "invalid_query", None),
            ("".into(), 422, "validation_failed", None),
            ("?tenant_id=%20".into(), 422, "validation_failed", None),
        ];
        for (query, status, code, parameter) in cases {
            let (got, body) = get(&app, &format!("{BASE}{query}")).await;
            let shown = &query[..query.len().min(80)];
            assert_eq!((got, body["error"].as_str()), (status, Some(code)), "{shown}: {body}");
            let message = body["message"].as_str().unwrap();
            assert!(message.len() < 400, "{shown}: the message echoes at most a prefix");
            if let Some(parameter) = parameter {
                assert!(message.contains(parameter), "{shown}: {message}");
                assert_eq!(body["details"]["parameter"], parameter, "{shown}: {body}");
            }
        }
        for query in ["?tenant_id=acme&limit=500", "?tenant_id=acme&limit=&after=&customer_id="] {
            let (status, body) = get(&app, &format!("{BASE}{query}")).await;
            assert_eq!((status, body["items"].as_array().map(Vec::len)), (200, Some(0)), "{query}: {body}");
        }
        app.stop().await;
    }
}
