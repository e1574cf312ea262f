//! Test support shared by the customers tests: fake change recorders and raw row reads.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use ship::testing::{spawn_app, TestApp};
use ship::{AnyConnection, DbPool};

#[allow(unused_imports)]
pub use ship::testing::FakeRecorder;
pub const REGION: &str = ship::testing::FAKE_REGION;

/// A row as stored, sync columns included, read with raw SQL.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct RawRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub name: String,
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
    let sql = "SELECT id, name, updated_at, sync_version, sync_origin, deleted_at \
               FROM customers ORDER BY id";
    match conn {
        AnyConnection::Sqlite(c) => diesel::sql_query(sql).load(c).unwrap(),
        AnyConnection::Mysql(c) => diesel::sql_query(sql).load(c).unwrap(),
        AnyConnection::Pg(c) => diesel::sql_query(sql).load(c).unwrap(),
    }
}

pub fn raw_rows_of(pool: &DbPool) -> Vec<RawRow> {
    raw_rows(&mut pool.get().unwrap())
}

/// The server with the customers routes, recording into `recorder`.
pub async fn app(pool: &DbPool, recorder: Arc<FakeRecorder>) -> TestApp {
    spawn_app(
        pool.clone(),
        Arc::new(customers::ui::http::configure_with(
            recorder,
            ship::contracts::ResourceRegistry::new(),
        )),
    )
    .await
}
