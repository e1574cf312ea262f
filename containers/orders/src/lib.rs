//! The orders container: a customer's orders, in a table (`orders`) synced between regions.
//!
//! - REST API under `/api/v1/orders` ([`ui::http::configure_with`]): create, get, patch (status
//!   transitions; number and lines while pending), delete (a tombstone) and a keyset-paginated
//!   list per tenant, optionally per customer. Each order answered carries the state of its
//!   customer here (`customer_state`), read through the [`ship::contracts::ResourceRegistry`].
//! - Every local write runs in one transaction that locks the row, takes a version from the
//!   [`ship::contracts::ChangeRecorder`] (after the lock), writes the row with that version and
//!   records the change; if recording fails, nothing is written. A create checks, in that
//!   transaction, that its customer is live in its tenant.
//! - [`OrdersResource`] exposes the table to the sync container
//!   ([`ship::contracts::SyncResource`]): payload validation, atomic last-writer-wins apply, a
//!   digest, and the reference [`CUSTOMER_REF`] (`customer_id` names a customer). The payload
//!   format is documented on [`models::OrderPayload`].
//!
//! Layout (Porto): `actions` are the use cases and own the transaction; `tasks` do one thing
//! each; `data` holds the schema and queries; `models` the rows and the payload; `ui::http` the
//! routes, controllers, requests and transformers. Depends on `ship` only: customers are
//! reached through the registry, never through their crate.

pub mod actions;
pub(crate) mod data;
pub mod errors;
pub mod models;
pub mod resource;
pub(crate) mod tasks;
pub mod ui;
pub(crate) mod validation;

pub use errors::OrdersError;
pub use resource::{OrdersResource, CUSTOMER_REF};

/// The resource name in the changelog and in sync URLs.
pub const RESOURCE: &str = "orders";

/// The container as `app` wires it: the `orders` resource and its routes.
pub fn domain() -> ship::contracts::Domain {
    ship::contracts::Domain {
        resource: std::sync::Arc::new(OrdersResource),
        routes: ui::http::configure,
        openapi: ui::http::openapi,
    }
}
