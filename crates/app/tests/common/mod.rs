//! Shared by the app's integration tests: settings for a test region and a running region.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use actix_web::dev::ServerHandle;
use app::startup::{Application, StartOptions};
use app::Settings;
use serde_json::Value;
use ship::contracts::SyncResource;
use ship::testing::TestDb;
use ship::AnyConnection;

/// Settings of region `region` on `db`, on a free port, one worker.
pub fn settings_for(db: &TestDb, region: &str) -> Settings {
    let mut settings = Settings {
        region_id: region.into(),
        ..Settings::default()
    };
    settings.database.url = db.url.clone();
    settings.http.bind = "127.0.0.1:0".into();
    settings.http.workers = Some(1);
    settings
}

/// A region's web process running in this test.
pub struct Region {
    pub base: String,
    pub client: reqwest::Client,
    handle: ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Region {
    pub async fn start(settings: &Settings) -> Self {
        let app = Application::build(settings, StartOptions::default())
            .await
            .unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let server = tokio::spawn(app.run_until(std::future::pending()));
        Self {
            base,
            client: reqwest::Client::new(),
            handle,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path`: (status, JSON body).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = self.client.get(self.url(path)).send().await.unwrap();
        (
            res.status().as_u16(),
            res.json().await.unwrap_or(Value::Null),
        )
    }

    /// POST a JSON body to `path`: (status, JSON body).
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let res = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        (
            res.status().as_u16(),
            res.json().await.unwrap_or(Value::Null),
        )
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.server.abort();
    }
}

/// One number from the database.
pub fn count(conn: &mut AnyConnection, sql: &str) -> i64 {
    use diesel::prelude::*;
    diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
        "({sql})"
    )))
    .get_result(conn)
    .unwrap()
}

/// The customers digest of a database (rows, tombstones and versions).
pub fn customers_digest(db: &TestDb) -> String {
    customers::CustomersResource
        .digest(&mut db.pool.get().unwrap())
        .unwrap()
}
