use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;
use ship::DbPool;

use crate::actions::CreateOrderAction;
use crate::ui::http::requests::create_order_request::CreateOrderRequest;
use crate::ui::http::transformers::order_transformer::{etag, OrderResponse};
use crate::ui::http::{OrdersContext, COLLECTION_PATH};

/// `POST /api/v1/orders` → 201 with the order and its `Location`.
pub async fn create_order(
    pool: web::Data<DbPool>,
    context: web::Data<OrdersContext>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, HttpError> {
    let input = CreateOrderRequest::parse(&body)?;
    let action = CreateOrderAction::new(
        pool.get_ref().clone(),
        Arc::clone(&context.recorder),
        context.registry.clone(),
    );
    let view = action.run(input).await?;
    Ok(HttpResponse::Created()
        .insert_header(etag(&view.order))
        .insert_header((
            header::LOCATION,
            format!("{COLLECTION_PATH}/{}", view.order.id),
        ))
        .json(OrderResponse::from(&view)))
}
