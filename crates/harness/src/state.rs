//! A region's end state, read straight from its database (SQLite file, MariaDB or PostgreSQL): every
//! customer and order row with its version, the outbox by status, and what is parked.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use diesel::connection::SimpleConnection;
use diesel::mysql::MysqlConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::SqliteConnection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Mysql,
    Postgres,
}

/// A query of this module as PostgreSQL spells it: `lines` bare (MariaDB's backquotes), text
/// casts to `TEXT` (PostgreSQL's `CHAR` is one character).
pub(crate) fn pg_sql(sql: &str) -> String {
    sql.replace('`', "").replace(" AS CHAR)", " AS TEXT)")
}

/// One customer as stored, sync columns included (tombstones too).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Row {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub tenant_id: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub email: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = BigInt)]
    pub sync_version: i64,
    #[diesel(sql_type = Text)]
    pub sync_origin: String,
    /// `deleted` for a tombstone, empty for a live row (the time itself is not compared: its
    /// text differs between backends).
    #[diesel(sql_type = Text)]
    pub tombstone: String,
}

impl Row {
    pub fn deleted(&self) -> bool {
        !self.tombstone.is_empty()
    }

    /// `(hlc, origin)`: the order last-writer-wins decides by.
    pub fn version(&self) -> (i64, String) {
        (self.sync_version, self.sync_origin.clone())
    }
}

/// One order as stored, sync columns included (tombstones too).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct OrderRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub customer_id: String,
    #[diesel(sql_type = Text)]
    pub number: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Text)]
    pub lines: String,
    #[diesel(sql_type = BigInt)]
    pub total_minor: i64,
    #[diesel(sql_type = BigInt)]
    pub sync_version: i64,
    #[diesel(sql_type = Text)]
    pub sync_origin: String,
    #[diesel(sql_type = Text)]
    pub tombstone: String,
}

const ORDERS: &str = "SELECT id, customer_id, number, status, `lines`, total_minor, sync_version, sync_origin, CASE WHEN deleted_at IS NULL THEN '' ELSE 'deleted' END AS tombstone FROM orders ORDER BY id";
const PARKED: &str = "SELECT COUNT(*) AS n FROM sync_parked_ops";

#[derive(QueryableByName)]
struct StatusCount {
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionState {
    pub region: String,
    /// By id.
    pub rows: BTreeMap<String, Row>,
    /// Outbox entries by status (`pending`, `delivered`, `dead`).
    pub outbox: BTreeMap<String, i64>,
    /// Concurrent writes this region resolved (`sync_conflicts`).
    pub conflicts: i64,
    /// Every customers changelog entry: `(entity, hlc, origin)`.
    pub changelog: BTreeSet<(String, i64, String)>,
    /// Requests this region refused, by `(kind, source region)` (`sync_refusals`).
    pub refusals: BTreeMap<(String, String), i64>,
    /// Its pull cursors of `customers`, by peer: (cursor, last pull time as stored).
    pub cursors: BTreeMap<String, (String, String)>,
    /// Every order, by id (ADR 0015).
    pub orders: BTreeMap<String, OrderRow>,
    /// Remote ops parked waiting for a row they name.
    pub parked: i64,
}

const ROWS: &str = "SELECT id, tenant_id, name, email, status, sync_version, sync_origin, CASE WHEN deleted_at IS NULL THEN '' ELSE 'deleted' END AS tombstone FROM customers ORDER BY id";
#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Change {
    #[diesel(sql_type = Text)]
    entity_id: String,
    #[diesel(sql_type = Text)]
    op: String,
    #[diesel(sql_type = Text)]
    payload: String,
    #[diesel(sql_type = BigInt)]
    hlc: i64,
    #[diesel(sql_type = Text)]
    origin_region: String,
}

impl Change {
    /// The (entity id, hlc, origin) of each entry the row holds: a batch row's (op `batch`,
    /// ADR 0026) from its payload, `[[entity_id, hlc, payload], …]`.
    fn entries(self) -> Result<Vec<(String, i64, String)>> {
        if self.op != "batch" {
            return Ok(vec![(self.entity_id, self.hlc, self.origin_region)]);
        }
        let elements: Vec<(String, i64, serde::de::IgnoredAny)> =
            serde_json::from_str(&self.payload).context("a batch row's payload")?;
        Ok(elements
            .into_iter()
            .map(|(id, hlc, _)| (id, hlc, self.origin_region.clone()))
            .collect())
    }
}

const CHANGES: &str = "SELECT entity_id, op, payload, hlc, origin_region FROM sync_changelog \
     WHERE resource = 'customers'";
#[derive(QueryableByName)]
struct Refusal {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    source: String,
    #[diesel(sql_type = BigInt)]
    refused: i64,
}

#[derive(QueryableByName)]
struct Cursor {
    #[diesel(sql_type = Text)]
    peer: String,
    #[diesel(sql_type = Text)]
    peer_cursor: String,
    #[diesel(sql_type = Text)]
    last_pull_at: String,
}

const CURSORS: &str = "SELECT peer, peer_cursor, CAST(last_pull_at AS CHAR) AS last_pull_at FROM sync_peer_cursors WHERE resource = 'customers'";
const REFUSALS: &str = "SELECT kind, source, refused FROM sync_refusals";
const CONFLICTS: &str = "SELECT COUNT(*) AS n FROM sync_conflicts";
/// Entries owed to push peers, by status: the single outbox entries (dead letters, retried
/// ones), and the region's own changes per delivery stream — "pending" above the stream's
/// `delivered_through`, "delivered" at or below it (ADR 0009); and "leased": ranges a
/// dispatcher holds (sending, or it died sending).
fn outbox_query(region: &str) -> String {
    format!(
        "SELECT status, COUNT(*) AS n FROM (\
           SELECT status FROM sync_outbox \
           UNION ALL \
           SELECT CASE WHEN c.seq > d.delivered_through THEN 'pending' ELSE 'delivered' END AS status \
           FROM sync_changelog c JOIN sync_delivery d ON c.resource = d.resource \
           WHERE c.origin_region = '{}' AND NOT EXISTS (SELECT 1 FROM sync_outbox o \
             WHERE o.peer = d.peer AND o.resource = d.resource AND o.seq = c.seq) \
           UNION ALL \
           SELECT 'leased' AS status FROM sync_delivery_ranges WHERE lease_owner IS NOT NULL\
         ) t GROUP BY status",
        region.replace('\'', "")
    )
}

impl OrderRow {
    pub fn deleted(&self) -> bool {
        !self.tombstone.is_empty()
    }

    /// `(hlc, origin)`: the order last-writer-wins decides by.
    pub fn version(&self) -> (i64, String) {
        (self.sync_version, self.sync_origin.clone())
    }
}

impl RegionState {
    pub fn read(region: &str, backend: Backend, url: &str) -> Result<RegionState> {
        type Read = (
            Vec<Row>,
            Vec<StatusCount>,
            Vec<Count>,
            Vec<Change>,
            Vec<Refusal>,
            Vec<Cursor>,
            Vec<OrderRow>,
            Vec<Count>,
        );
        let (rows, outbox, conflicts, changes, refusals, cursors, orders, parked): Read =
            match backend {
                Backend::Sqlite => {
                    let path = url.trim_start_matches("sqlite://");
                    let mut conn = SqliteConnection::establish(path)
                        .with_context(|| format!("opening {path}"))?;
                    conn.batch_execute("PRAGMA busy_timeout = 5000;")?;
                    (
                        diesel::sql_query(ROWS).load(&mut conn)?,
                        diesel::sql_query(outbox_query(region)).load(&mut conn)?,
                        diesel::sql_query(CONFLICTS).load(&mut conn)?,
                        diesel::sql_query(CHANGES).load(&mut conn)?,
                        diesel::sql_query(REFUSALS).load(&mut conn)?,
                        diesel::sql_query(CURSORS).load(&mut conn)?,
                        diesel::sql_query(ORDERS).load(&mut conn)?,
                        diesel::sql_query(PARKED).load(&mut conn)?,
                    )
                }
                Backend::Mysql => {
                    let mut conn = MysqlConnection::establish(url)
                        .with_context(|| format!("connecting to {url}"))?;
                    (
                        diesel::sql_query(ROWS).load(&mut conn)?,
                        diesel::sql_query(outbox_query(region)).load(&mut conn)?,
                        diesel::sql_query(CONFLICTS).load(&mut conn)?,
                        diesel::sql_query(CHANGES).load(&mut conn)?,
                        diesel::sql_query(REFUSALS).load(&mut conn)?,
                        diesel::sql_query(CURSORS).load(&mut conn)?,
                        diesel::sql_query(ORDERS).load(&mut conn)?,
                        diesel::sql_query(PARKED).load(&mut conn)?,
                    )
                }
                Backend::Postgres => {
                    let mut conn = PgConnection::establish(url)
                        .with_context(|| format!("connecting to {url}"))?;
                    (
                        diesel::sql_query(pg_sql(ROWS)).load(&mut conn)?,
                        diesel::sql_query(pg_sql(&outbox_query(region))).load(&mut conn)?,
                        diesel::sql_query(pg_sql(CONFLICTS)).load(&mut conn)?,
                        diesel::sql_query(pg_sql(CHANGES)).load(&mut conn)?,
                        diesel::sql_query(pg_sql(REFUSALS)).load(&mut conn)?,
                        diesel::sql_query(pg_sql(CURSORS)).load(&mut conn)?,
                        diesel::sql_query(pg_sql(ORDERS)).load(&mut conn)?,
                        diesel::sql_query(pg_sql(PARKED)).load(&mut conn)?,
                    )
                }
            };
        Ok(RegionState {
            region: region.to_string(),
            rows: rows.into_iter().map(|r| (r.id.clone(), r)).collect(),
            outbox: outbox.into_iter().map(|c| (c.status, c.n)).collect(),
            conflicts: conflicts.first().map_or(0, |c| c.n),
            changelog: changes
                .into_iter()
                .map(Change::entries)
                .collect::<Result<Vec<_>>>()?
                .into_iter()
                .flatten()
                .collect(),
            refusals: refusals
                .into_iter()
                .map(|r| ((r.kind, r.source), r.refused))
                .collect(),
            cursors: cursors
                .into_iter()
                .map(|c| (c.peer, (c.peer_cursor, c.last_pull_at)))
                .collect(),
            orders: orders.into_iter().map(|o| (o.id.clone(), o)).collect(),
            parked: parked.first().map_or(0, |c| c.n),
        })
    }

    pub fn pending(&self) -> i64 {
        self.outbox.get("pending").copied().unwrap_or(0)
    }

    pub fn dead(&self) -> i64 {
        self.outbox.get("dead").copied().unwrap_or(0)
    }

    /// Live (not deleted) customers.
    pub fn live(&self) -> usize {
        self.rows.values().filter(|r| !r.deleted()).count()
    }

    /// Rows without the changelog entry of their version: a domain write committed without
    /// its change (the two must commit together).
    pub fn rows_without_their_change(&self) -> Vec<&Row> {
        self.rows
            .values()
            .filter(|r| {
                !self
                    .changelog
                    .contains(&(r.id.clone(), r.sync_version, r.sync_origin.clone()))
            })
            .collect()
    }

    /// A short digest of every row (id, content, version, tombstone), for tables and reports.
    pub fn digest(&self) -> String {
        // FNV-1a over the rows' debug text: stable, dependency-free, enough to compare.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let rows = self.rows.values().map(|r| format!("{r:?}"));
        let orders = self.orders.values().map(|o| format!("{o:?}"));
        for text in rows.chain(orders) {
            for byte in text.bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{hash:016x}")
    }
}

/// The backend of a server URL (`mysql://…`, `postgres://…`).
pub fn server_backend(server: &str) -> Backend {
    if server.starts_with("postgres://") || server.starts_with("postgresql://") {
        Backend::Postgres
    } else {
        Backend::Mysql
    }
}

/// `Ok` when `server` (MariaDB or PostgreSQL, by its scheme) takes a connection.
pub fn server_answers(server: &str) -> Result<()> {
    match server_backend(server) {
        Backend::Postgres => PgConnection::establish(server).map(drop),
        _ => MysqlConnection::establish(server).map(drop),
    }
    .with_context(|| format!("connecting to {}", without_password(server)))
}

/// `scheme://user:password@host` as `scheme://user@host`, for messages.
pub fn without_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) => {
                let user = user.split(':').next().unwrap_or(user);
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Create database `name` on `server` (MariaDB or PostgreSQL, by its scheme).
pub fn create_database(server: &str, name: &str) -> Result<()> {
    match server_backend(server) {
        Backend::Postgres => {
            let mut conn = PgConnection::establish(server)
                .with_context(|| format!("connecting to {server}"))?;
            // template0: nobody is connected to it; every character column says its own
            // `COLLATE "C"` (ADR 0018), whatever the server's locale.
            conn.batch_execute(&format!(
                "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'"
            ))?;
            Ok(())
        }
        _ => create_mysql_database(server, name),
    }
}

/// Drop database `name` on `server` (MariaDB or PostgreSQL, by its scheme), if it exists.
pub fn drop_database(server: &str, name: &str) -> Result<()> {
    match server_backend(server) {
        Backend::Postgres => {
            let mut conn = PgConnection::establish(server)
                .with_context(|| format!("connecting to {server}"))?;
            conn.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))?;
            Ok(())
        }
        _ => drop_mysql_database(server, name),
    }
}

pub fn create_mysql_database(server: &str, name: &str) -> Result<()> {
    let mut conn =
        MysqlConnection::establish(server).with_context(|| format!("connecting to {server}"))?;
    conn.batch_execute(&format!(
        "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin"
    ))?;
    Ok(())
}

pub fn drop_mysql_database(server: &str, name: &str) -> Result<()> {
    let mut conn =
        MysqlConnection::establish(server).with_context(|| format!("connecting to {server}"))?;
    conn.batch_execute(&format!("DROP DATABASE IF EXISTS `{name}`"))?;
    Ok(())
}
