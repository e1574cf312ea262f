pub mod apply_ops_transformer;
pub mod changes_transformer;
pub mod snapshot_transformer;
