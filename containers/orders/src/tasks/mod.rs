//! One responsibility each; a task takes the caller's connection and never opens a transaction.

pub(crate) mod apply_remote_batch;
pub(crate) mod apply_remote_change;
pub(crate) mod customer_states;
pub(crate) mod save_local_write;

pub(crate) use apply_remote_change::ApplyRemoteChangeTask;
pub(crate) use customer_states::CustomerStatesTask;
pub(crate) use save_local_write::SaveLocalWriteTask;
