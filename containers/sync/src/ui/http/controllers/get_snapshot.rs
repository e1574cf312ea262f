//! `GET /sync/{resource}/snapshot`

use actix_web::{web, HttpResponse};
use ship::auth::TokenClaims;
use ship::errors::HttpError;
use ship::parents::Action;

use crate::ui::http::requests::get_snapshot_request::GetSnapshotRequest;
use crate::ui::http::transformers::snapshot_transformer;
use crate::ui::http::SyncState;

pub async fn get_snapshot(
    state: web::Data<SyncState>,
    resource: web::Path<String>,
    query: web::Query<GetSnapshotRequest>,
    claims: web::ReqData<TokenClaims>,
) -> Result<HttpResponse, HttpError> {
    let reader = claims.into_inner().sub;
    let input = query
        .into_inner()
        .into_input(resource.into_inner(), reader, &state.config)?;
    let page = state.get_snapshot.run(input).await?;
    Ok(HttpResponse::Ok()
        .insert_header((ship::http::INCARNATION_HEADER, page.incarnation.as_str()))
        .json(snapshot_transformer::transform(&page)))
}
