//! Schema and queries of the sync tables. No business rules here.
pub mod alerts;
pub mod bootstraps;
pub mod changelog;
pub mod conflicts;
pub mod cursors;
pub mod delivery;
pub mod feed_acks;
pub mod outbox;
pub mod parked_ops;
pub mod peer_clocks;
pub mod peer_incarnations;
pub mod prune;
pub mod quarantine;
pub mod refusals;
pub mod schema;
pub mod verify_results;
