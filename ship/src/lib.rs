//! `ship` — the shared kernel of regionsync.
//!
//! Infrastructure with no business knowledge: the database layer ([`db`]), the one JSON error
//! envelope ([`errors`]), layered configuration ([`config`]), logging and request spans
//! ([`telemetry`]), HTTP plumbing ([`http`]), the component traits containers implement
//! ([`parents`]) and the contracts containers exchange through the app ([`contracts`]). Test support lives in [`testing`] behind the `testing` feature.
//!
//! Architecture invariant: ship never names a container, a container's table or an endpoint.

pub mod auth;
pub mod config;
pub mod contracts;
pub mod db;
pub mod errors;
pub mod http;
pub mod lww;
pub mod parallel;
pub mod parents;
pub mod scheduler;
pub mod telemetry;

#[cfg(feature = "testing")]
pub mod testing;

pub use db::{AnyConnection, Backend, DatabaseUrl, DbError, DbPool};
pub use errors::{ApiError, HttpError, ShipError};
