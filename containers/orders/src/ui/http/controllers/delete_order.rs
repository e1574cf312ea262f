use std::sync::Arc;

use actix_web::{web, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;
use ship::DbPool;

use crate::actions::DeleteOrderAction;
use crate::ui::http::transformers::order_transformer::etag;
use crate::ui::http::OrdersContext;

/// `DELETE /api/v1/orders/{id}` → 204; the row stays as a tombstone.
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
