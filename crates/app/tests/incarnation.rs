//! Issue 13.6 (ADR 0012): rebuilt and restored regions. A feed cursor is anchored (the issuing
//! database's incarnation and the clock of the entry it points at): a feed that no longer
//! continues it answers `409 cursor_diverged`, and a database that finds a peer has read
//! further in its feed than it reaches is an older copy of itself — it gets a new incarnation,
//! its own pull cursors are void, and it bootstraps again from its peers, getting back its own
//! writes that the copy lacks. On each backend, between two real regions over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use app::startup::{prepare, StartOptions};
use common::{count, customers_digest, register_region, settings_for, Region};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde_json::{json, Value};
use ship::parents::{Action, Job};
use ship::testing::TestDb;
use sync::cursor::FeedCursor;

async fn create(region: &Region, name: &str) -> String {
    let (status, body) = region
        .post(
            "/api/v1/customers",
            &json!({"tenant_id": "t1", "name": name, "email": format!("{}@example.com", name.replace(' ', "."))}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

async fn rename(region: &Region, id: &str, name: &str) {
    let res = region
        .client
        .patch(region.url(&format!("/api/v1/customers/{id}")))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

async fn delete(region: &Region, id: &str) {
    let res = region
        .client
        .delete(region.url(&format!("/api/v1/customers/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

/// `GET /sync/customers/changes` at `region` as us-east: (status, body, incarnation header).
async fn feed(region: &Region, since: Option<&str>) -> (u16, Value, Option<String>) {
    let mut url = region.url("/sync/customers/changes?exclude_origin=us-east");
    if let Some(since) = since {
        url.push_str(&format!("&since={since}"));
    }
    let res = region
        .client
        .get(url)
        .bearer_auth(region.token_from("us-east"))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let header = res
        .headers()
        .get("regionsync-incarnation")
        .map(|v| v.to_str().unwrap().to_string());
    (status, res.json().await.unwrap(), header)
}

/// (incarnation, previous incarnation) of the database.
fn incarnation(db: &TestDb) -> (String, String) {
    let mut conn = db.pool.get().unwrap();
    let i = ship::db::incarnation(&mut conn).unwrap();
    (i.id, i.previous)
}

/// Every table of the region's data and sync state (not the migrations' bookkeeping).
fn tables(db: &TestDb) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let sql = match db.backend() {
        ship::db::Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name <> '__diesel_schema_migrations'"
        }
        ship::db::Backend::Mysql => {
            "SELECT CAST(table_name AS CHAR) AS name FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name <> '__diesel_schema_migrations'"
        }
        ship::db::Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name <> '__diesel_schema_migrations'"
        }
    };
    diesel::sql_query(sql)
        .load::<Name>(&mut db.pool.get().unwrap())
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect()
}

/// A copy of every table of `db` in `copy` ("last night's backup").
fn back_up(db: &TestDb, copy: &TestDb) {
    let mut from = db.pool.get().unwrap();
    let mut to = copy.pool.get().unwrap();
    for table in tables(db) {
        // Each row as a JSON object (the SQL differs only in its spelling per backend).
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            j: String,
        }
        let (quote, object, text) = match db.backend() {
            ship::db::Backend::Sqlite => ('"', "json_object", "CHAR"),
            ship::db::Backend::Mysql => ('`', "JSON_OBJECT", "CHAR"),
            ship::db::Backend::Postgres => ('"', "json_build_object", "TEXT"),
        };
        let pairs = columns(&mut from, &table)
            .iter()
            .map(|c| format!("'{c}', {quote}{c}{quote}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows: Vec<Value> = diesel::sql_query(format!(
            "SELECT CAST({object}({pairs}) AS {text}) AS j FROM {quote}{table}{quote}"
        ))
        .load::<Row>(&mut from)
        .unwrap()
        .into_iter()
        .map(|r| serde_json::from_str(&r.j).unwrap())
        .collect();
        to.batch_execute(&format!("DELETE FROM {table}")).unwrap();
        for row in rows {
            let obj = row.as_object().unwrap();
            let names: Vec<&String> = obj.keys().collect();
            let values: Vec<String> = obj
                .values()
                .map(|v| match v {
                    Value::Null => "NULL".to_string(),
                    Value::String(s) => format!("'{}'", s.replace('\'', "''")),
                    other => other.to_string(),
                })
                .collect();
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            to.batch_execute(&format!(
                "INSERT INTO {table} ({}) VALUES ({})",
                names.join(", "),
                values.join(", ")
            ))
            .unwrap();
        }
        // PostgreSQL: rows written with their ids do not advance the identity (ADR 0018), so
        // the restore moves it past them, as `pg_dump` does.
        if db.backend() == ship::db::Backend::Postgres {
            for column in identity_columns(&mut to, &table) {
                to.batch_execute(&format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
                     COALESCE(MAX({column}), 0) + 1, false) FROM {table}"
                ))
                .unwrap();
            }
        }
    }
}

/// The identity columns of `table` (PostgreSQL).
fn identity_columns(conn: &mut ship::AnyConnection, table: &str) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    diesel::sql_query(format!(
        "SELECT CAST(column_name AS TEXT) AS name FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = '{table}' AND is_identity = 'YES'"
    ))
    .load::<Name>(conn)
    .unwrap()
    .into_iter()
    .map(|n| n.name)
    .collect()
}

fn columns(conn: &mut ship::AnyConnection, table: &str) -> Vec<String> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let sql = match conn {
        ship::AnyConnection::Sqlite(_) => format!("SELECT name FROM pragma_table_info('{table}')"),
        ship::AnyConnection::Mysql(_) => format!(
            "SELECT CAST(column_name AS CHAR) AS name FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = '{table}'"
        ),
        ship::AnyConnection::Pg(_) => format!(
            "SELECT CAST(column_name AS TEXT) AS name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}'"
        ),
    };
    diesel::sql_query(sql)
        .load::<Name>(conn)
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect()
}

async fn evaluate_alerts(db: &TestDb, me: &str) {
    let settings = settings_for(db, me);
    let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
    wiring
        .alerts_action(&pool, &settings)
        .unwrap()
        .run(sync::actions::AlertsInput::default())
        .await
        .unwrap();
}

fn firing(db: &TestDb, kind: &str, subject: &str) -> i64 {
    count(
        &mut db.pool.get().unwrap(),
        &format!(
            "SELECT COUNT(*) FROM sync_alerts WHERE kind = '{kind}' AND subject = '{subject}' \
             AND resolved_at IS NULL"
        ),
    )
}

/// What a restored copy does to the feed: the entries after seq `keep` are gone and the
/// sequence is back at `keep` (so new writes reuse those positions).
fn roll_feed_back_to(db: &TestDb, keep: i64) {
    db.pool
        .get()
        .unwrap()
        .batch_execute(&format!(
            "DELETE FROM sync_changelog WHERE resource = 'customers' AND seq > {keep}; \
             UPDATE sync_sequences SET last_seq = {keep} WHERE resource = 'customers'"
        ))
        .unwrap();
}

ship::backend_tests! {
    /// The anchored cursor: continued while the feed is the one it was read from; `409
    /// cursor_diverged` otherwise, and a new incarnation only when the cursor proves this
    /// database older than its own feed (never for a cursor of another incarnation).
    async fn the_feed_answers_409_to_a_cursor_it_no_longer_continues(db: TestDb) {
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        for i in 0..3 {
            create(&a, &format!("c{i}")).await;
        }
        let (first, _) = incarnation(&db);
        assert_eq!(first.len(), 16, "an incarnation is made when the database is bound");
        let (status, page, header) = feed(&a, None).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["incarnation"], first.as_str());
        assert_eq!(header.as_deref(), Some(first.as_str()), "answered in the header too");
        let cursor = page["next_cursor"].as_str().unwrap().to_string();
        let decoded = FeedCursor::decode(&cursor).unwrap();
        assert_eq!(decoded.seq, 3);
        assert_eq!(decoded.anchor.as_ref().unwrap().incarnation, first);
        assert_ne!(decoded.anchor.as_ref().unwrap().hlc, 0, "anchored by the entry's clock");
        assert_eq!(feed(&a, Some(&cursor)).await.0, 200, "the feed continues it");
        // A v1 cursor (from before incarnations) within the feed is read as before.
        assert_eq!(feed(&a, Some(&sync::cursor::Cursor(2).encode())).await.0, 200);

        // Cursors this database cannot continue, but that prove nothing against it.
        let foreign = FeedCursor::anchored(2, decoded.anchor.as_ref().unwrap().hlc, "00aa").encode();
        let v1_beyond = sync::cursor::Cursor(9).encode();
        for other in [foreign, v1_beyond] {
            let (status, body, _) = feed(&a, Some(&other)).await;
            assert_eq!((status, body["error"].as_str()), (409, Some("cursor_diverged")), "{body}");
            assert!(body["details"]["bootstrap"].is_string(), "{body}");
        }
        assert_eq!(incarnation(&db), (first.clone(), String::new()), "no new incarnation");

        // The database goes back to an older copy of itself (entries 2–3 gone) and writes on,
        // reusing position 3: the cursor read at the old entry 3 proves it older.
        roll_feed_back_to(&db, 1);
        create(&a, "after the restore").await;
        create(&a, "after the restore 2").await;
        let (status, body, _) = feed(&a, Some(&cursor)).await;
        assert_eq!((status, body["error"].as_str()), (409, Some("cursor_diverged")), "{body}");
        let (second, previous) = incarnation(&db);
        assert_ne!(second, first, "a new incarnation");
        assert_eq!(previous, first);

        // Every cursor of the old incarnation diverges now, without another new incarnation.
        assert_eq!(feed(&a, Some(&cursor)).await.0, 409);
        assert_eq!(incarnation(&db).0, second);
        // The feed serves cursors of the new incarnation.
        let (status, page, _) = feed(&a, None).await;
        assert_eq!((status, page["incarnation"].as_str()), (200, Some(second.as_str())));

        // A cursor of this incarnation beyond the feed's end proves it older too.
        let head = page["next_cursor"].as_str().unwrap().to_string();
        roll_feed_back_to(&db, 2);
        assert_eq!(feed(&a, Some(&head)).await.0, 409);
        let (third, previous) = incarnation(&db);
        assert_ne!(third, second);
        assert_eq!(previous, second);
        a.stop().await;
    }

    /// eu-west is restored from an older copy of itself while us-east goes on: us-east's
    /// cursor into it diverges and it bootstraps from eu-west's snapshot; eu-west gets a new
    /// incarnation, its own cursors are void, and it bootstraps from us-east — getting back its
    /// own writes the copy lacks and the deletion it had applied. Both end identical; the
    /// `restored` and `peer_reincarnated` alerts say what happened.
    async fn a_restored_region_and_its_peer_bootstrap_from_each_other_and_lose_nothing(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let backup = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        let b = Region::start(&settings_for(&db_b, "us-east")).await;
        register_region(&db, "us-east", &b.base).await;
        register_region(&db_b, "eu-west", &a.base).await;
        let pull_a = common::auto_pull_job(&db, "eu-west", "us-east", 4).await;
        let pull_b = common::auto_pull_job(&db_b, "us-east", "eu-west", 4).await;

        let a1 = create(&a, "a1").await;
        create(&a, "a2").await;
        let b1 = create(&b, "b1").await;
        pull_b.handle().await.unwrap();
        pull_a.handle().await.unwrap();
        assert_eq!(customers_digest(&db), customers_digest(&db_b), "in sync before");
        let (before, _) = incarnation(&db);

        back_up(&db, &backup);
        // After the copy: eu-west writes (a new row, a rename) and deletes us-east's row;
        // us-east pulls all of it.
        let a3 = create(&a, "a3 after the copy").await;
        rename(&a, &a1, "a1 renamed after the copy").await;
        delete(&a, &b1).await;
        pull_a.handle().await.unwrap();
        pull_b.handle().await.unwrap();
        assert_eq!(customers_digest(&db), customers_digest(&db_b));
        let expected = customers_digest(&db);

        // us-east's push stream to eu-west has delivered everything of us-east's origin.
        let own_b = "SELECT COUNT(*) FROM sync_changelog WHERE origin_region = 'us-east'";
        let head_b = count(&mut db_b.pool.get().unwrap(), "SELECT MAX(seq) FROM sync_changelog");
        common::mark_delivered_through(&db_b, "eu-west", head_b, "CURRENT_TIMESTAMP");
        assert_eq!(common::owed(&db_b, "us-east", "eu-west"), 0);

        // eu-west is restored from the copy and writes on (reusing positions of its feed).
        back_up(&backup, &db);
        assert_ne!(customers_digest(&db), expected, "the copy lacks what came after it");
        let a4 = create(&a, "a4 after the restore").await;
        create(&a, "a5 after the restore").await;

        // us-east's cursor into eu-west's feed diverges: it bootstraps from eu-west.
        pull_b.handle().await.unwrap();
        let (after, previous) = incarnation(&db);
        assert_ne!(after, before, "eu-west found itself an older copy: a new incarnation");
        assert_eq!(previous, before);
        // us-east saw the new incarnation: its stream to eu-west restarts from what eu-west
        // acknowledges — nothing it had delivered (the oldest entry it still holds on).
        assert_eq!(common::delivered_through(&db_b, "eu-west"), 0);
        assert_eq!(
            common::owed(&db_b, "us-east", "eu-west"),
            count(&mut db_b.pool.get().unwrap(), own_b),
            "every write of us-east's own is owed to eu-west again"
        );
        // eu-west's cursor into us-east is void: it bootstraps from us-east, getting back its
        // own writes and the deletion.
        pull_a.handle().await.unwrap();
        pull_b.handle().await.unwrap();
        assert_eq!(customers_digest(&db), customers_digest(&db_b), "identical again");
        for (region, id) in [(&a, &a3), (&b, &a4)] {
            let (status, _) = region.get(&format!("/api/v1/customers/{id}")).await;
            assert_eq!(status, 200, "{id} at {}", region.id);
        }
        let (_, row) = a.get(&format!("/api/v1/customers/{a1}")).await;
        assert_eq!(row["name"], "a1 renamed after the copy", "eu-west's own rename is back");
        let (status, _) = a.get(&format!("/api/v1/customers/{b1}")).await;
        assert_eq!(status, 404, "the deletion is back: no deleted row lives again");

        // The operator is told, at both regions.
        evaluate_alerts(&db, "eu-west").await;
        evaluate_alerts(&db_b, "us-east").await;
        assert_eq!(firing(&db, "restored", ""), 1);
        assert_eq!(firing(&db_b, "peer_reincarnated", "eu-west"), 1);
        let status = sync::actions::SyncStatusAction::new(db_b.pool.clone(), "us-east").run(()).await.unwrap();
        assert_eq!(
            status.iter().find(|s| s.peer == "eu-west").and_then(|s| s.peer_incarnation.clone()),
            Some(after.clone())
        );

        // And afterwards as usual, both ways.
        let later = create(&a, "later").await;
        rename(&b, &a4, "a4 renamed at us-east").await;
        pull_b.handle().await.unwrap();
        pull_a.handle().await.unwrap();
        assert_eq!(customers_digest(&db), customers_digest(&db_b));
        assert_eq!(b.get(&format!("/api/v1/customers/{later}")).await.0, 200);
        assert_eq!(incarnation(&db).0, after, "no further incarnation");
        a.stop().await;
        b.stop().await;
    }

    /// A region whose database is replaced by an empty one (same region id): a new
    /// incarnation at its first start; it has no cursors, so it bootstraps from its peer — its
    /// own earlier writes included — and the peer's cursor into its old feed diverges.
    async fn a_region_rebuilt_empty_gets_everything_back(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        let b = Region::start(&settings_for(&db_b, "us-east")).await;
        register_region(&db, "us-east", &b.base).await;
        register_region(&db_b, "eu-west", &a.base).await;
        let pull_b = common::auto_pull_job(&db_b, "us-east", "eu-west", 4).await;
        for i in 0..6 {
            create(&a, &format!("a{i}")).await;
        }
        let gone = create(&a, "deleted").await;
        delete(&a, &gone).await;
        pull_b.handle().await.unwrap();
        let expected = customers_digest(&db_b);
        let (old, _) = incarnation(&db);
        a.stop().await;

        // eu-west again, on an empty database.
        let rebuilt = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&rebuilt, "eu-west")).await;
        register_region(&rebuilt, "us-east", &b.base).await;
        ship::db::bound_region(&mut rebuilt.pool.get().unwrap()).unwrap();
        assert_ne!(incarnation(&rebuilt).0, old);
        // us-east learns the new address (the broker's registry in a real deployment).
        db_b.pool.get().unwrap().batch_execute(&format!(
            "UPDATE broker_regions SET base_url = '{}' WHERE id = 'eu-west'", a.base
        )).unwrap();
        let pull_a = common::auto_pull_job(&rebuilt, "eu-west", "us-east", 4).await;
        pull_a.handle().await.unwrap();
        assert_eq!(customers_digest(&rebuilt), expected, "its own rows and tombstone are back");
        let fresh = create(&a, "written after the rebuild").await;
        let pull_b = common::auto_pull_job(&db_b, "us-east", "eu-west", 4).await;
        pull_b.handle().await.unwrap();
        assert_eq!(b.get(&format!("/api/v1/customers/{fresh}")).await.0, 200, "its new feed is read");
        assert_eq!(customers_digest(&rebuilt), customers_digest(&db_b));
        a.stop().await;
        b.stop().await;
    }

    /// A region with no cursor into a peer bootstraps first (`sync.bootstrap = "auto"`), so rows
    /// that exist at the peer but never were in its feed (written before its sync columns) come
    /// over even though the feed still starts at 1.
    async fn a_joining_region_gets_rows_that_never_were_in_the_feed(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        create(&a, "in the feed").await;
        // A row as the sync-columns migration leaves a row that existed before it.
        db.pool.get().unwrap().batch_execute(
            "INSERT INTO customers (id, tenant_id, name, email, status, created_at, updated_at, sync_version, sync_origin) \
             VALUES ('01a00000-0000-7000-8000-000000000001', 't1', 'Before sync', 'old@example.com', 'active', \
             '2026-01-01 00:00:00', '2026-01-01 00:00:00', 117000000000000000, 'eu-west')",
        ).unwrap();
        register_region(&db_b, "eu-west", &a.base).await;
        let pull_b = common::auto_pull_job(&db_b, "us-east", "eu-west", 4).await;
        pull_b.handle().await.unwrap();
        assert_eq!(customers_digest(&db), customers_digest(&db_b));
        assert_eq!(count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM customers"), 2);
        a.stop().await;
    }
}
