//! The OpenAPI document (`GET /openapi.json`) against the routes the binary really registers.
//!
//! actix cannot list an `App`'s routes, so the registrations are read from the source, where
//! every one of them is written: `every_registered_route_is_documented_and_nothing_else` scans
//! every non-test `.rs` file of `ship/src`, `containers/*/src` and `crates/app/src` for
//! `web::scope("…")` / `web::resource("…" or CONST)` with their `.route(web::<method>()…)`
//! calls (a scope's prefix applies to the resources inside its parentheses), and compares the
//! `(METHOD, path)` set with the document's, both ways. A new route, in a new container too,
//! fails it until its handler has a `#[utoipa::path]` listed in its container's
//! `#[openapi(paths(…))]`; nobody keeps a list by hand. A registration the scanner cannot read
//! (`cfg.route("/x", …)`, `web::service`, `#[get]` macros, a path that is not a literal or a
//! `const` of the same file) fails it too, so nothing slips past by being written differently.
//!
//! The scan is then checked against the real router: `every_documented_route_is_served`
//! starts a region (broker role on, SQLite) and sends every documented `(METHOD, path)`; none
//! may answer the router's own 404 `not_found` or 405 `method_not_allowed`. So a scanner that
//! misread a prefix, or a document naming a route nobody serves, fails as well.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use ship::testing::TestDb;

mod common;
use common::{settings_for, Region};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

// --- the scanner -------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// An identifier or a path (`web::resource`), lifetimes too.
    Ident(String),
    Str(String),
    Punct(char),
}

/// Rust source → tokens with their line, comments dropped, literals kept whole.
fn tokens(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < c.len() && !(c[i] == '*' && c[i + 1] == '/') {
                line += usize::from(c[i] == '\n');
                i += 1;
            }
            i += 2;
        } else if ch == '"' || (ch == 'b' && c.get(i + 1) == Some(&'"')) || raw_string(&c[i..]) {
            // A (byte, raw) string.
            let start_line = line;
            while c[i] != '"' && c[i] != '#' {
                i += 1;
            }
            let mut hashes = 0;
            while c[i] == '#' {
                hashes += 1;
                i += 1;
            }
            let raw = hashes > 0 || (i > 0 && c[i - 1] == 'r');
            i += 1;
            let mut text = String::new();
            loop {
                if c[i] == '\\' && !raw {
                    text.push(c[i + 1]);
                    i += 2;
                    continue;
                }
                if c[i] == '"' && (0..hashes).all(|k| c.get(i + 1 + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                line += usize::from(c[i] == '\n');
                text.push(c[i]);
                i += 1;
            }
            out.push((Tok::Str(text), start_line));
        } else if ch == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if c.get(i + 1) == Some(&'\\') {
                i += 2;
                while c[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if c.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
                let start = i;
                while i < c.len() && ident(c[i]) {
                    i += 1;
                }
                out.push((Tok::Ident(c[start..i].iter().collect()), line));
            }
        } else if ident(ch) {
            let start = i;
            loop {
                while i < c.len() && ident(c[i]) {
                    i += 1;
                }
                if c.get(i) == Some(&':')
                    && c.get(i + 1) == Some(&':')
                    && c.get(i + 2).is_some_and(|n| ident(*n))
                {
                    i += 2;
                } else {
                    break;
                }
            }
            out.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

/// Does `c` start a raw (byte) string: `r"`, `r#…#"`, `br"`, `br#…#"`?
fn raw_string(c: &[char]) -> bool {
    let rest = match c {
        ['r', rest @ ..] | ['b', 'r', rest @ ..] => rest,
        _ => return false,
    };
    rest.iter().find(|ch| **ch != '#') == Some(&'"')
}

/// The tokens without the items under `#[cfg(test)]` (a test module registers routes of its
/// own).
fn without_tests(toks: Vec<(Tok, usize)>) -> Vec<(Tok, usize)> {
    let cfg_test = [
        Tok::Punct('#'),
        Tok::Punct('['),
        Tok::Ident("cfg".into()),
        Tok::Punct('('),
        Tok::Ident("test".into()),
        Tok::Punct(')'),
        Tok::Punct(']'),
    ];
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let is_cfg_test = toks.len() >= i + cfg_test.len()
            && toks[i..i + cfg_test.len()]
                .iter()
                .map(|(t, _)| t)
                .eq(cfg_test.iter());
        if !is_cfg_test {
            out.push(toks[i].clone());
            i += 1;
            continue;
        }
        i += cfg_test.len();
        while i < toks.len() && !matches!(toks[i].0, Tok::Punct('{') | Tok::Punct(';')) {
            i += 1;
        }
        if i < toks.len() && toks[i].0 == Tok::Punct('{') {
            let mut braces = 0;
            loop {
                match toks[i].0 {
                    Tok::Punct('{') => braces += 1,
                    Tok::Punct('}') => braces -= 1,
                    _ => {}
                }
                i += 1;
                if braces == 0 {
                    break;
                }
            }
        } else {
            i += 1;
        }
    }
    out
}

const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "head", "trace"];

/// A registration function of actix's `web` module the scanner does not read.
fn unreadable(path: &str) -> bool {
    let Some((module, name)) = path.rsplit_once("::") else {
        return false;
    };
    (module == "web" || module.ends_with("::web"))
        && (METHODS.contains(&name)
            || ["method", "to", "route", "service", "scope", "resource"].contains(&name))
}

/// The `(METHOD, path)` pairs `src` registers, or what the scanner could not read.
fn registrations(src: &str, file: &str) -> Result<BTreeSet<(String, String)>, Vec<String>> {
    let toks = without_tests(tokens(src));
    let consts: BTreeMap<String, String> = toks
        .windows(7)
        .filter_map(|w| match w {
            [(Tok::Ident(k), _), (Tok::Ident(name), _), (Tok::Punct(':'), _), (Tok::Punct('&'), _), (Tok::Ident(ty), _), (Tok::Punct('='), _), (Tok::Str(v), _)]
                if k == "const" && ty == "str" =>
            {
                Some((name.clone(), v.clone()))
            }
            _ => None,
        })
        .collect();
    let (mut found, mut problems) = (BTreeSet::new(), Vec::new());
    // (is a resource, full path, paren depth it was opened at)
    let mut open: Vec<(bool, String, i32)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    let at = |i: usize| toks.get(i).map(|(t, _)| t.clone());
    while i < toks.len() {
        let (tok, line) = &toks[i];
        let here = format!("{file}:{line}");
        match tok {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => {
                depth -= 1;
                open.retain(|(_, _, d)| *d <= depth);
            }
            Tok::Punct(',') | Tok::Punct(';') => open.retain(|(_, _, d)| *d < depth),
            Tok::Ident(path) if path.ends_with("web::scope") || path.ends_with("web::resource") => {
                let value = match (at(i + 1), at(i + 2), at(i + 3)) {
                    (Some(Tok::Punct('(')), Some(Tok::Str(s)), Some(Tok::Punct(')'))) => Some(s),
                    (Some(Tok::Punct('(')), Some(Tok::Ident(name)), Some(Tok::Punct(')'))) => {
                        consts.get(&name).cloned()
                    }
                    _ => None,
                };
                let Some(value) = value else {
                    problems.push(format!(
                        "{here}: `{path}(…)` with a path that is neither a literal nor a const of this file"
                    ));
                    i += 1;
                    continue;
                };
                let prefix: String = open
                    .iter()
                    .filter(|(resource, _, _)| !resource)
                    .map(|(_, p, _)| p.as_str())
                    .collect::<Vec<_>>()
                    .concat();
                open.push((path.ends_with("resource"), prefix + &value, depth));
                i += 4;
                continue;
            }
            Tok::Punct('.') if at(i + 1) == Some(Tok::Ident("default_service".into())) => {
                // The fallback (ship's JSON 404): not a route.
                let mut parens = 0;
                i += 2;
                loop {
                    match toks[i].0 {
                        Tok::Punct('(') => parens += 1,
                        Tok::Punct(')') => parens -= 1,
                        _ => {}
                    }
                    i += 1;
                    if parens == 0 {
                        break;
                    }
                }
                continue;
            }
            Tok::Punct('.')
                if at(i + 1) == Some(Tok::Ident("route".into()))
                    && at(i + 2) == Some(Tok::Punct('(')) =>
            {
                let method = match (at(i + 2), at(i + 3), at(i + 4), at(i + 5)) {
                    (
                        Some(Tok::Punct('(')),
                        Some(Tok::Ident(m)),
                        Some(Tok::Punct('(')),
                        Some(Tok::Punct(')')),
                    ) => m
                        .rsplit_once("web::")
                        .map(|(_, name)| name.to_string())
                        .filter(|name| METHODS.contains(&name.as_str())),
                    _ => None,
                };
                match (method, open.last()) {
                    (Some(method), Some((true, path, _))) => {
                        found.insert((method.to_uppercase(), path.clone()));
                    }
                    _ => problems.push(format!(
                        "{here}: a `.route(…)` that is not `web::resource(…).route(web::<method>()…)`"
                    )),
                }
                // Past `.route(web::get()`: the route's own parenthesis stays open.
                depth += 1;
                i += 6;
                continue;
            }
            Tok::Punct('.')
                if at(i + 1) == Some(Tok::Ident("to".into()))
                    && open
                        .last()
                        .is_some_and(|(resource, _, d)| *resource && *d == depth) =>
            {
                problems.push(format!(
                    "{here}: a resource's `.to(…)` (every method): use `.route(web::<method>()…)`"
                ));
            }
            Tok::Ident(path) if unreadable(path) => {
                problems.push(format!("{here}: `{path}` outside `.route(…)`"));
            }
            Tok::Punct('#')
                if at(i + 1) == Some(Tok::Punct('['))
                    && matches!(at(i + 2), Some(Tok::Ident(m)) if METHODS.contains(&m.as_str()) || m == "route") =>
            {
                problems.push(format!("{here}: a route macro"));
            }
            _ => {}
        }
        i += 1;
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        Err(problems)
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `(METHOD, path)` the sources of the binary register.
fn registered_routes() -> BTreeSet<(String, String)> {
    let root = workspace();
    let mut dirs = vec![root.join("ship/src"), root.join("crates/app/src")];
    for entry in std::fs::read_dir(root.join("containers")).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() {
            dirs.push(src);
        }
    }
    let mut files = Vec::new();
    for dir in dirs {
        rust_files(&dir, &mut files);
    }
    let (mut routes, mut problems) = (BTreeSet::new(), Vec::new());
    for file in files {
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        match registrations(&std::fs::read_to_string(&file).unwrap(), &name) {
            Ok(found) => routes.extend(found),
            Err(p) => problems.extend(p),
        }
    }
    assert!(
        problems.is_empty(),
        "route registrations this test cannot read (write them as \
         `web::resource(\"/path\" or CONST).route(web::<method>().to(handler))`, \
         inside `web::scope(\"/prefix\")` if need be):\n{}",
        problems.join("\n")
    );
    routes
}

#[test]
fn every_registered_route_is_documented_and_nothing_else() {
    let registered = registered_routes();
    let document = app::wiring::openapi(true).unwrap();
    let documented = ship::http::openapi::operations(&document);
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let unregistered: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty(),
        "registered but missing from /openapi.json — give the handler a #[utoipa::path] and \
         list it in its container's #[openapi(paths(…))]: {undocumented:?}"
    );
    assert!(
        unregistered.is_empty(),
        "documented but registered nowhere: {unregistered:?}"
    );
    // What the binary serves today, so a scanner that finds nothing cannot pass.
    for (method, path) in [
        ("GET", "/health/live"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("POST", "/api/v1/customers:batch"),
        ("PATCH", "/api/v1/orders/{id}"),
        ("GET", "/sync/{resource}/changes"),
        ("POST", "/sync/{resource}/ops"),
        ("GET", "/api/v1/broker/keys"),
    ] {
        assert!(
            registered.contains(&(method.to_string(), path.to_string())),
            "{method} {path} not found by the scan: {registered:?}"
        );
    }
}

#[test]
fn the_scanner_reads_scopes_consts_and_refuses_what_it_cannot_read() {
    let src = r#"
        const ITEM: &str = "/things/{id}";
        pub fn configure(cfg: &mut web::ServiceConfig) {
            cfg.service(
                web::scope("/v1")
                    .service(web::resource("/a").wrap(x(1, 2)).route(web::get().to(a)).route(web::post().to(b)))
                    .service(web::resource(ITEM).route(web::delete().to(c))),
            )
            .service(web::resource("/top").route(web::patch().to(d)));
            let s = "web::resource(\"/not/code\")"; // web::resource("/comment")
        }
        #[cfg(test)]
        mod tests {
            fn t(cfg: &mut web::ServiceConfig) { cfg.service(web::resource("/test-only").route(web::get().to(t))); }
        }
    "#;
    let found = registrations(src, "x.rs").unwrap();
    let expected: BTreeSet<(String, String)> = [
        ("GET", "/v1/a"),
        ("POST", "/v1/a"),
        ("DELETE", "/v1/things/{id}"),
        ("PATCH", "/top"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(found, expected);
    for bad in [
        r#"cfg.route("/x", web::get().to(h));"#,
        r#"cfg.service(web::resource(format!("/x")).route(web::get().to(h)));"#,
        r#"cfg.service(web::service("/x").finish(h));"#,
        "#[get(\"/x\")] async fn h() {}",
        r#"cfg.service(web::resource("/x").to(h));"#,
    ] {
        assert!(registrations(bad, "bad.rs").is_err(), "{bad}");
    }
}

// --- the document against the running region -------------------------------------------------

/// `path` with its `{…}` parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{resource}", "customers")
        .replace("{id}", "01a242ca-5331-712e-9d3a-bd06a8091ae6")
}

#[tokio::test]
async fn every_documented_route_is_served() {
    let db = TestDb::sqlite();
    let region = Region::start(&settings_for(&db, "eu-west")).await;
    let res = region
        .client
        .get(region.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let served: Value = res.json().await.unwrap();
    let expected = serde_json::to_value(app::wiring::openapi(true).unwrap()).unwrap();
    assert_eq!(served, expected, "/openapi.json is the merged document");
    assert_eq!(served["openapi"], "3.1.0");

    let document = app::wiring::openapi(true).unwrap();
    for (method, path) in ship::http::openapi::operations(&document) {
        let url = region.url(&concrete(&path));
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = region.client.request(method.clone(), &url);
        if path.starts_with("/sync/") {
            req = req.bearer_auth(region.token_from("peer"));
        }
        if method == reqwest::Method::POST || method == reqwest::Method::PATCH {
            req = req.json(&json!({}));
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert!(
            !matches!(
                body["error"].as_str(),
                Some("not_found" | "method_not_allowed")
            ),
            "{method} {path} is documented but the router does not serve it: {status} {body}"
        );
    }
    region.stop().await;
}

/// Without the broker role, the document leaves the broker's routes out (they are not served).
#[test]
fn a_region_without_the_broker_role_documents_no_broker_route() {
    let document = app::wiring::openapi(false).unwrap();
    let ops = ship::http::openapi::operations(&document);
    assert!(ops.iter().all(|(_, p)| !p.starts_with("/api/v1/broker")));
    assert!(
        ops.contains(&("GET".to_string(), "/sync/{resource}/ops".to_string()))
            || ops.contains(&("POST".to_string(), "/sync/{resource}/ops".to_string()))
    );
}

/// The document is whole: every reference resolves, every error answer is the envelope, every
/// security requirement names a declared scheme, and every `/sync` route takes the token.
#[test]
fn the_document_is_consistent() {
    let document = serde_json::to_value(app::wiring::openapi(true).unwrap()).unwrap();
    let mut refs = Vec::new();
    collect_refs(&document, &mut refs);
    for reference in &refs {
        let pointer = reference.trim_start_matches('#');
        assert!(
            document.pointer(pointer).is_some(),
            "`{reference}` does not resolve"
        );
    }
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let here = format!("{} {path}", method.to_uppercase());
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{here}: no success answer"
            );
            for (status, response) in responses {
                if status.starts_with('2') {
                    continue;
                }
                let response = match response["$ref"].as_str() {
                    Some(r) => document.pointer(r.trim_start_matches('#')).unwrap(),
                    None => response,
                };
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorEnvelope",
                    "{here} {status}: not the error envelope"
                );
            }
            let security: Vec<&str> = op["security"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .flat_map(|r| r.as_object().unwrap().keys().map(String::as_str))
                        .collect()
                })
                .unwrap_or_default();
            for name in &security {
                assert!(schemes.contains_key(*name), "{here}: no scheme `{name}`");
            }
            if path.starts_with("/sync/") {
                assert_eq!(security, ["region_token"], "{here}");
                assert!(
                    responses.contains_key("401") && responses.contains_key("403"),
                    "{here}"
                );
            }
        }
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The answers whose JSON their controller writes by hand (not from a type the document is
/// derived from) read into their documented shapes, which refuse unknown keys.
#[tokio::test]
async fn hand_written_answers_are_their_documented_shapes() {
    use ship::http::openapi::{LiveBody, ReadyBody};
    use sync::ui::http::openapi::DigestBody;
    use sync::ui::http::transformers::changes_transformer::ChangesPageBody;

    let db = TestDb::sqlite();
    let region = Region::start(&settings_for(&db, "eu-west")).await;
    let (status, _) = region
        .post(
            "/api/v1/customers",
            &json!({"tenant_id": "acme", "name": "Ada", "email": "ada@example.com"}),
        )
        .await;
    assert_eq!(status, 201);
    let read = |path: &'static str| {
        let region = &region;
        async move {
            let (status, body) = region.get(path).await;
            assert_eq!(status, 200, "{path}: {body}");
            body
        }
    };
    serde_json::from_value::<LiveBody>(read("/health/live").await).unwrap();
    serde_json::from_value::<ReadyBody>(read("/health/ready").await).unwrap();
    let page: ChangesPageBody =
        serde_json::from_value(read("/sync/customers/changes").await).unwrap();
    assert_eq!(page.changes.len(), 1);
    let buckets = serde_json::from_value(read("/sync/customers/digest?depth=1").await).unwrap();
    assert!(matches!(buckets, DigestBody::Buckets(b) if b.buckets.len() == 1));
    let rows =
        serde_json::from_value(read("/sync/customers/digest?prefix=00&rows=true&full=true").await);
    assert!(matches!(rows.unwrap(), DigestBody::Rows(_)));
    serde_json::from_value::<broker::ui::http::openapi::KeysBody>(
        read("/api/v1/broker/keys").await,
    )
    .unwrap();
    region.stop().await;
}
