use actix_web::{web, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;
use ship::DbPool;

use crate::actions::GetOrderAction;
use crate::ui::http::transformers::order_transformer::{etag, OrderResponse};
use crate::ui::http::OrdersContext;

/// `GET /api/v1/orders/{id}` → 200 with the order.
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
