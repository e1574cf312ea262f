//! `POST /sync/{resource}/ops`

use actix_web::{web, HttpResponse};
use ship::auth::TokenClaims;
use ship::errors::HttpError;
use ship::parents::Action;

use crate::ui::http::requests::apply_ops_request::ApplyOpsRequest;
use crate::ui::http::transformers::apply_ops_transformer;
use crate::ui::http::SyncState;

/// A peer pushes a batch of its own changes; the whole batch is checked first, then applied in
/// one transaction (last-writer-wins).
#[utoipa::path(
    post,
    path = "/sync/{resource}/ops",
    tag = "sync",
    security(("region_token" = [])),
    params(
        ("resource" = String, Path, description = "A resource this region syncs (`customers`, `orders`, …); else 404 `unknown_resource`."),
        ("Regionsync-Incarnation" = Option<String>, Header, description = "The sender's database incarnation."),
        ("Regionsync-Conflict-Policy" = Option<String>, Header, description = "The caller's policy for the resource (`lww`, `delete_wins`; absent: `lww`): one other than this region's is 409 `conflict_policy_mismatch`."),
        ("Regionsync-Clock" = Option<String>, Header, description = "The caller's wall clock, ms since the epoch (ADR 0016): this region measures the caller's clock offset from it."),
        ("Content-Encoding" = Option<String>, Header, description = "`gzip` for a gzipped body (decoded under `http.max_body_bytes`)."),
    ),
    request_body = ApplyOpsRequest,
    responses(
        (status = 200, description = "Applied; one result per op, in batch order.", body = apply_ops_transformer::ApplyOpsResponse, headers(("Regionsync-Incarnation" = String, description = "The serving database's incarnation (ADR 0012)."), ("Regionsync-Conflict-Policy" = String, description = "How this region decides the resource's conflicts (`lww`, `delete_wins`)."), ("Regionsync-Clock" = String, description = "This region's wall clock when it answered, ms since the epoch (ADR 0016)."))),
        (status = 400, response = ship::http::openapi::BadJson),
        (status = 401, description = "`token_missing`, `token_invalid`, `token_expired`, `token_not_yet_valid`: no valid token (see the `region_token` scheme); nothing was read or changed.", body = ship::errors::ErrorEnvelope),
        (status = 403, description = "`token_wrong_audience`, `token_scope`, or `token_wrong_subject`: the token's `sub` is not the batch's `source_region`.", body = ship::errors::ErrorEnvelope),
        (status = 404, description = "`unknown_resource`: the resource is not synced here.", body = ship::errors::ErrorEnvelope),
        (status = 408, response = ship::http::openapi::BodyTimeout),
        (status = 409, description = "`conflict_policy_mismatch`: the sender decides the resource's conflicts otherwise; nothing was applied.", body = ship::errors::ErrorEnvelope),
        (status = 413, description = "`batch_too_large`: more than `sync.max_ops_per_batch` ops or a body over `sync.max_batch_bytes` (halve and resend); `payload_too_large`: a gzipped body that decodes past `http.max_body_bytes`.", body = ship::errors::ErrorEnvelope),
        (status = 415, response = ship::http::openapi::UnsupportedMediaType),
        (status = 422, description = "`invalid_body`: the envelope has the wrong shape; `invalid_batch`: no ops, a bad `source_region` or `batch_id`, or another `schema_version`; `invalid_ops`: `details.errors` names each broken op (`{index, op_id, field, code, message}`). Nothing was applied.", body = ship::errors::ErrorEnvelope),
        (status = 500, response = ship::http::openapi::InternalError),
        (status = 503, response = ship::http::openapi::Unavailable),
    )
)]
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
    let policy = super::sender_policy(&request);
    let input = body
        .into_inner()
        .into_input(resource.into_inner(), incarnation, policy);
    let output = state.apply_ops.run(input).await?;
    let ours = output.incarnation.clone();
    Ok(HttpResponse::Ok()
        .insert_header((ship::http::INCARNATION_HEADER, ours))
        .insert_header((ship::http::CONFLICT_POLICY_HEADER, output.policy.as_str()))
        .json(apply_ops_transformer::transform(output)))
}
