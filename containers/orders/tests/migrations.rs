//! The orders migrations: the table and its indexes, and the sync-columns migration on a table
//! that already holds rows (the backfill, and revert → run again), on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::NaiveDateTime;
use diesel::backend::Backend as DieselBackend;
use diesel::connection::SimpleConnection;
use diesel::migration::MigrationSource;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use ship::db::migrations;
use ship::testing::TestDb;
use ship::AnyConnection;

const CREATE: &str = "2026-12-06-000400_orders_create_orders";
const SYNC_COLUMNS: &str = "2026-12-06-000401_orders_add_sync_columns";

/// Apply the pending migrations oldest first, up to and including `last`.
fn migrate_up_to(conn: &mut AnyConnection, last: &str) {
    fn go<DB: DieselBackend>(
        h: &mut impl MigrationHarness<DB>,
        source: EmbeddedMigrations,
        last: &str,
    ) where
        EmbeddedMigrations: MigrationSource<DB>,
    {
        let mut pending = h.pending_migrations(source).unwrap();
        pending.sort_by_key(|m| m.name().version().as_owned());
        for m in pending {
            let name = m.name().to_string();
            h.run_migration(&*m).unwrap();
            if name == last {
                return;
            }
        }
        panic!("migration {last} not found");
    }
    match conn {
        AnyConnection::Sqlite(c) => go(c, migrations::SQLITE, last),
        AnyConnection::Mysql(c) => go(c, migrations::MYSQL, last),
        AnyConnection::Pg(c) => go(c, migrations::POSTGRES, last),
    }
}

const ROWS: [(&str, &str); 5] = [
    (
        "01939d2e-0000-7000-8000-000000000001",
        "2026-11-25 15:00:00.123456",
    ),
    (
        "01939d2e-0000-7000-8000-000000000002",
        "2026-11-25 15:00:00",
    ),
    (
        "01939d2e-0000-7000-8000-000000000003",
        "2001-02-03 04:05:06.999999",
    ),
    // Before the epoch the version is clamped to 0, never a negative HLC.
    (
        "01939d2e-0000-7000-8000-000000000004",
        "1969-07-20 20:17:40",
    ),
    // A future updated_at is capped at the migration's time.
    (
        "01939d2e-0000-7000-8000-000000000005",
        "2999-01-01 00:00:00",
    ),
];

fn insert_legacy_rows(conn: &mut AnyConnection) {
    for (i, (id, updated)) in ROWS.iter().enumerate() {
        // `lines` is a reserved word in MariaDB; SQLite takes the backquotes too, PostgreSQL
        // takes it bare.
        let lines = if matches!(conn, AnyConnection::Pg(_)) {
            "lines"
        } else {
            "`lines`"
        };
        conn.batch_execute(&format!(
            "INSERT INTO orders (id, tenant_id, customer_id, number, status, currency, {lines}, \
             total_minor, created_at, updated_at) VALUES ('{id}', 'acme', \
             '01939d2e-0000-7000-8000-0000000000cc', 'SO-{i}', 'pending', 'EUR', \
             '[{{\"sku\":\"A\",\"quantity\":1,\"unit_price_minor\":{i}}}]', {i}, \
             '2000-01-01 00:00:00', '{updated}')"
        ))
        .unwrap();
    }
}

/// HLC of `updated_at`: truncated milliseconds since the epoch, shifted 16 bits.
fn expected_version(updated: &str) -> i64 {
    let t = NaiveDateTime::parse_from_str(updated, "%Y-%m-%d %H:%M:%S%.f").unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    t.and_utc().timestamp_millis().clamp(0, now) << 16
}

fn assert_backfilled(conn: &mut AnyConnection, origin: &str) {
    let rows = common::raw_rows(conn);
    assert_eq!(rows.len(), ROWS.len());
    for (i, (row, (id, updated))) in rows.iter().zip(ROWS).enumerate() {
        assert_eq!(row.id, id);
        let expected = expected_version(updated);
        if updated.starts_with("2999") {
            assert!(
                row.sync_version <= expected && row.sync_version > expected - (60_000 << 16),
                "{row:?}"
            );
        } else {
            assert_eq!(row.sync_version, expected, "{row:?}");
        }
        assert_eq!((row.sync_origin.as_str(), row.deleted_at), (origin, None));
        assert_eq!(
            (row.number.clone(), row.total_minor),
            (format!("SO-{i}"), i as i64),
            "the domain columns are kept"
        );
    }
    assert_eq!(rows[0].sync_version & 0xffff, 0, "counter 0");
    assert_eq!(
        (rows[2].sync_version >> 16) % 1000,
        999,
        ".999999 is truncated, never rounded up"
    );
}

ship::backend_tests! {
    async fn sync_columns_are_backfilled_from_existing_rows(db: TestDb) {
        let fresh = TestDb::unmigrated(db.backend());
        let mut conn = fresh.pool.get().unwrap();
        migrate_up_to(&mut conn, CREATE);
        ship::db::bind_region(&mut conn, common::REGION).unwrap();
        insert_legacy_rows(&mut conn);

        let applied = migrations::run_pending(&mut conn).unwrap();
        assert!(applied.iter().any(|n| n == SYNC_COLUMNS), "{applied:?}");
        assert_backfilled(&mut conn, common::REGION);

        // Revert down to (and including) the sync columns: the legacy rows survive.
        while let Some(name) = migrations::revert_last(&mut conn).unwrap() {
            if name == SYNC_COLUMNS {
                break;
            }
        }
        let err = conn.batch_execute("SELECT sync_version FROM orders").unwrap_err();
        assert!(err.to_string().contains("sync_version"), "{err}");

        // Run again on a database that is no longer bound: the origin is ''.
        conn.batch_execute("DELETE FROM ship_instance").unwrap();
        migrations::run_pending(&mut conn).unwrap();
        assert_backfilled(&mut conn, "");
        assert!(migrations::pending(&mut conn).unwrap().is_empty());
    }

    async fn both_migrations_revert_and_apply_again(db: TestDb) {
        let mut conn = db.pool.get().unwrap();
        while let Some(name) = migrations::revert_last(&mut conn).unwrap() {
            if name == CREATE {
                break;
            }
        }
        assert!(conn.batch_execute("SELECT id FROM orders").is_err(), "the table is gone");
        let applied = migrations::run_pending(&mut conn).unwrap();
        assert!(applied.starts_with(&[CREATE.to_string(), SYNC_COLUMNS.to_string()]), "{applied:?}");
        assert!(common::raw_rows(&mut conn).is_empty());
    }
}
