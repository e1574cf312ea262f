//! The sync container's route table. `app` calls [`configure`] when it assembles the server.

use actix_web::web;

/// Register the sync routes (`/sync/{resource}/changes`, `/sync/{resource}/ops` with the
/// sync-core issue).
pub fn configure(_cfg: &mut web::ServiceConfig) {}
