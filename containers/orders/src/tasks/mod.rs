//! One responsibility each; a task takes the caller's connection and never opens a transaction.

pub(crate) mod apply_remote_batch;
pub(crate) mod customer_states;
pub(crate) mod save_local_write;

pub(crate) use customer_states::CustomerStatesTask;
pub(crate) use save_local_write::SaveLocalWriteTask;

/// A broken invariant reported through the contract's error type (`DbError`): a 500 for the
/// caller, with the reason in the log.
pub(crate) fn invalid(reason: &str) -> ship::DbError {
    ship::DbError::Query(diesel::result::Error::DeserializationError(
        reason.to_string().into(),
    ))
}
