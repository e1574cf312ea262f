//! The broker's routes (registered only on the region that runs the broker role).

pub mod controllers;
pub mod requests;

use std::sync::Arc;

use actix_web::web;

use crate::actions::{HeartbeatAction, PublicKeysAction, ResolveAction};

/// The actions the broker controllers call, built once by `app`.
pub struct BrokerState {
    pub resolve: Arc<ResolveAction>,
    pub heartbeat: HeartbeatAction,
    pub keys: Arc<PublicKeysAction>,
}

pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<BrokerState>) {
    cfg.app_data(state).service(
        web::scope("/api/v1/broker")
            .route("/resolve", web::post().to(controllers::resolve::resolve))
            .route(
                "/heartbeat",
                web::post().to(controllers::heartbeat::heartbeat),
            )
            .route("/keys", web::get().to(controllers::keys::keys)),
    );
}
