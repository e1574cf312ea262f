//! The orders container's route table.
//!
//! | method | path | answer |
//! |---|---|---|
//! | `POST` | `/api/v1/orders` | 201, the order, `Location` and `ETag` headers |
//! | `GET` | `/api/v1/orders?tenant_id=&customer_id=&limit=&after=` | 200 `{"items": [...], "next_after": id\|null}` |
//! | `GET` | `/api/v1/orders/{id}` | 200, the order, `ETag` |
//! | `PATCH` | `/api/v1/orders/{id}` | 200, the order, `ETag` (partial: `status`, `number`, `lines`) |
//! | `DELETE` | `/api/v1/orders/{id}` | 204, `ETag` (the row stays as a tombstone) |
//!
//! An order answered is its sync payload's fields plus `version` (`<hlc>.<origin>`, the `ETag`
//! unquoted) and `customer_state` (`live`, `deleted` or `missing`).
//!
//! Errors: 422 `validation_failed` with `details.fields`, 404 `order_not_found`, 409
//! `invalid_status_transition` / `order_not_editable`; the list's query 400 `invalid_query` /
//! `invalid_limit`. Routes are `web::resource(..).route(..)`, so a wrong method is a 405.

pub mod controllers;
pub mod requests;
pub mod transformers;

use std::sync::Arc;

use actix_web::web;
use ship::contracts::{ChangeRecorder, ResourceRegistry};

/// What the controllers need besides the pool (which ship's server registers as
/// `web::Data<DbPool>`).
pub struct OrdersContext {
    pub recorder: Arc<dyn ChangeRecorder>,
    /// The app's resources: customers are looked up through it.
    pub registry: ResourceRegistry,
}

pub const COLLECTION_PATH: &str = "/api/v1/orders";
pub const ITEM_PATH: &str = "/api/v1/orders/{id}";

/// Register the orders routes, with `recorder` recording every local write and `registry`
/// (which must hold a `customers` resource) answering for customers.
pub fn configure(
    cfg: &mut web::ServiceConfig,
    recorder: Arc<dyn ChangeRecorder>,
    registry: ResourceRegistry,
) {
    let context = web::Data::new(OrdersContext { recorder, registry });
    cfg.service(
        web::resource(COLLECTION_PATH)
            .app_data(context.clone())
            .route(web::post().to(controllers::create_order::create_order))
            .route(web::get().to(controllers::list_orders::list_orders)),
    )
    .service(
        web::resource(ITEM_PATH)
            .app_data(context)
            .route(web::get().to(controllers::get_order::get_order))
            .route(web::patch().to(controllers::update_order::update_order))
            .route(web::delete().to(controllers::delete_order::delete_order)),
    );
}

/// The orders routes in the OpenAPI document (`Domain::openapi`): every route [`configure`]
/// registers (`crates/app/tests/openapi.rs` fails on one left out).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        controllers::create_order::create_order,
        controllers::list_orders::list_orders,
        controllers::get_order::get_order,
        controllers::update_order::update_order,
        controllers::delete_order::delete_order,
    ),
    tags((name = "orders", description = "Orders of a customer, synced like customers (docs/API.md, \"The orders API\"; ADR 0015)."))
)]
struct OrdersApi;

/// This container's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <OrdersApi as utoipa::OpenApi>::openapi()
}

/// [`configure`] as a route registration `app` can hand to ship's server
/// (`Arc::new(orders::ui::http::configure_with(recorder, registry))` is a
/// `ship::http::Configure`).
pub fn configure_with(
    recorder: Arc<dyn ChangeRecorder>,
    registry: ResourceRegistry,
) -> impl Fn(&mut web::ServiceConfig) + Send + Sync + Clone + 'static {
    move |cfg| configure(cfg, Arc::clone(&recorder), registry.clone())
}
