//! `GET /sync/{resource}/snapshot`

use actix_web::{web, HttpResponse};
use ship::auth::TokenClaims;
use ship::errors::HttpError;
use ship::parents::Action;

use crate::ui::http::requests::get_snapshot_request::GetSnapshotRequest;
use crate::ui::http::transformers::snapshot_transformer;
use crate::ui::http::SyncState;

/// A page of the resource's rows (tombstones included) in entity-id order, each with its
/// version, for a bootstrap.
#[utoipa::path(
    get,
    path = "/sync/{resource}/snapshot",
    tag = "sync",
    security(("region_token" = [])),
    params(
        ("resource" = String, Path, description = "A resource this region syncs (`customers`, `orders`, …); else 404 `unknown_resource`."),
        GetSnapshotRequest,
        ("Regionsync-Conflict-Policy" = Option<String>, Header, description = "The caller's policy for the resource (`lww`, `delete_wins`; absent: `lww`): one other than this region's is 409 `conflict_policy_mismatch`."),
        ("Regionsync-Clock" = Option<String>, Header, description = "The caller's wall clock, ms since the epoch (ADR 0016): this region measures the caller's clock offset from it."),
        ("Accept-Encoding" = Option<String>, Header, description = "`gzip`: the answer is gzipped."),
    ),
    responses(
        (status = 200, description = "A page of the snapshot (`total_rows` on the first page only).", body = snapshot_transformer::SnapshotResponse, headers(("Regionsync-Incarnation" = String, description = "The serving database's incarnation (ADR 0012)."), ("Regionsync-Conflict-Policy" = String, description = "How this region decides the resource's conflicts (`lww`, `delete_wins`)."), ("Regionsync-Clock" = String, description = "This region's wall clock when it answered, ms since the epoch (ADR 0016)."))),
        (status = 400, description = "`invalid_cursor`: a malformed `after`; `invalid_query`: an unknown parameter or a `limit` that is not a whole number; `invalid_limit`: `limit` out of range.", body = ship::errors::ErrorEnvelope),
        (status = 401, description = "`token_missing`, `token_invalid`, `token_expired`, `token_not_yet_valid`: no valid token (see the `region_token` scheme); nothing was read or changed.", body = ship::errors::ErrorEnvelope),
        (status = 403, description = "`token_wrong_audience`: the token is for another region; `token_scope`: it does not list the resource.", body = ship::errors::ErrorEnvelope),
        (status = 404, description = "`unknown_resource`: the resource is not synced here.", body = ship::errors::ErrorEnvelope),
        (status = 409, description = "`cursor_diverged`: the cursor was issued by an earlier incarnation of this database; `conflict_policy_mismatch`: the caller decides the resource's conflicts otherwise.", body = ship::errors::ErrorEnvelope),
        (status = 410, description = "`cursor_expired`: the history the snapshot's watermark needs was pruned meanwhile: start a new snapshot.", body = ship::errors::ErrorEnvelope),
        (status = 500, response = ship::http::openapi::InternalError),
        (status = 503, response = ship::http::openapi::Unavailable),
    )
)]
pub async fn get_snapshot(
    request: actix_web::HttpRequest,
    state: web::Data<SyncState>,
    resource: web::Path<String>,
    query: web::Query<GetSnapshotRequest>,
    claims: web::ReqData<TokenClaims>,
) -> Result<HttpResponse, HttpError> {
    let reader = claims.into_inner().sub;
    let mut input = query
        .into_inner()
        .into_input(resource.into_inner(), reader, &state.config)?;
    input.reader_policy = Some(super::sender_policy(&request));
    let page = state.get_snapshot.run(input).await?;
    Ok(HttpResponse::Ok()
        .insert_header((ship::http::INCARNATION_HEADER, page.incarnation.as_str()))
        .insert_header((ship::http::CONFLICT_POLICY_HEADER, page.policy.as_str()))
        .json(snapshot_transformer::transform(&page)))
}
