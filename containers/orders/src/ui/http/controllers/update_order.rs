use std::sync::Arc;

use actix_web::{web, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;
use ship::DbPool;

use crate::actions::UpdateOrderAction;
use crate::ui::http::requests::update_order_request::UpdateOrderRequest;
use crate::ui::http::transformers::order_transformer::{etag, OrderResponse};
use crate::ui::http::OrdersContext;

/// `PATCH /api/v1/orders/{id}` → 200 with the updated order.
#[utoipa::path(
    patch,
    path = "/api/v1/orders/{id}",
    tag = "orders",
    params(("id" = String, Path, description = "The order's id (a UUID; anything else is 404 `order_not_found`).")),
    request_body = crate::ui::http::requests::update_order_request::UpdateOrderBody,
    responses(
        (status = 200, description = "The order as it is now.", body = OrderResponse, headers(("ETag" = String, description = "The version of the order's last write, `\"<hlc>.<origin>\"`."))),
        (status = 400, response = ship::http::openapi::BadJson),
        (status = 408, response = ship::http::openapi::BodyTimeout),
        (status = 413, response = ship::http::openapi::PayloadTooLarge),
        (status = 415, response = ship::http::openapi::UnsupportedMediaType),
        (status = 404, description = "`order_not_found`: no such order, or deleted.", body = ship::errors::ErrorEnvelope),
        (status = 409, description = "`invalid_status_transition`: a status the order cannot go to from its own (`details`: `from`, `to`); `order_not_editable`: `number` or `lines` changed after `pending` (`details.status`).", body = ship::errors::ErrorEnvelope),
        (status = 422, description = "`validation_failed`: every broken field in `details.fields`.", body = ship::errors::ErrorEnvelope),
        (status = 500, response = ship::http::openapi::InternalError),
        (status = 503, response = ship::http::openapi::Unavailable),
    )
)]
pub async fn update_order(
    pool: web::Data<DbPool>,
    context: web::Data<OrdersContext>,
    id: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, HttpError> {
    let input = UpdateOrderRequest::parse(id.into_inner(), &body)?;
    let action = UpdateOrderAction::new(
        pool.get_ref().clone(),
        Arc::clone(&context.recorder),
        context.registry.clone(),
    );
    let view = action.run(input).await?;
    Ok(HttpResponse::Ok()
        .insert_header(etag(&view.order))
        .json(OrderResponse::from(&view)))
}
