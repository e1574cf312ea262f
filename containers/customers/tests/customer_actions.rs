//! The customers actions against real databases, with a fake change recorder.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{raw_rows_of, FakeRecorder, REGION};
use customers::actions::{
    CreateCustomerAction, CreateCustomerInput, DeleteCustomerAction, GetCustomerAction,
    ListCustomersAction, ListCustomersInput, UpdateCustomerAction, UpdateCustomerInput,
};
use customers::models::{CustomerPayload, CustomerStatus};
use customers::CustomersError;
use ship::contracts::{Hlc, OpKind, ResourceRegistry};
use ship::parents::Action;

fn input(tenant: &str, name: &str) -> CreateCustomerInput {
    CreateCustomerInput {
        tenant_id: tenant.into(),
        name: name.into(),
        email: "ada@example.com".into(),
        status: CustomerStatus::Active,
    }
}

ship::backend_tests! {
    async fn create_writes_the_row_with_its_version_and_records_it(db: TestDb) {
        let recorder = FakeRecorder::new();
        let created = CreateCustomerAction::new(db.pool.clone(), recorder.clone())
            .run(input("acme", "Ada Lovelace"))
            .await
            .unwrap();
        let id = uuid::Uuid::parse_str(&created.id).unwrap();
        assert_eq!(id.get_version_num(), 7, "ids are UUID v7");
        assert_eq!(created.sync_origin, REGION);

        let changes = recorder.changes();
        assert_eq!(changes.len(), 1);
        let change = &changes[0];
        assert_eq!(change.resource, "customers");
        assert_eq!(change.entity_id, created.id);
        assert_eq!(change.kind, OpKind::Upsert);
        assert_eq!(change.version.hlc, Hlc::from_i64(created.sync_version).unwrap());
        assert_eq!(change.version.origin, REGION);
        assert_eq!(change.payload, CustomerPayload::from(&created).to_value());
        assert_eq!(change.payload["deleted_at"], serde_json::Value::Null);

        let stored = raw_rows_of(&db.pool);
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].sync_version, created.sync_version);
        assert_eq!(stored[0].sync_origin, REGION);

        let got = GetCustomerAction::new(db.pool.clone()).run(created.id.clone()).await.unwrap();
        assert_eq!(got, created, "what was returned is what was stored, to the microsecond");
    }

    async fn a_failing_recorder_leaves_no_row_behind(db: TestDb) {
        let good = FakeRecorder::new();
        let bad = FakeRecorder::failing();
        let err = CreateCustomerAction::new(db.pool.clone(), bad.clone())
            .run(input("acme", "Nobody"))
            .await
            .unwrap_err();
        assert!(matches!(err, CustomersError::Db(_)), "{err:?}");
        assert!(raw_rows_of(&db.pool).is_empty(), "the insert was rolled back");

        let created = CreateCustomerAction::new(db.pool.clone(), good.clone())
            .run(input("acme", "Ada"))
            .await
            .unwrap();
        let before = raw_rows_of(&db.pool);
        UpdateCustomerAction::new(db.pool.clone(), bad.clone())
            .run(UpdateCustomerInput {
                id: created.id.clone(),
                name: Some("Changed".into()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        DeleteCustomerAction::new(db.pool.clone(), bad.clone(), ResourceRegistry::new())
            .run(created.id.clone())
            .await
            .unwrap_err();
        assert_eq!(raw_rows_of(&db.pool), before, "update and delete were rolled back");
        assert_eq!(good.changes().len(), 1);
    }

    async fn update_changes_only_the_named_fields_with_a_newer_version(db: TestDb) {
        let recorder = FakeRecorder::new();
        let created = CreateCustomerAction::new(db.pool.clone(), recorder.clone())
            .run(input("acme", "Ada"))
            .await
            .unwrap();
        let updated = UpdateCustomerAction::new(db.pool.clone(), recorder.clone())
            .run(UpdateCustomerInput {
                id: created.id.clone(),
                status: Some(CustomerStatus::Suspended),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(updated.name, "Ada");
        assert_eq!(updated.status, "suspended");
        assert_eq!(updated.created_at, created.created_at);
        assert!(updated.updated_at >= created.updated_at);
        assert!(updated.sync_version > created.sync_version);
        let changes = recorder.changes();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[1].payload["status"], "suspended");

        let missing = uuid::Uuid::now_v7().to_string();
        let err = UpdateCustomerAction::new(db.pool.clone(), recorder.clone())
            .run(UpdateCustomerInput { id: missing, name: Some("x".into()), ..Default::default() })
            .await
            .unwrap_err();
        assert!(matches!(err, CustomersError::NotFound(_)), "{err:?}");
        let err = UpdateCustomerAction::new(db.pool.clone(), recorder)
            .run(UpdateCustomerInput { id: created.id, name: Some("  ".into()), ..Default::default() })
            .await
            .unwrap_err();
        assert!(matches!(err, CustomersError::Validation(ref f) if f[0].field == "name"), "{err:?}");
    }

    async fn an_update_that_changes_nothing_records_nothing(db: TestDb) {
        let recorder = FakeRecorder::new();
        let created = CreateCustomerAction::new(db.pool.clone(), recorder.clone())
            .run(input("acme", "Ada"))
            .await
            .unwrap();
        let same = UpdateCustomerAction::new(db.pool.clone(), recorder.clone())
            .run(UpdateCustomerInput {
                id: created.id.clone(),
                name: Some("Ada".into()),
                ..UpdateCustomerInput::default()
            })
            .await
            .unwrap();
        assert_eq!(same, created, "same version, same updated_at");
        assert_eq!(recorder.changes().len(), 1, "only the create was recorded");
    }

    async fn delete_leaves_a_versioned_tombstone(db: TestDb) {
        let recorder = FakeRecorder::new();
        let created = CreateCustomerAction::new(db.pool.clone(), recorder.clone())
            .run(input("acme", "Ada"))
            .await
            .unwrap();
        let tombstone = DeleteCustomerAction::new(db.pool.clone(), recorder.clone(), ResourceRegistry::new())
            .run(created.id.clone())
            .await
            .unwrap();
        assert!(tombstone.sync_version > created.sync_version);
        let rows = raw_rows_of(&db.pool);
        assert_eq!(rows.len(), 1, "the row stays");
        assert_eq!(rows[0].deleted_at, tombstone.deleted_at);
        assert_eq!(rows[0].sync_version, tombstone.sync_version);
        let change = recorder.changes().pop().unwrap();
        assert_eq!(change.kind, OpKind::Delete);
        assert!(change.payload["deleted_at"].is_string());

        for err in [
            GetCustomerAction::new(db.pool.clone()).run(created.id.clone()).await.unwrap_err(),
            DeleteCustomerAction::new(db.pool.clone(), recorder.clone(), ResourceRegistry::new())
                .run(created.id.clone())
                .await
                .unwrap_err(),
            GetCustomerAction::new(db.pool.clone()).run("not-a-uuid".into()).await.unwrap_err(),
        ] {
            assert!(matches!(err, CustomersError::NotFound(_)), "{err:?}");
        }
        assert_eq!(recorder.changes().len(), 2, "a failed delete records nothing");
    }

    async fn list_pages_by_id_per_tenant_without_tombstones(db: TestDb) {
        let recorder = FakeRecorder::new();
        let create = CreateCustomerAction::new(db.pool.clone(), recorder.clone());
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(create.run(input("acme", &format!("C{i}"))).await.unwrap().id);
        }
        create.run(input("other", "Elsewhere")).await.unwrap();
        DeleteCustomerAction::new(db.pool.clone(), recorder, ResourceRegistry::new())
            .run(ids.remove(2))
            .await
            .unwrap();
        ids.sort();

        let list = ListCustomersAction::new(db.pool.clone());
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = list
                .run(ListCustomersInput { tenant_id: "acme".into(), limit: 3, after: after.clone() })
                .await
                .unwrap();
            seen.extend(page.items.iter().map(|c| c.id.clone()));
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ids);
        let exact = list
            .run(ListCustomersInput { tenant_id: "acme".into(), limit: 4, after: None })
            .await
            .unwrap();
        assert_eq!(exact.items.len(), 4);
        assert_eq!(exact.next_after, None, "no empty last page when the page is exactly full");
    }

    async fn concurrent_updates_get_versions_in_commit_order(db: TestDb) {
        let recorder = FakeRecorder::new();
        let created = CreateCustomerAction::new(db.pool.clone(), recorder.clone())
            .run(input("acme", "start"))
            .await
            .unwrap();
        let mut handles = Vec::new();
        for i in 0..8 {
            let action = UpdateCustomerAction::new(db.pool.clone(), recorder.clone());
            let id = created.id.clone();
            handles.push(tokio::spawn(async move {
                action
                    .run(UpdateCustomerInput { id, name: Some(format!("writer {i}")), ..Default::default() })
                    .await
                    .unwrap()
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        // The row holds the write with the highest version, and the changes were recorded in
        // version order (the version is taken after the row lock).
        let changes = recorder.changes();
        assert_eq!(changes.len(), 9);
        assert!(changes.windows(2).all(|w| w[0].version < w[1].version), "{changes:?}");
        let last = changes.last().unwrap();
        let row = raw_rows_of(&db.pool).pop().unwrap();
        assert_eq!(row.sync_version, last.version.hlc.as_i64());
        assert_eq!(serde_json::Value::String(row.name), last.payload["name"]);
    }
}
