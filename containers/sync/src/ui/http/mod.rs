//! The sync container's route table. `app` calls [`configure`] with the container's state.

pub mod controllers;
pub mod requests;
pub mod transformers;

use actix_web::web;
use ship::contracts::ResourceRegistry;
use ship::DbPool;

use crate::config::SyncConfig;

/// What the sync controllers need, registered once as `web::Data`.
pub struct SyncState {
    pub pool: DbPool,
    pub registry: ResourceRegistry,
    pub config: SyncConfig,
}

/// Register the sync routes.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<SyncState>) {
    cfg.app_data(state).service(
        web::resource("/sync/{resource}/changes")
            .route(web::get().to(controllers::get_changes::get_changes)),
    );
}
