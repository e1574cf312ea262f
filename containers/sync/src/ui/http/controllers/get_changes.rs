//! `GET /sync/{resource}/changes`

use actix_web::{web, HttpResponse};
use ship::auth::TokenClaims;
use ship::errors::{HttpError, StatusCode};

use crate::ui::http::requests::get_changes_request::GetChangesRequest;
use crate::ui::http::transformers::changes_transformer;
use crate::ui::http::SyncState;

/// A page of this region's changelog of one resource after a cursor (gap-safe: only entries at
/// or below the committed watermark).
#[utoipa::path(
    get,
    path = "/sync/{resource}/changes",
    tag = "sync",
    security(("region_token" = [])),
    params(
        ("resource" = String, Path, description = "A resource this region syncs (`customers`, `orders`, …); else 404 `unknown_resource`."),
        GetChangesRequest,
        ("Regionsync-Conflict-Policy" = Option<String>, Header, description = "The caller's policy for the resource (`lww`, `delete_wins`; absent: `lww`): one other than this region's is 409 `conflict_policy_mismatch`."),
        ("Regionsync-Clock" = Option<String>, Header, description = "The caller's wall clock, ms since the epoch (ADR 0016): this region measures the caller's clock offset from it."),
        ("Accept-Encoding" = Option<String>, Header, description = "`gzip`: the answer is gzipped."),
    ),
    responses(
        (status = 200, description = "A page of the feed.", body = changes_transformer::ChangesPageBody, headers(("Regionsync-Incarnation" = String, description = "The serving database's incarnation (ADR 0012)."), ("Regionsync-Conflict-Policy" = String, description = "How this region decides the resource's conflicts (`lww`, `delete_wins`)."), ("Regionsync-Clock" = String, description = "This region's wall clock when it answered, ms since the epoch (ADR 0016)."))),
        (status = 400, description = "`invalid_cursor`: a malformed cursor (`since` or `ack`); `invalid_query`: an unknown parameter, `limit` not a whole number, `exclude_origin` not a region id, `ack` after `since`; `invalid_limit`: `limit` out of range.", body = ship::errors::ErrorEnvelope),
        (status = 401, description = "`token_missing`, `token_invalid`, `token_expired`, `token_not_yet_valid`: no valid token (see the `region_token` scheme); nothing was read or changed.", body = ship::errors::ErrorEnvelope),
        (status = 403, description = "`token_wrong_audience`: the token is for another region; `token_scope`: it does not list the resource.", body = ship::errors::ErrorEnvelope),
        (status = 404, description = "`unknown_resource`: the resource is not synced here.", body = ship::errors::ErrorEnvelope),
        (status = 409, description = "`cursor_diverged`: this feed does not continue the cursor (`details.bootstrap`: bootstrap from a snapshot); `conflict_policy_mismatch`: the caller decides the resource's conflicts otherwise.", body = ship::errors::ErrorEnvelope),
        (status = 410, description = "`cursor_expired`: the cursor is older than the retained history (`details.pruned_through`): bootstrap from a snapshot.", body = ship::errors::ErrorEnvelope),
        (status = 500, response = ship::http::openapi::InternalError),
        (status = 503, response = ship::http::openapi::Unavailable),
    )
)]
pub async fn get_changes(
    request: actix_web::HttpRequest,
    state: web::Data<SyncState>,
    resource: web::Path<String>,
    query: web::Query<GetChangesRequest>,
    claims: web::ReqData<TokenClaims>,
) -> Result<HttpResponse, HttpError> {
    // The token's subject is the reader: its `since` is its acknowledgment (see the action).
    let reader = claims.into_inner().sub;
    let mut input = query
        .into_inner()
        .into_input(resource.into_inner(), reader, &state.config)?;
    input.reader_policy = Some(super::sender_policy(&request));
    // The body is written as the entries are read (on the blocking pool), then finished here.
    let sink = changes_transformer::JsonPage::for_limit(input.limit);
    let mut page = state.get_changes.run_into(input, sink).await?;
    let body = changes_transformer::finish(&mut page).map_err(|e| {
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
        .insert_header((ship::http::CONFLICT_POLICY_HEADER, page.policy.as_str()))
        .body(body))
}
