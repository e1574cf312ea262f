//! `CustomersResource` (the `SyncResource` the sync container uses): validation, last-writer-wins
//! apply and the digest, on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::raw_rows_of;
use customers::CustomersResource;
use serde_json::{json, Value};
use ship::contracts::{
    ApplyOutcome, Change, ConflictPolicy, Hlc, OpKind, Rule, SyncResource, Version,
};
use ship::db::transact;
use ship::{AnyConnection, DbError, DbPool};

const ID: &str = "01939d2e-0000-7000-8000-0000000000aa";

fn payload(name: &str, deleted_at: Option<&str>) -> Value {
    json!({
        "id": ID,
        "tenant_id": "acme",
        "name": name,
        "email": "ada@example.com",
        "status": "active",
        "created_at": "2026-11-25T15:00:00.123456Z",
        "updated_at": "2026-11-25T15:00:01.000001Z",
        "deleted_at": deleted_at,
    })
}

fn change(kind: OpKind, ms: u64, counter: u16, origin: &str, payload: Value) -> Change {
    Change {
        resource: "customers".into(),
        entity_id: ID.into(),
        kind,
        version: Version::new(Hlc::new(ms, counter), origin),
        payload: payload.into(),
    }
}

fn upsert(ms: u64, origin: &str, name: &str) -> Change {
    change(OpKind::Upsert, ms, 0, origin, payload(name, None))
}

/// Apply in one transaction, as the sync container does (`lww`).
fn apply(pool: &DbPool, change: &Change) -> ApplyOutcome {
    apply_by(pool, change, ConflictPolicy::Lww)
}

fn apply_by(pool: &DbPool, change: &Change, policy: ConflictPolicy) -> ApplyOutcome {
    let mut conn = pool.get().unwrap();
    transact(&mut conn, |c: &mut AnyConnection| -> Result<_, DbError> {
        CustomersResource.apply(c, change, policy)
    })
    .unwrap()
}

fn stored_name(pool: &DbPool) -> String {
    raw_rows_of(pool).pop().unwrap().name
}

fn digest(pool: &DbPool) -> String {
    CustomersResource.digest(&mut pool.get().unwrap()).unwrap()
}

ship::backend_tests! {
    async fn newer_wins_older_is_stale_equal_is_duplicate(db: TestDb) {
        assert_eq!(apply(&db.pool, &upsert(1_000, "eu", "first")), ApplyOutcome::Applied);
        assert_eq!(apply(&db.pool, &upsert(2_000, "eu", "second")), ApplyOutcome::Applied);
        assert_eq!(stored_name(&db.pool), "second");

        assert_eq!(apply(&db.pool, &upsert(2_000, "eu", "second")), ApplyOutcome::Duplicate);
        match apply(&db.pool, &upsert(1_500, "us", "older")) {
            ApplyOutcome::Stale { current, current_payload, rule } => {
                assert_eq!(current, Version::new(Hlc::new(2_000, 0), "eu"));
                assert_eq!(current_payload, payload("second", None));
                assert_eq!(rule, Rule::OlderHlc);
            }
            other => panic!("expected stale, got {other:?}"),
        }
        assert_eq!(stored_name(&db.pool), "second");
        let row = raw_rows_of(&db.pool).pop().unwrap();
        assert_eq!((row.sync_version, row.sync_origin.as_str()), (Hlc::new(2_000, 0).as_i64(), "eu"));
    }

    async fn equal_timestamps_are_decided_by_origin(db: TestDb) {
        assert_eq!(apply(&db.pool, &upsert(5_000, "eu", "from eu")), ApplyOutcome::Applied);
        assert_eq!(apply(&db.pool, &upsert(5_000, "us", "from us")), ApplyOutcome::Applied);
        assert!(matches!(apply(&db.pool, &upsert(5_000, "ap", "from ap")), ApplyOutcome::Stale { .. }));
        assert_eq!(stored_name(&db.pool), "from us");
        // The counter orders writes within one millisecond.
        let later = change(OpKind::Upsert, 5_000, 1, "ap", payload("counter 1", None));
        assert_eq!(apply(&db.pool, &later), ApplyOutcome::Applied);
        assert_eq!(stored_name(&db.pool), "counter 1");
    }

    /// `delete_wins` (issue 16.2): a tombstone beats any live version whatever the clocks, then
    /// versions decide; on both backends (MariaDB's overwrite decides by the same order).
    async fn under_delete_wins_a_tombstone_is_final(db: TestDb) {
        let by = |c: &Change| apply_by(&db.pool, c, ConflictPolicy::DeleteWins);
        let tombstone = payload("gone", Some("2026-11-25T16:00:00.000000Z"));
        assert_eq!(by(&upsert(4_000, "us", "live")), ApplyOutcome::Applied);
        // An older delete of another region beats the newer update, which is lost — said so.
        assert_eq!(
            by(&change(OpKind::Delete, 3_000, 0, "eu", tombstone.clone())),
            ApplyOutcome::AppliedOver { lost: Version::new(Hlc::new(4_000, 0), "us"), lost_payload: payload("live", None), rule: Rule::DeleteWins }
        );
        let row = raw_rows_of(&db.pool).pop().unwrap();
        assert!(row.deleted_at.is_some());
        assert_eq!((row.sync_version, row.sync_origin.as_str()), (Hlc::new(3_000, 0).as_i64(), "eu"));
        // A later update does not bring it back: stale, by delete_wins.
        match by(&upsert(9_000, "us", "back")) {
            ApplyOutcome::Stale { current, current_payload, rule } => {
                assert_eq!(current, Version::new(Hlc::new(3_000, 0), "eu"));
                assert_eq!(current_payload, tombstone);
                assert_eq!(rule, Rule::DeleteWins);
            }
            other => panic!("expected stale, got {other:?}"),
        }
        assert!(raw_rows_of(&db.pool)[0].deleted_at.is_some());
        // Re-delivery is a duplicate; between tombstones the later one wins, by clock.
        assert_eq!(by(&change(OpKind::Delete, 3_000, 0, "eu", tombstone.clone())), ApplyOutcome::Duplicate);
        let later = payload("gone later", Some("2026-11-25T17:00:00.000000Z"));
        assert_eq!(by(&change(OpKind::Delete, 5_000, 0, "ap", later.clone())), ApplyOutcome::Applied);
        assert!(matches!(by(&change(OpKind::Delete, 4_500, 0, "us", tombstone)), ApplyOutcome::Stale { rule: Rule::OlderHlc, .. }));
        let row = raw_rows_of(&db.pool).pop().unwrap();
        assert_eq!((row.name.as_str(), row.sync_origin.as_str()), ("gone later", "ap"));
    }

    async fn delete_and_update_are_ordered_by_version(db: TestDb) {
        let tombstone = payload("gone", Some("2026-11-25T16:00:00.000000Z"));
        // A delete that arrives first, for a row this region never saw, is kept as a tombstone.
        assert_eq!(apply(&db.pool, &change(OpKind::Delete, 3_000, 0, "eu", tombstone.clone())), ApplyOutcome::Applied);
        assert!(raw_rows_of(&db.pool)[0].deleted_at.is_some());
        // An older update does not resurrect it.
        assert!(matches!(apply(&db.pool, &upsert(2_000, "us", "older")), ApplyOutcome::Stale { current_payload, .. } if current_payload == tombstone));
        assert!(raw_rows_of(&db.pool)[0].deleted_at.is_some());
        // A newer update does: the delete is lost, said so (a conflict: the updating region
        // had not seen the delete).
        assert_eq!(
            apply(&db.pool, &upsert(4_000, "us", "back")),
            ApplyOutcome::AppliedOver { lost: Version::new(Hlc::new(3_000, 0), "eu"), lost_payload: tombstone.clone(), rule: Rule::OlderHlc }
        );
        let row = raw_rows_of(&db.pool).pop().unwrap();
        assert_eq!((row.name.as_str(), row.deleted_at), ("back", None));
        // And an older delete loses against it.
        assert!(matches!(apply(&db.pool, &change(OpKind::Delete, 3_500, 0, "eu", tombstone)), ApplyOutcome::Stale { .. }));
        assert_eq!(raw_rows_of(&db.pool)[0].deleted_at, None);
    }

    async fn unicode_names_round_trip_and_digests_agree(db: TestDb) {
        let name = "Zoë Ünïcode — 東京 🦀 'quoted' \"double\" \\ back";
        let op = upsert(7_000, "eu", name);
        assert_eq!(apply(&db.pool, &op), ApplyOutcome::Applied);
        assert_eq!(stored_name(&db.pool), name);
        match apply(&db.pool, &upsert(6_000, "eu", "older")) {
            ApplyOutcome::Stale { current_payload, .. } => assert_eq!(current_payload, op.payload),
            other => panic!("{other:?}"),
        }

        // Same ops, any order, another database → same digest; another state → another digest.
        let other = ship::testing::TestDb::new(db.backend());
        assert_ne!(digest(&db.pool), digest(&other.pool));
        apply(&other.pool, &upsert(6_000, "eu", "older"));
        apply(&other.pool, &op);
        assert_eq!(digest(&db.pool), digest(&other.pool));
        assert_eq!(digest(&db.pool).len(), 64);
        let empty = ship::testing::TestDb::new(db.backend());
        // SHA-256 of nothing.
        assert_eq!(digest(&empty.pool), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    async fn an_invalid_or_mismatched_change_writes_nothing(db: TestDb) {
        let mut bad = upsert(1_000, "eu", "x");
        bad.entity_id = "01939d2e-0000-7000-8000-0000000000bb".into();
        let mut conn = db.pool.get().unwrap();
        assert!(CustomersResource.apply(&mut conn, &bad, ConflictPolicy::Lww).is_err());
        let mut bad = upsert(1_000, "eu", "x");
        bad.payload["status"] = json!("gone");
        assert!(CustomersResource.apply(&mut conn, &bad, ConflictPolicy::Lww).is_err());
        drop(conn);
        assert!(raw_rows_of(&db.pool).is_empty());
    }

    async fn concurrent_first_applies_of_one_row_agree(db: TestDb) {
        // Many appliers insert the same absent row at once: every one decides (no duplicate-key
        // error escapes) and the highest version wins.
        let mut handles = Vec::new();
        for i in 0..8u64 {
            let pool = db.pool.clone();
            handles.push(tokio::task::spawn_blocking(move || {
                apply(&pool, &upsert(10_000 + i, "eu", &format!("writer {i}")))
            }));
        }
        for h in handles {
            let outcome = h.await.unwrap();
            assert!(matches!(outcome, ApplyOutcome::Applied | ApplyOutcome::Stale { .. }), "{outcome:?}");
        }
        assert_eq!(stored_name(&db.pool), "writer 7");
    }
}

/// Validate `p` as an op on the entity its own `id` names.
fn validate(
    r: &CustomersResource,
    kind: OpKind,
    p: &Value,
) -> Result<(), Vec<ship::contracts::FieldError>> {
    r.validate(p["id"].as_str().unwrap_or_default(), kind, p)
}

#[test]
fn validation_reports_every_problem_by_field() {
    let r = CustomersResource;
    assert_eq!(r.name(), "customers");
    assert_eq!(validate(&r, OpKind::Upsert, &payload("ok", None)), Ok(()));
    assert_eq!(
        validate(
            &r,
            OpKind::Delete,
            &payload("ok", Some("2026-11-25T16:00:00Z"))
        ),
        Ok(())
    );

    let codes = |kind, p: Value| -> Vec<(String, String)> {
        validate(&r, kind, &p)
            .unwrap_err()
            .into_iter()
            .map(|e| (e.field, e.code))
            .collect()
    };
    let pair = |f: &str, c: &str| (f.to_string(), c.to_string());

    let mut p = payload("ok", None);
    p["extra"] = json!(1);
    p["id"] = json!("01939D2E-0000-7000-8000-0000000000AA");
    p["name"] = json!("");
    p["email"] = json!("a b@c");
    p["created_at"] = json!("2026-11-25 15:00:00");
    p["updated_at"] = json!("2026-11-25T15:00:00.123456789Z");
    p.as_object_mut().unwrap().remove("deleted_at");
    assert_eq!(
        codes(OpKind::Upsert, p),
        vec![
            pair("extra", "unknown_field"),
            pair("id", "invalid_uuid"),
            pair("name", "blank"),
            pair("email", "invalid_email"),
            pair("created_at", "invalid_timestamp"),
            pair("updated_at", "invalid_timestamp"),
            pair("deleted_at", "required"),
        ]
    );
    let mut p = payload("x".repeat(201).as_str(), None);
    p["tenant_id"] = json!(7);
    p["status"] = json!("gone");
    assert_eq!(
        codes(OpKind::Upsert, p),
        vec![
            pair("tenant_id", "invalid_type"),
            pair("name", "too_long"),
            pair("status", "invalid_value")
        ]
    );
    assert_eq!(
        codes(OpKind::Delete, payload("ok", None)),
        vec![pair("deleted_at", "required")]
    );
    assert_eq!(
        codes(OpKind::Upsert, payload("ok", Some("2026-11-25T16:00:00Z"))),
        vec![pair("deleted_at", "must_be_null")]
    );
    assert_eq!(
        codes(OpKind::Upsert, json!("string")),
        vec![pair("payload", "invalid_type")]
    );
    // The payload must describe the op's entity.
    let errors = r
        .validate(
            "01939d2e-0000-7000-8000-0000000000ff",
            OpKind::Upsert,
            &payload("ok", None),
        )
        .unwrap_err();
    assert_eq!(
        errors.iter().map(|e| e.code.as_str()).collect::<Vec<_>>(),
        ["entity_mismatch"]
    );
    // 200 characters of multi-byte text is within the limit.
    assert_eq!(
        validate(&r, OpKind::Upsert, &payload(&"é".repeat(200), None)),
        Ok(())
    );
}
