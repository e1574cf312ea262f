//! Embedded migrations, one set per backend (`migrations/sqlite`, `migrations/mysql`,
//! `migrations/postgres`), with the same folder names in each. The set is chosen at run time from the connection's variant.

use diesel::backend::Backend as DieselBackend;
use diesel::migration::{Migration, MigrationSource};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::{AnyConnection, DbError};

pub const SQLITE: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");
pub const MYSQL: EmbeddedMigrations = embed_migrations!("../migrations/mysql");
pub const POSTGRES: EmbeddedMigrations = embed_migrations!("../migrations/postgres");

/// One migration and whether it has been applied to this database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationStatus {
    /// The folder name, e.g. `2026-11-25-000001_ship_create_instance`.
    pub name: String,
    pub applied: bool,
}

fn migration_error(e: impl std::fmt::Display) -> DbError {
    DbError::Migration(e.to_string())
}

/// Run `f` on a PostgreSQL connection with `statement_timeout` lifted: the session's 60 s bound
/// (`PG_SETUP`) is for the application's statements, not for a backfill of a large table. The
/// bound is restored afterwards, whatever `f` returned.
fn without_statement_timeout<T>(
    conn: &mut diesel::PgConnection,
    f: impl FnOnce(&mut diesel::PgConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute("SET statement_timeout = 0")?;
    let result = f(conn);
    conn.batch_execute(&format!(
        "SET statement_timeout = '{}'",
        super::pool::PG_STATEMENT_TIMEOUT
    ))?;
    result
}

/// Apply every pending migration; returns the names applied, in order.
pub fn run_pending(conn: &mut AnyConnection) -> Result<Vec<String>, DbError> {
    fn go<DB: DieselBackend>(
        h: &mut impl MigrationHarness<DB>,
        source: EmbeddedMigrations,
    ) -> Result<(), DbError> {
        h.run_pending_migrations(source)
            .map(drop)
            .map_err(migration_error)
    }
    let names = pending(conn)?;
    match conn {
        AnyConnection::Sqlite(c) => go(c, SQLITE)?,
        AnyConnection::Mysql(c) => go(c, MYSQL)?,
        AnyConnection::Pg(c) => without_statement_timeout(c, |c| go(c, POSTGRES))?,
    }
    Ok(names)
}

/// Revert the most recently applied migration; returns its name, `None` when nothing is applied.
pub fn revert_last(conn: &mut AnyConnection) -> Result<Option<String>, DbError> {
    fn go<DB: DieselBackend>(
        h: &mut impl MigrationHarness<DB>,
        source: EmbeddedMigrations,
    ) -> Result<(), DbError> {
        h.revert_last_migration(source)
            .map(drop)
            .map_err(migration_error)
    }
    let Some(newest) = status(conn)?.into_iter().rev().find(|m| m.applied) else {
        return Ok(None);
    };
    match conn {
        AnyConnection::Sqlite(c) => go(c, SQLITE)?,
        AnyConnection::Mysql(c) => go(c, MYSQL)?,
        AnyConnection::Pg(c) => without_statement_timeout(c, |c| go(c, POSTGRES))?,
    }
    Ok(Some(newest.name))
}

/// Revert every applied migration, newest first; returns the names reverted.
pub fn revert_all(conn: &mut AnyConnection) -> Result<Vec<String>, DbError> {
    let mut reverted = Vec::new();
    while let Some(name) = revert_last(conn)? {
        reverted.push(name);
    }
    Ok(reverted)
}

/// Every known migration of this backend, oldest first, with whether it is applied.
pub fn status(conn: &mut AnyConnection) -> Result<Vec<MigrationStatus>, DbError> {
    fn go<DB: DieselBackend>(
        h: &mut impl MigrationHarness<DB>,
        source: EmbeddedMigrations,
    ) -> Result<Vec<MigrationStatus>, DbError>
    where
        EmbeddedMigrations: MigrationSource<DB>,
    {
        let applied = h.applied_migrations().map_err(migration_error)?;
        let mut all = MigrationSource::<DB>::migrations(&source).map_err(migration_error)?;
        all.sort_by_key(|m| m.name().version().as_owned());
        Ok(all
            .iter()
            .map(|m| MigrationStatus {
                name: m.name().to_string(),
                applied: applied.contains(&m.name().version()),
            })
            .collect())
    }
    match conn {
        AnyConnection::Sqlite(c) => go(c, SQLITE),
        AnyConnection::Mysql(c) => go(c, MYSQL),
        AnyConnection::Pg(c) => go(c, POSTGRES),
    }
}

/// Names of the migrations not yet applied.
pub fn pending(conn: &mut AnyConnection) -> Result<Vec<String>, DbError> {
    Ok(status(conn)?
        .into_iter()
        .filter(|m| !m.applied)
        .map(|m| m.name)
        .collect())
}
