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
