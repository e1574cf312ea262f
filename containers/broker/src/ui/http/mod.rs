//! The broker's routes (registered only on the region that runs the broker role).

pub mod controllers;
pub mod openapi;
pub mod requests;

use std::sync::Arc;

use actix_web::web;

use crate::actions::{HeartbeatAction, PublicKeysAction, ResolveAction};

pub use openapi::openapi;

/// The actions the broker controllers call, built once by `app`.
pub struct BrokerState {
    pub resolve: Arc<ResolveAction>,
    pub heartbeat: HeartbeatAction,
    pub keys: Arc<PublicKeysAction>,
}

/// Routes are `web::resource(..).route(..)`, so a wrong method is a 405 `method_not_allowed`
/// with an `Allow` header (a scope's `.route(path, ..)` would answer 404).
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<BrokerState>) {
    cfg.app_data(state).service(
        web::scope("/api/v1/broker")
            .service(web::resource("/resolve").route(web::post().to(controllers::resolve::resolve)))
            .service(
                web::resource("/heartbeat")
                    .route(web::post().to(controllers::heartbeat::heartbeat)),
            )
            .service(web::resource("/keys").route(web::get().to(controllers::keys::keys))),
    );
}
