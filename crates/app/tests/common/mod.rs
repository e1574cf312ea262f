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
    // Every test region runs the broker role with the process-wide test key, so tests can
    // mint tokens it accepts (ship::testing::test_token).
    settings.broker.signing_key = Some(ship::config::Secret::new(
        ship::testing::test_signing_key_pem(),
    ));
    settings
}

/// The resources test tokens cover (`nope` so unknown-resource cases get past the token check).
pub const TEST_SCOPE: [&str; 3] = ["customers", "orders", "nope"];

/// A region's web process running in this test.
pub struct Region {
    pub id: String,
    pub base: String,
    pub client: reqwest::Client,
    handle: ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Region {
    pub async fn start(settings: &Settings) -> Self {
        Self::start_app(settings, false).await
    }

    /// The region with its scheduler in the same process (`serve --with-scheduler`).
    pub async fn start_with_scheduler(settings: &Settings) -> Self {
        Self::start_app(settings, true).await
    }

    async fn start_app(settings: &Settings, with_scheduler: bool) -> Self {
        let mut app = Application::build(settings, StartOptions::default())
            .await
            .unwrap();
        if with_scheduler {
            let kernel =
                app::console_kernel::kernel(settings, app.pool(), app.wiring(), app.public_url())
                    .unwrap();
            app = app.with_scheduler(kernel);
        }
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let server = tokio::spawn(app.run_until(std::future::pending()));
        Self {
            id: settings.region_id.clone(),
            base,
            client: reqwest::Client::new(),
            handle,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A valid token for `sub` calling this region.
    pub fn token_from(&self, sub: &str) -> String {
        ship::testing::test_token(sub, &self.id, &TEST_SCOPE)
    }

    /// GET `path`: (status, JSON body). `/sync/` paths carry a valid token from a peer
    /// (`exclude_origin` when the query names one).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let token = path.starts_with("/sync/").then(|| {
            let sub = path
                .split("exclude_origin=")
                .nth(1)
                .and_then(|rest| rest.split('&').next())
                .unwrap_or("peer");
            self.token_from(sub)
        });
        self.get_with(path, token.as_deref()).await
    }

    /// GET with exactly this bearer token (or none).
    pub async fn get_with(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.client.get(self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.unwrap();
        (
            res.status().as_u16(),
            res.json().await.unwrap_or(Value::Null),
        )
    }

    /// POST a JSON body to `path`: (status, JSON body). `/sync/` paths carry a valid token
    /// for the body's `source_region`.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let token = path
            .starts_with("/sync/")
            .then(|| self.token_from(body["source_region"].as_str().unwrap_or("peer")));
        self.post_with(path, body, token.as_deref()).await
    }

    /// POST with exactly this bearer token (or none).
    pub async fn post_with(&self, path: &str, body: &Value, token: Option<&str>) -> (u16, Value) {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.unwrap();
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

/// Settings of region us-east on `db`, reaching the broker at `broker` with `credential`.
pub fn remote_settings_with(db: &TestDb, broker: &str, credential: &str) -> Settings {
    let mut settings = settings_for(db, "us-east");
    settings.broker.enabled = false;
    settings.broker.signing_key = None;
    settings.broker.url = Some(broker.into());
    settings.broker.credential = Some(ship::config::Secret::new(credential));
    settings
}

/// Put `id` at `base_url` into the broker registry of `db` (the tests' shortcut for
/// `regionsync broker regions add`); returns the region's credential.
/// Register `id` at the broker of `db` as a running region: its heartbeat is recorded now, so
/// the broker lists it online (no `peer_offline` alert for it while a test runs).
pub async fn register_region(db: &TestDb, id: &str, base_url: &str) -> String {
    use diesel::sql_types::{Text, Timestamp};
    use diesel::RunQueryDsl;
    use ship::parents::Action;
    let credential = broker::actions::RegisterRegionAction::new(db.pool.clone(), 90)
        .run(broker::actions::RegisterRegionInput {
            id: id.into(),
            base_url: base_url.into(),
            scopes: None,
        })
        .await
        .unwrap()
        .credential;
    let beat = |sql: &'static str| {
        diesel::sql_query(sql)
            .bind::<Timestamp, _>(ship::db::utc_now())
            .bind::<Text, _>(id)
    };
    let question_marks = "UPDATE broker_regions SET last_heartbeat_at = ? WHERE id = ?";
    match &mut *db.pool.get().unwrap() {
        AnyConnection::Sqlite(c) => beat(question_marks).execute(c),
        AnyConnection::Mysql(c) => beat(question_marks).execute(c),
        AnyConnection::Pg(c) => {
            beat("UPDATE broker_regions SET last_heartbeat_at = $1 WHERE id = $2").execute(c)
        }
    }
    .unwrap();
    credential
}

/// An HLC `offset_ms` from now (within the default 5 s drift bound when small).
pub fn hlc(offset_ms: i64) -> i64 {
    let now = ship::contracts::hlc::system_time_ms() as i64;
    (now + offset_ms) << 16
}

/// A full customers payload (what an op carries).
pub fn customer(id: &str, name: &str, deleted: bool) -> Value {
    serde_json::json!({
        "id": id,
        "tenant_id": "t1",
        "name": name,
        "email": "ada@example.com",
        "status": "active",
        "created_at": "2026-11-25T15:00:00.000000Z",
        "updated_at": "2026-11-25T15:00:00.000000Z",
        "deleted_at": if deleted { serde_json::json!("2026-11-25T16:00:00.000000Z") } else { Value::Null },
    })
}

/// A full orders payload for customer `customer_id` of tenant `t1` (what an op carries): one
/// line of 2 × 1250 minor units.
pub fn order(id: &str, customer_id: &str, status: &str, deleted: bool) -> Value {
    serde_json::json!({
        "id": id,
        "tenant_id": "t1",
        "customer_id": customer_id,
        "number": "SO-1",
        "status": status,
        "currency": "EUR",
        "lines": [{"sku": "SKU-1", "quantity": 2, "unit_price_minor": 1250}],
        "total_minor": 2500,
        "created_at": "2026-11-25T15:00:00.000000Z",
        "updated_at": "2026-11-25T15:00:00.000000Z",
        "deleted_at": if deleted { serde_json::json!("2026-11-25T16:00:00.000000Z") } else { Value::Null },
    })
}

/// One number from the database (PostgreSQL keeps an `INTEGER` column's type through `MIN`
/// and the like: cast to `BIGINT` there).
pub fn count(conn: &mut AnyConnection, sql: &str) -> i64 {
    use diesel::prelude::*;
    let expr = match conn {
        AnyConnection::Pg(_) => format!("CAST(({sql}) AS BIGINT)"),
        AnyConnection::Mysql(_) | AnyConnection::Sqlite(_) => format!("({sql})"),
    };
    diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&expr))
        .get_result(conn)
        .unwrap()
}

/// The changelog's entries of the rows `filter` selects (a SQL condition on the rows; `1 = 1`
/// for all), in seq order: a batch row's (ADR 0026) expanded from its payload.
pub fn changelog_entries(
    conn: &mut AnyConnection,
    filter: &str,
) -> Vec<sync::models::ChangeLogEntry> {
    use diesel::prelude::*;
    diesel::sql_query(format!(
        "SELECT * FROM sync_changelog WHERE {filter} ORDER BY resource, seq"
    ))
    .load::<sync::models::ChangeLogRow>(conn)
    .unwrap()
    .into_iter()
    .flat_map(|row| row.entries().unwrap())
    .collect()
}

/// How many changelog entries the rows `filter` selects hold (batch rows hold several).
pub fn entry_count(conn: &mut AnyConnection, filter: &str) -> i64 {
    changelog_entries(conn, filter).len() as i64
}

/// The customers digest of a database (rows, tombstones and versions).
pub fn customers_digest(db: &TestDb) -> String {
    customers::CustomersResource
        .digest(&mut db.pool.get().unwrap())
        .unwrap()
}

// Delivery streams (ADR 0009): what a push peer is owed is the region's own changelog entries
// above its stream's `delivered_through`, less the dead letters (outbox rows).

fn exec_sql(db: &TestDb, sql: &str) {
    diesel::RunQueryDsl::execute(diesel::sql_query(sql), &mut db.pool.get().unwrap()).unwrap();
}

/// Changes of `origin` owed to `peer` (stream entries not delivered, not dead; plus retried
/// dead letters, ADR 0014).
pub fn owed(db: &TestDb, origin: &str, peer: &str) -> i64 {
    let mut conn = db.pool.get().unwrap();
    count(
        &mut conn,
        &format!(
            "SELECT COUNT(*) FROM sync_changelog c JOIN sync_delivery d ON c.resource = d.resource \
             WHERE d.peer = '{peer}' AND c.origin_region = '{origin}' AND c.seq > d.delivered_through \
             AND NOT EXISTS (SELECT 1 FROM sync_outbox o WHERE o.peer = d.peer AND o.resource = d.resource AND o.seq = c.seq)"
        ),
    ) + count(
        &mut conn,
        &format!("SELECT COUNT(*) FROM sync_outbox WHERE peer = '{peer}' AND status = 'pending'"),
    )
}

/// Dead letters (rows of the streams' dead-letter lists) for `peer`.
pub fn dead_letters(db: &TestDb, peer: &str) -> i64 {
    count(
        &mut db.pool.get().unwrap(),
        &format!("SELECT COUNT(*) FROM sync_outbox WHERE peer = '{peer}' AND status = 'dead'"),
    )
}

/// `peer`'s stream of customers: how far it is delivered.
pub fn delivered_through(db: &TestDb, peer: &str) -> i64 {
    count(
        &mut db.pool.get().unwrap(),
        &format!("SELECT delivered_through FROM sync_delivery WHERE peer = '{peer}' AND resource = 'customers'"),
    )
}

/// Pretend `peer` was delivered every customers change up to `seq` at `at` (an SQL expression:
/// `CURRENT_TIMESTAMP` or a quoted literal).
pub fn mark_delivered_through(db: &TestDb, peer: &str, seq: i64, at: &str) {
    exec_sql(
        db,
        &format!(
            "UPDATE sync_delivery SET delivered_through = {seq}, claimed_through = CASE WHEN claimed_through > {seq} THEN claimed_through ELSE {seq} END, \
             last_delivered_at = {at} WHERE peer = '{peer}' AND resource = 'customers'"
        ),
    );
    exec_sql(
        db,
        &format!("DELETE FROM sync_delivery_ranges WHERE peer = '{peer}' AND resource = 'customers' AND last_seq <= {seq}"),
    );
}

/// Pretend every customers change owed to `peer` died (422): dead letters, the stream past them.
pub fn dead_letter_all(db: &TestDb, origin: &str, peer: &str) {
    exec_sql(
        db,
        &format!(
            "INSERT INTO sync_outbox (peer, resource, seq, status, attempts, next_attempt_at, last_error, created_at, updated_at) \
             SELECT d.peer, d.resource, c.seq, 'dead', 1, CURRENT_TIMESTAMP, '422', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP \
             FROM sync_changelog c JOIN sync_delivery d ON c.resource = d.resource \
             WHERE d.peer = '{peer}' AND c.origin_region = '{origin}' AND c.seq > d.delivered_through \
             AND NOT EXISTS (SELECT 1 FROM sync_outbox o WHERE o.peer = d.peer AND o.resource = d.resource AND o.seq = c.seq)"
        ),
    );
    let head = count(
        &mut db.pool.get().unwrap(),
        "SELECT COALESCE(MAX(seq), 0) FROM sync_changelog WHERE resource = 'customers'",
    );
    mark_delivered_through(db, peer, head, "last_delivered_at");
}

/// The scheduler's pull job of region `me` on `db` (`sync.bootstrap = "auto"`), pulling `peer`
/// in pages of `page_limit`.
pub async fn auto_pull_job(
    db: &TestDb,
    me: &str,
    peer: &str,
    page_limit: u32,
) -> sync::ui::jobs::PullChangesJob {
    let mut settings = settings_for(db, me);
    settings.sync.peers = vec![sync::PeerConfig::both(peer)];
    settings.sync.pull_page_limit = page_limit;
    let (pool, wiring) = app::startup::prepare(&settings, StartOptions::default())
        .await
        .unwrap();
    sync::ui::jobs::PullChangesJob::new(
        wiring.pull_action(&pool, &settings).unwrap(),
        wiring.directory(),
        settings.sync.pull_peer_ids(),
        vec!["customers".into()],
        page_limit,
    )
    .with_bootstrap(wiring.bootstrap_action(&pool, &settings).unwrap())
}

/// (kind, subject, state) of every alert recorded in `db`, oldest first.
pub async fn alert_history(db: &TestDb) -> Vec<(String, String, String)> {
    use ship::parents::Action;
    let mut all = sync::actions::ListAlertsAction::new(db.pool.clone())
        .run(100)
        .await
        .unwrap();
    all.reverse();
    all.into_iter()
        .map(|a| (a.kind, a.subject, a.state))
        .collect()
}
