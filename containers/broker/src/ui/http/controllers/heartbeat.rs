//! `POST /api/v1/broker/heartbeat`

use actix_web::{web, HttpRequest, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;

use super::caller;
use crate::actions::HeartbeatInput;
use crate::ui::http::requests::HeartbeatRequest;
use crate::ui::http::BrokerState;

/// Marks the caller online (and records where it is reached now, when it says); answers its
/// registry entry.
#[utoipa::path(
    post,
    path = "/api/v1/broker/heartbeat",
    tag = "broker",
    security(("region_credential" = [])),
    request_body = HeartbeatRequest,
    responses(
        (status = 200, description = "The caller's registry entry.", body = crate::models::RegionView),
        (status = 400, response = ship::http::openapi::BadJson),
        (status = 408, response = ship::http::openapi::BodyTimeout),
        (status = 413, response = ship::http::openapi::PayloadTooLarge),
        (status = 415, response = ship::http::openapi::UnsupportedMediaType),
        (status = 401, description = "`credential_missing`, `credential_invalid`: no registered region's credential.", body = ship::errors::ErrorEnvelope),
        (status = 422, description = "`invalid_request`: a `base_url` that is not an http(s) URL, carries `user:password@` or a control character, or names an unspecified, link-local or cloud metadata address (nothing is recorded); `invalid_body`: a body of the wrong shape.", body = ship::errors::ErrorEnvelope),
        (status = 500, response = ship::http::openapi::InternalError),
        (status = 503, response = ship::http::openapi::Unavailable),
    )
)]
pub async fn heartbeat(
    req: HttpRequest,
    state: web::Data<BrokerState>,
    body: ship::http::Json<HeartbeatRequest>,
) -> Result<HttpResponse, HttpError> {
    let region = state
        .heartbeat
        .run(HeartbeatInput {
            caller: caller(&req),
            base_url: body.into_inner().base_url,
        })
        .await?;
    Ok(HttpResponse::Ok().json(region))
}
