//! Steps of the sync actions, one responsibility each.
pub mod validate_ops;
