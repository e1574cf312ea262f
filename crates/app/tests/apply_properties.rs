//! R2 and R8: apply is idempotent and commutative per key, and concurrent conflicting applies
//! end at the last-writer-wins maximum — on SQLite, MariaDB and PostgreSQL, with equal digests
//! across the three backends (the reference of every case runs on SQLite).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};
use ship::contracts::{ConflictPolicy, HybridClock};
use ship::db::Backend;
use ship::parents::Action;
use ship::testing::TestDb;
use sync::actions::{ApplyOpsAction, ApplyOpsInput, BatchLimits};

const IDS: [&str; 3] = [
    "01939d2e-0000-7000-8000-0000000000a1",
    "01939d2e-0000-7000-8000-0000000000a2",
    "01939d2e-0000-7000-8000-0000000000a3",
];
const ORIGINS: [&str; 3] = ["ap-south", "eu-west", "us-east"];
const NAMES: [&str; 8] = [
    "Ada",
    "Zoë Ünïcødé",
    "😀 emoji",
    "quote \" and \\ backslash",
    "  padded  ",
    "日本語の名前",
    "a\u{0301} combining",
    "trailing space ",
];

/// One generated op: entity, delete?, physical ms offset, counter, origin, name.
#[derive(Debug, Clone)]
struct GenOp {
    entity: usize,
    delete: bool,
    ms: u64,
    counter: u16,
    origin: usize,
    name: usize,
}

fn gen_op() -> impl Strategy<Value = GenOp> {
    // A small clock range so equal timestamps (ties broken by origin) happen often.
    (
        0..IDS.len(),
        prop::bool::weighted(0.25),
        0u64..4,
        0u16..3,
        0..ORIGINS.len(),
        0..NAMES.len(),
    )
        .prop_map(|(entity, delete, ms, counter, origin, name)| GenOp {
            entity,
            delete,
            ms,
            counter,
            origin,
            name,
        })
}

/// Distinct versions per entity (a version names exactly one write), shuffled, duplicated and
/// split into batches.
fn scenario() -> impl Strategy<Value = (Vec<GenOp>, Vec<usize>, Vec<usize>)> {
    prop::collection::vec(gen_op(), 1..24)
        .prop_map(|ops| {
            let mut seen = BTreeMap::new();
            for op in ops {
                seen.entry((op.entity, op.ms, op.counter, op.origin))
                    .or_insert(op);
            }
            seen.into_values().collect::<Vec<_>>()
        })
        .prop_flat_map(|ops| {
            let n = ops.len();
            // A delivery order: every op at least once, some twice.
            let order = prop::collection::vec(0..n, 0..n).prop_map(move |extra| {
                let mut all: Vec<usize> = (0..n).collect();
                all.extend(extra);
                all
            });
            (
                Just(ops),
                order.prop_shuffle(),
                prop::collection::vec(1usize..5, 1..8),
            )
        })
}

fn base_ms() -> u64 {
    ship::contracts::hlc::system_time_ms() - 60_000
}

fn to_op(op: &GenOp, base: u64, k: usize) -> Value {
    let id = IDS[op.entity];
    let hlc = (((base + op.ms) << 16) | u64::from(op.counter)) as i64;
    json!({
        "op_id": format!("op-{k}"),
        "entity_id": id,
        "kind": if op.delete { "delete" } else { "upsert" },
        "hlc": hlc,
        "origin": ORIGINS[op.origin],
        "payload": {
            "id": id, "tenant_id": "t1", "name": NAMES[op.name], "email": "x@example.com",
            "status": "active",
            "created_at": "2026-11-25T15:00:00.000000Z",
            "updated_at": "2026-11-25T15:00:00.123456Z",
            "deleted_at": if op.delete { json!("2026-11-25T16:00:00.000001Z") } else { Value::Null },
        },
    })
}

fn action(db: &TestDb) -> ApplyOpsAction {
    action_by(db, ConflictPolicy::Lww)
}

/// The ops action of a region whose `customers` decide conflicts by `policy`.
fn action_by(db: &TestDb, policy: ConflictPolicy) -> ApplyOpsAction {
    sync::recorder::prepare_resources(&mut db.pool.get().unwrap(), ["customers"]).unwrap();
    let mut registry = app::wiring::resources().unwrap();
    registry.set_policy("customers", policy).unwrap();
    ApplyOpsAction::new(
        "here",
        db.pool.clone(),
        registry,
        Arc::new(HybridClock::new(Duration::from_secs(5))),
        BatchLimits {
            max_ops: 1_000,
            batch_rows: true,
        },
    )
}

/// Apply `ops` in order as pushes: a push speaks only for its sender, so each run of ops of
/// one origin is one batch from that region (`lww`).
async fn apply(action: &ApplyOpsAction, ops: Vec<Value>) {
    apply_by(action, ops, ConflictPolicy::Lww).await
}

/// As [`apply`], from senders that decide by `policy`.
async fn apply_by(action: &ApplyOpsAction, ops: Vec<Value>, policy: ConflictPolicy) {
    let mut runs: Vec<Vec<Value>> = Vec::new();
    for op in ops {
        match runs.last_mut() {
            Some(run) if run[0]["origin"] == op["origin"] => run.push(op),
            _ => runs.push(vec![op]),
        }
    }
    for ops in runs {
        action
            .run(ApplyOpsInput {
                resource: "customers".into(),
                source_region: ops[0]["origin"].as_str().unwrap().to_string(),
                batch_id: "b".into(),
                schema_version: 1,
                ops,
                source_incarnation: String::new(),
                source_policy: policy.as_str().to_string(),
            })
            .await
            .map_err(|e| e.to_string())
            .unwrap();
    }
}

/// The stored (id, version, origin) per entity.
fn versions(db: &TestDb) -> Vec<(String, i64, String)> {
    use diesel::prelude::*;
    diesel::sql_query("SELECT id, sync_version, sync_origin FROM customers ORDER BY id")
        .load::<VersionRow>(&mut db.pool.get().unwrap())
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.sync_version, r.sync_origin))
        .collect()
}

#[derive(diesel::QueryableByName)]
struct SeqRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    seq: i64,
}

#[derive(diesel::QueryableByName)]
struct VersionRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    sync_version: i64,
    #[diesel(sql_type = diesel::sql_types::Text)]
    sync_origin: String,
}

/// R2 on `backend` under `policy`: any delivery order, duplicates and batch split give the
/// digest of the reference (everything in one batch, in generated order), and each entity ends
/// at its maximum — `(hlc, origin)` under `lww`, `(is_tombstone, hlc, origin)` under
/// `delete_wins`. The reference runs on SQLite: on MariaDB and PostgreSQL, digests agree across
/// backends.
fn property_of_apply(backend: Backend, cases: u32, policy: ConflictPolicy) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&scenario(), |(ops, order, splits)| {
            let base = base_ms();
            rt.block_on(async {
                let reference = TestDb::new(Backend::Sqlite);
                let all: Vec<Value> = ops
                    .iter()
                    .enumerate()
                    .map(|(k, o)| to_op(o, base, k))
                    .collect();
                apply_by(&action_by(&reference, policy), all, policy).await;

                let db = TestDb::new(backend);
                let act = action_by(&db, policy);
                let mut delivery: Vec<Value> =
                    order.iter().map(|&i| to_op(&ops[i], base, i)).collect();
                let mut s = 0;
                while !delivery.is_empty() {
                    let take = splits[s % splits.len()].min(delivery.len());
                    s += 1;
                    apply_by(&act, delivery.drain(..take).collect(), policy).await;
                }

                assert_eq!(
                    common::customers_digest(&db),
                    common::customers_digest(&reference),
                    "ops {ops:?} order {order:?}"
                );
                // Each entity holds its maximum version under the policy.
                let mut expected: BTreeMap<&str, (bool, i64, &str)> = BTreeMap::new();
                for o in &ops {
                    let v = (
                        o.delete && policy == ConflictPolicy::DeleteWins,
                        (((base + o.ms) << 16) | u64::from(o.counter)) as i64,
                        ORIGINS[o.origin],
                    );
                    let e = expected.entry(IDS[o.entity]).or_insert(v);
                    if v > *e {
                        *e = v;
                    }
                }
                let stored = versions(&db);
                let want: Vec<_> = expected
                    .iter()
                    .map(|(id, (_, h, o))| (id.to_string(), *h, o.to_string()))
                    .collect();
                assert_eq!(stored, want);
            });
            Ok(())
        })
        .unwrap();
}

mod apply_is_order_independent {
    use super::*;

    #[test]
    fn sqlite() {
        property_of_apply(Backend::Sqlite, 48, ConflictPolicy::Lww);
    }

    #[test]
    fn mysql() {
        property_of_apply(Backend::Mysql, 12, ConflictPolicy::Lww);
    }

    /// Issue 16.2: R2 holds under `delete_wins` too.
    #[test]
    fn sqlite_under_delete_wins() {
        property_of_apply(Backend::Sqlite, 48, ConflictPolicy::DeleteWins);
    }

    #[test]
    fn mysql_under_delete_wins() {
        property_of_apply(Backend::Mysql, 12, ConflictPolicy::DeleteWins);
    }

    #[test]
    fn postgres() {
        property_of_apply(Backend::Postgres, 12, ConflictPolicy::Lww);
    }

    #[test]
    fn postgres_under_delete_wins() {
        property_of_apply(Backend::Postgres, 12, ConflictPolicy::DeleteWins);
    }
}

ship::backend_tests! {
    /// A batch's changelog entries are its winners, by clock and then entity id (ADR 0026:
    /// one origin's, in one batch row), with the next seqs — every op of a batch winning, some
    /// losing, a single winner (a row of its own; on MariaDB appended as a local write is, by
    /// the statement that locks the sequence row) — and a re-delivery adds none.
    async fn a_batch_appends_its_winners_with_the_next_seqs(db: TestDb) {
        use diesel::prelude::*;
        let action = action(&db);
        let base = base_ms();
        let id = |k: usize| format!("01939d2e-0000-7000-8000-{k:012x}");
        let op = |k: usize, ms: u64, origin: &str, name: &str| -> Value {
            json!({
                "op_id": format!("op-{k}-{ms}"),
                "entity_id": id(k),
                "kind": "upsert",
                "hlc": ((base + ms) << 16) as i64,
                "origin": origin,
                "payload": {
                    "id": id(k), "tenant_id": "t1", "name": name, "email": "x@example.com",
                    "status": "active",
                    "created_at": "2026-11-25T15:00:00.000000Z",
                    "updated_at": "2026-11-25T15:00:00.123456Z",
                    "deleted_at": null,
                },
            })
        };
        let entries = |db: &TestDb| -> Vec<(i64, String, i64, String)> {
            common::changelog_entries(&mut db.pool.get().unwrap(), "1 = 1")
                .into_iter()
                .map(|e| (e.seq, e.entity_id, e.hlc, e.payload))
                .collect()
        };
        // (seq, first_seq, op) of each stored row.
        let rows = |db: &TestDb| -> Vec<(i64, Option<i64>, String)> {
            diesel::sql_query("SELECT * FROM sync_changelog ORDER BY seq")
                .load::<sync::models::ChangeLogRow>(&mut db.pool.get().unwrap())
                .unwrap()
                .into_iter()
                .map(|r| (r.entry.seq, r.first_seq, r.entry.op))
                .collect()
        };
        // 100 new rows, sent in reverse id order: every op wins.
        let first: Vec<Value> = (0..100).rev().map(|k| op(k, 1_000, "eu-west", "first")).collect();
        apply(&action, first.clone()).await;
        let expected: Vec<(i64, String, i64, String)> = (0..100)
            .map(|k| {
                let sent = &first[99 - k];
                (k as i64 + 1, id(k), sent["hlc"].as_i64().unwrap(), sent["payload"].to_string())
            })
            .collect();
        assert_eq!(entries(&db), expected);
        // 100 ops: the even ids newer, the odd ones older than what is stored.
        let second: Vec<Value> = (0..100)
            .map(|k| op(k, if k % 2 == 0 { 2_000 } else { 500 }, "us-east", "second"))
            .collect();
        apply(&action, second.clone()).await;
        let mut expected = expected;
        expected.extend((0..50).map(|j| {
            let sent = &second[2 * j];
            (101 + j as i64, id(2 * j), sent["hlc"].as_i64().unwrap(), sent["payload"].to_string())
        }));
        assert_eq!(entries(&db), expected);
        apply(&action, second).await;
        assert_eq!(entries(&db).len(), 150, "a re-delivery appends nothing");
        let one = op(7, 3_000, "ap-south", "third");
        apply(&action, vec![one.clone(), op(8, 100, "ap-south", "stale")]).await;
        expected.push((151, id(7), one["hlc"].as_i64().unwrap(), one["payload"].to_string()));
        assert_eq!(entries(&db), expected);
        let last: i64 = diesel::sql_query("SELECT last_seq AS seq FROM sync_sequences WHERE resource = 'customers'")
            .get_result::<SeqRow>(&mut db.pool.get().unwrap())
            .map(|r| r.seq)
            .unwrap();
        assert_eq!(last, 151);
        let batch = || "batch".to_string();
        assert_eq!(
            rows(&db),
            vec![(100, Some(1), batch()), (150, Some(101), batch()), (151, None, "upsert".to_string())],
            "a batch row per batch of winners, a winner alone a row of its own"
        );
    }

    /// ADR 0026: one origin's winners past `BATCH_ROW_MAX` (1 000) go in several batch rows,
    /// numbered on with no gap, by clock (here the reverse of the batch's order), each row's
    /// clock its last entry's.
    async fn an_origin_s_many_winners_go_in_rows_of_a_thousand_at_most(db: TestDb) {
        use diesel::prelude::*;
        sync::recorder::prepare_resources(&mut db.pool.get().unwrap(), ["customers"]).unwrap();
        let action = ApplyOpsAction::new(
            "here",
            db.pool.clone(),
            app::wiring::resources().unwrap(),
            Arc::new(HybridClock::new(Duration::from_secs(5))),
            BatchLimits { max_ops: 3_000, batch_rows: true },
        );
        let base = base_ms();
        let id = |k: usize| format!("01939d2e-0000-7000-8000-{k:012x}");
        let ops: Vec<Value> = (0..2_500)
            .map(|k| json!({
                "op_id": format!("op-{k}"), "entity_id": id(k), "kind": "upsert",
                "hlc": ((base + 10_000 - k as u64) << 16) as i64, "origin": "eu-west",
                "payload": {
                    "id": id(k), "tenant_id": "t1", "name": format!("n{k}"), "email": "x@example.com",
                    "status": "active", "created_at": "2026-11-25T15:00:00.000000Z",
                    "updated_at": "2026-11-25T15:00:00.123456Z", "deleted_at": null,
                },
            }))
            .collect();
        apply(&action, ops).await;
        let rows: Vec<(i64, Option<i64>, i64)> = diesel::sql_query("SELECT * FROM sync_changelog ORDER BY seq")
            .load::<sync::models::ChangeLogRow>(&mut db.pool.get().unwrap())
            .unwrap()
            .into_iter()
            .map(|r| (r.entry.seq, r.first_seq, r.entry.hlc))
            .collect();
        let clock = |k: usize| ((base + 10_000 - k as u64) << 16) as i64;
        // By clock: the last op sent (k = 2 499) first; a row ends at k = 1 500, 500 and 0.
        assert_eq!(rows, vec![(1_000, Some(1), clock(1_500)), (2_000, Some(1_001), clock(500)), (2_500, Some(2_001), clock(0))]);
        let entries = common::changelog_entries(&mut db.pool.get().unwrap(), "1 = 1");
        let got: Vec<(i64, String)> = entries.into_iter().map(|e| (e.seq, e.entity_id)).collect();
        let expected: Vec<(i64, String)> = (0..2_500).rev().map(id).zip(1..).map(|(id, seq)| (seq, id)).collect();
        assert!(got == expected, "every entry once, by clock, with no gap");
    }

    /// R8: many concurrent appliers of conflicting ops on a few keys end at the LWW maximum
    /// per key — no lost update, no deadlock surfaced to the caller.
    async fn concurrent_conflicting_applies_end_at_the_maximum(db: TestDb) {
        let act = Arc::new(action(&db));
        let base = base_ms();
        let mut tasks = Vec::new();
        let mut all = Vec::new();
        for t in 0..8u64 {
            let mut batches = Vec::new();
            for b in 0..6u64 {
                let ops: Vec<GenOp> = (0..3)
                    .map(|k| GenOp {
                        entity: ((t + b + k) % 3) as usize,
                        delete: (t * 7 + b * 3 + k) % 11 == 0,
                        ms: (t * 13 + b * 5 + k * 3) % 40,
                        counter: (t % 3) as u16,
                        origin: (t % 3) as usize,
                        name: ((t + b) % 8) as usize,
                    })
                    .collect();
                all.extend(ops.clone());
                batches.push(ops);
            }
            let act = Arc::clone(&act);
            tasks.push(tokio::spawn(async move {
                for (b, ops) in batches.into_iter().enumerate() {
                    let values = ops.iter().enumerate().map(|(k, o)| to_op(o, base, b * 10 + k)).collect();
                    apply(&act, values).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut expected: BTreeMap<&str, (i64, &str)> = BTreeMap::new();
        for o in &all {
            let v = ((((base + o.ms) << 16) | u64::from(o.counter)) as i64, ORIGINS[o.origin]);
            let e = expected.entry(IDS[o.entity]).or_insert(v);
            if v > *e {
                *e = v;
            }
        }
        let want: Vec<_> = expected.iter().map(|(id, (h, o))| (id.to_string(), *h, o.to_string())).collect();
        assert_eq!(versions(&db), want);
    }
}
