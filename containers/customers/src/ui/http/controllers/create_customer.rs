use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;
use ship::DbPool;

use crate::actions::CreateCustomerAction;
use crate::ui::http::requests::create_customer_request::CreateCustomerRequest;
use crate::ui::http::transformers::customer_transformer::{etag, CustomerResponse};
use crate::ui::http::{CustomersContext, COLLECTION_PATH};

/// `POST /api/v1/customers` → 201 with the customer and its `Location`.
#[utoipa::path(
    post,
    path = "/api/v1/customers",
    tag = "customers",
    request_body = crate::ui::http::requests::create_customer_request::CreateCustomerBody,
    responses(
        (status = 201, description = "Created.", body = CustomerResponse, headers(
            ("Location" = String, description = "`/api/v1/customers/{id}`."),
            ("ETag" = String, description = "The version of the customer's last write, `\"<hlc>.<origin>\"`."),
        )),
        (status = 400, response = ship::http::openapi::BadJson),
        (status = 408, response = ship::http::openapi::BodyTimeout),
        (status = 413, response = ship::http::openapi::PayloadTooLarge),
        (status = 415, response = ship::http::openapi::UnsupportedMediaType),
        (status = 422, description = "`validation_failed`: every broken field in `details.fields` (`{field, code, message}`).", body = ship::errors::ErrorEnvelope),
        (status = 500, response = ship::http::openapi::InternalError),
        (status = 503, response = ship::http::openapi::Unavailable),
    )
)]
pub async fn create_customer(
    pool: web::Data<DbPool>,
    context: web::Data<CustomersContext>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, HttpError> {
    let input = CreateCustomerRequest::parse(&body)?;
    let action = CreateCustomerAction::new(pool.get_ref().clone(), Arc::clone(&context.recorder));
    let customer = action.run(input).await?;
    Ok(HttpResponse::Created()
        .insert_header(etag(&customer))
        .insert_header((
            header::LOCATION,
            format!("{COLLECTION_PATH}/{}", customer.id),
        ))
        .json(CustomerResponse::from(&customer)))
}
