//! Regions and a broker over real HTTP, on each backend: a broker region and a region that
//! reaches the broker with its credential sync both ways with broker-issued tokens only; the
//! peer directory refreshes an expired token exactly once and keeps serving its cache while
//! the broker is down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use app::startup::{prepare, StartOptions};
use broker::directory::BrokerEndpoint;
use broker::directory::{BrokerDirectory, BrokerLink};
use common::{customers_digest, register_region, remote_settings_with, settings_for, Region};
use serde_json::{json, Value};
use ship::auth::TokenClaims;
use ship::contracts::{DirectoryError, PeerDirectory, Refresh};
use ship::parents::Action;
use ship::testing::{test_issuer, TestDb};
use sync::actions::PullChangesInput;
use sync::SyncError;

fn customer(name: &str) -> Value {
    json!({"tenant_id": "t1", "name": name, "email": "x@example.com"})
}

fn pull_input(peer: &str) -> PullChangesInput {
    PullChangesInput {
        peer: peer.into(),
        resource: "customers".into(),
        page_limit: 100,
        max_pages: 100,
        run_for: None,
    }
}

ship::backend_tests! {
    async fn a_broker_region_and_a_credentialed_region_sync_both_ways(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        // eu-west runs the broker role; us-east is registered there and told its credential.
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        let credential = register_region(&db, "us-east", "http://127.0.0.1:9").await;
        let mut b_settings = remote_settings_with(&db_b, &a.base, &credential);
        let port = free_port();
        b_settings.http.bind = format!("127.0.0.1:{port}");
        b_settings.broker.public_url = Some(format!("http://127.0.0.1:{port}"));
        let b = Region::start(&b_settings).await;

        // The start-up heartbeat told the broker where us-east really is (its configured
        // public_url), and it is online.
        let regions = broker::actions::ListRegionsAction::new(db.pool.clone(), 90).run(()).await.unwrap();
        let us = regions.iter().find(|r| r.id == "us-east").unwrap();
        assert_eq!((us.base_url.as_str(), us.status), (b.base.as_str(), "online"), "{regions:?}");
        let eu = regions.iter().find(|r| r.id == "eu-west").unwrap();
        assert_eq!((eu.base_url.as_str(), eu.status), (a.base.as_str(), "online"), "the broker registered itself");

        for name in ["Ada", "Grace"] {
            assert_eq!(a.post("/api/v1/customers", &customer(name)).await.0, 201);
        }
        assert_eq!(b.post("/api/v1/customers", &customer("Barbara")).await.0, 201);

        // us-east pulls from eu-west: address and token from the broker over HTTP.
        let (pool_b, wiring_b) = prepare(&b_settings, StartOptions::default()).await.unwrap();
        let pulled = wiring_b.pull_action(&pool_b, &b_settings).unwrap().run(pull_input("eu-west")).await.unwrap();
        assert_eq!((pulled.applied, pulled.caught_up), (2, true), "{pulled:?}");
        // eu-west pulls from us-east through its in-process broker; us-east verifies the
        // token with the keys it fetched from the broker.
        let a_settings = settings_for(&db, "eu-west");
        let (pool_a, wiring_a) = prepare(&a_settings, StartOptions::default()).await.unwrap();
        let pulled = wiring_a.pull_action(&pool_a, &a_settings).unwrap().run(pull_input("us-east")).await.unwrap();
        assert_eq!(pulled.applied, 1, "{pulled:?}");
        assert_eq!(customers_digest(&db), customers_digest(&db_b), "converged");

        // Without a token, or with a token for the other region, nothing gets in.
        let body = json!({"source_region": "eu-west", "batch_id": "x", "schema_version": 1, "ops": []});
        let (status, answer) = b.post_with("/sync/customers/ops", &body, None).await;
        assert_eq!((status, answer["error"].as_str()), (401, Some("token_missing")));
        let for_a = a.token_from("us-east");
        let (status, answer) = b.post_with("/sync/customers/ops", &body, Some(&for_a)).await;
        assert_eq!((status, answer["error"].as_str()), (403, Some("token_wrong_audience")));

        // A rotated credential: the old one is refused at once, the new one works.
        let fresh = broker::actions::RotateCredentialAction::new(db.pool.clone()).run("us-east".into()).await.unwrap();
        let err = wiring_b.broker.directory.grant("eu-west", Refresh::Force).await.unwrap_err();
        assert!(matches!(&err, DirectoryError::Refused { code, .. } if code == "credential_invalid"), "{err}");
        b_settings.broker.credential = Some(ship::config::Secret::new(fresh));
        let (_, wiring_b) = prepare(&b_settings, StartOptions::default()).await.unwrap();
        wiring_b.broker.directory.grant("eu-west", Refresh::Force).await.unwrap();

        // A removed region's credential stops working at once: its directory cannot resolve.
        broker::actions::RemoveRegionAction::new(db.pool.clone()).run("us-east".into()).await.unwrap();
        let err = wiring_b.broker.directory.grant("eu-west", Refresh::Force).await.unwrap_err();
        assert!(matches!(&err, DirectoryError::Refused { code, .. } if code == "credential_invalid"), "{err}");
        a.stop().await;
        b.stop().await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A stand-in server on a free loopback port with the routes `configure` adds.
fn stub(
    configure: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
) -> (String, actix_web::dev::ServerHandle) {
    let server = HttpServer::new(move || App::new().configure(configure.clone()))
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
    let base = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    (base, handle)
}

/// A stand-in broker: answers `resolve` with the grants `mint` makes, counting the calls.
struct FakeBroker {
    base: String,
    resolves: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl FakeBroker {
    async fn start(
        peer_base: String,
        mint: Arc<dyn Fn(usize) -> (String, i64) + Send + Sync>,
    ) -> Self {
        let resolves = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&resolves);
        let (base, handle) = stub(move |cfg: &mut web::ServiceConfig| {
            let (counter, mint, peer_base) =
                (Arc::clone(&counter), Arc::clone(&mint), peer_base.clone());
            cfg.route(
                "/api/v1/broker/resolve",
                web::post().to(move || {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    let (token, expires_at) = mint(n);
                    let body = json!({"region": "us-east", "regions": [{
                        "id": "eu-west", "base_url": peer_base, "status": "online", "scopes": "*",
                        "last_heartbeat_at": null, "token": token, "token_expires_at": expires_at,
                    }]});
                    async move { HttpResponse::Ok().json(body) }
                }),
            );
        });
        Self {
            base,
            resolves,
            handle,
        }
    }

    fn resolves(&self) -> usize {
        self.resolves.load(Ordering::SeqCst)
    }
}

/// A token for us-east → eu-west whose `exp` is `exp_offset` seconds from now.
fn token_expiring_in(exp_offset: i64) -> (String, i64) {
    let now = chrono::Utc::now().timestamp();
    let exp = now + exp_offset;
    let claims = TokenClaims {
        iss: "regionsync-broker".into(),
        sub: "us-east".into(),
        aud: "eu-west".into(),
        scope: vec!["customers".into()],
        iat: (exp - 120).min(now),
        nbf: (exp - 120).min(now),
        exp,
        jti: uuid_like(),
    };
    (test_issuer().sign(&claims).unwrap(), exp)
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    )
}

/// Settings of us-east reaching a stand-in broker (any credential).
fn remote_settings(db: &TestDb, broker: &str) -> app::Settings {
    remote_settings_with(db, broker, "rsc_test")
}

ship::backend_tests! {
    async fn an_expired_token_is_refreshed_exactly_once_then_the_pull_gives_up(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        assert_eq!(a.post("/api/v1/customers", &customer("Ada")).await.0, 201);

        // First grant expired (beyond the 30 s leeway), the refreshed one valid.
        let broker = FakeBroker::start(a.base.clone(), Arc::new(|n| token_expiring_in(if n == 0 { -60 } else { 240 }))).await;
        let settings = remote_settings(&db_b, &broker.base);
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let pull = wiring.pull_action(&pool, &settings).unwrap();
        let pulled = pull.run(pull_input("eu-west")).await.unwrap();
        assert_eq!(pulled.applied, 1);
        assert_eq!(broker.resolves(), 2, "one resolve, one forced refresh");
        // The refreshed token is cached: the next pull asks nobody.
        pull.run(pull_input("eu-west")).await.unwrap();
        assert_eq!(broker.resolves(), 2);
        broker.handle.stop(true).await;

        // A broker that only ever hands out expired tokens: one refresh, then the pull stops.
        let db_c = TestDb::new(db.backend());
        let broker = FakeBroker::start(a.base.clone(), Arc::new(|_| token_expiring_in(-60))).await;
        let settings = remote_settings(&db_c, &broker.base);
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let err = wiring.pull_action(&pool, &settings).unwrap().run(pull_input("eu-west")).await.unwrap_err();
        assert!(matches!(&err, SyncError::PeerAuthRefused { code, .. } if code == "token_expired"), "{err}");
        assert_eq!(broker.resolves(), 2, "refreshed once, never looped");
        assert_eq!(common::count(&mut db_c.pool.get().unwrap(), "SELECT COUNT(*) FROM customers"), 0);
        broker.handle.stop(true).await;
        a.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_leaves_the_cached_directory_in_use_and_says_so() {
    let broker = FakeBroker::start(
        "http://127.0.0.1:9".into(),
        Arc::new(|_| token_expiring_in(240)),
    )
    .await;
    let directory = remote_directory(&broker).with_list_ttl(Duration::ZERO);
    let first = directory.peers().await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(directory.health().broker_reachable);

    broker.handle.stop(true).await;
    // The list is due for a refresh, the broker is gone: the cache answers, and health says so.
    let cached = directory.peers().await.unwrap();
    assert_eq!(cached, first);
    let grant = directory.grant("eu-west", Refresh::IfNeeded).await.unwrap();
    assert_eq!(
        grant.token, first[0].token,
        "a fresh cached token is used without asking"
    );
    let health = directory.health();
    assert!(!health.broker_reachable, "{health:?}");
    assert!(
        health.last_error.is_some() && health.served_from_cache >= 1,
        "{health:?}"
    );
    // A forced refresh (the peer said token_expired) never falls back to the cache.
    let err = directory
        .grant("eu-west", Refresh::Force)
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::BrokerUnreachable(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_cache_is_not_served_when_the_broker_is_down() {
    // Tokens that are already past two thirds of their life and expire in 1 s.
    let broker = FakeBroker::start(
        "http://127.0.0.1:9".into(),
        Arc::new(|_| token_expiring_in(1)),
    )
    .await;
    let directory = remote_directory(&broker);
    directory.grant("eu-west", Refresh::IfNeeded).await.unwrap();
    // A grant with 1 s left is fresh for two thirds of that, then asked for again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    directory.grant("eu-west", Refresh::IfNeeded).await.unwrap();
    assert_eq!(broker.resolves(), 2);
    broker.handle.stop(true).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let err = directory
        .grant("eu-west", Refresh::IfNeeded)
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::BrokerUnreachable(_)), "{err}");
    assert!(directory.peers().await.is_err(), "nothing usable is cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_starts_while_its_broker_is_down_and_reports_it() {
    let db = TestDb::sqlite();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let settings = remote_settings(&db, &url);
    let region = Region::start(&settings).await;
    assert_eq!(
        region.get("/health/ready").await.0,
        200,
        "serving without its broker"
    );
    // Without the broker's keys, every token is refused (and nothing is applied).
    let (status, body) = region.get("/sync/customers/changes").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("token_invalid")),
        "{body}"
    );
    let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
    let err = wiring
        .pull_action(&pool, &settings)
        .unwrap()
        .run(pull_input("eu-west"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            SyncError::Directory(DirectoryError::BrokerUnreachable(_))
        ),
        "{err}"
    );
    let health = wiring.broker.directory.health();
    assert!(
        !health.broker_reachable && health.last_error.is_some(),
        "{health:?}"
    );
    // The serving process says so in its readiness details (and stays ready).
    let (status, ready) = region.get("/health/ready").await;
    assert_eq!(status, 200);
    assert_eq!(
        ready["region"], "us-east",
        "readiness names the region: {ready}"
    );
    assert_eq!(
        ready["details"]["broker"]["broker_reachable"], false,
        "{ready}"
    );
    assert!(
        ready["details"]["broker"]["last_error"].is_string(),
        "{ready}"
    );
    assert_eq!(
        ready["details"]["tokens"]["refusals"]["token_invalid"], 1,
        "{ready}"
    );
    region.stop().await;
}

ship::backend_tests! {
    /// Regression: a region without `broker.public_url` once announced `http://<bind>` in every
    /// heartbeat, replacing the URL the operator registered (peers were sent to their own
    /// loopback). Only an explicit public_url changes the registry now.
    async fn a_derived_url_never_replaces_the_registered_one(db: TestDb) {
        let db_b = TestDb::new(db.backend());
        let a = Region::start(&settings_for(&db, "eu-west")).await;
        let credential = register_region(&db, "us-east", "https://us-east.example.com:8443").await;
        let b = Region::start(&remote_settings_with(&db_b, &a.base, &credential)).await;
        let regions = broker::actions::ListRegionsAction::new(db.pool.clone(), 90).run(()).await.unwrap();
        let us = regions.iter().find(|r| r.id == "us-east").unwrap();
        assert_eq!((us.base_url.as_str(), us.status), ("https://us-east.example.com:8443", "online"), "{regions:?}");
        // The same holds for the broker region itself once it is registered.
        broker::actions::RegisterSelfAction::new(db.pool.clone())
            .run(broker::actions::RegisterSelfInput { id: "eu-west".into(), base_url: "http://127.0.0.1:1".into(), explicit: false })
            .await
            .unwrap();
        let regions = broker::actions::ListRegionsAction::new(db.pool.clone(), 90).run(()).await.unwrap();
        assert_eq!(regions.iter().find(|r| r.id == "eu-west").unwrap().base_url, a.base);
        b.stop().await;
        a.stop().await;
    }

    async fn no_token_is_sent_to_a_peer_over_plain_http_to_a_remote_host(db: TestDb) {
        let broker = FakeBroker::start("http://10.255.255.1:8080".into(), Arc::new(|_| token_expiring_in(240))).await;
        let settings = remote_settings(&db, &broker.base);
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let err = wiring.pull_action(&pool, &settings).unwrap().run(pull_input("eu-west")).await.unwrap_err();
        assert!(matches!(&err, SyncError::Directory(DirectoryError::InsecurePeer { .. })), "{err}");
        assert!(wiring.broker.directory.peers().await.unwrap().is_empty(), "left out of the peer list");
        broker.handle.stop(true).await;
    }
}

/// A peer whose tokens "expire" after two pages each: it serves six empty pages in all.
async fn start_fake_peer() -> (String, actix_web::dev::ServerHandle) {
    let served: Arc<Mutex<std::collections::HashMap<String, usize>>> = Arc::default();
    let pages = Arc::new(AtomicUsize::new(0));
    stub(move |cfg: &mut web::ServiceConfig| {
        let (served, pages) = (Arc::clone(&served), Arc::clone(&pages));
        cfg.route(
            "/sync/customers/changes",
            web::get().to(move |req: actix_web::HttpRequest| {
                let token = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let mut served = served.lock().unwrap();
                let uses = served.entry(token).or_default();
                let answer = if *uses >= 2 {
                    HttpResponse::Unauthorized().json(
                        json!({"error": "token_expired", "message": "expired", "details": null}),
                    )
                } else {
                    *uses += 1;
                    let n = pages.fetch_add(1, Ordering::SeqCst) + 1;
                    HttpResponse::Ok().json(json!({
                        "resource": "customers", "changes": [], "next_cursor": format!("c{n}"),
                        "has_more": n < 6, "high_watermark": "c6", "schema_version": 1,
                    }))
                };
                async move { answer }
            }),
        );
    })
}

ship::backend_tests! {
    /// Regression: a pull once held one token for all its pages and refreshed at most once per
    /// pull, so a catch-up longer than two token lifetimes died with peer_auth_refused.
    async fn a_long_pull_outlives_several_tokens(db: TestDb) {
        let (peer, peer_handle) = start_fake_peer().await;
        let broker = FakeBroker::start(peer, Arc::new(|_| token_expiring_in(240))).await;
        let settings = remote_settings(&db, &broker.base);
        let (pool, wiring) = prepare(&settings, StartOptions::default()).await.unwrap();
        let mut input = pull_input("eu-west");
        input.page_limit = 1;
        let pulled = wiring.pull_action(&pool, &settings).unwrap().run(input).await.unwrap();
        assert_eq!((pulled.pages, pulled.caught_up), (6, true), "{pulled:?}");
        assert_eq!(broker.resolves(), 3, "one grant, then one forced refresh per expiry");
        broker.handle.stop(true).await;
        peer_handle.stop(true).await;
    }
}

/// GET `path` with `token` until it answers `want` (the heartbeat refresh runs every second
/// here) or 15 s pass; the last status.
async fn status_within(region: &Region, path: &str, token: &str, want: u16) -> u16 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let status = region.get_with(path, Some(token)).await.0;
        if status == want || tokio::time::Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

ship::backend_tests! {
    /// Key rotation as a remote region sees it: the broker's new key is fetched on first sight
    /// of its kid; a key the broker stops serving is refused after the next heartbeat refresh.
    async fn a_remote_region_follows_the_brokers_key_rotation(db: TestDb) {
        use ship::auth::{SigningKey, TokenIssuer};
        let db_b = TestDb::new(db.backend());
        let a_port = free_port();
        let a_settings = |signing: &str, accepted: Vec<ship::auth::PublicJwk>| {
            let mut s = settings_for(&db, "eu-west");
            s.http.bind = format!("127.0.0.1:{a_port}");
            s.broker.signing_key = Some(ship::config::Secret::new(signing));
            s.broker.accepted_keys = accepted;
            s
        };
        let old = test_issuer();
        let next_key = SigningKey::generate().unwrap();
        let next_pem = next_key.to_pem();
        let next = TokenIssuer::new(next_key, "regionsync-broker", Duration::from_secs(300));
        let scope = vec!["customers".to_string()];
        let token = |issuer: &TokenIssuer| issuer.issue("eu-west", "us-east", &scope).unwrap().token;

        let a = Region::start(&a_settings(ship::testing::test_signing_key_pem(), vec![])).await;
        let credential = register_region(&db, "us-east", "http://127.0.0.1:9").await;
        let mut b_settings = remote_settings_with(&db_b, &a.base, &credential);
        b_settings.broker.heartbeat_interval_secs = 1;
        let b = Region::start(&b_settings).await;
        let feed = "/sync/customers/changes";
        assert_eq!(b.get_with(feed, Some(&token(&old))).await.0, 200);
        assert_eq!(b.get_with(feed, Some(&token(&next))).await.0, 401, "not published yet");

        // The broker signs with the next key and still accepts the old one.
        a.stop().await;
        let a = Region::start(&a_settings(&next_pem, vec![old.public_jwk().clone()])).await;
        // The unknown-kid refresh is rate-limited (10 s) after the refusal above; the
        // heartbeat refresh (1 s here) brings the new key too.
        assert_eq!(status_within(&b, feed, &token(&next), 200).await, 200, "new key learnt");
        assert_eq!(b.get_with(feed, Some(&token(&old))).await.0, 200, "old key still accepted");

        // The old key leaves accepted_keys: refused after the next refresh.
        a.stop().await;
        let a = Region::start(&a_settings(&next_pem, vec![])).await;
        assert_eq!(status_within(&b, feed, &token(&old), 401).await, 401, "old key dropped");
        let (_, body) = b.get_with(feed, Some(&token(&old))).await;
        assert_eq!(body["error"].as_str(), Some("token_invalid"), "{body}");
        assert_eq!(b.get_with(feed, Some(&token(&next))).await.0, 200);
        a.stop().await;
        b.stop().await;
    }
}

fn remote_directory(broker: &FakeBroker) -> BrokerDirectory {
    BrokerDirectory::new(BrokerLink::Remote(BrokerEndpoint {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
        base_url: broker.base.clone(),
        credential: "rsc_test".into(),
    }))
}

/// Regression: concurrent callers with a cold cache each asked the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_call_to_the_broker() {
    let broker = FakeBroker::start(
        "http://127.0.0.1:9".into(),
        Arc::new(|_| token_expiring_in(240)),
    )
    .await;
    let directory = Arc::new(remote_directory(&broker));
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let directory = Arc::clone(&directory);
            tokio::spawn(async move {
                if i % 2 == 0 {
                    directory
                        .grant("eu-west", Refresh::IfNeeded)
                        .await
                        .map(|g| vec![g])
                } else {
                    directory.peers().await
                }
            })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().len(), 1);
    }
    assert!(
        broker.resolves() <= 2,
        "one list fetch and at most one grant fetch: {}",
        broker.resolves()
    );
    // A forced refresh always asks again, and is then shared by the cache.
    directory.grant("eu-west", Refresh::Force).await.unwrap();
    let before = broker.resolves();
    directory.grant("eu-west", Refresh::IfNeeded).await.unwrap();
    assert_eq!(broker.resolves(), before);
    broker.handle.stop(true).await;
}

/// Regression: with this region's clock ahead of the broker's by more than a token's life, every
/// grant looked expired on arrival: nothing was cached and nothing survived a broker outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_ahead_of_the_brokers_still_caches_grants() {
    // Issued "10 minutes ago" by our clock: exp passed here, a 240 s lifetime by the token.
    let broker = FakeBroker::start(
        "http://127.0.0.1:9".into(),
        Arc::new(|_| {
            let now = chrono::Utc::now().timestamp();
            let claims = TokenClaims {
                iss: "regionsync-broker".into(),
                sub: "us-east".into(),
                aud: "eu-west".into(),
                scope: vec!["customers".into()],
                iat: now - 600,
                nbf: now - 600,
                exp: now - 360,
                jti: uuid_like(),
            };
            (test_issuer().sign(&claims).unwrap(), claims.exp)
        }),
    )
    .await;
    let directory = remote_directory(&broker);
    let first = directory.grant("eu-west", Refresh::IfNeeded).await.unwrap();
    let again = directory.grant("eu-west", Refresh::IfNeeded).await.unwrap();
    assert_eq!((first.token == again.token, broker.resolves()), (true, 1));
    broker.handle.stop(true).await;
    let cached = directory.grant("eu-west", Refresh::IfNeeded).await.unwrap();
    assert_eq!(cached.token, first.token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidated_grant_is_asked_for_again() {
    let broker = FakeBroker::start(
        "http://127.0.0.1:9".into(),
        Arc::new(|_| token_expiring_in(240)),
    )
    .await;
    let directory = remote_directory(&broker);
    directory.grant("eu-west", Refresh::IfNeeded).await.unwrap();
    directory.grant("eu-west", Refresh::IfNeeded).await.unwrap();
    assert_eq!(broker.resolves(), 1, "cached");
    directory.invalidate("eu-west");
    directory.grant("eu-west", Refresh::IfNeeded).await.unwrap();
    assert_eq!(broker.resolves(), 2, "asked again after invalidate");
    broker.handle.stop(true).await;
}

/// Settings of `region` on `db`, reaching the broker at `broker` with `credential`, serving on
/// a free port that its public URL names.
fn remote_region(db: &TestDb, region: &str, broker: &str, credential: &str) -> app::Settings {
    let mut settings = remote_settings_with(db, broker, credential);
    settings.region_id = region.into();
    let port = free_port();
    settings.http.bind = format!("127.0.0.1:{port}");
    settings.broker.public_url = Some(format!("http://127.0.0.1:{port}"));
    settings
}

ship::backend_tests! {
    /// Issue 4: "keep working from the cache while the broker is unreachable, and report
    /// that" — with the whole stack: two regions that reach a third as their broker keep
    /// pushing and pulling with their cached tokens after the broker stops, and say so.
    async fn regions_keep_syncing_from_their_cache_while_the_broker_is_down(db: TestDb) {
        let (db_a, db_b) = (TestDb::new(db.backend()), TestDb::new(db.backend()));
        let hub = Region::start(&settings_for(&db, "hub")).await;
        let cred_a = register_region(&db, "eu-west", "http://127.0.0.1:9").await;
        let cred_b = register_region(&db, "us-east", "http://127.0.0.1:9").await;
        let mut a_settings = remote_region(&db_a, "eu-west", &hub.base, &cred_a);
        a_settings.sync.peers = vec![sync::PeerConfig::both("us-east")];
        let b_settings = remote_region(&db_b, "us-east", &hub.base, &cred_b);
        let a = Region::start(&a_settings).await;
        let b = Region::start(&b_settings).await;
        let (pool_a, wiring_a) = prepare(&a_settings, StartOptions::default()).await.unwrap();
        let (pool_b, wiring_b) = prepare(&b_settings, StartOptions::default()).await.unwrap();
        let push = wiring_a.dispatch_action(&pool_a, &a_settings).unwrap();
        let pull = wiring_b.pull_action(&pool_b, &b_settings).unwrap();

        // With the broker up: a push eu-west → us-east and a pull us-east ← eu-west.
        assert_eq!(a.post("/api/v1/customers", &customer("Ada")).await.0, 201);
        assert_eq!(push.run("w".into()).await.unwrap().delivered, 1);
        assert!(pull.run(pull_input("eu-west")).await.unwrap().caught_up);
        assert_eq!(customers_digest(&db_a), customers_digest(&db_b));

        hub.stop().await;
        // The broker is gone: both directions keep working on the cached tokens.
        assert_eq!(a.post("/api/v1/customers", &customer("Grace")).await.0, 201);
        assert_eq!(push.run("w".into()).await.unwrap().delivered, 1, "pushed on the cached token");
        assert_eq!(b.post("/api/v1/customers", &customer("Barbara")).await.0, 201);
        // eu-west pulls us-east's feed with the token it holds for us-east (the push's).
        let pulled = wiring_a.pull_action(&pool_a, &a_settings).unwrap().run(pull_input("us-east")).await.unwrap();
        assert_eq!(pulled.applied, 1, "Barbara, pulled on the cached token: {pulled:?}");
        let pulled = pull.run(pull_input("eu-west")).await.unwrap();
        assert!(pulled.caught_up, "{pulled:?}");
        assert_eq!(common::count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM customers"), 3);
        assert_eq!(customers_digest(&db_a), customers_digest(&db_b));

        // Asked to refresh, us-east finds the broker gone and reports it, and still syncs.
        let err = wiring_b.broker.directory.grant("eu-west", Refresh::Force).await.unwrap_err();
        assert!(matches!(err, DirectoryError::BrokerUnreachable(_)), "{err}");
        let health = wiring_b.broker.directory.health();
        assert!(!health.broker_reachable && health.last_error.is_some(), "{health:?}");
        assert_eq!(a.post("/api/v1/customers", &customer("Edsger")).await.0, 201);
        assert_eq!(push.run("w".into()).await.unwrap().delivered, 1);
        assert!(pull.run(pull_input("eu-west")).await.unwrap().caught_up);
        assert_eq!(common::count(&mut db_b.pool.get().unwrap(), "SELECT COUNT(*) FROM customers"), 4);
        a.stop().await;
        b.stop().await;
    }
}

/// `regionsync <args>` against `db`, in a scratch directory (the signing key is generated
/// there); (exit code, stdout, stderr).
fn regionsync_cli(db: &TestDb, args: &[&str]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_regionsync"));
    cmd.current_dir(dir.path());
    for (key, _) in std::env::vars() {
        if key.starts_with("REGIONSYNC_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .env("REGIONSYNC_DATABASE__URL", db.url.expose())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

ship::backend_tests! {
    /// Issue 12 #6 at the CLI: `broker regions add` refused nothing (the metadata address, a
    /// password in the URL, a raw newline) and `regions list` printed what was stored. The
    /// metadata address now needs `--allow-private`; user information and control characters
    /// are refused with it too (exit 1, nothing registered); and `list` shows rows stored
    /// before the rule without the password and one row per line.
    async fn regions_add_refuses_unsafe_urls_and_list_never_prints_userinfo(db: TestDb) {
        let add = |id: &str, url: &str, flag: bool| {
            let mut args = vec!["broker", "regions", "add", id, url];
            if flag {
                args.push("--allow-private");
            }
            regionsync_cli(&db, &args)
        };
        let (code, _, stderr) = add("meta", "http://169.254.169.254", false);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("--allow-private"), "{stderr}");
        for (url, flag) in [
            ("http://user:hunter2@us.example.com", false),
            ("http://user:hunter2@us.example.com", true),
            ("http://us.example.com\nforged-row online", false),
            ("http://us.example.com\nforged-row online", true),
            ("http://0.0.0.0:8080", true),
        ] {
            let (code, stdout, stderr) = add("bad", url, flag);
            assert_eq!(code, Some(1), "{url:?} --allow-private={flag}: {stdout}");
            assert!(!stderr.contains("hunter2") && !stderr.contains("\nforged"), "{stderr}");
        }
        let registered = broker::actions::ListRegionsAction::new(db.pool.clone(), 90).run(()).await.unwrap();
        assert!(registered.is_empty(), "{registered:?}");

        let (code, stdout, stderr) = add("meta", "http://169.254.169.254", true);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stdout.contains("registered region meta at http://169.254.169.254"), "{stdout}");
        let (code, _, stderr) = add("lo", "http://127.0.0.1:8082", false);
        assert_eq!(code, Some(0), "loopback needs no flag: {stderr}");

        // Rows stored before the rule.
        db.pool
            .run(|conn| -> Result<(), broker::BrokerError> {
                let now = ship::db::utc_now();
                broker::data::regions::insert(conn, "old-pw", "http://admin:hunter2@old.example.com/x", "h1", "*", now)?;
                broker::data::regions::insert(conn, "old-nl", "http://old.example.com\nforged-row online", "h2", "*", now)?;
                Ok(())
            })
            .await
            .unwrap();
        let (code, stdout, stderr) = regionsync_cli(&db, &["broker", "regions", "list"]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(!stdout.contains("hunter2"), "{stdout}");
        assert!(stdout.contains("http://***@old.example.com/x"), "{stdout}");
        assert!(stdout.contains("http://old.example.com\\nforged-row online"), "{stdout}");
        assert_eq!(stdout.lines().count(), 1 + 4, "a header and one line per region: {stdout}");
        assert!(!stdout.lines().any(|l| l.starts_with("forged-row")), "{stdout}");
    }
}
