//! `GET /health/live` (the process answers) and `GET /health/ready` (the database answers and
//! every migration is applied).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::db::{migrations, DbError, DbPool};
use crate::errors::{HttpError, StatusCode};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health/live").route(web::get().to(live)))
        .service(web::resource("/health/ready").route(web::get().to(ready)));
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "live"}))
}

async fn ready(pool: web::Data<DbPool>) -> Result<HttpResponse, HttpError> {
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
    Ok(HttpResponse::Ok().json(json!({
        "status": "ready",
        "backend": backend.name(),
        "migrations": "current",
    })))
}
