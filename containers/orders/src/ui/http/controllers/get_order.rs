use actix_web::{web, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;
use ship::DbPool;

use crate::actions::GetOrderAction;
use crate::ui::http::transformers::order_transformer::{etag, OrderResponse};
use crate::ui::http::OrdersContext;

/// `GET /api/v1/orders/{id}` → 200 with the order.
#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}",
    tag = "orders",
    params(("id" = String, Path, description = "The order's id (a UUID; anything else is 404 `order_not_found`).")),
    responses(
        (status = 200, description = "The order.", body = OrderResponse, headers(("ETag" = String, description = "The version of the order's last write, `\"<hlc>.<origin>\"`."))),
        (status = 404, description = "`order_not_found`: no such order, or deleted.", body = ship::errors::ErrorEnvelope),
        (status = 500, response = ship::http::openapi::InternalError),
        (status = 503, response = ship::http::openapi::Unavailable),
    )
)]
pub async fn get_order(
    pool: web::Data<DbPool>,
    context: web::Data<OrdersContext>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let view = GetOrderAction::new(pool.get_ref().clone(), context.registry.clone())
        .run(id.into_inner())
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(&view.order))
        .json(OrderResponse::from(&view)))
}
