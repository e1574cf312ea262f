//! The route table: every container's routes, in one place.

use std::sync::Arc;

use actix_web::web;
use ship::http::Configure;

/// Register the routes of every container (ship adds health routes and the fallbacks).
pub fn configure(cfg: &mut web::ServiceConfig) {
    sync::ui::http::configure(cfg);
}

/// [`configure`] as the shareable closure the server builder takes.
pub fn all() -> Configure {
    Arc::new(configure)
}
