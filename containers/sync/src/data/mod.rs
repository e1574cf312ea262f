//! Schema and queries of the sync tables. No business rules here.
pub mod changelog;
pub mod outbox;
pub mod schema;
