//! Test support (feature `testing`: enabled by the other members' dev-dependencies, and by
//! `--all-features` for ship's own integration tests).
//!
//! - [`TestDb`]: a fresh database per test — a temporary SQLite file, or a freshly created
//!   database on the MariaDB server named by `TEST_MYSQL_URL` or the PostgreSQL server named by
//!   `TEST_PG_URL`, dropped when the `TestDb` drops.
//! - [`backend_tests!`](crate::backend_tests): one test body, one test per backend, named
//!   `<test>::sqlite`, `<test>::mysql` and `<test>::postgres`, so a run can skip or count a
//!   backend by name.
//! - [`spawn_app`]: the real HTTP server on `127.0.0.1:0`.
//! - [`mysql_session_counters`]: what a MariaDB session has sent (round trips, prepares).
//!
//! Set-up failures panic with a clear message: this is test code, and a test that cannot get
//! its database must fail loudly, never pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::ServerHandle;

use crate::config::HttpSettings;
use crate::db::{self, migrations, Backend, DatabaseUrl, DbPool, PoolOptions};
use crate::http::{self, Configure};

/// The environment variable naming the MariaDB server tests create their databases on, e.g.
/// `mysql://root@127.0.0.1:3306/test` (the database in the URL is only used to connect).
pub const TEST_MYSQL_URL: &str = "TEST_MYSQL_URL";

/// The MariaDB server for tests, if configured.
pub fn mysql_server_url() -> Option<DatabaseUrl> {
    let raw = std::env::var(TEST_MYSQL_URL)
        .ok()
        .filter(|v| !v.trim().is_empty())?;
    Some(DatabaseUrl::parse(&raw).unwrap_or_else(|e| panic!("{TEST_MYSQL_URL} is invalid: {e}")))
}

/// The environment variable naming the PostgreSQL server tests create their databases on, e.g.
/// `postgres://postgres@127.0.0.1:5432/postgres` (the database in the URL is only used to
/// connect).
pub const TEST_PG_URL: &str = "TEST_PG_URL";

/// The PostgreSQL server for tests, if configured.
pub fn pg_server_url() -> Option<DatabaseUrl> {
    let raw = std::env::var(TEST_PG_URL)
        .ok()
        .filter(|v| !v.trim().is_empty())?;
    let url = DatabaseUrl::parse(&raw).unwrap_or_else(|e| panic!("{TEST_PG_URL} is invalid: {e}"));
    assert_eq!(
        url.backend(),
        Backend::Postgres,
        "{TEST_PG_URL} must be a postgres:// URL"
    );
    Some(url)
}

/// The backends this test run covers: SQLite always, MariaDB when `TEST_MYSQL_URL` is set,
/// PostgreSQL when `TEST_PG_URL` is set.
pub fn configured_backends() -> Vec<Backend> {
    let mut out = vec![Backend::Sqlite];
    if mysql_server_url().is_some() {
        out.push(Backend::Mysql);
    }
    if pg_server_url().is_some() {
        out.push(Backend::Postgres);
    }
    out
}

/// A database that exists for one test.
pub struct TestDb {
    pub pool: DbPool,
    pub url: DatabaseUrl,
    _dir: Option<tempfile::TempDir>,
    /// The server and the database to drop with this `TestDb` (MariaDB, PostgreSQL).
    cleanup: Option<(DatabaseUrl, String)>,
}

impl TestDb {
    /// A fresh, migrated database on `backend`.
    pub fn new(backend: Backend) -> Self {
        let db = Self::unmigrated(backend);
        let mut conn = db.pool.get().expect("test database connection");
        migrations::run_pending(&mut conn).expect("migrations apply to a fresh test database");
        drop(conn);
        db
    }

    pub fn sqlite() -> Self {
        Self::new(Backend::Sqlite)
    }

    pub fn mysql() -> Self {
        Self::new(Backend::Mysql)
    }

    pub fn postgres() -> Self {
        Self::new(Backend::Postgres)
    }

    /// A fresh database with no migrations applied.
    pub fn unmigrated(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let path = dir.path().join("test.db");
                let url = DatabaseUrl::sqlite_file(&path.to_string_lossy());
                let pool =
                    DbPool::connect(&url, test_pool_options()).expect("SQLite test database");
                Self {
                    pool,
                    url,
                    _dir: Some(dir),
                    cleanup: None,
                }
            }
            Backend::Mysql => {
                let server = mysql_server_url().unwrap_or_else(|| {
                    panic!(
                        "this is a MariaDB test but {TEST_MYSQL_URL} is not set; set it \
                         (e.g. mysql://root@127.0.0.1:3306/test) or skip these tests with \
                         `--skip ::mysql`"
                    )
                });
                let name = format!("rs_t_{}", uuid::Uuid::new_v4().simple());
                let mut control =
                    db::establish(&server).unwrap_or_else(|e| panic!("{TEST_MYSQL_URL}: {e}"));
                diesel::connection::SimpleConnection::batch_execute(
                    &mut control,
                    &format!(
                        "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"
                    ),
                )
                .expect("CREATE DATABASE for the test");
                let url = server.with_database(&name).expect("test database URL");
                let pool =
                    DbPool::connect(&url, test_pool_options()).expect("MariaDB test database");
                Self {
                    pool,
                    url,
                    _dir: None,
                    cleanup: Some((server, name)),
                }
            }
            Backend::Postgres => {
                let server = pg_server_url().unwrap_or_else(|| {
                    panic!(
                        "this is a PostgreSQL test but {TEST_PG_URL} is not set; set it \
                         (e.g. postgres://postgres@127.0.0.1:5432/postgres) or skip these tests \
                         with `--skip ::postgres`"
                    )
                });
                let name = format!("rs_t_{}", uuid::Uuid::new_v4().simple());
                let mut control =
                    db::establish(&server).unwrap_or_else(|e| panic!("{TEST_PG_URL}: {e}"));
                // template0: nobody is connected to it (a session on template1 would make a
                // concurrent CREATE DATABASE fail). The server's locale is kept: every
                // character column is `COLLATE "C"` itself (ADR 0018).
                diesel::connection::SimpleConnection::batch_execute(
                    &mut control,
                    &format!("CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'"),
                )
                .expect("CREATE DATABASE for the test");
                let url = server.with_database(&name).expect("test database URL");
                let pool =
                    DbPool::connect(&url, test_pool_options()).expect("PostgreSQL test database");
                Self {
                    pool,
                    url,
                    _dir: None,
                    cleanup: Some((server, name)),
                }
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.pool.backend()
    }
}

fn test_pool_options() -> PoolOptions {
    PoolOptions {
        max_size: 8,
        connect_timeout: std::time::Duration::from_secs(10),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((server, name)) = self.cleanup.take() {
            // The pool (a field) still holds connections here: PostgreSQL refuses to drop a
            // database in use unless forced.
            let drop = match server.backend() {
                Backend::Postgres => format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                _ => format!("DROP DATABASE IF EXISTS `{name}`"),
            };
            if let Ok(mut control) = db::establish(&server) {
                let _ = diesel::connection::SimpleConnection::batch_execute(&mut control, &drop);
            }
        }
    }
}

/// Write one test body, get one test per backend:
///
/// ```ignore
/// ship::backend_tests! {
///     async fn migrations_round_trip(db: TestDb) {
///         // `db` is a fresh, migrated ship::testing::TestDb
///     }
/// }
/// ```
///
/// expands to `mod migrations_round_trip { async fn sqlite(); async fn mysql(); async fn
/// postgres(); }` (tokio tests; the calling crate needs `tokio` as a dev-dependency). The
/// MariaDB variant fails — it never silently passes — when `TEST_MYSQL_URL` is not set, the
/// PostgreSQL one when `TEST_PG_URL` is not; `make test` skips them by name instead.
/// MariaDB: this session's counters `names` (`SESSION_STATUS`, e.g. `COM_SET_OPTION`,
/// `COM_STMT_PREPARE`, `COM_STMT_EXECUTE`), in the order given. The read is itself one prepare
/// and one execution, counted in what it returns.
pub fn mysql_session_counters(conn: &mut crate::AnyConnection, names: &[&str]) -> Vec<i64> {
    use diesel::sql_types::{BigInt, Text};
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Counter {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = BigInt)]
        value: i64,
    }
    let crate::AnyConnection::Mysql(c) = conn else {
        panic!("session counters are MariaDB's")
    };
    let rows: Vec<Counter> = diesel::sql_query(
        "SELECT VARIABLE_NAME AS name, CAST(VARIABLE_VALUE AS SIGNED) AS value \
         FROM information_schema.SESSION_STATUS",
    )
    .load(c)
    .unwrap_or_else(|e| panic!("reading the session's counters: {e}"));
    names
        .iter()
        .map(|n| {
            rows.iter()
                .find(|r| r.name.eq_ignore_ascii_case(n))
                .map(|r| r.value)
                .unwrap_or_else(|| panic!("no session counter {n}"))
        })
        .collect()
}

/// Statements `conn` sent while `f` ran: on MariaDB its session's `Questions` counter (text
/// queries, and prepares and executions of prepared statements, this measure's own read
/// included); on PostgreSQL and SQLite every query diesel started (neither keeps a per-session
/// count).
pub fn statements_during<T>(
    conn: &mut crate::AnyConnection,
    f: impl FnOnce(&mut crate::AnyConnection) -> T,
) -> (T, i64) {
    use diesel::connection::{Connection, InstrumentationEvent};
    use std::sync::atomic::{AtomicI64, Ordering};
    if matches!(conn, crate::AnyConnection::Mysql(_)) {
        let before = mysql_session_counters(conn, &["QUESTIONS"])[0];
        let out = f(conn);
        return (
            out,
            mysql_session_counters(conn, &["QUESTIONS"])[0] - before,
        );
    }
    let started = Arc::new(AtomicI64::new(0));
    let counter = Arc::clone(&started);
    let count = move |event: InstrumentationEvent<'_>| {
        if matches!(event, InstrumentationEvent::StartQuery { .. }) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    };
    let quiet = |_: InstrumentationEvent<'_>| {};
    match conn {
        crate::AnyConnection::Pg(c) => c.set_instrumentation(count),
        crate::AnyConnection::Sqlite(c) => c.set_instrumentation(count),
        crate::AnyConnection::Mysql(_) => {}
    }
    let out = f(conn);
    match conn {
        crate::AnyConnection::Pg(c) => c.set_instrumentation(quiet),
        crate::AnyConnection::Sqlite(c) => c.set_instrumentation(quiet),
        crate::AnyConnection::Mysql(_) => {}
    }
    (out, started.load(Ordering::Relaxed))
}

#[macro_export]
macro_rules! backend_tests {
    ($($(#[$meta:meta])* async fn $name:ident($db:ident : TestDb) $body:block)*) => {
        $(
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let $db = $crate::testing::TestDb::new($crate::db::Backend::Sqlite);
                    $body
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn mysql() {
                    let $db = $crate::testing::TestDb::new($crate::db::Backend::Mysql);
                    $body
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let $db = $crate::testing::TestDb::new($crate::db::Backend::Postgres);
                    $body
                }
            }
        )*
    };
}

/// A server running for one test.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub address: String,
    pub client: reqwest::Client,
    handle: ServerHandle,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Stop the server gracefully and wait for it.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// Start the real HTTP server (ship's middleware, health routes, `configure`'s routes) on an
/// ephemeral loopback port.
pub async fn spawn_app(pool: DbPool, configure: Configure) -> TestApp {
    spawn_app_with(pool, HttpSettings::default(), configure).await
}

/// [`spawn_app`] with explicit HTTP settings (body limit, …); `bind` is ignored.
pub async fn spawn_app_with(pool: DbPool, settings: HttpSettings, configure: Configure) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let port = listener.local_addr().expect("local address").port();
    let settings = HttpSettings {
        workers: Some(settings.workers.unwrap_or(2)),
        ..settings
    };
    let server = http::server(listener, pool, &settings, configure).expect("server starts");
    let handle = server.handle();
    tokio::spawn(server);
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("HTTP client"),
        handle,
    }
}

/// The signing key of every test in this process (generated once): regions under test run
/// the broker role with it, and tests mint tokens — good and bad — with [`test_issuer`].
pub fn test_signing_key_pem() -> &'static str {
    static PEM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PEM.get_or_init(|| {
        crate::auth::SigningKey::generate()
            .expect("generate the test signing key")
            .to_pem()
    })
}

/// An issuer with the test key and the default issuer name and lifetime.
pub fn test_issuer() -> crate::auth::TokenIssuer {
    let key = crate::auth::SigningKey::from_pem(test_signing_key_pem()).expect("test key");
    let defaults = crate::auth::AuthSettings::default();
    crate::auth::TokenIssuer::new(
        key,
        defaults.issuer,
        std::time::Duration::from_secs(defaults.max_token_lifetime_secs),
    )
}

/// A valid token for `sub` to call `aud` on `scope`, signed with the test key.
pub fn test_token(sub: &str, aud: &str, scope: &[&str]) -> String {
    let scope: Vec<String> = scope.iter().map(|s| s.to_string()).collect();
    test_issuer()
        .issue(sub, aud, &scope)
        .expect("sign a test token")
        .token
}

/// A verifier for `region` that accepts the test key.
pub fn test_gate(region: &str) -> crate::auth::middleware::AuthGate {
    let issuer = test_issuer();
    let verifier = crate::auth::TokenVerifier::new(
        region,
        crate::auth::AuthSettings::default(),
        std::slice::from_ref(issuer.public_jwk()),
    )
    .expect("test verifier");
    crate::auth::middleware::AuthGate::new(std::sync::Arc::new(verifier), None)
}

/// The region a [`FakeRecorder`] writes as.
pub const FAKE_REGION: &str = "eu-west";

/// A `ChangeRecorder` for a domain container's tests: stamps from its own clock as
/// [`FAKE_REGION`] (or the region given) and keeps every recorded change in memory; a [`FakeRecorder::failing`] one
/// refuses `record_local` (after the caller has written its row, as the real recorder would).
pub struct FakeRecorder {
    clock: crate::contracts::HybridClock,
    origin: String,
    fail: bool,
    pub changes: std::sync::Mutex<Vec<crate::contracts::Change>>,
}

impl FakeRecorder {
    pub fn new() -> std::sync::Arc<Self> {
        Self::with(FAKE_REGION, false)
    }

    /// One that writes as region `origin` (a second region of a two-region test).
    pub fn in_region(origin: &str) -> std::sync::Arc<Self> {
        Self::with(origin, false)
    }

    pub fn failing() -> std::sync::Arc<Self> {
        Self::with(FAKE_REGION, true)
    }

    fn with(origin: &str, fail: bool) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            clock: crate::contracts::HybridClock::new(std::time::Duration::from_secs(5)),
            origin: origin.to_string(),
            fail,
            changes: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Every change recorded so far, in order.
    pub fn changes(&self) -> Vec<crate::contracts::Change> {
        self.changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl crate::contracts::ChangeRecorder for FakeRecorder {
    fn stamp(&self, stored: Option<crate::contracts::Hlc>) -> crate::contracts::Version {
        if let Some(stored) = stored {
            self.clock.resume_from(stored);
        }
        crate::contracts::Version::new(self.clock.now(), self.origin.clone())
    }

    fn record_local(
        &self,
        _conn: &mut crate::db::AnyConnection,
        change: &crate::contracts::Change,
    ) -> Result<(), crate::db::DbError> {
        if self.fail {
            return Err(crate::db::DbError::Migration(
                "the fake recorder refuses".into(),
            ));
        }
        self.changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(change.clone());
        Ok(())
    }
}
