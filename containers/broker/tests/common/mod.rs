//! Test support shared by the broker tests: the broker's actions and routes built as the app
//! builds them, registry snapshots (to prove a refused request changed nothing), and raw reads.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use broker::actions::{
    Caller, HeartbeatAction, HeartbeatInput, PlaceTenantAction, PlaceTenantInput, Placement,
    PublicKeysAction, RegisterRegionAction, RegisterRegionInput, ResolveAction,
};
use broker::data::schema::{broker_regions, broker_tenants};
use broker::models::{Region, Tenant};
use broker::signing::BrokerKeys;
use broker::ui::http::BrokerState;
use broker::BrokerError;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use ship::auth::{AuthSettings, PublicJwk, SigningKey};
use ship::errors::ApiError;
use ship::parents::Action;
use ship::testing::{spawn_app, test_signing_key_pem, TestApp};
use ship::DbPool;

/// Lifetime of the tokens the broker under test issues (not the default, so the test proves
/// the configured value is used).
pub const LIFETIME_SECS: u64 = 120;
/// A region is offline when its last heartbeat is older than this.
pub const OFFLINE_AFTER_SECS: u64 = 90;
/// The resources the broker under test serves (what `*` expands to).
pub const SERVED: [&str; 2] = ["customers", "orders"];

pub fn served() -> Vec<String> {
    SERVED.iter().map(|s| s.to_string()).collect()
}

/// The issuer name verifiers expect by default.
pub fn issuer_name() -> String {
    AuthSettings::default().issuer
}

/// The broker's current signing key (the process-wide test key).
pub fn current_key() -> SigningKey {
    SigningKey::from_pem(test_signing_key_pem()).unwrap()
}

/// A retired key, still accepted during a rotation (generated once per test binary).
pub fn retired_key() -> &'static SigningKey {
    static KEY: std::sync::OnceLock<SigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().unwrap())
}

/// The broker's keys: the test key signs, the retired key is accepted.
pub fn broker_keys() -> Arc<BrokerKeys> {
    Arc::new(BrokerKeys::new(
        current_key(),
        &issuer_name(),
        Duration::from_secs(LIFETIME_SECS),
        vec![retired_key().public_jwk().clone()],
    ))
}

pub fn resolve_action(pool: &DbPool, keys: &Arc<BrokerKeys>) -> ResolveAction {
    ResolveAction::new(pool.clone(), Arc::clone(keys), served(), OFFLINE_AFTER_SECS)
}

/// The broker routes on a real server, wired as the app wires them.
pub async fn spawn_broker(pool: &DbPool) -> TestApp {
    let keys = broker_keys();
    let state = web::Data::new(BrokerState {
        resolve: Arc::new(resolve_action(pool, &keys)),
        heartbeat: HeartbeatAction::new(pool.clone(), OFFLINE_AFTER_SECS),
        keys: Arc::new(PublicKeysAction::new(keys)),
    });
    spawn_app(
        pool.clone(),
        Arc::new(move |cfg: &mut web::ServiceConfig| {
            broker::ui::http::configure(cfg, state.clone())
        }),
    )
    .await
}

/// Register `id` and return its credential.
pub async fn register(pool: &DbPool, id: &str, base_url: &str, scopes: Option<&[&str]>) -> String {
    RegisterRegionAction::new(pool.clone(), OFFLINE_AFTER_SECS)
        .run(RegisterRegionInput {
            id: id.into(),
            base_url: base_url.into(),
            scopes: scopes.map(|s| s.iter().map(|x| x.to_string()).collect()),
        })
        .await
        .unwrap()
        .credential
}

pub async fn place(pool: &DbPool, tenant: &str, region: &str) -> Result<Placement, BrokerError> {
    PlaceTenantAction::new(pool.clone())
        .run(PlaceTenantInput {
            tenant_id: tenant.into(),
            region: region.into(),
        })
        .await
}

pub async fn heartbeat(pool: &DbPool, credential: &str) {
    HeartbeatAction::new(pool.clone(), OFFLINE_AFTER_SECS)
        .run(HeartbeatInput {
            caller: Caller::Credential(credential.into()),
            base_url: None,
        })
        .await
        .unwrap();
}

/// Everything the broker stores, in a stable order.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub regions: Vec<Region>,
    pub tenants: Vec<Tenant>,
}

impl Snapshot {
    pub fn region(&self, id: &str) -> &Region {
        self.regions
            .iter()
            .find(|r| r.id == id)
            .unwrap_or_else(|| panic!("no region {id} in {self:?}"))
    }

    pub fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.tenant_id == id)
    }
}

pub async fn snapshot(pool: &DbPool) -> Snapshot {
    pool.run(|conn| -> Result<Snapshot, BrokerError> {
        Ok(Snapshot {
            regions: broker_regions::table
                .order(broker_regions::id)
                .select(Region::as_select())
                .load(conn)?,
            tenants: broker_tenants::table
                .order(broker_tenants::tenant_id)
                .select(Tenant::as_select())
                .load(conn)?,
        })
    })
    .await
    .unwrap()
}

/// Set a region's last heartbeat (to simulate time passing).
pub async fn set_last_heartbeat(pool: &DbPool, id: &str, at: Option<NaiveDateTime>) {
    let id = id.to_string();
    let updated = pool
        .run(move |conn| -> Result<usize, BrokerError> {
            Ok(diesel::update(broker_regions::table.find(id))
                .set(broker_regions::last_heartbeat_at.eq(at))
                .execute(conn)?)
        })
        .await
        .unwrap();
    assert_eq!(updated, 1);
}

/// `err` is the broker error with this status and code.
#[track_caller]
pub fn assert_refused(err: &BrokerError, status: u16, code: &str) {
    assert_eq!(
        (err.status().as_u16(), err.code()),
        (status, code),
        "unexpected error: {err:?}"
    );
}

/// The served keys as JWKs (what `GET /api/v1/broker/keys` answers).
pub fn parse_keys(body: &serde_json::Value) -> Vec<PublicJwk> {
    serde_json::from_value(body["keys"].clone()).unwrap()
}
