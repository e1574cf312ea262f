//! `POST /api/v1/broker/heartbeat`

use actix_web::{web, HttpRequest, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;

use super::caller;
use crate::actions::HeartbeatInput;
use crate::ui::http::requests::HeartbeatRequest;
use crate::ui::http::BrokerState;

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
