use std::sync::Arc;

use actix_web::{web, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;
use ship::DbPool;

use crate::actions::UpdateCustomerAction;
use crate::ui::http::requests::update_customer_request::UpdateCustomerRequest;
use crate::ui::http::transformers::customer_transformer::{etag, CustomerResponse};
use crate::ui::http::CustomersContext;

/// `PATCH /api/v1/customers/{id}` → 200 with the updated customer.
#[utoipa::path(
    patch,
    path = "/api/v1/customers/{id}",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (a UUID; anything else is 404 `customer_not_found`).")),
    request_body = crate::ui::http::requests::update_customer_request::UpdateCustomerBody,
    responses(
        (status = 200, description = "The customer as it is now (a PATCH that changes nothing keeps its version).", body = CustomerResponse, headers(("ETag" = String, description = "The version of the customer's last write, `\"<hlc>.<origin>\"`."))),
        (status = 400, response = ship::http::openapi::BadJson),
        (status = 408, response = ship::http::openapi::BodyTimeout),
        (status = 413, response = ship::http::openapi::PayloadTooLarge),
        (status = 415, response = ship::http::openapi::UnsupportedMediaType),
        (status = 404, description = "`customer_not_found`: no such customer, or deleted.", body = ship::errors::ErrorEnvelope),
        (status = 422, description = "`validation_failed`: every broken field in `details.fields` (`{field, code, message}`).", body = ship::errors::ErrorEnvelope),
        (status = 500, response = ship::http::openapi::InternalError),
        (status = 503, response = ship::http::openapi::Unavailable),
    )
)]
pub async fn update_customer(
    pool: web::Data<DbPool>,
    context: web::Data<CustomersContext>,
    id: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, HttpError> {
    let input = UpdateCustomerRequest::parse(id.into_inner(), &body)?;
    let action = UpdateCustomerAction::new(pool.get_ref().clone(), Arc::clone(&context.recorder));
    let customer = action.run(input).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(&customer))
        .json(CustomerResponse::from(&customer)))
}
