//! `POST /sync/{resource}/ops`

use actix_web::{web, HttpResponse};
use ship::auth::TokenClaims;
use ship::errors::HttpError;
use ship::parents::Action;

use crate::ui::http::requests::apply_ops_request::ApplyOpsRequest;
use crate::ui::http::transformers::apply_ops_transformer;
use crate::ui::http::SyncState;

pub async fn apply_ops(
    request: actix_web::HttpRequest,
    state: web::Data<SyncState>,
    resource: web::Path<String>,
    body: ship::http::Json<ApplyOpsRequest>,
    claims: web::ReqData<TokenClaims>,
) -> Result<HttpResponse, HttpError> {
    // The token says who calls; the batch must speak for that region only.
    state
        .auth
        .verifier
        .check_subject(&claims, &body.source_region)?;
    let incarnation = super::sender_incarnation(&request);
    let input = body
        .into_inner()
        .into_input(resource.into_inner(), incarnation);
    let output = state.apply_ops.run(input).await?;
    let ours = output.incarnation.clone();
    Ok(HttpResponse::Ok()
        .insert_header((ship::http::INCARNATION_HEADER, ours))
        .json(apply_ops_transformer::transform(output)))
}
