//! `GET /health/live` (the process answers) and `GET /health/ready` (the database answers and
//! every migration is applied). The ready answer names the region ([`RegionName`], when the
//! app registers it) and carries what the registered [`StatusSources`] report (informational:
//! they never make the process unready).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::contracts::StatusSources;
use crate::db::{migrations, DbError, DbPool};
use crate::errors::{HttpError, StatusCode};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health/live").route(web::get().to(live)))
        .service(web::resource("/health/ready").route(web::get().to(ready)));
}

/// The process answers (it says nothing of the database).
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "health",
    responses((status = 200, description = "The process runs.", body = super::openapi::LiveBody))
)]
pub(super) async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "live"}))
}

/// The region this process serves, for `/health/ready` (registered by the app as
/// `web::Data<RegionName>`): behind a load balancer, which region answered.
#[derive(Debug, Clone)]
pub struct RegionName(pub String);

/// The database answers and every migration is applied.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    responses(
        (status = 200, description = "Ready to serve.", body = super::openapi::ReadyBody),
        (status = 500, description = "`internal_error`: the migration table could not be read.", body = crate::errors::ErrorEnvelope),
        (status = 503, description = "`database_unavailable`: the database does not answer; `migrations_pending`: the schema is behind the binary (`details.pending` names the migrations).", body = crate::errors::ErrorEnvelope),
    )
)]
async fn ready(
    pool: web::Data<DbPool>,
    region: Option<web::Data<RegionName>>,
    sources: Option<web::Data<StatusSources>>,
) -> Result<HttpResponse, HttpError> {
    let backend = pool.backend();
    let pending = pool
        .run(|conn| -> Result<Vec<String>, DbError> { migrations::pending(conn) })
        .await?;
    if !pending.is_empty() {
        return Err(HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "migrations_pending",
            format!(
                "{} migration(s) are not applied; run `regionsync migrate run`",
                pending.len()
            ),
        )
        .with_details(json!({ "pending": pending })));
    }
    let mut body = json!({
        "status": "ready",
        "backend": backend.name(),
        "migrations": "current",
    });
    if let Some(region) = region {
        body["region"] = json!(region.0);
    }
    if let Some(sources) = sources {
        let details: serde_json::Map<String, serde_json::Value> = sources
            .0
            .iter()
            .map(|s| (s.name().to_string(), s.status()))
            .collect();
        body["details"] = serde_json::Value::Object(details);
    }
    Ok(HttpResponse::Ok().json(body))
}
