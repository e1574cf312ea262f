//! `POST /sync/{resource}/ops` against a real region on each backend: last-writer-wins,
//! idempotence, relaying without outbox fan-out, conflict records, and the malformed-input
//! table (R6) — every refusal changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{count, customer, customers_digest, hlc, settings_for, Region};
use serde_json::{json, Value};
use ship::testing::TestDb;

fn op(op_id: &str, id: &str, kind: &str, hlc: i64, origin: &str, payload: Value) -> Value {
    json!({"op_id": op_id, "entity_id": id, "kind": kind, "hlc": hlc, "origin": origin, "payload": payload})
}

/// A push from the region its first op names as origin (a push speaks only for its sender).
fn batch(ops: Vec<Value>) -> Value {
    let source = ops
        .first()
        .and_then(|o| o["origin"].as_str())
        .unwrap_or("us-east")
        .to_string();
    json!({"source_region": source, "batch_id": "b-1", "schema_version": 1, "ops": ops})
}

/// (what, body, status, code, the one bad op: (index, its error code))
type Case<'a> = (&'a str, Value, u16, &'a str, Option<(usize, &'a str)>);

const X: &str = "01939d2e-0000-7000-8000-00000000000a";
const Y: &str = "01939d2e-0000-7000-8000-00000000000b";
const OPS: &str = "/sync/customers/ops";

/// What a refused request must leave untouched.
fn state(db: &TestDb) -> (String, i64, i64, i64) {
    let mut c = db.pool.get().unwrap();
    (
        customers_digest(db),
        count(&mut c, "SELECT COUNT(*) FROM sync_changelog"),
        count(&mut c, "SELECT COUNT(*) FROM sync_conflicts"),
        count(&mut c, "SELECT COUNT(*) FROM sync_outbox"),
    )
}

ship::backend_tests! {
    async fn ops_apply_by_last_writer_wins_idempotently(db: TestDb) {
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.peers = vec![sync::PeerConfig::both("ap-south")];
        let region = Region::start(&settings).await;
        let (h0, h1, h2) = (hlc(-2_000), hlc(-1_000), hlc(0));

        let first = batch(vec![op("o1", X, "upsert", h1, "us-east", customer(X, "v1", false))]);
        let (status, body) = region.post(OPS, &first).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["results"], json!([{"op_id": "o1", "status": "applied"}]));
        assert_eq!((body["applied"].as_u64(), body["stale"].as_u64(), body["duplicate"].as_u64()), (Some(1), Some(0), Some(0)));
        assert!(body["receiver_hlc"].as_i64().unwrap() >= h1, "the receiver's clock observed the op");
        let (_, fetched) = region.get(&format!("/api/v1/customers/{X}")).await;
        assert_eq!(fetched["name"], "v1");

        // Relayed in the feed with its remote origin; no outbox fan-out for remote changes.
        let (_, feed) = region.get("/sync/customers/changes").await;
        assert_eq!(feed["changes"][0]["origin"], "us-east");
        assert_eq!(feed["changes"][0]["hlc"], h1);
        let after_first = state(&db);
        assert_eq!(after_first.3, 0, "remote changes are not queued for peers");

        // Re-delivery: duplicate, nothing new anywhere.
        let (status, body) = region.post(OPS, &first).await;
        assert_eq!(status, 200);
        assert_eq!(body["results"][0]["status"], "duplicate");
        assert_eq!(state(&db), after_first);

        // An older concurrent write from another region loses and leaves a conflict record, once.
        let older = batch(vec![op("o2", X, "upsert", h0, "ap-south", customer(X, "older", false))]);
        let (_, body) = region.post(OPS, &older).await;
        assert_eq!(body["results"][0]["status"], "stale");
        region.post(OPS, &older).await;
        let mut c = db.pool.get().unwrap();
        assert_eq!(count(&mut c, "SELECT COUNT(*) FROM sync_conflicts WHERE loser_origin = 'ap-south' AND winner_origin = 'us-east'"), 1);
        assert_eq!(count(&mut c, "SELECT COUNT(*) FROM sync_changelog"), 1, "a stale op adds no changelog entry");
        let (_, fetched) = region.get(&format!("/api/v1/customers/{X}")).await;
        assert_eq!(fetched["name"], "v1");

        // Equal hlc: the greater origin wins, whatever the arrival order.
        // (A push speaks only for its sender: each region's op comes in its own batch.)
        let (_, body) = region.post(OPS, &batch(vec![op("t1", Y, "upsert", h1, "zz-top", customer(Y, "zz wins", false))])).await;
        assert_eq!(body["results"], json!([{"op_id": "t1", "status": "applied"}]));
        let (_, body) = region.post(OPS, &batch(vec![op("t2", Y, "upsert", h1, "aa-bottom", customer(Y, "aa loses", false))])).await;
        assert_eq!(body["results"], json!([{"op_id": "t2", "status": "stale"}]));
        let (_, fetched) = region.get(&format!("/api/v1/customers/{Y}")).await;
        assert_eq!(fetched["name"], "zz wins");

        // A newer delete wins like any write; an older update after it loses to the tombstone.
        let (_, body) = region.post(OPS, &batch(vec![op("d1", X, "delete", h2, "us-east", customer(X, "v1", true))])).await;
        assert_eq!(body["results"], json!([{"op_id": "d1", "status": "applied"}]));
        let (_, body) = region.post(OPS, &batch(vec![op("u1", X, "upsert", h1 + 1, "ap-south", customer(X, "too late", false))])).await;
        assert_eq!(body["results"], json!([{"op_id": "u1", "status": "stale"}]));
        let (status, _) = region.get(&format!("/api/v1/customers/{X}")).await;
        assert_eq!(status, 404, "tombstoned");
        let (_, feed) = region.get("/sync/customers/changes").await;
        let kinds: Vec<_> = feed["changes"].as_array().unwrap().iter().map(|c| c["kind"].clone()).collect();
        assert_eq!(kinds, [json!("upsert"), json!("upsert"), json!("delete")]);
        region.stop().await;
    }

    async fn malformed_ops_are_refused_and_change_nothing(db: TestDb) {
        let mut settings = settings_for(&db, "eu-west");
        settings.sync.max_ops_per_batch = 3;
        settings.sync.max_batch_bytes = 4096;
        let region = Region::start(&settings).await;
        // Something to protect.
        let (status, _) = region.post(OPS, &batch(vec![op("seed", X, "upsert", hlc(-500), "us-east", customer(X, "seed", false))])).await;
        assert_eq!(status, 200);
        let before = state(&db);

        let valid = op("ok", Y, "upsert", hlc(0), "us-east", customer(Y, "fine", false));
        let mut bad_email = customer(Y, "x", false);
        bad_email["email"] = json!("not an email");
        let mut deep = json!(1);
        for _ in 0..200 {
            deep = json!([deep]);
        }
        let with_valid = |bad: Value| batch(vec![valid.clone(), bad]);
        let cases: Vec<Case> = vec![
            ("unknown top-level field", json!({"source_region": "us-east", "batch_id": "b", "schema_version": 1, "ops": [valid.clone()], "x": 1}), 422, "invalid_body", None),
            ("ops not a list", json!({"source_region": "us-east", "batch_id": "b", "schema_version": 1, "ops": {}}), 422, "invalid_body", None),
            ("missing batch_id", json!({"source_region": "us-east", "schema_version": 1, "ops": [valid.clone()]}), 422, "invalid_body", None),
            ("empty batch", batch(vec![]), 422, "invalid_batch", None),
            ("bad source region", json!({"source_region": "US EAST", "batch_id": "b", "schema_version": 1, "ops": [valid.clone()]}), 422, "invalid_batch", None),
            ("other schema version", json!({"source_region": "us-east", "batch_id": "b", "schema_version": 2, "ops": [valid.clone()]}), 422, "invalid_batch", None),
            ("too many ops", batch(vec![valid.clone(); 4]), 413, "batch_too_large", None),
            ("too many bytes", batch(vec![op("big", Y, "upsert", hlc(0), "us-east", customer(Y, &"n".repeat(5000), false))]), 413, "batch_too_large", None),
            ("op not an object", with_valid(json!(7)), 422, "invalid_ops", Some((1, "invalid_type"))),
            ("missing entity_id", with_valid(json!({"op_id": "m", "kind": "upsert", "hlc": hlc(0), "origin": "us-east", "payload": customer(Y, "x", false)})), 422, "invalid_ops", Some((1, "required"))),
            ("unknown kind", with_valid(op("k", Y, "merge", hlc(0), "us-east", customer(Y, "x", false))), 422, "invalid_ops", Some((1, "invalid_value"))),
            ("negative hlc", with_valid(op("n", Y, "upsert", -5, "us-east", customer(Y, "x", false))), 422, "invalid_ops", Some((1, "invalid_value"))),
            ("float hlc", with_valid(json!({"op_id": "f", "entity_id": Y, "kind": "upsert", "hlc": 1.5, "origin": "us-east", "payload": customer(Y, "x", false)})), 422, "invalid_ops", Some((1, "invalid_value"))),
            ("string hlc", with_valid(json!({"op_id": "s", "entity_id": Y, "kind": "upsert", "hlc": "123", "origin": "us-east", "payload": customer(Y, "x", false)})), 422, "invalid_ops", Some((1, "invalid_value"))),
            ("huge number hlc", with_valid(json!({"op_id": "h", "entity_id": Y, "kind": "upsert", "hlc": 1e300, "origin": "us-east", "payload": customer(Y, "x", false)})), 422, "invalid_ops", Some((1, "invalid_value"))),
            ("unknown op field", with_valid({ let mut o = valid.clone(); o["extra"] = json!(true); o }), 422, "invalid_ops", Some((1, "unknown_field"))),
            ("bad payload field", with_valid(op("p", Y, "upsert", hlc(0), "us-east", bad_email)), 422, "invalid_ops", Some((1, "invalid_email"))),
            ("payload of another entity", with_valid(op("e", Y, "upsert", hlc(0), "us-east", customer(X, "x", false))), 422, "invalid_ops", Some((1, "entity_mismatch"))),
            ("clock 10 minutes ahead", with_valid(op("c", Y, "upsert", hlc(600_000), "us-east", customer(Y, "x", false))), 422, "invalid_ops", Some((1, "clock_drift"))),
            ("deeply nested payload", with_valid(op("d", Y, "upsert", hlc(0), "us-east", deep.clone())), 400, "invalid_json", None),
            // Issue 12: a push speaks only for its sender, never for another region or the receiver.
            ("op of another origin", with_valid(op("o", Y, "upsert", hlc(0), "ap-south", customer(Y, "x", false))), 422, "invalid_ops", Some((1, "origin_not_sender"))),
            ("op of the receiver's origin", with_valid(op("r", Y, "upsert", hlc(0), "eu-west", customer(Y, "x", false))), 422, "invalid_ops", Some((1, "origin_not_sender"))),
            ("a push from the receiver itself", batch(vec![op("s", Y, "upsert", hlc(0), "eu-west", customer(Y, "x", false))]), 422, "invalid_batch", None),
            // Issue 12: a body must be JSON (depth ≤ 128) before its shape is judged, and an object.
            ("top-level array", json!([valid.clone()]), 422, "invalid_body", None),
            ("top-level array of the envelope's fields", json!(["us-east", "b", 1, [valid.clone()]]), 422, "invalid_body", None),
            ("top-level array nested 200 deep", deep.clone(), 400, "invalid_json", None),
        ];
        for (name, body, status, code, op_error) in cases {
            let (got, answer) = region.post(OPS, &body).await;
            assert_eq!((got, answer["error"].as_str().unwrap_or_default()), (status, code), "{name}: {answer}");
            if let Some((index, op_code)) = op_error {
                assert!(answer["message"].as_str().unwrap().starts_with("1 op(s)"), "{name}: {answer}");
                let errors = answer["details"]["errors"].as_array().unwrap();
                assert!(!errors.is_empty(), "{name}");
                assert!(errors.iter().all(|e| e["index"] == index), "{name}: only the bad op is named: {answer}");
                assert!(errors.iter().any(|e| e["code"] == op_code), "{name}: {answer}");
            }
            assert_eq!(state(&db), before, "{name}: a refused batch changes nothing");
        }

        // Bodies that are not JSON at all.
        for raw in ["{\"ops\": [", "{\"source_region\": NaN}", ""] {
            let res = region.client.post(region.url(OPS)).bearer_auth(region.token_from("us-east")).header("content-type", "application/json").body(raw).send().await.unwrap();
            assert_eq!(res.status(), 400, "{raw}");
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"], "invalid_json", "{raw}");
        }
        let (status, body) = region.post("/sync/nope/ops", &batch(vec![valid.clone()])).await;
        assert_eq!((status, body["error"].as_str().unwrap()), (404, "unknown_resource"));
        assert_eq!(state(&db), before);
        region.stop().await;
    }

    /// Two regions over real HTTP: each writes through its own API, B pulls A's feed and
    /// applies it, B's own changes are pushed to A; both end identical.
    async fn two_regions_converge_over_http(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        let b = Region::start(&settings_for(&db_b, "us-east")).await;

        let create = |name: &str| json!({"tenant_id": "t1", "name": name, "email": "x@example.com"});
        let mut ids = Vec::new();
        for name in ["Ada", "Grace", "Edsger"] {
            let (status, c) = a.post("/api/v1/customers", &create(name)).await;
            assert_eq!(status, 201, "{c}");
            ids.push(c["id"].as_str().unwrap().to_string());
        }
        let res = a.client.patch(a.url(&format!("/api/v1/customers/{}", ids[0]))).json(&json!({"name": "Ada L."})).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let res = a.client.delete(a.url(&format!("/api/v1/customers/{}", ids[2]))).send().await.unwrap();
        assert_eq!(res.status(), 204);
        for name in ["Barbara", "Donald"] {
            let (status, _) = b.post("/api/v1/customers", &create(name)).await;
            assert_eq!(status, 201);
        }

        // Ship one region's feed (minus the receiver's own origin) to the other, page by page.
        async fn replicate(from: &Region, to: &Region, to_id: &str, page: usize) -> usize {
            let mut since = String::new();
            let mut shipped = 0;
            loop {
                let (status, feed) = from
                    .get(&format!("/sync/customers/changes?limit={page}&exclude_origin={to_id}{since}"))
                    .await;
                assert_eq!(status, 200, "{feed}");
                let ops: Vec<Value> = feed["changes"].as_array().unwrap().iter().map(|c| json!({
                    "op_id": format!("{}-{}", c["origin"].as_str().unwrap(), c["seq"]),
                    "entity_id": c["entity_id"], "kind": c["kind"], "hlc": c["hlc"],
                    "origin": c["origin"], "payload": c["payload"],
                })).collect();
                if !ops.is_empty() {
                    shipped += ops.len();
                    // Each page holds the region's own writes only, so it may be pushed as such.
                    let body = json!({"source_region": ops[0]["origin"], "batch_id": format!("p{shipped}"), "schema_version": 1, "ops": ops});
                    let (status, answer) = to.post("/sync/customers/ops", &body).await;
                    assert_eq!(status, 200, "{answer}");
                }
                if feed["has_more"] == false {
                    return shipped;
                }
                since = format!("&since={}", feed["next_cursor"].as_str().unwrap());
            }
        }
        assert_eq!(replicate(&a, &b, "us-east", 2).await, 5, "A's five writes");
        assert_eq!(replicate(&b, &a, "eu-west", 2).await, 2, "B's own two writes, not A's relayed back");

        assert_eq!(customers_digest(&db), customers_digest(&db_b), "both regions hold the same rows and versions");
        let (_, list) = b.get("/api/v1/customers?tenant_id=t1").await;
        let mut names: Vec<_> = list["items"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_string()).collect();
        names.sort();
        assert_eq!(names, ["Ada L.", "Barbara", "Donald", "Grace"]);
        a.stop().await;
        b.stop().await;
    }
}

ship::backend_tests! {
    /// ADR 0026 through the ops route: a pushed batch's upserts are one batch row — but an
    /// entity with a delete in the batch keeps its entries on their own, in order, so its
    /// delete stays its latest — and the feed serves its entries one by one, each with its own
    /// seq, clock and payload, whatever the page size, leaving them out for their origin;
    /// with `sync.batch_rows = false` every entry is a row of its own, served the same way.
    async fn a_pushed_batch_is_one_batch_row_served_entry_by_entry(db: TestDb) {
        for batch_rows in [true, false] {
            let db = TestDb::new(db.backend());
            let mut settings = settings_for(&db, "eu-west");
            settings.sync.batch_rows = batch_rows;
            let region = Region::start(&settings).await;
            let id = |k: usize| format!("01939d2e-0000-7000-8000-{k:012x}");
            let mut ops: Vec<Value> = (0..7)
                .map(|k| op(&format!("o{k}"), &id(k), "upsert", hlc(-7_000 + k as i64), "us-east", customer(&id(k), &format!("n{k}"), false)))
                .collect();
            ops.push(op("d", &id(3), "delete", hlc(-500), "us-east", customer(&id(3), "n3", true)));
            let (status, body) = region.post(OPS, &batch(ops.clone())).await;
            assert_eq!(status, 200, "{body}");
            let mut c = db.pool.get().unwrap();
            let rows = count(&mut c, "SELECT COUNT(*) FROM sync_changelog");
            let batch_rows_stored = count(&mut c, "SELECT COUNT(*) FROM sync_changelog WHERE op = 'batch'");
            if batch_rows {
                assert_eq!((rows, batch_rows_stored), (3, 1), "the entity with a delete alone, then the upserts in one row");
            } else {
                assert_eq!((rows, batch_rows_stored), (8, 0));
            }
            drop(c);
            // The entity with a delete first, its upsert before its delete; then the upserts by
            // clock (the order of the batch here).
            let mut expected: Vec<(String, String, i64, String)> = Vec::new();
            let of = |o: &Value| (o["entity_id"].as_str().unwrap().to_string(), o["kind"].as_str().unwrap().to_string(), o["hlc"].as_i64().unwrap(), o["payload"]["name"].as_str().unwrap().to_string());
            if batch_rows {
                expected.extend([of(&ops[3]), of(&ops[7])]);
                expected.extend(ops[..7].iter().filter(|o| o["entity_id"] != ops[3]["entity_id"]).map(of));
            } else {
                let mut sorted = ops.clone();
                sorted.sort_by(|a, b| a["entity_id"].as_str().cmp(&b["entity_id"].as_str()).then(a["kind"].as_str().cmp(&b["kind"].as_str()).reverse()));
                expected.extend(sorted.iter().map(of));
            }
            for limit in [1, 3, 500] {
                let (mut since, mut served) = (String::new(), Vec::new());
                loop {
                    let (status, page) = region.get(&format!("/sync/customers/changes?limit={limit}{since}")).await;
                    assert_eq!(status, 200, "{page}");
                    for c in page["changes"].as_array().unwrap() {
                        served.push((c["seq"].as_i64().unwrap(), (c["entity_id"].as_str().unwrap().to_string(), c["kind"].as_str().unwrap().to_string(), c["hlc"].as_i64().unwrap(), c["payload"]["name"].as_str().unwrap().to_string())));
                        assert_eq!(c["origin"], "us-east");
                    }
                    if page["has_more"] != true {
                        break;
                    }
                    since = format!("&since={}", page["next_cursor"].as_str().unwrap());
                }
                let seqs: Vec<i64> = served.iter().map(|s| s.0).collect();
                assert_eq!(seqs, (1..=8).collect::<Vec<i64>>(), "batch rows {batch_rows}, limit {limit}");
                let entries: Vec<_> = served.into_iter().map(|s| s.1).collect();
                assert_eq!(entries, expected, "batch rows {batch_rows}, limit {limit}");
                // Left out by origin: a short page at the watermark, or all of them.
                let (_, none) = region.get(&format!("/sync/customers/changes?limit={limit}&exclude_origin=us-east")).await;
                assert_eq!((none["changes"].as_array().unwrap().len(), &none["has_more"]), (0, &json!(false)));
                assert_eq!(none["next_cursor"], none["high_watermark"]);
                let (_, all) = region.get("/sync/customers/changes?limit=500&exclude_origin=ap-south").await;
                assert_eq!(all["changes"].as_array().unwrap().len(), 8);
            }
            region.stop().await;
        }
    }
}
