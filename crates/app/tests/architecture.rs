//! The crate rules of the Porto layout (docs/ARCHITECTURE.md), read from `cargo metadata` and
//! the member manifests:
//!
//! - C1 `ship` depends on no workspace member.
//! - C2 a container depends on `ship` only among workspace members.
//! - C3 `app` depends on `ship` and on every container.
//! - C4 nothing depends on `app`.
//! - C5 every member has `[lints] workspace = true` and `publish = false`, and takes
//!   third-party crates as `{ workspace = true }` (no version strings in member manifests).
//!
//! And one rule of the code: D1, every `Insertable` binds its values as given (below).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

/// A workspace member as the rules see it.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    /// Path of the member's directory relative to the workspace root, e.g. `containers/sync`.
    dir: String,
    /// Workspace members it depends on (any kind: normal, dev, build), itself excluded.
    member_deps: Vec<String>,
    publish_false: bool,
    manifest: toml::Value,
}

fn workspace_metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn members(metadata: &Value) -> Vec<Member> {
    let root = Path::new(metadata["workspace_root"].as_str().unwrap());
    let ids: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let packages: Vec<&Value> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| ids.contains(&p["id"].as_str().unwrap()))
        .collect();
    let names: Vec<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    packages
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap().to_string();
            let manifest_path = Path::new(p["manifest_path"].as_str().unwrap());
            let dir = manifest_path
                .parent()
                .unwrap()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let mut member_deps: Vec<String> = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["name"].as_str().unwrap().to_string())
                .filter(|d| names.contains(d) && *d != name)
                .collect();
            member_deps.sort();
            member_deps.dedup();
            let manifest = std::fs::read_to_string(manifest_path)
                .map(|text| toml::from_str(&text).unwrap())
                .unwrap_or(toml::Value::Table(Default::default()));
            Member {
                name,
                dir,
                member_deps,
                // `publish = false` shows as an empty registry list.
                publish_false: p["publish"] == json!([]),
                manifest,
            }
        })
        .collect()
}

/// Every rule broken, one line each; empty when the workspace is sound.
fn violations(members: &[Member]) -> Vec<String> {
    let mut out = Vec::new();
    let ship = members.iter().find(|m| m.dir == "ship");
    let app = members.iter().find(|m| m.dir == "crates/app");
    let containers: Vec<&Member> = members
        .iter()
        .filter(|m| m.dir.starts_with("containers/"))
        .collect();
    let (Some(ship), Some(app)) = (ship, app) else {
        return vec!["layout: expected members at ship/ and crates/app/".into()];
    };

    // C1
    if !ship.member_deps.is_empty() {
        out.push(format!(
            "C1: ship depends on workspace members {:?}",
            ship.member_deps
        ));
    }
    // C2
    for c in &containers {
        let bad: Vec<_> = c.member_deps.iter().filter(|d| **d != ship.name).collect();
        if !bad.is_empty() {
            out.push(format!(
                "C2: container {} ({}) depends on {bad:?}; only ship is allowed",
                c.name, c.dir
            ));
        }
    }
    // C3
    for needed in std::iter::once(ship).chain(containers.iter().copied()) {
        if !app.member_deps.contains(&needed.name) {
            out.push(format!(
                "C3: app does not depend on {} (every container must be wired)",
                needed.name
            ));
        }
    }
    // C4
    for m in members {
        if m.member_deps.contains(&app.name) {
            out.push(format!("C4: {} depends on the app crate", m.name));
        }
    }
    // C5
    for m in members {
        if m.manifest
            .get("lints")
            .and_then(|l| l.get("workspace"))
            .and_then(toml::Value::as_bool)
            != Some(true)
        {
            out.push(format!("C5: {} lacks `[lints] workspace = true`", m.name));
        }
        if !m.publish_false {
            out.push(format!(
                "C5: {} is publishable; set `publish = false`",
                m.name
            ));
        }
        for (table, deps) in dependency_tables(&m.manifest) {
            for (dep, spec) in deps {
                let from_workspace =
                    spec.get("workspace").and_then(toml::Value::as_bool) == Some(true);
                let local_path = spec.get("path").is_some();
                if !from_workspace && !local_path {
                    out.push(format!(
                        "C5: {} takes `{dep}` in [{table}] with its own version; use `{{ workspace = true }}`",
                        m.name
                    ));
                }
            }
        }
    }
    out
}

/// `[dependencies]`, `[dev-dependencies]`, `[build-dependencies]`, also under `[target.*]`.
fn dependency_tables(manifest: &toml::Value) -> Vec<(String, BTreeMap<String, toml::Value>)> {
    let kinds = ["dependencies", "dev-dependencies", "build-dependencies"];
    let mut out = Vec::new();
    let mut collect = |prefix: &str, table: &toml::Value| {
        for kind in kinds {
            if let Some(deps) = table.get(kind).and_then(toml::Value::as_table) {
                let deps = deps.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                out.push((format!("{prefix}{kind}"), deps));
            }
        }
    };
    collect("", manifest);
    if let Some(targets) = manifest.get("target").and_then(toml::Value::as_table) {
        for (cfg, table) in targets {
            collect(&format!("target.{cfg}."), table);
        }
    }
    out
}

#[test]
fn the_workspace_follows_the_crate_rules() {
    let members = members(&workspace_metadata());
    assert!(
        members.iter().any(|m| m.dir.starts_with("containers/")),
        "no container found"
    );
    let broken = violations(&members);
    assert!(
        broken.is_empty(),
        "crate rules broken:\n{}",
        broken.join("\n")
    );
}

/// The check itself must fail on each kind of forbidden edge (a rule test that cannot fail is
/// worthless): add the edges to the real workspace and expect one violation per rule.
#[test]
fn the_rules_catch_forbidden_dependencies() {
    let mut members = members(&workspace_metadata());
    let app_name = members
        .iter()
        .find(|m| m.dir == "crates/app")
        .unwrap()
        .name
        .clone();
    let container = members
        .iter()
        .find(|m| m.dir.starts_with("containers/"))
        .unwrap()
        .name
        .clone();
    // A second container, depending on the first (C2) and on the app (C4), not wired into app (C3),
    // with a versioned third-party dependency (C5).
    let mut rogue = members
        .iter()
        .find(|m| m.name == container)
        .unwrap()
        .clone();
    rogue.name = "rogue".into();
    rogue.dir = "containers/rogue".into();
    rogue.member_deps = vec!["ship".into(), container.clone(), app_name.clone()];
    rogue.manifest =
        toml::from_str("[lints]\nworkspace = true\n[dependencies]\nserde = \"1\"\n").unwrap();
    members.push(rogue);
    // ship depending on a container (C1).
    members
        .iter_mut()
        .find(|m| m.dir == "ship")
        .unwrap()
        .member_deps
        .push(container.clone());

    let broken = violations(&members);
    for rule in [
        "C1: ship",
        "C2: container rogue",
        "C3: app does not depend on rogue",
        "C4: rogue",
        "C5: rogue takes `serde`",
    ] {
        assert!(
            broken.iter().any(|v| v.starts_with(rule)),
            "expected `{rule}…` in {broken:#?}"
        );
    }
}

/// D1 (ADR 0013): every `#[derive(Insertable)]` struct binds its values as given
/// (`#[diesel(treat_none_as_default_value = false)]`). With diesel's default each value may be
/// `DEFAULT`, so MariaDB never caches the INSERT (a prepare and a close more per write) and
/// SQLite runs a multi-row INSERT as one statement per row.
fn insertable_violations(files: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (path, text) in files {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let derive = line.trim_start();
            if !(derive.starts_with("#[derive(") && derive.contains("Insertable")) {
                continue;
            }
            // The struct's other attributes and comments, up to its declaration.
            let attributes: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|l| {
                    let l = l.trim_start();
                    l.starts_with("#[") || l.starts_with("//")
                })
                .copied()
                .collect();
            if !attributes
                .iter()
                .any(|l| l.contains("treat_none_as_default_value = false"))
            {
                out.push(format!(
                    "D1: {path}:{} derives Insertable without treat_none_as_default_value = false",
                    i + 1
                ));
            }
        }
    }
    out
}

/// The `.rs` files under the workspace's `ship/`, `containers/` and `crates/`.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    walk(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.display().to_string(), text));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut out = Vec::new();
    for top in ["ship", "containers", "crates"] {
        walk(&root.join(top), &mut out);
    }
    out
}

#[test]
fn every_insertable_binds_its_values_as_given() {
    let files = sources();
    assert!(
        files.iter().any(|(_, t)| t.contains("Insertable")),
        "no Insertable found: the scan is broken"
    );
    let broken = insertable_violations(&files);
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_insertable_rule_catches_a_default_insertable() {
    let rogue =
        "#[derive(Debug, Insertable)]\n#[diesel(table_name = t)]\nstruct NewRow { a: i64 }\n";
    let good = "#[derive(Debug, Insertable)]\n#[diesel(table_name = t)]\n// why\n#[diesel(treat_none_as_default_value = false)]\nstruct NewRow { a: i64 }\n";
    let files = vec![
        ("rogue.rs".to_string(), rogue.to_string()),
        ("good.rs".to_string(), good.to_string()),
    ];
    assert_eq!(
        insertable_violations(&files),
        vec![
            "D1: rogue.rs:1 derives Insertable without treat_none_as_default_value = false"
                .to_string()
        ]
    );
}

/// The Porto layers inside a container (docs/ARCHITECTURE.md), read from the sources
/// (`path` relative to the workspace root, text without comments):
///
/// - L1 a controller (`ui/http/controllers/`) calls actions only: it names no task
///   (`crate::tasks`, `…Task`) and no data (`crate::data`);
/// - L2 a task never calls an action (names no `…Action`);
/// - L3 data imports no ui, no action and no task;
/// - L4 jobs and the other UIs (`ui/`) call actions: they name no task and no data;
/// - L5 the CLI commands of `crates/app` reach no container's `tasks` or `data`;
/// - L6 a container's tables carry its name (`diesel::table!` in its `data/schema.rs`, and
///   `CREATE`/`ALTER TABLE` in migrations named after it): `<name>` or `<name>_…`.
fn layer_violations(files: &[(String, String)], containers: &[String]) -> Vec<String> {
    let word = |text: &str, suffix: &str| -> Option<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .find(|w| {
                w.len() > suffix.len()
                    && w.ends_with(suffix)
                    && w.starts_with(|c: char| c.is_ascii_uppercase())
            })
            .map(str::to_string)
    };
    let mut out = Vec::new();
    for (path, raw) in files {
        // Comments say what a layer must not do; only code counts.
        let text: String = raw
            .lines()
            .map(|l| l.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let Some(rest) = path.strip_prefix("containers/") else {
            if path.starts_with("crates/app/src/") {
                for c in containers {
                    for layer in ["tasks", "data"] {
                        if text.contains(&format!("{c}::{layer}")) {
                            out.push(format!(
                                "L5: {path} reaches {c}::{layer} (a CLI command calls actions)"
                            ));
                        }
                    }
                }
            }
            if let Some(dir) = path.strip_prefix("migrations/") {
                let mut parts = dir.split('/');
                let (_, Some(name)) = (parts.next(), parts.next()) else {
                    continue;
                };
                let owner = name
                    .trim_start_matches(|c: char| c.is_ascii_digit() || c == '-')
                    .trim_start_matches('_');
                let owner = owner.split('_').next().unwrap_or_default();
                let lower = text.to_ascii_lowercase();
                for statement in [
                    "create table if not exists ",
                    "create table ",
                    "alter table ",
                ] {
                    for piece in lower.split(statement).skip(1) {
                        let table: String = piece
                            .trim_start_matches('`')
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if !(table == owner || table.starts_with(&format!("{owner}_"))) {
                            out.push(format!(
                                "L6: {path} touches table `{table}`, not one of `{owner}`'s"
                            ));
                        }
                    }
                }
            }
            continue;
        };
        let Some((container, inner)) = rest.split_once("/src/") else {
            continue;
        };
        if inner.starts_with("ui/http/controllers/") {
            if text.contains("crate::tasks") || text.contains("crate::data") {
                out.push(format!(
                    "L1: {path} reaches tasks or data (a controller calls one action)"
                ));
            }
            if let Some(task) = word(&text, "Task") {
                out.push(format!(
                    "L1: {path} names {task} (a controller calls one action)"
                ));
            }
        } else if inner.starts_with("ui/") {
            if text.contains("crate::tasks") || text.contains("crate::data") {
                out.push(format!(
                    "L4: {path} reaches tasks or data (jobs and UIs call actions)"
                ));
            }
            if let Some(task) = word(&text, "Task") {
                out.push(format!(
                    "L4: {path} names {task} (jobs and UIs call actions)"
                ));
            }
        } else if inner.starts_with("tasks/") {
            if let Some(action) = word(&text, "Action") {
                out.push(format!(
                    "L2: {path} names {action} (a task never calls an action)"
                ));
            }
        } else if inner.starts_with("data/") {
            if ["crate::ui", "crate::actions", "crate::tasks"]
                .iter()
                .any(|m| text.contains(m))
            {
                out.push(format!(
                    "L3: {path} imports a ui, an action or a task (data is the bottom layer)"
                ));
            }
            if inner == "data/schema.rs" {
                for piece in text.split("diesel::table!").skip(1) {
                    let table: String = piece
                        .trim_start_matches(|c: char| c.is_whitespace() || c == '{')
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !(table == container || table.starts_with(&format!("{container}_"))) {
                        out.push(format!(
                            "L6: {path} declares table `{table}`, not one of `{container}`'s"
                        ));
                    }
                }
            }
        }
    }
    out
}

/// Every source file the layer rules read: `.rs` under `containers/` and `crates/app/src/`,
/// and the migrations' `up.sql`, with paths relative to the workspace root.
fn layered_sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path
                    .file_name()
                    .is_some_and(|n| n != "target" && n != "tests")
                {
                    walk(root, &path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs")
                || path.file_name().is_some_and(|n| n == "up.sql")
            {
                let relative = path.strip_prefix(root).unwrap().display().to_string();
                out.push((relative, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    for top in ["containers", "crates/app/src", "migrations"] {
        walk(&root, &root.join(top), &mut out);
    }
    out
}

fn container_names() -> Vec<String> {
    members(&workspace_metadata())
        .into_iter()
        .filter_map(|m| m.dir.strip_prefix("containers/").map(str::to_string))
        .collect()
}

#[test]
fn every_container_keeps_its_layers() {
    let files = layered_sources();
    assert!(
        files
            .iter()
            .any(|(p, _)| p.contains("/ui/http/controllers/")),
        "no controller found: the scan is broken"
    );
    assert!(
        files.iter().any(|(p, _)| p.ends_with("up.sql")),
        "no migration found: the scan is broken"
    );
    let broken = layer_violations(&files, &container_names());
    assert!(broken.is_empty(), "layers broken:\n{}", broken.join("\n"));
}

/// Each layer rule fails on a violation injected into a copy of the real sources.
#[test]
fn the_layer_rules_catch_injected_violations() {
    let mut files = layered_sources();
    let containers = container_names();
    let inject = |files: &mut Vec<(String, String)>, path: &str, code: &str| {
        files.push((path.to_string(), code.to_string()));
    };
    inject(
        &mut files,
        "containers/customers/src/ui/http/controllers/rogue.rs",
        "use crate::data::customers;\nfn f() { SaveLocalWriteTask::run(); }",
    );
    inject(
        &mut files,
        "containers/customers/src/tasks/rogue.rs",
        "fn f() { CreateCustomerAction::new(pool, r); }",
    );
    inject(
        &mut files,
        "containers/customers/src/data/rogue.rs",
        "use crate::ui::http::CustomersContext;",
    );
    inject(
        &mut files,
        "containers/sync/src/ui/rogue_job.rs",
        "use crate::tasks::send_ops::SendOpsTask;",
    );
    inject(
        &mut files,
        "crates/app/src/rogue_cli.rs",
        "fn f() { sync::data::cursors::get(); }",
    );
    inject(
        &mut files,
        "containers/customers/src/data/schema.rs",
        "diesel::table! {\n    orders (id) {\n        id -> Text,\n    }\n}",
    );
    inject(
        &mut files,
        "migrations/sqlite/2026-12-05-000999_customers_rogue/up.sql",
        "CREATE TABLE sync_rogue (id TEXT);",
    );
    let broken = layer_violations(&files, &containers);
    for rule in [
        "L1: containers/customers/src/ui/http/controllers/rogue.rs reaches",
        "L1: containers/customers/src/ui/http/controllers/rogue.rs names SaveLocalWriteTask",
        "L2: containers/customers/src/tasks/rogue.rs names CreateCustomerAction",
        "L3: containers/customers/src/data/rogue.rs",
        "L4: containers/sync/src/ui/rogue_job.rs reaches",
        "L5: crates/app/src/rogue_cli.rs reaches sync::data",
        "L6: containers/customers/src/data/schema.rs declares table `orders`",
        "L6: migrations/sqlite/2026-12-05-000999_customers_rogue/up.sql touches table `sync_rogue`",
    ] {
        assert!(
            broken.iter().any(|b| b.starts_with(rule)),
            "not caught: {rule}\n{}",
            broken.join("\n")
        );
    }
    assert_eq!(
        broken.len(),
        9,
        "exactly the injected violations:\n{}",
        broken.join("\n")
    );
}
