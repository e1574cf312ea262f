//! Queries on `customers`. Every function takes the caller's connection (and transaction).

use diesel::prelude::*;
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
/// MariaDB: `SELECT … FOR UPDATE` (diesel's `for_update()` exists for MySQL only, hence the
/// match on the variant). SQLite has no row locks: the caller's transaction is
/// `BEGIN IMMEDIATE` (ship's `transact`), so it already holds the database's write lock.
pub(crate) fn find_for_update(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<Customer>> {
    // One query per arm: `as_select()` is typed by its backend.
    match conn {
        AnyConnection::Mysql(c) => customers::table
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

pub(crate) fn insert(conn: &mut AnyConnection, row: &Customer) -> QueryResult<()> {
    diesel::insert_into(customers::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Insert `row`, or — when a row with its id exists already — lock that row and leave it
/// unchanged. Returns `true` when `row` was inserted. The caller decides under the lock next.
///
/// Why not a plain INSERT and a retry on duplicate key: on MariaDB, an INSERT that fails with a
/// duplicate key takes a *shared* lock on the existing row; two such losers then both asking
/// for `FOR UPDATE` deadlock, and InnoDB rolls back the caller's whole transaction.
/// `INSERT … ON DUPLICATE KEY UPDATE` takes an *exclusive* lock on the duplicate instead, so
/// concurrent first applies of one row queue up. The no-op update sets a session variable so
/// the two cases can be told apart (diesel sets `CLIENT_FOUND_ROWS`, so the affected-row count
/// is 1 in both). SQLite has one writer at a time (`BEGIN IMMEDIATE`): a plain insert.
pub(crate) fn insert_or_lock(conn: &mut AnyConnection, row: &Customer) -> QueryResult<bool> {
    use diesel::connection::SimpleConnection;
    use diesel::dsl::{sql, DuplicatedKeys};
    use diesel::sql_types::{BigInt, Text};
    match conn {
        AnyConnection::Mysql(c) => {
            c.batch_execute("SET @customers_row_existed = 0")?;
            diesel::insert_into(customers::table)
                .values(row)
                .on_conflict(DuplicatedKeys)
                .do_update()
                .set(customers::id.eq(sql::<Text>("IF((@customers_row_existed := 1) = 1, id, id)")))
                .execute(c)?;
            let existed: i64 =
                diesel::select(sql::<BigInt>("CAST(@customers_row_existed AS SIGNED)"))
                    .get_result(c)?;
            Ok(existed == 0)
        }
        AnyConnection::Sqlite(c) => {
            match diesel::insert_into(customers::table).values(row).execute(c) {
                Ok(_) => Ok(true),
                Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                )) => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
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

/// Ids of up to `limit` rows deleted before `before`.
pub(crate) fn tombstones_before(
    conn: &mut AnyConnection,
    before: chrono::NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<String>> {
    customers::table
        .filter(customers::deleted_at.lt(before))
        .order(customers::id.asc())
        .limit(limit)
        .select(customers::id)
        .load(conn)
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
        async fn insert_or_lock_inserts_once_and_then_leaves_the_row_alone(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            let first = row("first", 1);
            assert!(insert_or_lock(&mut conn, &first).unwrap(), "absent: inserted");
            assert!(!insert_or_lock(&mut conn, &row("second", 2)).unwrap(), "present: not inserted");
            assert_eq!(find(&mut conn, &first.id).unwrap(), Some(first.clone()), "unchanged");
            assert!(insert_or_lock(&mut conn, &Customer { id: "01939d2e-0000-7000-8000-0000000000dd".into(), ..first }).unwrap());
        }
    }
}
