//! The broker's tasks.

pub(crate) mod authenticate_region;
pub mod broker_http;
pub(crate) mod fetch_broker_keys;
pub(crate) mod issue_tokens;
pub(crate) mod resolve_at_broker;
pub(crate) mod send_heartbeat;
