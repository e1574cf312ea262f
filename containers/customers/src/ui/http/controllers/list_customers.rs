use actix_web::{web, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;
use ship::DbPool;

use crate::actions::ListCustomersAction;
use crate::ui::http::requests::list_customers_request::ListCustomersRequest;
use crate::ui::http::transformers::customer_transformer::CustomerPageResponse;

/// `GET /api/v1/customers?tenant_id=&limit=&after=` → 200 `{"items": [...], "next_after"}`.
#[utoipa::path(
    get,
    path = "/api/v1/customers",
    tag = "customers",
    params(ListCustomersRequest),
    responses(
        (status = 200, description = "A page of the tenant's live customers, by id ascending (keyset-paged).", body = CustomerPageResponse),
        (status = 400, description = "`invalid_query`: an unknown or repeated parameter, a `limit` that is not a whole number, an `after` that is not a UUID (`details.parameter`); `invalid_limit`: a `limit` outside 1–500 (`details`: `parameter`, `min`, `max`).", body = ship::errors::ErrorEnvelope),
        (status = 422, description = "`validation_failed`: `tenant_id` missing or blank.", body = ship::errors::ErrorEnvelope),
        (status = 500, response = ship::http::openapi::InternalError),
        (status = 503, response = ship::http::openapi::Unavailable),
    )
)]
pub async fn list_customers(
    pool: web::Data<DbPool>,
    query: web::Query<ListCustomersRequest>,
) -> Result<HttpResponse, HttpError> {
    let input = query.into_inner().parse()?;
    let page = ListCustomersAction::new(pool.get_ref().clone())
        .run(input)
        .await?;
    Ok(HttpResponse::Ok().json(CustomerPageResponse::from(&page)))
}
