pub mod apply_ops;
pub mod get_changes;
pub mod get_digest;
pub mod get_snapshot;
