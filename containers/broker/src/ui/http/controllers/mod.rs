//! Controllers: read the credential and the body, call one action, answer JSON.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use ship::auth::middleware::bearer_token;
use ship::errors::HttpError;
use ship::parents::Action;

use super::requests::{HeartbeatRequest, ResolveRequest};
use super::BrokerState;
use crate::actions::{Caller, HeartbeatInput, ResolveInput};

fn caller(req: &HttpRequest) -> Caller {
    Caller::Credential(bearer_token(req).unwrap_or_default().to_string())
}

/// `POST /api/v1/broker/resolve`
pub async fn resolve(
    req: HttpRequest,
    state: web::Data<BrokerState>,
    body: web::Json<ResolveRequest>,
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

/// `POST /api/v1/broker/heartbeat`
pub async fn heartbeat(
    req: HttpRequest,
    state: web::Data<BrokerState>,
    body: web::Json<HeartbeatRequest>,
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

/// `GET /api/v1/broker/keys` (public: verifiers need no credential to read public keys).
pub async fn keys(state: web::Data<BrokerState>) -> Result<HttpResponse, HttpError> {
    let keys = state.keys.run(()).await?;
    Ok(HttpResponse::Ok().json(json!({ "keys": keys })))
}
