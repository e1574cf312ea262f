use std::sync::Arc;

use actix_web::{web, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;
use ship::DbPool;

use crate::actions::DeleteCustomerAction;
use crate::ui::http::transformers::customer_transformer::etag;
use crate::ui::http::CustomersContext;

/// `DELETE /api/v1/customers/{id}` → 204; the row stays as a tombstone.
#[utoipa::path(
    delete,
    path = "/api/v1/customers/{id}",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (a UUID; anything else is 404 `customer_not_found`).")),
    responses(
        (status = 204, description = "Deleted: the row stays as a tombstone (the delete replicates).", headers(("ETag" = String, description = "The tombstone's version, `\"<hlc>.<origin>\"`."))),
        (status = 404, description = "`customer_not_found`: no such customer, or deleted.", body = ship::errors::ErrorEnvelope),
        (status = 409, description = "`customer_referenced`: live rows of another resource (orders) name the customer (`details.live_referrers`).", body = ship::errors::ErrorEnvelope),
        (status = 500, response = ship::http::openapi::InternalError),
        (status = 503, response = ship::http::openapi::Unavailable),
    )
)]
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
