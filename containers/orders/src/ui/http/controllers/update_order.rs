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
