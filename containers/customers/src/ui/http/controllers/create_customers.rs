use std::sync::Arc;

use actix_web::{web, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;
use ship::DbPool;

use crate::actions::CreateCustomersAction;
use crate::ui::http::requests::create_customers_request::CreateCustomersRequest;
use crate::ui::http::transformers::customer_transformer::CustomersCreatedResponse;
use crate::ui::http::CustomersContext;

/// `POST /api/v1/customers:batch` → 201 with the customers created, in the order given.
#[utoipa::path(
    post,
    path = "/api/v1/customers:batch",
    tag = "customers",
    request_body = crate::ui::http::requests::create_customers_request::CreateCustomersBody,
    responses(
        (status = 201, description = "Created, all in one transaction: the customers in the order given, each with its `version`.", body = CustomersCreatedResponse),
        (status = 400, response = ship::http::openapi::BadJson),
        (status = 408, response = ship::http::openapi::BodyTimeout),
        (status = 413, description = "`batch_too_large`: more than 1,000 items (`details`: `max`, `got`); `payload_too_large`: a body over `http.max_body_bytes`.", body = ship::errors::ErrorEnvelope),
        (status = 415, response = ship::http::openapi::UnsupportedMediaType),
        (status = 422, description = "`validation_failed`: nothing is written; every broken field is named `items[i].<field>` in `details.fields` (the first 100).", body = ship::errors::ErrorEnvelope),
        (status = 500, response = ship::http::openapi::InternalError),
        (status = 503, response = ship::http::openapi::Unavailable),
    )
)]
pub async fn create_customers(
    pool: web::Data<DbPool>,
    context: web::Data<CustomersContext>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, HttpError> {
    let inputs = CreateCustomersRequest::parse(&body)?;
    let action = CreateCustomersAction::new(pool.get_ref().clone(), Arc::clone(&context.recorder));
    let customers = action.run(inputs).await?;
    Ok(HttpResponse::Created().json(CustomersCreatedResponse::from(customers.as_slice())))
}
