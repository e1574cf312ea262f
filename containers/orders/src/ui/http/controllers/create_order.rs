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
#[utoipa::path(
    post,
    path = "/api/v1/orders",
    tag = "orders",
    request_body = crate::ui::http::requests::create_order_request::CreateOrderBody,
    responses(
        (status = 201, description = "Created (pending), with its total and its customer's state.", body = OrderResponse, headers(
            ("Location" = String, description = "`/api/v1/orders/{id}`."),
            ("ETag" = String, description = "The version of the order's last write, `\"<hlc>.<origin>\"`."),
        )),
        (status = 400, response = ship::http::openapi::BadJson),
        (status = 408, response = ship::http::openapi::BodyTimeout),
        (status = 413, response = ship::http::openapi::PayloadTooLarge),
        (status = 415, response = ship::http::openapi::UnsupportedMediaType),
        (status = 422, description = "`validation_failed`: every broken field in `details.fields` (lines named `lines[i].<field>`; a customer that is not live here: field `customer_id`, code `unknown_customer` or `deleted_customer`).", body = ship::errors::ErrorEnvelope),
        (status = 500, response = ship::http::openapi::InternalError),
        (status = 503, response = ship::http::openapi::Unavailable),
    )
)]
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
