//! The customers REST API through the real server, on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{app, raw_rows_of, FakeRecorder};
use serde_json::{json, Value};
use ship::testing::TestApp;

const BASE: &str = "/api/v1/customers";

async fn create(app: &TestApp, body: Value) -> (u16, Value) {
    post(app, BASE, body).await
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = app
        .client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let res = app.client.get(app.url(path)).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
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

/// `"<hlc>.<origin>"` → (hlc, origin).
fn version(res: &reqwest::Response) -> (i64, String) {
    let tag = res.headers()["etag"]
        .to_str()
        .unwrap()
        .trim_matches('"')
        .to_string();
    let (hlc, origin) = tag.split_once('.').unwrap();
    (hlc.parse().unwrap(), origin.to_string())
}

ship::backend_tests! {
    /// Every single-customer response names the version the last write got; each write's is
    /// higher than the one before, a read repeats it, and the delete's names the tombstone.
    async fn every_write_answers_with_its_version_as_etag(db: TestDb) {
        let app = app(&db.pool, FakeRecorder::new()).await;
        let res = app.client.post(app.url(BASE))
            .json(&json!({"tenant_id": "acme", "name": "Ada", "email": "ada@example.com"}))
            .send().await.unwrap();
        let created = version(&res);
        let id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
        let item = format!("{BASE}/{id}");
        let res = app.client.get(app.url(&item)).send().await.unwrap();
        assert_eq!(version(&res), created, "a read shows the stored version");
        let res = app.client.patch(app.url(&item)).json(&json!({"name": "Ada L."})).send().await.unwrap();
        let patched = version(&res);
        assert!(patched > created, "{patched:?} > {created:?}");
        let res = app.client.delete(app.url(&item)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 204);
        let deleted = version(&res);
        assert!(deleted > patched, "{deleted:?} > {patched:?}");
        let stored: Vec<(i64, String)> = raw_rows_of(&db.pool).iter().map(|r| (r.sync_version, r.sync_origin.clone())).collect();
        assert_eq!(stored, vec![deleted]);
        app.stop().await;
    }

    async fn create_get_patch_delete(db: TestDb) {
        let recorder = FakeRecorder::new();
        let app = app(&db.pool, recorder.clone()).await;

        let res = app
            .client
            .post(app.url(BASE))
            .json(&json!({"tenant_id": "acme", "name": "Zoë Ünïcode 🦀", "email": "zoe@example.com"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201);
        let location = res.headers()["location"].to_str().unwrap().to_string();
        let created: Value = res.json().await.unwrap();
        let id = created["id"].as_str().unwrap().to_string();
        assert_eq!(location, format!("{BASE}/{id}"));
        assert_eq!(created["name"], "Zoë Ünïcode 🦀");
        assert_eq!(created["status"], "active");
        let keys: Vec<_> = created.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys.len(), 7, "{keys:?}");
        let ts = created["created_at"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.len() == "2026-11-25T15:00:00.123456Z".len(), "{ts}");

        assert_eq!(get(&app, &location).await, (200, created.clone()));

        let res = app
            .client
            .patch(app.url(&location))
            .json(&json!({"name": "Zoe", "status": "closed"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let patched: Value = res.json().await.unwrap();
        assert_eq!(patched["name"], "Zoe");
        assert_eq!(patched["status"], "closed");
        assert_eq!(patched["email"], "zoe@example.com");
        assert_eq!(get(&app, &location).await, (200, patched));

        let res = app.client.delete(app.url(&location)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 204);
        assert_eq!(res.text().await.unwrap(), "");
        let (status, body) = get(&app, &location).await;
        assert_eq!((status, body["error"].as_str()), (404, Some("customer_not_found")));
        let res = app.client.delete(app.url(&location)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 404);
        let res = app.client.patch(app.url(&location)).json(&json!({"name": "x"})).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 404);

        assert_eq!(raw_rows_of(&db.pool).len(), 1, "the tombstone stays");
        let kinds: Vec<_> = recorder.changes().iter().map(|c| c.kind.as_str()).collect();
        assert_eq!(kinds, ["upsert", "upsert", "delete"]);
        app.stop().await;
    }

    async fn bad_input_is_a_422_with_field_details(db: TestDb) {
        let app = app(&db.pool, FakeRecorder::new()).await;
        let (status, body) = create(&app, json!({
            "tenant_id": "",
            "name": 5,
            "email": "no-at-sign",
            "status": "gone",
            "admin": true
        }))
        .await;
        assert_eq!(status, 422);
        assert_eq!(field_codes(&body), pairs(&[
            ("admin", "unknown_field"),
            ("tenant_id", "blank"),
            ("name", "invalid_type"),
            ("email", "invalid_email"),
            ("status", "invalid_value"),
        ]));

        let (status, body) = create(&app, json!({"name": "x".repeat(201)})).await;
        assert_eq!(status, 422);
        assert_eq!(field_codes(&body), pairs(&[
            ("tenant_id", "required"),
            ("name", "too_long"),
            ("email", "required"),
        ]));
        let (status, body) = create(&app, json!(["not", "an", "object"])).await;
        assert_eq!(status, 422);
        assert_eq!(field_codes(&body), pairs(&[("body", "invalid_type")]));

        let (_, created) = create(&app, json!({"tenant_id": "t", "name": "n", "email": "a@b"})).await;
        let path = format!("{BASE}/{}", created["id"].as_str().unwrap());
        for (patch, expected) in [
            (json!({}), vec![("body", "no_changes")]),
            (json!({"tenant_id": "other"}), vec![("tenant_id", "unknown_field")]),
            (json!({"email": null}), vec![("email", "invalid_type")]),
        ] {
            let res = app.client.patch(app.url(&path)).json(&patch).send().await.unwrap();
            assert_eq!(res.status().as_u16(), 422);
            assert_eq!(field_codes(&res.json().await.unwrap()), pairs(&expected));
        }

        for (query, expected) in [("", ("tenant_id", "required")), ("?tenant_id=", ("tenant_id", "blank")), ("?tenant_id=%20&limit=5", ("tenant_id", "blank"))] {
            let (status, body) = get(&app, &format!("{BASE}{query}")).await;
            assert_eq!(status, 422, "{query}");
            assert_eq!(field_codes(&body), pairs(&[expected]), "{query}: {body}");
        }
        app.stop().await;
    }

    async fn malformed_json_unknown_ids_and_wrong_methods_are_envelopes(db: TestDb) {
        let app = app(&db.pool, FakeRecorder::new()).await;
        let res = app
            .client
            .post(app.url(BASE))
            .header("content-type", "application/json")
            .body("{\"tenant_id\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 400);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_json");

        for id in [uuid::Uuid::now_v7().to_string(), "not-a-uuid".to_string()] {
            let (status, body) = get(&app, &format!("{BASE}/{id}")).await;
            assert_eq!((status, body["error"].as_str()), (404, Some("customer_not_found")));
            assert!(body["message"].as_str().unwrap().contains(&id));
        }

        let res = app.client.put(app.url(BASE)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 405);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "method_not_allowed");
        assert!(raw_rows_of(&db.pool).is_empty());
        app.stop().await;
    }

    async fn list_paginates_by_id(db: TestDb) {
        let app = app(&db.pool, FakeRecorder::new()).await;
        let mut ids = Vec::new();
        for i in 0..7 {
            let (status, body) = create(&app, json!({"tenant_id": "acme", "name": format!("C{i}"), "email": "a@b"})).await;
            assert_eq!(status, 201);
            ids.push(body["id"].as_str().unwrap().to_string());
        }
        create(&app, json!({"tenant_id": "other", "name": "x", "email": "a@b"})).await;
        let deleted = ids.remove(0);
        app.client.delete(app.url(&format!("{BASE}/{deleted}"))).send().await.unwrap();
        ids.sort();

        let (status, body) = get(&app, &format!("{BASE}?tenant_id=acme")).await;
        assert_eq!(status, 200);
        let all: Vec<_> = body["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
        assert_eq!(all, ids, "default limit covers everything, tombstone excluded");
        assert_eq!(body["next_after"], Value::Null);

        let mut seen = Vec::new();
        let mut query = format!("{BASE}?tenant_id=acme&limit=4");
        loop {
            let (status, body) = get(&app, &query).await;
            assert_eq!(status, 200, "{body}");
            seen.extend(body["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()));
            match body["next_after"].as_str() {
                Some(next) => query = format!("{BASE}?tenant_id=acme&limit=4&after={next}"),
                None => break,
            }
        }
        assert_eq!(seen, ids);
        app.stop().await;
    }

    /// GET /api/v1/customers follows PROTOCOL.md's error table: an unknown parameter, a
    /// `limit` that is not a number and an `after` that is not a customer id are 400
    /// `invalid_query` (naming the parameter); a number outside 1..=500 is 400 `invalid_limit`.
    /// Before, they were 200 (unknown parameter; a bad `after` gave an empty page, ending the
    /// client's paging) and 422 `validation_failed`. None of them changes anything.
    async fn list_answers_bad_queries_as_the_protocol_table_says(db: TestDb) {
        let recorder = FakeRecorder::new();
        let app = app(&db.pool, recorder.clone()).await;
        let (_, created) = create(&app, json!({"tenant_id": "acme", "name": "Ada", "email": "a@b"})).await;
        let id = created["id"].as_str().unwrap().to_string();
        let rows = raw_rows_of(&db.pool);
        let changes = recorder.changes().len();
        let long = "z".repeat(5000);
        let cases: Vec<(String, u16, &str, Option<&str>)> = vec![
            ("?tenant_id=acme&limti=5".into(), 400, "invalid_query", None),
            ("?tenant_id=acme&page=2".into(), 400, "invalid_query", None),
            ("?tenant_id=acme&limit=abc".into(), 400, "invalid_query", Some("limit")),
            ("?tenant_id=acme&limit=1.5".into(), 400, "invalid_query", Some("limit")),
            ("?tenant_id=acme&limit=-1".into(), 400, "invalid_limit", Some("limit")),
            ("?tenant_id=acme&limit=0".into(), 400, "invalid_limit", Some("limit")),
            ("?tenant_id=acme&limit=501".into(), 400, "invalid_limit", Some("limit")),
            ("?tenant_id=acme&limit=1000000000000".into(), 400, "invalid_limit", Some("limit")),
            ("?tenant_id=acme&after=not-a-uuid".into(), 400, "invalid_query", Some("after")),
            (format!("?tenant_id=acme&after={long}"), 400, "invalid_query", Some("after")),
            ("?limit=abc".into(), 400, "invalid_query", Some("limit")),
            ("?tenant_id=acme&limit=1&limit=2".into(), 400, "invalid_query", None),
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
        assert_eq!(raw_rows_of(&db.pool), rows, "nothing changed");
        assert_eq!(recorder.changes().len(), changes, "nothing recorded");
        // The good forms still answer, an upper-case `after` as the canonical id.
        for query in ["?tenant_id=acme&limit=500", "?tenant_id=acme&limit=1&after=", "?tenant_id=acme&limit="] {
            let (status, body) = get(&app, &format!("{BASE}{query}")).await;
            assert_eq!(status, 200, "{query}: {body}");
            assert_eq!(body["items"][0]["id"], id.as_str(), "{query}");
        }
        let before = uuid::Uuid::nil().to_string().to_uppercase();
        let (status, body) = get(&app, &format!("{BASE}?tenant_id=acme&after={before}")).await;
        assert_eq!((status, body["items"].as_array().unwrap().len()), (200, 1), "{body}");
        app.stop().await;
    }

    /// Each list item carries `version`, the same `<hlc>.<origin>` as the ETag of a GET of that
    /// customer (unquoted), and follows its writes.
    async fn list_items_carry_the_version_of_their_etag(db: TestDb) {
        let app = app(&db.pool, FakeRecorder::new()).await;
        let mut ids = Vec::new();
        for name in ["A", "B", "C"] {
            let (_, body) = create(&app, json!({"tenant_id": "acme", "name": name, "email": "a@b"})).await;
            ids.push(body["id"].as_str().unwrap().to_string());
        }
        let res = app.client.patch(app.url(&format!("{BASE}/{}", ids[1]))).json(&json!({"status": "suspended"})).send().await.unwrap();
        let patched = version(&res);
        let (status, list) = get(&app, &format!("{BASE}?tenant_id=acme")).await;
        assert_eq!(status, 200);
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        for item in items {
            let id = item["id"].as_str().unwrap();
            let res = app.client.get(app.url(&format!("{BASE}/{id}"))).send().await.unwrap();
            let etag = res.headers()["etag"].to_str().unwrap().to_string();
            assert_eq!(format!("\"{}\"", item["version"].as_str().unwrap()), etag, "{item}");
            let (hlc, origin) = version(&res);
            assert_eq!(item["version"], format!("{hlc}.{origin}"));
            let mut got: Value = res.json().await.unwrap();
            got["version"] = item["version"].clone();
            assert_eq!(&got, item, "an item is the customer plus its version");
        }
        let item = items.iter().find(|i| i["id"] == ids[1].as_str()).unwrap();
        assert_eq!(item["version"], format!("{}.{}", patched.0, patched.1), "the patch's version");
        app.stop().await;
    }
}

const BATCH: &str = "/api/v1/customers:batch";

async fn create_many(app: &TestApp, body: Value) -> (u16, Value) {
    post(app, BATCH, body).await
}

fn customer(i: usize) -> Value {
    json!({"tenant_id": "acme", "name": format!("c{i}"), "email": format!("c{i}@example.com")})
}

ship::backend_tests! {
    /// Issue 14.2: a bulk create writes every customer in one transaction, answers them in the
    /// order given with their versions, and records one change each.
    async fn a_bulk_create_writes_and_records_every_customer_in_order(db: TestDb) {
        let recorder = FakeRecorder::new();
        let app = app(&db.pool, recorder.clone()).await;
        let items: Vec<Value> = (0..3).map(customer).collect();
        let (status, body) = create_many(&app, json!({"items": items})).await;
        assert_eq!(status, 201, "{body}");
        let created = body["items"].as_array().unwrap();
        let names: Vec<&str> = created.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["c0", "c1", "c2"]);
        let changes = recorder.changes();
        assert_eq!(changes.len(), 3);
        for (item, change) in created.iter().zip(&changes) {
            assert_eq!(item["id"].as_str().unwrap(), change.entity_id);
            assert_eq!(item["version"], format!("{}.{}", change.version.hlc.as_i64(), change.version.origin));
            let (status, got) = get(&app, &format!("{BASE}/{}", change.entity_id)).await;
            assert_eq!((status, got["email"].clone()), (200, item["email"].clone()));
        }
        assert!(changes.windows(2).all(|w| w[0].version < w[1].version), "versions in order");
        assert_eq!(raw_rows_of(&db.pool).len(), 3);
        app.stop().await;
    }

    /// A broken item refuses the whole batch, naming each broken field by its item; nothing is
    /// written. More items than a request takes is 413 `batch_too_large`; none is an error too.
    async fn a_bulk_create_with_a_broken_item_writes_nothing(db: TestDb) {
        let recorder = FakeRecorder::new();
        let app = app(&db.pool, recorder.clone()).await;
        let (status, body) = create_many(&app, json!({"items": [
            customer(0),
            {"tenant_id": "acme", "name": "x", "email": "not an email"},
            "not an object",
            {"tenant_id": "acme", "name": "y", "email": "y@example.com", "colour": "red"},
        ]})).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(field_codes(&body), pairs(&[
            ("items[1].email", "invalid_email"),
            ("items[2]", "invalid_type"),
            ("items[3].colour", "unknown_field"),
        ]));
        let (status, body) = create_many(&app, json!({"items": (0..1_001).map(customer).collect::<Vec<_>>()})).await;
        assert_eq!((status, body["error"].as_str()), (413, Some("batch_too_large")), "{body}");
        assert_eq!((body["details"]["max"].as_u64(), body["details"]["got"].as_u64()), (Some(1_000), Some(1_001)));
        let (status, body) = create_many(&app, json!({"items": []})).await;
        assert_eq!((status, field_codes(&body)), (422, pairs(&[("items", "blank")])));
        let (status, body) = create_many(&app, json!({"customers": []})).await;
        assert_eq!((status, field_codes(&body)), (422, pairs(&[("customers", "unknown_field"), ("items", "required")])));
        let (status, body) = create_many(&app, json!({"items": {"a": 1}})).await;
        assert_eq!((status, field_codes(&body)), (422, pairs(&[("items", "invalid_type")])));
        // 1,000 broken items are answered with the first hundred broken fields.
        let broken: Vec<Value> = (0..1_000).map(|_| json!({})).collect();
        let (status, body) = create_many(&app, json!({"items": broken})).await;
        assert_eq!((status, body["details"]["fields"].as_array().unwrap().len()), (422, 100));
        assert!(raw_rows_of(&db.pool).is_empty(), "nothing written");
        assert!(recorder.changes().is_empty(), "nothing recorded");
        // A record that fails rolls every row back.
        let failing = app_failing(&db).await;
        let (status, _) = create_many(&failing, json!({"items": [customer(0), customer(1)]})).await;
        assert_eq!(status, 500);
        assert!(raw_rows_of(&db.pool).is_empty(), "rolled back with the record");
        failing.stop().await;
        app.stop().await;
    }
}

async fn app_failing(db: &ship::testing::TestDb) -> TestApp {
    app(&db.pool, FakeRecorder::failing()).await
}
