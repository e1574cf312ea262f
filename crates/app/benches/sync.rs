//! `make bench`: the benchmarks of `QUALITY-BARS.md` (and issue 13: B10 bootstrap, B11 verify). Ratios: B1, B1', B2, B3, B4, B8 and B8' (need
//! `TEST_MYSQL_URL`; B8': MariaDB in-process apply ÷ a bare multi-row LWW upsert; B8'c its
//! bound, that upsert plus the batch's entries as one batch row of the changelog, ADR 0026;
//! B8'b the bound a row per entry gave, ADR 0025), B8p and B8p'
//! (need `TEST_PG_URL`, issue 17: B8p = B1 on PostgreSQL, HTTP apply ÷ in-process apply; B8p' =
//! PostgreSQL in-process apply ÷ a bare multi-row `INSERT … ON CONFLICT (id) DO UPDATE … WHERE`
//! LWW upsert; B8p'b its bound, that upsert plus a bare changelog insert ÷ the upsert; skipped
//! with a line when `TEST_PG_URL` is unset), B5 (MariaDB dispatch, 4 workers ÷ 1), B7 (replicated rate at the maximum
//! offered load ÷ the write rate of a region without peers) and B9 (drain after a partition
//! that built a backlog ÷ B1's steady apply rate; B9m the same on MariaDB ÷ B8's). Below the table: B6, the end-to-end lag
//! between two regions (p50/p99 in ms at half the maximum write rate for `BENCH_LAG_SECS`,
//! default 60), which is also the sustained-load run (errors, memory after the first tenth and
//! at the end).
//!
//! Every benchmark compares two arms on the same generated rows (fixed seed), each arm run on a
//! fresh database (a new `TestDb`; HTTP arms start a fresh region on it), interleaved
//! A B A B for `pairs` pairs after one discarded warm-up pair. The table shows the median and
//! the minimum of the per-pair ratios A ÷ B and the median absolute rates of both arms.
//!
//! Sizes: `BENCH_OPS` / `--ops` (replicated ops, default 20 000), `BENCH_BATCH` / `--batch`
//! (ops per batch, default 1 000), `BENCH_WRITES` / `--writes` (local writes of B4, default
//! 5 000), `BENCH_PAIRS` / `--pairs` (measured pairs, default 5), `BENCH_SEED` / `--seed`,
//! B14a (gzip: bytes on the wire ÷ plain, feed and ops bodies). `BENCH_ONLY` / `--only B1,B3` (a subset), `BENCH_DISPATCH` (B5 entries, 20 000),
//! `BENCH_B7_SECS` (B7's T, 30), `BENCH_BACKLOG` (B9, 100 000). `--json PATH` also writes the
//! results as JSON.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::startup::{Application, StartOptions};
use app::Settings;
use customers::actions::{CreateCustomerAction, CreateCustomerInput};
use customers::models::{Customer, CustomerPayload, CustomerStatus};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};
use serde::Serialize;
use serde_json::{json, Value};
use ship::contracts::{
    Change, ChangeRecorder, HybridClock, OpKind, ResourceRegistry, SyncResource,
};
use ship::db::Backend;
use ship::parents::Action;
use ship::testing::TestDb;
use ship::{AnyConnection, DbError};
use sync::actions::{
    ApplyOpsAction, ApplyOpsInput, BatchLimits, GetChangesAction, GetChangesInput, OpStatus,
};
use sync::SyncChangeRecorder;

const ORIGIN: &str = "us-east";
const REGION: &str = "eu-west";
const PEERS: [&str; 2] = ["us-east", "ap-south"];
const PAGE: usize = 1_000;
const DRIFT: Duration = Duration::from_millis(5_000);

// ---------------------------------------------------------------------------------------------
// Configuration

#[derive(Debug, Clone)]
struct Config {
    ops: usize,
    batch: usize,
    writes: usize,
    pairs: usize,
    seed: u64,
    only: Option<Vec<String>>,
    json: Option<String>,
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
        _ => default,
    }
}

fn config() -> Config {
    let mut cfg = Config {
        ops: env_usize("BENCH_OPS", 20_000),
        batch: env_usize("BENCH_BATCH", 1_000),
        writes: env_usize("BENCH_WRITES", 5_000),
        pairs: env_usize("BENCH_PAIRS", 5),
        seed: env_usize("BENCH_SEED", 0x5EED_2026) as u64,
        only: std::env::var("BENCH_ONLY")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| split_ids(&v)),
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = |what: &str| -> String {
            inline
                .clone()
                .or_else(|| args.next())
                .unwrap_or_else(|| panic!("{what} needs a value"))
        };
        let number = |what: &str, v: String| -> usize {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("{what} {v}: not a number"))
        };
        match flag.as_str() {
            // cargo bench passes `--bench` to harness = false targets.
            "--bench" => {}
            "--json" => cfg.json = Some(value("--json")),
            "--ops" => cfg.ops = number("--ops", value("--ops")),
            "--batch" => cfg.batch = number("--batch", value("--batch")),
            "--writes" => cfg.writes = number("--writes", value("--writes")),
            "--pairs" => cfg.pairs = number("--pairs", value("--pairs")),
            "--seed" => cfg.seed = number("--seed", value("--seed")) as u64,
            "--only" => cfg.only = Some(split_ids(&value("--only"))),
            "-h" | "--help" => {
                println!(
                    "usage: make bench ARGS='[--json PATH] [--ops N] [--batch N] [--writes N] \
                     [--pairs N] [--seed N] [--only B1,B3]'\n(or BENCH_OPS, BENCH_BATCH, \
                     BENCH_WRITES, BENCH_PAIRS, BENCH_SEED, BENCH_ONLY; B8, B8', B9m, B5 need \
                     TEST_MYSQL_URL; B8p, B8p' need TEST_PG_URL, \
                     e.g. postgres://postgres@127.0.0.1:5432/postgres)"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument `{other}` (try --help)"),
        }
    }
    assert!(cfg.ops > 0 && cfg.batch > 0 && cfg.writes > 0 && cfg.pairs > 0);
    cfg
}

fn split_ids(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Config {
    fn wants(&self, id: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|ids| ids.iter().any(|i| i.eq_ignore_ascii_case(id)))
    }
}

// ---------------------------------------------------------------------------------------------
// Generated data (fixed seed)

/// xorshift64*: deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.max(1) ^ 0x9E37_79B9_7F4A_7C15)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const FIRST: [&str; 12] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Niklaus",
    "Radia", "Tony",
];
const LAST: [&str; 12] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton",
    "Wirth", "Perlman", "Hoare",
];

/// The ops (in batches) and the same rows as `Customer`s (for the bare arms).
struct Data {
    batches: Vec<Vec<Value>>,
    rows: Vec<Customer>,
    payload_bytes: f64,
    op_bytes: f64,
}

fn generate(cfg: &Config) -> Data {
    let mut rng = Rng::new(cfg.seed);
    // UUID v7 time field: a fixed instant plus i ms, so ids are unique and in creation order.
    let base_ms: u64 = 1_795_000_000_000;
    let now_ms = ship::contracts::hlc::system_time_ms() as i64;
    let mut ops = Vec::with_capacity(cfg.ops);
    let mut rows = Vec::with_capacity(cfg.ops);
    let (mut payload_bytes, mut op_bytes) = (0usize, 0usize);
    for i in 0..cfg.ops {
        let ms = base_ms + i as u64;
        let rand_a = rng.below(1 << 12);
        let rand_b = rng.next() & ((1 << 62) - 1);
        let id = format!(
            "{:08x}-{:04x}-7{:03x}-{:04x}-{:012x}",
            ms >> 16,
            ms & 0xffff,
            rand_a,
            0x8000 | (rand_b >> 48),
            rand_b & 0xffff_ffff_ffff
        );
        let first = FIRST[rng.below(FIRST.len() as u64) as usize];
        let last = LAST[rng.below(LAST.len() as u64) as usize];
        let (month, day, hour) = (1 + rng.below(12), 1 + rng.below(28), rng.below(20));
        let (min, sec, micros) = (rng.below(60), rng.below(60), rng.below(1_000_000));
        let created = format!("2026-{month:02}-{day:02}T{hour:02}:{min:02}:{sec:02}.{micros:06}Z");
        let updated = format!(
            "2026-{month:02}-{day:02}T{:02}:{min:02}:{sec:02}.{:06}Z",
            hour + 1 + rng.below(3),
            rng.below(1_000_000)
        );
        let payload = CustomerPayload {
            id: id.clone(),
            tenant_id: format!("tenant-{:04}", rng.below(500)),
            name: format!("{first} {last} {}", rng.below(1_000_000)),
            email: format!(
                "{}.{}{}@example.com",
                first.to_ascii_lowercase(),
                last.to_ascii_lowercase(),
                i
            ),
            status: CustomerStatus::Active.as_str().to_string(),
            created_at: created,
            updated_at: updated,
            deleted_at: None,
        };
        let hlc = (now_ms << 16) + i as i64;
        let value = payload.to_value();
        payload_bytes += value.to_string().len();
        let op = json!({
            "op_id": format!("{ORIGIN}-{i}"),
            "entity_id": id,
            "kind": "upsert",
            "hlc": hlc,
            "origin": ORIGIN,
            "payload": value,
        });
        op_bytes += op.to_string().len();
        ops.push(op);
        rows.push(
            payload
                .to_row(hlc, ORIGIN)
                .expect("generated timestamps parse"),
        );
    }
    let mut batches = Vec::new();
    let mut rest = ops.into_iter().peekable();
    while rest.peek().is_some() {
        batches.push(rest.by_ref().take(cfg.batch).collect());
    }
    Data {
        batches,
        rows,
        payload_bytes: payload_bytes as f64 / cfg.ops as f64,
        op_bytes: op_bytes as f64 / cfg.ops as f64,
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn registry() -> ResourceRegistry {
    app::wiring::resources().expect("the resource registry")
}

/// A fresh, migrated database with its changelog sequences (what `Wiring::build` prepares).
async fn fresh_db(backend: Backend) -> TestDb {
    let db = tokio::task::spawn_blocking(move || TestDb::new(backend))
        .await
        .unwrap();
    db.pool
        .run(|conn| sync::recorder::prepare_resources(conn, registry().names()))
        .await
        .unwrap();
    db
}

/// The ops route's use case on `db`; `batch_rows`: the applied entries go to the changelog as
/// batch rows (the default, ADR 0026), or as a row each.
fn apply_action(db: &TestDb, batch: usize, batch_rows: bool) -> ApplyOpsAction {
    ApplyOpsAction::new(
        "bench-receiver",
        db.pool.clone(),
        registry(),
        Arc::new(HybridClock::new(DRIFT)),
        BatchLimits {
            max_ops: batch.max(1_000),
            batch_rows,
        },
    )
}

fn apply_input(k: usize, ops: Vec<Value>) -> ApplyOpsInput {
    ApplyOpsInput {
        resource: customers::RESOURCE.into(),
        source_region: ORIGIN.into(),
        batch_id: format!("{ORIGIN}-b{k}"),
        schema_version: 1,
        ops,
        source_incarnation: String::new(),
        source_policy: String::new(),
    }
}

/// Apply every batch in-process; the seconds spent in the action (the clone of each batch's
/// ops is not timed) and the count of ops with `expect` status.
async fn apply_all(action: &ApplyOpsAction, data: &Data, expect: OpStatus) -> f64 {
    let mut spent = Duration::ZERO;
    for (k, batch) in data.batches.iter().enumerate() {
        let input = apply_input(k, batch.clone());
        let t = Instant::now();
        let out = action.run(input).await.expect("apply ops");
        spent += t.elapsed();
        assert_eq!(out.count(expect), batch.len(), "every op {expect:?}");
    }
    spent.as_secs_f64()
}

fn count(conn: &mut AnyConnection, sql: &str) -> i64 {
    diesel::select(diesel::dsl::sql::<BigInt>(&format!("({sql})")))
        .get_result(conn)
        .unwrap()
}

/// A region's web process, on `db`, in this process.
struct Region {
    base: String,
    /// A broker token for ORIGIN calling this region (valid for the default 5 minutes).
    token: String,
    client: reqwest::Client,
    handle: actix_web::dev::ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Region {
    async fn start(db: &TestDb, batch: usize) -> Self {
        let mut settings = Settings {
            region_id: REGION.into(),
            ..Settings::default()
        };
        settings.database.url = db.url.clone();
        settings.http.bind = "127.0.0.1:0".into();
        settings.http.workers = Some(1);
        settings.sync.max_ops_per_batch = settings.sync.max_ops_per_batch.max(batch as u32);
        settings.sync.max_batch_bytes = settings.sync.max_batch_bytes.max(batch * 1_024);
        settings.http.max_body_bytes = settings.http.max_body_bytes.max(batch * 1_024);
        // The region verifies tokens like any region: signed by the (test) broker key.
        settings.broker.signing_key = Some(ship::config::Secret::new(
            ship::testing::test_signing_key_pem(),
        ));
        let app = Application::build(&settings, StartOptions::default())
            .await
            .expect("the region starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let server = tokio::spawn(app.run_until(std::future::pending()));
        Self {
            base,
            token: ship::testing::test_token(ORIGIN, REGION, &[customers::RESOURCE]),
            // Plain: B3 measures the feed itself; B14 the gzip on top of it.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .gzip(false)
                .build()
                .unwrap(),
            handle,
            server,
        }
    }

    async fn stop(self) {
        self.handle.stop(true).await;
        self.server.abort();
    }
}

#[derive(Serialize)]
struct OpsBody<'a> {
    source_region: &'a str,
    batch_id: String,
    schema_version: u32,
    ops: &'a [Value],
}

/// The arms' rate (units per second).
fn rate(units: usize, secs: f64) -> f64 {
    units as f64 / secs.max(1e-9)
}

/// One warm-up pair (discarded), then `pairs` pairs A B; the (rate A, rate B) of each.
async fn interleave<FA, FB, A, B>(cfg: &Config, id: &str, mut a: FA, mut b: FB) -> Vec<(f64, f64)>
where
    FA: FnMut() -> A,
    FB: FnMut() -> B,
    A: Future<Output = f64>,
    B: Future<Output = f64>,
{
    let mut out = Vec::new();
    for pair in 0..=cfg.pairs {
        let ra = a().await;
        let rb = b().await;
        let label = if pair == 0 {
            "warm-up".to_string()
        } else {
            format!("pair {pair}")
        };
        println!(
            "  {id:<5} {label:<8} A {:>12.0}/s  B {:>12.0}/s  ratio {:.3}",
            ra,
            rb,
            ra / rb
        );
        if pair > 0 {
            out.push((ra, rb));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Arms

/// B1/B8/B8p A: every batch POSTed to a fresh region on a fresh database; ops per second.
async fn arm_http_apply(backend: Backend, cfg: &Config, data: &Data) -> f64 {
    let db = fresh_db(backend).await;
    let region = Region::start(&db, cfg.batch).await;
    let url = format!("{}/sync/customers/ops", region.base);
    let t = Instant::now();
    for (k, batch) in data.batches.iter().enumerate() {
        let body = serde_json::to_vec(&OpsBody {
            source_region: ORIGIN,
            batch_id: format!("{ORIGIN}-b{k}"),
            schema_version: 1,
            ops: batch,
        })
        .unwrap();
        let res = region
            .client
            .post(&url)
            .bearer_auth(&region.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST ops");
        let status = res.status().as_u16();
        let answer: Value = res.json().await.expect("a JSON answer");
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["applied"].as_u64(), Some(batch.len() as u64));
    }
    let secs = t.elapsed().as_secs_f64();
    region.stop().await;
    rate(cfg.ops, secs)
}

/// B1/B1'/B8/B8p A or B: the same batches through `ApplyOpsAction` in-process; ops per second.
async fn arm_inproc_apply(backend: Backend, cfg: &Config, data: &Data) -> f64 {
    let db = fresh_db(backend).await;
    let action = apply_action(&db, cfg.batch, true);
    let secs = apply_all(&action, data, OpStatus::Applied).await;
    rate(cfg.ops, secs)
}

const SQLITE_UPSERT: &str = "INSERT INTO customers \
    (id, tenant_id, name, email, status, created_at, updated_at, sync_version, sync_origin, deleted_at) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
    ON CONFLICT(id) DO UPDATE SET tenant_id = excluded.tenant_id, name = excluded.name, \
    email = excluded.email, status = excluded.status, created_at = excluded.created_at, \
    updated_at = excluded.updated_at, sync_version = excluded.sync_version, \
    sync_origin = excluded.sync_origin, deleted_at = excluded.deleted_at \
    WHERE excluded.sync_version > customers.sync_version";

const INSERT: &str = "INSERT INTO customers \
    (id, tenant_id, name, email, status, created_at, updated_at, sync_version, sync_origin, deleted_at) \
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// One customer row by `sql` (ten binds in column order).
fn exec_row(conn: &mut AnyConnection, sql: &'static str, r: &Customer) -> QueryResult<usize> {
    macro_rules! bound {
        () => {
            bound!(sql)
        };
        ($sql:expr) => {
            diesel::sql_query($sql)
                .bind::<Text, _>(&r.id)
                .bind::<Text, _>(&r.tenant_id)
                .bind::<Text, _>(&r.name)
                .bind::<Text, _>(&r.email)
                .bind::<Text, _>(&r.status)
                .bind::<Timestamp, _>(r.created_at)
                .bind::<Timestamp, _>(r.updated_at)
                .bind::<BigInt, _>(r.sync_version)
                .bind::<Text, _>(&r.sync_origin)
                .bind::<Nullable<Timestamp>, _>(r.deleted_at)
        };
    }
    match conn {
        AnyConnection::Sqlite(c) => bound!().execute(c),
        AnyConnection::Mysql(c) => bound!().execute(c),
        AnyConnection::Pg(c) => bound!(numbered_placeholders(sql)).execute(c),
    }
}

/// `sql` with its `?` placeholders numbered as PostgreSQL takes them (`$1`, `$2`, …).
fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(ch);
        }
    }
    out
}

/// B1' B: the same rows by a bare LWW upsert, one transaction per batch; rows per second.
async fn arm_bare_upsert(cfg: &Config, data: &Data) -> f64 {
    let db = fresh_db(Backend::Sqlite).await;
    let mut spent = Duration::ZERO;
    for chunk in data.rows.chunks(cfg.batch) {
        let rows = chunk.to_vec();
        let t = Instant::now();
        let written = db
            .pool
            .transaction(move |conn| -> Result<usize, DbError> {
                let mut n = 0;
                for r in &rows {
                    n += exec_row(conn, SQLITE_UPSERT, r)?;
                }
                Ok(n)
            })
            .await
            .expect("bare upsert");
        spent += t.elapsed();
        assert_eq!(written, chunk.len());
    }
    rate(cfg.ops, spent.as_secs_f64())
}

/// The column list of the bare MariaDB and PostgreSQL upserts (B8' B, B8p' B), in `Customer`'s
/// order.
const MYSQL_COLUMNS: &str = "(id, tenant_id, name, email, status, created_at, updated_at, \
    sync_version, sync_origin, deleted_at)";

/// B8' B's conflict branch: last-writer-wins on `(sync_version, sync_origin)`, the version
/// columns assigned last (MariaDB evaluates the assignments left to right, each one seeing the
/// columns assigned before it).
const MYSQL_LWW: &str = " ON DUPLICATE KEY UPDATE \
    tenant_id = IF((VALUES(sync_version), VALUES(sync_origin)) > (sync_version, sync_origin), VALUES(tenant_id), tenant_id), \
    name = IF((VALUES(sync_version), VALUES(sync_origin)) > (sync_version, sync_origin), VALUES(name), name), \
    email = IF((VALUES(sync_version), VALUES(sync_origin)) > (sync_version, sync_origin), VALUES(email), email), \
    status = IF((VALUES(sync_version), VALUES(sync_origin)) > (sync_version, sync_origin), VALUES(status), status), \
    created_at = IF((VALUES(sync_version), VALUES(sync_origin)) > (sync_version, sync_origin), VALUES(created_at), created_at), \
    updated_at = IF((VALUES(sync_version), VALUES(sync_origin)) > (sync_version, sync_origin), VALUES(updated_at), updated_at), \
    deleted_at = IF((VALUES(sync_version), VALUES(sync_origin)) > (sync_version, sync_origin), VALUES(deleted_at), deleted_at), \
    sync_origin = IF((VALUES(sync_version), VALUES(sync_origin)) > (sync_version, sync_origin), VALUES(sync_origin), sync_origin), \
    sync_version = IF(VALUES(sync_version) > sync_version, VALUES(sync_version), sync_version)";

/// B8p' B's conflict branch on PostgreSQL: last-writer-wins on `(sync_version, sync_origin)`,
/// decided once per row by the `WHERE` of `DO UPDATE` (a row that loses is left as it is).
const PG_LWW: &str = " ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id, \
    name = excluded.name, email = excluded.email, status = excluded.status, \
    created_at = excluded.created_at, updated_at = excluded.updated_at, \
    sync_version = excluded.sync_version, sync_origin = excluded.sync_origin, \
    deleted_at = excluded.deleted_at \
    WHERE (excluded.sync_version, excluded.sync_origin) > (customers.sync_version, customers.sync_origin)";

/// How the bare arms send their statements to MariaDB.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// Values inline, the text protocol (`ship::db::inline_sql`): what the product's apply
    /// uses on MariaDB (ADR 0019), so the bare arms compare like with like.
    Inline,
    /// A server-side prepared statement with bound values (diesel's way; PostgreSQL's arms
    /// always).
    Prepared,
}

/// What a bare arm writes to a changelog beside the upsert, in the same transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Changelog {
    /// Nothing: the bare upsert alone.
    None,
    /// One `sync_changelog` row per entry, by one multi-row insert (the layout before ADR
    /// 0026, and still local writes').
    Rows,
    /// One batch row per batch (B8'c: the product's layout for an applied batch, ADR 0026).
    Chunk,
}

/// B8' B (MariaDB) and B8p' B (PostgreSQL): the same rows by a bare multi-row LWW upsert of
/// the server (`INSERT … VALUES (…), …` with [`MYSQL_LWW`] or [`PG_LWW`] deciding by version),
/// one statement and one transaction per batch, sent the way the product sends its own; rows
/// per second.
async fn arm_bare_upsert_server(backend: Backend, cfg: &Config, data: &Data) -> f64 {
    bare_upsert_server(backend, cfg, data, Changelog::None, Protocol::Inline).await
}

/// B8'x B: [`arm_bare_upsert_server`] on MariaDB as a server-side prepared statement.
async fn arm_bare_upsert_prepared(cfg: &Config, data: &Data) -> f64 {
    bare_upsert_server(
        Backend::Mysql,
        cfg,
        data,
        Changelog::None,
        Protocol::Prepared,
    )
    .await
}

/// B8'b and B8p'b: as [`arm_bare_upsert_server`], and each batch's changelog entries by one
/// bare multi-row insert in the same transaction (payload text made beforehand, seqs counted
/// here: no validation, no decision, no sequence row) — what a row per entry costs at the
/// least (the bound before ADR 0026); ops per second.
async fn arm_bare_upsert_with_changelog_server(backend: Backend, cfg: &Config, data: &Data) -> f64 {
    bare_upsert_server(backend, cfg, data, Changelog::Rows, Protocol::Inline).await
}

/// B8'c A: as [`arm_bare_upsert_with_changelog_server`] on MariaDB, but each batch's entries go
/// to the changelog as one batch row (made beforehand), as the product stores them (ADR 0026):
/// B8''s bound.
async fn arm_bare_upsert_with_chunk_server(cfg: &Config, data: &Data) -> f64 {
    bare_upsert_server(
        Backend::Mysql,
        cfg,
        data,
        Changelog::Chunk,
        Protocol::Inline,
    )
    .await
}

/// A batch's entries as a batch row's payload (ADR 0026): `[entity_id, hlc, payload]` each,
/// in seq order, the payload spliced as it is.
fn chunk_text(rows: &[Customer], entries: &[(i64, String)]) -> String {
    let mut text = String::from("[");
    for (i, (r, (_, payload))) in rows.iter().zip(entries).enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!("[{},{},{payload}]", json!(r.id), r.sync_version));
    }
    text.push(']');
    text
}

/// `head` followed by `rows` tuples of `width` placeholders (`ship::lww::values_placeholders`).
fn values_sql(backend: Backend, head: &str, rows: usize, width: usize) -> String {
    format!(
        "{head}{}",
        ship::lww::values_placeholders(backend, rows, width)
    )
}

async fn bare_upsert_server(
    backend: Backend,
    cfg: &Config,
    data: &Data,
    changelog: Changelog,
    protocol: Protocol,
) -> f64 {
    let db = fresh_db(backend).await;
    if changelog == Changelog::Chunk {
        assert!(
            backend == Backend::Mysql && protocol == Protocol::Inline,
            "B8'c runs on MariaDB, inline"
        );
    }
    let mut seq = 0i64;
    let mut spent = Duration::ZERO;
    for chunk in data.rows.chunks(cfg.batch) {
        let rows = chunk.to_vec();
        let entries: Vec<(i64, String)> = if changelog != Changelog::None {
            chunk
                .iter()
                .map(|r| {
                    seq += 1;
                    (seq, CustomerPayload::from(r).to_value().to_string())
                })
                .collect()
        } else {
            Vec::new()
        };
        let last_seq = seq;
        let batch_row = (changelog == Changelog::Chunk).then(|| chunk_text(&rows, &entries));
        let entries = if changelog == Changelog::Rows {
            entries
        } else {
            Vec::new()
        };
        let changelog_sql = values_sql(
            backend,
            "INSERT INTO sync_changelog (resource, seq, entity_id, op, payload, hlc, \
             origin_region, schema_version, created_at) VALUES ",
            entries.len(),
            9,
        );
        let mut upsert_sql = values_sql(
            backend,
            &format!("INSERT INTO customers {MYSQL_COLUMNS} VALUES "),
            rows.len(),
            10,
        );
        upsert_sql.push_str(if backend == Backend::Postgres {
            PG_LWW
        } else {
            MYSQL_LWW
        });
        let t = Instant::now();
        let written = db
            .pool
            .transaction(move |conn| -> Result<usize, DbError> {
                // The binds of both statements, on the backend's own boxed query type.
                macro_rules! run {
                    ($c:expr, $db:ty) => {{
                        if !entries.is_empty() {
                            let mut query = diesel::sql_query(changelog_sql).into_boxed::<$db>();
                            for (r, (seq, payload)) in rows.iter().zip(&entries) {
                                query = query
                                    .bind::<Text, _>(customers::RESOURCE)
                                    .bind::<BigInt, _>(*seq)
                                    .bind::<Text, _>(r.id.clone())
                                    .bind::<Text, _>("upsert")
                                    .bind::<Text, _>(payload.clone())
                                    .bind::<BigInt, _>(r.sync_version)
                                    .bind::<Text, _>(r.sync_origin.clone())
                                    .bind::<Integer, _>(1)
                                    .bind::<Timestamp, _>(r.created_at);
                            }
                            query.execute($c)?;
                        }
                        let mut query = diesel::sql_query(upsert_sql).into_boxed::<$db>();
                        for r in &rows {
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
                        Ok(query.execute($c)?)
                    }};
                }
                match conn {
                    AnyConnection::Mysql(c) if protocol == Protocol::Inline => {
                        use ship::db::inline_sql::{insert_all, InlineStatement, Literal};
                        if let (Some(text), Some(first), Some(last)) =
                            (&batch_row, rows.first(), rows.last())
                        {
                            let mut insert = InlineStatement::new(
                                "INSERT INTO sync_changelog (seq, first_seq, resource, \
                                 entity_id, op, payload, hlc, origin_region, schema_version, \
                                 created_at) VALUES ",
                            );
                            insert.row(&[
                                Literal::BigInt(last_seq),
                                Literal::BigInt(last_seq - rows.len() as i64 + 1),
                                Literal::Text(customers::RESOURCE),
                                Literal::Text(""),
                                Literal::Text("batch"),
                                Literal::Text(text),
                                Literal::BigInt(last.sync_version),
                                Literal::Text(&first.sync_origin),
                                Literal::Integer(1),
                                Literal::Timestamp(first.created_at),
                            ]);
                            insert.execute(c)?;
                        }
                        insert_all(
                            c,
                            "INSERT INTO sync_changelog (resource, seq, entity_id, op, payload, \
                             hlc, origin_region, schema_version, created_at) VALUES ",
                            &rows.iter().zip(&entries).collect::<Vec<_>>(),
                            |(r, (seq, payload))| {
                                [
                                    Literal::Text(customers::RESOURCE),
                                    Literal::BigInt(*seq),
                                    Literal::Text(&r.id),
                                    Literal::Text("upsert"),
                                    Literal::Text(payload),
                                    Literal::BigInt(r.sync_version),
                                    Literal::Text(&r.sync_origin),
                                    Literal::Integer(1),
                                    Literal::Timestamp(r.created_at),
                                ]
                            },
                        )?;
                        let mut upsert = InlineStatement::new(&format!(
                            "INSERT INTO customers {MYSQL_COLUMNS} VALUES "
                        ));
                        for r in &rows {
                            upsert.row(&[
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
                            ]);
                        }
                        upsert.push_sql(MYSQL_LWW);
                        Ok(upsert.execute_counting(c)? as usize)
                    }
                    AnyConnection::Mysql(c) => run!(c, diesel::mysql::Mysql),
                    AnyConnection::Pg(c) => run!(c, diesel::pg::Pg),
                    AnyConnection::Sqlite(_) => panic!("B8' and B8p' B run on a server"),
                }
            })
            .await
            .expect("bare multi-row upsert");
        spent += t.elapsed();
        assert_eq!(written, chunk.len(), "every row inserted");
    }
    rate(cfg.ops, spent.as_secs_f64())
}

/// What re-delivery must leave unchanged.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct SideState {
    changelog: i64,
    conflicts: i64,
    outbox: i64,
    high_watermark: i64,
    digest: String,
}

async fn side_state(db: &TestDb) -> SideState {
    let feed = GetChangesAction::new(db.pool.clone(), registry())
        .run(GetChangesInput {
            resource: customers::RESOURCE.into(),
            since: None,
            limit: 1,
            exclude_origin: None,
            reader: None,
            ack: None,
            reader_policy: None,
        })
        .await
        .expect("the feed");
    let (changelog, conflicts, outbox, digest) = db
        .pool
        .run(|conn| -> Result<_, DbError> {
            Ok((
                // Entries, not rows (a batch row holds several, ADR 0026).
                count(conn, "SELECT COALESCE(SUM(seq - COALESCE(first_seq, seq) + 1), 0) FROM sync_changelog"),
                count(conn, "SELECT COUNT(*) FROM sync_conflicts"),
                count(conn, "SELECT COUNT(*) FROM sync_outbox"),
                customers::CustomersResource.digest(conn)?,
            ))
        })
        .await
        .unwrap();
    SideState {
        changelog,
        conflicts,
        outbox,
        high_watermark: feed.high_watermark.seq,
        digest,
    }
}

/// B2: first delivery then re-delivery of every batch, in-process, on one fresh database;
/// (re-delivery rate, first-delivery rate) and whether re-delivery changed nothing.
async fn pair_redelivery(cfg: &Config, data: &Data) -> (f64, f64, SideState, bool) {
    let db = fresh_db(Backend::Sqlite).await;
    let action = apply_action(&db, cfg.batch, true);
    let first = apply_all(&action, data, OpStatus::Applied).await;
    let before = side_state(&db).await;
    let again = apply_all(&action, data, OpStatus::Duplicate).await;
    let after = side_state(&db).await;
    let unchanged = before == after && before.changelog == cfg.ops as i64;
    (rate(cfg.ops, again), rate(cfg.ops, first), after, unchanged)
}

/// A database whose changelog holds every op (applied in-process, untimed), as batch rows.
async fn filled_db(cfg: &Config, data: &Data) -> TestDb {
    filled_db_of(cfg, data, true).await
}

/// [`filled_db`], the changelog as batch rows or as a row per entry (`batch_rows`).
async fn filled_db_of(cfg: &Config, data: &Data, batch_rows: bool) -> TestDb {
    let db = fresh_db(Backend::Sqlite).await;
    apply_all(
        &apply_action(&db, cfg.batch, batch_rows),
        data,
        OpStatus::Applied,
    )
    .await;
    db
}

/// A feed entry as a typed client takes it: the columns B3 B's raw SELECT materializes, the
/// payload kept as its JSON text.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct FeedEntry {
    seq: i64,
    entity_id: String,
    kind: String,
    hlc: i64,
    origin: String,
    schema_version: i32,
    payload: Box<serde_json::value::RawValue>,
}

#[derive(serde::Deserialize)]
struct FeedPage {
    changes: Vec<FeedEntry>,
    next_cursor: String,
    has_more: bool,
}

/// How B3 A's client reads a page.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FeedClient {
    /// Into typed entries, as B's SELECT fills its rows (B3).
    Typed,
    /// Into a `serde_json::Value` tree (B3v: the client's DOM counted with the feed).
    Dom,
}

/// B14a: the bytes the feed of `cfg.ops` customers takes on the wire, paged to the end
/// (`limit=1000`), asked for gzip ÷ plain; and the same ratio for the ops bodies a push sends
/// (batches of `cfg.batch`, gzipped as `SendOpsTask` does). (feed gz, feed plain, ops gz, ops
/// plain) bytes.
async fn wire_bytes_b14(cfg: &Config, data: &Data) -> (usize, usize, usize, usize) {
    use std::io::Write;
    let db = filled_db(cfg, data).await;
    let region = Region::start(&db, cfg.batch).await;
    let mut totals = [0usize; 2];
    for (k, gzip) in [true, false].into_iter().enumerate() {
        let started = Instant::now();
        let mut since: Option<String> = None;
        loop {
            let mut url = format!("{}/sync/customers/changes?limit={PAGE}", region.base);
            if let Some(cursor) = &since {
                url.push_str("&since=");
                url.push_str(cursor);
            }
            let mut req = region.client.get(&url).bearer_auth(&region.token);
            if gzip {
                req = req.header("accept-encoding", "gzip");
            }
            let res = req.send().await.expect("GET changes");
            let packed = res.headers().get("content-encoding").is_some();
            assert_eq!(packed, gzip, "gzip exactly when asked");
            let bytes = res.bytes().await.expect("a page");
            totals[k] += bytes.len();
            let plain = if gzip {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
                    .expect("gzip");
                out
            } else {
                bytes.to_vec()
            };
            let page: FeedPage = serde_json::from_slice(&plain).expect("a feed page");
            if !page.has_more {
                break;
            }
            since = Some(page.next_cursor);
        }
        println!(
            "  B14a  the feed read {} in {:.2} s",
            if gzip { "gzipped" } else { "plain" },
            started.elapsed().as_secs_f64()
        );
    }
    region.stop().await;
    let (mut ops_gz, mut ops_plain) = (0, 0);
    for batch in &data.batches {
        let body = serde_json::to_vec(
            &json!({"source_region": ORIGIN, "batch_id": "b", "schema_version": 1, "ops": batch}),
        )
        .unwrap();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&body).unwrap();
        ops_gz += encoder.finish().unwrap().len();
        ops_plain += body.len();
    }
    (totals[0], totals[1], ops_gz, ops_plain)
}

/// B3 A: the feed paged to the end over HTTP, `limit=1000`; entries per second.
async fn arm_http_feed(cfg: &Config, data: &Data, client: FeedClient, batch_rows: bool) -> f64 {
    let db = filled_db_of(cfg, data, batch_rows).await;
    let region = Region::start(&db, cfg.batch).await;
    let mut since: Option<String> = None;
    let mut seen = 0usize;
    let t = Instant::now();
    loop {
        let mut url = format!("{}/sync/customers/changes?limit={PAGE}", region.base);
        if let Some(cursor) = &since {
            url.push_str("&since=");
            url.push_str(cursor);
        }
        let res = region
            .client
            .get(&url)
            .bearer_auth(&region.token)
            .send()
            .await
            .expect("GET changes");
        assert_eq!(res.status().as_u16(), 200);
        let (n, has_more, next) = if client == FeedClient::Typed {
            let page: FeedPage = res.json().await.expect("a feed page");
            (page.changes.len(), page.has_more, Some(page.next_cursor))
        } else {
            let page: Value = res.json().await.expect("a JSON page");
            let next = page["next_cursor"].as_str().map(str::to_string);
            (
                page["changes"].as_array().map_or(0, Vec::len),
                page["has_more"] == Value::Bool(true),
                next,
            )
        };
        seen += n;
        if !has_more {
            break;
        }
        since = next;
    }
    let secs = t.elapsed().as_secs_f64();
    region.stop().await;
    assert_eq!(seen, cfg.ops, "the feed holds every op");
    rate(seen, secs)
}

#[derive(QueryableByName)]
#[allow(dead_code)]
struct RawEntry {
    #[diesel(sql_type = Text)]
    resource: String,
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    entity_id: String,
    #[diesel(sql_type = Text)]
    op: String,
    #[diesel(sql_type = Text)]
    payload: String,
    #[diesel(sql_type = BigInt)]
    hlc: i64,
    #[diesel(sql_type = Text)]
    origin_region: String,
    #[diesel(sql_type = Integer)]
    schema_version: i32,
    /// SQLite stores timestamps as text.
    #[diesel(sql_type = Text)]
    created_at: String,
}

/// B3 B: the same entries by a raw keyset-paged SELECT over the pool (pages of 1,000, one
/// pool checkout per page, like the feed); entries per second.
async fn arm_raw_select(cfg: &Config, data: &Data) -> f64 {
    let db = filled_db_of(cfg, data, false).await;
    let mut after = 0i64;
    let mut seen = 0usize;
    let t = Instant::now();
    loop {
        let page: Vec<RawEntry> = db
            .pool
            .run(move |conn| -> Result<_, DbError> {
                let AnyConnection::Sqlite(c) = conn else {
                    panic!("B3 runs on SQLite");
                };
                Ok(diesel::sql_query(
                    "SELECT resource, seq, entity_id, op, payload, hlc, origin_region, \
                     schema_version, created_at FROM sync_changelog \
                     WHERE resource = ? AND seq > ? ORDER BY seq LIMIT ?",
                )
                .bind::<Text, _>(customers::RESOURCE)
                .bind::<BigInt, _>(after)
                .bind::<BigInt, _>(PAGE as i64)
                .load(c)?)
            })
            .await
            .expect("raw page");
        seen += page.len();
        match page.last() {
            Some(last) if page.len() == PAGE => after = last.seq,
            _ => break,
        }
    }
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(seen, cfg.ops, "the changelog holds every op");
    rate(seen, secs)
}

fn recorder() -> Arc<SyncChangeRecorder> {
    Arc::new(SyncChangeRecorder::new(
        REGION,
        Arc::new(HybridClock::new(DRIFT)),
        PEERS.iter().map(|p| p.to_string()).collect(),
        [
            (customers::RESOURCE.to_string(), 1),
            (orders::RESOURCE.to_string(), 1),
        ],
    ))
}

/// Every third write of the mixed arms is an order of the customer written just before.
fn mixed_order_at(i: usize) -> bool {
    i % 3 == 2
}

/// An order of `customer` as the mixed arms write it: one line.
fn order_input(customer: &str, i: usize) -> orders::actions::CreateOrderInput {
    orders::actions::CreateOrderInput {
        tenant_id: "t1".into(),
        customer_id: customer.into(),
        number: format!("SO-{i}"),
        currency: "EUR".into(),
        lines: orders::models::OrderLines(vec![orders::models::OrderLine {
            sku: "SKU-1".into(),
            quantity: 2,
            unit_price_minor: 1250,
        }]),
        status: orders::models::OrderStatus::Pending,
    }
}

/// B4/1m A: the write path of the API for a mix — two customers, then an order of the second
/// (`CreateCustomerAction`, `CreateOrderAction`: the order's customer read and locked through
/// the registry), each its own transaction with the real recorder; writes/s.
async fn arm_create_recorded_mix(cfg: &Config, data: &Data) -> f64 {
    let db = fresh_db(Backend::Sqlite).await;
    let recorder = recorder();
    let create_customer = CreateCustomerAction::new(db.pool.clone(), recorder.clone());
    let create_order =
        orders::actions::CreateOrderAction::new(db.pool.clone(), recorder.clone(), registry());
    let mut spent = Duration::ZERO;
    let mut last: Option<String> = None;
    for (i, row) in data.rows[..cfg.writes].iter().enumerate() {
        let t = Instant::now();
        match (&last, mixed_order_at(i)) {
            (Some(customer), true) => {
                create_order
                    .run(order_input(customer, i))
                    .await
                    .expect("create order");
            }
            _ => {
                let input = CreateCustomerInput {
                    tenant_id: "t1".into(),
                    name: row.name.clone(),
                    email: row.email.clone(),
                    status: CustomerStatus::Active,
                };
                last = Some(create_customer.run(input).await.expect("create").id);
            }
        }
        spent += t.elapsed();
    }
    check_recorded(&db, cfg.writes).await;
    rate(cfg.writes, spent.as_secs_f64())
}

const ORDER_INSERT: &str = "INSERT INTO orders (id, tenant_id, customer_id, number, status, \
    currency, lines, total_minor, created_at, updated_at, sync_version, sync_origin) \
    VALUES (?, ?, ?, ?, 'pending', 'EUR', ?, 2500, ?, ?, ?, ?)";

/// B4/1m B: the same mix of rows by plain SQL inserts, one per transaction; writes/s.
async fn arm_plain_insert_mix(cfg: &Config, data: &Data) -> f64 {
    let db = fresh_db(Backend::Sqlite).await;
    let mut spent = Duration::ZERO;
    let mut last: Option<String> = None;
    for (i, row) in data.rows[..cfg.writes].iter().enumerate() {
        let (row, order) = (
            row.clone(),
            mixed_order_at(i).then(|| last.clone()).flatten(),
        );
        if order.is_none() {
            last = Some(row.id.clone());
        }
        let t = Instant::now();
        db.pool
            .transaction(move |conn| -> Result<(), DbError> {
                let Some(customer) = order else {
                    exec_row(conn, INSERT, &row)?;
                    return Ok(());
                };
                let AnyConnection::Sqlite(c) = conn else {
                    panic!("B4 runs on SQLite");
                };
                diesel::sql_query(ORDER_INSERT)
                    .bind::<Text, _>(&row.id)
                    .bind::<Text, _>("t1")
                    .bind::<Text, _>(&customer)
                    .bind::<Text, _>(format!("SO-{i}"))
                    .bind::<Text, _>(r#"[{"sku":"SKU-1","quantity":2,"unit_price_minor":1250}]"#)
                    .bind::<Timestamp, _>(row.created_at)
                    .bind::<Timestamp, _>(row.updated_at)
                    .bind::<BigInt, _>(row.sync_version)
                    .bind::<Text, _>(&row.sync_origin)
                    .execute(c)?;
                Ok(())
            })
            .await
            .expect("plain inserts");
        spent += t.elapsed();
    }
    rate(cfg.writes, spent.as_secs_f64())
}

async fn check_recorded(db: &TestDb, writes: usize) {
    let (changelog, outbox) = db
        .pool
        .run(|conn| -> Result<_, DbError> {
            Ok((
                count(conn, "SELECT COUNT(*) FROM sync_changelog"),
                count(conn, "SELECT COUNT(*) FROM sync_outbox"),
            ))
        })
        .await
        .unwrap();
    assert_eq!(changelog, writes as i64);
    // What the peers are owed follows from the changelog (ADR 0009): no row per peer.
    assert_eq!(outbox, 0);
}

/// B4 A, batch 1: `CreateCustomerAction` with the real recorder and two peers; writes/s.
async fn arm_create_recorded(cfg: &Config, data: &Data) -> f64 {
    let db = fresh_db(Backend::Sqlite).await;
    let action = CreateCustomerAction::new(db.pool.clone(), recorder());
    let mut spent = Duration::ZERO;
    for row in &data.rows[..cfg.writes] {
        let input = CreateCustomerInput {
            tenant_id: row.tenant_id.clone(),
            name: row.name.clone(),
            email: row.email.clone(),
            status: CustomerStatus::Active,
        };
        let t = Instant::now();
        action.run(input).await.expect("create");
        spent += t.elapsed();
    }
    check_recorded(&db, cfg.writes).await;
    rate(cfg.writes, spent.as_secs_f64())
}

/// B4 A, `per_tx` writes per transaction: each row stamped and inserted, then the
/// transaction's changes recorded at once, inside one `DbPool::transaction`; writes/s.
async fn arm_recorded_batched(cfg: &Config, data: &Data, per_tx: usize) -> f64 {
    let db = fresh_db(Backend::Sqlite).await;
    let recorder = recorder();
    let mut spent = Duration::ZERO;
    for chunk in data.rows[..cfg.writes].chunks(per_tx) {
        let rows = chunk.to_vec();
        let recorder = Arc::clone(&recorder);
        let t = Instant::now();
        db.pool
            .transaction(move |conn| -> Result<(), DbError> {
                // As a bulk domain action does: each row stamped and written, then the
                // transaction's changes recorded at once (`ChangeRecorder::record_local_all`).
                let mut changes = Vec::with_capacity(rows.len());
                for mut row in rows {
                    let version = recorder.stamp(None);
                    row.sync_version = version.hlc.as_i64();
                    row.sync_origin = version.origin.clone();
                    exec_row(conn, INSERT, &row)?;
                    changes.push(Change {
                        resource: customers::RESOURCE.into(),
                        entity_id: row.id.clone(),
                        kind: OpKind::Upsert,
                        version,
                        payload: CustomerPayload::from(&row).to_payload()?,
                    });
                }
                recorder.record_local_all(conn, &changes)
            })
            .await
            .expect("recorded writes");
        spent += t.elapsed();
    }
    check_recorded(&db, cfg.writes).await;
    rate(cfg.writes, spent.as_secs_f64())
}

/// B4 B: the same customer rows by a plain SQL insert, `per_tx` per transaction; writes/s.
async fn arm_plain_insert(cfg: &Config, data: &Data, per_tx: usize) -> f64 {
    let db = fresh_db(Backend::Sqlite).await;
    let mut spent = Duration::ZERO;
    for chunk in data.rows[..cfg.writes].chunks(per_tx) {
        let rows = chunk.to_vec();
        let t = Instant::now();
        db.pool
            .transaction(move |conn| -> Result<(), DbError> {
                for row in &rows {
                    exec_row(conn, INSERT, row)?;
                }
                Ok(())
            })
            .await
            .expect("plain inserts");
        spent += t.elapsed();
    }
    rate(cfg.writes, spent.as_secs_f64())
}

/// B4's bound: what the outbox pattern cannot avoid — each row by the plain insert of B, and its
/// changelog entry (the payload text made beforehand, seqs counted here: no clock, no sequence
/// row, no recorder) by a plain insert too, `per_tx` of each per transaction; writes/s.
async fn arm_plain_insert_with_changelog(cfg: &Config, data: &Data, per_tx: usize) -> f64 {
    let db = fresh_db(Backend::Sqlite).await;
    let mut spent = Duration::ZERO;
    let mut seq = 0i64;
    for chunk in data.rows[..cfg.writes].chunks(per_tx) {
        let rows: Vec<(Customer, i64, String)> = chunk
            .iter()
            .map(|row| {
                seq += 1;
                (
                    row.clone(),
                    seq,
                    CustomerPayload::from(row).to_value().to_string(),
                )
            })
            .collect();
        let t = Instant::now();
        db.pool
            .transaction(move |conn| -> Result<(), DbError> {
                for (row, _, _) in &rows {
                    exec_row(conn, INSERT, row)?;
                }
                let AnyConnection::Sqlite(c) = conn else {
                    panic!("B4 runs on SQLite");
                };
                for (row, seq, payload) in &rows {
                    diesel::sql_query(
                        "INSERT INTO sync_changelog (resource, seq, entity_id, op, payload, hlc, \
                         origin_region, schema_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind::<Text, _>(customers::RESOURCE)
                    .bind::<BigInt, _>(*seq)
                    .bind::<Text, _>(&row.id)
                    .bind::<Text, _>("upsert")
                    .bind::<Text, _>(payload)
                    .bind::<BigInt, _>(row.sync_version)
                    .bind::<Text, _>(REGION)
                    .bind::<Integer, _>(1)
                    .bind::<Timestamp, _>(row.created_at)
                    .execute(c)?;
                }
                Ok(())
            })
            .await
            .expect("plain inserts with their changelog entries");
        spent += t.elapsed();
    }
    rate(cfg.writes, spent.as_secs_f64())
}

// ---------------------------------------------------------------------------------------------
// Results

struct Outcome {
    id: &'static str,
    what: String,
    unit: &'static str,
    /// `None`: reported without a bar of its own.
    target: Option<f64>,
    samples: Vec<(f64, f64)>,
    note: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// B5: MariaDB outbox dispatch, 4 dispatchers ÷ 1 (a fake peer answering in 20 ms)

/// The fake peer's answer time (QUALITY-BARS B5).
const FAKE_PEER_LATENCY: Duration = Duration::from_millis(20);

/// A peer that accepts every batch after `FAKE_PEER_LATENCY`; counts the ops it got.
async fn fake_peer() -> (
    String,
    Arc<std::sync::atomic::AtomicUsize>,
    actix_web::dev::ServerHandle,
) {
    let got = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let g = Arc::clone(&got);
    let server = actix_web::HttpServer::new(move || {
        let got = Arc::clone(&g);
        actix_web::App::new()
            .app_data(actix_web::web::PayloadConfig::default().limit(64 * 1024 * 1024))
            .route(
                "/sync/customers/ops",
                actix_web::web::post().to(move |body: actix_web::web::Bytes| {
                    // Counted, not parsed: the fake peer should cost the machine next to
                    // nothing, so that the dispatchers are what is measured.
                    let n = occurrences(&body, b"\"op_id\"");
                    got.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    async move {
                        tokio::time::sleep(FAKE_PEER_LATENCY).await;
                        actix_web::HttpResponse::Ok().json(json!({"applied": n}))
                    }
                }),
            )
    })
    .workers(2)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let base = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    (base, got, handle)
}

/// How often `needle` occurs in `haystack`.
fn occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

/// Dispatch `entries` outbox entries with `workers` concurrent dispatchers; entries/s. Checks
/// that the peer got every entry exactly once.
async fn arm_dispatch(entries: usize, workers: usize) -> f64 {
    let db = fresh_db(Backend::Mysql).await;
    let (peer, got, handle) = fake_peer().await;
    let mut settings = Settings {
        region_id: REGION.into(),
        ..Settings::default()
    };
    settings.database.url = db.url.clone();
    settings.broker.signing_key = Some(ship::config::Secret::new(
        ship::testing::test_signing_key_pem(),
    ));
    settings.sync.peers = vec![sync::PeerConfig::both("fast")];
    let (pool, wiring) = app::startup::prepare(&settings, StartOptions::default())
        .await
        .unwrap();
    broker::actions::RegisterRegionAction::new(pool.clone(), 90)
        .run(broker::actions::RegisterRegionInput {
            id: "fast".into(),
            base_url: peer,
            scopes: None,
        })
        .await
        .unwrap();
    // The backlog: changelog entries of this region, written directly; the peer's delivery
    // stream (made at start, at the empty head) owes them all (ADR 0009).
    let payload = r#"{"id":"x"}"#;
    let mut conn = db.pool.get().unwrap();
    for chunk in (1..=entries).collect::<Vec<_>>().chunks(1000) {
        let changes: Vec<String> = chunk
            .iter()
            .map(|seq| {
                format!(
                    "('customers',{seq},'e{seq}','upsert','{payload}',{seq},'{REGION}',1,NOW(6))"
                )
            })
            .collect();
        diesel::sql_query(format!(
            "INSERT INTO sync_changelog (resource, seq, entity_id, op, payload, hlc, origin_region, schema_version, created_at) VALUES {}",
            changes.join(",")
        ))
        .execute(&mut conn)
        .unwrap();
    }
    // As an append does: the committed head, up to which a claim may cut ranges.
    diesel::sql_query(format!(
        "UPDATE sync_sequences SET last_seq = {entries} WHERE resource = 'customers'"
    ))
    .execute(&mut conn)
    .unwrap();
    drop(conn);
    let actions: Vec<_> = (0..workers)
        .map(|_| Arc::new(wiring.dispatch_action(&pool, &settings).unwrap()))
        .collect();
    let t = Instant::now();
    let runs: Vec<_> = actions
        .into_iter()
        .enumerate()
        .map(|(i, action)| {
            tokio::spawn(async move {
                loop {
                    let pass = action.run(format!("w{i}")).await.unwrap();
                    if pass.claimed == 0 {
                        break;
                    }
                }
            })
        })
        .collect();
    for run in runs {
        run.await.unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    let delivered = count(
        &mut db.pool.get().unwrap(),
        "SELECT delivered_through FROM sync_delivery WHERE peer = 'fast' AND resource = 'customers'",
    );
    assert_eq!(delivered as usize, entries, "B5: every entry delivered");
    assert_eq!(
        count(
            &mut db.pool.get().unwrap(),
            "SELECT COUNT(*) FROM sync_delivery_ranges"
        ),
        0,
        "B5: no range left"
    );
    assert_eq!(
        got.load(std::sync::atomic::Ordering::Relaxed),
        entries,
        "B5: every entry sent exactly once"
    );
    handle.stop(true).await;
    rate(entries, secs)
}

// ---------------------------------------------------------------------------------------------
// B6: end-to-end lag between two regions on loopback (push; pulls an hour apart)

struct LagResult {
    max_rate: f64,
    rate: f64,
    writes: usize,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// Answers other than 201, and writes that never arrived.
    errors: usize,
    /// Resident memory of this process (both regions) after the first tenth, at half-time
    /// and at the end. Caches (SQLite's page cache, 2 MiB per pooled connection) fill during
    /// the first half; flat means the second half adds next to nothing.
    rss_early_kib: u64,
    rss_mid_kib: u64,
    rss_end_kib: u64,
    /// At every tenth of the run.
    rss_tenths_kib: Vec<u64>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Resident memory of this process, KiB (Linux `/proc/self/status`).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A region with its scheduler in this process (`serve --with-scheduler`).
async fn start_with_scheduler(settings: &Settings) -> (String, actix_web::dev::ServerHandle) {
    let app = Application::build(settings, StartOptions::default())
        .await
        .expect("the region starts");
    let kernel = app::console_kernel::kernel(settings, app.pool(), app.wiring(), app.public_url())
        .expect("the kernel");
    let base = format!("http://127.0.0.1:{}", app.port());
    let app = app.with_scheduler(kernel);
    let handle = app.handle();
    tokio::spawn(app.run_until(std::future::pending()));
    (base, handle)
}

/// The changelog entries that originated in `origin` on `db` (batch rows' expanded).
fn changes_of(db: &TestDb, origin: &str) -> Vec<sync::models::ChangeLogEntry> {
    diesel::sql_query(format!(
        "SELECT * FROM sync_changelog WHERE origin_region = '{origin}'"
    ))
    .load::<sync::models::ChangeLogRow>(&mut db.pool.get().unwrap())
    .unwrap()
    .into_iter()
    .flat_map(|row| row.entries().unwrap())
    .collect()
}

/// How many changes that originated in `origin` the region on `db` holds: entries, not rows
/// (a batch row holds `seq - first_seq + 1`, ADR 0026).
fn change_count(db: &TestDb, origin: &str) -> usize {
    let mut conn = db.pool.get().unwrap();
    let int = match &*conn {
        AnyConnection::Mysql(_) => "SIGNED",
        _ => "BIGINT",
    };
    count(
        &mut conn,
        &format!(
            "SELECT CAST(COALESCE(SUM(seq - COALESCE(first_seq, seq) + 1), 0) AS {int}) \
             FROM sync_changelog WHERE origin_region = '{origin}'"
        ),
    ) as usize
}

/// (entity id, changelog time) of every change that originated in `origin`.
fn change_times(
    db: &TestDb,
    origin: &str,
) -> std::collections::HashMap<String, chrono::NaiveDateTime> {
    changes_of(db, origin)
        .into_iter()
        .map(|e| (e.entity_id, e.created_at))
        .collect()
}

/// Two regions on loopback, SQLite, each running its scheduler in this process: eu-west (the
/// broker) pushes its writes to us-east at once; pulls are an hour apart (push is measured).
struct Pair {
    a_base: String,
    db_a: TestDb,
    db_b: TestDb,
    a: actix_web::dev::ServerHandle,
    b: Option<actix_web::dev::ServerHandle>,
    b_settings: Settings,
    client: reqwest::Client,
    /// Writes a mix (B7m): every third write an order of the customer written before it.
    mix: bool,
    last_customer: std::sync::Mutex<Option<String>>,
}

impl Pair {
    async fn start() -> Pair {
        Self::start_on(Backend::Sqlite).await
    }

    /// The two regions, each on a fresh database of `backend`.
    async fn start_on(backend: Backend) -> Pair {
        let (db_a, db_b) = (fresh_db(backend).await, fresh_db(backend).await);
        let key = ship::config::Secret::new(ship::testing::test_signing_key_pem());
        let b_port = free_port();
        let mut a = Settings {
            region_id: REGION.into(),
            ..Settings::default()
        };
        a.database.url = db_a.url.clone();
        a.http.bind = "127.0.0.1:0".into();
        a.broker.signing_key = Some(key.clone());
        a.sync.peers = vec![sync::PeerConfig::both(ORIGIN)];
        a.sync.pull_interval_secs = 3600;
        // After a partition the sender tries again within a second, however long the partition
        // (building B9m's backlog on MariaDB outlasts 30 one-second attempts: the first ranges
        // would be dead letters, and the drain would never end).
        a.sync.retry_max_secs = 1;
        a.sync.max_attempts = 1_000_000;
        let (a_base, a_handle) = start_with_scheduler(&a).await;
        let credential = broker::actions::RegisterRegionAction::new(db_a.pool.clone(), 90)
            .run(broker::actions::RegisterRegionInput {
                id: ORIGIN.into(),
                base_url: format!("http://127.0.0.1:{b_port}"),
                scopes: None,
            })
            .await
            .unwrap()
            .credential;
        let mut b = Settings {
            region_id: ORIGIN.into(),
            ..Settings::default()
        };
        b.database.url = db_b.url.clone();
        b.http.bind = format!("127.0.0.1:{b_port}");
        b.broker.enabled = false;
        b.broker.url = Some(a_base.clone());
        b.broker.credential = Some(ship::config::Secret::new(credential));
        b.sync.pull_interval_secs = 3600;
        let (_, b_handle) = start_with_scheduler(&b).await;
        Pair {
            a_base,
            db_a,
            db_b,
            a: a_handle,
            b: Some(b_handle),
            b_settings: b,
            client: reqwest::Client::new(),
            mix: false,
            last_customer: std::sync::Mutex::new(None),
        }
    }

    /// The pair writing a mix of customers and orders (`create`).
    fn mixed(mut self) -> Pair {
        self.mix = true;
        self
    }

    /// Create one customer at eu-west through its API: its id, or what went wrong.
    async fn create(&self, i: usize) -> Result<String, String> {
        let customer = match self.last_customer.lock() {
            Ok(last) => last.clone().filter(|_| self.mix && mixed_order_at(i)),
            Err(_) => None,
        };
        let request = match &customer {
            Some(customer) => self
                .client
                .post(format!("{}/api/v1/orders", self.a_base))
                .json(&json!({
                    "tenant_id": "t1", "customer_id": customer, "number": format!("SO-{i}"),
                    "currency": "EUR", "lines": [{"sku": "SKU-1", "quantity": 2, "unit_price_minor": 1250}],
                })),
            None => self
                .client
                .post(format!("{}/api/v1/customers", self.a_base))
                .json(&json!({"tenant_id": "t1", "name": format!("w {i}"), "email": "x@example.com"})),
        };
        let res = request.send().await.map_err(|e| e.to_string())?;
        if res.status().as_u16() != 201 {
            return Err(format!("HTTP {}", res.status()));
        }
        let body: Value = res.json().await.map_err(|e| e.to_string())?;
        let id = body["id"].as_str().unwrap_or_default().to_string();
        if customer.is_none() {
            if let Ok(mut last) = self.last_customer.lock() {
                *last = Some(id.clone());
            }
        }
        Ok(id)
    }

    /// The maximum sequential write rate through the API over `secs`; writes made.
    async fn max_rate(&self, secs: u64, first: usize) -> (f64, usize) {
        let t = Instant::now();
        let mut n = 0;
        while t.elapsed() < Duration::from_secs(secs) {
            self.create(first + n).await.expect("probe write");
            n += 1;
        }
        (rate(n, t.elapsed().as_secs_f64()), n)
    }

    /// Wait until us-east holds `total` changes from eu-west; how long it took.
    async fn arrived(&self, total: usize, within: Duration) -> Option<Duration> {
        let t = Instant::now();
        while change_count(&self.db_b, REGION) < total {
            if t.elapsed() > within {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(t.elapsed())
    }

    async fn stop(self) {
        self.a.stop(true).await;
        if let Some(b) = self.b {
            b.stop(true).await;
        }
    }
}

/// A UUID's 128 bits (0 for anything else).
fn uuid_number(id: &str) -> u128 {
    u128::from_str_radix(&id.replace('-', ""), 16).unwrap_or(0)
}

/// B6 and the sustained-load run: writes through eu-west's API at half its measured maximum
/// for `secs`; each write's lag is its changelog time at us-east minus at eu-west (one
/// machine, one clock). Memory is read after the first tenth and at the end.
async fn lag_b6(secs: u64) -> LagResult {
    let pair = Pair::start().await;
    let (max_rate, probe) = pair.max_rate(2, 0).await;
    let rate_half = max_rate / 2.0;
    let gap = Duration::from_secs_f64(1.0 / rate_half);
    let writes = (rate_half * secs as f64) as usize;
    let started = Instant::now();
    // Ids as 128-bit numbers, allocated up front: the run's own bookkeeping must not show up
    // as growth in the memory figures.
    let mut paced: Vec<u128> = Vec::with_capacity(writes);
    let mut errors = 0;
    let mut rss_early_kib = 0;
    let mut rss_mid_kib = 0;
    let mut rss_tenths_kib = Vec::new();
    for i in 0..writes {
        let due = started + gap * i as u32;
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        match pair.create(probe + i).await {
            Ok(id) => paced.push(uuid_number(&id)),
            Err(_) => errors += 1,
        }
        if i == writes / 10 {
            rss_early_kib = rss_kib();
        }
        if i == writes / 2 {
            rss_mid_kib = rss_kib();
        }
        if i % (writes / 10).max(1) == 0 {
            rss_tenths_kib.push(rss_kib());
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Memory at the end of the load, before the lag computation allocates its own maps.
    let rss_end_kib = rss_kib();
    let total = probe + paced.len();
    let retried = count(
        &mut pair.db_a.pool.get().unwrap(),
        "SELECT COUNT(*) FROM sync_delivery_ranges WHERE attempts > 0 OR last_error IS NOT NULL",
    );
    if retried > 0 {
        #[derive(QueryableByName)]
        struct Why {
            #[diesel(sql_type = Nullable<Text>)]
            last_error: Option<String>,
        }
        let why: Vec<Why> = diesel::sql_query(
            "SELECT DISTINCT last_error FROM sync_delivery_ranges WHERE last_error IS NOT NULL LIMIT 5",
        )
        .load(&mut pair.db_a.pool.get().unwrap())
        .unwrap();
        println!(
            "  B6    {retried} ranges were not delivered at the first attempt: {:?}",
            why.into_iter().map(|w| w.last_error).collect::<Vec<_>>()
        );
    }
    if pair
        .arrived(total, Duration::from_secs(120))
        .await
        .is_none()
    {
        errors += total.saturating_sub(change_count(&pair.db_b, REGION));
    }
    let (sent, got) = (
        change_times(&pair.db_a, REGION),
        change_times(&pair.db_b, REGION),
    );
    // Only the paced writes count (the probe ran at full speed).
    let by_number = |times: std::collections::HashMap<String, chrono::NaiveDateTime>| {
        times
            .into_iter()
            .map(|(id, t)| (uuid_number(&id), t))
            .collect::<std::collections::HashMap<u128, chrono::NaiveDateTime>>()
    };
    let (sent, got) = (by_number(sent), by_number(got));
    let mut lags: Vec<f64> = paced
        .iter()
        .filter_map(|id| Some((*got.get(id)? - *sent.get(id)?).num_microseconds()? as f64 / 1000.0))
        .collect();
    lags.sort_by(f64::total_cmp);
    let pick = |q: f64| lags[((lags.len() - 1) as f64 * q).round() as usize];
    let result = LagResult {
        max_rate,
        rate: rate_half,
        writes,
        secs: elapsed,
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
        max_ms: pick(1.0),
        errors,
        rss_early_kib,
        rss_mid_kib,
        rss_end_kib,
        rss_tenths_kib,
    };
    pair.stop().await;
    result
}

/// The local write rate of a region that replicates to nobody: sequential creates through
/// its API for `secs` (B7's denominator; with `mix`, every third an order), writes/s.
async fn standalone_rate(secs: u64, mix: bool) -> f64 {
    let db = fresh_db(Backend::Sqlite).await;
    let mut settings = Settings {
        region_id: REGION.into(),
        ..Settings::default()
    };
    settings.database.url = db.url.clone();
    settings.http.bind = "127.0.0.1:0".into();
    settings.broker.signing_key = Some(ship::config::Secret::new(
        ship::testing::test_signing_key_pem(),
    ));
    let (base, handle) = start_with_scheduler(&settings).await;
    let client = reqwest::Client::new();
    let t = Instant::now();
    let mut n = 0;
    let mut last: Option<String> = None;
    while t.elapsed() < Duration::from_secs(secs) {
        let request = match last.as_deref().filter(|_| mix && mixed_order_at(n)) {
            Some(customer) => client.post(format!("{base}/api/v1/orders")).json(&json!({
                "tenant_id": "t1", "customer_id": customer, "number": format!("SO-{n}"),
                "currency": "EUR", "lines": [{"sku": "SKU-1", "quantity": 2, "unit_price_minor": 1250}],
            })),
            None => client
                .post(format!("{base}/api/v1/customers"))
                .json(&json!({"tenant_id": "t1", "name": format!("w {n}"), "email": "x@example.com"})),
        };
        let ordered = mix && mixed_order_at(n) && last.is_some();
        let res = request.send().await.expect("standalone write");
        assert_eq!(res.status().as_u16(), 201);
        if !ordered {
            let body: Value = res.json().await.expect("the created row");
            last = body["id"].as_str().map(str::to_string);
        }
        n += 1;
    }
    let local = rate(n, t.elapsed().as_secs_f64());
    handle.stop(true).await;
    local
}

/// The write rate through the API of a region whose one peer is down: the changelog and the
/// outbox are written, nothing is sent (how B7's gap splits between recording and sending).
async fn peer_down_rate(secs: u64) -> f64 {
    let mut pair = Pair::start().await;
    if let Some(b) = pair.b.take() {
        b.stop(true).await;
    }
    let (rate, _) = pair.max_rate(secs, 0).await;
    pair.stop().await;
    rate
}

/// B7: offer the maximum write rate for `secs` at a region that pushes to a peer, stop, time
/// the catch-up C; the replicated rate N/(T+C), the offered rate N/T (writes/s) and C.
async fn sustainable_b7(secs: u64, mix: bool) -> (f64, f64, f64) {
    let pair = Pair::start().await;
    let pair = if mix { pair.mixed() } else { pair };
    let (_, probe) = pair.max_rate(1, 0).await;
    pair.arrived(probe, Duration::from_secs(60))
        .await
        .expect("B7: the probe arrived");
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed() < Duration::from_secs(secs) {
        pair.create(probe + n).await.expect("B7 write");
        n += 1;
    }
    let offered = t.elapsed();
    let catch_up = pair
        .arrived(probe + n, Duration::from_secs(600))
        .await
        .expect("B7: every write arrived");
    pair.stop().await;
    let total = (offered + catch_up).as_secs_f64();
    (
        rate(n, total),
        rate(n, offered.as_secs_f64()),
        catch_up.as_secs_f64(),
    )
}

/// B9: us-east is down while eu-west takes `backlog` writes (recorded as the API would, in
/// batches of 500); then us-east comes back: the drain rate, changes/s.
async fn drain_b9(backlog: usize, backend: Backend) -> f64 {
    let mut pair = Pair::start_on(backend).await;
    if let Some(b) = pair.b.take() {
        b.stop(true).await;
    }
    let recorder = Arc::new(SyncChangeRecorder::new(
        REGION,
        Arc::new(HybridClock::new(DRIFT)),
        vec![ORIGIN.to_string()],
        [(customers::RESOURCE.to_string(), 1)],
    ));
    let template = Customer {
        id: String::new(),
        tenant_id: "t1".into(),
        name: "backlog".into(),
        email: "x@example.com".into(),
        status: "active".into(),
        created_at: chrono::Utc::now().naive_utc(),
        updated_at: chrono::Utc::now().naive_utc(),
        sync_version: 0,
        sync_origin: String::new(),
        deleted_at: None,
    };
    for start in (0..backlog).step_by(500) {
        let (recorder, template) = (Arc::clone(&recorder), template.clone());
        let end = (start + 500).min(backlog);
        pair.db_a
            .pool
            .transaction(move |conn| -> Result<(), DbError> {
                for i in start..end {
                    let version = recorder.stamp(None);
                    let row = Customer {
                        id: format!("01939d2e-0000-7000-8000-{i:012}"),
                        sync_version: version.hlc.as_i64(),
                        sync_origin: version.origin.clone(),
                        ..template.clone()
                    };
                    exec_row(conn, INSERT, &row)?;
                    recorder.record_local(
                        conn,
                        &Change {
                            resource: customers::RESOURCE.into(),
                            entity_id: row.id.clone(),
                            kind: OpKind::Upsert,
                            version,
                            payload: CustomerPayload::from(&row).to_payload()?,
                        },
                    )?;
                }
                Ok(())
            })
            .await
            .expect("backlog");
    }
    let t = Instant::now();
    let (_, b) = start_with_scheduler(&pair.b_settings).await;
    pair.b = Some(b);
    let took = pair
        .arrived(backlog, Duration::from_secs(900))
        .await
        .expect("B9: the backlog drained");
    pair.stop().await;
    rate(backlog, took.max(t.elapsed()).as_secs_f64())
}

/// A region joining `source` (served at `base`): its wiring and pool, with `source` registered.
async fn joiner(base: &str) -> (TestDb, ship::DbPool, app::wiring::Wiring, Settings) {
    let db = fresh_db(Backend::Sqlite).await;
    let mut settings = Settings {
        region_id: "ap-south".into(),
        ..Settings::default()
    };
    settings.database.url = db.url.clone();
    settings.broker.signing_key = Some(ship::config::Secret::new(
        ship::testing::test_signing_key_pem(),
    ));
    settings.sync.peers = vec![sync::PeerConfig::both(REGION)];
    let (pool, wiring) = app::startup::prepare(&settings, StartOptions::default())
        .await
        .expect("the joining region prepares");
    broker::actions::RegisterRegionAction::new(pool.clone(), 90)
        .run(broker::actions::RegisterRegionInput {
            id: REGION.into(),
            base_url: base.into(),
            scopes: None,
        })
        .await
        .expect("the source region is registered");
    (db, pool, wiring, settings)
}

/// B10 A: a fresh region bootstraps the filled region's snapshot over HTTP (pages of 1 000,
/// applied by LWW like ops); rows per second.
async fn arm_bootstrap(cfg: &Config, data: &Data) -> f64 {
    let source = filled_db(cfg, data).await;
    let region = Region::start(&source, cfg.batch).await;
    let (_db, pool, wiring, settings) = joiner(&region.base).await;
    let action = wiring
        .bootstrap_action(&pool, &settings)
        .expect("bootstrap action");
    let t = Instant::now();
    let done = action
        .run(sync::actions::BootstrapInput {
            peer: REGION.into(),
            resource: customers::RESOURCE.into(),
            page_limit: PAGE as u32,
            max_pages: u32::MAX,
            auto: false,
        })
        .await
        .expect("the bootstrap runs");
    let secs = t.elapsed().as_secs_f64();
    region.stop().await;
    assert!(done.done && done.applied as i64 == done.rows, "{done:?}");
    rate(done.rows as usize, secs)
}

/// B11: verify of two identical regions (bytes of the digest answers ÷ bytes of the snapshot),
/// then of the same with `differ` rows changed behind the service's back at the joiner (must
/// find exactly those). (ratio, found, rows).
async fn verify_b11(cfg: &Config, data: &Data, differ: usize) -> (f64, usize, i64) {
    let source = filled_db(cfg, data).await;
    let region = Region::start(&source, cfg.batch).await;
    let (db, pool, wiring, settings) = joiner(&region.base).await;
    let done = wiring
        .bootstrap_action(&pool, &settings)
        .expect("bootstrap action")
        .run(sync::actions::BootstrapInput {
            peer: REGION.into(),
            resource: customers::RESOURCE.into(),
            page_limit: PAGE as u32,
            max_pages: u32::MAX,
            auto: false,
        })
        .await
        .expect("the bootstrap runs");
    // The snapshot's size: every page, as served.
    let mut snapshot_bytes = 0usize;
    let mut after = String::new();
    loop {
        let url = format!(
            "{}/sync/customers/snapshot?limit={PAGE}{after}",
            region.base
        );
        let res = region
            .client
            .get(&url)
            .bearer_auth(&region.token)
            .send()
            .await
            .expect("GET snapshot");
        let body = res.bytes().await.expect("a snapshot page");
        snapshot_bytes += body.len();
        let page: Value = serde_json::from_slice(&body).expect("JSON");
        match page["next_cursor"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    let verify = wiring
        .verify_action(&pool, &settings)
        .expect("verify action");
    let input = || sync::actions::VerifyInput {
        peer: REGION.into(),
        resource: customers::RESOURCE.into(),
    };
    let same = verify.run(input()).await.expect("verify runs");
    assert!(same.differing.is_empty(), "identical regions: {same:?}");
    let ratio = same.bytes as f64 / snapshot_bytes as f64;
    let ids: Vec<String> = {
        let mut conn = db.pool.get().expect("conn");
        diesel::sql_query(format!(
            "SELECT id FROM customers ORDER BY id LIMIT {differ}"
        ))
        .load::<IdRow>(&mut conn)
        .expect("ids")
        .into_iter()
        .map(|r| r.id)
        .collect()
    };
    {
        let mut conn = db.pool.get().expect("conn");
        for id in &ids {
            diesel::sql_query(format!(
                "UPDATE customers SET name = 'changed by hand' WHERE id = '{id}'"
            ))
            .execute(&mut conn)
            .expect("update");
        }
    }
    let diff = verify.run(input()).await.expect("verify runs");
    let mut found: Vec<String> = diff.differing.into_iter().map(|d| d.entity_id).collect();
    found.sort();
    let exact = found == ids;
    region.stop().await;
    (
        ratio,
        if exact { found.len() } else { usize::MAX },
        done.rows,
    )
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    id: String,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl Outcome {
    fn ratios(&self) -> Vec<f64> {
        self.samples.iter().map(|(a, b)| a / b).collect()
    }
    fn median_ratio(&self) -> f64 {
        median(self.ratios())
    }
    fn min_ratio(&self) -> f64 {
        self.ratios().into_iter().fold(f64::INFINITY, f64::min)
    }
    fn rate_a(&self) -> f64 {
        median(self.samples.iter().map(|s| s.0).collect())
    }
    fn rate_b(&self) -> f64 {
        median(self.samples.iter().map(|s| s.1).collect())
    }
    fn met(&self) -> Option<bool> {
        self.target.map(|t| self.median_ratio() >= t)
    }
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "what": self.what,
            "unit": self.unit,
            "target": self.target,
            "median_ratio": self.median_ratio(),
            "min_ratio": self.min_ratio(),
            "median_rate_a": self.rate_a(),
            "median_rate_b": self.rate_b(),
            "met": self.met(),
            "pairs": self.samples.iter().map(|(a, b)| json!({"rate_a": a, "rate_b": b, "ratio": a / b})).collect::<Vec<_>>(),
            "note": self.note,
        })
    }
}

fn print_table(outcomes: &[Outcome], skipped: &[String]) {
    println!();
    println!(
        "| id     | {:<80} | median | min   | target | A rate             | B rate             | met |",
        "what (A ÷ B)"
    );
    println!(
        "|--------|{}|--------|-------|--------|--------------------|--------------------|-----|",
        "-".repeat(82)
    );
    for o in outcomes {
        println!(
            "| {:<6} | {:<80} | {:>6.3} | {:>5.3} | {:<6} | {:>9.0} {:<8} | {:>9.0} {:<8} | {:<3} |",
            o.id,
            o.what,
            o.median_ratio(),
            o.min_ratio(),
            o.target.map_or("—".to_string(), |t| format!("≥ {t}")),
            o.rate_a(),
            o.unit,
            o.rate_b(),
            o.unit,
            match o.met() {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "—",
            }
        );
    }
    for o in outcomes {
        if let Some(note) = &o.note {
            println!("{}: {note}", o.id);
        }
    }
    for s in skipped {
        println!("{s}");
    }
}

/// The MariaDB server's settings the figures depend on (OPERATIONS.md, "MariaDB settings"),
/// as the server reports them, printed beside the figures (issue 14.5).
async fn mysql_settings() -> String {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        settings: String,
    }
    let db = fresh_db(Backend::Mysql).await;
    let mut conn = db.pool.get().expect("a MariaDB connection");
    let query = "SELECT CONCAT_WS(', ', CONCAT('version=', @@version), \
        CONCAT('innodb_flush_log_at_trx_commit=', @@innodb_flush_log_at_trx_commit), \
        CONCAT('log_bin=', @@log_bin), CONCAT('sync_binlog=', @@sync_binlog), \
        CONCAT('transaction_isolation=', @@session.tx_isolation, ' (session; server ', @@global.tx_isolation, ')'), \
        CONCAT('innodb_lock_wait_timeout=', @@session.innodb_lock_wait_timeout), \
        CONCAT('innodb_buffer_pool_size=', @@innodb_buffer_pool_size DIV 1048576, ' MiB')) AS settings";
    match &mut *conn {
        AnyConnection::Mysql(c) => diesel::sql_query(query)
            .get_result::<Row>(c)
            .map(|r| r.settings)
            .unwrap_or_else(|e| format!("unknown ({e})")),
        AnyConnection::Sqlite(_) | AnyConnection::Pg(_) => "not MariaDB".into(),
    }
}

/// The PostgreSQL server's settings the figures depend on, as the server reports them, printed
/// beside the figures like MariaDB's.
async fn pg_settings() -> String {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        settings: String,
    }
    let db = fresh_db(Backend::Postgres).await;
    let mut conn = db.pool.get().expect("a PostgreSQL connection");
    let query = "SELECT concat_ws(', ', 'version=' || current_setting('server_version'), \
        'synchronous_commit=' || current_setting('synchronous_commit'), \
        'fsync=' || current_setting('fsync'), \
        'wal_level=' || current_setting('wal_level'), \
        'default_transaction_isolation=' || current_setting('default_transaction_isolation'), \
        'shared_buffers=' || current_setting('shared_buffers')) AS settings";
    match &mut *conn {
        AnyConnection::Pg(c) => diesel::sql_query(query)
            .get_result::<Row>(c)
            .map(|r| r.settings)
            .unwrap_or_else(|e| format!("unknown ({e})")),
        AnyConnection::Sqlite(_) | AnyConnection::Mysql(_) => "not PostgreSQL".into(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cfg = config();
    let started = Instant::now();
    let data = generate(&cfg);
    let mysql = ship::testing::mysql_server_url().is_some();
    let pg = ship::testing::pg_server_url().is_some();
    println!(
        "regionsync bench: ops={} batch={} ({} batches) writes={} pairs={} (+1 warm-up) seed={:#x}; \
         payload {:.0} B, op {:.0} B JSON on average; MariaDB {}; PostgreSQL {}",
        cfg.ops,
        cfg.batch,
        data.batches.len(),
        cfg.writes,
        cfg.pairs,
        cfg.seed,
        data.payload_bytes,
        data.op_bytes,
        if mysql { "configured (B8, B8' run)" } else { "not configured" },
        if pg { "configured (B8p, B8p' run)" } else { "not configured" }
    );
    if mysql {
        println!("MariaDB server: {}", mysql_settings().await);
    }
    if pg && (cfg.wants("B8p") || cfg.wants("B8p'")) {
        println!("PostgreSQL server: {}", pg_settings().await);
    }
    let mut outcomes = Vec::new();
    let mut skipped = Vec::new();
    let (c, d) = (&cfg, &data);

    if cfg.wants("B1") {
        let samples = interleave(
            c,
            "B1",
            || arm_http_apply(Backend::Sqlite, c, d),
            || arm_inproc_apply(Backend::Sqlite, c, d),
        )
        .await;
        outcomes.push(Outcome {
            id: "B1",
            what: format!(
                "SQLite: HTTP POST /sync/customers/ops ÷ ApplyOpsAction in-process, batch {}",
                cfg.batch
            ),
            unit: "ops/s",
            target: Some(0.75),
            samples,
            note: None,
        });
    }
    if cfg.wants("B1'") {
        let samples = interleave(
            c,
            "B1'",
            || arm_inproc_apply(Backend::Sqlite, c, d),
            || arm_bare_upsert(c, d),
        )
        .await;
        outcomes.push(Outcome {
            id: "B1'",
            what: format!(
                "SQLite: ApplyOpsAction in-process ÷ bare LWW upsert, 1 tx/batch {}",
                cfg.batch
            ),
            unit: "ops/s",
            target: Some(0.5),
            samples,
            note: None,
        });
    }
    if cfg.wants("B2") {
        let mut samples = Vec::new();
        let mut all_unchanged = true;
        let mut last_state = None;
        for pair in 0..=cfg.pairs {
            let (again, first, state, unchanged) = pair_redelivery(c, d).await;
            all_unchanged &= unchanged;
            println!(
                "  B2    {:<8} A {again:>12.0}/s  B {first:>12.0}/s  ratio {:.3}  side effects: {}",
                if pair == 0 {
                    "warm-up".into()
                } else {
                    format!("pair {pair}")
                },
                again / first,
                if unchanged { "none" } else { "CHANGED" }
            );
            if pair > 0 {
                samples.push((again, first));
            }
            last_state = Some(state);
        }
        let state = last_state.expect("at least one pair");
        outcomes.push(Outcome {
            id: "B2",
            what: format!(
                "SQLite: re-delivery ÷ first delivery, in-process ApplyOpsAction, batch {}",
                cfg.batch
            ),
            unit: "ops/s",
            target: Some(2.0),
            samples,
            note: Some(format!(
                "side effects of re-delivery: {} (every pair: changelog {} entries, conflicts {}, outbox {}, \
                 high watermark {}, digest {}… equal before and after)",
                if all_unchanged { "none" } else { "FOUND" },
                state.changelog,
                state.conflicts,
                state.outbox,
                state.high_watermark,
                &state.digest[..16.min(state.digest.len())]
            )),
        });
        assert!(all_unchanged, "B2: re-delivery changed the database");
    }
    if cfg.wants("B3") {
        let samples = interleave(
            c,
            "B3",
            || arm_http_feed(c, d, FeedClient::Typed, false),
            || arm_raw_select(c, d),
        )
        .await;
        outcomes.push(Outcome {
            id: "B3",
            what: format!(
                "SQLite: GET /sync/customers/changes paged (limit {PAGE}), typed client ÷ raw SELECT"
            ),
            unit: "rows/s",
            target: Some(0.5),
            samples,
            note: None,
        });
        let samples = interleave(
            c,
            "B3v",
            || arm_http_feed(c, d, FeedClient::Dom, false),
            || arm_raw_select(c, d),
        )
        .await;
        outcomes.push(Outcome {
            id: "B3v",
            what: "SQLite: the same feed, the client building a serde_json::Value per page ÷ raw SELECT"
                .to_string(),
            unit: "rows/s",
            target: None,
            samples,
            note: Some("no bar: B3 with the client's DOM counted (how B3 was measured before session 8)".into()),
        });
        let samples = interleave(
            c,
            "B3r",
            || arm_http_feed(c, d, FeedClient::Typed, true),
            || arm_raw_select(c, d),
        )
        .await;
        outcomes.push(Outcome {
            id: "B3r",
            what: "SQLite: B3's feed of the same entries stored as batch rows (ADR 0026) ÷ raw SELECT of them as rows"
                .to_string(),
            unit: "rows/s",
            target: None,
            samples,
            note: Some("no bar: what expanding batch rows costs the feed beside B3".into()),
        });
    }
    if cfg.wants("B14") {
        let (feed_gz, feed_plain, ops_gz, ops_plain) = wire_bytes_b14(c, d).await;
        let (feed, ops) = (
            feed_gz as f64 / feed_plain as f64,
            ops_gz as f64 / ops_plain as f64,
        );
        let verdict = |r: f64| if r <= 0.3 { "yes" } else { "NO" };
        println!(
            "  B14a  bytes on the wire, gzip ÷ plain: feed of {} customers {feed_gz} ÷ {feed_plain} = {feed:.3} (bar ≤ 0.3: {}); ops bodies {ops_gz} ÷ {ops_plain} = {ops:.3} (bar ≤ 0.3: {})",
            c.ops,
            verdict(feed),
            verdict(ops)
        );
    }
    if cfg.wants("B4") {
        let samples = interleave(
            c,
            "B4/1",
            || arm_create_recorded(c, d),
            || arm_plain_insert(c, d, 1),
        )
        .await;
        outcomes.push(Outcome {
            id: "B4/1",
            what: "SQLite batch 1: CreateCustomerAction + changelog (2 push peers) ÷ plain INSERT"
                .into(),
            unit: "writes/s",
            target: None,
            samples,
            note: Some("no bar of its own (the bar is ≥ 0.6 at 100)".into()),
        });
        let samples = interleave(
            c,
            "B4/1m",
            || arm_create_recorded_mix(c, d),
            || arm_plain_insert_mix(c, d),
        )
        .await;
        outcomes.push(Outcome {
            id: "B4/1m",
            what:
                "SQLite batch 1, 2 customers : 1 order: the create actions (the order's customer \
                   locked and checked) + changelog ÷ plain INSERTs of the same rows"
                    .into(),
            unit: "writes/s",
            target: None,
            samples,
            note: Some("no bar of its own: B4/1 with two domains".into()),
        });
        let samples = interleave(
            c,
            "B4/100",
            || arm_recorded_batched(c, d, 100),
            || arm_plain_insert(c, d, 100),
        )
        .await;
        outcomes.push(Outcome {
            id: "B4/100",
            what: "SQLite batch 100: INSERT + recorder (changelog, 2 push peers) ÷ plain INSERT"
                .into(),
            unit: "writes/s",
            target: Some(0.6),
            samples,
            note: None,
        });
        let samples = interleave(
            c,
            "B4/100b",
            || arm_plain_insert_with_changelog(c, d, 100),
            || arm_plain_insert(c, d, 100),
        )
        .await;
        outcomes.push(Outcome {
            id: "B4/100b",
            what: "SQLite batch 100: B4's bound — plain INSERT + a plain changelog INSERT ÷ plain INSERT"
                .into(),
            unit: "writes/s",
            target: None,
            samples,
            note: Some(
                "no bar: the least the changelog costs (each write's payload is written twice); \
                 B4/100 ÷ this is how near the recorder comes to it"
                    .into(),
            ),
        });
    }
    // B8 / B8' / B8'b on MariaDB, B8p / B8p' / B8p'b on PostgreSQL: the same three rows.
    let servers = [
        (
            Backend::Mysql,
            "MariaDB",
            mysql,
            "TEST_MYSQL_URL",
            ["B8", "B8'", "B8'b"],
            0.6,
        ),
        (
            Backend::Postgres,
            "PostgreSQL",
            pg,
            "TEST_PG_URL",
            ["B8p", "B8p'", "B8p'b"],
            0.75,
        ),
    ];
    for (backend, server, configured, env, [http, inproc, bound], http_bar) in servers {
        if cfg.wants(http) {
            if configured {
                let samples = interleave(
                    c,
                    http,
                    || arm_http_apply(backend, c, d),
                    || arm_inproc_apply(backend, c, d),
                )
                .await;
                outcomes.push(Outcome {
                    id: http,
                    what: format!(
                        "{server}: HTTP POST /sync/customers/ops ÷ ApplyOpsAction in-process, batch {}",
                        cfg.batch
                    ),
                    unit: "ops/s",
                    target: Some(http_bar),
                    samples,
                    note: None,
                });
            } else {
                skipped.push(format!("{http} skipped: set {env}"));
            }
        }
        if cfg.wants(inproc) {
            if configured {
                let samples = interleave(
                    c,
                    inproc,
                    || arm_inproc_apply(backend, c, d),
                    || arm_bare_upsert_server(backend, c, d),
                )
                .await;
                outcomes.push(Outcome {
                    id: inproc,
                    what: format!(
                        "{server}: ApplyOpsAction in-process ÷ bare multi-row LWW upsert, 1 tx/batch {}",
                        cfg.batch
                    ),
                    unit: "ops/s",
                    target: Some(0.5),
                    samples,
                    note: None,
                });
                let samples = interleave(
                    c,
                    bound,
                    || arm_bare_upsert_with_changelog_server(backend, c, d),
                    || arm_bare_upsert_server(backend, c, d),
                )
                .await;
                outcomes.push(Outcome {
                    id: bound,
                    what: format!(
                        "{server}: bare upsert + the batch's entries as a row each (the changelog before ADR 0026) ÷ bare upsert"
                    ),
                    unit: "ops/s",
                    target: None,
                    samples,
                    note: Some(format!(
                        "no bar: the least a row per entry costs on {server}, {inproc}'s bound before batch rows (ADR 0026)"
                    )),
                });
            } else {
                skipped.push(format!("{inproc} skipped: set {env}"));
            }
        }
    }

    if cfg.wants("B8'prep") && mysql {
        let samples = interleave(
            c,
            "B8'prep",
            || arm_inproc_apply(Backend::Mysql, c, d),
            || arm_bare_upsert_prepared(c, d),
        )
        .await;
        outcomes.push(Outcome {
            id: "B8'prep",
            what: "MariaDB: B8' against the bare upsert as a prepared statement (B8' through session 11)"
                .into(),
            unit: "ops/s",
            target: None,
            samples,
            note: Some(
                "no bar: B8' itself compares with the bare upsert sent inline, the faster; this \
                 row is the comparison the earlier sessions' B8' made"
                    .into(),
            ),
        });
    }

    if cfg.wants("B8'x") && mysql {
        let samples = interleave(
            c,
            "B8'x",
            || arm_bare_upsert_server(Backend::Mysql, c, d),
            || arm_bare_upsert_prepared(c, d),
        )
        .await;
        outcomes.push(Outcome {
            id: "B8'x",
            what: "MariaDB: bare upsert, values inline (text protocol) ÷ the same, prepared".into(),
            unit: "ops/s",
            target: None,
            samples,
            note: Some(
                "no bar: what the protocol alone changes (ADR 0019); B8' and B8'b use the inline \
                 arm, as the product does"
                    .into(),
            ),
        });
    }

    if cfg.wants("B8'c") && mysql {
        let samples = interleave(
            c,
            "B8'c",
            || arm_bare_upsert_with_chunk_server(c, d),
            || arm_bare_upsert_server(Backend::Mysql, c, d),
        )
        .await;
        outcomes.push(Outcome {
            id: "B8'c",
            what: "MariaDB: the bound of B8' — bare upsert + the batch's entries as one batch row (ADR 0026) ÷ bare upsert"
                .into(),
            unit: "ops/s",
            target: None,
            samples,
            note: Some(
                "no bar: the least the changelog costs on MariaDB (ADR 0026); B8' ÷ this is how \
                 near the apply comes to it"
                    .into(),
            ),
        });
    }

    if cfg.wants("B5") {
        if mysql {
            let entries = env_usize("BENCH_DISPATCH", 20_000);
            let samples = interleave(
                c,
                "B5",
                || arm_dispatch(entries, 4),
                || arm_dispatch(entries, 1),
            )
            .await;
            outcomes.push(Outcome {
                id: "B5",
                what: format!(
                    "MariaDB: outbox dispatch, 4 dispatchers ÷ 1 ({entries} entries, fake peer answering in 20 ms)"
                ),
                unit: "entries/s",
                target: Some(3.5),
                samples,
                note: Some("every entry delivered and received exactly once, in every arm".into()),
            });
        } else {
            skipped.push("B5 skipped: set TEST_MYSQL_URL".to_string());
        }
    }
    let lag = if cfg.wants("B6") {
        Some(lag_b6(env_usize("BENCH_LAG_SECS", 60) as u64).await)
    } else {
        None
    };
    if cfg.wants("B7") {
        let secs = env_usize("BENCH_B7_SECS", 30) as u64;
        let mut samples = Vec::new();
        for _ in 0..cfg.pairs.clamp(1, 3) {
            let local = standalone_rate(secs.div_ceil(3).max(3), false).await;
            let down = peer_down_rate(secs.div_ceil(3).max(3)).await;
            let (replicated, offered, catch_up) = sustainable_b7(secs, false).await;
            println!(
                "  B7    offered {offered:.0} writes/s for {secs} s, caught up {catch_up:.2} s later: replicated {replicated:.0}/s; without peers {local:.0}/s, with its peer down {down:.0}/s"
            );
            samples.push((replicated, local));
        }
        outcomes.push(Outcome {
            id: "B7",
            what: format!(
                "SQLite: replicated rate R·T/(T+C) at max offered load ÷ write rate without peers (T = {secs} s)"
            ),
            unit: "writes/s",
            target: Some(0.7),
            samples,
            note: None,
        });
        // Two domains (issue 15): every third write an order of the customer before it.
        let mut samples = Vec::new();
        for _ in 0..cfg.pairs.clamp(1, 3) {
            let local = standalone_rate(secs.div_ceil(3).max(3), true).await;
            let (replicated, offered, catch_up) = sustainable_b7(secs, true).await;
            println!(
                "  B7m   offered {offered:.0} writes/s for {secs} s (2 customers : 1 order), caught up {catch_up:.2} s later: replicated {replicated:.0}/s; without peers {local:.0}/s"
            );
            samples.push((replicated, local));
        }
        outcomes.push(Outcome {
            id: "B7m",
            what: format!(
                "SQLite: B7 with 2 customers : 1 order (each order names the customer before it; T = {secs} s)"
            ),
            unit: "writes/s",
            target: Some(0.7),
            samples,
            note: None,
        });
    }
    if cfg.wants("B9") {
        let backlog = env_usize("BENCH_BACKLOG", 100_000);
        let mut samples = Vec::new();
        for _ in 0..cfg.pairs.clamp(1, 3) {
            let drain = drain_b9(backlog, Backend::Sqlite).await;
            // The steady rate of B1: HTTP apply of batches of `cfg.batch` (same machine, now).
            let steady = arm_http_apply(Backend::Sqlite, c, d).await;
            println!("  B9    drained {backlog} at {drain:.0}/s; B1 steady {steady:.0} ops/s");
            samples.push((drain, steady));
        }
        outcomes.push(Outcome {
            id: "B9",
            what: format!(
                "SQLite: drain after a partition ({backlog} backlog, push) ÷ B1 steady apply rate"
            ),
            unit: "changes/s",
            target: Some(0.6),
            samples,
            note: None,
        });
    }
    if cfg.wants("B9m") {
        if mysql {
            let backlog = env_usize("BENCH_BACKLOG", 100_000);
            let mut samples = Vec::new();
            for _ in 0..cfg.pairs.clamp(1, 3) {
                let drain = drain_b9(backlog, Backend::Mysql).await;
                // The steady rate of B8 A: HTTP apply of batches of `cfg.batch` on MariaDB.
                let steady = arm_http_apply(Backend::Mysql, c, d).await;
                println!("  B9m   drained {backlog} at {drain:.0}/s; B8 steady {steady:.0} ops/s");
                samples.push((drain, steady));
            }
            outcomes.push(Outcome {
                id: "B9m",
                what: format!(
                    "MariaDB: drain after a partition ({backlog} backlog, push) ÷ B8 steady HTTP apply rate"
                ),
                unit: "changes/s",
                target: Some(0.6),
                samples,
                note: None,
            });
        } else {
            skipped.push("B9m skipped: set TEST_MYSQL_URL".to_string());
        }
    }
    if cfg.wants("B10") {
        let samples = interleave(
            c,
            "B10",
            || arm_bootstrap(c, d),
            || arm_http_apply(Backend::Sqlite, c, d),
        )
        .await;
        outcomes.push(Outcome {
            id: "B10",
            what: "SQLite: bootstrap of the snapshot over HTTP (rows/s) ÷ B1 HTTP apply (ops/s)"
                .into(),
            unit: "rows|ops/s",
            target: Some(0.8),
            samples,
            note: None,
        });
    }
    let b11 = if cfg.wants("B11") {
        Some(verify_b11(c, d, 10).await)
    } else {
        None
    };
    print_table(&outcomes, &skipped);
    if let Some((ratio, found, rows)) = b11 {
        println!(
            "B11: verify of {rows} identical rows: digest bytes ÷ snapshot bytes = {ratio:.4} (target ≤ 0.01: {}); with 10 rows changed behind the service's back it found {} (exactly those: {})",
            if ratio <= 0.01 { "met" } else { "NOT met" },
            if found == usize::MAX { "others".to_string() } else { found.to_string() },
            found == 10
        );
    }
    if let Some(l) = &lag {
        println!(
            "B6: end-to-end lag eu-west → us-east (SQLite, push, serve --with-scheduler), {} writes over {:.0} s at {:.0}/s (half the max {:.0}/s): p50 {:.1} ms, p99 {:.1} ms (target ≤ 50 ms: {}), max {:.1} ms",
            l.writes,
            l.secs,
            l.rate,
            l.max_rate,
            l.p50_ms,
            l.p99_ms,
            if l.p99_ms <= 50.0 { "met" } else { "NOT met" },
            l.max_ms
        );
        let growth = l.rss_end_kib as f64 / l.rss_mid_kib.max(1) as f64;
        println!(
            "sustained load (the B6 run): errors {} (target 0: {}), memory {} KiB after the first tenth, {} KiB at half-time, {} KiB at the end (second half {:+.1} %: {})",
            l.errors,
            if l.errors == 0 { "met" } else { "NOT met" },
            l.rss_early_kib,
            l.rss_mid_kib,
            l.rss_end_kib,
            (growth - 1.0) * 100.0,
            if growth <= 1.05 { "flat" } else { "GROWING" }
        );
        println!(
            "  memory at each tenth, MiB: {}",
            l.rss_tenths_kib
                .iter()
                .map(|k| format!("{:.0}", *k as f64 / 1024.0))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    println!(
        "sizes: ops={} batch={} writes={} pairs={}; total {:.0} s",
        cfg.ops,
        cfg.batch,
        cfg.writes,
        cfg.pairs,
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &cfg.json {
        let doc = json!({
            "sizes": {"ops": cfg.ops, "batch": cfg.batch, "writes": cfg.writes, "pairs": cfg.pairs, "seed": cfg.seed},
            "payload_bytes_avg": data.payload_bytes,
            "op_bytes_avg": data.op_bytes,
            "results": outcomes.iter().map(Outcome::to_json).collect::<Vec<_>>(),
            "skipped": skipped,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).expect("write --json");
        println!("wrote {path}");
    }
}
