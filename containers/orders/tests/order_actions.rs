//! The orders actions against real databases, with a fake change recorder and the customers
//! stand-in of `common`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{insert_customer, live_customer, raw_rows_of, registry, FakeRecorder, REGION};
use orders::actions::{
    CreateOrderAction, CreateOrderInput, DeleteOrderAction, GetOrderAction, ListOrdersAction,
    ListOrdersInput, OrderView, UpdateOrderAction, UpdateOrderInput,
};
use orders::models::{CustomerState, OrderLine, OrderLines, OrderPayload, OrderStatus};
use orders::OrdersError;
use ship::contracts::{Hlc, OpKind};
use ship::parents::Action;
use ship::DbPool;

fn lines(items: &[(&str, i64, i64)]) -> OrderLines {
    OrderLines(
        items
            .iter()
            .map(|(sku, quantity, unit_price_minor)| OrderLine {
                sku: sku.to_string(),
                quantity: *quantity,
                unit_price_minor: *unit_price_minor,
            })
            .collect(),
    )
}

fn input(tenant: &str, customer_id: &str) -> CreateOrderInput {
    CreateOrderInput {
        tenant_id: tenant.into(),
        customer_id: customer_id.into(),
        number: "SO-1".into(),
        currency: "EUR".into(),
        lines: lines(&[("TEA", 3, 450), ("CUP", 2, 1_000)]),
        status: OrderStatus::Pending,
    }
}

fn create(pool: &DbPool, recorder: std::sync::Arc<FakeRecorder>) -> CreateOrderAction {
    CreateOrderAction::new(pool.clone(), recorder, registry().0)
}

fn update(pool: &DbPool, recorder: std::sync::Arc<FakeRecorder>) -> UpdateOrderAction {
    UpdateOrderAction::new(pool.clone(), recorder, registry().0)
}

async fn new_order(pool: &DbPool, recorder: std::sync::Arc<FakeRecorder>) -> OrderView {
    let customer = live_customer(pool, "acme");
    create(pool, recorder)
        .run(input("acme", &customer))
        .await
        .unwrap()
}

fn set_status(id: &str, status: OrderStatus) -> UpdateOrderInput {
    UpdateOrderInput {
        id: id.into(),
        status: Some(status),
        ..Default::default()
    }
}

fn field_codes(err: &OrdersError) -> Vec<(String, String)> {
    match err {
        OrdersError::Validation(fields) => fields
            .iter()
            .map(|f| (f.field.clone(), f.code.clone()))
            .collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn pair(field: &str, code: &str) -> (String, String) {
    (field.to_string(), code.to_string())
}

ship::backend_tests! {
    async fn create_computes_the_total_writes_the_row_with_its_version_and_records_it(db: TestDb) {
        let recorder = FakeRecorder::new();
        let (registry, stub) = registry();
        let customer = live_customer(&db.pool, "acme");
        let created = CreateOrderAction::new(db.pool.clone(), recorder.clone(), registry.clone())
            .run(input("acme", &customer))
            .await
            .unwrap();
        assert_eq!(created.customer_state, CustomerState::Live);
        // The customer was read once, locked, inside the write's transaction.
        assert_eq!(*stub.calls.lock().unwrap(), vec![(1, true)]);
        let order = &created.order;
        assert_eq!(uuid::Uuid::parse_str(&order.id).unwrap().get_version_num(), 7);
        assert_eq!((order.status.as_str(), order.total_minor), ("pending", 3 * 450 + 2 * 1_000));
        assert_eq!(order.sync_origin, REGION);

        let changes = recorder.changes();
        assert_eq!(changes.len(), 1);
        let change = &changes[0];
        assert_eq!((change.resource.as_str(), change.entity_id.as_str(), change.kind), ("orders", order.id.as_str(), OpKind::Upsert));
        assert_eq!(change.version.hlc, Hlc::from_i64(order.sync_version).unwrap());
        assert_eq!(change.payload, OrderPayload::from(order).to_value());
        assert_eq!(change.payload["total_minor"], 3_350);
        assert_eq!(change.payload["lines"][0], serde_json::json!({"sku": "TEA", "quantity": 3, "unit_price_minor": 450}));

        let stored = raw_rows_of(&db.pool);
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].lines, r#"[{"sku":"TEA","quantity":3,"unit_price_minor":450},{"sku":"CUP","quantity":2,"unit_price_minor":1000}]"#, "compact JSON in key order");
        assert_eq!((stored[0].sync_version, stored[0].total_minor), (order.sync_version, 3_350));

        let got = GetOrderAction::new(db.pool.clone(), registry).run(order.id.clone()).await.unwrap();
        assert_eq!(got, created, "what was returned is what was stored, to the microsecond");
    }

    async fn an_unknown_deleted_or_foreign_customer_is_refused_and_nothing_written(db: TestDb) {
        let recorder = FakeRecorder::new();
        let deleted = uuid::Uuid::now_v7().to_string();
        insert_customer(&db.pool, &deleted, "acme", true);
        let foreign = live_customer(&db.pool, "other");
        for (customer, code) in [
            (uuid::Uuid::now_v7().to_string(), "unknown_customer"),
            (deleted, "deleted_customer"),
            (foreign, "unknown_customer"),
        ] {
            let err = create(&db.pool, recorder.clone()).run(input("acme", &customer)).await.unwrap_err();
            assert_eq!(field_codes(&err), vec![pair("customer_id", code)], "{customer}");
        }
        assert!(raw_rows_of(&db.pool).is_empty());
        assert!(recorder.changes().is_empty());
    }

    async fn bad_input_is_refused_before_any_read(db: TestDb) {
        let recorder = FakeRecorder::new();
        let err = create(&db.pool, recorder.clone())
            .run(CreateOrderInput {
                tenant_id: " ".into(),
                customer_id: "not-a-uuid".into(),
                number: "".into(),
                currency: "eur".into(),
                lines: lines(&[("", 0, -1)]),
                status: OrderStatus::Confirmed,
            })
            .await
            .unwrap_err();
        assert_eq!(field_codes(&err), vec![
            pair("tenant_id", "blank"),
            pair("customer_id", "invalid_uuid"),
            pair("number", "blank"),
            pair("currency", "invalid_currency"),
            pair("status", "invalid_value"),
            pair("lines[0].sku", "blank"),
            pair("lines[0].quantity", "out_of_range"),
            pair("lines[0].unit_price_minor", "out_of_range"),
        ]);
        // The total must stay an exact JSON number: 2^53 − 1 at most, never a wrapped sum.
        let customer = live_customer(&db.pool, "acme");
        let big = |n: usize| CreateOrderInput {
            lines: OrderLines(vec![OrderLine { sku: "GOLD".into(), quantity: 1_000_000, unit_price_minor: 1_000_000_000_000 }; n]),
            ..input("acme", &customer)
        };
        for n in [1, 10] {
            let err = create(&db.pool, recorder.clone()).run(big(n)).await.unwrap_err();
            assert_eq!(field_codes(&err), vec![pair("lines", "total_too_large")], "{n} lines");
        }
        let err = create(&db.pool, recorder.clone()).run(CreateOrderInput { lines: OrderLines::default(), ..input("acme", &customer) }).await.unwrap_err();
        assert_eq!(field_codes(&err), vec![pair("lines", "blank")]);
        let max = CreateOrderInput {
            lines: OrderLines(vec![OrderLine { sku: "X".into(), quantity: 9_007, unit_price_minor: 1_000_000_000_000 }, OrderLine { sku: "Y".into(), quantity: 199_254_740_991, unit_price_minor: 1 }]),
            ..input("acme", &customer)
        };
        assert_eq!(field_codes(&create(&db.pool, recorder.clone()).run(max).await.unwrap_err()), vec![pair("lines[1].quantity", "out_of_range")]);
        assert!(raw_rows_of(&db.pool).is_empty());
    }

    async fn a_failing_recorder_leaves_nothing_behind(db: TestDb) {
        let good = FakeRecorder::new();
        let bad = FakeRecorder::failing();
        let customer = live_customer(&db.pool, "acme");
        let err = create(&db.pool, bad.clone()).run(input("acme", &customer)).await.unwrap_err();
        assert!(matches!(err, OrdersError::Db(_)), "{err:?}");
        assert!(raw_rows_of(&db.pool).is_empty(), "the insert was rolled back");

        let created = new_order(&db.pool, good.clone()).await;
        let before = raw_rows_of(&db.pool);
        update(&db.pool, bad.clone())
            .run(set_status(&created.order.id, OrderStatus::Confirmed))
            .await
            .unwrap_err();
        DeleteOrderAction::new(db.pool.clone(), bad.clone())
            .run(created.order.id.clone())
            .await
            .unwrap_err();
        assert_eq!(raw_rows_of(&db.pool), before, "update and delete were rolled back");
        assert_eq!(good.changes().len(), 1);
    }

    async fn status_moves_along_the_lifecycle_only(db: TestDb) {
        let recorder = FakeRecorder::new();
        let created = new_order(&db.pool, recorder.clone()).await;
        let id = created.order.id.clone();
        let mut last = created.order.sync_version;
        for next in [OrderStatus::Confirmed, OrderStatus::Shipped, OrderStatus::Delivered] {
            let view = update(&db.pool, recorder.clone()).run(set_status(&id, next)).await.unwrap();
            assert_eq!(view.order.status, next.as_str());
            assert!(view.order.sync_version > last);
            last = view.order.sync_version;
        }
        // Delivered is final: staying is a no-op, anything else a conflict.
        let same = update(&db.pool, recorder.clone()).run(set_status(&id, OrderStatus::Delivered)).await.unwrap();
        assert_eq!(same.order.sync_version, last, "no new version");
        for next in [OrderStatus::Pending, OrderStatus::Confirmed, OrderStatus::Shipped, OrderStatus::Cancelled] {
            let err = update(&db.pool, recorder.clone()).run(set_status(&id, next)).await.unwrap_err();
            assert!(matches!(err, OrdersError::InvalidStatusTransition { from: OrderStatus::Delivered, to } if to == next), "{err:?}");
        }
        // Pending → shipped skips a step; cancelled is final.
        let other = new_order(&db.pool, recorder.clone()).await.order.id;
        let err = update(&db.pool, recorder.clone()).run(set_status(&other, OrderStatus::Shipped)).await.unwrap_err();
        assert!(matches!(err, OrdersError::InvalidStatusTransition { .. }), "{err:?}");
        update(&db.pool, recorder.clone()).run(set_status(&other, OrderStatus::Cancelled)).await.unwrap();
        let err = update(&db.pool, recorder.clone()).run(set_status(&other, OrderStatus::Confirmed)).await.unwrap_err();
        assert!(matches!(err, OrdersError::InvalidStatusTransition { from: OrderStatus::Cancelled, .. }), "{err:?}");
        assert_eq!(recorder.changes().len(), 2 + 3 + 1, "refusals and no-ops record nothing");
    }

    async fn number_and_lines_change_only_while_pending(db: TestDb) {
        let recorder = FakeRecorder::new();
        let created = new_order(&db.pool, recorder.clone()).await;
        let id = created.order.id.clone();
        // Pending: edited, the total follows; and confirmed in the same write.
        let edited = update(&db.pool, recorder.clone())
            .run(UpdateOrderInput {
                id: id.clone(),
                number: Some("SO-2".into()),
                lines: Some(lines(&[("TEA", 10, 450)])),
                status: Some(OrderStatus::Confirmed),
            })
            .await
            .unwrap();
        assert_eq!((edited.order.number.as_str(), edited.order.total_minor, edited.order.status.as_str()), ("SO-2", 4_500, "confirmed"));
        assert_eq!(recorder.changes().last().unwrap().payload["total_minor"], 4_500);
        // Confirmed: a change is refused; the same values again are not a change.
        for patch in [
            UpdateOrderInput { id: id.clone(), number: Some("SO-3".into()), ..Default::default() },
            UpdateOrderInput { id: id.clone(), lines: Some(lines(&[("TEA", 11, 450)])), ..Default::default() },
        ] {
            let err = update(&db.pool, recorder.clone()).run(patch).await.unwrap_err();
            assert!(matches!(err, OrdersError::NotEditable { status: OrderStatus::Confirmed }), "{err:?}");
        }
        let retried = update(&db.pool, recorder.clone())
            .run(UpdateOrderInput {
                id: id.clone(),
                number: Some("SO-2".into()),
                lines: Some(lines(&[("TEA", 10, 450)])),
                status: Some(OrderStatus::Confirmed),
            })
            .await
            .unwrap();
        assert_eq!(retried, edited, "a retried PATCH changes nothing");
        assert_eq!(recorder.changes().len(), 2);
        let row = raw_rows_of(&db.pool).pop().unwrap();
        assert_eq!((row.number.as_str(), row.total_minor), ("SO-2", 4_500));

        let err = update(&db.pool, recorder.clone())
            .run(UpdateOrderInput { id: uuid::Uuid::now_v7().to_string(), status: Some(OrderStatus::Confirmed), ..Default::default() })
            .await
            .unwrap_err();
        assert!(matches!(err, OrdersError::NotFound(_)), "{err:?}");
        let err = update(&db.pool, recorder)
            .run(UpdateOrderInput { id, number: Some(" ".into()), lines: Some(OrderLines::default()), ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(field_codes(&err), vec![pair("number", "blank"), pair("lines", "blank")]);
    }

    async fn delete_leaves_a_versioned_tombstone(db: TestDb) {
        let recorder = FakeRecorder::new();
        let created = new_order(&db.pool, recorder.clone()).await;
        let id = created.order.id.clone();
        update(&db.pool, recorder.clone()).run(set_status(&id, OrderStatus::Confirmed)).await.unwrap();
        let tombstone = DeleteOrderAction::new(db.pool.clone(), recorder.clone()).run(id.clone()).await.unwrap();
        let rows = raw_rows_of(&db.pool);
        assert_eq!(rows.len(), 1, "the row stays");
        assert_eq!((rows[0].deleted_at, rows[0].sync_version), (tombstone.deleted_at, tombstone.sync_version));
        let change = recorder.changes().pop().unwrap();
        assert_eq!(change.kind, OpKind::Delete);
        assert!(change.payload["deleted_at"].is_string());

        let (registry, _) = registry();
        for err in [
            GetOrderAction::new(db.pool.clone(), registry.clone()).run(id.clone()).await.unwrap_err(),
            DeleteOrderAction::new(db.pool.clone(), recorder.clone()).run(id.clone()).await.unwrap_err(),
            update(&db.pool, recorder.clone()).run(set_status(&id, OrderStatus::Confirmed)).await.unwrap_err(),
            GetOrderAction::new(db.pool.clone(), registry).run("not-a-uuid".into()).await.unwrap_err(),
        ] {
            assert!(matches!(err, OrdersError::NotFound(_)), "{err:?}");
        }
        assert_eq!(recorder.changes().len(), 3, "a failed delete records nothing");
    }

    async fn list_pages_by_id_per_tenant_and_customer_with_one_customer_read_per_page(db: TestDb) {
        let recorder = FakeRecorder::new();
        let (registry, stub) = registry();
        let ada = live_customer(&db.pool, "acme");
        let bob = live_customer(&db.pool, "acme");
        let create = CreateOrderAction::new(db.pool.clone(), recorder.clone(), registry.clone());
        let mut ids = Vec::new();
        for i in 0..6 {
            let customer = if i % 2 == 0 { &ada } else { &bob };
            ids.push(create.run(input("acme", customer)).await.unwrap().order.id);
        }
        let elsewhere = live_customer(&db.pool, "other");
        create.run(input("other", &elsewhere)).await.unwrap();
        DeleteOrderAction::new(db.pool.clone(), recorder.clone()).run(ids.remove(2)).await.unwrap();
        // Bob is deleted since: his orders stay, showing it.
        diesel::connection::SimpleConnection::batch_execute(
            &mut db.pool.get().unwrap(),
            &format!("UPDATE customers SET deleted_at = '2026-12-02 00:00:00' WHERE id = '{bob}'"),
        ).unwrap();
        ids.sort();

        let list = ListOrdersAction::new(db.pool.clone(), registry);
        stub.calls.lock().unwrap().clear();
        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = list
                .run(ListOrdersInput { tenant_id: "acme".into(), customer_id: None, limit: 2, after: after.clone() })
                .await
                .unwrap();
            pages += 1;
            for item in &page.items {
                let expected = if item.order.customer_id == ada { CustomerState::Live } else { CustomerState::Deleted };
                assert_eq!(item.customer_state, expected);
                seen.push(item.order.id.clone());
            }
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ids);
        assert_eq!(pages, 3, "5 orders by 2, no empty last page");
        let calls = stub.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 3, "one customer read per page: {calls:?}");
        assert!(calls.iter().all(|(n, lock)| *n <= 2 && !lock), "distinct ids, unlocked: {calls:?}");

        let adas = list
            .run(ListOrdersInput { tenant_id: "acme".into(), customer_id: Some(ada.clone()), limit: 50, after: None })
            .await
            .unwrap();
        assert_eq!(adas.items.len(), 2, "orders 0 and 4; order 2 is deleted");
        assert!(adas.items.iter().all(|i| i.order.customer_id == ada));
        let err = list
            .run(ListOrdersInput { tenant_id: "acme".into(), customer_id: None, limit: 501, after: None })
            .await
            .unwrap_err();
        assert!(matches!(err, OrdersError::InvalidLimit { max: 500 }), "{err:?}");
    }

    async fn concurrent_updates_get_versions_in_commit_order(db: TestDb) {
        let recorder = FakeRecorder::new();
        let created = new_order(&db.pool, recorder.clone()).await;
        let mut handles = Vec::new();
        for i in 0..8 {
            let action = update(&db.pool, recorder.clone());
            let id = created.order.id.clone();
            handles.push(tokio::spawn(async move {
                action
                    .run(UpdateOrderInput { id, number: Some(format!("writer {i}")), ..Default::default() })
                    .await
                    .unwrap()
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let changes = recorder.changes();
        assert_eq!(changes.len(), 9);
        assert!(changes.windows(2).all(|w| w[0].version < w[1].version), "{changes:?}");
        let last = changes.last().unwrap();
        let row = raw_rows_of(&db.pool).pop().unwrap();
        assert_eq!(row.sync_version, last.version.hlc.as_i64());
        assert_eq!(serde_json::Value::String(row.number), last.payload["number"]);
    }
}
