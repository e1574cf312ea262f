//! The database layer: one connection type over every backend, a pool, per-backend connection
//! setup, migrations and the region binding of a database.
//!
//! Backend-specific SQL (upserts, `FOR UPDATE`, `BEGIN IMMEDIATE`) is written by
//! matching on [`AnyConnection`]'s variant — in one helper per need, never scattered.

mod identity;
pub mod inline_sql;
pub mod migrations;
pub mod mysql_cached;
mod pool;
mod url;

pub use identity::{
    bind_region, bound_region, incarnation, new_incarnation, reincarnate, Incarnation,
    RegionBindingError, IDENTITY_MIGRATION,
};
pub use pool::{
    establish, establish_within, transact, DbPool, Manager, PoolOptions, PooledConnection,
};
pub use url::{Backend, DatabaseUrl};

/// One connection type for every backend (diesel `MultiConnection`).
///
/// `Sqlite` must stay last: the derive tries variants in order when establishing from a URL,
/// and SQLite accepts any string as a file name.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Mysql(diesel::MysqlConnection),
    Pg(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

impl AnyConnection {
    /// The backend this connection speaks to.
    pub fn backend(&self) -> Backend {
        match self {
            AnyConnection::Mysql(_) => Backend::Mysql,
            AnyConnection::Pg(_) => Backend::Postgres,
            AnyConnection::Sqlite(_) => Backend::Sqlite,
        }
    }
}

/// Insert one row `values` into `table` unless a row with its key exists; the number of rows
/// inserted (0: another's row was there first), a `QueryResult<usize>`.
///
/// The form that is safe inside a transaction on every backend (ADR 0018): on PostgreSQL a
/// failed insert — a caught unique violation — aborts the whole transaction, so PostgreSQL and
/// SQLite say `INSERT … ON CONFLICT DO NOTHING`. MariaDB keeps the plain insert and counts a
/// duplicate-key error as 0 (its transaction carries on after an error), not `INSERT IGNORE`,
/// which would also turn strict mode's data errors into warnings.
///
/// ```ignore
/// let inserted = ship::insert_if_absent!(conn, my_table::table, (my_table::id.eq(id), …))?;
/// ```
/// The same diesel query on either server — MariaDB or PostgreSQL, `$c` bound to the typed
/// connection (a query that `AnyConnection` cannot run, like `FOR UPDATE` or a multi-row
/// insert) — and `$sqlite` on SQLite:
///
/// ```ignore
/// ship::on_server!(conn, |c| query.for_update().load(c), sqlite => find_all(conn, ids))
/// ```
#[macro_export]
macro_rules! on_server {
    ($conn:expr, |$c:ident| $server:expr, sqlite => $sqlite:expr) => {
        match $conn {
            $crate::AnyConnection::Mysql($c) => $server,
            $crate::AnyConnection::Pg($c) => $server,
            $crate::AnyConnection::Sqlite(_) => $sqlite,
        }
    };
}

#[macro_export]
macro_rules! insert_if_absent {
    ($conn:expr, $table:expr, $values:expr) => {{
        use ::diesel::RunQueryDsl as _;
        match $conn {
            $crate::db::AnyConnection::Mysql(c) => {
                match ::diesel::insert_into($table).values($values).execute(c) {
                    Err(::diesel::result::Error::DatabaseError(
                        ::diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    )) => Ok(0),
                    other => other,
                }
            }
            $crate::db::AnyConnection::Pg(c) => ::diesel::insert_into($table)
                .values($values)
                .on_conflict_do_nothing()
                .execute(c),
            $crate::db::AnyConnection::Sqlite(c) => ::diesel::insert_into($table)
                .values($values)
                .on_conflict_do_nothing()
                .execute(c),
        }
    }};
}

/// Errors of the database layer. Every variant that concerns a server names it by its redacted
/// URL, never with the password.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot connect to the database at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(
        "no database connection available from the pool for {url} within {timeout_secs}s: {reason}"
    )]
    PoolTimeout {
        url: String,
        timeout_secs: u64,
        reason: String,
    },
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("a blocking database task did not finish: {0}")]
    Blocking(String),
}

impl DbError {
    /// True for failures a retry may cure: a deadlock victim, a lock wait that timed out, a
    /// SQLite database busy beyond `busy_timeout`. Answered 503 `database_busy`, never 500.
    ///
    /// diesel maps only PostgreSQL's 40001 to `SerializationFailure`; a PG deadlock (40P01) and
    /// a lock timeout (55P03) come as `Unknown` and are recognised by their messages.
    pub fn is_transient(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            DbError::Query(Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _)) => {
                true
            }
            DbError::Query(Error::DatabaseError(_, info)) => {
                let m = info.message();
                m.contains("Lock wait timeout")
                    || m.contains("database is locked")
                    || m.contains("Deadlock")
                    || m.contains("deadlock detected")
                    || m.contains("canceling statement due to lock timeout")
                    || m.contains("could not serialize access")
            }
            _ => false,
        }
    }

    /// True when the database itself could not be reached (as opposed to a query that failed).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            DbError::Unreachable { .. } | DbError::PoolTimeout { .. }
        )
    }
}

/// The current UTC time truncated to microseconds: MariaDB `DATETIME(6)` keeps microseconds and
/// SQLite keeps whatever it is given, so writing truncated values makes every backend agree.
pub fn utc_now() -> chrono::NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    chrono::DurationRound::duration_trunc(now, chrono::TimeDelta::microseconds(1)).unwrap_or(now)
}
