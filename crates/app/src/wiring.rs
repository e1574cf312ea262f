//! Wiring: the contracts of `ship::contracts` connected to their implementations, once, at
//! start. This is the only place that knows which container implements what.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use ship::contracts::{HybridClock, ResourceRegistry};
use ship::http::Configure;
use ship::{AnyConnection, DbPool, ShipError};
use sync::actions::PullChangesAction;
use sync::ui::http::SyncState;
use sync::SyncChangeRecorder;

use crate::settings::Settings;

/// The shared pieces every process of a region uses.
pub struct Wiring {
    pub registry: ResourceRegistry,
    pub clock: Arc<HybridClock>,
    pub recorder: Arc<SyncChangeRecorder>,
}

impl Wiring {
    /// Build the registry and the clock, resume the clock from the changelog and prepare every
    /// resource's changelog. Blocking (database): run on the blocking pool.
    pub fn build(settings: &Settings, conn: &mut AnyConnection) -> Result<Self, ShipError> {
        let registry = resources().map_err(ShipError::Wiring)?;
        let clock = Arc::new(HybridClock::new(Duration::from_millis(
            settings.sync.max_clock_drift_ms,
        )));
        sync::recorder::resume_clock(conn, &clock)?;
        sync::recorder::prepare_resources(conn, registry.names())?;
        let schema_versions: Vec<(String, i32)> = registry
            .names()
            .filter_map(|name| registry.get(name))
            .map(|r| (r.name().to_string(), r.schema_version() as i32))
            .collect();
        let recorder = Arc::new(SyncChangeRecorder::new(
            settings.region_id.clone(),
            Arc::clone(&clock),
            settings.sync.peer_ids(),
            schema_versions,
        ));
        Ok(Self {
            registry,
            clock,
            recorder,
        })
    }

    /// The route table of every container, with its state.
    pub fn routes(&self, pool: &DbPool, settings: &Settings) -> Configure {
        let sync_state = web::Data::new(SyncState::new(
            pool.clone(),
            self.registry.clone(),
            Arc::clone(&self.clock),
            settings.sync.clone(),
        ));
        let recorder: Arc<dyn ship::contracts::ChangeRecorder> = self.recorder.clone();
        Arc::new(move |cfg: &mut web::ServiceConfig| {
            sync::ui::http::configure(cfg, sync_state.clone());
            customers::ui::http::configure(cfg, Arc::clone(&recorder));
        })
    }
}

impl Wiring {
    /// The pull (anti-entropy) use case, with an HTTP client for the peers.
    pub fn pull_action(
        &self,
        pool: &DbPool,
        settings: &Settings,
    ) -> Result<PullChangesAction, ShipError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ShipError::Wiring(format!("HTTP client: {e}")))?;
        Ok(PullChangesAction::new(
            pool.clone(),
            self.registry.clone(),
            Arc::clone(&self.clock),
            settings.region_id.clone(),
            client,
        ))
    }
}

/// Every synced resource of this binary.
pub fn resources() -> Result<ResourceRegistry, String> {
    let mut registry = ResourceRegistry::new();
    let all: [Arc<dyn ship::contracts::SyncResource>; 1] = [Arc::new(customers::CustomersResource)];
    for resource in all {
        registry.register(resource)?;
    }
    Ok(registry)
}
