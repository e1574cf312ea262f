//! Last-writer-wins for a batch of replicated writes to one synced table — on `(hlc, origin)`,
//! or on `(is_tombstone, hlc, origin)` under `delete_wins` ([`ConflictPolicy`]) — decided in
//! memory in batch order against the batch's stored rows, read (and, on MariaDB and PostgreSQL,
//! locked) set-wise — a
//! constant number of statements per batch, not a few per row (ADR 0013). A domain container
//! describes its table ([`SyncedTable`]: its rows and six queries) and calls [`apply_batch`]
//! from its `SyncResource::apply_batch`.
//!
//! SQLite (one writer at a time, inside `BEGIN IMMEDIATE`): one read of the batch's rows, the
//! decision, then one write per row that changed.
//!
//! MariaDB and PostgreSQL (many writers, row locks):
//!
//! 1. [`SyncedTable::insert_or_lock_all`]: one row per distinct id, in ascending id order — the
//!    state the batch leaves when the id is absent. Absent ids are inserted (and so locked);
//!    present ids are locked exclusively and left unchanged, and named. This is the only
//!    statement that waits for row locks, and it takes them in id order: two appliers never
//!    deadlock each other, and a local writer (one row, then the sequence row) never waits for
//!    an applier that waits for it (the applier takes the sequence row last, in the sync
//!    container, once it holds every row).
//! 2. If some ids existed: [`SyncedTable::find_all_for_update`] of those rows (already locked:
//!    no wait), the decision against them, and [`SyncedTable::overwrite_all`] of the rows the
//!    batch overwrites, whose branch still decides by the policy's order
//!    ([`mysql_overwrite_clause`], [`pg_overwrite_clause`]): a row never goes back to a
//!    version the policy ranks lower.
//!
//! On PostgreSQL the lock pass is one `INSERT … ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id
//! WHERE false RETURNING id` per chunk (ADR 0018): the conflicting rows are locked `FOR UPDATE`
//! before the (false) condition is evaluated, nothing is written to them, and the ids returned
//! are those inserted.
//!
//! Absent rows cannot be locked by a read (READ COMMITTED takes no gap locks), which is why
//! the lock pass is an insert: an id inserted by a concurrent writer between a read and an
//! insert would otherwise be locked out of id order.

use std::collections::BTreeMap;

use diesel::QueryResult;

use crate::contracts::{contract_error, ApplyOutcome, ConflictPolicy, Hlc, Rule, Version};
use crate::db::inline_sql::{self, Literal};
use crate::db::{AnyConnection, DbError};

/// A synced table as the batch apply needs it. The queries run on the caller's connection,
/// inside its transaction.
pub trait SyncedTable {
    type Row: Clone;

    fn id(row: &Self::Row) -> &str;
    /// `(sync_version, sync_origin)` as stored.
    fn version(row: &Self::Row) -> (i64, &str);
    /// Whether the row is a tombstone (deleted).
    fn is_tombstone(row: &Self::Row) -> bool;
    /// The row as its sync payload (the losing side of a conflict record).
    fn payload(row: &Self::Row) -> serde_json::Value;

    /// The rows with these ids, without locking (SQLite: the caller holds the write lock).
    fn find_all(conn: &mut AnyConnection, ids: &[&str]) -> QueryResult<Vec<Self::Row>>;
    /// The rows with these ids, locked (MariaDB, PostgreSQL: already locked by the
    /// insert-or-lock pass).
    fn find_all_for_update(conn: &mut AnyConnection, ids: &[&str]) -> QueryResult<Vec<Self::Row>>;
    fn insert(conn: &mut AnyConnection, row: &Self::Row) -> QueryResult<()>;
    fn update(conn: &mut AnyConnection, row: &Self::Row) -> QueryResult<()>;
    /// Insert the absent rows and lock the present ones, in ascending id order; the ids that
    /// were present.
    fn insert_or_lock_all(conn: &mut AnyConnection, rows: &[Self::Row])
        -> QueryResult<Vec<String>>;
    /// Overwrite these stored rows where the row wins over the stored one under `policy`
    /// (MariaDB: [`mysql_overwrite_clause`]; PostgreSQL: [`pg_overwrite_clause`]); how many
    /// were overwritten.
    fn overwrite_all(
        conn: &mut AnyConnection,
        rows: &[Self::Row],
        policy: ConflictPolicy,
    ) -> QueryResult<usize>;
}

/// One change of the batch: its position in the batch, the row its payload would write, and
/// its version.
pub struct Incoming<'a, R> {
    pub index: usize,
    pub row: R,
    pub version: &'a Version,
}

/// Apply `items` (any order; decided in the order given) inside the caller's transaction: the
/// outcomes, `(index, outcome)` in the order given — those applying the items one by one would
/// give.
pub fn apply_batch<T: SyncedTable>(
    conn: &mut AnyConnection,
    items: Vec<Incoming<'_, T::Row>>,
    policy: ConflictPolicy,
) -> Result<Vec<(usize, ApplyOutcome)>, DbError> {
    match conn {
        AnyConnection::Sqlite(_) => single_writer::<T>(conn, &items, policy),
        AnyConnection::Mysql(_) | AnyConnection::Pg(_) => locked::<T>(conn, items, policy),
    }
}

/// The `VALUES` list of a multi-row statement written in raw SQL: `rows` tuples of `columns`
/// placeholders, in the backend's syntax (`?` on MariaDB and SQLite, `$1, $2, …` on
/// PostgreSQL, numbered row after row).
pub fn values_placeholders(backend: crate::db::Backend, rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                crate::db::Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(r * columns + c + 1).to_string());
                }
                crate::db::Backend::Mysql | crate::db::Backend::Sqlite => sql.push('?'),
            }
        }
        sql.push(')');
    }
    sql
}

/// The `ON CONFLICT` clause of a PostgreSQL multi-row overwrite of the synced table `table`
/// (`INSERT INTO table (…) VALUES …` + this): every one of `columns` (every column but the
/// key, `deleted_at`, `sync_version` and `sync_origin`) and those three take the incoming
/// value, on the rows where the incoming row wins over the stored one under `policy` — a row
/// can never go back to a version the policy ranks lower, whatever the caller decided.
///
/// Unlike MariaDB's, this clause has no assignment-order trap: PostgreSQL decides the branch
/// once per row by its `WHERE`, and every `SET` expression reads the row as stored. A row
/// updated counts 1 in the affected rows (MariaDB: 2), a row the `WHERE` keeps counts 0.
pub fn pg_overwrite_clause(table: &str, columns: &[&str], policy: ConflictPolicy) -> String {
    let wins = match policy {
        ConflictPolicy::Lww => format!(
            "(EXCLUDED.sync_version, EXCLUDED.sync_origin) > \
             ({table}.sync_version, {table}.sync_origin)"
        ),
        ConflictPolicy::DeleteWins => format!(
            "(EXCLUDED.deleted_at IS NOT NULL, EXCLUDED.sync_version, EXCLUDED.sync_origin) > \
             ({table}.deleted_at IS NOT NULL, {table}.sync_version, {table}.sync_origin)"
        ),
    };
    let mut sql = String::from(" ON CONFLICT (id) DO UPDATE SET ");
    for column in columns {
        sql.push_str(&format!("{column} = EXCLUDED.{column}, "));
    }
    sql.push_str(&format!(
        "sync_version = EXCLUDED.sync_version, sync_origin = EXCLUDED.sync_origin, \
         deleted_at = EXCLUDED.deleted_at WHERE {wins}"
    ));
    sql
}

/// The `ON DUPLICATE KEY UPDATE` clause of a MariaDB multi-row overwrite of a synced table:
/// each of `columns` (every column but the key, `deleted_at`, `sync_version` and
/// `sync_origin`), then those three, take the incoming value only where the incoming row wins
/// over the stored one under `policy` — so a row can never go back to a version the policy
/// ranks lower, whatever the caller decided.
///
/// The assignment-order trap: MariaDB evaluates the assignments left to right and each one
/// sees the columns assigned before it, so the columns every condition reads come last, each
/// with a condition that still holds after the ones before it:
/// - `sync_origin` first of the three, under the full condition;
/// - `sync_version`: by tombstone flag when the flags differ (`delete_wins`), else the greater
///   version (a winner with a greater version and a smaller origin would otherwise keep the
///   stored origin — hence the origin before it);
/// - `deleted_at` last: the row now carries the incoming version exactly when it won (or the
///   op is a duplicate of it, which carries the same state).
pub fn mysql_overwrite_clause(columns: &[&str], policy: ConflictPolicy) -> String {
    let wins = match policy {
        ConflictPolicy::Lww => {
            "(VALUES(sync_version), VALUES(sync_origin)) > (sync_version, sync_origin)"
        }
        ConflictPolicy::DeleteWins => {
            "(VALUES(deleted_at) IS NOT NULL, VALUES(sync_version), VALUES(sync_origin)) > \
             (deleted_at IS NOT NULL, sync_version, sync_origin)"
        }
    };
    let newer = "IF(VALUES(sync_version) > sync_version, VALUES(sync_version), sync_version)";
    let version = match policy {
        ConflictPolicy::Lww => newer.to_string(),
        ConflictPolicy::DeleteWins => format!(
            "IF((VALUES(deleted_at) IS NOT NULL) <> (deleted_at IS NOT NULL), \
             IF(VALUES(deleted_at) IS NOT NULL, VALUES(sync_version), sync_version), {newer})"
        ),
    };
    let mut sql = String::from(" ON DUPLICATE KEY UPDATE ");
    for column in columns {
        sql.push_str(&format!(
            "{column} = IF({wins}, VALUES({column}), {column}), "
        ));
    }
    sql.push_str(&format!(
        "sync_origin = IF({wins}, VALUES(sync_origin), sync_origin), \
         sync_version = {version}, \
         deleted_at = IF((VALUES(sync_version), VALUES(sync_origin)) = (sync_version, sync_origin), \
         VALUES(deleted_at), deleted_at)"
    ));
    sql
}

/// The session variable in which [`mysql_insert_or_lock_all`] collects the ids that existed.
macro_rules! mysql_existed_var {
    () => {
        "@regionsync_batch_existed"
    };
}
const MYSQL_EXISTED_VAR: &str = mysql_existed_var!();
/// Its read, a statement of fixed text (cached).
const MYSQL_EXISTED_SELECT: &str = concat!("SELECT ", mysql_existed_var!());

/// The columns every synced table has, which the overwrite's conflict branch assigns last.
const VERSION_COLUMNS: [&str; 4] = ["id", "sync_version", "sync_origin", "deleted_at"];

/// What an overwrite assigns before the key and version columns: every other of `columns`.
fn overwritten<'a>(columns: &[&'a str]) -> Vec<&'a str> {
    columns
        .iter()
        .copied()
        .filter(|c| !VERSION_COLUMNS.contains(c))
        .collect()
}

/// `columns` as MariaDB names, each between backticks (a column may be a reserved word there,
/// as `lines` is).
fn mysql_quoted(columns: &[&str]) -> Vec<String> {
    columns.iter().map(|c| format!("`{c}`")).collect()
}

/// `INSERT INTO table (`a`, `b`, …) VALUES `: the head of MariaDB's inline batch statements.
fn mysql_insert_head(table: &str, columns: &[&str]) -> String {
    format!(
        "INSERT INTO {table} ({}) VALUES ",
        mysql_quoted(columns).join(", ")
    )
}

/// PostgreSQL's multi-row overwrite of `rows` rows of `table`, whose `columns` (the key `id`
/// first) the placeholders follow row after row: `INSERT … VALUES ($1, …), …` and
/// [`pg_overwrite_clause`] over every column but the key and the version columns.
pub fn pg_overwrite_sql(
    table: &str,
    columns: &[&str],
    rows: usize,
    policy: ConflictPolicy,
) -> String {
    format!(
        "INSERT INTO {table} ({}) VALUES {}{}",
        columns.join(", "),
        values_placeholders(crate::db::Backend::Postgres, rows, columns.len()),
        pg_overwrite_clause(table, &overwritten(columns), policy)
    )
}

/// MariaDB's [`SyncedTable::insert_or_lock_all`] for `table`, whose `columns` (the key `id`
/// first) `literals` gives a row's values of, in order:
/// `INSERT … ON DUPLICATE KEY UPDATE id = IF((@v := CONCAT(@v, id, ',')) IS NULL, id, id)`,
/// written inline (`crate::db::inline_sql`, ADR 0019). The duplicate branch takes an
/// *exclusive* lock on the existing row (never the shared lock of a failed plain insert: two
/// such shared locks would deadlock when both appliers then write), changes nothing, and
/// appends the id to a session variable, read back at the end: one text query per
/// [`inline_sql::CHUNK_ROWS`] rows and one read, whatever the batch's size. Ids must not hold `,`
/// (UUIDs, or what the resource's validation allows).
///
/// `rows` must hold distinct ids in ascending order: the order in which the rows are locked
/// (MariaDB processes the `VALUES` list in order), the single lock order that keeps two batch
/// appliers from deadlocking each other. Returns the ids that existed, in that order.
pub fn mysql_insert_or_lock_all<R, const N: usize>(
    c: &mut diesel::MysqlConnection,
    table: &str,
    columns: [&str; N],
    rows: &[R],
    literals: impl for<'r> Fn(&'r R) -> [Literal<'r>; N],
) -> QueryResult<Vec<String>> {
    use crate::db::mysql_cached::Fixed;
    use diesel::sql_types::{Nullable, Text};
    use diesel::RunQueryDsl;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let head = mysql_insert_head(table, &columns);
    // The variable is reset by the first statement, in the same text query; the others append.
    let first_head = format!("SET {MYSQL_EXISTED_VAR} = ''; {head}");
    let tail = format!(
        " ON DUPLICATE KEY UPDATE id = \
         IF(({MYSQL_EXISTED_VAR} := CONCAT({MYSQL_EXISTED_VAR}, id, ',')) IS NULL, id, id)"
    );
    inline_sql::chunked(
        rows,
        (&first_head, &head, &tail),
        literals,
        |statement, _| statement.execute(c),
    )?;
    // A cached prepared statement: one round trip (ADR 0021).
    let existed: Option<String> =
        Fixed::<Nullable<Text>>::new(MYSQL_EXISTED_SELECT).get_result(c)?;
    Ok(existed
        .unwrap_or_default()
        .split(',')
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect())
}

/// MariaDB's [`SyncedTable::overwrite_all`] for `table` (`columns` and `literals` as for
/// [`mysql_insert_or_lock_all`]): a multi-row upsert whose conflict branch still decides by
/// `policy` ([`mysql_overwrite_clause`] over every column but the key and the version columns),
/// written inline, one text query per [`inline_sql::CHUNK_ROWS`] rows; how many rows were overwritten
/// (the rows are locked by the caller: none is absent).
pub fn mysql_overwrite_all<R, const N: usize>(
    c: &mut diesel::MysqlConnection,
    table: &str,
    columns: [&str; N],
    rows: &[R],
    policy: ConflictPolicy,
    literals: impl for<'r> Fn(&'r R) -> [Literal<'r>; N],
) -> QueryResult<usize> {
    let quoted = mysql_quoted(&overwritten(&columns));
    let assigned: Vec<&str> = quoted.iter().map(String::as_str).collect();
    let head = mysql_insert_head(table, &columns);
    let tail = mysql_overwrite_clause(&assigned, policy);
    let mut overwritten = 0;
    inline_sql::chunked(rows, (&head, &head, &tail), literals, |statement, n| {
        // Affected rows: 2 per row updated, 1 per row left as it was (the connection counts
        // found rows).
        let affected = statement.execute_counting(c)?;
        overwritten += (affected.max(0) as usize).saturating_sub(n);
        Ok(())
    })?;
    Ok(overwritten)
}

/// What an incoming version (and whether it is a tombstone) does to a stored one under
/// `policy`; `stored_payload` gives the stored row's payload for a conflict record. For a
/// resource that applies row by row as much as for [`apply_batch`].
pub fn outcome(
    policy: ConflictPolicy,
    incoming: (&Version, bool),
    stored: (Version, bool),
    stored_payload: impl FnOnce() -> serde_json::Value,
) -> ApplyOutcome {
    let here = (&stored.0, stored.1);
    match policy.compare(incoming, here) {
        // A live version over a tombstone (the delete is undone), or a tombstone over a live
        // row with a newer clock (`delete_wins`: that write is lost): a conflict, said so.
        std::cmp::Ordering::Greater if incoming.0 < here.0 || (here.1 && !incoming.1) => {
            ApplyOutcome::AppliedOver {
                rule: Rule::deciding(policy, here, incoming),
                lost_payload: stored_payload(),
                lost: stored.0,
            }
        }
        std::cmp::Ordering::Greater => ApplyOutcome::Applied,
        std::cmp::Ordering::Equal => ApplyOutcome::Duplicate,
        std::cmp::Ordering::Less => ApplyOutcome::Stale {
            rule: Rule::deciding(policy, incoming, here),
            current_payload: stored_payload(),
            current: stored.0,
        },
    }
}

fn broken(what: &str) -> DbError {
    contract_error(what.to_string())
}

/// What last-writer-wins decides for a batch against the rows stored before it.
struct Decision<R> {
    /// `(index, outcome)` of every item, in batch order.
    outcomes: Vec<(usize, ApplyOutcome)>,
    /// The final state of each id the batch creates (absent before it), ascending by id.
    inserts: Vec<R>,
    /// The final state of each stored row the batch overwrites, ascending by id.
    updates: Vec<R>,
}

/// SQLite: the caller's transaction holds the database's write lock, so the rows read are the
/// rows written over, and an absent id stays absent until the insert.
fn single_writer<T: SyncedTable>(
    conn: &mut AnyConnection,
    items: &[Incoming<'_, T::Row>],
    policy: ConflictPolicy,
) -> Result<Vec<(usize, ApplyOutcome)>, DbError> {
    let mut ids: Vec<&str> = items.iter().map(|i| T::id(&i.row)).collect();
    ids.sort_unstable();
    ids.dedup();
    let current = T::find_all(conn, &ids)?;
    let decision = decide::<T>(current, items, policy)?;
    for row in &decision.updates {
        T::update(conn, row)?;
    }
    for row in &decision.inserts {
        T::insert(conn, row)?;
    }
    Ok(decision.outcomes)
}

/// MariaDB, PostgreSQL: lock (or insert) every id of the batch in one id-ordered pass, then decide against
/// the rows that existed and overwrite those the batch wins in one statement (module docs).
fn locked<T: SyncedTable>(
    conn: &mut AnyConnection,
    items: Vec<Incoming<'_, T::Row>>,
    policy: ConflictPolicy,
) -> Result<Vec<(usize, ApplyOutcome)>, DbError> {
    if items
        .windows(2)
        .all(|w| T::id(&w[0].row) < T::id(&w[1].row))
    {
        // Distinct ids in ascending order (the order the sync container hands a batch over
        // in): if absent, each row is inserted as it came — no decision to make, no copy.
        let (places, rows): (Vec<_>, Vec<_>) = items
            .into_iter()
            .map(|item| ((item.index, item.version), item.row))
            .unzip();
        let existed = T::insert_or_lock_all(conn, &rows)?;
        if existed.is_empty() {
            return Ok(places
                .into_iter()
                .map(|(index, _)| (index, ApplyOutcome::Applied))
                .collect());
        }
        let items: Vec<_> = places
            .into_iter()
            .zip(rows)
            .map(|((index, version), row)| Incoming {
                index,
                row,
                version,
            })
            .collect();
        let locked_or_inserted = items.len();
        return decide_existing::<T>(conn, &items, existed, locked_or_inserted, policy);
    }
    // What the batch leaves of each id when the id is absent: every id of the batch, ascending.
    let if_absent = decide::<T>(Vec::new(), &items, policy)?;
    let existed = T::insert_or_lock_all(conn, &if_absent.inserts)?;
    if existed.is_empty() {
        // Every row was absent and is now inserted: the decision from absence stands.
        return Ok(if_absent.outcomes);
    }
    decide_existing::<T>(conn, &items, existed, if_absent.inserts.len(), policy)
}

/// [`locked`], once the lock pass found the rows of `existed` stored: decide against them,
/// and overwrite those the batch wins (`locked_or_inserted`: the rows the lock pass was given).
fn decide_existing<T: SyncedTable>(
    conn: &mut AnyConnection,
    items: &[Incoming<'_, T::Row>],
    existed: Vec<String>,
    locked_or_inserted: usize,
    policy: ConflictPolicy,
) -> Result<Vec<(usize, ApplyOutcome)>, DbError> {
    let ids: Vec<&str> = existed.iter().map(String::as_str).collect();
    let current = T::find_all_for_update(conn, &ids)?;
    if current.len() != existed.len() {
        return Err(broken("a row of the batch vanished under its lock"));
    }
    // The rows of the other ids were inserted by the lock pass with the state this decision
    // gives them too (the decision of an id depends on its own stored row only).
    let decision = decide::<T>(current, items, policy)?;
    debug_assert_eq!(
        decision.inserts.len() + existed.len(),
        locked_or_inserted,
        "the ids that did not exist are the ones inserted"
    );
    let overwritten = T::overwrite_all(conn, &decision.updates, policy)?;
    if overwritten != decision.updates.len() {
        return Err(broken(
            "a locked row of the batch did not lose to the version that won it",
        ));
    }
    Ok(decision.outcomes)
}

/// Last-writer-wins under `policy` in memory, item by item in the order given, against
/// `current` (the stored rows of the items' ids; an id not among them is absent).
fn decide<T: SyncedTable>(
    current: Vec<T::Row>,
    items: &[Incoming<'_, T::Row>],
    policy: ConflictPolicy,
) -> Result<Decision<T::Row>, DbError> {
    // id → (state now, stored before the batch?, changed by the batch?)
    let mut state: BTreeMap<String, (T::Row, bool, bool)> = current
        .into_iter()
        .map(|row| (T::id(&row).to_string(), (row, true, false)))
        .collect();
    let mut outcomes = Vec::with_capacity(items.len());
    for item in items {
        let outcome = match state.get_mut(T::id(&item.row)) {
            None => {
                let id = T::id(&item.row).to_string();
                state.insert(id, (item.row.clone(), false, true));
                ApplyOutcome::Applied
            }
            Some((row, _, changed)) => {
                let (hlc, origin) = T::version(row);
                let stored = Version::new(
                    Hlc::from_i64(hlc).map_err(|e| broken(&e.to_string()))?,
                    origin.to_string(),
                );
                let outcome = outcome(
                    policy,
                    (item.version, T::is_tombstone(&item.row)),
                    (stored, T::is_tombstone(row)),
                    || T::payload(row),
                );
                if matches!(
                    outcome,
                    ApplyOutcome::Applied | ApplyOutcome::AppliedOver { .. }
                ) {
                    *row = item.row.clone();
                    *changed = true;
                }
                outcome
            }
        };
        outcomes.push((item.index, outcome));
    }
    let (mut inserts, mut updates) = (Vec::new(), Vec::new());
    for (row, existed, changed) in state.into_values() {
        match (existed, changed) {
            (true, true) => updates.push(row),
            (false, true) => inserts.push(row),
            _ => {}
        }
    }
    Ok(Decision {
        outcomes,
        inserts,
        updates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Backend;

    #[test]
    fn placeholders_follow_the_backend() {
        assert_eq!(values_placeholders(Backend::Mysql, 2, 2), "(?, ?), (?, ?)");
        assert_eq!(values_placeholders(Backend::Sqlite, 1, 3), "(?, ?, ?)");
        assert_eq!(
            values_placeholders(Backend::Postgres, 2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
    }

    #[test]
    fn the_pg_overwrite_decides_by_the_policy_order() {
        let lww = pg_overwrite_clause("t", &["a", "b"], ConflictPolicy::Lww);
        assert_eq!(
            lww,
            " ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a, b = EXCLUDED.b, \
             sync_version = EXCLUDED.sync_version, sync_origin = EXCLUDED.sync_origin, \
             deleted_at = EXCLUDED.deleted_at \
             WHERE (EXCLUDED.sync_version, EXCLUDED.sync_origin) > (t.sync_version, t.sync_origin)"
        );
        let dw = pg_overwrite_clause("t", &[], ConflictPolicy::DeleteWins);
        assert!(
            dw.ends_with(
                "WHERE (EXCLUDED.deleted_at IS NOT NULL, EXCLUDED.sync_version, \
                 EXCLUDED.sync_origin) > (t.deleted_at IS NOT NULL, t.sync_version, t.sync_origin)"
            ),
            "{dw}"
        );
    }
}
