//! The container generator (`make container`, `scripts/new-container.py`): its refusals, fast
//! and with `--dry-run` (nothing is written), and — `#[ignore]`d, `.ci/run` runs it — a
//! container generated into a scratch copy of the workspace, then built, linted and tested
//! there (on MariaDB too when `TEST_MYSQL_URL` is set), with the crate rules of `architecture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// The fields of the sample container: one of each type.
const SAMPLE_FIELDS: &str =
    "sku:string:64 quantity:int:0..1000000 note:text active:bool restock_at:timestamp";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Run the generator on `root` with `args`.
fn generate(root: &Path, args: &[&str]) -> Output {
    Command::new("python3")
        .arg(workspace().join("scripts/new-container.py"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("python3 runs scripts/new-container.py")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn bad_input_is_refused_with_a_reason_and_nothing_is_written() {
    let root = workspace();
    let cases: &[(&[&str], &str)] = &[
        (&["--name", "Inventory"], "not a lowercase identifier"),
        (&["--name", "my-stock"], "not a lowercase identifier"),
        (&["--name", "1st"], "not a lowercase identifier"),
        (&["--name", ""], "NAME is required"),
        (&["--name", "customers"], "exists already"),
        (
            &["--name", "sync_extra"],
            "table prefix of the `sync` container",
        ),
        (&["--name", "match"], "reserved"),
        (&["--name", "group"], "SQL reserved word"),
        (
            &["--name", "gen_probe", "--fields", "id:string:10"],
            "`id` is reserved",
        ),
        (
            &["--name", "gen_probe", "--fields", "tenant_id:string"],
            "reserved",
        ),
        (
            &["--name", "gen_probe", "--fields", "sync_version:int"],
            "reserved",
        ),
        (
            &["--name", "gen_probe", "--fields", "price:float"],
            "unknown type `float`",
        ),
        (
            &["--name", "gen_probe", "--fields", "order:int"],
            "SQL reserved word",
        ),
        (
            &["--name", "gen_probe", "--fields", "type:string"],
            "Rust keyword",
        ),
        (
            &["--name", "gen_probe", "--fields", "a:int a:bool"],
            "given twice",
        ),
        (&["--name", "gen_probe", "--fields", "a:int:9..1"], "empty"),
        (
            &["--name", "gen_probe", "--fields", "a:string:0"],
            "max length",
        ),
        (
            &["--name", "gen_probe", "--fields", "a:bool:1"],
            "takes no argument",
        ),
        (
            &["--name", "gen_probe", "--fields", "Sku:string"],
            "not a lowercase identifier",
        ),
        (
            &["--name", "gen_probe", "--fields", "gen_probe:bool"],
            "table's name",
        ),
    ];
    for (args, reason) in cases {
        let mut all = args.to_vec();
        all.push("--dry-run");
        let out = generate(&root, &all);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} was not refused: {stderr}"
        );
        assert!(
            stderr.contains("refused") && stderr.contains(reason),
            "{args:?}: expected `{reason}` in: {stderr}"
        );
    }
    assert!(!root.join("containers/gen_probe").exists());
}

#[test]
fn a_dry_run_lists_the_container_and_the_wiring_without_writing() {
    let root = workspace();
    let before = std::fs::read_to_string(root.join("crates/app/src/wiring.rs")).unwrap();
    let out = generate(
        &root,
        &[
            "--name",
            "gen_probe",
            "--fields",
            SAMPLE_FIELDS,
            "--dry-run",
        ],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{}", stdout, text(&out.stderr));
    for expected in [
        "would write containers/gen_probe/Cargo.toml",
        "would write containers/gen_probe/src/resource.rs",
        "would write containers/gen_probe/src/ui/http/controllers/create_gen_probe.rs",
        "would write containers/gen_probe/tests/two_regions.rs",
        "_gen_probe_create_gen_probe/up.sql",
        "_gen_probe_add_sync_columns/down.sql",
        "would edit  crates/app/src/wiring.rs",
        "would edit  crates/app/Cargo.toml",
        "would edit  Cargo.toml",
    ] {
        assert!(stdout.contains(expected), "`{expected}` not in:\n{stdout}");
    }
    for backend in ["sqlite", "mysql", "postgres"] {
        assert_eq!(stdout.matches(&format!("migrations/{backend}/")).count(), 4);
    }
    assert!(!root.join("containers/gen_probe").exists());
    assert_eq!(
        std::fs::read_to_string(root.join("crates/app/src/wiring.rs")).unwrap(),
        before
    );
}

/// Copy the workspace into `to`, without `target/`, `.git/` and `data/`.
fn copy_workspace(from: &Path, to: &Path) {
    fn copy(from: &Path, to: &Path, top: bool) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if top && ["target", ".git", "data"].iter().any(|skip| name == *skip) {
                continue;
            }
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                copy(&entry.path(), &to.join(&name), false);
            } else if kind.is_file() {
                std::fs::copy(entry.path(), to.join(&name)).unwrap();
            }
        }
    }
    copy(from, to, true);
}

/// Run `cargo args…` in `dir` with the shared target directory; its output goes to ours
/// (`--nocapture` shows it) and is returned.
fn cargo(dir: &Path, target: &Path, args: &[&str]) -> String {
    let started = Instant::now();
    eprintln!("generator: cargo {}", args.join(" "));
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    eprintln!("{stderr}");
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "cargo {} failed ({:?}) in {}",
        args.join(" "),
        out.status,
        dir.display()
    );
    eprintln!(
        "generator: cargo {} passed in {:.0?}",
        args.join(" "),
        started.elapsed()
    );
    stdout
}

/// Generate a container into a scratch copy of the workspace, then build it, lint it and run
/// its tests there — every backend this run has (`TEST_MYSQL_URL`, `TEST_PG_URL` pass
/// through) — and the
/// crate rules. The target directory is shared (`CARGO_TARGET_DIR`, else
/// `<workspace>/target/generator`) so dependencies are built once, and the copy lives at a
/// fixed place in it (`generator-workspace/`, replaced on each run).
#[test]
#[ignore = "builds a generated container in a copy of the workspace (minutes); .ci/run runs it"]
fn a_generated_container_builds_and_its_tests_pass_on_every_backend() {
    let started = Instant::now();
    let root = workspace();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target/generator"),
    };
    let copy = target.join("generator-workspace");
    if copy.exists() {
        std::fs::remove_dir_all(&copy).unwrap();
    }
    copy_workspace(&root, &copy);

    let out = generate(&copy, &["--name", "inventory", "--fields", SAMPLE_FIELDS]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    eprintln!("{stdout}");
    let wiring = std::fs::read_to_string(copy.join("crates/app/src/wiring.rs")).unwrap();
    assert!(
        wiring.contains("        inventory::domain(),\n"),
        "{wiring}"
    );

    let mysql = std::env::var("TEST_MYSQL_URL").is_ok_and(|v| !v.trim().is_empty());
    let postgres = std::env::var("TEST_PG_URL").is_ok_and(|v| !v.trim().is_empty());
    let mut test = vec!["test", "-p", "inventory", "--"];
    if !mysql {
        test.extend(["--skip", "::mysql"]);
    }
    if !postgres {
        test.extend(["--skip", "::postgres"]);
    }
    let output = cargo(&copy, &target, &test);
    let passed = |backend: &str| {
        output
            .lines()
            .filter(|l| l.starts_with("test ") && l.ends_with(&format!("::{backend} ... ok")))
            .count()
    };
    let (sqlite, mariadb, pg) = (passed("sqlite"), passed("mysql"), passed("postgres"));
    eprintln!(
        "generator: the generated tests passed: {sqlite} on SQLite, {mariadb} on MariaDB, \
         {pg} on PostgreSQL"
    );
    assert!(sqlite >= 16, "{sqlite} SQLite tests passed");
    if mysql {
        assert_eq!(mariadb, sqlite, "every backend test ran on MariaDB too");
    }
    if postgres {
        assert_eq!(pg, sqlite, "every backend test ran on PostgreSQL too");
    }
    cargo(&copy, &target, &["fmt", "-p", "inventory", "--", "--check"]);
    cargo(
        &copy,
        &target,
        &[
            "clippy",
            "-p",
            "inventory",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
    );
    cargo(
        &copy,
        &target,
        &["test", "-p", "app", "--test", "architecture"],
    );
    // The generated routes are in /openapi.json (every registered route is documented).
    cargo(
        &copy,
        &target,
        &[
            "test",
            "-p",
            "app",
            "--test",
            "openapi",
            "every_registered_route_is_documented_and_nothing_else",
        ],
    );
    std::fs::remove_dir_all(&copy).unwrap();
    eprintln!("generator: all green in {:.0?}", started.elapsed());
}
