//! The broker's routes over real HTTP, on SQLite and MariaDB: resolve (peers, one target, a
//! tenant's home) with tokens that verify for their audience only, heartbeats and liveness,
//! the public keys, and every refusal with its status, code and no change to the registry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{
    broker_keys, current_key, issuer_name, parse_keys, place, register, retired_key,
    set_last_heartbeat, snapshot, spawn_broker, LIFETIME_SECS, OFFLINE_AFTER_SECS, SERVED,
};
use serde_json::{json, Value};
use ship::auth::{AuthError, AuthSettings, PublicJwk, SigningKey, TokenClaims, TokenVerifier};
use ship::parents::Action;
use ship::testing::{TestApp, TestDb};

const RESOLVE: &str = "/api/v1/broker/resolve";
const HEARTBEAT: &str = "/api/v1/broker/heartbeat";
const KEYS: &str = "/api/v1/broker/keys";

/// Three registered regions: eu-west and ap-south sync everything, us-east only customers.
struct Fixture {
    app: TestApp,
    eu: String,
    us: String,
    ap: String,
}

async fn fixture(db: &TestDb) -> Fixture {
    let eu = register(&db.pool, "eu-west", "https://eu.example.com", None).await;
    let us = register(
        &db.pool,
        "us-east",
        "https://us.example.com",
        Some(&["customers"]),
    )
    .await;
    let ap = register(&db.pool, "ap-south", "http://ap.example.com:8080", None).await;
    Fixture {
        app: spawn_broker(&db.pool).await,
        eu,
        us,
        ap,
    }
}

/// POST `body` (JSON text as given) with an optional `Authorization` header value.
async fn post_raw(app: &TestApp, path: &str, auth: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"));
    (status, body)
}

async fn post(app: &TestApp, path: &str, credential: &str, body: &Value) -> (u16, Value) {
    post_raw(
        app,
        path,
        Some(&format!("Bearer {credential}")),
        &body.to_string(),
    )
    .await
}

/// The answer is the error envelope with this status and code.
#[track_caller]
fn assert_envelope(answer: &(u16, Value), status: u16, code: &str) {
    let (got, body) = answer;
    assert_eq!(
        (*got, body["error"].as_str()),
        (status, Some(code)),
        "{body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body.as_object().unwrap().contains_key("details"), "{body}");
}

/// A verifier for `region` that accepts exactly `keys` (no trusted extras).
fn verifier(region: &str, keys: &[PublicJwk]) -> TokenVerifier {
    TokenVerifier::new(region, AuthSettings::default(), keys).unwrap()
}

fn served_keys() -> Vec<PublicJwk> {
    broker_keys().public_keys()
}

/// Check one resolved region's token: it verifies for `aud` on each resource of `scope` with
/// the served keys, carries sub/aud/scope/iss and the configured lifetime, and is refused
/// everywhere else. Returns the claims.
#[track_caller]
fn check_token(resolved: &Value, sub: &str, aud: &str, scope: &[&str]) -> TokenClaims {
    let token = resolved["token"].as_str().unwrap();
    let keys = served_keys();
    let for_aud = verifier(aud, &keys);
    let mut claims = None;
    for resource in scope {
        claims = Some(
            for_aud
                .verify(Some(token), resource)
                .unwrap_or_else(|e| panic!("token for {aud} refused on {resource}: {e}")),
        );
    }
    let claims = claims.unwrap();
    assert_eq!(claims.sub, sub);
    assert_eq!(claims.aud, aud);
    assert_eq!(claims.scope, scope);
    assert_eq!(claims.iss, issuer_name());
    assert_eq!(claims.exp - claims.iat, LIFETIME_SECS as i64, "{claims:?}");
    assert_eq!(claims.nbf, claims.iat);
    assert!(
        (claims.iat - chrono::Utc::now().timestamp()).abs() < 30,
        "{claims:?}"
    );
    assert_eq!(resolved["token_expires_at"].as_i64(), Some(claims.exp));
    // Not a token for anything else.
    for resource in SERVED.iter().filter(|r| !scope.contains(r)) {
        assert!(
            matches!(
                for_aud.verify(Some(token), resource),
                Err(AuthError::Scope(_))
            ),
            "{resource}"
        );
    }
    assert!(matches!(
        for_aud.verify(Some(token), "nope"),
        Err(AuthError::Scope(_))
    ));
    for other in ["eu-west", "us-east", "ap-south"]
        .into_iter()
        .filter(|r| *r != aud)
    {
        let refused = verifier(other, &keys).verify(Some(token), scope[0]);
        assert!(
            matches!(refused, Err(AuthError::WrongAudience { .. })),
            "{other}: {refused:?}"
        );
    }
    claims
}

fn ids(answer: &Value) -> Vec<&str> {
    answer["regions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

ship::backend_tests! {
    async fn resolve_without_a_target_returns_every_other_region_with_a_token_for_it(db: TestDb) {
        let f = fixture(&db).await;
        let before = snapshot(&db.pool).await;

        // eu-west syncs everything (`*`): each token names every served resource.
        let (status, answer) = post(&f.app, RESOLVE, &f.eu, &json!({})).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["region"], "eu-west");
        assert_eq!(ids(&answer), ["ap-south", "us-east"], "every other region, not the caller");
        assert!(answer.get("home_region").is_none() && answer.get("epoch").is_none(), "{answer}");
        let regions = answer["regions"].as_array().unwrap();
        assert_eq!(regions[0]["base_url"], "http://ap.example.com:8080");
        assert_eq!(regions[0]["status"], "offline", "no heartbeat yet");
        assert_eq!(regions[1]["base_url"], "https://us.example.com");
        assert_eq!(regions[1]["scopes"], "customers");
        let mut jtis = BTreeSet::new();
        for r in regions {
            let aud = r["id"].as_str().unwrap();
            jtis.insert(check_token(r, "eu-west", aud, &SERVED).jti);
        }

        // us-east syncs only customers: its tokens say so.
        let (status, answer) = post(&f.app, RESOLVE, &f.us, &json!({})).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["region"], "us-east");
        assert_eq!(ids(&answer), ["ap-south", "eu-west"]);
        for r in answer["regions"].as_array().unwrap() {
            let aud = r["id"].as_str().unwrap();
            jtis.insert(check_token(r, "us-east", aud, &["customers"]).jti);
        }
        assert_eq!(jtis.len(), 4, "every token has its own jti");

        // Null fields mean "not asked".
        let (status, answer) =
            post(&f.app, RESOLVE, &f.ap, &json!({"tenant_id": null, "target_region": null})).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(ids(&answer), ["eu-west", "us-east"]);

        assert_eq!(snapshot(&db.pool).await, before, "resolve writes nothing");
        f.app.stop().await;
    }

    async fn resolve_with_a_target_region_returns_only_that_region(db: TestDb) {
        let f = fixture(&db).await;
        let before = snapshot(&db.pool).await;

        let (status, answer) = post(&f.app, RESOLVE, &f.eu, &json!({"target_region": "us-east"})).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(ids(&answer), ["us-east"]);
        check_token(&answer["regions"][0], "eu-west", "us-east", &SERVED);

        let (status, answer) = post(&f.app, RESOLVE, &f.us, &json!({"target_region": "ap-south"})).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(ids(&answer), ["ap-south"]);
        check_token(&answer["regions"][0], "us-east", "ap-south", &["customers"]);

        let answer = post(&f.app, RESOLVE, &f.eu, &json!({"target_region": "mars-1"})).await;
        assert_envelope(&answer, 404, "unknown_region");
        assert!(answer.1["message"].as_str().unwrap().contains("mars-1"), "{}", answer.1);

        assert_eq!(snapshot(&db.pool).await, before);
        f.app.stop().await;
    }

    async fn resolve_with_a_tenant_returns_its_home_region_and_epoch(db: TestDb) {
        let f = fixture(&db).await;
        place(&db.pool, "acme", "us-east").await.unwrap();
        place(&db.pool, "acme", "ap-south").await.unwrap();
        let before = snapshot(&db.pool).await;

        let (status, answer) = post(&f.app, RESOLVE, &f.eu, &json!({"tenant_id": "acme"})).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["region"], "eu-west");
        assert_eq!((answer["home_region"].as_str(), answer["epoch"].as_i64()), (Some("ap-south"), Some(2)));
        assert_eq!(ids(&answer), ["ap-south"], "a token for the home region only");
        check_token(&answer["regions"][0], "eu-west", "ap-south", &SERVED);

        // The home region asking about its own tenant gets its own entry.
        let (status, answer) = post(&f.app, RESOLVE, &f.ap, &json!({"tenant_id": "acme"})).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!((answer["home_region"].as_str(), answer["epoch"].as_i64()), (Some("ap-south"), Some(2)));

        let answer = post(&f.app, RESOLVE, &f.eu, &json!({"tenant_id": "nobody"})).await;
        assert_envelope(&answer, 404, "unknown_tenant");
        let answer = post(&f.app, RESOLVE, &f.eu, &json!({"tenant_id": "acme", "target_region": "us-east"})).await;
        assert_envelope(&answer, 422, "invalid_request");

        assert_eq!(snapshot(&db.pool).await, before);
        f.app.stop().await;
    }

    async fn resolve_refuses_missing_and_wrong_credentials(db: TestDb) {
        let f = fixture(&db).await;
        let body = r#"{"target_region":"eu-west"}"#;
        let basic = format!("Basic {}", f.us);
        for auth in [None, Some("Bearer"), Some("Bearer   "), Some(basic.as_str()), Some(f.us.as_str())] {
            let answer = post_raw(&f.app, RESOLVE, auth, body).await;
            assert_envelope(&answer, 401, "credential_missing");
        }
        let forged = format!("rsc_{}", URL_SAFE_NO_PAD.encode([7u8; 32]));
        let hash = snapshot(&db.pool).await.region("us-east").credential_hash.clone();
        let truncated = &f.us[..f.us.len() - 1];
        for credential in [forged.as_str(), hash.as_str(), truncated, "rsc_"] {
            let answer = post(&f.app, RESOLVE, credential, &json!({"target_region": "eu-west"})).await;
            assert_envelope(&answer, 401, "credential_invalid");
        }
        // The scheme is case-insensitive, the credential is not.
        let (status, _) = post_raw(&f.app, RESOLVE, Some(&format!("bearer {}", f.us)), body).await;
        assert_eq!(status, 200);
        let answer = post(&f.app, RESOLVE, &f.us.to_uppercase(), &json!({})).await;
        assert_envelope(&answer, 401, "credential_invalid");

        // A removed region's credential stops working at once, and nobody resolves it.
        broker::actions::RemoveRegionAction::new(db.pool.clone()).run("us-east".into()).await.unwrap();
        let before = snapshot(&db.pool).await;
        let answer = post(&f.app, RESOLVE, &f.us, &json!({})).await;
        assert_envelope(&answer, 401, "credential_invalid");
        let answer = post(&f.app, HEARTBEAT, &f.us, &json!({})).await;
        assert_envelope(&answer, 401, "credential_invalid");
        let (status, answer) = post(&f.app, RESOLVE, &f.eu, &json!({})).await;
        assert_eq!((status, ids(&answer)), (200, vec!["ap-south"]));
        let answer = post(&f.app, RESOLVE, &f.eu, &json!({"target_region": "us-east"})).await;
        assert_envelope(&answer, 404, "unknown_region");
        assert_eq!(snapshot(&db.pool).await, before, "refused requests wrote something");
        f.app.stop().await;
    }

    async fn malformed_bodies_get_the_json_envelope(db: TestDb) {
        let f = fixture(&db).await;
        let before = snapshot(&db.pool).await;
        let auth = format!("Bearer {}", f.eu);
        for path in [RESOLVE, HEARTBEAT] {
            for bad_json in ["{not json", "{,}", "{\"", "", "nul"] {
                let answer = post_raw(&f.app, path, Some(&auth), bad_json).await;
                assert_envelope(&answer, 400, "invalid_json");
            }
        }
        for wrong_shape in [
            r#"{"tenant": "acme"}"#,
            r#"{"target_region": "us-east", "extra": 1}"#,
            r#"{"tenant_id": 5}"#,
            r#"{"target_region": ["us-east"]}"#,
            r#"[]"#,
            r#""acme""#,
        ] {
            let answer = post_raw(&f.app, RESOLVE, Some(&auth), wrong_shape).await;
            assert_envelope(&answer, 422, "invalid_body");
        }
        for wrong_shape in [r#"{"url": "http://x.example.com"}"#, r#"{"base_url": 1}"#] {
            let answer = post_raw(&f.app, HEARTBEAT, Some(&auth), wrong_shape).await;
            assert_envelope(&answer, 422, "invalid_body");
        }
        // A body that is not declared JSON.
        let res = f.app.client.post(f.app.url(RESOLVE)).header("authorization", &auth)
            .header("content-type", "text/plain").body("{}").send().await.unwrap();
        assert_eq!(res.status().as_u16(), 415);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "unsupported_media_type");

        assert_eq!(snapshot(&db.pool).await, before, "a refused heartbeat wrote something");
        f.app.stop().await;
    }

    async fn a_heartbeat_marks_the_caller_online_and_updates_its_base_url(db: TestDb) {
        let f = fixture(&db).await;
        let before = snapshot(&db.pool).await;

        let (status, answer) = post(&f.app, HEARTBEAT, &f.us, &json!({})).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["id"], "us-east");
        assert_eq!(answer["status"], "online");
        assert_eq!(answer["base_url"], "https://us.example.com", "unchanged without base_url");
        assert_eq!(answer["scopes"], "customers");
        assert!(answer["last_heartbeat_at"].is_string(), "{answer}");
        let after = snapshot(&db.pool).await;
        let row = after.region("us-east");
        assert!(row.last_heartbeat_at.is_some());
        assert_eq!((row.base_url.as_str(), row.updated_at), ("https://us.example.com", before.region("us-east").updated_at));
        assert_eq!(after.region("eu-west"), before.region("eu-west"), "only the caller is touched");
        assert_eq!(after.region("ap-south"), before.region("ap-south"));

        // The list and the other regions' resolve see it online.
        let regions = broker::actions::ListRegionsAction::new(db.pool.clone(), OFFLINE_AFTER_SECS).run(()).await.unwrap();
        let statuses: Vec<_> = regions.iter().map(|r| (r.id.as_str(), r.status)).collect();
        assert_eq!(statuses, [("ap-south", "offline"), ("eu-west", "offline"), ("us-east", "online")]);
        let (_, answer) = post(&f.app, RESOLVE, &f.eu, &json!({"target_region": "us-east"})).await;
        assert_eq!(answer["regions"][0]["status"], "online");

        // A new base URL is recorded; `null` (what a region with nothing new sends) keeps it.
        let (status, answer) = post(&f.app, HEARTBEAT, &f.us, &json!({"base_url": "https://us2.example.com:8443"})).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!((answer["base_url"].as_str(), answer["status"].as_str()), (Some("https://us2.example.com:8443"), Some("online")));
        let row = snapshot(&db.pool).await.region("us-east").clone();
        assert_eq!(row.base_url, "https://us2.example.com:8443");
        assert!(row.updated_at >= before.region("us-east").updated_at);
        let (status, answer) = post(&f.app, HEARTBEAT, &f.us, &json!({"base_url": null})).await;
        assert_eq!((status, answer["base_url"].as_str()), (200, Some("https://us2.example.com:8443")));
        let (_, answer) = post(&f.app, RESOLVE, &f.ap, &json!({"target_region": "us-east"})).await;
        assert_eq!(answer["regions"][0]["base_url"], "https://us2.example.com:8443");
        f.app.stop().await;
    }

    async fn a_refused_heartbeat_changes_nothing(db: TestDb) {
        let f = fixture(&db).await;
        let before = snapshot(&db.pool).await;
        let body = r#"{"base_url":"https://attacker.example.com"}"#;

        let answer = post_raw(&f.app, HEARTBEAT, None, body).await;
        assert_envelope(&answer, 401, "credential_missing");
        let answer = post_raw(&f.app, HEARTBEAT, Some("Bearer rsc_not-a-credential"), body).await;
        assert_envelope(&answer, 401, "credential_invalid");
        let answer = post_raw(&f.app, HEARTBEAT, Some("Bearer rsc_not-a-credential"), "{}").await;
        assert_envelope(&answer, 401, "credential_invalid");
        // A valid credential with a base URL that is not http(s): refused whole, not even the
        // heartbeat is recorded.
        for url in ["ftp://us.example.com", "us.example.com", ""] {
            let answer = post(&f.app, HEARTBEAT, &f.us, &json!({"base_url": url})).await;
            assert_envelope(&answer, 422, "invalid_request");
        }
        assert_eq!(snapshot(&db.pool).await, before);
        f.app.stop().await;
    }

    /// Issue 12 #6, over HTTP: a heartbeat's `base_url` passes the same rule as
    /// `regions add` without the operator's `--allow-private` (a region cannot point its peers
    /// at the metadata service); refused whole (422, no heartbeat recorded) and the message
    /// never repeats a password or a control character. A region the operator registered
    /// with `--allow-private` keeps its URL but cannot move to another link-local one.
    async fn a_heartbeat_cannot_report_a_metadata_userinfo_or_control_character_url(db: TestDb) {
        let f = fixture(&db).await;
        let before = snapshot(&db.pool).await;
        for url in [
            "http://169.254.169.254",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]",
            "http://[fe80::1%25eth0]:8080",
            "http://metadata.google.internal",
            "http://0.0.0.0:8080",
            "http://user:hunter2@us.example.com",
            "https://us.example.com\nX-Forged: 1",
            "https://us.example.com/\u{7}",
        ] {
            let answer = post(&f.app, HEARTBEAT, &f.us, &json!({"base_url": url})).await;
            assert_envelope(&answer, 422, "invalid_request");
            let message = answer.1["message"].as_str().unwrap();
            assert!(!message.contains("hunter2") && !message.contains('\n') && !message.contains('\u{7}'), "{message}");
        }
        assert_eq!(snapshot(&db.pool).await, before, "a refused heartbeat wrote something");

        let link = broker::actions::RegisterRegionAction::new(db.pool.clone(), OFFLINE_AFTER_SECS)
            .allowing_private(true)
            .run(broker::actions::RegisterRegionInput {
                id: "link-local".into(),
                base_url: "http://169.254.3.4:8080".into(),
                scopes: None,
            })
            .await
            .unwrap()
            .credential;
        let (status, answer) = post(&f.app, HEARTBEAT, &link, &json!({"base_url": "http://169.254.3.4:8080"})).await;
        assert_eq!((status, answer["status"].as_str()), (200, Some("online")), "{answer}");
        let kept = snapshot(&db.pool).await;
        assert_eq!(kept.region("link-local").base_url, "http://169.254.3.4:8080");
        let answer = post(&f.app, HEARTBEAT, &link, &json!({"base_url": "http://169.254.3.5:8080"})).await;
        assert_envelope(&answer, 422, "invalid_request");
        assert_eq!(snapshot(&db.pool).await, kept);
        f.app.stop().await;
    }

    async fn a_region_whose_last_heartbeat_is_too_old_is_reported_offline(db: TestDb) {
        let f = fixture(&db).await;
        let list = broker::actions::ListRegionsAction::new(db.pool.clone(), OFFLINE_AFTER_SECS);
        let status_of = |regions: &[broker::models::RegionView], id: &str| {
            regions.iter().find(|r| r.id == id).unwrap().status
        };
        let (status, answer) = post(&f.app, HEARTBEAT, &f.ap, &json!({})).await;
        assert_eq!((status, answer["status"].as_str()), (200, Some("online")));

        // The last heartbeat was longer ago than offline_after_secs.
        let stale = ship::db::utc_now() - chrono::TimeDelta::seconds(OFFLINE_AFTER_SECS as i64 + 10);
        set_last_heartbeat(&db.pool, "ap-south", Some(stale)).await;
        assert_eq!(status_of(&list.run(()).await.unwrap(), "ap-south"), "offline");
        let (_, answer) = post(&f.app, RESOLVE, &f.eu, &json!({})).await;
        let ap = &answer["regions"][0];
        assert_eq!((ap["id"].as_str(), ap["status"].as_str()), (Some("ap-south"), Some("offline")));
        assert!(ap["last_heartbeat_at"].is_string(), "an offline region still says when it was seen");
        check_token(ap, "eu-west", "ap-south", &SERVED);

        // Within the window it is online.
        let recent = ship::db::utc_now() - chrono::TimeDelta::seconds(OFFLINE_AFTER_SECS as i64 - 10);
        set_last_heartbeat(&db.pool, "ap-south", Some(recent)).await;
        assert_eq!(status_of(&list.run(()).await.unwrap(), "ap-south"), "online");

        // Stale again, then a fresh heartbeat brings it back.
        set_last_heartbeat(&db.pool, "ap-south", Some(stale)).await;
        let (_, answer) = post(&f.app, HEARTBEAT, &f.ap, &json!({})).await;
        assert_eq!(answer["status"], "online");
        assert_eq!(status_of(&list.run(()).await.unwrap(), "ap-south"), "online");
        let row = snapshot(&db.pool).await.region("ap-south").clone();
        assert!(row.last_heartbeat_at.unwrap() > stale);
        f.app.stop().await;
    }

    async fn the_keys_endpoint_serves_the_current_key_first_then_the_retired_ones(db: TestDb) {
        let app = spawn_broker(&db.pool).await;
        // Public: no credential needed.
        let res = app.client.get(app.url(KEYS)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let body: Value = res.json().await.unwrap();
        let raw = body["keys"].as_array().unwrap();
        assert_eq!(raw.len(), 2, "{body}");
        for jwk in raw {
            assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str()), (Some("OKP"), Some("Ed25519")), "{jwk}");
            assert_eq!((jwk["alg"].as_str(), jwk["use"].as_str()), (Some("EdDSA"), Some("sig")), "{jwk}");
            let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
            assert_eq!(x.len(), 32, "{jwk}");
            // The kid is the key's RFC 7638 thumbprint.
            assert_eq!(jwk["kid"].as_str(), Some(PublicJwk::from_public_key(&x).kid.as_str()));
            assert!(jwk.get("d").is_none(), "a private part is served: {jwk}");
        }
        let keys = parse_keys(&body);
        assert!(keys.iter().all(|k| k.public_key().is_ok()));
        assert_eq!(&keys[0], current_key().public_jwk(), "the current key comes first");
        assert_eq!(&keys[1], retired_key().public_jwk());
        app.stop().await;

        // A retired key that is the current key is served once.
        let key = current_key();
        let keys = broker::signing::BrokerKeys::new(
            SigningKey::from_pem(&key.to_pem()).unwrap(),
            &issuer_name(),
            std::time::Duration::from_secs(LIFETIME_SECS),
            vec![key.public_jwk().clone(), retired_key().public_jwk().clone()],
        );
        assert_eq!(keys.public_keys(), [key.public_jwk().clone(), retired_key().public_jwk().clone()]);
    }

    async fn a_resolved_token_verifies_with_exactly_the_served_keys(db: TestDb) {
        let f = fixture(&db).await;
        let body: Value = f.app.client.get(f.app.url(KEYS)).send().await.unwrap().json().await.unwrap();
        let keys = parse_keys(&body);
        let (status, answer) = post(&f.app, RESOLVE, &f.eu, &json!({"target_region": "us-east"})).await;
        assert_eq!(status, 200, "{answer}");
        let token = answer["regions"][0]["token"].as_str().unwrap();

        let at_us = verifier("us-east", &keys);
        let claims = at_us.verify(Some(token), "orders").unwrap();
        assert_eq!((claims.sub.as_str(), claims.aud.as_str()), ("eu-west", "us-east"));
        assert_eq!(TokenVerifier::kid_of(token).as_deref(), Some(keys[0].kid.as_str()), "signed with the first key");

        // During a rotation, a token signed with the retired key is accepted too.
        let retired = ship::auth::TokenIssuer::new(
            SigningKey::from_pem(&retired_key().to_pem()).unwrap(),
            issuer_name(),
            std::time::Duration::from_secs(LIFETIME_SECS),
        );
        let old = retired.issue("eu-west", "us-east", &["orders".to_string()]).unwrap();
        assert!(at_us.verify(Some(&old.token), "orders").is_ok());

        // Without the current key the broker's token is refused; a key the broker does not
        // serve is refused.
        let only_retired = verifier("us-east", &keys[1..]);
        assert!(matches!(only_retired.verify(Some(token), "orders"), Err(AuthError::Invalid(_))));
        let stranger = ship::auth::TokenIssuer::new(SigningKey::generate().unwrap(), issuer_name(), std::time::Duration::from_secs(60));
        let forged = stranger.issue("eu-west", "us-east", &["orders".to_string()]).unwrap();
        assert!(matches!(at_us.verify(Some(&forged.token), "orders"), Err(AuthError::Invalid(_))));
        f.app.stop().await;
    }

    /// Issue 12 #7: a wrong method on a broker route was a 404 (the routes were a scope's
    /// `.route(..)`); it is the documented 405 `method_not_allowed` with an `Allow` header,
    /// and changes nothing.
    async fn a_wrong_method_on_each_broker_route_is_405_with_allow(db: TestDb) {
        let f = fixture(&db).await;
        let before = snapshot(&db.pool).await;
        let auth = format!("Bearer {}", f.eu);
        for (path, allowed, wrong) in [
            (RESOLVE, "POST", [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE]),
            (HEARTBEAT, "POST", [reqwest::Method::GET, reqwest::Method::PATCH, reqwest::Method::DELETE]),
            (KEYS, "GET", [reqwest::Method::POST, reqwest::Method::PUT, reqwest::Method::DELETE]),
        ] {
            for method in wrong {
                let res = f.app.client.request(method.clone(), f.app.url(path))
                    .header("authorization", &auth)
                    .header("content-type", "application/json")
                    .body("{}")
                    .send().await.unwrap();
                let status = res.status().as_u16();
                let allow = res.headers().get("allow").map(|v| v.to_str().unwrap().to_string());
                let body: Value = res.json().await.unwrap();
                assert_envelope(&(status, body), 405, "method_not_allowed");
                assert_eq!(allow.as_deref(), Some(allowed), "{method} {path}");
            }
        }
        assert_eq!(snapshot(&db.pool).await, before, "a refused method wrote something");
        f.app.stop().await;
    }
}
