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
