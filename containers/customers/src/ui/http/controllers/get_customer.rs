use actix_web::{web, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;
use ship::DbPool;

use crate::actions::GetCustomerAction;
use crate::ui::http::transformers::customer_transformer::{etag, CustomerResponse};

/// `GET /api/v1/customers/{id}` → 200 with the customer.
#[utoipa::path(
    get,
    path = "/api/v1/customers/{id}",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (a UUID; anything else is 404 `customer_not_found`).")),
    responses(
        (status = 200, description = "The customer.", body = CustomerResponse, headers(("ETag" = String, description = "The version of the customer's last write, `\"<hlc>.<origin>\"`."))),
        (status = 404, description = "`customer_not_found`: no such customer, or deleted.", body = ship::errors::ErrorEnvelope),
        (status = 500, response = ship::http::openapi::InternalError),
        (status = 503, response = ship::http::openapi::Unavailable),
    )
)]
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
