//! `POST /api/v1/broker/resolve`

use actix_web::{web, HttpRequest, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;

use super::caller;
use crate::actions::ResolveInput;
use crate::ui::http::requests::ResolveRequest;
use crate::ui::http::BrokerState;

/// The regions the caller may call, each with a token for calling it: every other registered
/// region (`{}`), one (`target_region`) or a tenant's home (`tenant_id`); offline ones too.
#[utoipa::path(
    post,
    path = "/api/v1/broker/resolve",
    tag = "broker",
    security(("region_credential" = [])),
    request_body = ResolveRequest,
    responses(
        (status = 200, description = "The regions, each with its token.", body = crate::actions::resolve::ResolveOutput),
        (status = 400, response = ship::http::openapi::BadJson),
        (status = 408, response = ship::http::openapi::BodyTimeout),
        (status = 413, response = ship::http::openapi::PayloadTooLarge),
        (status = 415, response = ship::http::openapi::UnsupportedMediaType),
        (status = 401, description = "`credential_missing`, `credential_invalid`: no registered region's credential.", body = ship::errors::ErrorEnvelope),
        (status = 404, description = "`unknown_tenant`, `unknown_region`: no such tenant placement or region.", body = ship::errors::ErrorEnvelope),
        (status = 422, description = "`invalid_request`: both `tenant_id` and `target_region`, or a bad id; `invalid_body`: a body of the wrong shape.", body = ship::errors::ErrorEnvelope),
        (status = 500, response = ship::http::openapi::InternalError),
        (status = 503, response = ship::http::openapi::Unavailable),
    )
)]
pub async fn resolve(
    req: HttpRequest,
    state: web::Data<BrokerState>,
    body: ship::http::Json<ResolveRequest>,
) -> Result<HttpResponse, HttpError> {
    let body = body.into_inner();
    let out = state
        .resolve
        .run(ResolveInput {
            caller: caller(&req),
            tenant_id: body.tenant_id,
            target_region: body.target_region,
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}
