//! QUALITY-BARS R4 — HTTP delivery faults on `POST /sync/{resource}/ops`, against a real region
//! server on loopback, on each backend. The network may duplicate, reorder, tear or lose the
//! requests and answers of a push; the receiver must end exactly where one clean, in-order
//! delivery of every batch would have left it.
//!
//! - `same_batch_concurrently_from_two_connections_applies_once`: 20 rounds, each posting one
//!   fresh batch (a new row, an update and a delete of existing rows, and an older write of
//!   another region) on two TCP connections at the same moment. Both answers are 200; per op,
//!   exactly one answer says `applied` and the other `duplicate` (both `stale` for the loser);
//!   the changelog grows by the winners once, one conflict is recorded once, and rows,
//!   versions, digest, changelog and conflict counts equal a reference region that got each
//!   batch once.
//! - `batch_k_plus_1_before_batch_k_converges`: two batches on the same entities (k older, k+1
//!   newer, with deletes in both) delivered k+1 then k end with the same rows, tombstones and
//!   versions (digest) as k then k+1 on a second database; k's overtaken ops are `stale` and
//!   add no changelog entry; the conflict log is per arrival (one record, for the other
//!   region's overtaken write, only where it arrived second); re-delivering both changes no
//!   row, version or changelog entry (the in-order region then records that overtaken write's
//!   conflict, once: it now arrives after its winner).
//! - `request_cut_mid_body_applies_nothing`: a request whose body stops short of its
//!   `Content-Length` (cut inside an op; complete JSON but shorter than announced, with the
//!   connection kept open and then closed; a chunked body without its last chunk) is never
//!   applied — changelog, conflicts, rows and digest unchanged, the half-closed ones answered
//!   400 (or not at all) — and the same batch sent whole afterwards is applied normally (as is
//!   a whole request written the same raw way, so the refusals are not a bad request head).
//! - `response_dropped_after_apply_retry_is_a_no_op`: a complete request whose connection is
//!   closed without reading the answer is applied (once); the identical batch resent is 200,
//!   every op `duplicate`/`stale`, and digest, changelog, conflicts and versions are unchanged;
//!   so are two more resends at once on two fresh connections.
//! - `duplicate_ops_in_a_batch_and_across_batches_are_absorbed`: the same op twice in one
//!   batch, an older write of the same entity after it in the batch, and an op re-sent inside a
//!   later batch: each counted once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{count, customer, customers_digest, hlc, settings_for, Region};
use serde_json::{json, Value};
use ship::testing::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const OPS: &str = "/sync/customers/ops";
const SOURCE: &str = "us-east";

/// The `n`th test entity id (ids sort like `n`).
fn id(n: u64) -> String {
    format!("01939d2e-0000-7000-8000-{n:012x}")
}

fn op(op_id: &str, id: &str, kind: &str, hlc: i64, origin: &str, name: &str) -> Value {
    json!({
        "op_id": op_id,
        "entity_id": id,
        "kind": kind,
        "hlc": hlc,
        "origin": origin,
        "payload": customer(id, name, kind == "delete"),
    })
}

fn batch(batch_id: &str, ops: Vec<Value>) -> Value {
    batch_from(SOURCE, batch_id, ops)
}

/// A batch pushed by `source` (a push carries only its sender's own changes).
fn batch_from(source: &str, batch_id: &str, ops: Vec<Value>) -> Value {
    json!({"source_region": source, "batch_id": batch_id, "schema_version": 1, "ops": ops})
}

/// What a delivery may change: (digest, changelog entries, conflicts, customer rows).
fn state(db: &TestDb) -> (String, i64, i64, i64) {
    let mut c = db.pool.get().unwrap();
    (
        customers_digest(db),
        common::entry_count(&mut c, "1 = 1"),
        count(&mut c, "SELECT COUNT(*) FROM sync_conflicts"),
        count(&mut c, "SELECT COUNT(*) FROM customers"),
    )
}

/// The stored version of customer `id`: (sync_version, is its origin `origin`?, is it a tombstone?).
fn version(db: &TestDb, id: &str, origin: &str) -> (i64, bool, bool) {
    let mut c = db.pool.get().unwrap();
    (
        count(
            &mut c,
            &format!("SELECT sync_version FROM customers WHERE id = '{id}'"),
        ),
        count(
            &mut c,
            &format!(
                "SELECT COUNT(*) FROM customers WHERE id = '{id}' AND sync_origin = '{origin}'"
            ),
        ) == 1,
        count(
            &mut c,
            &format!("SELECT COUNT(*) FROM customers WHERE id = '{id}' AND deleted_at IS NOT NULL"),
        ) == 1,
    )
}

/// The statuses of an ops answer, in batch order.
fn statuses(answer: &Value) -> Vec<String> {
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results: {answer}"))
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect()
}

/// POST `body` to the region's ops route with `client` (its own connection) and a fresh token
/// for the batch's `source_region`.
async fn post_on(client: &reqwest::Client, region: &Region, body: &Value) -> (u16, Value) {
    let res = tokio::time::timeout(
        Duration::from_secs(20),
        client
            .post(region.url(OPS))
            .bearer_auth(region.token_from(body["source_region"].as_str().unwrap_or(SOURCE)))
            .json(body)
            .send(),
    )
    .await
    .expect("the ops request answers in time")
    .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A client that keeps no idle connection: every request opens its own TCP connection.
fn fresh_connection_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// The head of an ops request announcing `content_length` body bytes (or a chunked body).
fn request_head(region: &Region, content_length: Option<usize>) -> String {
    let host = region.base.trim_start_matches("http://");
    let length = match content_length {
        Some(n) => format!("Content-Length: {n}"),
        None => "Transfer-Encoding: chunked".to_string(),
    };
    format!(
        "POST {OPS} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\n{length}\r\n\r\n",
        region.token_from(SOURCE)
    )
}

/// A raw connection to the region.
async fn connect(region: &Region) -> TcpStream {
    let addr = region.base.trim_start_matches("http://").to_string();
    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .unwrap()
}

/// Half-close `stream` and read what the server answers until it closes (bounded): the status
/// of the answer, or `None` when it closed (or reset) without one.
async fn finish_and_read_status(mut stream: TcpStream) -> Option<u16> {
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the cut connection in time");
    if read.is_err() && answer.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .map(|code| code.parse().unwrap())
}

/// Wait (bounded) until `done` holds.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

ship::backend_tests! {
    async fn same_batch_concurrently_from_two_connections_applies_once(db: TestDb) {
        let db_ref = TestDb::new(db.backend());
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let reference = Region::start(&settings_for(&db_ref, "eu-west")).await;
        let (one, two) = (fresh_connection_client(), fresh_connection_client());

        // U: one existing row every round updates (and an older write of ap-south loses to).
        let u = id(0xfff);
        let base = hlc(-10_000);
        let seed = batch("seed", vec![op("seed", &u, "upsert", base, SOURCE, "u0")]);
        for r in [&region, &reference] {
            let (status, answer) = r.post(OPS, &seed).await;
            assert_eq!((status, statuses(&answer)), (200, vec!["applied".to_string()]));
        }

        const ROUNDS: u64 = 20;
        for round in 0..ROUNDS {
            let at = base + 10 * (round as i64 + 1);
            let mut ops = vec![
                op(&format!("n{round}"), &id(round), "upsert", at, SOURCE, &format!("n{round}")),
                op(&format!("u{round}"), &u, "upsert", at, SOURCE, &format!("u{round}")),
            ];
            if round > 0 {
                ops.push(op(&format!("d{round}"), &id(round - 1), "delete", at, SOURCE, "gone"));
            }
            let body = batch(&format!("b{round}"), ops);
            // ap-south's own push, older than every version of U: stale, one conflict.
            let late = batch_from("ap-south", &format!("late{round}"), vec![
                op(&format!("late{round}"), &u, "upsert", base - 1 - round as i64, "ap-south", "late"),
            ]);
            let before = state(&db);

            let ((s1, a1), (s2, a2)) = tokio::join!(post_on(&one, &region, &body), post_on(&two, &region, &body));
            assert_eq!((s1, s2), (200, 200), "round {round}: {a1} / {a2}");
            let (r1, r2) = (statuses(&a1), statuses(&a2));
            for (i, pair) in r1.iter().zip(&r2).enumerate() {
                let mut pair = [pair.0.as_str(), pair.1.as_str()];
                pair.sort_unstable();
                assert_eq!(pair, ["applied", "duplicate"], "round {round}, op {i}: {a1} / {a2}");
            }
            let ((s1, a1), (s2, a2)) = tokio::join!(post_on(&one, &region, &late), post_on(&two, &region, &late));
            assert_eq!((s1, s2), (200, 200), "round {round}: {a1} / {a2}");
            assert_eq!((statuses(&a1), statuses(&a2)), (vec!["stale".to_string()], vec!["stale".to_string()]), "round {round}");

            let winners = if round > 0 { 3 } else { 2 };
            let after = state(&db);
            assert_eq!(after.1, before.1 + winners, "round {round}: each winner in the changelog once");
            assert_eq!(after.2, before.2 + 1, "round {round}: the overtaken write recorded once");
            assert_eq!(after.3, before.3 + 1, "round {round}: one new row, inserted once");

            for body in [&body, &late] {
                let (status, answer) = reference.post(OPS, body).await;
                assert_eq!(status, 200, "{answer}");
            }
            assert_eq!(state(&db), state(&db_ref), "round {round}: as if delivered once");
        }

        assert_eq!(version(&db, &u, SOURCE), (base + 10 * ROUNDS as i64, true, false));
        assert_eq!(version(&db, &id(0), SOURCE), (base + 20, true, true), "deleted in round 1");
        assert_eq!(version(&db, &id(ROUNDS - 1), SOURCE), (base + 10 * ROUNDS as i64, true, false));
        let (digest, changelog, conflicts, rows) = state(&db);
        assert_eq!((changelog, conflicts, rows), (1 + 2 + 3 * (ROUNDS as i64 - 1), ROUNDS as i64, 1 + ROUNDS as i64));
        assert_eq!(digest, customers_digest(&db_ref));
        region.stop().await;
        reference.stop().await;
    }

    async fn batch_k_plus_1_before_batch_k_converges(db: TestDb) {
        let db_in_order = TestDb::new(db.backend());
        let swapped = Region::start(&settings_for(&db, "eu-west")).await;
        let in_order = Region::start(&settings_for(&db_in_order, "eu-west")).await;
        let (a, b, c, d, e) = (id(1), id(2), id(3), id(4), id(5));
        let (h1, h2) = (hlc(-3_000), hlc(-1_000));

        let k = batch("k", vec![
            op("k-a", &a, "upsert", h1, SOURCE, "a1"),
            op("k-b", &b, "upsert", h1, SOURCE, "b1"),
            op("k-e", &e, "delete", h1, SOURCE, "e1"),
            op("k-d", &d, "upsert", h1, SOURCE, "d1 (only in k)"),
        ]);
        // ap-south's write of C, pushed by ap-south alongside k.
        let kc = batch_from("ap-south", "k-c", vec![op("k-c", &c, "upsert", h1, "ap-south", "c1 (ap-south)")]);
        let k1 = batch("k+1", vec![
            op("k1-a", &a, "upsert", h2, SOURCE, "a2"),
            op("k1-b", &b, "delete", h2, SOURCE, "b2"),
            op("k1-c", &c, "upsert", h2, SOURCE, "c2"),
            op("k1-e", &e, "upsert", h2, SOURCE, "e2 (back)"),
        ]);
        let applied = |n: usize| vec!["applied".to_string(); n];

        // In order: everything applies, nothing conflicts.
        let (status, answer) = in_order.post(OPS, &k).await;
        assert_eq!((status, statuses(&answer)), (200, applied(4)), "{answer}");
        let (status, answer) = in_order.post(OPS, &kc).await;
        assert_eq!((status, statuses(&answer)), (200, applied(1)), "{answer}");
        let (status, answer) = in_order.post(OPS, &k1).await;
        assert_eq!((status, statuses(&answer)), (200, applied(4)), "{answer}");

        // k+1 first: k's ops on the same entities are overtaken, only D applies.
        let (status, answer) = swapped.post(OPS, &k1).await;
        assert_eq!((status, statuses(&answer)), (200, applied(4)), "{answer}");
        let (status, answer) = swapped.post(OPS, &k).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(statuses(&answer), ["stale", "stale", "stale", "applied"], "{answer}");
        let (status, answer) = swapped.post(OPS, &kc).await;
        assert_eq!((status, statuses(&answer)), (200, vec!["stale".to_string()]), "{answer}");

        let (in_digest, in_changelog, in_conflicts, in_rows) = state(&db_in_order);
        let (digest, changelog, conflicts, rows) = state(&db);
        assert_eq!(digest, in_digest, "same rows, tombstones and versions in either order");
        assert_eq!((in_changelog, in_conflicts, in_rows), (9, 0, 5));
        assert_eq!((changelog, conflicts, rows), (5, 1, 5), "overtaken ops add no changelog entry; ap-south's write arrived second: one conflict");
        let mut conn = db.pool.get().unwrap();
        assert_eq!(count(&mut conn, &format!("SELECT COUNT(*) FROM sync_conflicts WHERE entity_id = '{c}' AND loser_origin = 'ap-south' AND winner_origin = 'us-east'")), 1);
        drop(conn);
        for target in [&db, &db_in_order] {
            assert_eq!(version(target, &a, SOURCE), (h2, true, false));
            assert_eq!(version(target, &b, SOURCE), (h2, true, true), "B deleted by k+1");
            assert_eq!(version(target, &c, SOURCE), (h2, true, false));
            assert_eq!(version(target, &d, SOURCE), (h1, true, false));
            assert_eq!(version(target, &e, SOURCE), (h2, true, false), "E's newer upsert beats k's tombstone");
        }
        let (status, _) = swapped.get(&format!("/api/v1/customers/{b}")).await;
        assert_eq!(status, 404);
        let (status, fetched) = swapped.get(&format!("/api/v1/customers/{e}")).await;
        assert_eq!((status, fetched["name"].as_str()), (200, Some("e2 (back)")));

        // Both again, in either order: no row, version or changelog entry changes. The one
        // conflict-log difference: the in-order region now sees ap-south's C write arrive after
        // its winner for the first time and records it (per arrival, PROTOCOL.md), once.
        let (before, before_in_order) = (state(&db), state(&db_in_order));
        for round in 0..2 {
            for body in [&k, &kc, &k1] {
                let (status, answer) = swapped.post(OPS, body).await;
                assert_eq!(status, 200);
                assert!(statuses(&answer).iter().all(|s| s != "applied"), "{answer}");
            }
            for body in [&k1, &kc, &k] {
                let (status, answer) = in_order.post(OPS, body).await;
                assert_eq!(status, 200);
                assert!(statuses(&answer).iter().all(|s| s != "applied"), "{answer}");
            }
            assert_eq!(state(&db), before, "round {round}");
            let (in_digest, in_changelog, in_conflicts, in_rows) = state(&db_in_order);
            assert_eq!(
                (in_digest, in_changelog, in_conflicts, in_rows),
                (before_in_order.0.clone(), before_in_order.1, 1, before_in_order.3),
                "round {round}"
            );
        }
        swapped.stop().await;
        in_order.stop().await;
    }

    async fn request_cut_mid_body_applies_nothing(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        // Something to protect: X exists, conflicts and changelog are not empty.
        let (x, y) = (id(1), id(2));
        let seed = batch("seed", vec![op("s1", &x, "upsert", hlc(-2_000), SOURCE, "x0")]);
        let (status, answer) = region.post(OPS, &seed).await;
        assert_eq!((status, statuses(&answer)), (200, vec!["applied".to_string()]));
        let older = batch_from("ap-south", "older", vec![op("s2", &x, "upsert", hlc(-3_000), "ap-south", "x older")]);
        let (status, answer) = region.post(OPS, &older).await;
        assert_eq!((status, statuses(&answer)), (200, vec!["stale".to_string()]));
        let before = state(&db);
        assert_eq!((before.1, before.2, before.3), (1, 1, 1));

        // Updates X, creates Y; the op of Y is the one the cut falls into.
        let full = batch("cut", vec![
            op("c1", &x, "upsert", hlc(-1_000), SOURCE, "x1"),
            op("c2", &y, "upsert", hlc(-1_000), SOURCE, "y1"),
        ]);
        let body = serde_json::to_vec(&full).unwrap();
        let cut_at = body.len() - body.len() / 4;
        assert!(String::from_utf8_lossy(&body[..cut_at]).contains("\"c2\""), "the cut is inside the second op");

        // 1. Cut inside an op, then the client vanishes (no answer read).
        let mut stream = connect(&region).await;
        stream.write_all(request_head(&region, Some(body.len())).as_bytes()).await.unwrap();
        stream.write_all(&body[..cut_at]).await.unwrap();
        stream.shutdown().await.unwrap();
        drop(stream);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(state(&db), before, "a torn body is not applied");

        // 2. The same cut, half-closed: the server answers with a refusal.
        let mut stream = connect(&region).await;
        stream.write_all(request_head(&region, Some(body.len())).as_bytes()).await.unwrap();
        stream.write_all(&body[..cut_at]).await.unwrap();
        let answered = finish_and_read_status(stream).await;
        assert!(matches!(answered, Some(400) | None), "a torn body is refused, got {answered:?}");
        assert_eq!(state(&db), before, "a torn body is not applied");

        // 3. Complete JSON, but shorter than the announced Content-Length: the server waits
        //    for the rest (does not apply what it has), and applies nothing when it never comes.
        let mut stream = connect(&region).await;
        stream.write_all(request_head(&region, Some(body.len() + 16)).as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(state(&db), before, "a body shorter than its Content-Length is not applied while the rest may come");
        let answered = finish_and_read_status(stream).await;
        assert!(matches!(answered, Some(400) | None), "a short body is refused, got {answered:?}");
        assert_eq!(state(&db), before, "a body shorter than its Content-Length is not applied");

        // 4. Chunked: every byte of the JSON, but not the last (zero) chunk.
        let mut stream = connect(&region).await;
        stream.write_all(request_head(&region, None).as_bytes()).await.unwrap();
        let (first, second) = body.split_at(cut_at);
        for chunk in [first, second] {
            stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.unwrap();
            stream.write_all(chunk).await.unwrap();
            stream.write_all(b"\r\n").await.unwrap();
        }
        let answered = finish_and_read_status(stream).await;
        assert!(matches!(answered, Some(400) | None), "an unterminated chunked body is refused, got {answered:?}");
        assert_eq!(state(&db), before, "an unterminated chunked body is not applied");

        // The cuts poisoned nothing: the batch sent whole applies.
        let (status, answer) = region.post(OPS, &full).await;
        assert_eq!((status, statuses(&answer)), (200, vec!["applied".to_string(); 2]), "{answer}");
        let after = state(&db);
        assert_eq!((after.1, after.2, after.3), (3, 1, 2));
        assert_ne!(after.0, before.0);
        assert_eq!(version(&db, &y, SOURCE), (full["ops"][1]["hlc"].as_i64().unwrap(), true, false));

        // And a whole request on a raw connection (the check of the raw requests above) too.
        let more = batch("raw", vec![op("r1", &y, "delete", hlc(-500), SOURCE, "y gone")]);
        let raw = serde_json::to_vec(&more).unwrap();
        let mut stream = connect(&region).await;
        stream.write_all(request_head(&region, Some(raw.len())).as_bytes()).await.unwrap();
        stream.write_all(&raw).await.unwrap();
        assert_eq!(finish_and_read_status(stream).await, Some(200));
        assert_eq!(state(&db).1, 4);
        region.stop().await;
    }

    async fn response_dropped_after_apply_retry_is_a_no_op(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let (x, y, z) = (id(1), id(2), id(3));
        let (h0, h1) = (hlc(-3_000), hlc(-1_000));
        let seed = batch("seed", vec![
            op("s1", &x, "upsert", h0, SOURCE, "x0"),
            op("s2", &z, "upsert", h1, SOURCE, "z0"),
        ]);
        let (status, _) = region.post(OPS, &seed).await;
        assert_eq!(status, 200);
        let seeded = state(&db);
        assert_eq!((seeded.1, seeded.2, seeded.3), (2, 0, 2));

        // An update, an insert, a delete and an overtaken write (older than z's version).
        let body = batch("lost-answer", vec![
            op("o1", &x, "upsert", h1, SOURCE, "x1"),
            op("o2", &y, "upsert", h1, SOURCE, "y1"),
            op("o3", &x, "delete", h1 + 1, SOURCE, "x deleted"),
            op("o4", &z, "upsert", h0, SOURCE, "z older"),
        ]);
        let raw = serde_json::to_vec(&body).unwrap();
        let mut stream = connect(&region).await;
        stream.write_all(request_head(&region, Some(raw.len())).as_bytes()).await.unwrap();
        stream.write_all(&raw).await.unwrap();
        stream.shutdown().await.unwrap();
        drop(stream); // the answer is never read

        wait_until("the batch whose answer was lost is applied", || state(&db).1 > seeded.1).await;
        let applied = state(&db);
        assert_eq!((applied.1, applied.2, applied.3), (5, 0, 3), "applied once: three winners, one new row (a same-origin overtaken write is no conflict)");
        assert_eq!(version(&db, &x, SOURCE), (h1 + 1, true, true));
        assert_eq!(version(&db, &y, SOURCE), (h1, true, false));
        assert_eq!(version(&db, &z, SOURCE), (h1, true, false));

        // The sender never saw a 200: it resends the identical batch.
        let (status, answer) = region.post(OPS, &body).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(statuses(&answer), ["stale", "duplicate", "duplicate", "stale"], "{answer}");
        assert_eq!((answer["applied"].as_u64(), answer["duplicate"].as_u64(), answer["stale"].as_u64()), (Some(0), Some(2), Some(2)));
        assert_eq!(state(&db), applied, "the retry is a no-op");

        // The same with a fresh client on a fresh connection, twice at once: still nothing.
        let (one, two) = (fresh_connection_client(), fresh_connection_client());
        let ((s1, _), (s2, _)) = tokio::join!(post_on(&one, &region, &body), post_on(&two, &region, &body));
        assert_eq!((s1, s2), (200, 200));
        assert_eq!(state(&db), applied, "the retries are no-ops");
        region.stop().await;
    }

    async fn duplicate_ops_in_a_batch_and_across_batches_are_absorbed(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let (x, y) = (id(1), id(2));
        let (h0, h1, h2) = (hlc(-3_000), hlc(-2_000), hlc(-1_000));
        let first = batch("first", vec![
            op("o1", &x, "upsert", h1, SOURCE, "x1"),
            op("o1", &x, "upsert", h1, SOURCE, "x1"),
            op("o2", &y, "upsert", h1, SOURCE, "y1"),
            op("o3", &x, "upsert", h0, SOURCE, "x0 (older, same origin)"),
        ]);
        let (status, answer) = region.post(OPS, &first).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(statuses(&answer), ["applied", "duplicate", "applied", "stale"], "{answer}");
        // ap-south's own push of an older write of y, twice in its batch.
        let other = batch_from("ap-south", "other", vec![
            op("o4", &y, "upsert", h0, "ap-south", "y0 (older, other origin)"),
            op("o4", &y, "upsert", h0, "ap-south", "y0 (older, other origin)"),
        ]);
        let (status, answer) = region.post(OPS, &other).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(statuses(&answer), ["stale", "stale"], "{answer}");
        let after_first = state(&db);
        assert_eq!((after_first.1, after_first.2, after_first.3), (2, 1, 2), "each op counted once");
        assert_eq!(version(&db, &x, SOURCE), (h1, true, false));

        // o2 again inside a later batch, with a new op.
        let later = batch("later", vec![
            op("o2", &y, "upsert", h1, SOURCE, "y1"),
            op("o5", &x, "upsert", h2, SOURCE, "x2"),
            op("o5", &x, "upsert", h2, SOURCE, "x2"),
        ]);
        let (status, answer) = region.post(OPS, &later).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(statuses(&answer), ["duplicate", "applied", "duplicate"], "{answer}");
        let after_later = state(&db);
        assert_eq!((after_later.1, after_later.2, after_later.3), (3, 1, 2));
        assert_eq!(version(&db, &x, SOURCE), (h2, true, false));
        assert_eq!(version(&db, &y, SOURCE), (h1, true, false));

        // Both again: nothing.
        for body in [&first, &other, &later] {
            let (status, answer) = region.post(OPS, body).await;
            assert_eq!(status, 200);
            assert!(statuses(&answer).iter().all(|s| s != "applied"), "{answer}");
        }
        assert_eq!(state(&db), after_later);
        region.stop().await;
    }
}
