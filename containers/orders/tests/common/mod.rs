//! Test support shared by the orders tests: a fake change recorder, a stand-in `customers`
//! resource over the real `customers` table (every container's migrations run on every test
//! database), raw row reads and the server.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use orders::OrdersResource;
use ship::contracts::{
    ApplyOutcome, Change, FieldError, OpKind, ResourceRegistry, RowInfo, RowState, SyncResource,
};
use ship::testing::{spawn_app, TestApp};
use ship::{AnyConnection, DbError, DbPool};

#[allow(unused_imports)]
pub use ship::testing::FakeRecorder;
pub const REGION: &str = ship::testing::FAKE_REGION;

/// A stand-in for the customers container's resource: `row_info` reads the real `customers`
/// table (rows inserted with [`insert_customer`]); nothing else is used by orders.
pub struct CustomersStub {
    /// How many `row_info` calls were made, and with `lock`.
    pub calls: Mutex<Vec<(usize, bool)>>,
}

#[derive(QueryableByName)]
struct CustomerInfo {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    tenant_id: String,
    #[diesel(sql_type = Nullable<Timestamp>)]
    deleted_at: Option<NaiveDateTime>,
}

impl SyncResource for CustomersStub {
    fn name(&self) -> &'static str {
        "customers"
    }
    fn validate(&self, _: &str, _: OpKind, _: &serde_json::Value) -> Result<(), Vec<FieldError>> {
        Ok(())
    }
    fn apply(
        &self,
        _: &mut AnyConnection,
        _: &Change,
        _: ship::contracts::ConflictPolicy,
    ) -> Result<ApplyOutcome, DbError> {
        Ok(ApplyOutcome::Duplicate)
    }
    fn snapshot_page(
        &self,
        _: &mut AnyConnection,
        _: Option<&str>,
        _: i64,
    ) -> Result<Vec<Change>, DbError> {
        Ok(vec![])
    }
    fn entity(&self, _: &mut AnyConnection, _: &str) -> Result<Option<Change>, DbError> {
        Ok(None)
    }
    fn digest(&self, _: &mut AnyConnection) -> Result<String, DbError> {
        Ok(String::new())
    }
    fn row_info(
        &self,
        conn: &mut AnyConnection,
        ids: &[&str],
        lock: bool,
    ) -> Result<HashMap<String, RowInfo>, DbError> {
        self.calls.lock().unwrap().push((ids.len(), lock));
        let mut out = HashMap::new();
        for id in ids {
            let sql = format!(
                "SELECT id, tenant_id, deleted_at FROM customers WHERE id = {}{}",
                if matches!(conn, AnyConnection::Pg(_)) {
                    "$1"
                } else {
                    "?"
                },
                if lock && !matches!(conn, AnyConnection::Sqlite(_)) {
                    " FOR UPDATE"
                } else {
                    ""
                }
            );
            let query = diesel::sql_query(sql).bind::<Text, _>(id.to_string());
            let rows: Vec<CustomerInfo> = match conn {
                AnyConnection::Mysql(c) => query.load(c)?,
                AnyConnection::Pg(c) => query.load(c)?,
                AnyConnection::Sqlite(c) => query.load(c)?,
            };
            for row in rows {
                let state = if row.deleted_at.is_some() {
                    RowState::Deleted
                } else {
                    RowState::Live
                };
                out.insert(
                    row.id,
                    RowInfo {
                        state,
                        tenant_id: row.tenant_id,
                    },
                );
            }
        }
        Ok(out)
    }
}

/// The registry of these tests: the customers stand-in and the real orders resource.
pub fn registry() -> (ResourceRegistry, Arc<CustomersStub>) {
    let stub = Arc::new(CustomersStub {
        calls: Mutex::new(Vec::new()),
    });
    let mut registry = ResourceRegistry::new();
    registry.register(stub.clone()).unwrap();
    registry.register(Arc::new(OrdersResource)).unwrap();
    (registry, stub)
}

/// A customer row, live or a tombstone, with raw SQL.
pub fn insert_customer(pool: &DbPool, id: &str, tenant: &str, deleted: bool) {
    let deleted_at = if deleted {
        "'2026-12-01 00:00:00'"
    } else {
        "NULL"
    };
    pool.get()
        .unwrap()
        .batch_execute(&format!(
            "INSERT INTO customers (id, tenant_id, name, email, status, created_at, updated_at, \
             sync_version, sync_origin, deleted_at) VALUES ('{id}', '{tenant}', 'C', 'c@example.com', \
             'active', '2026-12-01 00:00:00', '2026-12-01 00:00:00', 1, 'eu', {deleted_at})"
        ))
        .unwrap();
}

/// A fresh customer id, inserted live for `tenant`.
pub fn live_customer(pool: &DbPool, tenant: &str) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    insert_customer(pool, &id, tenant, false);
    id
}

/// A row as stored, sync columns included, read with raw SQL.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct RawRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub number: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Text)]
    pub lines: String,
    #[diesel(sql_type = BigInt)]
    pub total_minor: i64,
    #[diesel(sql_type = Timestamp)]
    pub updated_at: NaiveDateTime,
    #[diesel(sql_type = BigInt)]
    pub sync_version: i64,
    #[diesel(sql_type = Text)]
    pub sync_origin: String,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub deleted_at: Option<NaiveDateTime>,
}

pub fn raw_rows(conn: &mut AnyConnection) -> Vec<RawRow> {
    // `lines` is a reserved word in MariaDB; SQLite takes the backquotes too, PostgreSQL
    // takes it bare.
    let sql = "SELECT id, number, status, `lines`, total_minor, updated_at, sync_version, \
               sync_origin, deleted_at FROM orders ORDER BY id";
    match conn {
        AnyConnection::Sqlite(c) => diesel::sql_query(sql).load(c).unwrap(),
        AnyConnection::Mysql(c) => diesel::sql_query(sql).load(c).unwrap(),
        AnyConnection::Pg(c) => diesel::sql_query(sql.replace('`', "")).load(c).unwrap(),
    }
}

pub fn raw_rows_of(pool: &DbPool) -> Vec<RawRow> {
    raw_rows(&mut pool.get().unwrap())
}

/// The server with the orders routes, recording into `recorder`.
pub async fn app(pool: &DbPool, recorder: Arc<FakeRecorder>) -> TestApp {
    let (registry, _) = registry();
    spawn_app(
        pool.clone(),
        Arc::new(orders::ui::http::configure_with(recorder, registry)),
    )
    .await
}
