use actix_web::{web, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;
use ship::DbPool;

use crate::actions::GetCustomerAction;
use crate::ui::http::transformers::customer_transformer::{etag, CustomerResponse};

/// `GET /api/v1/customers/{id}` → 200 with the customer.
pub async fn get_customer(
    pool: web::Data<DbPool>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let customer = GetCustomerAction::new(pool.get_ref().clone())
        .run(id.into_inner())
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(&customer))
        .json(CustomerResponse::from(&customer)))
}
