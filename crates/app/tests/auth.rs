//! Inter-region tokens on `/sync/*` against a running region, on each backend (QUALITY-BARS
//! R7): every bad token — missing, unreadable, expired, not yet valid, missing a claim, for
//! another audience or issuer, of another algorithm, of an unknown or impostor key, with a
//! `crit` header, over the lifetime cap, for another subject or resource — is refused with its exact status and code
//! and changes nothing; clock skew within the leeway is tolerated; refusals are counted by
//! code; retired keys (`broker.accepted_keys`) and configured keys (`auth.trusted_keys`) are
//! accepted exactly as long as they are configured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use app::startup::{Application, StartOptions};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{count, customer, customers_digest, hlc, settings_for, Region};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::Ed25519KeyPair;
use serde_json::{json, Value};
use ship::auth::{AuthSettings, PublicJwk, SigningKey, TokenClaims, TokenIssuer, TokenVerifier};
use ship::testing::TestDb;

const REGION: &str = "eu-west";
const SOURCE: &str = "us-east";
const OPS: &str = "/sync/customers/ops";
const CHANGES: &str = "/sync/customers/changes";
const ISSUER: &str = "regionsync-broker";

// ---------------------------------------------------------------------------------------------
// Ops batches (as in apply_ops.rs)
// ---------------------------------------------------------------------------------------------

/// Entity ids are unique per call, so every accepted batch changes the database.
fn entity_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "01939d2e-0000-7000-8000-{:012x}",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A valid batch from us-east with one new upsert (`tag` names the op and the customer).
fn valid_batch(tag: &str) -> Value {
    let id = entity_id();
    json!({
        "source_region": SOURCE,
        "batch_id": format!("b-{tag}"),
        "schema_version": 1,
        "ops": [{
            "op_id": format!("op-{tag}"),
            "entity_id": id,
            "kind": "upsert",
            "hlc": hlc(-100),
            "origin": SOURCE,
            "payload": customer(&id, tag, false),
        }],
    })
}

/// What a refused request must leave untouched.
fn state(db: &TestDb) -> (String, i64, i64, i64) {
    let mut c = db.pool.get().unwrap();
    (
        customers_digest(db),
        count(&mut c, "SELECT COUNT(*) FROM sync_changelog"),
        count(&mut c, "SELECT COUNT(*) FROM sync_conflicts"),
        count(&mut c, "SELECT COUNT(*) FROM sync_outbox"),
    )
}

// ---------------------------------------------------------------------------------------------
// HTTP with an exact Authorization header
// ---------------------------------------------------------------------------------------------

/// Send to `base + path` with exactly this `Authorization` header value (or none): a POST of
/// `body` when there is one, else a GET. Returns (status, JSON body).
async fn call(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: Option<&Value>,
    authorization: Option<&str>,
) -> (u16, Value) {
    try_call(client, base, path, body, authorization)
        .await
        .unwrap()
}

/// [`call`], keeping a transport failure (the server dropped the connection) as an error.
async fn try_call(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: Option<&Value>,
    authorization: Option<&str>,
) -> Result<(u16, Value), reqwest::Error> {
    let url = format!("{base}{path}");
    let mut req = match body {
        Some(body) => client.post(url).json(body),
        None => client.get(url),
    };
    if let Some(value) = authorization {
        req = req.header(reqwest::header::AUTHORIZATION, value);
    }
    let res = req.send().await?;
    Ok((
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    ))
}

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

/// (status, error code) of an answer; the code is "" for a success.
fn outcome(status: u16, body: &Value) -> (u16, &str) {
    (status, body["error"].as_str().unwrap_or_default())
}

/// POST a fresh valid batch with `token`; expects it applied.
async fn post_accepted(region: &Region, token: &str, tag: &str) {
    let (status, body) = region.post_with(OPS, &valid_batch(tag), Some(token)).await;
    assert_eq!(status, 200, "{tag}: {body}");
    assert_eq!(body["applied"], 1, "{tag}: {body}");
}

/// GET the feed with `token`; expects 200.
async fn get_accepted(region: &Region, token: &str, what: &str) {
    let (status, body) = region.get_with(CHANGES, Some(token)).await;
    assert_eq!(status, 200, "{what}: {body}");
    assert!(body["changes"].is_array(), "{what}: {body}");
}

/// POST a fresh valid batch and GET the feed with `token`: both refused 401 token_invalid.
async fn refused_as_invalid(region: &Region, token: &str, what: &str) {
    let (status, body) = region.post_with(OPS, &valid_batch(what), Some(token)).await;
    assert_eq!(
        outcome(status, &body),
        (401, "token_invalid"),
        "{what}: POST {body}"
    );
    let (status, body) = region.get_with(CHANGES, Some(token)).await;
    assert_eq!(
        outcome(status, &body),
        (401, "token_invalid"),
        "{what}: GET {body}"
    );
}

// ---------------------------------------------------------------------------------------------
// Tokens, good and bad
// ---------------------------------------------------------------------------------------------

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn jti() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("jti-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Claims eu-west accepts: us-east calling it on `customers`, valid from now for 60 s.
fn good_claims() -> TokenClaims {
    let now = now();
    TokenClaims {
        iss: ISSUER.into(),
        sub: SOURCE.into(),
        aud: REGION.into(),
        scope: vec!["customers".into()],
        iat: now,
        nbf: now,
        exp: now + 60,
        jti: jti(),
    }
}

/// `good_claims` changed by `edit`, signed with the test key (the broker's key in the tests).
fn signed(edit: impl FnOnce(&mut TokenClaims)) -> String {
    let mut claims = good_claims();
    edit(&mut claims);
    ship::testing::test_issuer().sign(&claims).unwrap()
}

fn test_kid() -> String {
    ship::testing::test_issuer().kid().to_string()
}

/// The test signing key as PKCS#8 DER.
fn test_pkcs8() -> Vec<u8> {
    pem::parse(ship::testing::test_signing_key_pem())
        .unwrap()
        .contents()
        .to_vec()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT built by hand: any header, any claims JSON, signed with Ed25519 key `pkcs8`.
fn hand_signed(header: &Value, claims: &Value, pkcs8: &[u8]) -> String {
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).unwrap();
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let signature = pair.sign(input.as_bytes());
    format!("{input}.{}", b64(signature.as_ref()))
}

fn eddsa_header(kid: Option<&str>) -> Value {
    let mut header = json!({"alg": "EdDSA", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    header
}

fn good_claims_json() -> Value {
    serde_json::to_value(good_claims()).unwrap()
}

/// Good claims without `claim`, signed by hand with the test key and its kid.
fn without_claim(claim: &str) -> String {
    let mut claims = good_claims_json();
    assert!(
        claims.as_object_mut().unwrap().remove(claim).is_some(),
        "{claim} is a claim"
    );
    hand_signed(&eddsa_header(Some(&test_kid())), &claims, &test_pkcs8())
}

/// A valid token with one character of its signature changed (the first: every bit of it
/// is significant, unlike the padding bits of the last one).
fn flip_signature(token: &str) -> String {
    let at = token.rfind('.').unwrap() + 1;
    let mut chars: Vec<char> = token.chars().collect();
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    let flipped: String = chars.into_iter().collect();
    assert_ne!(flipped, token);
    flipped
}

/// HS256 over good claims, keyed with `secret`, naming the test key's kid (the classic
/// algorithm-confusion forgery with a public key as the HMAC secret).
fn hs256_forgery(secret: &[u8]) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(test_kid());
    jsonwebtoken::encode(&header, &good_claims(), &EncodingKey::from_secret(secret)).unwrap()
}

/// An issuer with `key`, the default issuer name and lifetime.
fn issuer_with(key: &SigningKey) -> TokenIssuer {
    TokenIssuer::new(
        SigningKey::from_pem(&key.to_pem()).unwrap(),
        ISSUER,
        Duration::from_secs(AuthSettings::default().max_token_lifetime_secs),
    )
}

/// A valid token for us-east → eu-west on `customers`, signed with `key`.
fn token_signed_by(key: &SigningKey) -> String {
    issuer_with(key)
        .issue(SOURCE, REGION, &["customers".to_string()])
        .unwrap()
        .token
}

// ---------------------------------------------------------------------------------------------
// 1. The table of bad tokens
// ---------------------------------------------------------------------------------------------

/// One bad `Authorization` header and what POST ops and GET changes must answer.
struct Case {
    name: String,
    authorization: Option<String>,
    post: (u16, &'static str),
    /// (200, "") where only the POST is refused (the subject check).
    get: (u16, &'static str),
    /// A fragment the refusal's message must contain (why it was refused).
    message: Option<String>,
}

fn case(
    name: &str,
    authorization: Option<String>,
    post: (u16, &'static str),
    get: (u16, &'static str),
) -> Case {
    Case {
        name: name.into(),
        authorization,
        post,
        get,
        message: None,
    }
}

/// Both routes refused alike.
fn both(name: &str, authorization: Option<String>, refusal: (u16, &'static str)) -> Case {
    case(name, authorization, refusal, refusal)
}

const MISSING: (u16, &str) = (401, "token_missing");
const INVALID: (u16, &str) = (401, "token_invalid");

fn bad_token_cases() -> Vec<Case> {
    let now = now();
    let test_public = ship::testing::test_issuer().public_jwk().clone();
    let test_public_bytes = URL_SAFE_NO_PAD.decode(&test_public.x).unwrap();

    // An impostor: another Ed25519 key presenting the test key's kid.
    let impostor = SigningKey::generate().unwrap();
    let impostor_pkcs8 = pem::parse(impostor.to_pem()).unwrap().contents().to_vec();
    let impostor_token = hand_signed(
        &eddsa_header(Some(&test_kid())),
        &good_claims_json(),
        &impostor_pkcs8,
    );
    // Control: the same claims signed by the impostor under its own kid pass a verifier that
    // trusts the impostor, so the region refuses the impostor token for the key alone.
    let impostor_control = hand_signed(
        &eddsa_header(Some(impostor.kid())),
        &good_claims_json(),
        &impostor_pkcs8,
    );
    TokenVerifier::new(
        REGION,
        AuthSettings::default(),
        &[impostor.public_jwk().clone()],
    )
    .unwrap()
    .verify(Some(&impostor_control), "customers")
    .expect("the impostor's claims are otherwise valid");
    // And no configuration can make the impostor's key answer to the test key's kid: a kid
    // must be the key's thumbprint.
    let impostor_jwk = PublicJwk {
        kid: test_kid(),
        ..impostor.public_jwk().clone()
    };
    assert!(TokenVerifier::new(REGION, AuthSettings::default(), &[impostor_jwk]).is_err());

    let alg_none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT", "kid": test_kid()}).to_string()),
        b64(good_claims_json().to_string())
    );

    let mut cases = vec![
        both("no Authorization header", None, MISSING),
        both(
            "Basic credentials",
            Some("Basic dXMtZWFzdDpwYXNzd29yZA==".into()),
            MISSING,
        ),
        both("empty bearer", Some("Bearer ".into()), MISSING),
        both("bearer scheme alone", Some("Bearer".into()), MISSING),
        both("garbage", bearer("not-a-token"), INVALID),
        both("three garbage segments", bearer("abc.def.ghi"), INVALID),
        both(
            "expired beyond the leeway",
            bearer(&signed(|c| {
                c.iat = now - 120;
                c.nbf = now - 120;
                c.exp = now - 60;
            })),
            (401, "token_expired"),
        ),
        both(
            "expired 10 s beyond the leeway",
            bearer(&signed(|c| {
                c.iat = now - 100;
                c.nbf = now - 100;
                c.exp = now - 40;
            })),
            (401, "token_expired"),
        ),
        both(
            "nbf in the future beyond the leeway",
            bearer(&signed(|c| {
                c.nbf = now + 120;
                c.exp = now + 200;
            })),
            (401, "token_not_yet_valid"),
        ),
        both(
            "iat in the future beyond the leeway",
            bearer(&signed(|c| {
                c.iat = now + 120;
                c.exp = now + 200;
            })),
            (401, "token_not_yet_valid"),
        ),
    ];
    // Issue 12 #9: a `crit` header (RFC 7515 §4.1.11) names extensions the verifier must
    // understand, and it understands none; jsonwebtoken's Header dropped the member, so such
    // tokens were accepted. Signed by hand like the seed, differing from it only by `crit`.
    for (what, crit) in [
        ("an extension it defines", json!(["x-replay-ok"])),
        ("a registered claim", json!(["exp"])),
        ("an empty list", json!([])),
    ] {
        let mut header = eddsa_header(Some(&test_kid()));
        header["crit"] = crit;
        header["x-replay-ok"] = json!(true);
        let mut refused = both(
            &format!("crit header naming {what}"),
            bearer(&hand_signed(&header, &good_claims_json(), &test_pkcs8())),
            INVALID,
        );
        refused.message = Some("`crit`".into());
        cases.push(refused);
    }
    for claim in ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope"] {
        let mut missing = both(
            &format!("claim {claim} missing"),
            bearer(&without_claim(claim)),
            INVALID,
        );
        missing.message = Some(format!("`{claim}`"));
        cases.push(missing);
    }
    cases.extend([
        both(
            "wrong audience",
            bearer(&signed(|c| c.aud = "ap-south".into())),
            (403, "token_wrong_audience"),
        ),
        both(
            "wrong issuer",
            bearer(&signed(|c| c.iss = "someone-else".into())),
            INVALID,
        ),
        both("alg none, empty signature", bearer(&alg_none), INVALID),
        both(
            "HS256 keyed with the public key bytes",
            bearer(&hs256_forgery(&test_public_bytes)),
            INVALID,
        ),
        both(
            "HS256 keyed with the JWK x string",
            bearer(&hs256_forgery(test_public.x.as_bytes())),
            INVALID,
        ),
        both(
            "unknown kid",
            bearer(&hand_signed(
                &eddsa_header(Some("no-such-key")),
                &good_claims_json(),
                &test_pkcs8(),
            )),
            INVALID,
        ),
        both(
            "kid missing from the header",
            bearer(&hand_signed(
                &eddsa_header(None),
                &good_claims_json(),
                &test_pkcs8(),
            )),
            INVALID,
        ),
        both(
            "bad signature",
            bearer(&flip_signature(&signed(|_| {}))),
            INVALID,
        ),
        both(
            "another key with the test key's kid",
            bearer(&impostor_token),
            INVALID,
        ),
        both(
            "lifetime over the cap",
            bearer(&signed(|c| c.exp = c.iat + 301)),
            INVALID,
        ),
        case(
            "subject is not the batch's source region",
            bearer(&signed(|c| c.sub = "ap-south".into())),
            (403, "token_wrong_subject"),
            (200, ""),
        ),
        both(
            "scope without the resource",
            bearer(&signed(|c| c.scope = vec!["orders".into()])),
            (403, "token_scope"),
        ),
    ]);
    cases
}

async fn every_bad_token_is_refused(db: &TestDb) {
    let region = Region::start(&settings_for(db, REGION)).await;

    // Something to protect, sent with a token signed by hand (so the hand-made tokens below
    // differ from an accepted one only by what each case changes).
    let hand_made = hand_signed(
        &eddsa_header(Some(&test_kid())),
        &good_claims_json(),
        &test_pkcs8(),
    );
    post_accepted(&region, &hand_made, "seed").await;
    get_accepted(&region, &signed(|_| {}), "a good token").await;
    let before = state(db);
    assert_eq!(before.1, 1, "the seed is in the changelog");

    for (i, case) in bad_token_cases().into_iter().enumerate() {
        let name = &case.name;
        let auth = case.authorization.as_deref();
        let batch = valid_batch(&format!("refused-{i}"));

        let (status, body) = call(&region.client, &region.base, OPS, Some(&batch), auth).await;
        assert_eq!(outcome(status, &body), case.post, "{name}: POST {body}");
        if let Some(fragment) = &case.message {
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains(fragment), "{name}: {body}");
        }
        assert_eq!(state(db), before, "{name}: a refused POST changes nothing");

        let (status, body) = call(&region.client, &region.base, CHANGES, None, auth).await;
        assert_eq!(outcome(status, &body), case.get, "{name}: GET {body}");
        if case.get.0 == 200 {
            assert_eq!(body["changes"].as_array().map(Vec::len), Some(1), "{name}");
        }
        assert_eq!(state(db), before, "{name}: changes nothing");
    }

    // The region still serves good tokens afterwards.
    get_accepted(&region, &signed(|_| {}), "a good token after the refusals").await;
    region.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Clock skew within the leeway
// ---------------------------------------------------------------------------------------------

async fn skew_within_the_leeway_is_accepted(db: &TestDb) {
    let region = Region::start(&settings_for(db, REGION)).await;
    let now = now();
    let cases = [
        (
            "expired 10 s ago",
            signed(|c| {
                c.iat = now - 100;
                c.nbf = now - 100;
                c.exp = now - 10;
            }),
        ),
        (
            "valid in 10 s",
            signed(|c| {
                c.iat = now;
                c.nbf = now + 10;
                c.exp = now + 100;
            }),
        ),
        (
            "issued 10 s in the future",
            signed(|c| {
                c.iat = now + 10;
                c.nbf = now;
                c.exp = now + 100;
            }),
        ),
    ];
    for (i, (what, token)) in cases.iter().enumerate() {
        let before = state(db);
        post_accepted(&region, token, &format!("skew-{i}")).await;
        assert_eq!(state(db).1, before.1 + 1, "{what}: applied");
        get_accepted(&region, token, what).await;
    }
    region.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 3. Refusals are counted
// ---------------------------------------------------------------------------------------------

/// A region started like `Region::start`, keeping a handle on its token verifier.
struct Inspectable {
    base: String,
    client: reqwest::Client,
    verifier: Arc<TokenVerifier>,
    handle: actix_web::dev::ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Inspectable {
    async fn start(settings: &app::Settings) -> Self {
        let app = Application::build(settings, StartOptions::default())
            .await
            .unwrap();
        let verifier = Arc::clone(&app.wiring().broker.verifier);
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let server = tokio::spawn(app.run_until(std::future::pending()));
        Self {
            base,
            client: reqwest::Client::new(),
            verifier,
            handle,
            server,
        }
    }

    async fn send(&self, path: &str, body: Option<&Value>, token: Option<&str>) -> (u16, Value) {
        let authorization = token.and_then(bearer);
        call(
            &self.client,
            &self.base,
            path,
            body,
            authorization.as_deref(),
        )
        .await
    }

    async fn stop(self) {
        self.handle.stop(true).await;
        self.server.abort();
    }
}

/// (path, POST body or GET, bearer token, expected (status, code)).
type Request<'a> = (&'a str, Option<&'a Value>, Option<&'a str>, (u16, &'a str));

async fn refusals_are_counted_by_code(db: &TestDb) {
    let region = Inspectable::start(&settings_for(db, REGION)).await;
    assert_eq!(region.verifier.region(), REGION);
    assert_eq!(region.verifier.kids(), [test_kid()]);
    let zero: BTreeMap<&str, u64> = ship::auth::REFUSAL_CODES.iter().map(|c| (*c, 0)).collect();
    assert_eq!(region.verifier.refusals(), zero, "nothing refused yet");

    let now = now();
    let expired = signed(|c| {
        c.iat = now - 120;
        c.nbf = now - 120;
        c.exp = now - 60;
    });
    let early = signed(|c| {
        c.nbf = now + 120;
        c.exp = now + 200;
    });
    let other_audience = signed(|c| c.aud = "ap-south".into());
    let other_scope = signed(|c| c.scope = vec!["orders".into()]);
    let other_subject = signed(|c| c.sub = "ap-south".into());
    let good = signed(|_| {});

    let batch = valid_batch("counted");
    let requests: [Request; 11] = [
        (OPS, Some(&batch), None, MISSING),
        (CHANGES, None, None, MISSING),
        (OPS, Some(&batch), Some("garbage"), INVALID),
        (CHANGES, None, Some("garbage"), INVALID),
        (CHANGES, None, Some(&expired), (401, "token_expired")),
        (CHANGES, None, Some(&early), (401, "token_not_yet_valid")),
        (
            OPS,
            Some(&batch),
            Some(&other_audience),
            (403, "token_wrong_audience"),
        ),
        (CHANGES, None, Some(&other_scope), (403, "token_scope")),
        (
            OPS,
            Some(&batch),
            Some(&other_subject),
            (403, "token_wrong_subject"),
        ),
        // Accepted requests count nothing.
        (CHANGES, None, Some(&good), (200, "")),
        (CHANGES, None, Some(&other_subject), (200, "")),
    ];
    for (path, body, token, expected) in requests {
        let (status, answer) = region.send(path, body, token).await;
        assert_eq!(
            outcome(status, &answer),
            expected,
            "{path} {token:?}: {answer}"
        );
    }

    let mut expected = zero;
    for (code, n) in [
        ("token_missing", 2),
        ("token_invalid", 2),
        ("token_expired", 1),
        ("token_not_yet_valid", 1),
        ("token_wrong_audience", 1),
        ("token_scope", 1),
        ("token_wrong_subject", 1),
    ] {
        expected.insert(code, n);
    }
    assert_eq!(region.verifier.refusals(), expected);
    region.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Key rotation and configured keys
// ---------------------------------------------------------------------------------------------

/// The kids `GET /api/v1/broker/keys` serves, in order.
async fn served_kids(region: &Region) -> Vec<String> {
    let (status, body) = region.get("/api/v1/broker/keys").await;
    assert_eq!(status, 200, "{body}");
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

async fn a_retired_key_is_accepted_until_it_is_removed(db: &TestDb) {
    let old_kid = test_kid();
    let new_key = SigningKey::generate().unwrap();
    let mut settings = settings_for(db, REGION);
    settings.broker.signing_key = Some(ship::config::Secret::new(new_key.to_pem()));
    settings.broker.accepted_keys = vec![ship::testing::test_issuer().public_jwk().clone()];

    let region = Region::start(&settings).await;
    assert_eq!(
        served_kids(&region).await,
        [new_key.kid().to_string(), old_kid.clone()]
    );
    let old_token = ship::testing::test_token(SOURCE, REGION, &["customers"]);
    post_accepted(&region, &old_token, "rotation-old").await;
    get_accepted(&region, &old_token, "the retired key").await;
    let new_token = token_signed_by(&new_key);
    post_accepted(&region, &new_token, "rotation-new").await;
    get_accepted(&region, &new_token, "the current key").await;
    region.stop().await;

    // The rotation is over: the old key is no longer configured.
    settings.broker.accepted_keys.clear();
    let region = Region::start(&settings).await;
    assert_eq!(served_kids(&region).await, [new_key.kid().to_string()]);
    let before = state(db);
    let old_token = ship::testing::test_token(SOURCE, REGION, &["customers"]);
    refused_as_invalid(&region, &old_token, "the removed key").await;
    assert_eq!(state(db), before, "a refused old-key token changes nothing");
    // Still serving the current key.
    post_accepted(&region, &token_signed_by(&new_key), "after-rotation").await;
    region.stop().await;
}

async fn trusted_keys_are_accepted_while_configured(db: &TestDb) {
    let extra = SigningKey::generate().unwrap();
    let stranger = SigningKey::generate().unwrap();
    let mut settings = settings_for(db, REGION);
    settings.auth.trusted_keys = vec![extra.public_jwk().clone()];

    let region = Region::start(&settings).await;
    let extra_token = token_signed_by(&extra);
    post_accepted(&region, &extra_token, "trusted-extra").await;
    get_accepted(&region, &extra_token, "a trusted key").await;
    // The broker's own key still works beside it.
    post_accepted(&region, &region.token_from(SOURCE), "trusted-broker").await;
    let before = state(db);
    refused_as_invalid(&region, &token_signed_by(&stranger), "an unconfigured key").await;
    assert_eq!(state(db), before, "an unknown key changes nothing");
    region.stop().await;

    settings.auth.trusted_keys.clear();
    let region = Region::start(&settings).await;
    let before = state(db);
    refused_as_invalid(&region, &token_signed_by(&extra), "a key no longer trusted").await;
    assert_eq!(state(db), before, "an untrusted key changes nothing");
    post_accepted(&region, &region.token_from(SOURCE), "untrusted-broker").await;
    region.stop().await;
}

/// A region whose broker key is new trusts the old key through `auth.trusted_keys` alone.
async fn trusted_keys_cover_a_key_the_broker_does_not_serve(db: &TestDb) {
    let new_key = SigningKey::generate().unwrap();
    let mut settings = settings_for(db, REGION);
    settings.broker.signing_key = Some(ship::config::Secret::new(new_key.to_pem()));
    settings.auth.trusted_keys = vec![ship::testing::test_issuer().public_jwk().clone()];
    let region = Region::start(&settings).await;
    assert_eq!(served_kids(&region).await, [new_key.kid().to_string()]);
    let old_token = ship::testing::test_token(SOURCE, REGION, &["customers"]);
    post_accepted(&region, &old_token, "trusted-old").await;
    get_accepted(&region, &old_token, "the trusted old key").await;
    post_accepted(&region, &token_signed_by(&new_key), "trusted-new").await;
    region.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 5. Production bugs these tests expose (they fail until fixed)
// ---------------------------------------------------------------------------------------------

/// Regression: the lifetime cap once computed `exp - iat` unchecked; with `iat = i64::MIN` a
/// debug build panicked in the worker and a release build wrapped to a negative lifetime and
/// accepted a token valid for ~31 years. Now 401 token_invalid.
async fn an_overflowing_lifetime_is_refused(db: &TestDb) {
    let region = Region::start(&settings_for(db, REGION)).await;
    post_accepted(&region, &signed(|_| {}), "seed-overflow").await;
    let before = state(db);
    let now = now();
    let token = signed(|c| {
        c.iat = i64::MIN;
        c.exp = now + 1_000_000_000;
    });
    let batch = valid_batch("overflow");
    for (path, body) in [(OPS, Some(&batch)), (CHANGES, None)] {
        let answer = try_call(
            &region.client,
            &region.base,
            path,
            body,
            bearer(&token).as_deref(),
        )
        .await;
        match answer {
            Ok((status, body)) => {
                assert_eq!(outcome(status, &body), INVALID, "{path}: {body}");
            }
            Err(e) => panic!(
                "{path}: the region dropped the connection instead of answering 401 token_invalid \
                 (the verifier panicked on `exp - iat`): {e}"
            ),
        }
        assert_eq!(state(db), before, "{path}: changes nothing");
    }
    get_accepted(&region, &signed(|_| {}), "a good token afterwards").await;
    region.stop().await;
}

/// Regression: the scope was once checked on the raw, still percent-encoded path, while the
/// router and `web::Path` use the decoded resource: a token scoped to `%63ustomers` read and
/// wrote `customers` through `/sync/%63ustomers/…`. Now the scope is checked on the routed
/// resource: 403 token_scope and nothing changes (and a `customers` token works on that path).
async fn the_scope_is_checked_on_the_routed_resource(db: &TestDb) {
    let region = Region::start(&settings_for(db, REGION)).await;
    post_accepted(&region, &signed(|_| {}), "seed-encoded").await;
    let before = state(db);
    let token = signed(|c| c.scope = vec!["%63ustomers".into()]);
    let authorization = bearer(&token);
    let batch = valid_batch("encoded");
    for (path, body) in [
        ("/sync/%63ustomers/ops", Some(&batch)),
        ("/sync/%63ustomers/changes", None),
    ] {
        let (status, answer) = call(
            &region.client,
            &region.base,
            path,
            body,
            authorization.as_deref(),
        )
        .await;
        assert_eq!(
            outcome(status, &answer),
            (403, "token_scope"),
            "{path}: {answer}"
        );
        assert_eq!(
            state(db),
            before,
            "{path}: a token not covering customers changes nothing"
        );
    }
    // The routed resource is customers, so a customers token is what works there.
    let good = signed(|_| {});
    let (status, answer) = call(
        &region.client,
        &region.base,
        "/sync/%63ustomers/changes",
        None,
        bearer(&good).as_deref(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    region.stop().await;
}

ship::backend_tests! {
    async fn every_bad_token_is_refused_with_its_code_and_changes_nothing(db: TestDb) {
        every_bad_token_is_refused(&db).await;
    }

    async fn clock_skew_within_the_leeway_is_accepted(db: TestDb) {
        skew_within_the_leeway_is_accepted(&db).await;
    }

    async fn the_verifier_counts_every_refusal_by_code(db: TestDb) {
        refusals_are_counted_by_code(&db).await;
    }

    async fn a_retired_signing_key_is_accepted_until_removed_from_accepted_keys(db: TestDb) {
        a_retired_key_is_accepted_until_it_is_removed(&db).await;
    }

    async fn auth_trusted_keys_are_accepted_only_while_configured(db: TestDb) {
        trusted_keys_are_accepted_while_configured(&db).await;
    }

    async fn auth_trusted_keys_cover_a_key_the_broker_no_longer_serves(db: TestDb) {
        trusted_keys_cover_a_key_the_broker_does_not_serve(&db).await;
    }

    async fn a_token_whose_lifetime_overflows_is_refused(db: TestDb) {
        an_overflowing_lifetime_is_refused(&db).await;
    }

    async fn the_scope_is_checked_on_the_resource_actually_served(db: TestDb) {
        the_scope_is_checked_on_the_routed_resource(&db).await;
    }
}
