//! The broker's registry and tenant placement, through the actions the CLI calls, on SQLite
//! and MariaDB: credentials are shown once and stored as their SHA-256, every refusal has its
//! status and code and changes nothing, placements count their moves in the epoch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use broker::actions::{
    Caller, HeartbeatAction, HeartbeatInput, ListRegionsAction, RegisterRegionAction,
    RegisterRegionInput, RegisterSelfAction, RegisterSelfInput, RemoveRegionAction, ResolveAction,
    ResolveInput,
};
use broker::BrokerError;
use common::{
    assert_refused, broker_keys, heartbeat, place, register, resolve_action, snapshot,
    OFFLINE_AFTER_SECS,
};
use sha2::{Digest, Sha256};
use ship::parents::Action;
use ship::testing::TestDb;
use ship::DbPool;

fn register_action(pool: &DbPool) -> RegisterRegionAction {
    RegisterRegionAction::new(pool.clone(), OFFLINE_AFTER_SECS)
}

fn input(id: &str, base_url: &str, scopes: Option<&[&str]>) -> RegisterRegionInput {
    RegisterRegionInput {
        id: id.into(),
        base_url: base_url.into(),
        scopes: scopes.map(|s| s.iter().map(|x| x.to_string()).collect()),
    }
}

async fn list(pool: &DbPool) -> Vec<broker::models::RegionView> {
    ListRegionsAction::new(pool.clone(), OFFLINE_AFTER_SECS)
        .run(())
        .await
        .unwrap()
}

/// Whether `credential` authenticates at the broker (resolve is the cheapest proof).
async fn authenticates(resolve: &ResolveAction, credential: &str) -> Result<String, BrokerError> {
    resolve
        .run(ResolveInput {
            caller: Caller::Credential(credential.into()),
            tenant_id: None,
            target_region: None,
        })
        .await
        .map(|out| out.region)
}

ship::backend_tests! {
    async fn register_returns_a_credential_stored_only_as_its_sha256(db: TestDb) {
        let registered = register_action(&db.pool)
            .run(input("eu-west", "https://eu.example.com", None))
            .await
            .unwrap();
        let credential = registered.credential.clone();
        assert!(credential.starts_with("rsc_"), "{credential}");
        assert_eq!(credential.len(), "rsc_".len() + 43, "256 bits in base64url: {credential}");
        assert_eq!(registered.region.id, "eu-west");
        assert_eq!(registered.region.base_url, "https://eu.example.com");
        assert_eq!(registered.region.scopes, "*");
        assert_eq!(registered.region.status, "offline", "no heartbeat yet");
        assert_eq!(registered.region.last_heartbeat_at, None);

        let other = register(&db.pool, "us-east", "http://us.example.com:8080", Some(&["customers", "orders"])).await;
        assert_ne!(credential, other, "every region gets its own credential");

        let stored = snapshot(&db.pool).await;
        let row = stored.region("eu-west");
        // Computed here, independently of the broker's own helper.
        assert_eq!(row.credential_hash, hex::encode(Sha256::digest(credential.as_bytes())));
        assert_eq!(row.credential_hash, broker::credentials::hash(&credential));
        assert_eq!(stored.region("us-east").credential_hash, hex::encode(Sha256::digest(other.as_bytes())));
        assert_eq!(stored.region("us-east").scopes, "customers,orders");
        // The plaintext is nowhere in the registry (every column of every row).
        for r in &stored.regions {
            for column in [&r.id, &r.base_url, &r.credential_hash, &r.scopes] {
                for secret in [&credential, &other] {
                    assert!(!column.contains(secret.as_str()), "plaintext credential stored in {r:?}");
                    assert!(!column.contains(secret.trim_start_matches("rsc_")), "credential body stored in {r:?}");
                }
            }
        }
        assert!(stored.tenants.is_empty());

        // The credential is what authenticates; its stored hash is not.
        let resolve = resolve_action(&db.pool, &broker_keys());
        assert_eq!(authenticates(&resolve, &credential).await.unwrap(), "eu-west");
        let err = authenticates(&resolve, &row.credential_hash).await.unwrap_err();
        assert_refused(&err, 401, "credential_invalid");
    }

    async fn registering_an_existing_id_is_refused_with_region_exists(db: TestDb) {
        let credential = register(&db.pool, "eu-west", "http://eu.example.com", None).await;
        let before = snapshot(&db.pool).await;

        let err = register_action(&db.pool)
            .run(input("eu-west", "http://elsewhere.example.com", Some(&["customers"])))
            .await
            .unwrap_err();
        assert!(matches!(&err, BrokerError::RegionExists(id) if id == "eu-west"), "{err:?}");
        assert_refused(&err, 409, "region_exists");

        // Nothing changed: same URL, same scopes, same credential hash; the old credential
        // still works.
        assert_eq!(snapshot(&db.pool).await, before);
        let resolve = resolve_action(&db.pool, &broker_keys());
        assert_eq!(authenticates(&resolve, &credential).await.unwrap(), "eu-west");
    }

    async fn invalid_ids_base_urls_and_scopes_are_refused_with_422(db: TestDb) {
        register(&db.pool, "eu-west", "http://eu.example.com", None).await;
        let before = snapshot(&db.pool).await;
        let long_id = "x".repeat(33);
        let long_url = format!("http://{}", "x".repeat(2048));
        let mut bad: Vec<RegisterRegionInput> = Vec::new();
        for id in ["", "EU-West", "eu_west", "eu west", "eu.west", "é", long_id.as_str()] {
            bad.push(input(id, "http://ok.example.com", None));
        }
        for url in ["", "eu.example.com", "ftp://eu.example.com", "HTTP://eu.example.com", "http://", "//eu", long_url.as_str()] {
            bad.push(input("us-east", url, None));
        }
        for scopes in [
            &[][..],
            &[""][..],
            &["*"][..],
            &["Customers"][..],
            &["cust-omers"][..],
            &["customers,orders"][..],
            &["customers", "bad scope"][..],
        ] {
            bad.push(input("us-east", "http://us.example.com", Some(scopes)));
        }
        for case in bad {
            let err = register_action(&db.pool).run(case.clone()).await.unwrap_err();
            assert!(matches!(err, BrokerError::Invalid(_)), "{case:?}: {err:?}");
            assert_refused(&err, 422, "invalid_request");
        }
        // An invalid request for an id that exists is still only invalid, and changes nothing.
        let err = register_action(&db.pool).run(input("eu-west", "ftp://x", None)).await.unwrap_err();
        assert_refused(&err, 422, "invalid_request");
        assert_eq!(snapshot(&db.pool).await, before, "a refused registration wrote something");

        // The limits themselves are accepted.
        let id = "a".repeat(32);
        let url = format!("https://{}", "x".repeat(2048 - "https://".len()));
        let ok = register_action(&db.pool).run(input(&id, &url, Some(&["customers_2", "orders"]))).await.unwrap();
        assert_eq!((ok.region.id.len(), ok.region.base_url.len()), (32, 2048));
        assert_eq!(ok.region.scopes, "customers_2,orders");
    }

    /// Issue 12 #6: `regions add` accepted the cloud metadata address, `user:pw@` (which
    /// `regions list` then printed) and a raw newline. Link-local and metadata addresses need
    /// the operator's `--allow-private`; user information, control characters and unspecified
    /// addresses are refused even with it; every refusal is a 422 that writes nothing.
    async fn regions_add_refuses_metadata_userinfo_and_control_character_urls(db: TestDb) {
        register(&db.pool, "eu-west", "http://eu.example.com", None).await;
        let before = snapshot(&db.pool).await;
        let metadata = [
            "http://169.254.169.254",
            "http://169.254.169.254/latest/meta-data/iam/",
            "http://2852039166",
            "http://[fe80::1]:8080",
            "http://[fd00:ec2::254]",
            "http://[::ffff:169.254.169.254]",
            "http://metadata.google.internal",
            "http://0.0.0.0:8080",
        ];
        let never = [
            "http://user:pw@us.example.com",
            "http://user:pw@169.254.169.254",
            "http://@us.example.com",
            "http://us.example.com\nX-Row: forged",
            "http://us.example.com\n",
            "http://us.example.com/\u{1b}[2J",
            "http://0.0.0.0:8080",
            "http://[::]:8080",
        ];
        for url in metadata {
            let err = register_action(&db.pool).run(input("us-east", url, None)).await.unwrap_err();
            assert_refused(&err, 422, "invalid_request");
        }
        for url in never {
            for allow in [false, true] {
                let err = register_action(&db.pool).allowing_private(allow)
                    .run(input("us-east", url, None)).await.unwrap_err();
                assert_refused(&err, 422, "invalid_request");
                let m = err.to_string();
                assert!(!m.contains("pw@") && !m.contains('\n') && !m.contains('\u{1b}'), "{url:?}: {m}");
            }
        }
        assert_eq!(snapshot(&db.pool).await, before, "a refused registration wrote something");

        // Loopback and private networks need no flag (the README registers 127.0.0.1).
        for (id, url) in [("lo", "http://127.0.0.1:8082"), ("lan", "http://10.0.0.2:8080"), ("lan6", "http://[fd12::2]:8080")] {
            register_action(&db.pool).run(input(id, url, None)).await.unwrap();
        }
        // With the operator's word, a link-local address is registered as given.
        let ok = register_action(&db.pool).allowing_private(true)
            .run(input("us-east", "http://169.254.10.20:8080", None)).await.unwrap();
        assert_eq!(ok.region.base_url, "http://169.254.10.20:8080");
        assert_eq!(snapshot(&db.pool).await.region("us-east").base_url, "http://169.254.10.20:8080");
    }

    /// Issue 12 #6, the broker region's own URL (`broker.public_url`): it arrives without
    /// the operator's flag, so a new or changed one passes the default rule; the URL already
    /// registered with `--allow-private` is kept.
    async fn register_self_applies_the_default_url_rule_to_what_it_stores(db: TestDb) {
        let action = RegisterSelfAction::new(db.pool.clone());
        let register_self = |url: &str, explicit: bool| {
            action.run(RegisterSelfInput {
                id: "eu-west".into(),
                base_url: url.into(),
                explicit,
            })
        };
        for url in ["http://169.254.169.254:8080", "http://a:b@eu.example.com", "http://0.0.0.0:8080"] {
            let err = register_self(url, true).await.unwrap_err();
            assert_refused(&err, 422, "invalid_request");
        }
        assert!(snapshot(&db.pool).await.regions.is_empty());

        register_action(&db.pool).allowing_private(true)
            .run(input("eu-west", "http://169.254.0.8:8080", None)).await.unwrap();
        // The same URL again (every start and heartbeat): kept, heartbeat recorded.
        assert!(!register_self("http://169.254.0.8:8080", true).await.unwrap());
        assert!(snapshot(&db.pool).await.region("eu-west").last_heartbeat_at.is_some());
        // Moving it to another link-local address needs the operator: refused, nothing written.
        let before = snapshot(&db.pool).await;
        let err = register_self("http://169.254.0.9:8080", true).await.unwrap_err();
        assert_refused(&err, 422, "invalid_request");
        assert_eq!(snapshot(&db.pool).await, before);
        // An ordinary URL is taken.
        register_self("https://eu.example.com", true).await.unwrap();
        assert_eq!(snapshot(&db.pool).await.region("eu-west").base_url, "https://eu.example.com");
    }

    async fn removing_an_unknown_region_is_refused_with_unknown_region(db: TestDb) {
        register(&db.pool, "eu-west", "http://eu.example.com", None).await;
        let before = snapshot(&db.pool).await;
        let err = RemoveRegionAction::new(db.pool.clone()).run("us-east".into()).await.unwrap_err();
        assert!(matches!(&err, BrokerError::UnknownRegion(id) if id == "us-east"), "{err:?}");
        assert_refused(&err, 404, "unknown_region");
        assert_eq!(snapshot(&db.pool).await, before);
    }

    async fn a_region_that_is_home_to_a_tenant_cannot_be_removed(db: TestDb) {
        register(&db.pool, "eu-west", "http://eu.example.com", None).await;
        let us = register(&db.pool, "us-east", "http://us.example.com", None).await;
        place(&db.pool, "t1", "us-east").await.unwrap();
        place(&db.pool, "t2", "us-east").await.unwrap();
        let before = snapshot(&db.pool).await;

        let remove = RemoveRegionAction::new(db.pool.clone());
        let err = remove.run("us-east".into()).await.unwrap_err();
        assert_refused(&err, 422, "invalid_request");
        assert!(err.to_string().contains("2 tenant"), "{err}");
        assert_eq!(snapshot(&db.pool).await, before, "nothing removed");
        let resolve = resolve_action(&db.pool, &broker_keys());
        assert_eq!(authenticates(&resolve, &us).await.unwrap(), "us-east", "the credential still works");

        // Once its tenants live elsewhere it can go; the tenants stay placed, its credential
        // stops working at once, and a second removal finds nothing.
        place(&db.pool, "t1", "eu-west").await.unwrap();
        let err = remove.run("us-east".into()).await.unwrap_err();
        assert_refused(&err, 422, "invalid_request");
        place(&db.pool, "t2", "eu-west").await.unwrap();
        remove.run("us-east".into()).await.unwrap();
        let after = snapshot(&db.pool).await;
        assert_eq!(after.regions.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["eu-west"]);
        assert_eq!(after.tenants.len(), 2);
        assert!(after.tenants.iter().all(|t| t.home_region == "eu-west" && t.epoch == 2), "{after:?}");
        let err = authenticates(&resolve, &us).await.unwrap_err();
        assert_refused(&err, 401, "credential_invalid");
        let err = remove.run("us-east".into()).await.unwrap_err();
        assert_refused(&err, 404, "unknown_region");
    }

    async fn list_shows_offline_before_any_heartbeat_and_online_after(db: TestDb) {
        let us = register(&db.pool, "us-east", "http://us.example.com", Some(&["customers"])).await;
        register(&db.pool, "eu-west", "http://eu.example.com", None).await;

        let regions = list(&db.pool).await;
        assert_eq!(regions.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["eu-west", "us-east"], "sorted by id");
        assert!(regions.iter().all(|r| r.status == "offline" && r.last_heartbeat_at.is_none()), "{regions:?}");
        assert_eq!(regions[1].scopes, "customers");
        assert_eq!(regions[1].base_url, "http://us.example.com");

        heartbeat(&db.pool, &us).await;
        let regions = list(&db.pool).await;
        assert_eq!((regions[0].id.as_str(), regions[0].status), ("eu-west", "offline"));
        assert_eq!((regions[1].id.as_str(), regions[1].status), ("us-east", "online"));
        let at = regions[1].last_heartbeat_at.as_deref().unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(at).unwrap();
        let age = chrono::Utc::now().signed_duration_since(at);
        assert!(age.num_seconds().abs() < 30, "last heartbeat {at} is not now");

        // A trusted in-process heartbeat (the broker region) works too.
        HeartbeatAction::new(db.pool.clone(), OFFLINE_AFTER_SECS)
            .run(HeartbeatInput { caller: Caller::Region("eu-west".into()), base_url: None })
            .await
            .unwrap();
        assert!(list(&db.pool).await.iter().all(|r| r.status == "online"));
    }

    async fn the_first_placement_of_a_tenant_is_epoch_1(db: TestDb) {
        register(&db.pool, "eu-west", "http://eu.example.com", None).await;
        let placed = place(&db.pool, "acme", "eu-west").await.unwrap();
        assert_eq!(
            (placed.tenant_id.as_str(), placed.home_region.as_str(), placed.epoch, placed.changed),
            ("acme", "eu-west", 1, true)
        );
        let stored = snapshot(&db.pool).await;
        let row = stored.tenant("acme").unwrap();
        assert_eq!((row.home_region.as_str(), row.epoch), ("eu-west", 1));
        assert_eq!(stored.tenants.len(), 1);
    }

    async fn placing_a_tenant_where_it_lives_changes_nothing(db: TestDb) {
        register(&db.pool, "eu-west", "http://eu.example.com", None).await;
        place(&db.pool, "acme", "eu-west").await.unwrap();
        let before = snapshot(&db.pool).await;
        let again = place(&db.pool, "acme", "eu-west").await.unwrap();
        assert_eq!((again.home_region.as_str(), again.epoch, again.changed), ("eu-west", 1, false));
        assert_eq!(snapshot(&db.pool).await, before, "not even placed_at moves");
    }

    async fn moving_a_tenant_increments_its_epoch(db: TestDb) {
        register(&db.pool, "eu-west", "http://eu.example.com", None).await;
        register(&db.pool, "us-east", "http://us.example.com", None).await;
        place(&db.pool, "acme", "eu-west").await.unwrap();
        place(&db.pool, "other", "eu-west").await.unwrap();
        let before = snapshot(&db.pool).await;

        let moved = place(&db.pool, "acme", "us-east").await.unwrap();
        assert_eq!((moved.home_region.as_str(), moved.epoch, moved.changed), ("us-east", 2, true));
        let back = place(&db.pool, "acme", "eu-west").await.unwrap();
        assert_eq!((back.home_region.as_str(), back.epoch, back.changed), ("eu-west", 3, true));
        let stay = place(&db.pool, "acme", "eu-west").await.unwrap();
        assert_eq!((stay.epoch, stay.changed), (3, false));

        let after = snapshot(&db.pool).await;
        let row = after.tenant("acme").unwrap();
        assert_eq!((row.home_region.as_str(), row.epoch), ("eu-west", 3));
        assert!(row.placed_at >= before.tenant("acme").unwrap().placed_at);
        assert_eq!(after.tenant("other"), before.tenant("other"), "another tenant moved along");
        assert_eq!(after.regions, before.regions);
    }

    async fn placing_a_tenant_in_an_unknown_region_is_refused_and_writes_nothing(db: TestDb) {
        register(&db.pool, "eu-west", "http://eu.example.com", None).await;
        let err = place(&db.pool, "acme", "mars-1").await.unwrap_err();
        assert!(matches!(&err, BrokerError::UnknownRegion(id) if id == "mars-1"), "{err:?}");
        assert_refused(&err, 404, "unknown_region");
        assert!(snapshot(&db.pool).await.tenants.is_empty(), "no tenant row");

        // A placed tenant is not moved to an unknown region either.
        place(&db.pool, "acme", "eu-west").await.unwrap();
        let before = snapshot(&db.pool).await;
        let err = place(&db.pool, "acme", "mars-1").await.unwrap_err();
        assert_refused(&err, 404, "unknown_region");
        assert_eq!(snapshot(&db.pool).await, before);
    }

    async fn invalid_tenant_ids_are_refused_with_422(db: TestDb) {
        register(&db.pool, "eu-west", "http://eu.example.com", None).await;
        let long = "t".repeat(129);
        for id in ["", "acme corp", "acme/1", "acme;", "ü", "a\n", long.as_str()] {
            let err = place(&db.pool, id, "eu-west").await.unwrap_err();
            assert!(matches!(err, BrokerError::Invalid(_)), "{id:?}: {err:?}");
            assert_refused(&err, 422, "invalid_request");
        }
        // Validation comes first: an invalid id in an unknown region is still 422.
        let err = place(&db.pool, "a b", "mars-1").await.unwrap_err();
        assert_refused(&err, 422, "invalid_request");
        assert!(snapshot(&db.pool).await.tenants.is_empty(), "a refused placement wrote a row");

        // Every allowed character, at the length limit.
        let edge = format!("Az09._:-{}", "x".repeat(120));
        let placed = place(&db.pool, &edge, "eu-west").await.unwrap();
        assert_eq!((placed.tenant_id.len(), placed.epoch), (128, 1));
    }
}

/// Regression: `https://` (no host) once passed the base URL check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_url_without_a_host_is_refused() {
    let db = TestDb::sqlite();
    let err = register_action(&db.pool)
        .run(input("eu-west", "https://", None))
        .await
        .map(|r| r.region.base_url);
    assert!(
        matches!(err, Err(BrokerError::Invalid(_))),
        "`https://` accepted as a base URL: {err:?}"
    );
    assert!(snapshot(&db.pool).await.regions.is_empty());
}
