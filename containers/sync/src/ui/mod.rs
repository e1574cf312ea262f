//! The container's user interfaces: HTTP routes (and, later, CLI commands and jobs).
pub mod http;
