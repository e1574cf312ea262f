use actix_web::{web, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;
use ship::DbPool;

use crate::actions::ListOrdersAction;
use crate::ui::http::requests::list_orders_request::ListOrdersRequest;
use crate::ui::http::transformers::order_transformer::OrderPageResponse;
use crate::ui::http::OrdersContext;

/// `GET /api/v1/orders?tenant_id=&customer_id=&limit=&after=` → 200
/// `{"items": [...], "next_after"}`.
#[utoipa::path(
    get,
    path = "/api/v1/orders",
    tag = "orders",
    params(ListOrdersRequest),
    responses(
        (status = 200, description = "A page of the tenant's live orders (of one customer, with `customer_id`), by id ascending.", body = OrderPageResponse),
        (status = 400, description = "`invalid_query`: an unknown or repeated parameter, a `limit` that is not a whole number, an `after` or `customer_id` that is not a UUID (`details.parameter`); `invalid_limit`: a `limit` outside 1–500.", body = ship::errors::ErrorEnvelope),
        (status = 422, description = "`validation_failed`: `tenant_id` missing or blank.", body = ship::errors::ErrorEnvelope),
        (status = 500, response = ship::http::openapi::InternalError),
        (status = 503, response = ship::http::openapi::Unavailable),
    )
)]
pub async fn list_orders(
    pool: web::Data<DbPool>,
    context: web::Data<OrdersContext>,
    query: web::Query<ListOrdersRequest>,
) -> Result<HttpResponse, HttpError> {
    let input = query.into_inner().parse()?;
    let page = ListOrdersAction::new(pool.get_ref().clone(), context.registry.clone())
        .run(input)
        .await?;
    Ok(HttpResponse::Ok().json(OrderPageResponse::from(&page)))
}
