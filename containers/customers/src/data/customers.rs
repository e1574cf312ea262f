//! Queries on `customers`. Every function takes the caller's connection (and transaction).

use diesel::prelude::*;
use ship::contracts::ConflictPolicy;
use ship::db::inline_sql::Literal;
use ship::AnyConnection;

use super::schema::customers;
use crate::models::Customer;

/// The row, tombstone or not, without locking it.
pub(crate) fn find(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<Customer>> {
    customers::table
        .find(id)
        .select(Customer::as_select())
        .first(conn)
        .optional()
}

/// The row, locked until the end of the caller's transaction.
///
/// MariaDB, PostgreSQL: `SELECT … FOR UPDATE` (diesel's `for_update()` exists for the server
/// backends only, hence the match on the variant). SQLite has no row locks: the caller's
/// transaction is `BEGIN IMMEDIATE` (ship's `transact`), so it already holds the database's
/// write lock.
pub(crate) fn find_for_update(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<Customer>> {
    // One query per arm: `as_select()` is typed by its backend.
    match conn {
        AnyConnection::Mysql(c) => customers::table
            .find(id)
            .select(Customer::as_select())
            .for_update()
            .first(c)
            .optional(),
        AnyConnection::Pg(c) => customers::table
            .find(id)
            .select(Customer::as_select())
            .for_update()
            .first(c)
            .optional(),
        AnyConnection::Sqlite(_) => find(conn, id),
    }
}

/// Ids per `IN (…)` list.
const IN_CHUNK: usize = 500;

/// The rows with these ids, in id order, without locking (callers hold SQLite's write lock).
pub(crate) fn find_all(conn: &mut AnyConnection, ids: &[&str]) -> QueryResult<Vec<Customer>> {
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        rows.extend(
            customers::table
                .filter(customers::id.eq_any(chunk))
                .order(customers::id.asc())
                .select(Customer::as_select())
                .load(conn)?,
        );
    }
    Ok(rows)
}

/// `(id, tenant_id, deleted?)` of the rows with these ids, tombstones included (for a
/// reference to them); with `lock`, locked until the end of the caller's transaction
/// (MariaDB, PostgreSQL; see [`find_for_update`]).
pub(crate) fn states(
    conn: &mut AnyConnection,
    ids: &[&str],
    lock: bool,
) -> QueryResult<Vec<(String, String, bool)>> {
    let mut rows = Vec::with_capacity(ids.len());
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    for chunk in sorted.chunks(IN_CHUNK) {
        let query = customers::table
            .filter(customers::id.eq_any(chunk))
            .order(customers::id.asc())
            .select((customers::id, customers::tenant_id, customers::deleted_at));
        let found: Vec<(String, String, Option<chrono::NaiveDateTime>)> = match conn {
            AnyConnection::Mysql(c) if lock => query.for_update().load(c)?,
            AnyConnection::Pg(c) if lock => query.for_update().load(c)?,
            _ => query.load(conn)?,
        };
        rows.extend(
            found
                .into_iter()
                .map(|(id, tenant, deleted)| (id, tenant, deleted.is_some())),
        );
    }
    Ok(rows)
}

pub(crate) fn insert(conn: &mut AnyConnection, row: &Customer) -> QueryResult<()> {
    diesel::insert_into(customers::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// New rows (fresh ids: nothing to lock or decide), in one multi-row statement per
/// [`INSERT_CHUNK`] rows on MariaDB and PostgreSQL, where a round trip per row is what a bulk
/// write costs; one cached prepared insert per row on SQLite (in process: no round trip to
/// save).
pub(crate) fn insert_all(conn: &mut AnyConnection, rows: &[Customer]) -> QueryResult<()> {
    ship::on_server!(conn, |c| {
        for chunk in rows.chunks(INSERT_CHUNK) {
            diesel::insert_into(customers::table)
                .values(chunk)
                .execute(c)?;
        }
    }, sqlite => {
        for row in rows {
            insert(conn, row)?;
        }
    });
    Ok(())
}

/// Rows per multi-row `INSERT`: a whole batch at the default `sync.max_ops_per_batch` (1,000)
/// in one statement; 10 columns × 1,000 binds (MariaDB and PostgreSQL take 65,535), and under 1 MiB of
/// statement (a customer row is under 1 KiB), below any `max_allowed_packet` MariaDB allows.
const INSERT_CHUNK: usize = 1_000;

/// A row's columns, the key first, in [`literals`]' and [`bind_overwrite`]'s order (the
/// batch writes of `ship::lww` on MariaDB and PostgreSQL).
const COLUMNS: [&str; 10] = [
    "id",
    "tenant_id",
    "name",
    "email",
    "status",
    "created_at",
    "updated_at",
    "sync_version",
    "sync_origin",
    "deleted_at",
];

/// A row's values in [`COLUMNS`]' order.
fn literals(r: &Customer) -> [Literal<'_>; 10] {
    [
        Literal::Text(&r.id),
        Literal::Text(&r.tenant_id),
        Literal::Text(&r.name),
        Literal::Text(&r.email),
        Literal::Text(&r.status),
        Literal::Timestamp(r.created_at),
        Literal::Timestamp(r.updated_at),
        Literal::BigInt(r.sync_version),
        Literal::Text(&r.sync_origin),
        Literal::NullableTimestamp(r.deleted_at),
    ]
}

/// Insert every row of `rows` whose id is absent and lock every
/// row whose id exists (leaving it unchanged), in the order of `rows`. Returns the ids that
/// existed, in the order of `rows`.
///
/// `rows` must hold distinct ids in ascending order: that is the order in which the rows are
/// locked (MariaDB processes the `VALUES` list in order), the single lock order that keeps two
/// batch appliers from deadlocking each other.
///
/// MariaDB: `ship::lww::mysql_insert_or_lock_all` (`INSERT … ON DUPLICATE KEY UPDATE id =
/// IF((@v := CONCAT(@v, id, ',')) …, id, id)`, values inline; ids are UUIDs, so `,` separates
/// them unambiguously).
///
/// PostgreSQL (ADR 0018): `INSERT … ON CONFLICT (id) DO UPDATE SET id = EXCLUDED.id WHERE false
/// RETURNING id` — the conflicting row is locked `FOR UPDATE` before the (false) condition is
/// evaluated, nothing is written to it, and the ids returned are those inserted: one statement.
///
/// SQLite (one writer, `BEGIN IMMEDIATE`): read which ids exist, insert the others.
pub(crate) fn insert_or_lock_all(
    conn: &mut AnyConnection,
    rows: &[Customer],
) -> QueryResult<Vec<String>> {
    use diesel::dsl::sql;
    debug_assert!(
        rows.windows(2).all(|w| w[0].id < w[1].id),
        "distinct ids in ascending order"
    );
    match conn {
        AnyConnection::Mysql(c) => {
            ship::lww::mysql_insert_or_lock_all(c, "customers", COLUMNS, rows, literals)
        }
        AnyConnection::Pg(c) => {
            use diesel::query_dsl::methods::FilterDsl;
            use diesel::upsert::excluded;
            let mut inserted = std::collections::HashSet::with_capacity(rows.len());
            for chunk in rows.chunks(INSERT_CHUNK) {
                let ids: Vec<String> = diesel::insert_into(customers::table)
                    .values(chunk)
                    .on_conflict(customers::id)
                    .do_update()
                    .set(customers::id.eq(excluded(customers::id)))
                    .filter(sql::<diesel::sql_types::Bool>("false"))
                    .returning(customers::id)
                    .get_results(c)?;
                inserted.extend(ids);
            }
            Ok(rows
                .iter()
                .filter(|r| !inserted.contains(&r.id))
                .map(|r| r.id.clone())
                .collect())
        }
        AnyConnection::Sqlite(_) => {
            let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
            let existed: std::collections::HashSet<String> =
                find_all(conn, &ids)?.into_iter().map(|r| r.id).collect();
            for row in rows.iter().filter(|r| !existed.contains(&r.id)) {
                insert(conn, row)?;
            }
            Ok(rows
                .iter()
                .filter(|r| existed.contains(&r.id))
                .map(|r| r.id.clone())
                .collect())
        }
    }
}

/// The rows with these ids, in id order, locked until the end of the caller's transaction
/// (MariaDB, PostgreSQL `SELECT … FOR UPDATE`, [`IN_CHUNK`] ids per statement; SQLite:
/// [`find_all`] under the caller's write lock).
pub(crate) fn find_all_for_update(
    conn: &mut AnyConnection,
    ids: &[&str],
) -> QueryResult<Vec<Customer>> {
    ship::on_server!(conn, |c| {
            let mut rows = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(IN_CHUNK) {
                rows.extend(
                    customers::table
                        .filter(customers::id.eq_any(chunk))
                        .order(customers::id.asc())
                        .select(Customer::as_select())
                        .for_update()
                        .load(c)?,
                );
            }
            Ok(rows)
        }, sqlite => find_all(conn, ids))
}

/// `chunk`'s rows bound to `ship::lww::pg_overwrite_sql`'s placeholders, in [`COLUMNS`]' order.
fn bind_overwrite<'f>(
    mut query: diesel::query_builder::BoxedSqlQuery<
        'f,
        diesel::pg::Pg,
        diesel::query_builder::SqlQuery,
    >,
    chunk: &[Customer],
) -> diesel::query_builder::BoxedSqlQuery<'f, diesel::pg::Pg, diesel::query_builder::SqlQuery> {
    use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
    for r in chunk {
        query = query
            .bind::<Text, _>(r.id.clone())
            .bind::<Text, _>(r.tenant_id.clone())
            .bind::<Text, _>(r.name.clone())
            .bind::<Text, _>(r.email.clone())
            .bind::<Text, _>(r.status.clone())
            .bind::<Timestamp, _>(r.created_at)
            .bind::<Timestamp, _>(r.updated_at)
            .bind::<BigInt, _>(r.sync_version)
            .bind::<Text, _>(r.sync_origin.clone())
            .bind::<Nullable<Timestamp>, _>(r.deleted_at);
    }
    query
}

/// Overwrite stored rows with `rows` (distinct ids, ascending, each newer than the stored row
/// and locked by the caller): multi-row upserts whose conflict branch still decides by
/// `policy`, so that a row can never go back to a version the policy ranks lower — on MariaDB
/// `ship::lww::mysql_overwrite_all` (values inline), on PostgreSQL one statement per
/// [`INSERT_CHUNK`] rows by `ship::lww::pg_overwrite_sql`. Returns how many rows were overwritten:
/// a row that was not (absent, or not older) is a broken invariant the caller reports. SQLite:
/// one `UPDATE` per row, under the caller's write lock.
pub(crate) fn overwrite_all(
    conn: &mut AnyConnection,
    rows: &[Customer],
    policy: ConflictPolicy,
) -> QueryResult<usize> {
    let mut overwritten = 0;
    match conn {
        AnyConnection::Mysql(c) => {
            overwritten =
                ship::lww::mysql_overwrite_all(c, "customers", COLUMNS, rows, policy, literals)?;
        }
        AnyConnection::Pg(c) => {
            for chunk in rows.chunks(INSERT_CHUNK) {
                let sql = ship::lww::pg_overwrite_sql("customers", &COLUMNS, chunk.len(), policy);
                let query = diesel::sql_query(sql).into_boxed::<diesel::pg::Pg>();
                // Affected rows: 1 per row updated, 0 per row the condition kept (the rows are
                // locked by the caller: none is absent, none inserted).
                overwritten += bind_overwrite(query, chunk).execute(c)?;
            }
        }
        AnyConnection::Sqlite(_) => {
            for row in rows {
                update(conn, row)?;
            }
            overwritten = rows.len();
        }
    }
    Ok(overwritten)
}

/// Overwrite every column but the id with `row`'s values.
pub(crate) fn update(conn: &mut AnyConnection, row: &Customer) -> QueryResult<()> {
    diesel::update(customers::table.find(&row.id))
        .set(row)
        .execute(conn)
        .map(drop)
}

/// Live (not deleted) customers of `tenant_id` with `id > after`, by id, at most `limit`.
pub(crate) fn live_page(
    conn: &mut AnyConnection,
    tenant_id: &str,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Customer>> {
    let mut query = customers::table
        .filter(customers::tenant_id.eq(tenant_id))
        .filter(customers::deleted_at.is_null())
        .select(Customer::as_select())
        .order(customers::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(customers::id.gt(after.to_string()));
    }
    query.load(conn)
}

/// Every row, tombstones included, with `id > after`, by id, at most `limit` (for the digest).
pub(crate) fn all_page(
    conn: &mut AnyConnection,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Customer>> {
    let mut query = customers::table
        .select(Customer::as_select())
        .order(customers::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(customers::id.gt(after.to_string()));
    }
    query.load(conn)
}

/// Ids of up to `limit` rows deleted before `before`, with `id > after`, by id, locked to the
/// end of the caller's transaction on a server (`SyncResource::tombstones_before`).
pub(crate) fn tombstones_before(
    conn: &mut AnyConnection,
    before: chrono::NaiveDateTime,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<String>> {
    // Every id is above "" (ids are non-empty): one statement shape with or without `after`.
    let query = customers::table
        .filter(customers::deleted_at.lt(before))
        .filter(customers::id.gt(after.unwrap_or("")))
        .order(customers::id.asc())
        .limit(limit)
        .select(customers::id);
    match conn {
        AnyConnection::Mysql(c) => query.for_update().load(c),
        AnyConnection::Pg(c) => query.for_update().load(c),
        AnyConnection::Sqlite(_) => query.load(conn),
    }
}

/// Delete these rows if they are still tombstones.
pub(crate) fn delete_tombstones(conn: &mut AnyConnection, ids: &[String]) -> QueryResult<usize> {
    let mut n = 0;
    for chunk in ids.chunks(IN_CHUNK) {
        n += diesel::delete(
            customers::table
                .filter(customers::id.eq_any(chunk))
                .filter(customers::deleted_at.is_not_null()),
        )
        .execute(conn)?;
    }
    Ok(n)
}

/// Every row, tombstones included.
pub(crate) fn count_all(conn: &mut AnyConnection) -> QueryResult<i64> {
    customers::table.count().get_result(conn)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn row(name: &str, version: i64) -> Customer {
        let now = ship::db::utc_now();
        Customer {
            id: "01939d2e-0000-7000-8000-0000000000cc".into(),
            tenant_id: "acme".into(),
            name: name.into(),
            email: "a@b".into(),
            status: "active".into(),
            created_at: now,
            updated_at: now,
            sync_version: version,
            sync_origin: "eu".into(),
            deleted_at: None,
        }
    }

    ship::backend_tests! {
        /// A batch larger than one statement (MariaDB: 1,000 rows inline; PostgreSQL: its
        /// chunks), every other row stored before: the present ids are named across the
        /// statements, in order, the absent rows inserted, the present ones untouched; then
        /// the overwrite of the present ones, across statements too, counts each once.
        async fn a_batch_of_several_statements_locks_inserts_and_overwrites_every_row(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            let with_id = |k: usize, name: &str, version: i64| Customer {
                id: format!("01939d2e-0000-7000-8000-{k:012}"),
                ..row(name, version)
            };
            let stored: Vec<Customer> =
                (0..2_300).step_by(2).map(|k| with_id(k, "stored", 5)).collect();
            insert_all(&mut conn, &stored).unwrap();
            let batch: Vec<Customer> = (0..2_300).map(|k| with_id(k, "incoming", 9)).collect();
            let existed = insert_or_lock_all(&mut conn, &batch).unwrap();
            assert_eq!(existed, stored.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
            let ids: Vec<&str> = batch.iter().map(|r| r.id.as_str()).collect();
            let now = find_all(&mut conn, &ids).unwrap();
            assert_eq!(now.len(), 2_300);
            for (k, r) in now.iter().enumerate() {
                let expected = if k % 2 == 0 { &stored[k / 2] } else { &batch[k] };
                assert_eq!(r, expected, "row {k}");
            }
            let winners: Vec<Customer> = batch.iter().step_by(2).cloned().collect();
            assert_eq!(overwrite_all(&mut conn, &winners, ConflictPolicy::Lww).unwrap(), 1_150);
            assert_eq!(find_all(&mut conn, &ids).unwrap(), batch);
            // On a server, overwriting again with the same versions changes nothing and counts
            // nothing (the statement still decides; SQLite's caller decided and holds the lock).
            if conn.backend() != ship::Backend::Sqlite {
                assert_eq!(overwrite_all(&mut conn, &winners, ConflictPolicy::Lww).unwrap(), 0);
            }
        }

        async fn insert_or_lock_all_inserts_the_absent_and_names_the_present(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            let with_id = |suffix: &str, name: &str, version: i64| Customer {
                id: format!("01939d2e-0000-7000-8000-0000000000{suffix}"),
                ..row(name, version)
            };
            let stored = [with_id("b1", "stored b1", 5), with_id("b3", "stored b3", 5)];
            for r in &stored {
                insert(&mut conn, r).unwrap();
            }
            let batch = [
                with_id("b0", "new b0", 9),
                with_id("b1", "incoming b1", 9),
                with_id("b2", "new b2", 9),
                with_id("b3", "incoming b3", 9),
            ];
            let existed = insert_or_lock_all(&mut conn, &batch).unwrap();
            assert_eq!(existed, vec![stored[0].id.clone(), stored[1].id.clone()]);
            let ids: Vec<&str> = batch.iter().map(|r| r.id.as_str()).collect();
            // The absent rows are inserted as given, the present ones are left as they were.
            assert_eq!(
                find_all(&mut conn, &ids).unwrap(),
                vec![batch[0].clone(), stored[0].clone(), batch[2].clone(), stored[1].clone()]
            );
            // The session's record starts empty for each call.
            assert_eq!(insert_or_lock_all(&mut conn, &[with_id("b4", "new b4", 1)]).unwrap(), Vec::<String>::new());
            assert_eq!(insert_or_lock_all(&mut conn, &[]).unwrap(), Vec::<String>::new());
        }

        async fn overwrite_all_takes_only_newer_versions_and_sets_the_origin_too(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            let stored = Customer { sync_origin: "us".into(), ..row("stored", 10) };
            insert(&mut conn, &stored).unwrap();
            // Greater version, smaller origin: both version columns change (the assignment-order
            // trap would keep the stored origin).
            let newer = Customer { sync_origin: "ap".into(), ..row("newer", 20) };
            assert_eq!(overwrite_all(&mut conn, std::slice::from_ref(&newer), ConflictPolicy::Lww).unwrap(), 1);
            assert_eq!(find(&mut conn, &newer.id).unwrap(), Some(newer.clone()));
            if !matches!(*conn, AnyConnection::Sqlite(_)) {
                // The conflict branch still decides by version: an older row is not written,
                // and the count says so.
                let older = Customer { sync_origin: "zz".into(), ..row("older", 15) };
                assert_eq!(overwrite_all(&mut conn, &[older], ConflictPolicy::Lww).unwrap(), 0);
                assert_eq!(find(&mut conn, &newer.id).unwrap(), Some(newer.clone()));
                // An equal version with a greater origin wins the tie.
                let tie = Customer { sync_origin: "zz".into(), ..row("tie", 20) };
                assert_eq!(overwrite_all(&mut conn, std::slice::from_ref(&tie), ConflictPolicy::Lww).unwrap(), 1);
                assert_eq!(find(&mut conn, &tie.id).unwrap(), Some(tie));
            }
        }

        async fn overwrite_all_under_delete_wins_ranks_a_tombstone_above_any_live_version(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            let live = Customer { sync_origin: "us".into(), ..row("live", 20) };
            insert(&mut conn, &live).unwrap();
            if !matches!(*conn, AnyConnection::Sqlite(_)) {
                let gone = Some(ship::db::utc_now());
                // An older tombstone overwrites a newer live version, every column with it.
                let tombstone = Customer { sync_origin: "ap".into(), deleted_at: gone, ..row("deleted", 10) };
                assert_eq!(overwrite_all(&mut conn, std::slice::from_ref(&tombstone), ConflictPolicy::DeleteWins).unwrap(), 1);
                assert_eq!(find(&mut conn, &live.id).unwrap(), Some(tombstone.clone()));
                // A newer live version does not bring it back under delete_wins (it would under lww).
                let back = Customer { sync_origin: "zz".into(), ..row("back", 30) };
                assert_eq!(overwrite_all(&mut conn, std::slice::from_ref(&back), ConflictPolicy::DeleteWins).unwrap(), 0);
                assert_eq!(find(&mut conn, &live.id).unwrap(), Some(tombstone.clone()));
                // Between tombstones the greater version wins, its deleted_at too.
                let later = Customer { sync_origin: "eu".into(), deleted_at: Some(ship::db::utc_now() + chrono::Duration::seconds(5)), ..row("later", 11) };
                assert_eq!(overwrite_all(&mut conn, std::slice::from_ref(&later), ConflictPolicy::DeleteWins).unwrap(), 1);
                assert_eq!(find(&mut conn, &live.id).unwrap(), Some(later.clone()));
                assert_eq!(overwrite_all(&mut conn, std::slice::from_ref(&tombstone), ConflictPolicy::DeleteWins).unwrap(), 0);
                assert_eq!(find(&mut conn, &live.id).unwrap(), Some(later.clone()));
                assert_eq!(overwrite_all(&mut conn, std::slice::from_ref(&back), ConflictPolicy::Lww).unwrap(), 1);
                assert_eq!(find(&mut conn, &live.id).unwrap(), Some(back.clone()));
                // One statement, mixed outcomes: the count is of the rows that won.
                let other = Customer { id: "01939d2e-0000-7000-8000-0000000000dd".into(), ..later.clone() };
                insert(&mut conn, &other).unwrap();
                let gone_again = Customer { sync_origin: "ap".into(), deleted_at: gone, ..row("gone again", 1) };
                let revived = Customer { id: other.id.clone(), ..row("revived", 99) };
                assert_eq!(overwrite_all(&mut conn, &[gone_again.clone(), revived], ConflictPolicy::DeleteWins).unwrap(), 1);
                assert_eq!(find(&mut conn, &live.id).unwrap(), Some(gone_again));
                assert_eq!(find(&mut conn, &other.id).unwrap(), Some(other));
            }
        }
    }

    /// PostgreSQL (ADR 0018): the insert-or-lock pass locks a present row as strongly as the
    /// `SELECT … FOR UPDATE` that follows (another session cannot even take `FOR KEY SHARE`),
    /// and writes nothing to it (no new row version: its `xmin` is unchanged).
    mod insert_or_lock_all_locks_a_present_row_for_update_without_writing_it {
        use super::*;
        use diesel::connection::SimpleConnection;

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres() {
            let db = ship::testing::TestDb::new(ship::db::Backend::Postgres);
            let mut conn = db.pool.get().unwrap();
            let stored = row("stored", 5);
            insert(&mut conn, &stored).unwrap();
            let version_of_row = |conn: &mut AnyConnection| -> String {
                diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>(&format!(
                    "(SELECT xmin::text FROM customers WHERE id = '{}')",
                    stored.id
                )))
                .get_result(conn)
                .unwrap()
            };
            let before = version_of_row(&mut conn);

            let mut other = db.pool.get().unwrap();
            conn.batch_execute("BEGIN").unwrap();
            let incoming = Customer {
                name: "incoming".into(),
                ..row("incoming", 9)
            };
            let existed = insert_or_lock_all(&mut conn, &[incoming]).unwrap();
            assert_eq!(existed, vec![stored.id.clone()]);
            let err = other
                .batch_execute(&format!(
                    "SELECT id FROM customers WHERE id = '{}' FOR KEY SHARE NOWAIT",
                    stored.id
                ))
                .unwrap_err();
            assert!(err.to_string().contains("could not obtain lock"), "{err}");
            conn.batch_execute("COMMIT").unwrap();

            assert_eq!(
                version_of_row(&mut other),
                before,
                "the present row was not written"
            );
            assert_eq!(find(&mut other, &stored.id).unwrap(), Some(stored));
        }
    }
}
