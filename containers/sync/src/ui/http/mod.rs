//! The sync container's route table. `app` calls [`configure`] with the container's state.

pub mod controllers;
pub mod openapi;
pub mod requests;
pub mod transformers;

use std::sync::Arc;

use actix_web::error::JsonPayloadError;
use actix_web::middleware::{from_fn, Compress};
use actix_web::web;
use actix_web::HttpMessage;
use ship::auth::middleware::{require_token, AuthGate};
use ship::contracts::{HybridClock, ResourceRegistry};
use ship::errors::{HttpError, StatusCode};
use ship::DbPool;

use crate::actions::PeerClockMeter;
use crate::actions::{
    ApplyOpsAction, BatchLimits, GetChangesAction, GetDigestAction, GetSnapshotAction,
};
use crate::config::SyncConfig;
use crate::peer_clock::{ClockSink, CLOCK_HEADER};

pub use openapi::openapi;

/// What the sync controllers need, registered once as `web::Data`: the actions, built once,
/// and the token check every route sits behind.
pub struct SyncState {
    pub get_changes: GetChangesAction,
    pub get_snapshot: GetSnapshotAction,
    pub get_digest: GetDigestAction,
    pub apply_ops: ApplyOpsAction,
    pub config: SyncConfig,
    pub auth: web::Data<AuthGate>,
    /// This region's clock: every answer of the sync routes carries its wall time
    /// (`Regionsync-Clock`, ADR 0016).
    pub clock: Arc<HybridClock>,
    /// Where the clocks of the peers that call are measured (one way); none: not measured.
    pub clock_meter: Option<PeerClockMeter>,
}

impl SyncState {
    pub fn new(
        pool: DbPool,
        registry: ResourceRegistry,
        clock: Arc<HybridClock>,
        config: SyncConfig,
        auth: AuthGate,
    ) -> Self {
        let limits = BatchLimits {
            max_ops: config.max_ops_per_batch as usize,
            batch_rows: config.batch_rows,
        };
        Self {
            get_changes: GetChangesAction::new(pool.clone(), registry.clone()),
            get_digest: GetDigestAction::new(
                pool.clone(),
                registry.clone(),
                auth.verifier.region(),
            ),
            get_snapshot: GetSnapshotAction::new(
                pool.clone(),
                registry.clone(),
                auth.verifier.region(),
            ),
            apply_ops: ApplyOpsAction::new(
                auth.verifier.region(),
                pool,
                registry,
                Arc::clone(&clock),
                limits,
            ),
            config,
            auth: web::Data::new(auth),
            clock,
            clock_meter: None,
        }
    }

    /// Measure the clock of every peer whose request carries `Regionsync-Clock` (ADR 0016).
    pub fn measuring_clocks(mut self, meter: PeerClockMeter) -> Self {
        self.clock_meter = Some(meter);
        self
    }
}

/// Around every sync route: the answer carries this region's wall clock (`Regionsync-Clock`),
/// and a verified peer's request that carries its own is a one-way measurement of its clock
/// (taken when the request reached this scope; best effort, off the request's path).
fn exchange_clocks<S, B>(
    clock: Arc<HybridClock>,
    meter: Option<PeerClockMeter>,
) -> impl Fn(
    actix_web::dev::ServiceRequest,
    &S,
) -> futures_util::future::LocalBoxFuture<
    'static,
    Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
> + Clone
where
    S: actix_web::dev::Service<
        actix_web::dev::ServiceRequest,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    S::Future: 'static,
{
    move |req, srv| {
        let arrived = clock.wall_ms();
        let theirs = req
            .headers()
            .get(CLOCK_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::peer_clock::parse_ms);
        let answer = srv.call(req);
        let (clock, meter) = (Arc::clone(&clock), meter.clone());
        Box::pin(async move {
            let mut res = answer.await?;
            if let (Some(meter), Some(theirs)) = (meter, theirs) {
                // Only a caller whose token was verified is a peer to measure.
                let peer = res
                    .request()
                    .extensions()
                    .get::<ship::auth::TokenClaims>()
                    .map(|claims| claims.sub.clone());
                if let Some(sample) =
                    peer.and_then(|p| crate::peer_clock::one_way(&p, arrived, theirs))
                {
                    meter.sample(sample);
                }
            }
            res.headers_mut().insert(
                actix_web::http::header::HeaderName::from_static(CLOCK_HEADER),
                actix_web::http::header::HeaderValue::from(clock.wall_ms()),
            );
            Ok(res)
        })
    }
}

/// Register the sync routes, every one behind the token check (a request without a valid
/// token is refused before its body is read).
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<SyncState>) {
    let batch_bytes = state.config.max_batch_bytes;
    let auth = state.auth.clone();
    let clocks = exchange_clocks(Arc::clone(&state.clock), state.clock_meter.clone());
    // Per resource, not per scope: the middleware then sees the matched `{resource}`.
    cfg.service(
        web::scope("/sync")
            .app_data(state)
            .app_data(auth)
            .wrap_fn(clocks)
            // The reads answer gzip to a reader that asks for it (`Accept-Encoding`); the ops
            // route takes a gzipped body (`Content-Encoding`: actix decodes it, and the byte
            // limit counts the decoded JSON).
            .service(
                web::resource("/{resource}/changes")
                    .wrap(from_fn(require_token))
                    .wrap(Compress::default())
                    .route(web::get().to(controllers::get_changes::get_changes)),
            )
            .service(
                web::resource("/{resource}/snapshot")
                    .wrap(from_fn(require_token))
                    .wrap(Compress::default())
                    .route(web::get().to(controllers::get_snapshot::get_snapshot)),
            )
            .service(
                web::resource("/{resource}/digest")
                    .wrap(from_fn(require_token))
                    .wrap(Compress::default())
                    .route(web::get().to(controllers::get_digest::get_digest)),
            )
            .service(
                web::resource("/{resource}/ops")
                    .wrap(from_fn(require_token))
                    .app_data(ops_json_config(batch_bytes))
                    .route(web::post().to(controllers::apply_ops::apply_ops)),
            ),
    );
}

/// An ops body over the limit is `413 batch_too_large` (the sender halves the batch); every
/// other body problem keeps ship's codes.
fn ops_json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(move |err, _req| {
            match err {
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. } => HttpError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "batch_too_large",
                    format!("the batch body is over {limit} bytes: split the batch"),
                ),
                other => ship::http::json_error(&other),
            }
            .into()
        })
}
