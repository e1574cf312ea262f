//! `GET /sync/{resource}/changes`

use actix_web::{web, HttpResponse};
use ship::auth::TokenClaims;
use ship::errors::{HttpError, StatusCode};
use ship::parents::Action;

use crate::ui::http::requests::get_changes_request::GetChangesRequest;
use crate::ui::http::transformers::changes_transformer;
use crate::ui::http::SyncState;

pub async fn get_changes(
    state: web::Data<SyncState>,
    resource: web::Path<String>,
    query: web::Query<GetChangesRequest>,
    claims: web::ReqData<TokenClaims>,
) -> Result<HttpResponse, HttpError> {
    // The token's subject is the reader: its `since` is its acknowledgment (see the action).
    let reader = claims.into_inner().sub;
    let input = query
        .into_inner()
        .into_input(resource.into_inner(), reader, &state.config)?;
    let page = state.get_changes.run(input).await?;
    let body = changes_transformer::render(&page).map_err(|e| {
        tracing::error!(error = %e, "the changes page could not be written");
        HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        )
    })?;
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .insert_header((ship::http::INCARNATION_HEADER, page.incarnation.as_str()))
        .body(body))
}
