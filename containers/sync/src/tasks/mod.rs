//! Steps of the sync actions, one responsibility each.
pub mod apply_changes;
pub mod check_cursor;
pub mod digest_ranges;
pub mod fetch_changes;
pub mod fetch_digest;
pub mod fetch_snapshot;
pub mod observe_peer;
pub mod peer_status;
pub mod purge_tombstones;
pub mod send_alert;
pub mod send_ops;
pub mod validate_ops;
