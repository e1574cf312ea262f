//! The `regionsync` binary as an operator runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn regionsync(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regionsync"));
    cmd.current_dir(dir);
    // Only what the test sets: no configuration leaks in from the caller's environment.
    for (key, _) in std::env::vars() {
        if key.starts_with("REGIONSYNC_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (out, stdout, stderr)
}

/// Run `serve` against a database that cannot be reached; it must exit non-zero within 10 s
/// with a message naming the host and hiding the password.
fn assert_serve_fails_fast(url: &str, host: &str) {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (out, _, stderr) = run(regionsync(dir.path())
        .args(["serve"])
        .env("REGIONSYNC_DATABASE__URL", url)
        .env("REGIONSYNC_HTTP__BIND", "127.0.0.1:0"));
    let took = started.elapsed();
    assert!(!out.status.success(), "serve must fail: {stderr}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(stderr.contains(host), "names the host: {stderr}");
    assert!(!stderr.contains("hunter2"), "hides the password: {stderr}");
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
}

#[test]
fn serve_with_a_refused_mariadb_url_exits_at_once() {
    assert_serve_fails_fast("mysql://app:hunter2@127.0.0.1:1/rs", "127.0.0.1");
}

#[test]
fn serve_with_a_mariadb_that_never_answers_exits_within_ten_seconds() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    assert_serve_fails_fast(
        &format!("mysql://app:hunter2@127.0.0.1:{port}/rs"),
        &format!("127.0.0.1:{port}"),
    );
}

#[test]
fn serve_with_no_configuration_answers_ready_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // What `make run` runs: the web server and the scheduler in one process.
    let mut child = regionsync(dir.path())
        .args(["serve", "--with-scheduler"])
        // The only setting: a free port instead of 8080, so tests can run side by side.
        .env("REGIONSYNC_HTTP__BIND", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (rx, seen, line) = wait_for_line(&mut child, "listening on http://");
    let at = line.find("listening on http://").unwrap();
    let base = line[at + "listening on ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    let ready = http_get::blocking_get(&format!("{base}/health/ready"));
    assert_eq!(ready.0, 200, "{}", ready.1);
    assert!(ready.1.contains("\"status\":\"ready\""), "{}", ready.1);
    assert!(
        dir.path().join("data/regionsync.db").is_file(),
        "default SQLite file under ./data"
    );

    terminate(&mut child);
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("scheduler stopped")),
        "{rest:?}"
    );
    assert!(
        rest.iter()
            .any(|l| l.ends_with("stopped") || l.contains("app::cli: stopped")),
        "{rest:?}"
    );
    assert!(
        seen.iter()
            .chain(&rest)
            .any(|l| l.contains("scheduler started")),
        "{seen:?} {rest:?}"
    );
}

/// Follow `child`'s stderr until a line contains `needle` (30 s at most): the rest of its
/// lines, the lines before, and that line.
fn wait_for_line(
    child: &mut std::process::Child,
    needle: &str,
) -> (std::sync::mpsc::Receiver<String>, Vec<String>, String) {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no `{needle}` line; saw:\n{}", seen.join("\n")));
        if line.contains(needle) {
            return (rx, seen, line);
        }
        seen.push(line);
    }
}

/// SIGTERM `child` and wait (15 s at most) for it to exit 0.
fn terminate(child: &mut std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "graceful stop exits 0: {exit:?}");
}

/// `regionsync schedule work` as its own process (production's second process): SIGTERM lets
/// the running jobs finish their run (the dispatch job loops until the kernel stops), records
/// them, releases every lease and exits 0 — nothing is left `running` or leased for another
/// scheduler to wait out.
#[test]
fn schedule_work_stops_on_sigterm_finishing_its_runs_and_releasing_its_leases() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _, stderr) = run(regionsync(dir.path()).args(["migrate", "run"]));
    assert!(out.status.success(), "{stderr}");
    let mut child = regionsync(dir.path())
        .args(["schedule", "work"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (rx, _, _) = wait_for_line(&mut child, "scheduler started");
    // The dispatch job starts at once and loops (woken by writes, every second otherwise).
    std::thread::sleep(Duration::from_millis(1_500));
    terminate(&mut child);
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("scheduler stopped")),
        "{rest:?}"
    );
    use diesel::prelude::*;
    let path = dir.path().join("data/regionsync.db");
    let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    let n = |conn: &mut diesel::SqliteConnection, sql: &str| -> i64 {
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "({sql})"
        )))
        .get_result(conn)
        .unwrap()
    };
    assert_eq!(
        n(&mut conn, "SELECT COUNT(*) FROM ship_scheduler_leases"),
        0,
        "every lease released"
    );
    assert_eq!(n(&mut conn, "SELECT COUNT(*) FROM ship_scheduler_runs WHERE outcome = 'running' OR finished_at IS NULL"), 0, "every run finished");
    assert!(
        n(&mut conn, "SELECT COUNT(*) FROM ship_scheduler_runs WHERE job = 'sync.dispatch_outbox' AND outcome = 'ok'") >= 1,
        "the looping dispatch run was in flight at SIGTERM and ended ok"
    );
}

/// A tiny blocking GET without another HTTP client: (status, body).
mod http_get {
    pub fn blocking_get(url: &str) -> (u16, String) {
        let url = url.to_string();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let res = reqwest::get(&url).await.unwrap();
                let status = res.status().as_u16();
                (status, res.text().await.unwrap())
            })
        })
        .join()
        .unwrap()
    }
}

#[test]
fn config_show_layers_defaults_file_and_environment_and_redacts_secrets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("region.toml"),
        "region_id = \"eu-west\"\n[database]\nurl = \"mysql://app:hunter2@db.internal:3306/rs\"\npool_size = 4\n[http]\nbind = \"127.0.0.1:7000\"\n",
    )
    .unwrap();
    let (out, stdout, stderr) = run(regionsync(dir.path())
        .args(["--config", "region.toml", "config", "show"])
        .env("REGIONSYNC_HTTP__BIND", "0.0.0.0:9000")
        .env(
            "REGIONSYNC_BROKER__PUBLIC_URL",
            "https://eu-west.example.com",
        )
        .env("REGIONSYNC_BROKER__CREDENTIAL", "rsc_hunter3"));
    assert!(out.status.success(), "{stderr}");
    let shown: toml::Value = toml::from_str(&stdout).unwrap();
    assert_eq!(
        shown["region_id"].as_str(),
        Some("eu-west"),
        "from the file"
    );
    assert_eq!(
        shown["database"]["pool_size"].as_integer(),
        Some(4),
        "from the file"
    );
    assert_eq!(
        shown["http"]["bind"].as_str(),
        Some("0.0.0.0:9000"),
        "environment wins"
    );
    assert_eq!(shown["log"]["filter"].as_str(), Some("info"), "default");
    assert_eq!(
        shown["database"]["url"].as_str(),
        Some("mysql://app:***@db.internal:3306/rs")
    );
    assert!(!stdout.contains("hunter2"));
    assert_eq!(shown["broker"]["credential"].as_str(), Some("***"));
    assert!(!stdout.contains("hunter3"));

    // Listening on every address needs the URL peers use.
    let (out, _, stderr) = run(regionsync(dir.path())
        .args(["--config", "region.toml", "config", "show"])
        .env("REGIONSYNC_HTTP__BIND", "0.0.0.0:9000"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("broker.public_url"), "{stderr}");

    // REGIONSYNC_CONFIG names the file too.
    let (out, stdout, _) = run(regionsync(dir.path())
        .args(["config", "show"])
        .env("REGIONSYNC_CONFIG", "region.toml"));
    assert!(out.status.success());
    assert!(stdout.contains("region_id = \"eu-west\""), "{stdout}");
}

/// A mistyped database URL (`mysql//…`, no `:`) used to start the region on a new SQLite file
/// `./mysql/u:secret@…/db` and print the URL, password and all, in the "listening" line. Now
/// `serve` exits non-zero at once naming `database.url` and the right form, creates nothing,
/// and neither its message nor `config show` shows a secret.
#[test]
fn a_mistyped_database_url_is_refused_and_no_secret_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    for (i, url) in [
        "mysql//app:hunter2@127.0.0.1:3306/rs",
        "mysql:app:hunter2@127.0.0.1:3306/rs",
        "mariadb//app:hunter2@127.0.0.1:3306/rs",
        "app:hunter2@127.0.0.1:3306/rs",
    ]
    .into_iter()
    .enumerate()
    {
        let file = format!("typo{i}.toml");
        std::fs::write(
            dir.path().join(&file),
            format!("[database]\nurl = \"{url}\"\n[http]\nbind = \"127.0.0.1:0\"\n"),
        )
        .unwrap();
        for args in [
            vec!["--config", file.as_str(), "serve"],
            vec!["--config", file.as_str(), "config", "show"],
        ] {
            let started = Instant::now();
            let (out, stdout, stderr) = run(regionsync(dir.path()).args(&args));
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}{stderr}");
            assert!(started.elapsed() < Duration::from_secs(10));
            assert!(stderr.contains("database.url"), "{args:?}: {stderr}");
            assert!(
                !stderr.contains("hunter2") && !stdout.contains("hunter2"),
                "{args:?}: {stdout}{stderr}"
            );
            assert!(!stderr.contains("panicked"), "{stderr}");
            if url.contains("//") {
                let scheme = url.split("//").next().unwrap();
                assert!(
                    stderr.contains(&format!(
                        "did you mean {scheme}://app:***@127.0.0.1:3306/rs?"
                    )),
                    "{args:?}: {stderr}"
                );
            }
        }
    }
    let created: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| !name.ends_with(".toml"))
        .collect();
    assert!(
        created.is_empty(),
        "no SQLite file or directory: {created:?}"
    );

    // `config show` of a valid configuration: every password and credential is `***`.
    std::fs::write(
        dir.path().join("region.toml"),
        "[database]\nurl = \"mysql://app:hunter2@db.internal:3306/rs\"\n\
         [broker]\nurl = \"https://relay:hunter4@broker.example\"\ncredential = \"rsc_hunter3\"\n\
         [broker.peer_urls]\nus-east = \"https://u:hunter5@us.example\"\n\
         [alerts]\nwebhook_url = \"https://hooks.example.com/services/T0/hunter6\"\n",
    )
    .unwrap();
    let (out, stdout, stderr) =
        run(regionsync(dir.path()).args(["--config", "region.toml", "config", "show"]));
    assert!(out.status.success(), "{stderr}");
    for secret in ["hunter2", "hunter3", "hunter4", "hunter5", "hunter6"] {
        assert!(!stdout.contains(secret), "{secret}: {stdout}");
    }
    let shown: toml::Value = toml::from_str(&stdout).unwrap();
    assert_eq!(
        shown["database"]["url"].as_str(),
        Some("mysql://app:***@db.internal:3306/rs")
    );
    assert_eq!(shown["broker"]["credential"].as_str(), Some("***"));
    assert_eq!(
        shown["broker"]["url"].as_str(),
        Some("https://relay:***@broker.example/")
    );
}

#[test]
fn bad_configuration_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("typo.toml"), "[databse]\nurl = \"x\"\n").unwrap();
    /// (arguments, environment, what the error must mention)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["--config", "typo.toml", "config", "show"],
            vec![],
            "databse",
        ),
        (
            vec!["--config", "missing.toml", "config", "show"],
            vec![],
            "missing.toml does not exist",
        ),
        (
            vec!["config", "show"],
            vec![("REGIONSYNC_REGION_ID", "EU West")],
            "region_id",
        ),
        (
            vec!["config", "show"],
            vec![("REGIONSYNC_HTTP__BIND", "nowhere")],
            "http.bind",
        ),
        (
            vec!["config", "show"],
            vec![("REGIONSYNC_DATABASE__URL", "postgres://u@h")],
            "the PostgreSQL URL names no database",
        ),
        (
            vec!["config", "show"],
            vec![("REGIONSYNC_DATABASE__POOL_SIZE", "0")],
            "database.pool_size",
        ),
    ];
    for (args, env, expected) in cases {
        let mut cmd = regionsync(dir.path());
        cmd.args(&args);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let (out, _, stderr) = run(&mut cmd);
        assert_eq!(out.status.code(), Some(1), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{args:?} {env:?}: expected `{expected}` in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn migrate_status_run_and_revert_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = ("REGIONSYNC_DATABASE__URL", "sqlite://ops.db");
    let (out, stdout, stderr) = run(regionsync(dir.path())
        .args(["migrate", "status"])
        .env(url.0, url.1));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("pending  ") && !stdout.contains("applied  "),
        "{stdout}"
    );

    let (out, stdout, _) = run(regionsync(dir.path())
        .args(["migrate", "run"])
        .env(url.0, url.1));
    assert!(out.status.success());
    assert!(
        stdout.contains("applied  2026-11-25-000001_ship_create_instance"),
        "{stdout}"
    );

    let (_, stdout, _) = run(regionsync(dir.path())
        .args(["migrate", "status"])
        .env(url.0, url.1));
    assert!(!stdout.contains("pending  "), "{stdout}");

    let (out, stdout, _) = run(regionsync(dir.path())
        .args(["migrate", "revert", "--all"])
        .env(url.0, url.1));
    assert!(out.status.success());
    assert!(
        stdout.contains("reverted 2026-11-25-000001_ship_create_instance"),
        "{stdout}"
    );
    let (_, stdout, _) = run(regionsync(dir.path())
        .args(["migrate", "revert"])
        .env(url.0, url.1));
    assert!(stdout.contains("no migration is applied"), "{stdout}");
}

#[test]
fn sync_pull_without_peers_says_how_to_configure_them() {
    let dir = tempfile::tempdir().unwrap();
    // Before the schema exists the pull says what to run first.
    let (out, _, stderr) = run(regionsync(dir.path()).args(["sync", "pull"]));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("regionsync migrate run"), "{stderr}");
    // A lone region (its own broker, nobody registered) has nobody to pull from.
    let (out, _, stderr) = run(regionsync(dir.path()).args(["migrate", "run"]));
    assert!(out.status.success(), "{stderr}");
    let (out, _, stderr) = run(regionsync(dir.path()).args(["sync", "pull"]));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("regionsync broker regions add"), "{stderr}");
    assert!(stderr.contains("[[sync.peers]]"), "{stderr}");
}

#[test]
fn broker_commands_administer_the_registry_and_print_a_credential_once() {
    let dir = tempfile::tempdir().unwrap();
    let (out, stdout, stderr) = run(regionsync(dir.path()).args([
        "broker",
        "regions",
        "add",
        "us-east",
        "http://127.0.0.1:9",
        "--scope",
        "customers",
    ]));
    assert!(out.status.success(), "{stderr}");
    let credential = stdout
        .lines()
        .find(|l| l.starts_with("rsc_"))
        .unwrap_or_else(|| panic!("a credential line: {stdout}"))
        .to_string();
    // First use generates the signing key under the data directory, readable by the owner
    // only, and says so.
    let key = dir.path().join("data/broker-signing-key.pem");
    assert!(
        key.exists() && stderr.contains("generated the broker's Ed25519 signing key"),
        "{stderr}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    let (out, stdout, _) = run(regionsync(dir.path()).args(["broker", "regions", "list"]));
    assert!(out.status.success());
    assert!(
        stdout.contains("us-east") && stdout.contains("offline") && stdout.contains("customers"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&credential),
        "the credential is shown once: {stdout}"
    );

    let (out, _, stderr) = run(regionsync(dir.path()).args([
        "broker",
        "regions",
        "add",
        "us-east",
        "http://x.example",
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("already registered"), "{stderr}");

    let place = |tenant: &str, region: &str| {
        run(regionsync(dir.path()).args(["broker", "tenants", "place", tenant, region]))
    };
    let (out, stdout, stderr) = place("acme", "us-east");
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("acme → us-east (epoch 1)"), "{stdout}");
    let (_, stdout, _) = place("acme", "us-east");
    assert!(stdout.contains("epoch 1), unchanged"), "{stdout}");
    let (out, _, stderr) = place("acme", "nowhere");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("nowhere"), "{stderr}");

    // A token for calling us-east, as this region: three base64url parts, aud = us-east.
    let (out, stdout, stderr) = run(regionsync(dir.path()).args(["broker", "token", "us-east"]));
    assert!(out.status.success(), "{stderr}");
    let token = stdout.trim();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    use base64::Engine as _;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (claims["aud"].as_str(), claims["sub"].as_str()),
        (Some("us-east"), Some("local")),
        "{claims}"
    );

    // The served public key is the one in the key file.
    let (out, stdout, _) = run(regionsync(dir.path()).args(["broker", "keys"]));
    assert!(out.status.success());
    let jwk: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert_eq!(
        jwk["kid"], header["kid"],
        "tokens are signed with the served key"
    );
    // The next key of a rotation, printed from its file (no database needed).
    let next = ship::auth::SigningKey::generate().unwrap();
    std::fs::write(dir.path().join("next.pem"), next.to_pem()).unwrap();
    let (out, stdout, stderr) =
        run(regionsync(dir.path()).args(["broker", "keys", "--key-file", "next.pem"]));
    assert!(out.status.success(), "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(printed["kid"].as_str(), Some(next.kid()));

    // A new credential replaces the old one, printed once.
    let (out, stdout, stderr) =
        run(regionsync(dir.path()).args(["broker", "regions", "rotate-credential", "us-east"]));
    assert!(out.status.success(), "{stderr}");
    let rotated = stdout
        .lines()
        .find(|l| l.starts_with("rsc_"))
        .unwrap_or_default();
    assert!(!rotated.is_empty() && rotated != credential, "{stdout}");
    let (out, _, stderr) =
        run(regionsync(dir.path()).args(["broker", "regions", "rotate-credential", "nowhere"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("no region `nowhere`"), "{stderr}");

    // A region that is home to a tenant cannot be removed; once the tenant moves, it can.
    let (out, _, stderr) =
        run(regionsync(dir.path()).args(["broker", "regions", "remove", "us-east"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("home to 1 tenant"), "{stderr}");
    run(regionsync(dir.path()).args([
        "broker",
        "regions",
        "add",
        "ap-south",
        "http://127.0.0.1:10",
    ]));
    let (_, stdout, _) = place("acme", "ap-south");
    assert!(stdout.contains("acme → ap-south (epoch 2)"), "{stdout}");
    let (out, stdout, stderr) =
        run(regionsync(dir.path()).args(["broker", "regions", "remove", "us-east"]));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("removed region us-east"), "{stdout}");

    // A region without the broker role is told where to run these commands.
    let (out, _, stderr) = run(regionsync(dir.path())
        .args(["broker", "regions", "list"])
        .env("REGIONSYNC_BROKER__ENABLED", "false")
        .env("REGIONSYNC_BROKER__URL", "https://broker.example:8080")
        .env("REGIONSYNC_BROKER__CREDENTIAL", "rsc_x"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("does not run the broker role") && stderr.contains("broker.example"),
        "{stderr}"
    );
}

#[test]
fn schedule_list_and_run_show_and_run_the_console_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _, stderr) = run(regionsync(dir.path()).args(["migrate", "run"]));
    assert!(out.status.success(), "{stderr}");
    let (out, stdout, stderr) = run(regionsync(dir.path()).args(["schedule", "list"]));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("broker.heartbeat") && stdout.contains("every 30s, on one server"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sync.pull_changes") && stdout.contains("never"),
        "{stdout}"
    );

    // Everything is due on the first run; a lone region has nobody to pull from: both ok.
    let minute = || chrono::Timelike::minute(&chrono::Utc::now());
    let before = minute();
    let (out, stdout, stderr) = run(regionsync(dir.path()).args(["schedule", "run"]));
    let off_the_hour = before != 0 && minute() != 0;
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("broker.heartbeat: ok") && stdout.contains("sync.pull_changes: ok"),
        "{stdout}"
    );
    // Right after, the 30 s and 10 s jobs are not due again (the records say they ran).
    let (_, stdout, _) = run(regionsync(dir.path()).args(["schedule", "run"]));
    assert!(
        !stdout.contains("broker.heartbeat") && !stdout.contains("sync.pull_changes"),
        "{stdout}"
    );
    let (_, stdout, _) = run(regionsync(dir.path()).args(["schedule", "list"]));
    for job in [
        "broker.heartbeat",
        "sync.pull_changes",
        "sync.dispatch_outbox",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(job))
            .unwrap_or_default();
        assert!(line.contains(" ok "), "last run listed: {stdout}");
    }
    // An hourly cron job is due at the top of the hour, not whenever a scheduler starts (in
    // the first minute of an hour it is due, and ran).
    let prune = stdout
        .lines()
        .find(|l| l.starts_with("sync.prune"))
        .unwrap_or_default();
    assert!(prune.trim_end().ends_with(":00:00"), "{stdout}");
    if off_the_hour {
        assert!(prune.contains("never"), "{stdout}");
    }
}

#[test]
fn outbox_and_status_commands_on_an_empty_region() {
    let dir = tempfile::tempdir().unwrap();
    run(regionsync(dir.path()).args(["migrate", "run"]));
    let (out, stdout, stderr) = run(regionsync(dir.path()).args(["sync", "status"]));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("no peer has entries"), "{stdout}");
    let (out, stdout, _) = run(regionsync(dir.path()).args(["outbox", "list", "--dead"]));
    assert!(out.status.success());
    assert_eq!(stdout.lines().count(), 1, "only the header: {stdout}");
    let (out, _, stderr) = run(regionsync(dir.path()).args(["outbox", "retry", "--all-dead"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("no dead entry"), "{stderr}");
    let (out, _, stderr) = run(regionsync(dir.path()).args(["outbox", "retry"]));
    assert_eq!(
        out.status.code(),
        Some(2),
        "an id or --all-dead is required: {stderr}"
    );
}

/// `sync status` shows each peer's last clock measurement (ADR 0016), judged as the
/// `clock_skew` alert judges it against `alerts.clock_skew_max_ms` (1 000 ms by default).
#[test]
fn sync_status_shows_the_peers_clock_offsets() {
    use diesel::{Connection, RunQueryDsl};
    let dir = tempfile::tempdir().unwrap();
    run(regionsync(dir.path()).args(["migrate", "run"]));
    let path = dir.path().join("data/regionsync.db");
    let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    diesel::sql_query(
        "INSERT INTO sync_peer_clocks VALUES ('ap-south', -2500, NULL, CURRENT_TIMESTAMP), \
         ('eu-north', 2500, NULL, CURRENT_TIMESTAMP), ('us-east', 12, 7, CURRENT_TIMESTAMP), \
         ('us-west', 1400, 1000, CURRENT_TIMESTAMP), ('sa-east', 5000, 2, '2020-01-01 00:00:00')",
    )
    .execute(&mut conn)
    .unwrap();
    let (out, stdout, stderr) = run(regionsync(dir.path()).args(["sync", "status"]));
    assert!(out.status.success(), "{stderr}");
    let line = |peer: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{peer}: clock ")))
            .unwrap_or_else(|| panic!("no clock line for {peer}: {stdout}"))
            .to_string()
    };
    let ap = line("ap-south");
    assert!(
        ap.starts_with("ap-south: clock -2500 ms against ours (one way, measured "),
        "{ap}"
    );
    assert!(
        ap.ends_with("not judged: one way, a caller looks behind by its transit time"),
        "{ap}"
    );
    let eu = line("eu-north");
    assert!(
        eu.ends_with("beyond alerts.clock_skew_max_ms (1000 ms): clock_skew"),
        "{eu}"
    );
    let us = line("us-east");
    assert!(
        us.starts_with("us-east: clock +12 ms against ours (±3 ms, measured "),
        "{us}"
    );
    assert!(us.ends_with(')'), "within the bound: nothing said: {us}");
    let west = line("us-west");
    assert!(
        west.ends_with(')'),
        "1400 ms ± 500 ms is within 1000 ms: {west}"
    );
    assert!(line("sa-east").ends_with("forgotten (over a day old)"));
}

/// `sync parked list | release` and the parked line of `sync status` (ADR 0015).
#[test]
fn parked_ops_are_listed_and_released_from_the_cli() {
    use diesel::{Connection, RunQueryDsl};
    let dir = tempfile::tempdir().unwrap();
    run(regionsync(dir.path()).args(["migrate", "run"]));
    let (out, stdout, stderr) = run(regionsync(dir.path()).args(["sync", "parked", "list"]));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("no parked ops"), "{stdout}");

    // An order whose customer has not arrived.
    let path = dir.path().join("data/regionsync.db");
    let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    diesel::sql_query(
        "INSERT INTO sync_parked_ops VALUES ('orders', 'o-1', 7340032, 'us-east', 'upsert', '{}', \
         'customers', 'c-1', '2026-12-06 00:31:10', 1)",
    )
    .execute(&mut conn)
    .unwrap();
    let (out, stdout, stderr) = run(regionsync(dir.path()).args(["sync", "parked", "list"]));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("orders: 1 parked op(s), oldest since 2026-12-06 00:31:10"),
        "{stdout}"
    );
    assert!(
        stdout.contains("orders/o-1  upsert hlc 7340032 from us-east  waits for customers/c-1"),
        "{stdout}"
    );
    let (_, stdout, _) = run(regionsync(dir.path()).args(["sync", "status"]));
    assert!(
        stdout.contains("orders: 1 op(s) parked waiting for rows they name"),
        "{stdout}"
    );
    // Its customer is still missing: the release applies nothing and keeps it.
    let (out, stdout, stderr) = run(regionsync(dir.path()).args(["sync", "parked", "release"]));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("0 parked op(s) released"), "{stdout}");
    let (_, stdout, _) = run(regionsync(dir.path()).args(["sync", "parked", "list"]));
    assert!(stdout.contains("orders: 1 parked op(s)"), "{stdout}");
}

/// `conflicts list | show` (issue 16) against a conflict recorded in the database.
#[test]
fn conflicts_are_listed_and_shown_from_the_cli() {
    use diesel::{Connection, RunQueryDsl};
    let dir = tempfile::tempdir().unwrap();
    run(regionsync(dir.path()).args(["migrate", "run"]));
    let (out, stdout, stderr) = run(regionsync(dir.path()).args(["conflicts", "list"]));
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("no conflict recorded"), "{stdout}");

    // us-east's write at 00:31:10.123 kept; ap-south's at 00:30:10.000 (counter 3) lost.
    let path = dir.path().join("data/regionsync.db");
    let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    diesel::sql_query(
        "INSERT INTO sync_conflicts (resource, entity_id, winner_hlc, winner_origin, \
         winner_payload, loser_hlc, loser_origin, loser_payload, reason, detected_at) VALUES \
         ('customers', 'c-1', 117736542707580928, 'us-east', '{\"id\":\"c-1\",\"name\":\"kept\"}', \
         117736538767360003, 'ap-south', '{\"id\":\"c-1\",\"name\":\"lost\"}', 'older_hlc', \
         '2026-12-06 00:31:10')",
    )
    .execute(&mut conn)
    .unwrap();

    let (out, stdout, stderr) = run(regionsync(dir.path()).args(["conflicts", "list"]));
    assert!(out.status.success(), "{stderr}");
    let line = stdout.lines().nth(1).unwrap_or_default();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        words,
        [
            "1",
            "2026-12-06",
            "00:31:10",
            "customers/c-1",
            "older_hlc",
            "us-east",
            "ap-south"
        ],
        "{stdout}"
    );
    // The filters reach the query.
    for (args, listed) in [
        (vec!["--resource", "customers"], true),
        (vec!["--resource", "orders"], false),
        (vec!["--entity", "c-1"], true),
        (vec!["--entity", "c-2"], false),
        (vec!["--since", "2026-12-06T00:31:10Z"], true),
        (vec!["--since", "2026-12-06T01:31:10+01:00"], true),
        (vec!["--since", "2026-12-06T00:31:11Z"], false),
        (vec!["--limit", "1"], true),
    ] {
        let (out, stdout, stderr) = run(regionsync(dir.path())
            .args(["conflicts", "list"])
            .args(&args));
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert_eq!(
            stdout.contains("customers/c-1"),
            listed,
            "{args:?}: {stdout}"
        );
        if !listed {
            assert!(
                stdout.contains("no conflict recorded that matches"),
                "{stdout}"
            );
        }
    }
    // Bad arguments are refused before anything is read.
    for args in [
        vec!["--since", "yesterday"],
        vec!["--since", "2026-12-06"],
        vec!["--limit", "0"],
        vec!["--limit", "x"],
        vec!["--colour", "red"],
    ] {
        let (out, _, stderr) = run(regionsync(dir.path())
            .args(["conflicts", "list"])
            .args(&args));
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(stderr.contains(args[0]), "{args:?}: {stderr}");
    }
    let (_, _, stderr) =
        run(regionsync(dir.path()).args(["conflicts", "list", "--since", "yesterday"]));
    assert!(stderr.contains("RFC 3339"), "{stderr}");

    let (out, stdout, stderr) = run(regionsync(dir.path()).args(["conflicts", "show", "1"]));
    assert!(out.status.success(), "{stderr}");
    for expected in [
        "conflict 1: customers/c-1",
        "detected: 2026-12-06 00:31:10.000 UTC",
        "rule:     older_hlc (the later clock wins)",
        "winner:   us-east  hlc 117736542707580928 (2026-12-06T00:31:10.123Z, counter 0)",
        "loser:    ap-south  hlc 117736538767360003 (2026-12-06T00:30:10.000Z, counter 3)",
        "{\n  \"id\": \"c-1\",\n  \"name\": \"kept\"\n}",
        "{\n  \"id\": \"c-1\",\n  \"name\": \"lost\"\n}",
    ] {
        assert!(stdout.contains(expected), "{expected}: {stdout}");
    }
    let kept = stdout.find("\"kept\"").unwrap();
    let lost = stdout.find("\"lost\"").unwrap();
    assert!(kept < lost, "the winner's payload first: {stdout}");

    let (out, stdout, stderr) = run(regionsync(dir.path()).args(["conflicts", "show", "999"]));
    assert_eq!(out.status.code(), Some(1), "{stdout} {stderr}");
    assert!(stderr.contains("no conflict 999"), "{stderr}");
}

/// `conflicts what-if` (issue 16.3) and `[sync.conflict_policy]` in the configuration file.
#[test]
fn what_if_replays_the_ledger_under_another_policy_from_the_cli() {
    use diesel::{Connection, RunQueryDsl};
    let dir = tempfile::tempdir().unwrap();
    run(regionsync(dir.path()).args(["migrate", "run"]));
    let payload = |deleted: &str| {
        format!(
            "{{\"id\":\"01939d2e-0000-7000-8000-00000000000a\",\"tenant_id\":\"t1\",\"name\":\"Ada\",\
             \"email\":\"ada@example.com\",\"status\":\"active\",\"created_at\":\"2026-11-25T15:00:00.000000Z\",\
             \"updated_at\":\"2026-11-25T15:00:00.000000Z\",\"deleted_at\":{deleted}}}"
        )
    };
    // us-east's update (00:31:10.123) undid ap-south's delete (00:30:10.000).
    let path = dir.path().join("data/regionsync.db");
    let mut conn = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    diesel::sql_query(format!(
        "INSERT INTO sync_conflicts (resource, entity_id, winner_hlc, winner_origin, \
         winner_payload, loser_hlc, loser_origin, loser_payload, reason, detected_at) VALUES \
         ('customers', '01939d2e-0000-7000-8000-00000000000a', 117736542707580928, 'us-east', '{}', \
         117736538767360003, 'ap-south', '{}', 'older_hlc', '2026-12-06 00:31:10')",
        payload("null"),
        payload("\"2026-11-25T16:00:00.000000Z\"")
    ))
    .execute(&mut conn)
    .unwrap();

    let (out, stdout, stderr) = run(regionsync(dir.path()).args([
        "conflicts",
        "what-if",
        "--resource",
        "customers",
        "--policy",
        "delete-wins",
    ]));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("customers: decided by lww here; 1 recorded conflict(s) replayed under delete_wins: 1 would end the other way"),
        "{stdout}"
    );
    let line = stdout.lines().nth(2).unwrap_or_default();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        words,
        [
            "1",
            "2026-12-06",
            "00:31:10",
            "01939d2e-0000-7000-8000-00000000000a",
            "older_hlc",
            "upsert",
            "us-east",
            "00:31:10.123",
            "delete",
            "ap-south",
            "00:30:10.000"
        ],
        "{stdout}"
    );

    // The region's own policy comes from the configuration file.
    std::fs::write(
        dir.path().join("region.toml"),
        "[sync.conflict_policy]\ncustomers = \"delete_wins\"\n",
    )
    .unwrap();
    let (out, stdout, stderr) = run(regionsync(dir.path()).args([
        "--config",
        "region.toml",
        "conflicts",
        "what-if",
        "--resource",
        "customers",
        "--policy",
        "lww",
    ]));
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("customers: decided by delete_wins here; 1 recorded conflict(s) replayed under lww: 0 would end the other way"),
        "{stdout}"
    );
    // A policy that does not exist is refused, in the file and on the command line.
    std::fs::write(
        dir.path().join("bad.toml"),
        "[sync.conflict_policy]\ncustomers = \"newest_wins\"\n",
    )
    .unwrap();
    let (out, _, stderr) =
        run(regionsync(dir.path()).args(["--config", "bad.toml", "config", "show"]));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("conflict_policy") && stderr.contains("newest_wins"),
        "{stderr}"
    );
    let (out, _, stderr) = run(regionsync(dir.path()).args([
        "conflicts",
        "what-if",
        "--resource",
        "customers",
        "--policy",
        "newest",
    ]));
    assert!(!out.status.success());
    assert!(stderr.contains("--policy"), "{stderr}");
    let (out, _, stderr) = run(regionsync(dir.path()).args([
        "conflicts",
        "what-if",
        "--resource",
        "nope",
        "--policy",
        "lww",
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("nope"), "{stderr}");
}

/// README's configuration example is what `regionsync` takes: every key of it loads, and the
/// conflict policy it shows is read.
#[test]
fn the_readme_configuration_example_loads() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme
        .find("```toml\nregion_id = \"eu-west\"")
        .expect("the example")
        + "```toml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("region.toml");
    std::fs::write(&file, &readme[start..end]).unwrap();
    let settings = app::Settings::load(Some(&file)).unwrap();
    assert_eq!(settings.region_id, "eu-west");
    assert_eq!(
        settings.sync.conflict_policy.get("customers"),
        Some(&ship::contracts::ConflictPolicy::DeleteWins)
    );
}

/// Regression (PostgreSQL): a short command used to exit while the pool's background thread was
/// still in libpq's TLS handshake, and OpenSSL's exit-time cleanup segfaulted the process
/// (6 of 40 runs of `migrate status`). The pool now opens connections on demand only.
mod short_commands_exit_cleanly {
    use super::*;

    #[test]
    fn postgres() {
        let db = ship::testing::TestDb::new(ship::db::Backend::Postgres);
        let dir = tempfile::tempdir().unwrap();
        for attempt in 0..40 {
            let (out, _, stderr) = run(regionsync(dir.path())
                .env("REGIONSYNC_DATABASE__URL", db.url.expose())
                .args(["migrate", "status"]));
            assert_eq!(
                out.status.code(),
                Some(0),
                "run {attempt}: {:?} {stderr}",
                out.status
            );
        }
    }
}
