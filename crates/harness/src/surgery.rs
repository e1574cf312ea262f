//! What an operator (or a disaster) does to a region's database behind the process's back: a
//! consistent copy taken while it runs, the database replaced by that copy or by an empty one,
//! rows that predate the sync columns, and the changelog pruned. SQLite, MariaDB and
//! PostgreSQL alike.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use diesel::connection::SimpleConnection;
use diesel::mysql::MysqlConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable};
use diesel::sqlite::SqliteConnection;

use crate::cluster::Region;
use crate::state::Backend;

/// One connection to a region's database, whichever backend it is on.
pub enum Db {
    Sqlite(SqliteConnection),
    Mysql(MysqlConnection),
    Pg(PgConnection),
}

#[derive(QueryableByName)]
struct Scalar {
    #[diesel(sql_type = Nullable<BigInt>)]
    v: Option<i64>,
}

impl Db {
    pub fn open(backend: Backend, url: &str) -> Result<Db> {
        Ok(match backend {
            Backend::Sqlite => {
                let path = url.trim_start_matches("sqlite://");
                let mut conn =
                    SqliteConnection::establish(path).with_context(|| format!("opening {path}"))?;
                conn.batch_execute("PRAGMA busy_timeout = 5000;")?;
                Db::Sqlite(conn)
            }
            Backend::Mysql => Db::Mysql(
                MysqlConnection::establish(url).with_context(|| format!("connecting to {url}"))?,
            ),
            Backend::Postgres => {
                let mut conn =
                    PgConnection::establish(url).with_context(|| format!("connecting to {url}"))?;
                // As the region's own sessions (ship's `PG_SETUP`).
                conn.batch_execute("SET TIME ZONE 'UTC'; SET lock_timeout = '5s';")?;
                Db::Pg(conn)
            }
        })
    }

    /// Region `region`'s database.
    pub fn of(region: &Region) -> Result<Db> {
        Db::open(region.backend(), &region.db_url)
    }

    /// Run one statement; the rows it changed.
    pub fn exec(&mut self, sql: &str) -> Result<usize> {
        match self {
            Db::Sqlite(conn) => diesel::sql_query(sql).execute(conn),
            Db::Mysql(conn) => diesel::sql_query(sql).execute(conn),
            Db::Pg(conn) => diesel::sql_query(sql).execute(conn),
        }
        .with_context(|| format!("running {sql}"))
    }

    /// The single value of `sql`, which selects one integer column named `v` (NULL → `None`).
    pub fn scalar(&mut self, sql: &str) -> Result<Option<i64>> {
        let rows: Vec<Scalar> = match self {
            Db::Sqlite(conn) => diesel::sql_query(sql).load(conn),
            Db::Mysql(conn) => diesel::sql_query(sql).load(conn),
            Db::Pg(conn) => diesel::sql_query(sql).load(conn),
        }
        .with_context(|| format!("running {sql}"))?;
        Ok(rows.first().and_then(|r| r.v))
    }

    /// Start a write transaction (SQLite: `BEGIN IMMEDIATE`, the write lock at once).
    fn begin(&mut self) -> Result<()> {
        match self {
            Db::Sqlite(conn) => conn.batch_execute("BEGIN IMMEDIATE")?,
            Db::Mysql(conn) => conn.batch_execute("START TRANSACTION")?,
            Db::Pg(conn) => conn.batch_execute("BEGIN")?,
        }
        Ok(())
    }

    fn finish(&mut self, commit: bool) -> Result<()> {
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        match self {
            Db::Sqlite(conn) => conn.batch_execute(sql)?,
            Db::Mysql(conn) => conn.batch_execute(sql)?,
            Db::Pg(conn) => conn.batch_execute(sql)?,
        }
        Ok(())
    }
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The statement of migration `2026-11-25-000201_customers_add_sync_columns` that gives the
/// rows a table already held their sync columns (`UPDATE customers SET sync_version = … ,
/// sync_origin = …`), without its `;`.
fn sync_columns_update(backend: Backend) -> Result<&'static str> {
    let up = match backend {
        Backend::Sqlite => include_str!(
            "../../../migrations/sqlite/2026-11-25-000201_customers_add_sync_columns/up.sql"
        ),
        Backend::Mysql => include_str!(
            "../../../migrations/mysql/2026-11-25-000201_customers_add_sync_columns/up.sql"
        ),
        Backend::Postgres => include_str!(
            "../../../migrations/postgres/2026-11-25-000201_customers_add_sync_columns/up.sql"
        ),
    };
    let start = up
        .find("UPDATE customers SET")
        .context("the sync-columns migration has no UPDATE customers SET")?;
    let end = up[start..]
        .find(';')
        .context("the sync-columns migration's UPDATE has no end")?;
    Ok(&up[start..start + end])
}

/// A customer as it was before the sync columns existed: `(id, name)`; tenant `acme`, email
/// `<name>@example.com`, status `active`, created and last updated a day ago.
#[derive(Debug, Clone)]
pub struct LegacyRow {
    pub id: String,
    pub name: String,
}

/// A canonical UUID (v4 layout) from `rng`.
pub fn random_uuid(rng: &mut fastrand::Rng) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        rng.u32(..),
        rng.u16(..),
        rng.u16(..0x1000),
        rng.u16(..0x1000),
        rng.u64(..1 << 48)
    )
}

/// Put `rows` into `region`'s customers table as if they had been there before the
/// sync-columns migration ran: inserted with the columns' defaults (version 0, origin "", no
/// tombstone) and then given their sync columns by the migration's own `UPDATE`, restricted to
/// them (version = HLC of `updated_at`, origin = the region the database is bound to). No
/// changelog entry: such rows never entered any feed.
pub fn insert_legacy_rows(region: &Region, rows: &[LegacyRow]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let backend = region.backend();
    let a_day_ago = match backend {
        Backend::Sqlite => "strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 day')",
        Backend::Mysql => "UTC_TIMESTAMP(6) - INTERVAL 1 DAY",
        Backend::Postgres => "(now() AT TIME ZONE 'UTC') - INTERVAL '1 day'",
    };
    let mut db = Db::of(region)?;
    db.begin()?;
    let result = (|| -> Result<()> {
        for row in rows {
            db.exec(&format!(
                "INSERT INTO customers (id, tenant_id, name, email, status, created_at, updated_at) \
                 VALUES ({}, 'acme', {}, {}, 'active', {a_day_ago}, {a_day_ago})",
                quote(&row.id),
                quote(&row.name),
                quote(&format!("{}@example.com", row.name)),
            ))?;
        }
        let ids: Vec<String> = rows.iter().map(|r| quote(&r.id)).collect();
        let updated = db.exec(&format!(
            "{} WHERE id IN ({})",
            sync_columns_update(backend)?,
            ids.join(", ")
        ))?;
        if updated != rows.len() {
            bail!(
                "the migration's UPDATE changed {updated} of {} rows",
                rows.len()
            );
        }
        Ok(())
    })();
    db.finish(result.is_ok())?;
    result
}

/// What a prune did to one resource's changelog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Rows deleted (a batch row holds several entries, ADR 0026).
    pub deleted: usize,
    pub pruned_through: i64,
    pub last_seq: i64,
}

/// Prune `resource`'s changelog at `region` now, with a changelog retention of zero.
///
/// The prune job (`sync.prune`) runs on the cron `0 * * * *` only, and no command runs it
/// (`regionsync schedule run` runs what is due, which it is only in the first minute of an
/// hour), so this does in SQL exactly what `containers/sync/src/data/prune.rs` (`changelog`)
/// does, in one transaction: lock the resource's sequence row; keep every entry from the first
/// one some peer still needs — the lowest entry still owed in the outbox (not `delivered`),
/// the lowest `delivered_through + 1` of a delivery stream, the lowest `acked_seq + 1` of a
/// feed reader; delete everything below it, in whole rows — a batch row holding the first
/// entry kept stays whole (ADR 0026) — (with a retention of zero no entry is "young": every
/// one was created before now); move `pruned_through` to the last deleted seq.
pub fn prune_changelog(region: &Region, resource: &str) -> Result<Pruned> {
    let mut db = Db::of(region)?;
    let r = quote(resource);
    db.begin()?;
    let result = (|| -> Result<Pruned> {
        db.exec(&format!(
            "UPDATE sync_sequences SET last_seq = last_seq WHERE resource = {r}"
        ))?;
        let last_seq = db
            .scalar(&format!(
                "SELECT last_seq AS v FROM sync_sequences WHERE resource = {r}"
            ))?
            .context("no sequence row")?;
        let pruned_through = db
            .scalar(&format!(
                "SELECT pruned_through AS v FROM sync_sequences WHERE resource = {r}"
            ))?
            .unwrap_or(0);
        let owed = db.scalar(&format!(
            "SELECT MIN(seq) AS v FROM sync_outbox WHERE resource = {r} AND status <> 'delivered'"
        ))?;
        let streaming = db
            .scalar(&format!(
                "SELECT MIN(delivered_through) AS v FROM sync_delivery WHERE resource = {r}"
            ))?
            .map(|through| through + 1);
        let unacknowledged = db
            .scalar(&format!(
                "SELECT MIN(acked_seq) AS v FROM sync_feed_acks WHERE resource = {r}"
            ))?
            .map(|acked| acked + 1);
        let keep_from = [owed, streaming, unacknowledged]
            .into_iter()
            .flatten()
            .min();
        let upto = keep_from.map_or(last_seq, |seq| seq - 1);
        // Whole rows only: a batch row (ADR 0026) holding the entry after `upto` stays whole.
        let straddling = db.scalar(&format!(
            "SELECT first_seq AS v FROM sync_changelog \
             WHERE resource = {r} AND seq > {upto} AND first_seq <= {upto}"
        ))?;
        let upto = straddling.map_or(upto, |first| first - 1);
        if upto <= pruned_through {
            return Ok(Pruned {
                deleted: 0,
                pruned_through,
                last_seq,
            });
        }
        let deleted = db.exec(&format!(
            "DELETE FROM sync_changelog WHERE resource = {r} AND seq <= {upto}"
        ))?;
        db.exec(&format!(
            "UPDATE sync_sequences SET pruned_through = {upto} WHERE resource = {r}"
        ))?;
        Ok(Pruned {
            deleted,
            pruned_through: upto,
            last_seq,
        })
    })();
    db.finish(result.is_ok())?;
    result
}

/// `mysql://user[:password]@host[:port]/database`, split for the command-line clients.
struct MysqlUrl {
    user: String,
    password: Option<String>,
    host: String,
    port: String,
    database: String,
}

impl MysqlUrl {
    fn parse(url: &str) -> Result<MysqlUrl> {
        let rest = url
            .strip_prefix("mysql://")
            .with_context(|| format!("not a mysql:// URL: {url}"))?;
        let (server, database) = rest
            .split_once('/')
            .with_context(|| format!("no database in {url}"))?;
        let (credentials, address) = server.rsplit_once('@').unwrap_or(("root", server));
        let (user, password) = match credentials.split_once(':') {
            Some((user, password)) => (user.to_string(), Some(password.to_string())),
            None => (credentials.to_string(), None),
        };
        let (host, port) = address.split_once(':').unwrap_or((address, "3306"));
        Ok(MysqlUrl {
            user,
            password,
            host: host.to_string(),
            port: port.to_string(),
            database: database.split('?').next().unwrap_or(database).to_string(),
        })
    }

    /// The server's URL without the database.
    fn server(&self) -> String {
        let credentials = match &self.password {
            Some(p) => format!("{}:{p}", self.user),
            None => self.user.clone(),
        };
        format!("mysql://{credentials}@{}:{}", self.host, self.port)
    }

    fn command(&self, program: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(program);
        command.args([
            "--protocol=TCP",
            "-h",
            &self.host,
            "-P",
            &self.port,
            "-u",
            &self.user,
        ]);
        if let Some(password) = &self.password {
            command.arg(format!("--password={password}"));
        }
        command
    }
}

/// A consistent copy of `region`'s database taken while it runs, into `to` (a file the copy
/// creates). SQLite: `VACUUM INTO` (one read transaction: the database as of one commit, WAL
/// included — a file copy of a live WAL database is not). MariaDB: `mysqldump
/// --single-transaction` (one consistent-snapshot transaction over every InnoDB table).
/// PostgreSQL: `pg_dump` (one snapshot, always), as plain SQL.
pub async fn copy_database(region: &Region, to: &Path) -> Result<()> {
    match region.backend() {
        Backend::Sqlite => {
            let target = to.display().to_string();
            tokio::task::block_in_place(|| -> Result<()> {
                let mut db = Db::of(region)?;
                match &mut db {
                    Db::Sqlite(conn) => conn
                        .batch_execute(&format!("VACUUM INTO {}", quote(&target)))
                        .with_context(|| format!("VACUUM INTO {target}"))?,
                    Db::Mysql(_) | Db::Pg(_) => bail!("not a SQLite database"),
                }
                Ok(())
            })
        }
        Backend::Mysql => {
            let url = MysqlUrl::parse(&region.db_url)?;
            let out = std::fs::File::create(to)?;
            let status = url
                .command("mysqldump")
                .args([
                    "--single-transaction",
                    "--skip-lock-tables",
                    "--no-tablespaces",
                ])
                .arg(&url.database)
                .stdin(Stdio::null())
                .stdout(out)
                .status()
                .await
                .context("running mysqldump")?;
            if !status.success() {
                bail!("mysqldump of {} failed: {status}", url.database);
            }
            Ok(())
        }
        Backend::Postgres => {
            let status = tokio::process::Command::new("pg_dump")
                .args(["--no-owner", "--no-privileges", "--file"])
                .arg(to)
                .arg(format!("--dbname={}", region.db_url))
                .stdin(Stdio::null())
                .status()
                .await
                .context("running pg_dump")?;
            if !status.success() {
                bail!("pg_dump of {} failed: {status}", region.spec.id);
            }
            Ok(())
        }
    }
}

/// `postgres://user@host:port/database` → (the server URL without the database, the database).
fn split_pg_url(url: &str) -> Result<(String, String)> {
    let (scheme, rest) = url
        .split_once("://")
        .with_context(|| format!("not a postgres:// URL: {url}"))?;
    let (server, database) = rest
        .split_once('/')
        .with_context(|| format!("no database in {url}"))?;
    let database = database.split('?').next().unwrap_or(database);
    if database.is_empty() {
        bail!("no database in {url}");
    }
    Ok((format!("{scheme}://{server}"), database.to_string()))
}

/// Replace `region`'s database (the region must be down) by the copy at `copy`, or by an empty
/// one when `None`: same SQLite path (its `-wal` and `-shm` files removed), or the same MariaDB
/// database name, dropped and created again.
pub async fn replace_database(region: &Region, copy: Option<&Path>) -> Result<()> {
    if region.is_running() {
        bail!("{} is running: stop it first", region.spec.id);
    }
    match region.backend() {
        Backend::Sqlite => {
            let path = PathBuf::from(region.db_url.trim_start_matches("sqlite://"));
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let file = PathBuf::from(format!("{}{suffix}", path.display()));
                match std::fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(e).with_context(|| format!("removing {}", file.display()))
                    }
                }
            }
            if let Some(copy) = copy {
                std::fs::copy(copy, &path)
                    .with_context(|| format!("copying {} to {}", copy.display(), path.display()))?;
            }
            Ok(())
        }
        Backend::Mysql => {
            let url = MysqlUrl::parse(&region.db_url)?;
            let server = url.server();
            tokio::task::block_in_place(|| -> Result<()> {
                crate::state::drop_mysql_database(&server, &url.database)?;
                crate::state::create_mysql_database(&server, &url.database)
            })?;
            if let Some(copy) = copy {
                let dump = std::fs::File::open(copy)?;
                let status = url
                    .command("mysql")
                    .arg(&url.database)
                    .stdin(dump)
                    .status()
                    .await
                    .context("running mysql")?;
                if !status.success() {
                    bail!("loading the copy into {} failed: {status}", url.database);
                }
            }
            Ok(())
        }
        Backend::Postgres => {
            let (server, database) = split_pg_url(&region.db_url)?;
            tokio::task::block_in_place(|| -> Result<()> {
                crate::state::drop_database(&server, &database)?;
                crate::state::create_database(&server, &database)
            })?;
            if let Some(copy) = copy {
                let status = tokio::process::Command::new("psql")
                    .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--file"])
                    .arg(copy)
                    .arg(format!("--dbname={}", region.db_url))
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .status()
                    .await
                    .context("running psql")?;
                if !status.success() {
                    bail!("loading the copy into {database} failed: {status}");
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mysql_urls_split_for_the_clients() {
        let url = MysqlUrl::parse("mysql://root@127.0.0.1:3306/rs_x").unwrap();
        assert_eq!(
            (
                url.user.as_str(),
                url.password.as_deref(),
                url.host.as_str(),
                url.port.as_str()
            ),
            ("root", None, "127.0.0.1", "3306")
        );
        assert_eq!(url.database, "rs_x");
        assert_eq!(url.server(), "mysql://root@127.0.0.1:3306");
        let url = MysqlUrl::parse("mysql://u:p@db/x?ssl=false").unwrap();
        assert_eq!(url.password.as_deref(), Some("p"));
        assert_eq!((url.port.as_str(), url.database.as_str()), ("3306", "x"));
        assert!(MysqlUrl::parse("mysql://root@h:1").is_err());
    }

    #[test]
    fn postgres_urls_split_into_server_and_database() {
        assert_eq!(
            split_pg_url("postgres://postgres@127.0.0.1:5432/rs_x?sslmode=disable").unwrap(),
            (
                "postgres://postgres@127.0.0.1:5432".to_string(),
                "rs_x".to_string()
            )
        );
        assert!(split_pg_url("postgres://postgres@127.0.0.1:5432").is_err());
        assert!(split_pg_url("postgres://postgres@127.0.0.1:5432/").is_err());
    }

    #[test]
    fn the_migrations_update_is_found_whole() {
        for backend in [Backend::Sqlite, Backend::Mysql, Backend::Postgres] {
            let update = sync_columns_update(backend).unwrap();
            assert!(update.starts_with("UPDATE customers SET"), "{update}");
            assert!(update.contains("sync_origin = COALESCE"), "{update}");
            assert!(!update.contains(';'));
        }
    }

    #[test]
    fn uuids_are_canonical() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..100 {
            let id = random_uuid(&mut rng);
            assert_eq!(id.len(), 36, "{id}");
            assert_eq!(id.as_bytes()[14], b'4');
            assert!(id
                .chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)));
        }
    }
}
