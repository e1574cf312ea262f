//! `POST /api/v1/broker/resolve`

use actix_web::{web, HttpRequest, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;

use super::caller;
use crate::actions::ResolveInput;
use crate::ui::http::requests::ResolveRequest;
use crate::ui::http::BrokerState;

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
