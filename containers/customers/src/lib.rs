//! The customers container: an example domain whose table (`customers`) is synced between
//! regions.
//!
//! - REST API under `/api/v1/customers` ([`ui::http::configure_with`]): create, get, patch,
//!   delete (a tombstone) and a keyset-paginated list per tenant.
//! - Every local write runs in one transaction that locks the row, takes a version from the
//!   [`ship::contracts::ChangeRecorder`] (after the lock), writes the row with that version and
//!   records the change; if recording fails, nothing is written.
//! - [`CustomersResource`] exposes the table to the sync container
//!   ([`ship::contracts::SyncResource`]): payload validation, atomic last-writer-wins apply and
//!   a digest. The payload format is documented on [`models::CustomerPayload`].
//!
//! Layout (Porto): `actions` are the use cases and own the transaction; `tasks` do one thing
//! each; `data` holds the schema and queries; `models` the rows and the payload; `ui::http` the
//! routes, controllers, requests and transformers. Depends on `ship` only.

pub mod actions;
pub(crate) mod data;
pub mod errors;
pub mod models;
pub mod resource;
pub(crate) mod tasks;
pub mod ui;
pub(crate) mod validation;

pub use errors::CustomersError;
pub use resource::CustomersResource;

/// The resource name in the changelog and in sync URLs.
pub const RESOURCE: &str = "customers";

/// The container as `app` wires it: the `customers` resource and its routes.
pub fn domain() -> ship::contracts::Domain {
    ship::contracts::Domain {
        resource: std::sync::Arc::new(CustomersResource),
        routes: ui::http::configure,
        openapi: ui::http::openapi,
    }
}
