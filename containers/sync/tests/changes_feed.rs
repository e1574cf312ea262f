//! Changelog capture and the changes feed, on SQLite and MariaDB, with a resource registered
//! only here (the sync container names no resource of its own).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use serde_json::{json, Value};
use ship::contracts::{
    ApplyOutcome, Change, ChangeRecorder, FieldError, HybridClock, OpKind, ResourceRegistry,
    SyncResource,
};
use ship::parents::Action;
use ship::testing::{spawn_app, TestApp, TestDb};
use ship::{AnyConnection, DbError, DbPool};
use sync::actions::{GetChangesAction, GetChangesInput};
use sync::cursor::Cursor;
use sync::ui::http::SyncState;
use sync::{SyncChangeRecorder, SyncConfig, SyncError};

/// A resource that exists only in this test.
struct Widgets;

impl SyncResource for Widgets {
    fn name(&self) -> &'static str {
        "widgets"
    }
    fn validate(&self, _id: &str, _kind: OpKind, _payload: &Value) -> Result<(), Vec<FieldError>> {
        Ok(())
    }
    fn apply(
        &self,
        _conn: &mut AnyConnection,
        _change: &Change,
        _policy: ship::contracts::ConflictPolicy,
    ) -> Result<ApplyOutcome, DbError> {
        Ok(ApplyOutcome::Duplicate)
    }
    fn snapshot_page(
        &self,
        _conn: &mut AnyConnection,
        _after: Option<&str>,
        _limit: i64,
    ) -> Result<Vec<Change>, DbError> {
        Ok(vec![])
    }
    fn entity(&self, _conn: &mut AnyConnection, _id: &str) -> Result<Option<Change>, DbError> {
        Ok(None)
    }
    fn digest(&self, _conn: &mut AnyConnection) -> Result<String, DbError> {
        Ok(String::new())
    }
    fn row_info(
        &self,
        _conn: &mut AnyConnection,
        _ids: &[&str],
        _lock: bool,
    ) -> Result<std::collections::HashMap<String, ship::contracts::RowInfo>, DbError> {
        Ok(Default::default())
    }
}

fn registry() -> ResourceRegistry {
    let mut r = ResourceRegistry::new();
    r.register(Arc::new(Widgets)).unwrap();
    r
}

fn recorder(region: &str, peers: &[&str]) -> Arc<SyncChangeRecorder> {
    Arc::new(SyncChangeRecorder::new(
        region,
        Arc::new(HybridClock::new(Duration::from_secs(5))),
        peers.iter().map(|p| p.to_string()).collect(),
        [("widgets".to_string(), 1)],
    ))
}

fn count(conn: &mut AnyConnection, sql: &str) -> i64 {
    diesel::select(diesel::dsl::sql::<BigInt>(&format!("({sql})")))
        .get_result(conn)
        .unwrap()
}

async fn create_widgets_table(pool: &DbPool) {
    pool.run(|c| -> Result<(), DbError> {
        c.batch_execute(
            "CREATE TABLE t_widgets (id VARCHAR(36) NOT NULL PRIMARY KEY, hlc BIGINT NOT NULL)",
        )?;
        // As the app does at start for every registered resource and push peer.
        sync::recorder::prepare_resources(c, ["widgets"])?;
        sync::recorder::prepare_streams(c, &["us-east".into(), "ap-south".into()], ["widgets"])
    })
    .await
    .unwrap();
}

/// A domain write as a domain action does it: row + changelog entry in one transaction.
/// `hold` keeps the transaction open after recording (to interleave concurrent writers);
/// `fail` makes the action fail after recording.
async fn write_widget(
    pool: &DbPool,
    recorder: Arc<SyncChangeRecorder>,
    id: String,
    hold: Duration,
    fail: bool,
) -> Result<(), DbError> {
    pool.transaction(move |c| {
        let version = recorder.stamp(None);
        c.batch_execute(&format!(
            "INSERT INTO t_widgets (id, hlc) VALUES ('{id}', {})",
            version.hlc.as_i64()
        ))?;
        recorder.record_local(
            c,
            &Change {
                resource: "widgets".into(),
                entity_id: id.clone(),
                kind: OpKind::Upsert,
                version,
                payload: widget_payload(&id).into(),
            },
        )?;
        std::thread::sleep(hold);
        if fail {
            return Err(DbError::Migration(
                "the domain action failed after recording".into(),
            ));
        }
        Ok(())
    })
    .await
}

/// A payload with what JSON round trips get wrong: integers past 2^53, the i64/u64 limits,
/// floats that need every digit, negative zero, unicode, nulls.
fn widget_payload(id: &str) -> Value {
    json!({
        "id": id, "name": "w", "n": 1.5, "tags": ["ü", null, "😀"],
        "big": 9_007_199_254_740_993_u64, "i64max": i64::MAX, "i64min": i64::MIN, "u64max": u64::MAX,
        "tenth": 0.1, "tiny": 1e-300, "huge": 1.7976931348623157e308, "negzero": -0.0,
    })
}

async fn feed_app(db: &TestDb) -> TestApp {
    let state = web::Data::new(SyncState::new(
        db.pool.clone(),
        registry(),
        Arc::new(HybridClock::new(Duration::from_secs(5))),
        SyncConfig {
            changes_max_limit: 100,
            changes_default_limit: 50,
            ..SyncConfig::default()
        },
        ship::testing::test_gate("here"),
    ));
    spawn_app(
        db.pool.clone(),
        Arc::new(move |cfg: &mut web::ServiceConfig| sync::ui::http::configure(cfg, state.clone())),
    )
    .await
}

/// A token for a peer of region `here` covering the resources these tests name.
fn token() -> String {
    ship::testing::test_token("there", "here", &["widgets", "nope"])
}

async fn get(app: &TestApp, query: &str) -> (u16, Value) {
    let res = app
        .client
        .get(app.url(&format!("/sync/widgets/changes{query}")))
        .bearer_auth(token())
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// The position of a feed cursor in an answer.
fn pos(cursor: &Value) -> i64 {
    sync::cursor::FeedCursor::decode(cursor.as_str().unwrap())
        .unwrap()
        .seq
}

ship::backend_tests! {
    /// A bulk write records its changes at once (`record_local_all`, B4): per run of one
    /// resource, consecutive seqs after what single writes took, the entries exactly as one by
    /// one, and nothing when the transaction fails.
    async fn many_changes_are_recorded_at_once_as_one_by_one(db: TestDb) {
        create_widgets_table(&db.pool).await;
        db.pool.run(|c| sync::recorder::prepare_resources(c, ["gadgets"])).await.unwrap();
        let rec = recorder("eu-west", &["us-east"]);
        write_widget(&db.pool, rec.clone(), "a".into(), Duration::ZERO, false).await.unwrap();
        let change = |resource: &str, id: &str| Change {
            resource: resource.into(),
            entity_id: id.into(),
            kind: OpKind::Upsert,
            version: rec.stamp(None),
            payload: widget_payload(id).into(),
        };
        let batch = vec![change("widgets", "b"), change("widgets", "c"), change("gadgets", "x"), change("widgets", "d")];
        let (r, b) = (rec.clone(), batch.clone());
        db.pool.transaction(move |c| r.record_local_all(c, &b)).await.unwrap();
        #[derive(QueryableByName, Debug, PartialEq)]
        struct Entry {
            #[diesel(sql_type = diesel::sql_types::Text)]
            resource: String,
            #[diesel(sql_type = BigInt)]
            seq: i64,
            #[diesel(sql_type = diesel::sql_types::Text)]
            entity_id: String,
            #[diesel(sql_type = BigInt)]
            hlc: i64,
            #[diesel(sql_type = diesel::sql_types::Text)]
            payload: String,
        }
        let entries: Vec<Entry> = diesel::sql_query("SELECT resource, seq, entity_id, hlc, payload FROM sync_changelog ORDER BY resource, seq")
            .load(&mut db.pool.get().unwrap())
            .unwrap();
        let got: Vec<(&str, i64, &str)> = entries.iter().map(|e| (e.resource.as_str(), e.seq, e.entity_id.as_str())).collect();
        assert_eq!(got, vec![("gadgets", 1, "x"), ("widgets", 1, "a"), ("widgets", 2, "b"), ("widgets", 3, "c"), ("widgets", 4, "d")]);
        let d = entries.iter().find(|e| e.entity_id == "d").unwrap();
        assert_eq!((d.hlc, serde_json::from_str::<Value>(&d.payload).unwrap()), (batch[3].version.hlc.as_i64(), widget_payload("d")));
        let mut c = db.pool.get().unwrap();
        assert_eq!(count(&mut c, "SELECT last_seq FROM sync_sequences WHERE resource = 'widgets'"), 4);
        drop(c);
        // A failing transaction records nothing and takes no seq.
        let (r, b) = (rec.clone(), vec![change("widgets", "e"), change("widgets", "f")]);
        let failed = db.pool.transaction(move |c| {
            r.record_local_all(c, &b)?;
            Err::<(), _>(DbError::Migration("the bulk action failed".into()))
        }).await;
        assert!(failed.is_err());
        let mut c = db.pool.get().unwrap();
        assert_eq!(count(&mut c, "SELECT COUNT(*) FROM sync_changelog"), 5);
        assert_eq!(count(&mut c, "SELECT last_seq FROM sync_sequences WHERE resource = 'widgets'"), 4);
    }
}

ship::backend_tests! {
    async fn a_local_write_commits_with_its_changelog_entry_or_not_at_all(db: TestDb) {
        create_widgets_table(&db.pool).await;
        let rec = recorder("eu-west", &["us-east", "ap-south"]);
        write_widget(&db.pool, rec.clone(), "a".into(), Duration::ZERO, false).await.unwrap();
        let failed = write_widget(&db.pool, rec.clone(), "b".into(), Duration::ZERO, true).await;
        assert!(failed.is_err());

        let mut c = db.pool.get().unwrap();
        assert_eq!(count(&mut c, "SELECT COUNT(*) FROM t_widgets"), 1);
        assert_eq!(count(&mut c, "SELECT COUNT(*) FROM sync_changelog"), 1);
        // Each push peer's stream owes exactly the committed entry (ADR 0009: no outbox rows).
        assert_eq!(
            count(&mut c, "SELECT COUNT(*) FROM sync_changelog c JOIN sync_delivery d ON c.resource = d.resource WHERE c.seq > d.delivered_through AND c.origin_region = 'eu-west'"),
            2
        );
        assert_eq!(count(&mut c, "SELECT COUNT(*) FROM sync_outbox"), 0);
        // The failed write did not consume a sequence number.
        assert_eq!(count(&mut c, "SELECT last_seq FROM sync_sequences WHERE resource = 'widgets'"), 1);
        // The row's version is the changelog entry's version.
        assert_eq!(
            count(&mut c, "SELECT hlc FROM t_widgets WHERE id = 'a'"),
            count(&mut c, "SELECT hlc FROM sync_changelog WHERE seq = 1")
        );

        // A restarted region resumes its clock past everything it wrote.
        let fresh = HybridClock::new(Duration::from_secs(5));
        sync::recorder::resume_clock(&mut c, &fresh).unwrap();
        assert!(fresh.now().as_i64() > count(&mut c, "SELECT MAX(hlc) FROM sync_changelog"));
    }

    async fn the_feed_pages_through_the_changelog_and_excludes_an_origin(db: TestDb) {
        create_widgets_table(&db.pool).await;
        let app = feed_app(&db).await;

        // Empty feed: an empty page whose cursor is the (zero) watermark.
        let (status, page) = get(&app, "").await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["changes"], json!([]));
        assert_eq!(page["has_more"], false);
        assert_eq!(pos(&page["next_cursor"]), 0);

        let ours = recorder("eu-west", &[]);
        let relayed = recorder("us-east", &[]);
        for i in 0..5 {
            let rec = if i % 2 == 0 { ours.clone() } else { relayed.clone() };
            write_widget(&db.pool, rec, format!("w{i}"), Duration::ZERO, false).await.unwrap();
        }

        // Pages of 2: seqs 1-2, 3-4, 5.
        let mut seen = Vec::new();
        let mut query = "?limit=2".to_string();
        loop {
            let (status, page) = get(&app, &query).await;
            assert_eq!(status, 200, "{page}");
            assert_eq!(page["resource"], "widgets");
            assert_eq!(page["schema_version"], 1);
            assert_eq!(pos(&page["high_watermark"]), 5);
            for change in page["changes"].as_array().unwrap() {
                seen.push(change["seq"].as_i64().unwrap());
                assert_eq!(change["kind"], "upsert");
                let id = change["entity_id"].as_str().unwrap();
                assert_eq!(change["payload"], widget_payload(id), "payload JSON survives exactly");
                assert_eq!(change["payload"]["big"].as_u64(), Some(9_007_199_254_740_993));
                assert_eq!(change["payload"]["tenth"].as_f64(), Some(0.1));
                assert!(change["hlc"].as_i64().unwrap() > 0);
            }
            if page["has_more"] == false {
                assert_eq!(pos(&page["next_cursor"]), 5);
                break;
            }
            query = format!("?limit=2&since={}", page["next_cursor"].as_str().unwrap());
        }
        assert_eq!(seen, [1, 2, 3, 4, 5]);

        // Excluding the caller's own origin: only the other region's entries, cursor at head.
        let (_, page) = get(&app, "?exclude_origin=us-east").await;
        let origins: Vec<_> = page["changes"].as_array().unwrap().iter().map(|c| c["origin"].clone()).collect();
        assert_eq!(origins, [json!("eu-west"), json!("eu-west"), json!("eu-west")]);
        assert_eq!(pos(&page["next_cursor"]), 5);

        // A full page of excluded entries still moves the cursor forward to the watermark.
        let (_, page) = get(&app, &format!("?exclude_origin=eu-west&since={}", Cursor(4).encode())).await;
        assert_eq!(page["changes"], json!([]));
        assert_eq!(pos(&page["next_cursor"]), 5);
        app.stop().await;
    }

    /// A reader that fetches its next page while it applies the current one says so with
    /// `ack`: only what it has applied is acknowledged (prune keeps the rest for it).
    async fn a_reader_fetching_ahead_acknowledges_only_what_it_applied(db: TestDb) {
        create_widgets_table(&db.pool).await;
        for i in 0..6 {
            write_widget(&db.pool, recorder("eu-west", &[]), format!("w{i}"), Duration::ZERO, false).await.unwrap();
        }
        let app = feed_app(&db).await;
        let acked = || {
            diesel::select(diesel::dsl::sql::<BigInt>(
                "(SELECT acked_seq FROM sync_feed_acks WHERE peer = 'there' AND resource = 'widgets')",
            ))
            .get_result::<i64>(&mut db.pool.get().unwrap())
            .unwrap()
        };
        let (_, first) = get(&app, "?limit=2").await;
        let (_, second) = get(&app, &format!("?limit=2&since={}", first["next_cursor"].as_str().unwrap())).await;
        assert_eq!(acked(), 2, "a read acknowledges its since");
        // Page 3 fetched while page 2 is applied: it acknowledges page 1's end, not page 2's.
        let (status, third) = get(
            &app,
            &format!(
                "?limit=2&since={}&ack={}",
                second["next_cursor"].as_str().unwrap(),
                first["next_cursor"].as_str().unwrap()
            ),
        )
        .await;
        assert_eq!(status, 200, "{third}");
        assert_eq!(pos(&third["next_cursor"]), 6);
        assert_eq!(acked(), 2, "not 4: page 2 is not applied yet");
        // An ack after since is not a thing a reader can know.
        let (status, body) = get(
            &app,
            &format!(
                "?since={}&ack={}",
                first["next_cursor"].as_str().unwrap(),
                third["next_cursor"].as_str().unwrap()
            ),
        )
        .await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_query")), "{body}");
        app.stop().await;
    }

    async fn malformed_feed_requests_get_the_envelope(db: TestDb) {
        create_widgets_table(&db.pool).await;
        write_widget(&db.pool, recorder("eu-west", &[]), "x".into(), Duration::ZERO, false).await.unwrap();
        let app = feed_app(&db).await;
        let cases: Vec<(String, u16, &str)> = vec![
            ("?since=!!!".into(), 400, "invalid_cursor"),
            ("?since=".into(), 400, "invalid_cursor"),
            // A cursor beyond the feed: not one this feed continues (ADR 0012).
            (format!("?since={}", Cursor(99).encode()), 409, "cursor_diverged"),
            ("?since=djI6Nw".into(), 400, "invalid_cursor"),
            ("?limit=0".into(), 400, "invalid_limit"),
            ("?limit=101".into(), 400, "invalid_limit"),
            // Issue 12: a number outside the range is invalid_limit, whatever its size or sign.
            ("?limit=-1".into(), 400, "invalid_limit"),
            ("?limit=1000000000000".into(), 400, "invalid_limit"),
            ("?limit=ten".into(), 400, "invalid_query"),
            ("?limit=1.5".into(), 400, "invalid_query"),
            ("?exclude_origin=Not%20A%20Region".into(), 400, "invalid_query"),
            ("?sinse=abc".into(), 400, "invalid_query"),
        ];
        for (query, status, code) in cases {
            let (got, body) = get(&app, &query).await;
            assert_eq!((got, body["error"].as_str().unwrap()), (status, code), "{query}: {body}");
        }
        let res = app.client.get(app.url("/sync/nope/changes")).bearer_auth(token()).send().await.unwrap();
        assert_eq!(res.status(), 404);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "unknown_resource");

        // A cursor older than the retained history is gone for good: 410, never a restart from 0.
        db.pool.get().unwrap().batch_execute("UPDATE sync_sequences SET pruned_through = 1").unwrap();
        let (status, body) = get(&app, &format!("?since={}", Cursor(0).encode())).await;
        assert_eq!((status, body["error"].as_str().unwrap()), (410, "cursor_expired"), "{body}");
        assert_eq!(body["details"]["pruned_through"], 1);
        let (status, _) = get(&app, &format!("?since={}", Cursor(1).encode())).await;
        assert_eq!(status, 200);
        app.stop().await;
    }

    /// R9: concurrent writers whose transactions stay open a while, and a reader pulling small
    /// pages meanwhile: every committed entry is read exactly once, in order.
    async fn concurrent_writers_and_small_page_pulls_skip_nothing(db: TestDb) {
        create_widgets_table(&db.pool).await;
        let writers = 4;
        let per_writer = 15;
        let mut handles = Vec::new();
        for w in 0..writers {
            let pool = db.pool.clone();
            let rec = recorder("eu-west", &["us-east"]);
            handles.push(tokio::spawn(async move {
                for i in 0..per_writer {
                    let hold = Duration::from_millis(((w * 7 + i * 3) % 5) as u64);
                    write_widget(&pool, rec.clone(), format!("{w}-{i}"), hold, false).await.unwrap();
                }
            }));
        }
        let action = GetChangesAction::new(db.pool.clone(), registry());
        let mut cursor = None;
        let mut seen = Vec::new();
        let mut writers_done = false;
        loop {
            let page = action
                .run(GetChangesInput { resource: "widgets".into(), since: cursor, limit: 3, exclude_origin: None, reader: None, ack: None, reader_policy: None })
                .await
                .map_err(|e: SyncError| e.to_string())
                .unwrap();
            seen.extend(page.changes.iter().map(|c| c.seq));
            cursor = Some(page.next_cursor);
            if !page.has_more {
                if writers_done {
                    break;
                }
                writers_done = handles.iter().all(|h| h.is_finished());
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        for h in handles {
            h.await.unwrap();
        }
        let total = (writers * per_writer) as i64;
        let unique: BTreeSet<_> = seen.iter().copied().collect();
        assert_eq!(seen.len(), unique.len(), "no entry read twice: {seen:?}");
        assert_eq!(unique, (1..=total).collect::<BTreeSet<_>>(), "no entry skipped");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order");
    }
}
