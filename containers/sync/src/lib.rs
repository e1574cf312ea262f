//! The sync container: changelog capture, the outbox, the changes feed (`GET
//! /sync/{resource}/changes`), ops apply (`POST /sync/{resource}/ops`) and the sync jobs.
//!
//! Layout (Porto): `actions` are the use cases and own the transaction; `tasks` do one thing
//! each; `data` holds the schema and queries; `models` the rows; `ui::http` the routes,
//! controllers, requests and transformers; `jobs` what the console kernel schedules. The
//! container depends on `ship` only, and never names a synced resource: resources will register
//! through contracts in `ship` (added with the sync-core issue).
//!
//! State: the foundation skeleton — its configuration section, its error enum and an empty
//! route table. The changelog, feed and apply arrive with the sync-core issue.

pub mod config;
pub mod errors;
pub mod ui;

pub use config::SyncConfig;
pub use errors::SyncError;
