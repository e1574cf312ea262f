//! The customers container's route table.
//!
//! | method | path | answer |
//! |---|---|---|
//! | `POST` | `/api/v1/customers` | 201, the customer, `Location` header |
//! | `POST` | `/api/v1/customers:batch` | 201 `{"items": [...]}`: 1 to 1,000 customers created in one transaction |
//! | `GET` | `/api/v1/customers?tenant_id=&limit=&after=` | 200 `{"items": [...], "next_after": id\|null}`, each item with its `version` |
//! | `GET` | `/api/v1/customers/{id}` | 200, the customer |
//! | `PATCH` | `/api/v1/customers/{id}` | 200, the customer (partial: `name`, `email`, `status`) |
//! | `DELETE` | `/api/v1/customers/{id}` | 204 (the row stays as a tombstone) |
//!
//! Errors: 422 `validation_failed` with `details.fields`, 404 `customer_not_found`, 409
//! `customer_referenced` (a delete while live orders name the customer); the list's
//! query 400 `invalid_query` / `invalid_limit`; the batch's 413 `batch_too_large`. docs/API.md describes the API.
//! Routes are `web::resource(..).route(..)`, so a wrong method is a 405.

pub mod controllers;
pub mod requests;
pub mod transformers;

use std::sync::Arc;

use actix_web::web;
use ship::contracts::{ChangeRecorder, ResourceRegistry};

/// What the controllers need besides the pool (which ship's server registers as
/// `web::Data<DbPool>`).
pub struct CustomersContext {
    pub recorder: Arc<dyn ChangeRecorder>,
    /// The synced resources: a delete asks those that reference customers for live referrers.
    pub registry: ResourceRegistry,
}

pub const COLLECTION_PATH: &str = "/api/v1/customers";
pub const ITEM_PATH: &str = "/api/v1/customers/{id}";
pub const BATCH_PATH: &str = "/api/v1/customers:batch";

/// Register the customers routes, with `recorder` recording every local write and `registry`
/// the synced resources (a delete is refused while live rows of one of them name the customer).
pub fn configure(
    cfg: &mut web::ServiceConfig,
    recorder: Arc<dyn ChangeRecorder>,
    registry: ResourceRegistry,
) {
    let context = web::Data::new(CustomersContext { recorder, registry });
    cfg.service(
        web::resource(COLLECTION_PATH)
            .app_data(context.clone())
            .route(web::post().to(controllers::create_customer::create_customer))
            .route(web::get().to(controllers::list_customers::list_customers)),
    )
    .service(
        web::resource(BATCH_PATH)
            .app_data(context.clone())
            .route(web::post().to(controllers::create_customers::create_customers)),
    )
    .service(
        web::resource(ITEM_PATH)
            .app_data(context)
            .route(web::get().to(controllers::get_customer::get_customer))
            .route(web::patch().to(controllers::update_customer::update_customer))
            .route(web::delete().to(controllers::delete_customer::delete_customer)),
    );
}

/// The customers routes in the OpenAPI document (`Domain::openapi`): every route [`configure`]
/// registers (`crates/app/tests/openapi.rs` fails on one left out).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        controllers::create_customer::create_customer,
        controllers::create_customers::create_customers,
        controllers::list_customers::list_customers,
        controllers::get_customer::get_customer,
        controllers::update_customer::update_customer,
        controllers::delete_customer::delete_customer,
    ),
    tags((name = "customers", description = "A region's customers, read and written locally, each write replicated to the other regions (docs/API.md)."))
)]
struct CustomersApi;

/// This container's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <CustomersApi as utoipa::OpenApi>::openapi()
}

/// [`configure`] as a route registration `app` can hand to ship's server
/// (`Arc::new(customers::ui::http::configure_with(recorder, registry))` is a
/// `ship::http::Configure`).
pub fn configure_with(
    recorder: Arc<dyn ChangeRecorder>,
    registry: ResourceRegistry,
) -> impl Fn(&mut web::ServiceConfig) + Send + Sync + Clone + 'static {
    move |cfg| configure(cfg, Arc::clone(&recorder), registry.clone())
}
