//! The sync container: changelog capture, the outbox, the changes feed (`GET
//! /sync/{resource}/changes`), ops apply (`POST /sync/{resource}/ops`) and the sync jobs.
//!
//! Layout (Porto): `actions` are the use cases and own the transaction; `data` holds the schema
//! and queries; `models` the rows; `ui::http` the routes, controllers, requests and
//! transformers. The container depends on `ship` only and never names a synced resource:
//! resources come in through ship's contracts (`SyncResource`, `ResourceRegistry`), and domain
//! containers record their writes through `ChangeRecorder`, implemented here by
//! [`recorder::SyncChangeRecorder`].

pub mod actions;
pub mod alerts_config;
pub mod config;
pub mod counters;
pub mod cursor;
pub(crate) mod data;
pub mod errors;
pub mod models;
pub mod peer_clock;
pub mod recorder;
pub(crate) mod tasks;
pub mod ui;

pub use alerts_config::AlertsConfig;
pub use config::{BootstrapMode, PeerConfig, SyncConfig};
pub use errors::SyncError;
pub use recorder::SyncChangeRecorder;
pub use tasks::validate_ops::OpError;
