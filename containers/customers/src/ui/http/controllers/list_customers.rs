use actix_web::{web, HttpResponse};
use ship::errors::HttpError;
use ship::parents::Action;
use ship::DbPool;

use crate::actions::ListCustomersAction;
use crate::ui::http::requests::list_customers_request::ListCustomersRequest;
use crate::ui::http::transformers::customer_transformer::CustomerPageResponse;

/// `GET /api/v1/customers?tenant_id=&limit=&after=` → 200 `{"items": [...], "next_after"}`.
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
