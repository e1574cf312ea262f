pub mod apply_ops;
pub mod get_changes;
