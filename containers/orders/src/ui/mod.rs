//! The container's user interfaces: HTTP routes.
pub mod http;
