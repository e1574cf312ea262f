//! The registry under concurrent writers. Each test has a `::sqlite` and a `::mysql` variant
//! (named as `ship::backend_tests!` names them). On SQLite every transaction starts with
//! `BEGIN IMMEDIATE`; on MariaDB the registry writes serialize on the registry lock row
//! (`data::lock`). Regression tests: before that lock the MariaDB variants failed (500s on
//! duplicate registrations and placements; a tenant homed in a removed region).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use broker::actions::{RegisterRegionAction, RegisterRegionInput, RemoveRegionAction};
use common::{place, register, snapshot, OFFLINE_AFTER_SECS};
use ship::errors::ApiError;
use ship::parents::Action;
use ship::testing::TestDb;
use ship::Backend;

const ROUNDS: usize = 10;
const WRITERS: usize = 6;

/// `status code` of each outcome, counted.
fn tally<T, E: ApiError>(
    results: Vec<Result<T, E>>,
    ok: impl Fn(&T) -> String,
) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in results {
        let key = match r {
            Ok(v) => ok(&v),
            Err(e) => format!("{} {}", e.status().as_u16(), e.code()),
        };
        *out.entry(key).or_insert(0) += 1;
    }
    out
}

async fn concurrent_registrations_of_one_id(backend: Backend) {
    let db = TestDb::new(backend);
    for round in 0..ROUNDS {
        let id = format!("r-{round}");
        let handles: Vec<_> = (0..WRITERS)
            .map(|i| {
                let (pool, id) = (db.pool.clone(), id.clone());
                tokio::spawn(async move {
                    RegisterRegionAction::new(pool, OFFLINE_AFTER_SECS)
                        .run(RegisterRegionInput {
                            id,
                            base_url: format!("http://w{i}.example.com"),
                            scopes: None,
                        })
                        .await
                })
            })
            .collect();
        let mut results = Vec::new();
        for h in handles {
            results.push(h.await.unwrap());
        }
        let outcomes = tally(results, |_| "ok".into());
        let expected = BTreeMap::from([
            ("ok".to_string(), 1),
            ("409 region_exists".to_string(), WRITERS - 1),
        ]);
        assert_eq!(
            outcomes, expected,
            "round {round}: one registration wins, the others are told the region exists"
        );
    }
    assert_eq!(snapshot(&db.pool).await.regions.len(), ROUNDS);
}

async fn concurrent_first_placements_of_one_tenant(backend: Backend) {
    let db = TestDb::new(backend);
    register(&db.pool, "eu-west", "http://eu.example.com", None).await;
    for round in 0..ROUNDS {
        let tenant = format!("t{round}");
        let handles: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (pool, tenant) = (db.pool.clone(), tenant.clone());
                tokio::spawn(async move { place(&pool, &tenant, "eu-west").await })
            })
            .collect();
        let mut results = Vec::new();
        for h in handles {
            results.push(h.await.unwrap());
        }
        let outcomes = tally(results, |p| {
            format!("epoch {} changed {}", p.epoch, p.changed)
        });
        let expected = BTreeMap::from([
            ("epoch 1 changed true".to_string(), 1),
            ("epoch 1 changed false".to_string(), WRITERS - 1),
        ]);
        assert_eq!(
            outcomes, expected,
            "round {round}: one placement, the others find it there"
        );
    }
    let tenants = snapshot(&db.pool).await.tenants;
    assert_eq!(tenants.len(), ROUNDS);
    assert!(tenants.iter().all(|t| t.epoch == 1));
}

async fn removing_a_region_while_a_tenant_is_placed_there(backend: Backend) {
    let db = TestDb::new(backend);
    for round in 0..ROUNDS * 4 {
        let region = format!("r-{round}");
        register(&db.pool, &region, "http://r.example.com", None).await;
        let remove = {
            let (pool, region) = (db.pool.clone(), region.clone());
            tokio::spawn(async move { RemoveRegionAction::new(pool).run(region).await })
        };
        let placed = {
            let (pool, tenant) = (db.pool.clone(), format!("t{round}"));
            tokio::spawn(async move { place(&pool, &tenant, &region).await })
        };
        let (remove, placed) = (remove.await.unwrap(), placed.await.unwrap());
        // Either the placement came first (the removal is refused) or the removal did (the
        // placement finds no region): never both.
        assert!(
            remove.is_ok() != placed.is_ok(),
            "round {round}: remove {remove:?}, place {placed:?}"
        );
    }
    let stored = snapshot(&db.pool).await;
    let orphans: Vec<_> = stored
        .tenants
        .iter()
        .filter(|t| !stored.regions.iter().any(|r| r.id == t.home_region))
        .collect();
    assert!(
        orphans.is_empty(),
        "tenants homed in a removed region: {orphans:?}"
    );
}

mod concurrent_registrations_of_one_id_give_one_region_and_409s {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        concurrent_registrations_of_one_id(Backend::Sqlite).await;
    }

    /// Regression (MariaDB race, fixed by the registry lock).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql() {
        concurrent_registrations_of_one_id(Backend::Mysql).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        concurrent_registrations_of_one_id(Backend::Postgres).await;
    }
}

mod concurrent_first_placements_give_one_epoch_1_row {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        concurrent_first_placements_of_one_tenant(Backend::Sqlite).await;
    }

    /// Regression (MariaDB race, fixed by the registry lock).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql() {
        concurrent_first_placements_of_one_tenant(Backend::Mysql).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        concurrent_first_placements_of_one_tenant(Backend::Postgres).await;
    }
}

mod a_region_is_never_removed_while_a_tenant_is_placed_there {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        removing_a_region_while_a_tenant_is_placed_there(Backend::Sqlite).await;
    }

    /// Regression (MariaDB race, fixed by the registry lock).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql() {
        removing_a_region_while_a_tenant_is_placed_there(Backend::Mysql).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        removing_a_region_while_a_tenant_is_placed_there(Backend::Postgres).await;
    }
}
