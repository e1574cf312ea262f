//! Wiring: the contracts of `ship::contracts` connected to their implementations, once, at
//! start. This is the only place that knows which container implements what.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use broker::actions::{HeartbeatAction, PublicKeysAction, ResolveAction};
use broker::directory::BrokerEndpoint;
use broker::directory::{BrokerDirectory, BrokerLink};
use broker::signing::BrokerKeys;
use broker::ui::http::BrokerState;
use broker::ui::jobs::{BrokerHeartbeatJob, HeartbeatTarget};
use ship::auth::middleware::AuthGate;
use ship::auth::TokenVerifier;
use ship::contracts::{
    Domain, HybridClock, KeySource, MetricsSources, PeerDirectory, ResourceRegistry, StatusSources,
};
use ship::http::Configure;
use ship::{AnyConnection, DbPool, ShipError};
use sync::actions::{DispatchOutboxAction, EvaluateAlertsAction, PullChangesAction};
use sync::ui::http::SyncState;
use sync::ui::jobs::SendAnomalyAlertJob;
use sync::SyncChangeRecorder;

use crate::settings::Settings;

/// The shared pieces every process of a region uses.
pub struct Wiring {
    pub registry: ResourceRegistry,
    pub clock: Arc<HybridClock>,
    pub recorder: Arc<SyncChangeRecorder>,
    pub broker: BrokerWiring,
    /// Where this process measures the peers' clocks (ADR 0016): the web routes (one way) and
    /// the scheduler's jobs that call peers (round trip).
    pub clock_meter: sync::actions::PeerClockMeter,
}

/// The broker role (when this region runs it), the peer directory and the token verifier.
pub struct BrokerWiring {
    /// Present on the region that runs the broker role.
    pub keys: Option<Arc<BrokerKeys>>,
    pub resolve: Option<Arc<ResolveAction>>,
    pub directory: Arc<BrokerDirectory>,
    pub verifier: Arc<TokenVerifier>,
}

/// The environment variable that skews this process's wall clock, in milliseconds (signed).
/// For fault-injection tests only (QUALITY-BARS R1 and R5 run a region ahead or behind).
pub const CLOCK_SKEW_ENV: &str = "CHAOS_CLOCK_SKEW_MS";

/// The region's hybrid clock: the system clock, skewed by `CLOCK_SKEW_ENV` when set.
fn region_clock(max_drift_ms: u64) -> HybridClock {
    let drift = Duration::from_millis(max_drift_ms);
    let skew = std::env::var(CLOCK_SKEW_ENV).ok().and_then(|v| {
        let parsed = v.trim().parse::<i64>().ok();
        if parsed.is_none() {
            tracing::warn!(value = %v, "{CLOCK_SKEW_ENV} is not a number of milliseconds: ignored");
        }
        parsed.filter(|skew| *skew != 0)
    });
    match skew {
        None => HybridClock::new(drift),
        Some(skew) => {
            tracing::warn!(
                skew_ms = skew,
                "{CLOCK_SKEW_ENV} is set: this region's clock is skewed (tests only)"
            );
            HybridClock::with_time_source(
                drift,
                Arc::new(move || ship::contracts::system_time_ms().saturating_add_signed(skew)),
            )
        }
    }
}

impl Wiring {
    /// Build the registry and the clock, resume the clock from the changelog and prepare every
    /// resource's changelog. Blocking (database, key file): run on the blocking pool.
    pub fn build(
        settings: &Settings,
        conn: &mut AnyConnection,
        pool: &DbPool,
    ) -> Result<Self, ShipError> {
        let mut registry = resources().map_err(ShipError::Wiring)?;
        for (resource, policy) in &settings.sync.conflict_policy {
            registry
                .set_policy(resource, *policy)
                .map_err(|e| ShipError::Wiring(format!("sync.conflict_policy: {e}")))?;
        }
        let clock = Arc::new(region_clock(settings.sync.max_clock_drift_ms));
        sync::recorder::resume_clock(conn, &clock)?;
        sync::recorder::prepare_resources(conn, registry.names())?;
        sync::recorder::prepare_streams(conn, &settings.sync.push_peer_ids(), registry.names())?;
        let schema_versions: Vec<(String, i32)> = registry
            .names()
            .filter_map(|name| registry.get(name))
            .map(|r| (r.name().to_string(), r.schema_version() as i32))
            .collect();
        let recorder = Arc::new(SyncChangeRecorder::new(
            settings.region_id.clone(),
            Arc::clone(&clock),
            settings.sync.push_peer_ids(),
            schema_versions,
        ));
        let broker = BrokerWiring::build(settings, pool, &registry)?;
        let clock_meter = sync::actions::PeerClockMeter::new(pool.clone(), Arc::clone(&clock));
        Ok(Self {
            registry,
            clock,
            recorder,
            broker,
            clock_meter,
        })
    }

    /// The route table of every container, with its state, and `GET /openapi.json` with the
    /// document of them ([`openapi`]).
    pub fn routes(&self, pool: &DbPool, settings: &Settings) -> Result<Configure, ShipError> {
        let keys: Arc<dyn KeySource> = self.broker.directory.clone();
        let gate = AuthGate::new(Arc::clone(&self.broker.verifier), Some(keys));
        let sync_state = web::Data::new(
            SyncState::new(
                pool.clone(),
                self.registry.clone(),
                Arc::clone(&self.clock),
                settings.sync.clone(),
                gate,
            )
            .measuring_clocks(self.clock_meter.clone()),
        );
        let broker_state = match (&self.broker.keys, &self.broker.resolve) {
            (Some(keys), Some(resolve)) => Some(web::Data::new(BrokerState {
                resolve: Arc::clone(resolve),
                heartbeat: HeartbeatAction::new(pool.clone(), settings.broker.offline_after_secs),
                keys: Arc::new(PublicKeysAction::new(Arc::clone(keys))),
            })),
            _ => None,
        };
        let recorder: Arc<dyn ship::contracts::ChangeRecorder> = self.recorder.clone();
        let status = web::Data::new(StatusSources(vec![
            self.broker.directory.clone(),
            self.broker.verifier.clone(),
        ]));
        let region = web::Data::new(ship::http::RegionName(settings.region_id.clone()));
        let metrics = web::Data::new(MetricsSources(vec![
            Arc::new(ship::scheduler::SchedulerMetrics::new(pool.clone())),
            Arc::new(sync::ui::metrics::SyncMetrics::new(
                sync::actions::SyncMetricsAction::new(pool.clone(), settings.region_id.clone()),
            )),
        ]));
        let document = openapi(broker_state.is_some()).map_err(ShipError::Wiring)?;
        let document = web::Data::new(
            ship::http::openapi::OpenApiJson::render(&document)
                .map_err(|e| ShipError::Wiring(format!("the OpenAPI document: {e}")))?,
        );
        let registry = self.registry.clone();
        let domains = domains();
        Ok(Arc::new(move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(status.clone());
            cfg.app_data(region.clone());
            cfg.app_data(metrics.clone());
            sync::ui::http::configure(cfg, sync_state.clone());
            for domain in &domains {
                (domain.routes)(cfg, Arc::clone(&recorder), registry.clone());
            }
            if let Some(state) = &broker_state {
                broker::ui::http::configure(cfg, state.clone());
            }
            ship::http::openapi::configure(cfg, document.clone());
        }))
    }

    /// `job`, its exchanges with peers measuring their clocks (ADR 0016).
    pub fn measuring<J: ship::parents::Job>(&self, job: J) -> sync::peer_clock::MeasuringJob<J> {
        sync::peer_clock::MeasuringJob::new(job, Arc::new(self.clock_meter.clone()))
    }

    /// The peers' directory, as the contract the sync container uses.
    pub fn directory(&self) -> Arc<dyn PeerDirectory> {
        self.broker.directory.clone()
    }

    /// The push use case (outbox dispatch), with an HTTP client for the peers.
    pub fn dispatch_action(
        &self,
        pool: &DbPool,
        settings: &Settings,
    ) -> Result<DispatchOutboxAction, ShipError> {
        let order = self
            .registry
            .dependency_order()
            .map_err(ShipError::Wiring)?;
        Ok(DispatchOutboxAction::new(
            pool.clone(),
            peer_client(settings)?,
            self.directory(),
            settings.region_id.clone(),
            settings.sync.clone(),
        )
        .in_dependency_order(order.into_iter().map(String::from).collect())
        .with_policies(self.registry.clone()))
    }

    /// The anomaly alerts use case, with an HTTP client for the webhook.
    pub fn alerts_action(
        &self,
        pool: &DbPool,
        settings: &Settings,
    ) -> Result<EvaluateAlertsAction, ShipError> {
        Ok(EvaluateAlertsAction::new(
            pool.clone(),
            self.directory(),
            // Each webhook attempt has its own timeout (`alerts.webhook_timeout_secs`).
            http_client(None)?,
            settings.region_id.clone(),
            settings.alerts.clone(),
        )
        .with_feed_hold(
            Duration::from_secs(settings.sync.feed_hold_max_hours.saturating_mul(3600)),
            Duration::from_secs(settings.sync.changelog_retention_hours.saturating_mul(3600)),
        ))
    }

    /// The scheduled anomaly alerts: the use case, with the peers the pull reads (the
    /// configured ones, else the broker's list) for `pull_lag`.
    pub fn alerts_job(
        &self,
        pool: &DbPool,
        settings: &Settings,
    ) -> Result<SendAnomalyAlertJob, ShipError> {
        Ok(SendAnomalyAlertJob::new(
            self.alerts_action(pool, settings)?,
            self.directory(),
            settings.sync.pull_peer_ids(),
        ))
    }

    /// The pull (anti-entropy) use case, with an HTTP client for the peers.
    pub fn pull_action(
        &self,
        pool: &DbPool,
        settings: &Settings,
    ) -> Result<PullChangesAction, ShipError> {
        Ok(PullChangesAction::new(
            pool.clone(),
            self.registry.clone(),
            Arc::clone(&self.clock),
            settings.region_id.clone(),
            peer_client(settings)?,
            self.directory(),
        )
        .with_batch_rows(settings.sync.batch_rows))
    }

    /// The comparison with a peer (`regionsync sync verify`).
    pub fn verify_action(
        &self,
        pool: &DbPool,
        settings: &Settings,
    ) -> Result<sync::actions::VerifyAction, ShipError> {
        Ok(sync::actions::VerifyAction::new(
            pool.clone(),
            self.registry.clone(),
            settings.region_id.clone(),
            peer_client(settings)?,
            self.directory(),
        ))
    }

    /// Taking a peer's side of what `sync verify` found (`regionsync sync repair`).
    pub fn repair_action(
        &self,
        pool: &DbPool,
        settings: &Settings,
    ) -> Result<sync::actions::RepairAction, ShipError> {
        Ok(sync::actions::RepairAction::new(
            pool.clone(),
            self.registry.clone(),
            Arc::clone(&self.clock),
            settings.region_id.clone(),
            peer_client(settings)?,
            self.directory(),
        )
        .gzip(settings.sync.compression))
    }

    /// The snapshot bootstrap (`regionsync sync bootstrap`).
    pub fn bootstrap_action(
        &self,
        pool: &DbPool,
        settings: &Settings,
    ) -> Result<sync::actions::BootstrapAction, ShipError> {
        Ok(sync::actions::BootstrapAction::new(
            pool.clone(),
            self.registry.clone(),
            Arc::clone(&self.clock),
            peer_client(settings)?,
            self.directory(),
        ))
    }

    /// The peers a pull reads: `only`, else the `[[sync.peers]]` ids, else every region the
    /// broker lists.
    pub async fn peers_to_pull(
        &self,
        settings: &Settings,
        only: Option<String>,
    ) -> Result<Vec<String>, ship::contracts::DirectoryError> {
        match only {
            Some(one) => Ok(vec![one]),
            None => {
                sync::ui::jobs::peers_to_pull(
                    self.broker.directory.as_ref(),
                    settings.sync.pull_peer_ids().as_deref(),
                )
                .await
            }
        }
    }
}

/// The OpenAPI document of the routes this process serves (`GET /openapi.json`): ship's part
/// (health, metrics, the document itself, the error envelope, the bearer schemes), each domain's
/// (`Domain::openapi`), the sync container's, and the broker's on the region that runs the
/// broker role (`broker`). A route or schema documented twice is refused with what clashed.
pub fn openapi(broker: bool) -> Result<utoipa::openapi::OpenApi, String> {
    let mut document = ship::http::openapi::document();
    let mut parts = vec![sync::ui::http::openapi()];
    parts.extend(domains().iter().map(|domain| (domain.openapi)()));
    if broker {
        parts.push(broker::ui::http::openapi());
    }
    let clashes: Vec<String> = parts
        .into_iter()
        .flat_map(|part| ship::http::openapi::merge(&mut document, part))
        .collect();
    if clashes.is_empty() {
        Ok(document)
    } else {
        Err(format!("the OpenAPI document: {}", clashes.join("; ")))
    }
}

/// The HTTP client for calling peers (`sync.peer_timeout_secs` per request).
fn peer_client(settings: &Settings) -> Result<reqwest::Client, ShipError> {
    http_client_with(
        Some(Duration::from_secs(settings.sync.peer_timeout_secs)),
        settings.sync.compression,
    )
}

/// An HTTP client for calls to peers (5 s to connect, `timeout` per request).
fn http_client(timeout: Option<Duration>) -> Result<reqwest::Client, ShipError> {
    http_client_with(timeout, false)
}

/// [`http_client`], asking for gzipped answers (and decompressing them) with `gzip`.
fn http_client_with(timeout: Option<Duration>, gzip: bool) -> Result<reqwest::Client, ShipError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .gzip(gzip);
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    builder
        .build()
        .map_err(|e| ShipError::Wiring(format!("HTTP client: {e}")))
}

impl BrokerWiring {
    fn build(
        settings: &Settings,
        pool: &DbPool,
        registry: &ResourceRegistry,
    ) -> Result<Self, ShipError> {
        let config = &settings.broker;
        let served: Vec<String> = registry.names().map(str::to_string).collect();
        if config.enabled {
            let keys = Arc::new(
                BrokerKeys::load(
                    config,
                    &settings.auth.issuer,
                    settings.auth.max_token_lifetime_secs,
                )
                .map_err(|e| ShipError::Wiring(e.to_string()))?,
            );
            let resolve = Arc::new(ResolveAction::new(
                pool.clone(),
                Arc::clone(&keys),
                served,
                config.offline_after_secs,
            ));
            let directory = Arc::new(
                BrokerDirectory::new(BrokerLink::Local {
                    region: settings.region_id.clone(),
                    resolve: Arc::clone(&resolve),
                    keys: Arc::new(PublicKeysAction::new(Arc::clone(&keys))),
                })
                .allow_insecure_http(config.allow_insecure_http)
                .with_peer_urls(config.peer_urls.clone()),
            );
            let verifier = Arc::new(
                TokenVerifier::new(
                    settings.region_id.clone(),
                    settings.auth.clone(),
                    &keys.public_keys(),
                )
                .map_err(|e| ShipError::Wiring(e.to_string()))?,
            );
            return Ok(Self {
                keys: Some(keys),
                resolve: Some(resolve),
                directory,
                verifier,
            });
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(config.request_timeout_secs))
            .timeout(Duration::from_secs(config.request_timeout_secs))
            .build()
            .map_err(|e| ShipError::Wiring(format!("HTTP client: {e}")))?;
        let endpoint = BrokerEndpoint {
            client,
            base_url: config.url.clone().unwrap_or_default(),
            credential: config
                .credential
                .as_ref()
                .map(|c| c.expose().to_string())
                .unwrap_or_default(),
        };
        let directory = Arc::new(
            BrokerDirectory::new(BrokerLink::Remote(endpoint))
                .allow_insecure_http(config.allow_insecure_http)
                .with_peer_urls(config.peer_urls.clone()),
        );
        // The broker's keys are fetched once the process runs (see `refresh_keys`); until
        // then only `[auth] trusted_keys` are accepted, and an unknown kid triggers a fetch.
        let verifier = Arc::new(
            TokenVerifier::new(settings.region_id.clone(), settings.auth.clone(), &[])
                .map_err(|e| ShipError::Wiring(e.to_string()))?,
        );
        Ok(Self {
            keys: None,
            resolve: None,
            directory,
            verifier,
        })
    }

    /// Fetch the broker's public keys into the verifier (a remote broker; the broker region
    /// has its keys from the start). Failures are logged and reported by the directory.
    pub async fn refresh_keys(&self) {
        if self.keys.is_some() {
            return;
        }
        match self.directory.public_keys().await {
            Ok(keys) => match self.verifier.set_keys(&keys) {
                Ok(()) => tracing::debug!(kids = ?self.verifier.kids(), "broker keys refreshed"),
                Err(e) => tracing::warn!(error = %e, "the broker's key set is unusable"),
            },
            Err(e) => tracing::warn!(error = %e, "could not fetch the broker's keys"),
        }
    }

    /// The heartbeat of this region: into its own registry on the broker region, to the
    /// broker otherwise. The URL goes along only when the operator set it
    /// (`broker.public_url`); a derived one only registers the broker region the first time.
    pub fn heartbeat_job(
        &self,
        pool: &DbPool,
        region: &str,
        url: &PublicUrl,
    ) -> BrokerHeartbeatJob {
        BrokerHeartbeatJob::new(if self.keys.is_some() {
            HeartbeatTarget::Local {
                pool: pool.clone(),
                region: region.to_string(),
                url: url.url.clone(),
                explicit: url.explicit,
            }
        } else {
            HeartbeatTarget::Remote {
                directory: Arc::clone(&self.directory),
                url: url.explicit.then(|| url.url.clone()),
            }
        })
    }
}

/// Where the other regions reach this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    pub url: String,
    /// From `broker.public_url`; otherwise derived from the bound address.
    pub explicit: bool,
}

impl PublicUrl {
    /// `broker.public_url`, or `http://` + the bound address (port 0 resolved).
    pub fn of(settings: &Settings, port: u16) -> Self {
        if let Some(url) = &settings.broker.public_url {
            return Self {
                url: url.trim_end_matches('/').to_string(),
                explicit: true,
            };
        }
        let host = settings
            .http
            .bind
            .rsplit_once(':')
            .map_or("127.0.0.1", |(host, _)| host);
        Self {
            url: format!("http://{host}:{port}"),
            explicit: false,
        }
    }
}

/// Every domain container of this binary, one line each (ARCHITECTURE.md, "Adding a domain";
/// `make container NAME=…` adds the line of the container it generates).
pub fn domains() -> Vec<Domain> {
    vec![
        customers::domain(), // the example domain
        orders::domain(),    // orders of a customer (they reference customers)
    ]
}

/// Every synced resource of this binary.
pub fn resources() -> Result<ResourceRegistry, String> {
    let mut registry = ResourceRegistry::new();
    for domain in domains() {
        registry.register(domain.resource)?;
    }
    // Every reference names a registered resource, and they form no cycle (ADR 0015).
    registry.dependency_order()?;
    Ok(registry)
}
