//! `GET /api/v1/broker/keys` (public: verifiers need no credential to read public keys).

use actix_web::{web, HttpResponse};
use serde_json::json;
use ship::errors::HttpError;
use ship::parents::Action;

use crate::ui::http::BrokerState;

/// The broker's public keys: the current signing key first, then retired keys still accepted.
#[utoipa::path(
    get,
    path = "/api/v1/broker/keys",
    tag = "broker",
    responses(
        (status = 200, description = "The keys (public: no credential).", body = crate::ui::http::openapi::KeysBody),
    )
)]
pub async fn keys(state: web::Data<BrokerState>) -> Result<HttpResponse, HttpError> {
    let keys = state.keys.run(()).await?;
    Ok(HttpResponse::Ok().json(json!({ "keys": keys })))
}
