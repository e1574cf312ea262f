//! Issue 12's "done when": a flood of 2,000 mixed bad and good requests at concurrency 32, a
//! quarter of them carrying a 1 MiB hostile field, against the real binary as its own process
//! (on each backend). Every answer is bounded and no 5xx; the log stays small (refusals are
//! counted, not logged one by one; parser-level refusals are not ERROR lines); the process's
//! memory is flat from one flood to the next.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use ship::testing::TestDb;

const REQUESTS: usize = 1_000;
const CONCURRENCY: usize = 32;
const MIB: usize = 1 << 20;

fn regionsync(dir: &Path, db: &TestDb) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regionsync"));
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("REGIONSYNC_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.env("REGIONSYNC_DATABASE__URL", db.url.expose())
        .env("REGIONSYNC_BROKER__SIGNING_KEY_FILE", dir.join("key.pem"));
    cmd
}

fn cli(dir: &Path, db: &TestDb, args: &[&str]) -> String {
    let out = regionsync(dir, db).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rss_kib(child: &Child) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// One raw HTTP/1.1 exchange the parser must refuse: (status line, whole answer).
fn raw(port: u16, request: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

struct Target {
    port: u16,
    client: reqwest::Client,
    credential: String,
    token: String,
    big_key: Arc<String>,
}

impl Target {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Request `i` of the mix: (what, status, body size).
    async fn send(&self, i: usize) -> (&'static str, u16, usize) {
        let c = &self.client;
        // A quarter of each kind carries the 1 MiB field.
        let big = (i / 8) % 4 == 0;
        let json_with_big = |mut body: Value| {
            if big {
                body[self.big_key.as_str()] = json!(1);
            }
            serde_json::to_vec(&body).unwrap()
        };
        let (what, req) = match i % 8 {
            0 | 1 => (
                "customers create",
                c.post(self.url("/api/v1/customers"))
                    .header("content-type", "application/json")
                    .body(json_with_big(json!({"tenant_id": "flood", "name": format!("n{i}"), "email": format!("u{i}@example.com")}))),
            ),
            2 => (
                "resolve",
                c.post(self.url("/api/v1/broker/resolve"))
                    .bearer_auth(&self.credential)
                    .header("content-type", "application/json")
                    .body(if big {
                        serde_json::to_vec(&json!({"target_region": self.big_key.as_str()})).unwrap()
                    } else {
                        b"{}".to_vec()
                    }),
            ),
            3 => (
                "ops",
                c.post(self.url("/sync/customers/ops"))
                    .bearer_auth(&self.token)
                    .header("content-type", "application/json")
                    .body(json_with_big(json!({"source_region": "x", "batch_id": "b", "schema_version": 1,
                        "ops": [{"op_id": "o", "entity_id": "e", "kind": "upsert", "hlc": 1, "origin": "local", "payload": {}}]}))),
            ),
            4 => (
                "feed",
                c.get(self.url(&format!("/sync/customers/changes?limit={}", if big { "-1" } else { "5" })))
                    .bearer_auth(&self.token),
            ),
            5 => (
                "bad token",
                // (A header stays under the server's head limit; a 1 MiB one is cut off by the parser.)
                c.get(self.url("/sync/customers/changes")).bearer_auth(if big { &self.big_key[..8 * 1024] } else { "x.y.z" }),
            ),
            6 => ("wrong method", c.get(self.url("/api/v1/broker/resolve"))),
            _ => ("list", c.get(self.url(&format!("/api/v1/customers?tenant_id=flood&limit={}", if big { "abc" } else { "3" })))),
        };
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let body = res.bytes().await.unwrap();
        (what, status, body.len())
    }
}

async fn flood(target: &Arc<Target>, requests: usize) {
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = Vec::with_capacity(requests);
    for i in 0..requests {
        let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
        let target = Arc::clone(target);
        tasks.push(tokio::spawn(async move {
            let out = if i % 50 == 49 {
                // A request the HTTP parser refuses before any route sees it.
                let port = target.port;
                let answer = tokio::task::spawn_blocking(move || {
                    raw(port, b"POST /api/v1/customers HTTP/1.1\r\nHost: x\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}")
                })
                .await
                .unwrap();
                assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
                ("conflicting lengths", 400, answer.len())
            } else {
                target.send(i).await
            };
            drop(permit);
            out
        }));
    }
    for task in tasks {
        let (what, status, size) = task.await.unwrap();
        assert!(status < 500, "{what}: {status}");
        assert!(size < 4096, "{what}: a {size}-byte answer");
    }
}

ship::backend_tests! {
    async fn a_flood_of_hostile_requests_leaves_the_log_small_and_memory_flat(db: TestDb) {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        let credential = cli(dir, &db, &["broker", "regions", "add", "x", "http://127.0.0.1:9"])
            .split_whitespace()
            .find(|w| w.starts_with("rsc_"))
            .unwrap()
            .to_string();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log_path = dir.join("stderr.log");
        let mut child = regionsync(dir, &db)
            .args(["serve"])
            .env("REGIONSYNC_HTTP__BIND", format!("127.0.0.1:{port}"))
            .env("REGIONSYNC_HTTP__WORKERS", "2")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap();
        // Idle connections are dropped before the server's keep-alive (5 s) closes them: on a
        // loaded machine the client otherwise picked a connection the server was closing and
        // got no answer (`IncompleteMessage`, a transport race, not a refusal; seen once in CI).
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let mut up = false;
        for _ in 0..300 {
            if client.get(format!("http://127.0.0.1:{port}/health/ready")).send().await.is_ok_and(|r| r.status() == 200) {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(up, "the region did not start: {}", std::fs::read_to_string(&log_path).unwrap());
        // The region registers itself at start; then a token for calling it as `x`.
        let token = cli(dir, &db, &["broker", "token", "local", "--as", "x"]).trim().to_string();
        let target = Arc::new(Target { port, client, credential, token, big_key: Arc::new("k".repeat(MIB)) });

        // The first flood brings the process to its working set; the second must not grow it.
        flood(&target, REQUESTS).await;
        let (rss_1, log_1) = (rss_kib(&child), std::fs::metadata(&log_path).unwrap().len());
        flood(&target, REQUESTS).await;
        let (rss_2, log_2) = (rss_kib(&child), std::fs::metadata(&log_path).unwrap().len());

        eprintln!("flood: RSS {rss_1} -> {rss_2} KiB, log {log_1} -> {log_2} bytes after {} requests", 2 * REQUESTS);
        let log = std::fs::read_to_string(&log_path).unwrap();
        assert!(log_2 < 256 * 1024, "{log_2} bytes of log after {} requests:\n{}", 2 * REQUESTS, &log[..log.len().min(4000)]);
        assert!(log_2 - log_1 < 64 * 1024, "the second flood wrote {} bytes of log", log_2 - log_1);
        assert!(!log.contains("ERROR"), "no ERROR line for a client's doing:\n{}", &log[..log.len().min(4000)]);
        assert!(!log.contains("kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"), "client text reached the log");
        assert!(rss_2 < rss_1 + 48 * 1024, "RSS grew from {rss_1} KiB to {rss_2} KiB between two equal floods");

        // What was refused is counted where an operator looks.
        let metrics = target.client.get(target.url("/metrics")).send().await.unwrap().text().await.unwrap();
        for needle in [
            "regionsync_http_refusals{status=\"422\",code=\"invalid_body\"}",
            "regionsync_http_refusals{status=\"401\",code=\"token_invalid\"}",
            "regionsync_http_refusals{status=\"405\",code=\"method_not_allowed\"}",
        ] {
            assert!(metrics.contains(needle), "{needle} missing:\n{metrics}");
        }
        let malformed = metrics
            .lines()
            .find_map(|l| l.strip_prefix("regionsync_http_malformed_requests{} "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no malformed count:\n{metrics}"));
        assert!(malformed >= (2 * REQUESTS / 50) as f64, "{malformed}");
        stop(&mut child);
    }
}

/// SIGTERM the region and wait for it.
fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    for _ in 0..150 {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}
