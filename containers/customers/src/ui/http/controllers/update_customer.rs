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
