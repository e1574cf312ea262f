//! Test support shared by the customers tests: fake change recorders and raw row reads.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use ship::contracts::{Change, ChangeRecorder, HybridClock, Version};
use ship::testing::{spawn_app, TestApp};
use ship::{AnyConnection, DbError, DbPool};

pub const REGION: &str = "eu-west";

/// Records every change in memory; fails `record_local` when `fail` is set (after the caller has
/// written its row, as the real recorder would).
pub struct FakeRecorder {
    clock: HybridClock,
    origin: String,
    fail: bool,
    pub changes: Mutex<Vec<Change>>,
}

impl FakeRecorder {
    pub fn new() -> Arc<Self> {
        Self::with(false)
    }

    pub fn failing() -> Arc<Self> {
        Self::with(true)
    }

    fn with(fail: bool) -> Arc<Self> {
        Arc::new(Self {
            clock: HybridClock::new(Duration::from_secs(5)),
            origin: REGION.to_string(),
            fail,
            changes: Mutex::new(Vec::new()),
        })
    }

    pub fn changes(&self) -> Vec<Change> {
        self.changes.lock().unwrap().clone()
    }
}

impl ChangeRecorder for FakeRecorder {
    fn stamp(&self, stored: Option<ship::contracts::Hlc>) -> Version {
        if let Some(stored) = stored {
            self.clock.resume_from(stored);
        }
        Version::new(self.clock.now(), self.origin.clone())
    }

    fn record_local(&self, _conn: &mut AnyConnection, change: &Change) -> Result<(), DbError> {
        if self.fail {
            return Err(DbError::Migration("the fake recorder refuses".into()));
        }
        self.changes.lock().unwrap().push(change.clone());
        Ok(())
    }
}

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
