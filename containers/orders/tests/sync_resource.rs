//! `OrdersResource` (the `SyncResource` the sync container uses): validation, last-writer-wins
//! apply one by one and set-wise, the digest, snapshots, references and purges, on both
//! backends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{raw_rows_of, registry, RawRow};
use orders::{OrdersResource, CUSTOMER_REF};
use serde_json::{json, Value};
use ship::contracts::{
    ApplyOutcome, Change, ConflictPolicy, Hlc, OpKind, Reference, RowInfo, RowState, Rule,
    SyncResource, Version,
};
use ship::db::transact;
use ship::{AnyConnection, DbError, DbPool};

const ID: &str = "01939d2e-0000-7000-8000-0000000000aa";
const CUSTOMER: &str = "01939d2e-0000-7000-8000-0000000000cc";

fn id(k: u32) -> String {
    format!("01939d2e-0000-7000-8000-00000001{k:04x}")
}

fn payload_of(id: &str, number: &str, deleted_at: Option<&str>) -> Value {
    json!({
        "id": id,
        "tenant_id": "acme",
        "customer_id": CUSTOMER,
        "number": number,
        "status": "pending",
        "currency": "EUR",
        "lines": [{"sku": "TEA", "quantity": 3, "unit_price_minor": 450}, {"sku": "CUP", "quantity": 1, "unit_price_minor": 50}],
        "total_minor": 1_400,
        "created_at": "2026-12-06T15:00:00.123456Z",
        "updated_at": "2026-12-06T15:00:01.000001Z",
        "deleted_at": deleted_at,
    })
}

fn payload(number: &str, deleted_at: Option<&str>) -> Value {
    payload_of(ID, number, deleted_at)
}

fn change_of(
    entity: &str,
    kind: OpKind,
    ms: u64,
    counter: u16,
    origin: &str,
    payload: Value,
) -> Change {
    Change {
        resource: "orders".into(),
        entity_id: entity.into(),
        kind,
        version: Version::new(Hlc::new(ms, counter), origin),
        payload: payload.into(),
    }
}

fn upsert(ms: u64, origin: &str, number: &str) -> Change {
    change_of(ID, OpKind::Upsert, ms, 0, origin, payload(number, None))
}

fn op(k: u32, ms: u64, origin: &str, number: &str) -> Change {
    change_of(
        &id(k),
        OpKind::Upsert,
        ms,
        0,
        origin,
        payload_of(&id(k), number, None),
    )
}

fn tombstone(k: u32, ms: u64, origin: &str, number: &str) -> Change {
    change_of(
        &id(k),
        OpKind::Delete,
        ms,
        0,
        origin,
        payload_of(&id(k), number, Some("2026-12-06T16:00:00.000000Z")),
    )
}

fn in_transaction<T>(pool: &DbPool, f: impl FnOnce(&mut AnyConnection) -> Result<T, DbError>) -> T {
    let mut conn = pool.get().unwrap();
    transact(&mut conn, f).unwrap()
}

/// Apply one by one, each in its own transaction, as the sync container does.
fn apply_each(pool: &DbPool, changes: &[Change]) -> Vec<ApplyOutcome> {
    changes
        .iter()
        .map(|c| {
            in_transaction(pool, |conn| {
                OrdersResource.apply(conn, c, ConflictPolicy::Lww)
            })
        })
        .collect()
}

fn apply(pool: &DbPool, change: &Change) -> ApplyOutcome {
    apply_each(pool, std::slice::from_ref(change))
        .pop()
        .unwrap()
}

/// `changes` as one batch, in one transaction.
fn apply_batch(pool: &DbPool, changes: &[Change]) -> Vec<ApplyOutcome> {
    let refs: Vec<&Change> = changes.iter().collect();
    in_transaction(pool, |conn| {
        OrdersResource.apply_batch(conn, &refs, ConflictPolicy::Lww)
    })
}

fn stored_number(pool: &DbPool) -> String {
    raw_rows_of(pool).pop().unwrap().number
}

fn digest(pool: &DbPool) -> String {
    OrdersResource.digest(&mut pool.get().unwrap()).unwrap()
}

/// `(id, number, version, origin, deleted)` of every row.
fn summary(rows: Vec<RawRow>) -> Vec<(String, String, i64, String, bool)> {
    rows.into_iter()
        .map(|r| {
            (
                r.id,
                r.number,
                r.sync_version,
                r.sync_origin,
                r.deleted_at.is_some(),
            )
        })
        .collect()
}

fn v(ms: u64) -> i64 {
    Hlc::new(ms, 0).as_i64()
}

ship::backend_tests! {
    async fn newer_wins_older_is_stale_equal_is_duplicate_origin_breaks_ties(db: TestDb) {
        assert_eq!(apply(&db.pool, &upsert(1_000, "eu", "first")), ApplyOutcome::Applied);
        assert_eq!(apply(&db.pool, &upsert(2_000, "eu", "second")), ApplyOutcome::Applied);
        assert_eq!(apply(&db.pool, &upsert(2_000, "eu", "second")), ApplyOutcome::Duplicate);
        match apply(&db.pool, &upsert(1_500, "us", "older")) {
            ApplyOutcome::Stale { current, current_payload, .. } => {
                assert_eq!(current, Version::new(Hlc::new(2_000, 0), "eu"));
                assert_eq!(current_payload, payload("second", None));
            }
            other => panic!("expected stale, got {other:?}"),
        }
        assert_eq!(stored_number(&db.pool), "second");
        // Equal clocks: the greater origin wins; the counter orders within a millisecond.
        assert_eq!(apply(&db.pool, &upsert(2_000, "us", "from us")), ApplyOutcome::Applied);
        assert!(matches!(apply(&db.pool, &upsert(2_000, "ap", "from ap")), ApplyOutcome::Stale { .. }));
        assert_eq!(stored_number(&db.pool), "from us");
        assert_eq!(apply(&db.pool, &change_of(ID, OpKind::Upsert, 2_000, 1, "ap", payload("counter 1", None))), ApplyOutcome::Applied);
        let row = raw_rows_of(&db.pool).pop().unwrap();
        assert_eq!((row.number.as_str(), row.sync_version, row.sync_origin.as_str()), ("counter 1", Hlc::new(2_000, 1).as_i64(), "ap"));
        assert_eq!(row.lines, r#"[{"sku":"TEA","quantity":3,"unit_price_minor":450},{"sku":"CUP","quantity":1,"unit_price_minor":50}]"#);
        // No status transition is checked remotely: the newer full state wins, even backwards.
        let mut back = payload("delivered then pending", None);
        back["status"] = json!("delivered");
        apply(&db.pool, &change_of(ID, OpKind::Upsert, 3_000, 0, "eu", back));
        assert_eq!(apply(&db.pool, &upsert(4_000, "eu", "pending again")), ApplyOutcome::Applied);
        assert_eq!(raw_rows_of(&db.pool)[0].status, "pending");
    }

    async fn delete_and_update_are_ordered_by_version(db: TestDb) {
        let gone = payload("gone", Some("2026-12-06T16:00:00.000000Z"));
        assert_eq!(apply(&db.pool, &change_of(ID, OpKind::Delete, 3_000, 0, "eu", gone.clone())), ApplyOutcome::Applied);
        assert!(matches!(apply(&db.pool, &upsert(2_000, "us", "older")), ApplyOutcome::Stale { current_payload, .. } if current_payload == gone));
        assert!(raw_rows_of(&db.pool)[0].deleted_at.is_some());
        assert!(matches!(apply(&db.pool, &upsert(4_000, "us", "back")), ApplyOutcome::AppliedOver { rule: Rule::OlderHlc, .. }));
        let row = raw_rows_of(&db.pool).pop().unwrap();
        assert_eq!((row.number.as_str(), row.deleted_at), ("back", None));
    }

    async fn an_invalid_or_mismatched_change_writes_nothing(db: TestDb) {
        let mut conn = db.pool.get().unwrap();
        let mut bad = upsert(1_000, "eu", "x");
        bad.entity_id = id(1);
        assert!(OrdersResource.apply(&mut conn, &bad, ConflictPolicy::Lww).is_err());
        let mut bad = upsert(1_000, "eu", "x");
        bad.payload["total_minor"] = json!(1_401);
        assert!(OrdersResource.apply(&mut conn, &bad, ConflictPolicy::Lww).is_err());
        assert!(OrdersResource.apply_batch(&mut conn, &[&upsert(1_000, "eu", "ok"), &bad], ConflictPolicy::Lww).is_err());
        let mut other = upsert(1_000, "eu", "x");
        other.resource = "customers".into();
        assert!(OrdersResource.apply(&mut conn, &other, ConflictPolicy::Lww).is_err());
        drop(conn);
        assert!(raw_rows_of(&db.pool).is_empty());
    }

    /// One batch mixing inserts, newer, older and equal versions of stored rows, an id that
    /// repeats (its later ops see its earlier ones), a tie decided by origin, a winner with a
    /// greater version but a smaller origin (the ON DUPLICATE KEY assignment-order trap) and a
    /// delete: the outcomes and rows of one by one.
    async fn a_mixed_batch_gets_the_outcomes_of_one_by_one(db: TestDb) {
        let stored = [
            op(1, 10_000, "eu", "one"),
            op(2, 10_000, "eu", "two"),
            op(3, 10_000, "eu", "three"),
            op(4, 10_000, "us", "four"),
            op(5, 10_000, "us", "five"),
            op(6, 10_000, "eu", "six"),
        ];
        let batch = vec![
            op(9, 5_000, "us", "nine first"),
            op(1, 20_000, "us", "one newer"),
            op(2, 5_000, "us", "two older"),
            op(3, 10_000, "eu", "three"),
            op(9, 3_000, "ap", "nine older"),
            op(9, 9_000, "ap", "nine newer"),
            op(1, 20_000, "us", "one newer"),
            op(4, 10_000, "zz", "four tie"),
            op(5, 20_000, "ap", "five"),
            tombstone(6, 15_000, "us", "six gone"),
            op(6, 12_000, "eu", "six older"),
            op(8, 7_000, "eu", "eight"),
        ];
        apply_each(&db.pool, &stored);
        let outcomes = apply_batch(&db.pool, &batch);
        let stale = |ms: u64, origin: &str, k: u32, number: &str| ApplyOutcome::Stale {
            current: Version::new(Hlc::new(ms, 0), origin),
            current_payload: payload_of(&id(k), number, None),
            rule: Rule::OlderHlc,
        };
        assert_eq!(outcomes, vec![
            ApplyOutcome::Applied,
            ApplyOutcome::Applied,
            stale(10_000, "eu", 2, "two"),
            ApplyOutcome::Duplicate,
            stale(5_000, "us", 9, "nine first"),
            ApplyOutcome::Applied,
            ApplyOutcome::Duplicate,
            ApplyOutcome::Applied,
            ApplyOutcome::Applied,
            ApplyOutcome::Applied,
            ApplyOutcome::Stale {
                current: Version::new(Hlc::new(15_000, 0), "us"),
                current_payload: payload_of(&id(6), "six gone", Some("2026-12-06T16:00:00.000000Z")),
                rule: Rule::OlderHlc,
            },
            ApplyOutcome::Applied,
        ]);
        let rows = summary(raw_rows_of(&db.pool));
        let s = |k: u32, number: &str, ms: u64, origin: &str, deleted: bool| (id(k), number.to_string(), v(ms), origin.to_string(), deleted);
        assert_eq!(rows, vec![
            s(1, "one newer", 20_000, "us", false),
            s(2, "two", 10_000, "eu", false),
            s(3, "three", 10_000, "eu", false),
            s(4, "four tie", 10_000, "zz", false),
            s(5, "five", 20_000, "ap", false),
            s(6, "six gone", 15_000, "us", true),
            s(8, "eight", 7_000, "eu", false),
            s(9, "nine newer", 9_000, "ap", false),
        ]);
        let other = ship::testing::TestDb::new(db.backend());
        apply_each(&other.pool, &stored);
        assert_eq!(apply_each(&other.pool, &batch), outcomes);
        assert_eq!(summary(raw_rows_of(&other.pool)), rows);
        assert_eq!(digest(&other.pool), digest(&db.pool));
        // Re-delivered, the batch changes nothing.
        assert!(apply_batch(&db.pool, &batch).iter().all(|o| !matches!(o, ApplyOutcome::Applied)));
        assert_eq!(summary(raw_rows_of(&db.pool)), rows);
        // A batch larger than one insert chunk (100 rows on MariaDB), half stored before.
        apply_each(&db.pool, &(100..200).map(|k| op(k, 1_000, "eu", "old")).collect::<Vec<_>>());
        let big: Vec<Change> = (100..350).rev().map(|k| op(k, 2_000, "us", "new")).collect();
        assert!(apply_batch(&db.pool, &big).iter().all(|o| *o == ApplyOutcome::Applied));
        let rows = raw_rows_of(&db.pool);
        assert_eq!(rows.iter().filter(|r| r.number == "new" && r.sync_origin == "us").count(), 250);
    }

    async fn concurrent_first_applies_of_one_row_agree(db: TestDb) {
        let mut handles = Vec::new();
        for i in 0..8u64 {
            let pool = db.pool.clone();
            handles.push(tokio::task::spawn_blocking(move || apply(&pool, &upsert(10_000 + i, "eu", &format!("writer {i}")))));
        }
        for h in handles {
            let outcome = h.await.unwrap();
            assert!(matches!(outcome, ApplyOutcome::Applied | ApplyOutcome::Stale { .. }), "{outcome:?}");
        }
        assert_eq!(stored_number(&db.pool), "writer 7");
    }

    async fn digest_follows_the_documented_scheme_and_state(db: TestDb) {
        let empty = digest(&db.pool);
        assert_eq!(empty, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "SHA-256 of nothing");
        let ops = [op(2, 5_000, "us", "b"), tombstone(1, 6_000, "eu", "a")];
        apply_each(&db.pool, &ops);
        // Lines of {"payload":…,"version":…,"origin":…} in id order, the payload's keys in their
        // documented order.
        let mut expected = String::new();
        for (op, hlc) in [(&ops[1], v(6_000)), (&ops[0], v(5_000))] {
            let payload: orders::models::OrderPayload = serde_json::from_value(op.payload.value().clone()).unwrap();
            expected.push_str(&format!("{{\"payload\":{},\"version\":{hlc},\"origin\":\"{}\"}}\n", serde_json::to_string(&payload).unwrap(), op.version.origin));
        }
        assert!(expected.starts_with(&format!("{{\"payload\":{{\"id\":\"{}\",\"tenant_id\":\"acme\",\"customer_id\":", id(1))), "{expected}");
        use sha2::Digest;
        assert_eq!(digest(&db.pool), hex::encode(sha2::Sha256::digest(expected.as_bytes())));
        apply(&db.pool, &op(2, 7_000, "us", "b2"));
        assert_ne!(digest(&db.pool), hex::encode(sha2::Sha256::digest(expected.as_bytes())));
    }

    async fn snapshots_entities_and_counts_give_each_row_as_its_change(db: TestDb) {
        let ops = [op(3, 5_000, "us", "c"), tombstone(1, 6_000, "eu", "a"), op(2, 7_000, "ap", "b")];
        apply_each(&db.pool, &ops);
        let mut conn = db.pool.get().unwrap();
        assert_eq!(OrdersResource.row_count(&mut conn).unwrap(), Some(3));
        let first = OrdersResource.snapshot_page(&mut conn, None, 2).unwrap();
        let rest = OrdersResource.snapshot_page(&mut conn, Some(&first[1].entity_id), 2).unwrap();
        let all: Vec<Change> = first.into_iter().chain(rest).collect();
        assert_eq!(all, vec![ops[1].clone(), ops[2].clone(), ops[0].clone()], "each row is the change that made it");
        assert_eq!(OrdersResource.entity(&mut conn, &id(1)).unwrap(), Some(ops[1].clone()));
        assert_eq!(OrdersResource.entity(&mut conn, &id(9)).unwrap(), None);
    }

    async fn row_info_and_live_referrers_follow_tombstones(db: TestDb) {
        let other = "01939d2e-0000-7000-8000-0000000000dd";
        let mut elsewhere = payload_of(&id(3), "c", None);
        elsewhere["customer_id"] = json!(other);
        elsewhere["tenant_id"] = json!("globex");
        apply_each(&db.pool, &[
            op(1, 5_000, "eu", "a"),
            tombstone(2, 5_000, "eu", "b"),
            change_of(&id(3), OpKind::Upsert, 5_000, 0, "eu", elsewhere),
        ]);
        let (registry, _) = registry();
        let mut conn = db.pool.get().unwrap();
        for lock in [false, true] {
            let info = transact(&mut conn, |c: &mut AnyConnection| OrdersResource.row_info(c, &[&id(1), &id(2), &id(3), &id(9), &id(1)], lock)).unwrap();
            assert_eq!(info.len(), 3, "{info:?}");
            assert_eq!(info[&id(1)], RowInfo { state: RowState::Live, tenant_id: "acme".into() });
            assert_eq!(info[&id(2)], RowInfo { state: RowState::Deleted, tenant_id: "acme".into() });
            assert_eq!(info[&id(3)].tenant_id, "globex");
        }
        assert_eq!(OrdersResource.references(), &[CUSTOMER_REF]);
        assert_eq!(CUSTOMER_REF, Reference { field: "customer_id", resource: "customers" });
        // The tombstone does not count; order 3 names another customer.
        assert_eq!(OrdersResource.live_referrers(&mut conn, &CUSTOMER_REF, &[CUSTOMER]).unwrap(), 1);
        assert_eq!(OrdersResource.live_referrers(&mut conn, &CUSTOMER_REF, &[CUSTOMER, other]).unwrap(), 2);
        assert_eq!(OrdersResource.live_referrers(&mut conn, &CUSTOMER_REF, &[]).unwrap(), 0);
        let undeclared = Reference { field: "number", resource: "invoices" };
        assert_eq!(OrdersResource.live_referrers(&mut conn, &undeclared, &[CUSTOMER]).unwrap(), 0);
        // What the customers side asks through the registry before deleting customers.
        assert_eq!(registry.live_referrers(&mut conn, "customers", &[CUSTOMER, other]).unwrap(), 2);
        assert_eq!(registry.dependency_order().unwrap(), vec!["customers", "orders"]);
    }

    async fn tombstones_are_paged_by_id_and_only_tombstones_are_deleted(db: TestDb) {
        let mut ops: Vec<Change> = (0..5).map(|k| tombstone(k, 5_000, "eu", "t")).collect();
        ops.push(op(2_000, 5_000, "eu", "live"));
        apply_batch(&db.pool, &ops);
        let before = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap().and_hms_opt(0, 0, 0).unwrap();
        let page = |after: Option<String>, limit| {
            in_transaction(&db.pool, |c| OrdersResource.tombstones_before(c, before, after.as_deref(), limit))
        };
        assert_eq!(page(None, 3), (0..3).map(id).collect::<Vec<_>>(), "by id, the live row left out");
        assert_eq!(page(Some(id(2)), 3), (3..5).map(id).collect::<Vec<_>>(), "after the cursor");
        assert!(page(Some(id(4)), 3).is_empty());
        let early = chrono::NaiveDate::from_ymd_opt(2026, 12, 6).unwrap().and_hms_opt(0, 0, 0).unwrap();
        assert!(in_transaction(&db.pool, |c| OrdersResource.tombstones_before(c, early, None, 10)).is_empty(), "not old enough");

        let live = op(2_000, 5_000, "eu", "live").entity_id;
        let deleted = in_transaction(&db.pool, |c| OrdersResource.delete_tombstones(c, &[id(1), live.clone()]));
        assert_eq!(deleted, 1, "a live row is never deleted");
        let rows = raw_rows_of(&db.pool);
        assert_eq!(rows.len(), 5);
        assert!(!rows.iter().any(|r| r.id == id(1)) && rows.iter().any(|r| r.id == live));
    }
}

#[test]
fn digests_agree_across_backends() {
    let backends = ship::testing::configured_backends();
    let ops = [
        op(1, 5_000, "eu", "Zoë 🦀 'q' \"d\" \\"),
        tombstone(2, 6_000, "us", "gone"),
        op(3, 7_000, "ap", "c"),
    ];
    let digests: Vec<String> = backends
        .iter()
        .map(|backend| {
            let db = ship::testing::TestDb::new(*backend);
            apply_each(&db.pool, &ops);
            digest(&db.pool)
        })
        .collect();
    assert!(
        digests.windows(2).all(|w| w[0] == w[1]),
        "{backends:?}: {digests:?}"
    );
}

/// Validate `p` as an op on the entity its own `id` names.
fn validate(kind: OpKind, p: &Value) -> Result<(), Vec<ship::contracts::FieldError>> {
    OrdersResource.validate(p["id"].as_str().unwrap_or_default(), kind, p)
}

#[test]
fn validation_reports_every_problem_by_field() {
    assert_eq!(OrdersResource.name(), "orders");
    assert_eq!(validate(OpKind::Upsert, &payload("ok", None)), Ok(()));
    assert_eq!(
        validate(OpKind::Delete, &payload("ok", Some("2026-12-06T16:00:00Z"))),
        Ok(())
    );
    let codes = |kind, p: Value| -> Vec<(String, String)> {
        validate(kind, &p)
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    };
    let pair = |f: &str, c: &str| (f.to_string(), c.to_string());

    let mut p = payload("ok", None);
    p["extra"] = json!(1);
    p["id"] = json!("01939D2E-0000-7000-8000-0000000000AA");
    p["customer_id"] = json!(7);
    p["number"] = json!(" ");
    p["status"] = json!("lost");
    p["currency"] = json!("EURO");
    p["created_at"] = json!("2026-12-06 15:00:00");
    p.as_object_mut().unwrap().remove("deleted_at");
    assert_eq!(
        codes(OpKind::Upsert, p),
        vec![
            pair("extra", "unknown_field"),
            pair("id", "invalid_uuid"),
            pair("customer_id", "invalid_type"),
            pair("number", "blank"),
            pair("status", "invalid_value"),
            pair("currency", "invalid_currency"),
            pair("created_at", "invalid_timestamp"),
            pair("deleted_at", "required"),
        ]
    );
    // The total must be the lines' exact sum, and an exact JSON integer.
    for (total, expected) in [
        (json!(1_399), pair("total_minor", "total_mismatch")),
        (json!(1_400.0), pair("total_minor", "invalid_type")),
        (json!("1400"), pair("total_minor", "invalid_type")),
        (json!(-1), pair("total_minor", "out_of_range")),
        (
            json!(9_007_199_254_740_992u64),
            pair("total_minor", "out_of_range"),
        ),
    ] {
        let mut p = payload("ok", None);
        p["total_minor"] = total;
        assert_eq!(codes(OpKind::Upsert, p), vec![expected]);
    }
    let mut p = payload("ok", None);
    p.as_object_mut().unwrap().remove("total_minor");
    assert_eq!(
        codes(OpKind::Upsert, p),
        vec![pair("total_minor", "required")]
    );
    for (lines, expected) in [
        (json!([]), vec![pair("lines", "blank")]),
        (json!(null), vec![pair("lines", "invalid_type")]),
        (
            json!([{"sku": "A", "quantity": 0, "unit_price_minor": 1, "note": "x"}]),
            vec![
                pair("lines[0].note", "unknown_field"),
                pair("lines[0].quantity", "out_of_range"),
            ],
        ),
        (
            json!([{"sku": "A", "quantity": 1_000_001, "unit_price_minor": 1_000_000_000_001i64}]),
            vec![
                pair("lines[0].quantity", "out_of_range"),
                pair("lines[0].unit_price_minor", "out_of_range"),
            ],
        ),
        (
            json!([{"sku": 1, "quantity": "1"}]),
            vec![
                pair("lines[0].sku", "invalid_type"),
                pair("lines[0].quantity", "invalid_type"),
                pair("lines[0].unit_price_minor", "required"),
            ],
        ),
    ] {
        let mut p = payload("ok", None);
        p["lines"] = lines;
        assert_eq!(codes(OpKind::Upsert, p), expected);
    }
    let mut p = payload("ok", None);
    p["lines"] =
        json!([{"sku": "A", "quantity": 1_000_000, "unit_price_minor": 1_000_000_000_000i64}]);
    p["total_minor"] = json!(1_000_000_000_000_000_000i64);
    assert_eq!(
        codes(OpKind::Upsert, p),
        vec![
            pair("lines", "total_too_large"),
            pair("total_minor", "out_of_range")
        ]
    );
    assert_eq!(
        codes(OpKind::Delete, payload("ok", None)),
        vec![pair("deleted_at", "required")]
    );
    assert_eq!(
        codes(OpKind::Upsert, payload("ok", Some("2026-12-06T16:00:00Z"))),
        vec![pair("deleted_at", "must_be_null")]
    );
    assert_eq!(
        codes(OpKind::Upsert, json!("string")),
        vec![pair("payload", "invalid_type")]
    );
    let errors = OrdersResource
        .validate(&id(7), OpKind::Upsert, &payload("ok", None))
        .unwrap_err();
    assert_eq!(
        errors.iter().map(|e| e.code.as_str()).collect::<Vec<_>>(),
        ["entity_mismatch"]
    );
    // 64 characters of multi-byte text are within the limits.
    let mut p = payload(&"é".repeat(64), None);
    p["lines"][0]["sku"] = json!("🦀".repeat(64));
    assert_eq!(validate(OpKind::Upsert, &p), Ok(()));
}
