use std::sync::Arc;

use actix_web::{web, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;
use ship::DbPool;

use crate::actions::DeleteCustomerAction;
use crate::ui::http::transformers::customer_transformer::etag;
use crate::ui::http::CustomersContext;

/// `DELETE /api/v1/customers/{id}` → 204; the row stays as a tombstone.
pub async fn delete_customer(
    pool: web::Data<DbPool>,
    context: web::Data<CustomersContext>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let tombstone = DeleteCustomerAction::new(
        pool.get_ref().clone(),
        Arc::clone(&context.recorder),
        context.registry.clone(),
    )
    .run(id.into_inner())
    .await?;
    Ok(HttpResponse::NoContent()
        .insert_header(etag(&tombstone))
        .finish())
}
