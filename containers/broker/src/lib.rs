//! The broker container (SYNC-PROTOCOL §7–§8).
//!
//! - The **broker role** (`[broker] enabled = true` on one region): a registry of regions
//!   (base URL, hashed credential, scopes, last heartbeat), tenant placement (home region and an
//!   `epoch` that grows on every move), and the Ed25519 key that signs inter-region tokens.
//!   Routes: `POST /api/v1/broker/resolve`, `POST /api/v1/broker/heartbeat`,
//!   `GET /api/v1/broker/keys`.
//! - The **client** every region uses: [`directory::BrokerDirectory`] implements
//!   `ship::contracts::PeerDirectory` and `KeySource`, in-process on the broker region and over
//!   HTTP elsewhere, with a token cache that outlives a broker outage.

pub mod actions;
pub mod base_url;
pub mod config;
pub mod credentials;
/// Public for the container's tests (table snapshots); other crates use the actions.
pub mod data;
pub mod directory;
pub mod errors;
pub mod models;
pub mod signing;
pub(crate) mod tasks;
pub mod ui;

pub use config::BrokerConfig;
pub use errors::BrokerError;
