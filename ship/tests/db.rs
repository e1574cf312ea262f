//! The database layer against real databases: SQLite always, MariaDB when TEST_MYSQL_URL is set,
//! PostgreSQL when TEST_PG_URL is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use ship::db::{self, migrations, transact, Backend, DatabaseUrl, DbPool, PoolOptions};
use ship::testing::TestDb;
use ship::DbError;

fn scalar_text(conn: &mut ship::AnyConnection, expr: &str) -> String {
    diesel::select(diesel::dsl::sql::<Text>(expr))
        .get_result(conn)
        .unwrap()
}

ship::backend_tests! {
    async fn migrations_run_revert_run(db: TestDb) {
        let mut conn = db.pool.get().unwrap();
        let all = migrations::status(&mut conn).unwrap();
        assert!(!all.is_empty());
        assert!(all.iter().all(|m| m.applied), "{all:?}");

        let reverted = migrations::revert_all(&mut conn).unwrap();
        let mut names: Vec<_> = all.iter().map(|m| m.name.clone()).collect();
        names.reverse();
        assert_eq!(reverted, names, "reverted newest first");
        assert_eq!(migrations::pending(&mut conn).unwrap().len(), all.len());
        assert_eq!(migrations::revert_last(&mut conn).unwrap(), None);

        let applied = migrations::run_pending(&mut conn).unwrap();
        names.reverse();
        assert_eq!(applied, names, "applied oldest first");
        assert!(migrations::pending(&mut conn).unwrap().is_empty());
        assert!(migrations::run_pending(&mut conn).unwrap().is_empty(), "second run is a no-op");
    }

    async fn a_database_belongs_to_one_region(db: TestDb) {
        let mut conn = db.pool.get().unwrap();
        assert_eq!(db::bound_region(&mut conn).unwrap(), None);
        assert!(db::bind_region(&mut conn, "eu-west").unwrap(), "first bind creates the binding");
        assert!(!db::bind_region(&mut conn, "eu-west").unwrap(), "same region binds again");
        let err = db::bind_region(&mut conn, "us-east").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("eu-west") && message.contains("us-east"), "{message}");
        assert_eq!(db::bound_region(&mut conn).unwrap().as_deref(), Some("eu-west"));
    }

    async fn transactions_commit_on_ok_and_roll_back_on_err(db: TestDb) {
        let mut conn = db.pool.get().unwrap();
        conn.batch_execute("CREATE TABLE t_items (id BIGINT NOT NULL PRIMARY KEY)").unwrap();
        let count = |conn: &mut ship::AnyConnection| -> i64 {
            diesel::select(diesel::dsl::sql::<BigInt>("(SELECT COUNT(*) FROM t_items)"))
                .get_result(conn)
                .unwrap()
        };
        transact(&mut conn, |c| -> Result<(), DbError> {
            c.batch_execute("INSERT INTO t_items VALUES (1)")?;
            Ok(())
        })
        .unwrap();
        let failed = transact(&mut conn, |c| -> Result<(), DbError> {
            c.batch_execute("INSERT INTO t_items VALUES (2)")?;
            Err(DbError::Migration("the action failed".into()))
        });
        assert!(failed.is_err());
        assert_eq!(count(&mut conn), 1, "the failed transaction left nothing behind");

        // The async API runs on the blocking pool and hands the connection back.
        let n = db
            .pool
            .transaction(|c| -> Result<usize, DbError> {
                Ok(c.batch_execute("INSERT INTO t_items VALUES (3)").map(|()| 1)?)
            })
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(count(&mut conn), 2);

        // Transactions do not nest, on any backend.
        let nested = transact(&mut conn, |c| transact(c, |_| Ok::<_, DbError>(())));
        assert!(
            matches!(nested, Err(DbError::Query(diesel::result::Error::AlreadyInTransaction))),
            "{nested:?}"
        );
    }

    async fn connections_are_set_up_for_their_backend(db: TestDb) {
        let mut conn = db.pool.get().unwrap();
        match db.backend() {
            Backend::Sqlite => {
                assert_eq!(scalar_text(&mut conn, "(SELECT journal_mode FROM pragma_journal_mode())"), "wal");
                assert_eq!(scalar_text(&mut conn, "(SELECT CAST(foreign_keys AS TEXT) FROM pragma_foreign_keys())"), "1");
                assert_eq!(scalar_text(&mut conn, "(SELECT CAST(timeout AS TEXT) FROM pragma_busy_timeout())"), "5000");
            }
            Backend::Mysql => {
                assert!(scalar_text(&mut conn, "@@SESSION.sql_mode").contains("STRICT_ALL_TABLES"));
                assert_eq!(scalar_text(&mut conn, "@@SESSION.time_zone"), "+00:00");
                assert_eq!(scalar_text(&mut conn, "@@SESSION.character_set_connection"), "utf8mb4");
                assert_eq!(scalar_text(&mut conn, "@@SESSION.tx_isolation"), "READ-COMMITTED");
                assert_eq!(scalar_text(&mut conn, "CAST(@@SESSION.innodb_lock_wait_timeout AS CHAR)"), "5");
                // Strict mode: an over-long value is an error, not a silent truncation.
                conn.batch_execute("CREATE TABLE t_short (v VARCHAR(3) NOT NULL)").unwrap();
                assert!(conn.batch_execute("INSERT INTO t_short VALUES ('abcdef')").is_err());
                // Tables compare strings byte-wise without PAD SPACE, as SQLite does.
                assert_eq!(
                    scalar_text(&mut conn, "(SELECT TABLE_COLLATION FROM information_schema.TABLES \
                        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'ship_instance')"),
                    "utf8mb4_nopad_bin"
                );
            }
            Backend::Postgres => {
                assert_eq!(scalar_text(&mut conn, "current_setting('transaction_isolation')"), "read committed");
                assert_eq!(scalar_text(&mut conn, "current_setting('TimeZone')"), "UTC");
                assert_eq!(scalar_text(&mut conn, "current_setting('client_encoding')"), "UTF8");
                assert_eq!(scalar_text(&mut conn, "current_setting('lock_timeout')"), "5s");
                assert_eq!(scalar_text(&mut conn, "current_setting('statement_timeout')"), "1min");
                assert_eq!(
                    scalar_text(&mut conn, "current_setting('idle_in_transaction_session_timeout')"),
                    "1min"
                );
                // A `TIMESTAMP` column holds what was written, whatever the session's zone.
                let now = db::utc_now();
                conn.batch_execute("CREATE TABLE t_at (at TIMESTAMP NOT NULL)").unwrap();
                diesel::sql_query("INSERT INTO t_at VALUES ($1)")
                    .bind::<diesel::sql_types::Timestamp, _>(now)
                    .execute(&mut conn)
                    .unwrap();
                let back: chrono::NaiveDateTime =
                    diesel::select(diesel::dsl::sql::<diesel::sql_types::Timestamp>("(SELECT at FROM t_at)"))
                        .get_result(&mut conn)
                        .unwrap();
                assert_eq!(back, now);
                // Every character column compares byte-wise (`COLLATE "C"`, ADR 0018),
                // whatever the database's locale.
                conn.batch_execute(
                    "INSERT INTO ship_scheduler_leases (job, owner, expires_at) VALUES \
                     ('a', '', now()), ('a ', '', now()), ('B', '', now()), ('é', '', now()), \
                     ('z', '', now())",
                )
                .unwrap();
                assert_eq!(
                    scalar_text(&mut conn, "(SELECT string_agg(job, '|' ORDER BY job) FROM ship_scheduler_leases)"),
                    "B|a|a |z|é"
                );
                assert_eq!(
                    scalar_text(&mut conn, "(SELECT CAST(count(*) AS TEXT) FROM information_schema.columns \
                        WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations' \
                        AND data_type IN ('character varying', 'text') \
                        AND collation_name IS DISTINCT FROM 'C')"),
                    "0"
                );
            }
        }
        // 'a' and 'a ' are different keys on every backend.
        conn.batch_execute("CREATE TABLE t_keys (k VARCHAR(8) NOT NULL PRIMARY KEY)").unwrap();
        conn.batch_execute("INSERT INTO t_keys VALUES ('a'); INSERT INTO t_keys VALUES ('a ');")
            .unwrap();
    }
}

/// SQLite transactions start with BEGIN IMMEDIATE, so concurrent read-then-write
/// transactions queue on the write lock instead of failing with SQLITE_BUSY on upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_read_then_write_transactions_serialize() {
    let db = TestDb::sqlite();
    db.pool
        .run(|c| -> Result<(), DbError> {
            Ok(c.batch_execute(
                "CREATE TABLE t_counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);
                 INSERT INTO t_counter VALUES (1, 0);",
            )?)
        })
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let pool = db.pool.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                pool.transaction(|c| -> Result<(), DbError> {
                    let n: i64 = diesel::select(diesel::dsl::sql::<BigInt>(
                        "(SELECT n FROM t_counter WHERE id = 1)",
                    ))
                    .get_result(c)?;
                    c.batch_execute(&format!("UPDATE t_counter SET n = {} WHERE id = 1", n + 1))?;
                    Ok(())
                })
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut conn = db.pool.get().unwrap();
    let n: i64 = diesel::select(diesel::dsl::sql::<BigInt>(
        "(SELECT n FROM t_counter WHERE id = 1)",
    ))
    .get_result(&mut conn)
    .unwrap();
    assert_eq!(n, 80, "no lost update, no SQLITE_BUSY");
}

#[test]
fn a_refused_connection_is_reported_with_the_host_and_without_the_password() {
    // Port 1 on loopback: nothing listens there.
    let url = DatabaseUrl::parse("mysql://app:hunter2@127.0.0.1:1/rs").unwrap();
    let started = Instant::now();
    let err = DbPool::connect(&url, PoolOptions::default()).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let message = err.to_string();
    assert!(matches!(err, DbError::Unreachable { .. }), "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn a_server_that_never_answers_fails_within_the_connect_timeout() {
    // Accepts TCP connections but never sends the MySQL greeting.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = DatabaseUrl::parse(&format!("mysql://app:hunter2@127.0.0.1:{port}/rs")).unwrap();
    let started = Instant::now();
    let err = DbPool::connect(
        &url,
        PoolOptions {
            max_size: 2,
            connect_timeout: Duration::from_secs(1),
        },
    )
    .unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    let message = err.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn a_sqlite_file_in_a_missing_directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/region.db");
    let url = DatabaseUrl::sqlite_file(&path.to_string_lossy());
    let pool = DbPool::connect(&url, PoolOptions::default()).unwrap();
    migrations::run_pending(&mut pool.get().unwrap()).unwrap();
    assert!(path.is_file());
}

/// MariaDB only: a wrong password is reported as such (the derived MultiConnection::establish
/// would say "invalid connection url" for every backend it tried).
mod wrong_password {
    use super::*;

    #[test]
    fn mysql() {
        let server = ship::testing::mysql_server_url().expect(
            "TEST_MYSQL_URL must be set for MariaDB tests (or skip them with --skip ::mysql)",
        );
        let mut parsed = url::Url::parse(server.expose()).unwrap();
        parsed.set_username("regionsync_nobody").unwrap();
        parsed.set_password(Some("definitely-wrong")).unwrap();
        let url = DatabaseUrl::parse(parsed.as_str()).unwrap();
        let message = DbPool::connect(&url, PoolOptions::default())
            .unwrap_err()
            .to_string();
        assert!(message.contains("Access denied"), "{message}");
        assert!(!message.contains("definitely-wrong"), "{message}");
    }

    /// PostgreSQL names the role it refused (with `trust` authentication a password is not
    /// even asked: an unknown role is the refusal a test can count on).
    #[test]
    fn postgres() {
        let server = ship::testing::pg_server_url().expect(
            "TEST_PG_URL must be set for PostgreSQL tests (or skip them with --skip ::postgres)",
        );
        let mut parsed = url::Url::parse(server.expose()).unwrap();
        parsed.set_username("regionsync_nobody").unwrap();
        parsed.set_password(Some("definitely-wrong")).unwrap();
        let url = DatabaseUrl::parse(parsed.as_str()).unwrap();
        let err = DbPool::connect(&url, PoolOptions::default()).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, DbError::Unreachable { .. }), "{message}");
        assert!(message.contains("regionsync_nobody"), "{message}");
        assert!(!message.contains("definitely-wrong"), "{message}");
    }
}

/// PostgreSQL reports a lock wait that timed out (55P03) and a deadlock (40P01) as `Unknown`
/// errors: both must still count as transient (503 `database_busy`, retried by the sender).
mod pg_lock_failures_are_transient {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let db = TestDb::new(Backend::Postgres);
        let mut setup = db.pool.get().unwrap();
        setup
            .batch_execute(
                "CREATE TABLE t_rows (id BIGINT PRIMARY KEY); INSERT INTO t_rows VALUES (1), (2)",
            )
            .unwrap();
        drop(setup);
        let lock = |conn: &mut ship::AnyConnection, id: i64| -> Result<(), DbError> {
            Ok(conn.batch_execute(&format!("SELECT id FROM t_rows WHERE id = {id} FOR UPDATE"))?)
        };

        // A lock wait that times out.
        let mut holder = db.pool.get().unwrap();
        let mut waiter = db.pool.get().unwrap();
        holder.batch_execute("BEGIN").unwrap();
        lock(&mut holder, 1).unwrap();
        waiter
            .batch_execute("SET lock_timeout = '50ms'; BEGIN")
            .unwrap();
        let err = lock(&mut waiter, 1).unwrap_err();
        assert!(err.is_transient(), "{err}");
        waiter
            .batch_execute("ROLLBACK; SET lock_timeout = '5s'")
            .unwrap();
        holder.batch_execute("ROLLBACK").unwrap();

        // A deadlock: each holds one row and waits for the other's.
        let (mut a, mut b) = (holder, waiter);
        a.batch_execute("BEGIN").unwrap();
        b.batch_execute("BEGIN").unwrap();
        lock(&mut a, 1).unwrap();
        lock(&mut b, 2).unwrap();
        let other = std::thread::spawn(move || {
            let result = lock(&mut b, 1);
            let _ = b.batch_execute("ROLLBACK");
            result
        });
        std::thread::sleep(Duration::from_millis(200));
        let mine = lock(&mut a, 2);
        let _ = a.batch_execute("ROLLBACK");
        let theirs = other.join().unwrap();
        let victim = mine
            .err()
            .or(theirs.err())
            .expect("one of the two is the deadlock victim");
        assert!(victim.to_string().contains("deadlock detected"), "{victim}");
        assert!(victim.is_transient(), "{victim}");
    }
}

/// Every migration exists under the same folder name for every backend, with both scripts.
#[test]
fn every_backend_has_the_same_migrations() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let list = |backend: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(root.join(backend))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        for name in &names {
            for script in ["up.sql", "down.sql"] {
                assert!(
                    root.join(backend).join(name).join(script).is_file(),
                    "{backend}/{name}/{script}"
                );
            }
        }
        names
    };
    let sqlite = list("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, list("mysql"));
    assert_eq!(sqlite, list("postgres"));
}

/// MariaDB only: a statement written with its values inline (`ship::db::inline_sql`, the text
/// protocol of the batch writes, ADR 0019; strings and timestamps as hexadecimal literals, ADR
/// 0020) stores exactly the strings, numbers and timestamps given — quotes, backslashes, NUL,
/// SQL, every ASCII byte, 4-byte characters, strings of many kilobytes, timestamps at the edges
/// of their fields — in the session the pool opens; a `VARCHAR(n)` counts a hexadecimal
/// string's characters, not its bytes; and the statement counts the rows it affected.
mod inline_statements_store_exactly_what_they_are_given {
    use super::*;
    use ship::db::inline_sql::{InlineStatement, Literal};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql() {
        let db = TestDb::new(Backend::Mysql);
        let mut conn = db.pool.get().unwrap();
        let ship::AnyConnection::Mysql(c) = &mut *conn else {
            panic!("a MariaDB connection")
        };
        c.batch_execute(
            "CREATE TABLE inline_probe (k BIGINT NOT NULL PRIMARY KEY, s MEDIUMTEXT NOT NULL, \
             n INTEGER NOT NULL, at DATETIME(6) NULL, \
             v VARCHAR(4) COLLATE utf8mb4_nopad_bin NULL)",
        )
        .unwrap();
        let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 6)
            .unwrap()
            .and_hms_micro_opt(8, 1, 2, 345)
            .unwrap();
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let times = [
            Some(at),
            None,
            Some(day(2026, 1, 1).and_hms_micro_opt(0, 0, 0, 0).unwrap()),
            Some(
                day(2026, 12, 31)
                    .and_hms_micro_opt(23, 59, 59, 999_999)
                    .unwrap(),
            ),
            Some(day(999, 2, 3).and_hms_micro_opt(4, 5, 6, 7).unwrap()),
        ];
        let time = |k: usize| times[k % times.len()];
        let strings = [
            "plain".to_string(),
            "O'Brien".into(),
            "a\\b".into(),
            "\\'".into(),
            "'\\".into(),
            "ends with \\".into(),
            "nul\0inside".into(),
            "\\0 is not nul".into(),
            "line\nbreak\r\ttab\u{1a}".into(),
            "{\"json\":\"with \\\"escapes\\\" and é ü 中 🙂\"}".into(),
            "'; DROP TABLE inline_probe; --".into(),
            String::new(),
            (0u8..=127).map(char::from).collect(),
            "é🙂'\\".repeat(20_000),
        ];
        let mut insert = InlineStatement::new("INSERT INTO inline_probe (k, s, n, at) VALUES ");
        for (k, s) in strings.iter().enumerate() {
            insert.row(&[
                Literal::BigInt(k as i64 - 3),
                Literal::Text(s),
                Literal::Integer(-(k as i32)),
                Literal::NullableTimestamp(time(k)),
            ]);
        }
        assert_eq!(insert.execute_counting(c).unwrap(), strings.len() as i64);
        let stored: Vec<(i64, String, i32, Option<chrono::NaiveDateTime>)> =
            diesel::sql_query("SELECT k, s, n, at FROM inline_probe ORDER BY k")
                .load::<Probe>(c)
                .unwrap()
                .into_iter()
                .map(|p| (p.k, p.s, p.n, p.at))
                .collect();
        let expected: Vec<_> = strings
            .iter()
            .enumerate()
            .map(|(k, s)| (k as i64 - 3, s.clone(), -(k as i32), time(k)))
            .collect();
        assert_eq!(stored, expected);
        // An upsert counts 2 per row it changed …
        let mut upsert = InlineStatement::new("INSERT INTO inline_probe (k, s, n, at) VALUES ");
        upsert.row(&[
            Literal::BigInt(-3),
            Literal::Text("changed"),
            Literal::Integer(0),
            Literal::Timestamp(at),
        ]);
        upsert.push_sql(" ON DUPLICATE KEY UPDATE s = VALUES(s)");
        assert_eq!(upsert.execute_counting(c).unwrap(), 2);
        // … and 1 per row it found and left as it was (the pool's connections count found
        // rows, CLIENT_FOUND_ROWS): `mysql_overwrite_all`'s arithmetic rests on both.
        assert_eq!(upsert.execute_counting(c).unwrap(), 1);

        // A VARCHAR(4) holds four 2-byte characters sent as eight hexadecimal bytes, and
        // refuses five: the length is checked in characters, as for a quoted string.
        let mut with_v = |k: i64, v: &str| {
            let mut insert = InlineStatement::new("INSERT INTO inline_probe (k, s, n, v) VALUES ");
            insert.row(&[
                Literal::BigInt(k),
                Literal::Text(""),
                Literal::Integer(0),
                Literal::Text(v),
            ]);
            insert.execute(c)
        };
        with_v(100, "éééé").unwrap();
        let refused = with_v(101, "ééééé").unwrap_err().to_string();
        let v: Option<String> =
            diesel::select(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Text>,
            >("(SELECT v FROM inline_probe WHERE k = 100)"))
            .get_result(c)
            .unwrap();
        assert_eq!(v.as_deref(), Some("éééé"));
        assert!(refused.contains("too long"), "{refused}");
    }

    #[derive(diesel::QueryableByName)]
    struct Probe {
        #[diesel(sql_type = BigInt)]
        k: i64,
        #[diesel(sql_type = Text)]
        s: String,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        n: i32,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamp>)]
        at: Option<chrono::NaiveDateTime>,
    }
}

/// ADR 0021: on MariaDB a transaction's `BEGIN` and `COMMIT` are cached prepared statements —
/// one round trip each, none of the `COM_SET_OPTION` pair a text query goes between, and
/// prepared once per connection — and the transactions still commit and roll back.
mod mariadb_begin_and_commit_are_cached_prepared_statements {
    use super::*;

    /// (COM_SET_OPTION, prepares, executions) this session sent, this read's own included.
    fn sent(conn: &mut ship::AnyConnection) -> (i64, i64, i64) {
        let n = ship::testing::mysql_session_counters(
            conn,
            &["COM_SET_OPTION", "COM_STMT_PREPARE", "COM_STMT_EXECUTE"],
        );
        (n[0], n[1], n[2])
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql() {
        let db = TestDb::new(Backend::Mysql);
        let mut conn = db.pool.get().unwrap();
        conn.batch_execute("CREATE TABLE t_cached (id BIGINT NOT NULL PRIMARY KEY)")
            .unwrap();
        let insert = |c: &mut ship::AnyConnection, id: i64| -> Result<(), DbError> {
            diesel::sql_query("INSERT INTO t_cached VALUES (?)")
                .bind::<BigInt, _>(id)
                .execute(c)?;
            Ok(())
        };
        transact(&mut conn, |c| insert(c, 1)).unwrap();
        let before = sent(&mut conn);
        for id in 2..=4 {
            transact(&mut conn, |c| insert(c, id)).unwrap();
        }
        let failed = transact(&mut conn, |c| {
            insert(c, 5)?;
            Err::<(), _>(DbError::Migration("the action failed".into()))
        });
        assert!(failed.is_err());
        let after = sent(&mut conn);
        let (set_option, prepares, executions) =
            (after.0 - before.0, after.1 - before.1, after.2 - before.2);
        // The rollback is a text query, as diesel sends it: one COM_SET_OPTION pair.
        assert_eq!(set_option, 2, "no COM_SET_OPTION around BEGIN or COMMIT");
        // 4 inserts (a `sql_query` is never cached) and the second read of the counters.
        assert_eq!(prepares, 5, "BEGIN and COMMIT were prepared once, before");
        // 4 BEGIN, 3 COMMIT, 4 inserts, the second read.
        assert_eq!(executions, 12);
        let mut other = db.pool.get().unwrap();
        assert_eq!(
            scalar_text(
                &mut other,
                "(SELECT GROUP_CONCAT(id ORDER BY id) FROM t_cached)"
            ),
            "1,2,3,4",
            "committed, and the failed one rolled back"
        );
    }
}
