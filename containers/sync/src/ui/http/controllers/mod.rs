pub mod get_changes;
