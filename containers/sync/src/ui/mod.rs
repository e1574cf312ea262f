//! The container's user interfaces: HTTP routes, scheduled jobs, and its part of `/metrics`.
pub mod http;
pub mod jobs;
pub mod metrics;
