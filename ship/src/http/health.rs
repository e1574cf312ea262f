//! `GET /health/live` (the process answers) and `GET /health/ready` (the database answers and
//! every migration is applied). The ready answer also carries what the registered
//! [`StatusSources`] report (informational: they never make the process unready).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::contracts::StatusSources;
use crate::db::{migrations, DbError, DbPool};
use crate::errors::{HttpError, StatusCode};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health/live").route(web::get().to(live)))
        .service(web::resource("/health/ready").route(web::get().to(ready)));
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "live"}))
}

async fn ready(
    pool: web::Data<DbPool>,
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
