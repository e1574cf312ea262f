//! References across resources (ADR 0015) against a real region on each backend: an order
//! that arrives before its customer is parked, not refused and not lost, and applied when the
//! customer arrives (inline, or by the sweep); a customer that live orders name cannot be
//! deleted here; a remote delete of it that wins leaves its orders readable and marked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{count, customer, hlc, order, settings_for, Region};
use diesel::connection::SimpleConnection;
use serde_json::{json, Value};
use ship::contracts::{Change, ConflictPolicy, OpKind, SyncResource, Version};
use ship::db::Backend;
use ship::parents::Action;
use ship::testing::TestDb;

const C: &str = "01939d2e-0000-7000-8000-0000000000c1";
const O: &str = "01939d2e-0000-7000-8000-0000000000e1";

fn op(op_id: &str, id: &str, kind: &str, hlc: i64, payload: Value) -> Value {
    json!({"op_id": op_id, "entity_id": id, "kind": kind, "hlc": hlc, "origin": "us-east", "payload": payload})
}

fn batch(id: &str, ops: Vec<Value>) -> Value {
    json!({"source_region": "us-east", "batch_id": id, "schema_version": 1, "ops": ops})
}

/// How long a test lets a blocked transaction stay blocked before it checks that it still is.
const STILL_WAITING: Duration = Duration::from_millis(700);

/// A transaction on a connection of its own, as another process of the region (the scheduler's
/// prune, or a web worker's apply) would hold it: `first` runs in it, the thread tells what it
/// returned and waits for the word, then `then` runs and the transaction commits.
fn hold<T: Send + 'static>(
    db: &TestDb,
    first: impl FnOnce(&mut ship::AnyConnection) -> T + Send + 'static,
    then: impl FnOnce(&mut ship::AnyConnection) + Send + 'static,
) -> (T, mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (pool, backend) = (db.pool.clone(), db.backend());
    let (done, first_done) = mpsc::channel();
    let (go, word) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let mut conn = pool.get().unwrap();
        // SQLite: the write lock from the start, as the region's own transactions take it.
        let begin = if backend == Backend::Sqlite {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN"
        };
        conn.batch_execute(begin).unwrap();
        done.send(first(&mut conn)).unwrap();
        word.recv().unwrap();
        then(&mut conn);
        conn.batch_execute("COMMIT").unwrap();
    });
    (first_done.recv().unwrap(), go, thread)
}

/// A day before now: the customers' tombstones of these tests (deleted 2026-11-25) are older.
fn a_day_ago() -> chrono::NaiveDateTime {
    ship::db::utc_now() - chrono::Duration::days(1)
}

fn parked(db: &TestDb) -> i64 {
    count(
        &mut db.pool.get().unwrap(),
        "SELECT COUNT(*) FROM sync_parked_ops",
    )
}

fn changelog_of(db: &TestDb, resource: &str) -> i64 {
    count(
        &mut db.pool.get().unwrap(),
        &format!("SELECT COUNT(*) FROM sync_changelog WHERE resource = '{resource}'"),
    )
}

ship::backend_tests! {
    async fn an_order_before_its_customer_is_parked_then_applied_when_the_customer_arrives(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let (h1, h2) = (hlc(-2_000), hlc(-1_000));

        let orders = batch("b-o", vec![op("o1", O, "upsert", h2, order(O, C, "pending", false))]);
        let (status, body) = region.post("/sync/orders/ops", &orders).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["results"], json!([{"op_id": "o1", "status": "parked"}]));
        assert_eq!((body["applied"].as_u64(), body["parked"].as_u64()), (Some(0), Some(1)));
        assert_eq!(region.get(&format!("/api/v1/orders/{O}")).await.0, 404, "not applied yet");
        assert_eq!((parked(&db), changelog_of(&db, "orders")), (1, 0));

        // Re-delivered while it waits: parked again, kept once.
        let (_, body) = region.post("/sync/orders/ops", &orders).await;
        assert_eq!(body["results"][0]["status"], "parked");
        assert_eq!(parked(&db), 1);

        // The customer arrives: the order is applied in the same transaction.
        let customers = batch("b-c", vec![op("c1", C, "upsert", h1, customer(C, "Ada", false))]);
        let (status, body) = region.post("/sync/customers/ops", &customers).await;
        assert_eq!((status, body["results"][0]["status"].as_str()), (200, Some("applied")), "{body}");
        assert_eq!(parked(&db), 0, "released");
        let (status, got) = region.get(&format!("/api/v1/orders/{O}")).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!((got["customer_id"].as_str(), got["customer_state"].as_str()), (Some(C), Some("live")));
        // Relayed in this region's feed with its remote origin and version.
        let (_, feed) = region.get("/sync/orders/changes").await;
        assert_eq!(feed["changes"].as_array().map(Vec::len), Some(1), "{feed}");
        assert_eq!((feed["changes"][0]["origin"].as_str(), feed["changes"][0]["hlc"].as_i64()), (Some("us-east"), Some(h2)));

        // Delivered again later: an ordinary duplicate now, nothing parks.
        let (_, body) = region.post("/sync/orders/ops", &orders).await;
        assert_eq!(body["results"][0]["status"], "duplicate");
        assert_eq!((parked(&db), changelog_of(&db, "orders")), (0, 1));
        region.stop().await;
    }

    async fn an_order_for_a_deleted_customer_is_not_parked(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let tombstone = batch("b-c", vec![op("c1", C, "delete", hlc(-2_000), customer(C, "Ada", true))]);
        assert_eq!(region.post("/sync/customers/ops", &tombstone).await.0, 200);
        let orders = batch("b-o", vec![op("o1", O, "upsert", hlc(-1_000), order(O, C, "pending", false))]);
        let (_, body) = region.post("/sync/orders/ops", &orders).await;
        assert_eq!(body["results"][0]["status"], "applied", "{body}");
        let (status, got) = region.get(&format!("/api/v1/orders/{O}")).await;
        assert_eq!((status, got["customer_state"].as_str()), (200, Some("deleted")));
        assert_eq!(parked(&db), 0);
        region.stop().await;
    }

    async fn the_sweep_applies_an_op_whose_row_came_by_a_path_that_did_not_release_it(db: TestDb) {
        let settings = settings_for(&db, "eu-west");
        let region = Region::start(&settings).await;
        let orders = batch("b-o", vec![op("o1", O, "upsert", hlc(-1_000), order(O, C, "confirmed", false))]);
        region.post("/sync/orders/ops", &orders).await;
        assert_eq!(parked(&db), 1);
        // The customer's row lands without a release (as when its transaction raced the park).
        let mut conn = db.pool.get().unwrap();
        let insert = "INSERT INTO customers (id, tenant_id, name, email, status, created_at, updated_at, sync_version, sync_origin) \
                      VALUES ('01939d2e-0000-7000-8000-0000000000c1', 't1', 'Ada', 'ada@example.com', 'active', \
                      '2026-11-25 15:00:00', '2026-11-25 15:00:00', 1, 'us-east')";
        match &mut *conn {
            ship::AnyConnection::Sqlite(c) => diesel::RunQueryDsl::execute(diesel::sql_query(insert), c),
            ship::AnyConnection::Mysql(c) => diesel::RunQueryDsl::execute(diesel::sql_query(insert), c),
            ship::AnyConnection::Pg(c) => diesel::RunQueryDsl::execute(diesel::sql_query(insert), c),
        }
        .unwrap();
        drop(conn);
        assert_eq!(parked(&db), 1, "nothing released it");

        let registry = app::wiring::resources().unwrap();
        let released = sync::actions::ReleaseParkedAction::new(db.pool.clone(), registry.clone())
            .run(())
            .await
            .unwrap();
        assert_eq!(released, 1);
        assert_eq!(parked(&db), 0);
        let (status, got) = region.get(&format!("/api/v1/orders/{O}")).await;
        assert_eq!((status, got["status"].as_str()), (200, Some("confirmed")), "{got}");
        // Nothing left: a second sweep releases nothing.
        let again = sync::actions::ReleaseParkedAction::new(db.pool.clone(), registry).run(()).await.unwrap();
        assert_eq!(again, 0);
        region.stop().await;
    }

    /// Regression (review): a parked op that cannot apply any more (its resource moved to
    /// another schema version meanwhile) made the customers batch that released it fail, on
    /// every retry — the customers stream stuck. It is quarantined now; the batch applies.
    async fn a_parked_op_that_cannot_apply_any_more_is_quarantined_not_an_error_of_the_batch(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let orders = batch("b-o", vec![op("o1", O, "upsert", hlc(-2_000), order(O, C, "pending", false))]);
        assert_eq!(region.post("/sync/orders/ops", &orders).await.1["parked"], 1);
        let mut conn = db.pool.get().unwrap();
        diesel::connection::SimpleConnection::batch_execute(&mut *conn, "UPDATE sync_parked_ops SET schema_version = 0").unwrap();
        drop(conn);

        let customers = batch("b-c", vec![op("c1", C, "upsert", hlc(-1_000), customer(C, "Ada", false))]);
        let (status, body) = region.post("/sync/customers/ops", &customers).await;
        assert_eq!((status, body["results"][0]["status"].as_str()), (200, Some("applied")), "{body}");
        assert_eq!(parked(&db), 0);
        assert_eq!(region.get(&format!("/api/v1/orders/{O}")).await.0, 404, "not applied");
        let mut conn = db.pool.get().unwrap();
        assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM sync_quarantine WHERE resource = 'orders' AND peer = 'us-east' AND reason LIKE 'schema_version%'"), 1);
        region.stop().await;
    }

    /// Prune keeps a customer's tombstone while an order (even a deleted one) names it — a
    /// late op of that order, or a joining region's snapshot of it, would otherwise park for
    /// good — and purges the others.
    async fn prune_keeps_the_tombstones_orders_name(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let mut ids = Vec::new();
        for name in ["Ada", "Grace"] {
            let (_, body) = region.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": name, "email": "x@example.com"})).await;
            ids.push(body["id"].as_str().unwrap().to_string());
        }
        let (status, created) = region.post("/api/v1/orders", &json!({"tenant_id": "t1", "customer_id": ids[0], "number": "SO-1", "currency": "EUR", "lines": [{"sku": "A", "quantity": 1, "unit_price_minor": 1}]})).await;
        assert_eq!(status, 201, "{created}");
        let delete = |path: String| {
            let (client, url) = (region.client.clone(), region.url(&path));
            async move { client.delete(url).send().await.unwrap().status().as_u16() }
        };
        assert_eq!(delete(format!("/api/v1/orders/{}", created["id"].as_str().unwrap())).await, 204);
        for id in &ids {
            assert_eq!(delete(format!("/api/v1/customers/{id}")).await, 204);
        }
        diesel::connection::SimpleConnection::batch_execute(&mut *db.pool.get().unwrap(), "UPDATE customers SET deleted_at = '2020-01-01 00:00:00'").unwrap();
        let prune = sync::actions::PruneAction::new(db.pool.clone(), app::wiring::resources().unwrap());
        let summary = prune
            .run(sync::actions::PruneInput {
                outbox_retention: std::time::Duration::from_secs(3600),
                changelog_retention: std::time::Duration::from_secs(3600),
                tombstone_retention: std::time::Duration::from_secs(30 * 86_400),
            })
            .await
            .unwrap();
        assert_eq!(summary.tombstones_purged, 1, "{summary:?}");
        let left = |id: &str| count(&mut db.pool.get().unwrap(), &format!("SELECT COUNT(*) FROM customers WHERE id = '{id}'"));
        assert_eq!((left(&ids[0]), left(&ids[1])), (1, 0), "Ada's order names her");
        region.stop().await;
    }

    async fn a_customer_that_live_orders_name_cannot_be_deleted_here(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let (status, ada) = region.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": "Ada", "email": "ada@example.com"})).await;
        assert_eq!(status, 201, "{ada}");
        let ada = ada["id"].as_str().unwrap().to_string();
        let new_order = |customer: &str, tenant: &str| json!({
            "tenant_id": tenant, "customer_id": customer, "number": "SO-7", "currency": "EUR",
            "lines": [{"sku": "SKU-1", "quantity": 3, "unit_price_minor": 999}],
        });
        let (status, created) = region.post("/api/v1/orders", &new_order(&ada, "t1")).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["total_minor"], 2997);
        let order_id = created["id"].as_str().unwrap().to_string();

        let del = |path: String| {
            let client = region.client.clone();
            let url = region.url(&path);
            async move {
                let res = client.delete(url).send().await.unwrap();
                (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        let (status, refused) = del(format!("/api/v1/customers/{ada}")).await;
        assert_eq!((status, refused["error"].as_str()), (409, Some("customer_referenced")), "{refused}");
        assert_eq!(refused["details"]["live_referrers"], 1);
        assert_eq!(region.get(&format!("/api/v1/customers/{ada}")).await.0, 200, "still there");

        // Another tenant's customer, an unknown one: the same 422, never a leak of ids.
        for (customer, tenant, code) in [
            (ada.as_str(), "t2", "unknown_customer"),
            ("01939d2e-0000-7000-8000-0000000000ff", "t1", "unknown_customer"),
        ] {
            let (status, body) = region.post("/api/v1/orders", &new_order(customer, tenant)).await;
            assert_eq!((status, body["error"].as_str()), (422, Some("validation_failed")), "{body}");
            assert_eq!(body["details"]["fields"][0]["field"], "customer_id");
            assert_eq!(body["details"]["fields"][0]["code"], code);
        }

        assert_eq!(del(format!("/api/v1/orders/{order_id}")).await.0, 204);
        assert_eq!(del(format!("/api/v1/customers/{ada}")).await.0, 204, "no live order names it now");
        let (status, body) = region.post("/api/v1/orders", &new_order(&ada, "t1")).await;
        assert_eq!((status, body["details"]["fields"][0]["code"].as_str()), (422, Some("deleted_customer")), "{body}");
        region.stop().await;
    }

    async fn a_remote_delete_of_a_customer_leaves_its_orders_readable_and_marked(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let (_, ada) = region.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": "Ada", "email": "ada@example.com"})).await;
        let ada = ada["id"].as_str().unwrap().to_string();
        let (status, created) = region.post("/api/v1/orders", &json!({
            "tenant_id": "t1", "customer_id": ada, "number": "SO-8", "currency": "USD",
            "lines": [{"sku": "A", "quantity": 1, "unit_price_minor": 500}],
        })).await;
        assert_eq!(status, 201, "{created}");
        let order_id = created["id"].as_str().unwrap().to_string();

        // us-east deleted the customer before it saw the order; its delete is newer and wins.
        let mut tombstone = customer(&ada, "Ada", true);
        tombstone["email"] = json!("ada@example.com");
        let delete = batch("b-d", vec![op("d1", &ada, "delete", hlc(1_000), tombstone)]);
        let (status, body) = region.post("/sync/customers/ops", &delete).await;
        assert_eq!((status, body["results"][0]["status"].as_str()), (200, Some("applied")), "{body}");

        let (status, got) = region.get(&format!("/api/v1/orders/{order_id}")).await;
        assert_eq!((status, got["customer_state"].as_str()), (200, Some("deleted")), "{got}");
        let (_, list) = region.get(&format!("/api/v1/orders?tenant_id=t1&customer_id={ada}")).await;
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
        assert_eq!(list["items"][0]["customer_state"], "deleted");
        region.stop().await;
    }

    /// Regression (the prune race of ADR 0015): prune's page of purge candidates holds a
    /// customer's tombstone while an order naming it arrives. The apply waits for the prune;
    /// the prune purges the tombstone; the order is parked, not applied against a customer
    /// that is gone. Before, the apply read the tombstone unlocked and applied the order.
    async fn an_order_naming_a_tombstone_prune_holds_waits_for_it_and_parks_when_it_is_purged(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let tombstone = batch("b-c", vec![op("c1", C, "delete", hlc(-2_000), customer(C, "Ada", true))]);
        assert_eq!(region.post("/sync/customers/ops", &tombstone).await.0, 200);

        let (page, go, prune) = hold(
            &db,
            |conn| customers::CustomersResource.tombstones_before(conn, a_day_ago(), None, 10).unwrap(),
            |conn| assert_eq!(customers::CustomersResource.delete_tombstones(conn, &[C.to_string()]).unwrap(), 1),
        );
        assert_eq!(page, vec![C.to_string()]);

        let orders = batch("b-o", vec![op("o1", O, "upsert", hlc(-1_000), order(O, C, "pending", false))]);
        let (client, url, token) = (region.client.clone(), region.url("/sync/orders/ops"), region.token_from("us-east"));
        let push = tokio::spawn(async move {
            let res = client.post(url).bearer_auth(token).json(&orders).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        });
        tokio::time::sleep(STILL_WAITING).await;
        assert!(!push.is_finished(), "the apply waits for the tombstone the prune holds");
        go.send(()).unwrap();
        prune.join().unwrap();

        let (status, body) = push.await.unwrap();
        assert_eq!((status, body["results"][0]["status"].as_str()), (200, Some("parked")), "{body}");
        assert_eq!(parked(&db), 1);
        assert_eq!(region.get(&format!("/api/v1/orders/{O}")).await.0, 404, "not applied");
        region.stop().await;
    }

    /// Regression (the prune race of ADR 0015), the other way round: an apply holds a
    /// customer's tombstone (as the apply of an order naming it now does) and has written the
    /// order, uncommitted, when prune runs. Prune waits for it, then reads the order and keeps
    /// the tombstone. Before, prune listed what orders name before it waited, missed this
    /// order, and purged its customer once the apply committed.
    async fn prune_waits_for_an_apply_that_names_a_tombstone_and_keeps_it(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let tombstone = batch("b-c", vec![op("c1", C, "delete", hlc(-2_000), customer(C, "Ada", true))]);
        assert_eq!(region.post("/sync/customers/ops", &tombstone).await.0, 200);

        let the_order = Change {
            resource: "orders".into(),
            entity_id: O.into(),
            kind: OpKind::Upsert,
            version: Version::new(ship::contracts::Hlc::from_i64(hlc(-1_000)).unwrap(), "us-east"),
            payload: order(O, C, "pending", false).into(),
        };
        let ((), go, apply) = hold(
            &db,
            move |conn| {
                let here = customers::CustomersResource.row_info(conn, &[C], true).unwrap();
                assert_eq!(here[C].state, ship::contracts::RowState::Deleted);
                orders::OrdersResource.apply_batch(conn, &[&the_order], ConflictPolicy::Lww).unwrap();
            },
            |_| {},
        );

        let prune = sync::actions::PruneAction::new(db.pool.clone(), app::wiring::resources().unwrap());
        let pruning = tokio::spawn(async move {
            prune
                .run(sync::actions::PruneInput {
                    outbox_retention: Duration::from_secs(3600),
                    changelog_retention: Duration::from_secs(3600),
                    tombstone_retention: Duration::from_secs(86_400),
                })
                .await
        });
        tokio::time::sleep(STILL_WAITING).await;
        assert!(!pruning.is_finished(), "prune waits for the apply that holds the tombstone");
        go.send(()).unwrap();
        apply.join().unwrap();

        let summary = pruning.await.unwrap().unwrap();
        assert_eq!(summary.tombstones_purged, 0, "{summary:?}");
        let left = count(&mut db.pool.get().unwrap(), &format!("SELECT COUNT(*) FROM customers WHERE id = '{C}'"));
        assert_eq!(left, 1, "the order names it: kept");
        let (status, got) = region.get(&format!("/api/v1/orders/{O}")).await;
        assert_eq!((status, got["customer_state"].as_str()), (200, Some("deleted")), "{got}");
        region.stop().await;
    }

    /// More kept tombstones than one page of prune (1 000), before the purgeable one by id:
    /// prune reads past them, a page per transaction, and still reaches it.
    async fn prune_reads_past_a_page_of_kept_tombstones(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let customer_id = |k: usize| format!("01939d2e-0000-7000-8000-{k:012x}");
        let order_id = |k: usize| format!("01939d2e-0000-7000-9000-{k:012x}");
        let (kept, h) = (1_050, hlc(-60_000));
        let tombstones: Vec<Value> = (0..=kept)
            .map(|k| op(&format!("c{k}"), &customer_id(k), "delete", h + k as i64, customer(&customer_id(k), "Ada", true)))
            .collect();
        for (n, chunk) in tombstones.chunks(500).enumerate() {
            let (status, body) = region.post("/sync/customers/ops", &batch(&format!("b-c{n}"), chunk.to_vec())).await;
            assert_eq!(status, 200, "{body}");
        }
        let orders: Vec<Value> = (0..kept)
            .map(|k| op(&format!("o{k}"), &order_id(k), "upsert", h + k as i64, order(&order_id(k), &customer_id(k), "pending", false)))
            .collect();
        for (n, chunk) in orders.chunks(500).enumerate() {
            let (status, body) = region.post("/sync/orders/ops", &batch(&format!("b-o{n}"), chunk.to_vec())).await;
            assert_eq!((status, body["applied"].as_u64()), (200, Some(chunk.len() as u64)), "{body}");
        }
        let prune = sync::actions::PruneAction::new(db.pool.clone(), app::wiring::resources().unwrap());
        let summary = prune
            .run(sync::actions::PruneInput {
                outbox_retention: Duration::from_secs(3600),
                changelog_retention: Duration::from_secs(3600),
                tombstone_retention: Duration::from_secs(86_400),
            })
            .await
            .unwrap();
        assert_eq!(summary.tombstones_purged, 1, "{summary:?}");
        let left = |id: &str| count(&mut db.pool.get().unwrap(), &format!("SELECT COUNT(*) FROM customers WHERE id = '{id}'"));
        assert_eq!((left(&customer_id(0)), left(&customer_id(kept - 1)), left(&customer_id(kept))), (1, 1, 0));
        region.stop().await;
    }
}
