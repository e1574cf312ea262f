//! `GET /sync/{resource}/digest`

use actix_web::{web, HttpResponse};
use serde_json::json;
use ship::errors::HttpError;
use ship::parents::Action;

use crate::actions::DigestAnswer;
use crate::ui::http::requests::get_digest_request::GetDigestRequest;
use crate::ui::http::SyncState;

pub async fn get_digest(
    state: web::Data<SyncState>,
    resource: web::Path<String>,
    query: web::Query<GetDigestRequest>,
) -> Result<HttpResponse, HttpError> {
    let input = query.into_inner().into_input(resource.into_inner())?;
    let (resource, prefix) = (input.resource.clone(), input.prefix.clone());
    let body = match state.get_digest.run(input).await? {
        DigestAnswer::Buckets(buckets) => {
            json!({"resource": resource, "prefix": prefix, "buckets": buckets})
        }
        DigestAnswer::Rows(rows) => json!({"resource": resource, "prefix": prefix, "rows": rows}),
    };
    Ok(HttpResponse::Ok().json(body))
}
