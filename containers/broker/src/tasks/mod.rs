//! The broker's tasks.

pub mod authenticate_region;
pub mod call_broker;
pub mod issue_tokens;
