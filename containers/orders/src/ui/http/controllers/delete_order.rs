use std::sync::Arc;

use actix_web::{web, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;
use ship::DbPool;

use crate::actions::DeleteOrderAction;
use crate::ui::http::transformers::order_transformer::etag;
use crate::ui::http::OrdersContext;

/// `DELETE /api/v1/orders/{id}` → 204; the row stays as a tombstone.
#[utoipa::path(
    delete,
    path = "/api/v1/orders/{id}",
    tag = "orders",
    params(("id" = String, Path, description = "The order's id (a UUID; anything else is 404 `order_not_found`).")),
    responses(
        (status = 204, description = "Deleted: the row stays as a tombstone (the delete replicates).", headers(("ETag" = String, description = "The tombstone's version, `\"<hlc>.<origin>\"`."))),
        (status = 404, description = "`order_not_found`: no such order, or deleted.", body = ship::errors::ErrorEnvelope),
        (status = 500, response = ship::http::openapi::InternalError),
        (status = 503, response = ship::http::openapi::Unavailable),
    )
)]
pub async fn delete_order(
    pool: web::Data<DbPool>,
    context: web::Data<OrdersContext>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let tombstone = DeleteOrderAction::new(pool.get_ref().clone(), Arc::clone(&context.recorder))
        .run(id.into_inner())
        .await?;
    Ok(HttpResponse::NoContent()
        .insert_header(etag(&tombstone))
        .finish())
}
