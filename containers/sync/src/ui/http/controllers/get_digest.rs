//! `GET /sync/{resource}/digest`

use actix_web::{web, HttpResponse};
use serde_json::json;
use ship::errors::HttpError;
use ship::parents::Action;

use crate::actions::DigestAnswer;
use crate::ui::http::requests::get_digest_request::GetDigestRequest;
use crate::ui::http::SyncState;

/// Hashes of the resource's rows over ranges of their hashed ids (`regionsync sync verify`).
#[utoipa::path(
    get,
    path = "/sync/{resource}/digest",
    tag = "sync",
    security(("region_token" = [])),
    params(
        ("resource" = String, Path, description = "A resource this region syncs (`customers`, `orders`, …); else 404 `unknown_resource`."),
        GetDigestRequest,
        ("Regionsync-Conflict-Policy" = Option<String>, Header, description = "The caller's policy for the resource (`lww`, `delete_wins`; absent: `lww`): one other than this region's is 409 `conflict_policy_mismatch`."),
        ("Regionsync-Clock" = Option<String>, Header, description = "The caller's wall clock, ms since the epoch (ADR 0016): this region measures the caller's clock offset from it."),
        ("Accept-Encoding" = Option<String>, Header, description = "`gzip`: the answer is gzipped."),
    ),
    responses(
        (status = 200, description = "The ranges below `prefix`, or with `rows` its rows.", body = crate::ui::http::openapi::DigestBody, headers(("Regionsync-Conflict-Policy" = String, description = "How this region decides the resource's conflicts (`lww`, `delete_wins`)."), ("Regionsync-Clock" = String, description = "This region's wall clock when it answered, ms since the epoch (ADR 0016)."))),
        (status = 400, description = "`invalid_query`: a prefix that is not hex, a depth other than 1–3, `rows` with `depth`, `rows` for a prefix under 2 digits or a range of more than 5 000 rows, `full` without `rows`, an unknown parameter.", body = ship::errors::ErrorEnvelope),
        (status = 401, description = "`token_missing`, `token_invalid`, `token_expired`, `token_not_yet_valid`: no valid token (see the `region_token` scheme); nothing was read or changed.", body = ship::errors::ErrorEnvelope),
        (status = 403, description = "`token_wrong_audience`: the token is for another region; `token_scope`: it does not list the resource.", body = ship::errors::ErrorEnvelope),
        (status = 404, description = "`unknown_resource`: the resource is not synced here.", body = ship::errors::ErrorEnvelope),
        (status = 409, description = "`conflict_policy_mismatch`: the caller decides the resource's conflicts otherwise; nothing was served.", body = ship::errors::ErrorEnvelope),
        (status = 500, response = ship::http::openapi::InternalError),
        (status = 503, response = ship::http::openapi::Unavailable),
    )
)]
pub async fn get_digest(
    request: actix_web::HttpRequest,
    state: web::Data<SyncState>,
    resource: web::Path<String>,
    query: web::Query<GetDigestRequest>,
) -> Result<HttpResponse, HttpError> {
    let mut input = query.into_inner().into_input(resource.into_inner())?;
    input.reader_policy = Some(super::sender_policy(&request));
    let (resource, prefix) = (input.resource.clone(), input.prefix.clone());
    let policy = state.config.conflict_policy.get(&resource).copied();
    let body = match state.get_digest.run(input).await? {
        DigestAnswer::Buckets(buckets) => {
            json!({"resource": resource, "prefix": prefix, "buckets": buckets})
        }
        DigestAnswer::Rows(rows) => json!({"resource": resource, "prefix": prefix, "rows": rows}),
    };
    Ok(HttpResponse::Ok()
        .insert_header((
            ship::http::CONFLICT_POLICY_HEADER,
            policy.unwrap_or_default().as_str(),
        ))
        .json(body))
}
