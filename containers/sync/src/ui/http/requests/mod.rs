pub mod get_changes_request;
