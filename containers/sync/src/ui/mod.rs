//! The container's user interfaces: HTTP routes and scheduled jobs.
pub mod http;
pub mod jobs;
