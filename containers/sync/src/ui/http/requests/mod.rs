pub mod apply_ops_request;
pub mod get_changes_request;
pub mod get_digest_request;
pub mod get_snapshot_request;
