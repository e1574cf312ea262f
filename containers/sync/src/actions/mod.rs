//! The sync container's use cases. Each owns its transaction; controllers, CLI commands and jobs
//! call them.
pub mod get_changes;

pub use get_changes::{ChangesPage, GetChangesAction, GetChangesInput};
