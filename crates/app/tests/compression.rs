//! gzip between regions (issue 16, item 6), against a real region on each backend: the feed
//! answers gzip to a reader that asks for it and the same JSON decoded; the ops route takes a
//! gzipped body; a small gzipped body that decodes past the byte limit is a 413 that applies
//! nothing (a decompression bomb costs the region the limit, not its memory).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};

use common::{count, customer, hlc, settings_for, Region};
use serde_json::{json, Value};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A client that sees the bytes on the wire (no automatic decompression).
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder().gzip(false).build().unwrap()
}

ship::backend_tests! {
    async fn the_feed_answers_gzip_when_asked_and_the_same_json_decoded(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        for i in 0..40 {
            let (status, _) = region.post("/api/v1/customers", &json!({"tenant_id": "t1", "name": format!("customer {i}"), "email": "x@example.com"})).await;
            assert_eq!(status, 201);
        }
        let token = region.token_from("us-east");
        let url = region.url("/sync/customers/changes?limit=100");
        let plain = raw_client().get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(plain.headers().get("content-encoding"), None);
        let plain_bytes = plain.bytes().await.unwrap();
        let packed = raw_client().get(&url).bearer_auth(&token).header("accept-encoding", "gzip").send().await.unwrap();
        assert_eq!(packed.status().as_u16(), 200);
        assert_eq!(packed.headers()["content-encoding"], "gzip");
        let packed_bytes = packed.bytes().await.unwrap();
        assert!(packed_bytes.len() * 3 < plain_bytes.len(), "{} gzipped vs {} plain", packed_bytes.len(), plain_bytes.len());
        let decoded: Value = serde_json::from_slice(&gunzip(&packed_bytes)).unwrap();
        let plain: Value = serde_json::from_slice(&plain_bytes).unwrap();
        assert_eq!(decoded["changes"], plain["changes"]);
        assert_eq!(decoded["changes"].as_array().map(Vec::len), Some(40));
        region.stop().await;
    }

    async fn the_ops_route_takes_a_gzipped_body(db: TestDb) {
        let region = Region::start(&settings_for(&db, "eu-west")).await;
        let id = "01939d2e-0000-7000-8000-00000000000a";
        let body = json!({"source_region": "us-east", "batch_id": "b-1", "schema_version": 1, "ops": [
            {"op_id": "o1", "entity_id": id, "kind": "upsert", "hlc": hlc(-1_000), "origin": "us-east", "payload": customer(id, "Ada", false)}
        ]});
        let res = raw_client()
            .post(region.url("/sync/customers/ops"))
            .bearer_auth(region.token_from("us-east"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(gzip(body.to_string().as_bytes()))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let answer: Value = res.json().await.unwrap();
        assert_eq!(answer["results"][0]["status"], "applied", "{answer}");
        region.stop().await;
    }

    /// Regression guard: the limit is on what the body decodes to.
    async fn a_gzipped_body_that_decodes_past_the_limit_is_a_413_and_applies_nothing(db: TestDb) {
        let settings = settings_for(&db, "eu-west");
        let limit = settings.sync.max_batch_bytes;
        let region = Region::start(&settings).await;
        let id = "01939d2e-0000-7000-8000-00000000000b";
        let mut big = customer(id, "Ada", false);
        // Past the ops route's limit, within the server's (http.max_body_bytes, 8 MiB).
        big["name"] = json!("a".repeat(limit + 1024));
        let body = json!({"source_region": "us-east", "batch_id": "b-1", "schema_version": 1, "ops": [
            {"op_id": "o1", "entity_id": id, "kind": "upsert", "hlc": hlc(-1_000), "origin": "us-east", "payload": big}
        ]});
        let packed = gzip(body.to_string().as_bytes());
        assert!(packed.len() < 64 * 1024, "a small body on the wire: {} bytes", packed.len());
        let res = raw_client()
            .post(region.url("/sync/customers/ops"))
            .bearer_auth(region.token_from("us-east"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(packed)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 413);
        let answer: Value = res.json().await.unwrap();
        assert_eq!(answer["error"], "batch_too_large", "{answer}");
        let mut conn = db.pool.get().unwrap();
        assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM customers"), 0);
        assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM sync_changelog"), 0);
        drop(conn);
        // A bomb: 256 MiB of JSON whitespace in a few hundred KiB, on the ops route and on an
        // unauthenticated public route — refused as it decodes (413), never inflated whole.
        let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        bomb.write_all(b"{\"source_region\": \"us-east\"").unwrap();
        let spaces = vec![b' '; 1 << 20];
        for _ in 0..256 {
            bomb.write_all(&spaces).unwrap();
        }
        bomb.write_all(b"}").unwrap();
        let bomb = bomb.finish().unwrap();
        assert!(bomb.len() < 1 << 20, "{} bytes on the wire", bomb.len());
        for (path, token) in [("/sync/customers/ops", Some(region.token_from("us-east"))), ("/api/v1/customers", None)] {
            let mut req = raw_client()
                .post(region.url(path))
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body(bomb.clone());
            if let Some(token) = &token {
                req = req.bearer_auth(token);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status().as_u16(), 413, "{path}");
            let answer: Value = res.json().await.unwrap();
            assert_eq!(answer["error"], "payload_too_large", "{path}: {answer}");
        }
        // Another encoding is refused.
        let res = raw_client()
            .post(region.url("/api/v1/customers"))
            .header("content-type", "application/json")
            .header("content-encoding", "br")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 415);
        assert_eq!(count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM customers"), 0);

        // A (small) body that is not gzip at all, declared as gzip: refused, nothing applied.
        let res = raw_client()
            .post(region.url("/sync/customers/ops"))
            .bearer_auth(region.token_from("us-east"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(r#"{"source_region": "us-east"}"#)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let answer: Value = res.json().await.unwrap_or(Value::Null);
        assert_eq!((status, answer["error"].as_str()), (400, Some("unreadable_body")), "{answer}");
        assert_eq!(count(&mut db.pool.get().unwrap(), "SELECT COUNT(*) FROM customers"), 0);
        region.stop().await;
    }
}
