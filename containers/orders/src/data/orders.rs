//! Queries on `orders`. Every function takes the caller's connection (and transaction).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ship::contracts::ConflictPolicy;
use ship::db::inline_sql::Literal;
use ship::AnyConnection;

use super::schema::orders;
use crate::models::Order;

/// Ids per `IN (…)` list.
const IN_CHUNK: usize = 500;

/// Rows per multi-row `INSERT` on PostgreSQL (MariaDB's inline statements are cut by
/// `ship::db::inline_sql::chunked`): 13 columns × 100 binds, far below the 65,535 a statement
/// takes, and at most about 5 MiB of values (an order of 100 lines is under 50 KiB). A
/// 1,000-op batch is 10 statements per pass.
const INSERT_CHUNK: usize = 100;

/// The row, tombstone or not, without locking it.
pub(crate) fn find(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<Order>> {
    orders::table
        .find(id)
        .select(Order::as_select())
        .first(conn)
        .optional()
}

/// The row, locked until the end of the caller's transaction.
///
/// MariaDB, PostgreSQL: `SELECT … FOR UPDATE` (diesel's `for_update()` exists for the server
/// backends only, hence the match on the variant). SQLite has no row locks: the caller's
/// transaction is `BEGIN IMMEDIATE` (ship's `transact`), so it already holds the database's
/// write lock.
pub(crate) fn find_for_update(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<Order>> {
    // One query per arm: `as_select()` is typed by its backend.
    match conn {
        AnyConnection::Mysql(c) => orders::table
            .find(id)
            .select(Order::as_select())
            .for_update()
            .first(c)
            .optional(),
        AnyConnection::Pg(c) => orders::table
            .find(id)
            .select(Order::as_select())
            .for_update()
            .first(c)
            .optional(),
        AnyConnection::Sqlite(_) => find(conn, id),
    }
}

/// The rows with these ids, in id order (per chunk of [`IN_CHUNK`] ids; callers pass sorted
/// ids), without locking (callers hold SQLite's write lock).
pub(crate) fn find_all(conn: &mut AnyConnection, ids: &[&str]) -> QueryResult<Vec<Order>> {
    let mut rows = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        rows.extend(
            orders::table
                .filter(orders::id.eq_any(chunk))
                .order(orders::id.asc())
                .select(Order::as_select())
                .load(conn)?,
        );
    }
    Ok(rows)
}

/// The rows with these ids, in id order, locked until the end of the caller's transaction
/// (MariaDB, PostgreSQL `SELECT … FOR UPDATE`, [`IN_CHUNK`] ids per statement; SQLite:
/// [`find_all`] under the caller's write lock).
pub(crate) fn find_all_for_update(
    conn: &mut AnyConnection,
    ids: &[&str],
) -> QueryResult<Vec<Order>> {
    ship::on_server!(conn, |c| {
            let mut rows = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(IN_CHUNK) {
                rows.extend(
                    orders::table
                        .filter(orders::id.eq_any(chunk))
                        .order(orders::id.asc())
                        .select(Order::as_select())
                        .for_update()
                        .load(c)?,
                );
            }
            Ok(rows)
        }, sqlite => find_all(conn, ids))
}

/// `(id, tenant_id, deleted?)` of the rows with these ids, tombstones included: one query per
/// [`IN_CHUNK`] ids, in id order. With `lock`, the rows found stay locked until the end of the
/// caller's transaction (MariaDB, PostgreSQL `FOR UPDATE`, taken in id order; SQLite: the caller's write
/// transaction holds the database).
pub(crate) fn states(
    conn: &mut AnyConnection,
    ids: &[&str],
    lock: bool,
) -> QueryResult<Vec<(String, String, bool)>> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut rows = Vec::with_capacity(sorted.len());
    for chunk in sorted.chunks(IN_CHUNK) {
        let query = orders::table
            .filter(orders::id.eq_any(chunk))
            .order(orders::id.asc())
            .select((orders::id, orders::tenant_id, orders::deleted_at));
        let found: Vec<(String, String, Option<NaiveDateTime>)> = match conn {
            AnyConnection::Mysql(c) if lock => query.for_update().load(c)?,
            AnyConnection::Pg(c) if lock => query.for_update().load(c)?,
            _ => query.load(conn)?,
        };
        rows.extend(
            found
                .into_iter()
                .map(|(id, tenant, deleted_at)| (id, tenant, deleted_at.is_some())),
        );
    }
    Ok(rows)
}

/// How many live orders (not tombstones) name one of `customer_ids`.
pub(crate) fn count_live_of_customers(
    conn: &mut AnyConnection,
    customer_ids: &[&str],
) -> QueryResult<i64> {
    let mut n = 0;
    for chunk in customer_ids.chunks(IN_CHUNK) {
        n += orders::table
            .filter(orders::customer_id.eq_any(chunk))
            .filter(orders::deleted_at.is_null())
            .count()
            .get_result::<i64>(conn)?;
    }
    Ok(n)
}

pub(crate) fn insert(conn: &mut AnyConnection, row: &Order) -> QueryResult<()> {
    diesel::insert_into(orders::table)
        .values(row.clone())
        .execute(conn)
        .map(drop)
}

/// A row's columns, the key first, in [`literals`]' and [`bind_overwrite`]'s order (the
/// batch writes of `ship::lww` on MariaDB — which quotes them: `lines` is a reserved word
/// there — and PostgreSQL).
const COLUMNS: [&str; 13] = [
    "id",
    "tenant_id",
    "customer_id",
    "number",
    "status",
    "currency",
    "lines",
    "total_minor",
    "created_at",
    "updated_at",
    "sync_version",
    "sync_origin",
    "deleted_at",
];

/// Each row with its lines as JSON text (the column's value).
fn with_lines(rows: &[Order]) -> Vec<(&Order, String)> {
    rows.iter().map(|r| (r, r.lines.to_json())).collect()
}

/// A row's values in [`COLUMNS`]' order.
fn literals<'r>((r, lines): &'r (&Order, String)) -> [Literal<'r>; 13] {
    [
        Literal::Text(&r.id),
        Literal::Text(&r.tenant_id),
        Literal::Text(&r.customer_id),
        Literal::Text(&r.number),
        Literal::Text(&r.status),
        Literal::Text(&r.currency),
        Literal::Text(lines),
        Literal::BigInt(r.total_minor),
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
/// evaluated, nothing is written to it, and the ids returned are those inserted.
///
/// SQLite (one writer, `BEGIN IMMEDIATE`): read which ids exist, insert the others.
pub(crate) fn insert_or_lock_all(
    conn: &mut AnyConnection,
    rows: &[Order],
) -> QueryResult<Vec<String>> {
    use diesel::dsl::sql;
    debug_assert!(
        rows.windows(2).all(|w| w[0].id < w[1].id),
        "distinct ids in ascending order"
    );
    match conn {
        AnyConnection::Mysql(c) => {
            let rows = with_lines(rows);
            ship::lww::mysql_insert_or_lock_all(c, "orders", COLUMNS, &rows, literals)
        }
        AnyConnection::Pg(c) => {
            use diesel::query_dsl::methods::FilterDsl;
            use diesel::upsert::excluded;
            let mut inserted = std::collections::HashSet::with_capacity(rows.len());
            for chunk in rows.chunks(INSERT_CHUNK) {
                let ids: Vec<String> = diesel::insert_into(orders::table)
                    .values(chunk.to_vec())
                    .on_conflict(orders::id)
                    .do_update()
                    .set(orders::id.eq(excluded(orders::id)))
                    .filter(sql::<diesel::sql_types::Bool>("false"))
                    .returning(orders::id)
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

/// `chunk`'s rows bound to `ship::lww::pg_overwrite_sql`'s placeholders, in [`COLUMNS`]' order.
fn bind_overwrite<'f>(
    mut query: diesel::query_builder::BoxedSqlQuery<
        'f,
        diesel::pg::Pg,
        diesel::query_builder::SqlQuery,
    >,
    chunk: &[Order],
) -> diesel::query_builder::BoxedSqlQuery<'f, diesel::pg::Pg, diesel::query_builder::SqlQuery> {
    use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
    for r in chunk {
        query = query
            .bind::<Text, _>(r.id.clone())
            .bind::<Text, _>(r.tenant_id.clone())
            .bind::<Text, _>(r.customer_id.clone())
            .bind::<Text, _>(r.number.clone())
            .bind::<Text, _>(r.status.clone())
            .bind::<Text, _>(r.currency.clone())
            .bind::<Text, _>(r.lines.to_json())
            .bind::<BigInt, _>(r.total_minor)
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
    rows: &[Order],
    policy: ConflictPolicy,
) -> QueryResult<usize> {
    let mut overwritten = 0;
    match conn {
        AnyConnection::Mysql(c) => {
            let rows = with_lines(rows);
            overwritten =
                ship::lww::mysql_overwrite_all(c, "orders", COLUMNS, &rows, policy, literals)?;
        }
        AnyConnection::Pg(c) => {
            for chunk in rows.chunks(INSERT_CHUNK) {
                let sql = ship::lww::pg_overwrite_sql("orders", &COLUMNS, chunk.len(), policy);
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
pub(crate) fn update(conn: &mut AnyConnection, row: &Order) -> QueryResult<()> {
    diesel::update(orders::table.find(&row.id))
        .set(row.clone())
        .execute(conn)
        .map(drop)
}

/// Live (not deleted) orders of `tenant_id` (of `customer_id` too, when given) with
/// `id > after`, by id, at most `limit`.
pub(crate) fn live_page(
    conn: &mut AnyConnection,
    tenant_id: &str,
    customer_id: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Order>> {
    let mut query = orders::table
        .filter(orders::tenant_id.eq(tenant_id))
        .filter(orders::deleted_at.is_null())
        .select(Order::as_select())
        .order(orders::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(customer_id) = customer_id {
        query = query.filter(orders::customer_id.eq(customer_id.to_string()));
    }
    if let Some(after) = after {
        query = query.filter(orders::id.gt(after.to_string()));
    }
    query.load(conn)
}

/// Every row, tombstones included, with `id > after`, by id, at most `limit` (for the digest
/// and snapshots).
pub(crate) fn all_page(
    conn: &mut AnyConnection,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Order>> {
    let mut query = orders::table
        .select(Order::as_select())
        .order(orders::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(orders::id.gt(after.to_string()));
    }
    query.load(conn)
}

/// Of `customer_ids`, those some order (tombstones included) names.
pub(crate) fn named_customers_among(
    conn: &mut AnyConnection,
    customer_ids: &[&str],
) -> QueryResult<Vec<String>> {
    let mut named = Vec::new();
    for chunk in customer_ids.chunks(IN_CHUNK) {
        named.extend(
            orders::table
                .filter(orders::customer_id.eq_any(chunk))
                .select(orders::customer_id)
                .distinct()
                .load::<String>(conn)?,
        );
    }
    Ok(named)
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
    let query = orders::table
        .filter(orders::deleted_at.lt(before))
        .filter(orders::id.gt(after.unwrap_or("")))
        .order(orders::id.asc())
        .limit(limit)
        .select(orders::id);
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
            orders::table
                .filter(orders::id.eq_any(chunk))
                .filter(orders::deleted_at.is_not_null()),
        )
        .execute(conn)?;
    }
    Ok(n)
}

/// Every row, tombstones included.
pub(crate) fn count_all(conn: &mut AnyConnection) -> QueryResult<i64> {
    orders::table.count().get_result(conn)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::models::{OrderLine, OrderLines};

    fn row(number: &str, version: i64) -> Order {
        let now = ship::db::utc_now();
        Order {
            id: "01939d2e-0000-7000-8000-0000000000cc".into(),
            tenant_id: "acme".into(),
            customer_id: "01939d2e-0000-7000-8000-0000000000ee".into(),
            number: number.into(),
            status: "pending".into(),
            currency: "EUR".into(),
            lines: OrderLines(vec![OrderLine {
                sku: format!("{number} \"sku\""),
                quantity: 2,
                unit_price_minor: 5,
            }]),
            total_minor: 10,
            created_at: now,
            updated_at: now,
            sync_version: version,
            sync_origin: "eu".into(),
            deleted_at: None,
        }
    }

    fn with_id(suffix: &str, number: &str, version: i64) -> Order {
        Order {
            id: format!("01939d2e-0000-7000-8000-0000000000{suffix}"),
            ..row(number, version)
        }
    }

    ship::backend_tests! {
        async fn insert_or_lock_all_inserts_the_absent_and_names_the_present(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
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
            let stored = Order { sync_origin: "us".into(), ..row("stored", 10) };
            insert(&mut conn, &stored).unwrap();
            // Greater version, smaller origin: both version columns change.
            let newer = Order { sync_origin: "ap".into(), status: "shipped".into(), ..row("newer", 20) };
            assert_eq!(overwrite_all(&mut conn, std::slice::from_ref(&newer), ConflictPolicy::Lww).unwrap(), 1);
            assert_eq!(find(&mut conn, &newer.id).unwrap(), Some(newer.clone()));
            if !matches!(*conn, AnyConnection::Sqlite(_)) {
                let older = Order { sync_origin: "zz".into(), ..row("older", 15) };
                assert_eq!(overwrite_all(&mut conn, &[older], ConflictPolicy::Lww).unwrap(), 0);
                assert_eq!(find(&mut conn, &newer.id).unwrap(), Some(newer.clone()));
                let tie = Order { sync_origin: "zz".into(), ..row("tie", 20) };
                assert_eq!(overwrite_all(&mut conn, std::slice::from_ref(&tie), ConflictPolicy::Lww).unwrap(), 1);
                assert_eq!(find(&mut conn, &tie.id).unwrap(), Some(tie));
            }
        }

        async fn overwrite_all_under_delete_wins_ranks_a_tombstone_above_any_live_version(db: TestDb) {
            let mut conn = db.pool.get().unwrap();
            let live = Order { sync_origin: "us".into(), ..row("live", 20) };
            insert(&mut conn, &live).unwrap();
            if !matches!(*conn, AnyConnection::Sqlite(_)) {
                let gone = Some(ship::db::utc_now());
                // An older tombstone overwrites a newer live version, every column with it.
                let tombstone = Order { sync_origin: "ap".into(), deleted_at: gone, ..row("deleted", 10) };
                assert_eq!(overwrite_all(&mut conn, std::slice::from_ref(&tombstone), ConflictPolicy::DeleteWins).unwrap(), 1);
                assert_eq!(find(&mut conn, &live.id).unwrap(), Some(tombstone.clone()));
                // A newer live version does not bring it back under delete_wins (it would under lww).
                let back = Order { sync_origin: "zz".into(), ..row("back", 30) };
                assert_eq!(overwrite_all(&mut conn, std::slice::from_ref(&back), ConflictPolicy::DeleteWins).unwrap(), 0);
                assert_eq!(find(&mut conn, &live.id).unwrap(), Some(tombstone.clone()));
                // Between tombstones the greater version wins, its deleted_at too.
                let later = Order { sync_origin: "eu".into(), deleted_at: Some(ship::db::utc_now() + chrono::Duration::seconds(5)), ..row("later", 11) };
                assert_eq!(overwrite_all(&mut conn, std::slice::from_ref(&later), ConflictPolicy::DeleteWins).unwrap(), 1);
                assert_eq!(find(&mut conn, &live.id).unwrap(), Some(later.clone()));
                assert_eq!(overwrite_all(&mut conn, std::slice::from_ref(&tombstone), ConflictPolicy::DeleteWins).unwrap(), 0);
                assert_eq!(find(&mut conn, &live.id).unwrap(), Some(later.clone()));
                assert_eq!(overwrite_all(&mut conn, std::slice::from_ref(&back), ConflictPolicy::Lww).unwrap(), 1);
                assert_eq!(find(&mut conn, &live.id).unwrap(), Some(back));
            }
        }
    }
}
