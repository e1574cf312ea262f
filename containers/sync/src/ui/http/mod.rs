//! The sync container's route table. `app` calls [`configure`] with the container's state.

pub mod controllers;
pub mod requests;
pub mod transformers;

use std::sync::Arc;

use actix_web::error::JsonPayloadError;
use actix_web::middleware::{from_fn, Compress};
use actix_web::web;
use ship::auth::middleware::{require_token, AuthGate};
use ship::contracts::{HybridClock, ResourceRegistry};
use ship::errors::{HttpError, StatusCode};
use ship::DbPool;

use crate::actions::{
    ApplyOpsAction, BatchLimits, GetChangesAction, GetDigestAction, GetSnapshotAction,
};
use crate::config::SyncConfig;

/// What the sync controllers need, registered once as `web::Data`: the actions, built once,
/// and the token check every route sits behind.
pub struct SyncState {
    pub get_changes: GetChangesAction,
    pub get_snapshot: GetSnapshotAction,
    pub get_digest: GetDigestAction,
    pub apply_ops: ApplyOpsAction,
    pub config: SyncConfig,
    pub auth: web::Data<AuthGate>,
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
            apply_ops: ApplyOpsAction::new(auth.verifier.region(), pool, registry, clock, limits),
            config,
            auth: web::Data::new(auth),
        }
    }
}

/// Register the sync routes, every one behind the token check (a request without a valid
/// token is refused before its body is read).
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<SyncState>) {
    let batch_bytes = state.config.max_batch_bytes;
    let auth = state.auth.clone();
    // Per resource, not per scope: the middleware then sees the matched `{resource}`.
    cfg.service(
        web::scope("/sync")
            .app_data(state)
            .app_data(auth)
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
