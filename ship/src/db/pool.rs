use std::sync::mpsc;
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::r2d2::R2D2Connection;
use diesel::{Connection, ConnectionError};

use super::{AnyConnection, Backend, DatabaseUrl, DbError};

/// Per-connection setup for SQLite: wait for locks instead of failing, WAL so readers never block
/// the writer, `NORMAL` sync (durable at checkpoints, safe with WAL), foreign keys enforced.
const SQLITE_SETUP: &str = "PRAGMA busy_timeout = 5000;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;";

/// Per-connection setup for MariaDB/MySQL: strict mode (bad data is an error, never silently
/// truncated), utf8mb4, UTC, and READ COMMITTED (no gap locks between concurrent changelog and
/// outbox inserts; read-modify-write decisions are made under row locks or in one statement,
/// never by relying on REPEATABLE READ snapshots). A row lock is waited for 5 s, as SQLite's
/// `busy_timeout`, then answered `503 database_busy` (the sender retries) — not the server's
/// default 50 s, longer than a peer waits for an answer.
const MYSQL_SETUP: &str = "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,PIPES_AS_CONCAT';
SET NAMES utf8mb4 COLLATE utf8mb4_nopad_bin;
SET time_zone = '+00:00';
SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED;
SET SESSION innodb_lock_wait_timeout = 5;";

/// The bound on one statement of a PostgreSQL session (lifted while migrations run).
pub(crate) const PG_STATEMENT_TIMEOUT: &str = "60s";

/// Per-connection setup for PostgreSQL (ADR 0018), as `MYSQL_SETUP`: READ COMMITTED (PG's
/// default, set anyway: a server may change it), UTC (`TIMESTAMP` columns hold UTC), UTF-8, a
/// row lock waited for 5 s then `503 database_busy` (lock timeout 55P03), a runaway statement
/// bounded while it holds locks, and a transaction left idle by a vanished client ended.
const PG_SETUP: &str = "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;
SET TIME ZONE 'UTC';
SET client_encoding = 'UTF8';
SET lock_timeout = '5s';
SET statement_timeout = '60s';
SET idle_in_transaction_session_timeout = '60s';";

/// How a pool is sized and how long it waits.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    pub max_size: u32,
    /// Bounds both the first connection attempt and every checkout from the pool.
    pub connect_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 8,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A pooled connection; derefs to [`AnyConnection`].
pub type PooledConnection = r2d2::PooledConnection<Manager>;

/// The r2d2 manager: picks the backend from the URL scheme itself (the derived
/// `MultiConnection::establish` would hide the real error behind "invalid connection url") and
/// applies the per-backend setup to every new connection.
#[derive(Debug)]
pub struct Manager {
    url: DatabaseUrl,
}

impl r2d2::ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = DbError;

    fn connect(&self) -> Result<AnyConnection, DbError> {
        establish(&self.url)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), DbError> {
        conn.ping().map_err(DbError::from)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

#[derive(Debug)]
struct TracingErrorHandler;

impl r2d2::HandleError<DbError> for TracingErrorHandler {
    fn handle_error(&self, error: DbError) {
        tracing::warn!(%error, "database pool could not open a connection");
    }
}

/// Open one connection to `url` and apply the backend's session setup.
pub fn establish(url: &DatabaseUrl) -> Result<AnyConnection, DbError> {
    let unreachable = |e: &dyn std::fmt::Display| DbError::Unreachable {
        url: url.redacted(),
        reason: e.to_string(),
    };
    match url.backend() {
        Backend::Sqlite => {
            let path = url.sqlite_path();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    unreachable(&format!("cannot create directory {}: {e}", dir.display()))
                })?;
            }
            let mut conn = diesel::SqliteConnection::establish(&path.to_string_lossy())
                .map_err(|e: ConnectionError| unreachable(&e))?;
            conn.batch_execute(SQLITE_SETUP)
                .map_err(|e| unreachable(&format!("connection setup failed: {e}")))?;
            Ok(AnyConnection::Sqlite(conn))
        }
        Backend::Mysql => {
            let mut conn = diesel::MysqlConnection::establish(&url.mysql_url())
                .map_err(|e: ConnectionError| unreachable(&e))?;
            conn.batch_execute(MYSQL_SETUP)
                .map_err(|e| unreachable(&format!("connection setup failed: {e}")))?;
            Ok(AnyConnection::Mysql(conn))
        }
        Backend::Postgres => {
            let mut conn = diesel::PgConnection::establish(url.expose())
                .map_err(|e: ConnectionError| unreachable(&e))?;
            conn.batch_execute(PG_SETUP)
                .map_err(|e| unreachable(&format!("connection setup failed: {e}")))?;
            Ok(AnyConnection::Pg(conn))
        }
    }
}

/// [`establish`], but give up after `timeout`: an unroutable host must not hang start-up for the
/// operating system's TCP timeout. A connect attempt that is still hanging is left to its thread.
pub fn establish_within(url: &DatabaseUrl, timeout: Duration) -> Result<AnyConnection, DbError> {
    let (tx, rx) = mpsc::channel();
    let target = url.clone();
    std::thread::Builder::new()
        .name("db-connect".into())
        .spawn(move || {
            // The receiver may have given up already; nothing to do then.
            let _ = tx.send(establish(&target));
        })
        .map_err(|e| DbError::Unreachable {
            url: url.redacted(),
            reason: format!("cannot start a connect thread: {e}"),
        })?;
    rx.recv_timeout(timeout).unwrap_or_else(|_| {
        Err(DbError::Unreachable {
            url: url.redacted(),
            reason: format!("no answer within {}s", timeout.as_secs_f32()),
        })
    })
}

/// The connection pool every database call goes through.
///
/// Diesel is synchronous: [`DbPool::run`] and [`DbPool::transaction`] run their closure on
/// tokio's blocking pool, and the connection goes back to the pool before the future resolves,
/// so a connection is never held across an `.await`.
#[derive(Clone)]
pub struct DbPool {
    pool: r2d2::Pool<Manager>,
    url: DatabaseUrl,
    timeout: Duration,
}

impl std::fmt::Debug for DbPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbPool")
            .field("url", &self.url)
            .field("state", &self.pool.state())
            .finish()
    }
}

impl DbPool {
    /// Build a pool for `url`. Blocking: it first opens one connection (bounded by
    /// `connect_timeout`) so that a wrong password, an unknown host or a server that does not
    /// answer is reported at once with the real reason, not after r2d2's 30 s wait.
    pub fn connect(url: &DatabaseUrl, options: PoolOptions) -> Result<Self, DbError> {
        drop(establish_within(url, options.connect_timeout)?);
        let pool = r2d2::Pool::builder()
            .max_size(options.max_size.max(1))
            // No idle connection opened in the background: a short command (`migrate status`)
            // would exit while r2d2's thread is still in libpq's TLS handshake, and OpenSSL's
            // exit-time cleanup under that thread segfaults the process (seen 6 times in 40
            // runs on PostgreSQL). Connections are opened on demand, with the caller waiting.
            .min_idle(Some(0))
            .connection_timeout(options.connect_timeout)
            .error_handler(Box::new(TracingErrorHandler))
            .build_unchecked(Manager { url: url.clone() });
        Ok(Self {
            pool,
            url: url.clone(),
            timeout: options.connect_timeout,
        })
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    /// Check a connection out of the pool (blocking). Prefer [`DbPool::run`] in async code.
    pub fn get(&self) -> Result<PooledConnection, DbError> {
        self.pool.get().map_err(|e| DbError::PoolTimeout {
            url: self.url.redacted(),
            timeout_secs: self.timeout.as_secs(),
            reason: e.to_string(),
        })
    }

    /// Run `f` with a pooled connection on the blocking pool.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(DbError::Blocking(e.to_string())))?
    }

    /// Run `f` inside one database transaction (see [`transact`]) on the blocking pool.
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + From<diesel::result::Error> + Send + 'static,
    {
        self.run(move |conn| transact(conn, f)).await
    }
}

/// Run `f` in a transaction: committed when it returns `Ok`, rolled back when it returns `Err`.
///
/// On SQLite the transaction starts with `BEGIN IMMEDIATE`: it takes the write lock up front, so
/// a transaction that reads and then writes waits for `busy_timeout` instead of failing with
/// `SQLITE_BUSY` when it tries to upgrade. Other backends use a plain `BEGIN` — on MariaDB, it
/// and the `COMMIT` as cached prepared statements (`mysql_cached`).
///
/// Transactions do not nest: an action owns exactly one, so calling `transact` inside another
/// fails with `AlreadyInTransaction` on every backend (never a silent savepoint on one of them).
pub fn transact<T, E, F>(conn: &mut AnyConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    type Tm = <AnyConnection as Connection>::TransactionManager;
    match conn {
        AnyConnection::Sqlite(inner) => {
            AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")?
        }
        // One round trip instead of three (ADR 0021).
        AnyConnection::Mysql(inner) => super::mysql_cached::begin(inner)?,
        AnyConnection::Pg(inner) => AnsiTransactionManager::begin_transaction_sql(inner, "BEGIN")?,
    }
    match f(conn) {
        Ok(value) => match commit(conn) {
            Ok(()) => Ok(value),
            Err(commit_error) => {
                // Same policy as diesel's `Connection::transaction`: try to roll back, report
                // the commit error (a rollback that fails too marks the connection broken, and
                // the pool drops it).
                if let Err(rollback_error) = Tm::rollback_transaction(conn) {
                    tracing::warn!(%commit_error, %rollback_error, "a commit failed and so did the rollback after it");
                }
                Err(commit_error.into())
            }
        },
        Err(user_error) => match Tm::rollback_transaction(conn) {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(user_error),
            Err(rollback_error) => Err(rollback_error.into()),
        },
    }
}

/// Commit `conn`'s transaction: on MariaDB by a cached prepared `COMMIT` (ADR 0021).
fn commit(conn: &mut AnyConnection) -> diesel::QueryResult<()> {
    match conn {
        AnyConnection::Mysql(inner) => super::mysql_cached::commit(inner),
        _ => <AnyConnection as Connection>::TransactionManager::commit_transaction(conn),
    }
}
