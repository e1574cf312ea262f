use std::sync::Arc;

use ship::contracts::ChangeRecorder;
use ship::db::utc_now;
use ship::parents::Action;
use ship::DbPool;

use crate::data::customers;
use crate::models::Customer;
use crate::tasks::save_local_write::Write;
use crate::tasks::SaveLocalWriteTask;
use crate::CustomersError;

/// Delete a live customer: the row stays as a tombstone (`deleted_at` set) with a new version,
/// recorded as a `delete` change, in one transaction. Deleting a deleted customer is not found.
pub struct DeleteCustomerAction {
    pool: DbPool,
    recorder: Arc<dyn ChangeRecorder>,
}

impl DeleteCustomerAction {
    pub fn new(pool: DbPool, recorder: Arc<dyn ChangeRecorder>) -> Self {
        Self { pool, recorder }
    }
}

impl Action for DeleteCustomerAction {
    const NAME: &'static str = "customers.delete_customer";
    type Input = String;
    /// The tombstone.
    type Output = Customer;
    type Error = CustomersError;

    #[tracing::instrument(name = "customers.delete_customer", skip_all, fields(customer_id = %ship::errors::clip(&id)))]
    async fn run(&self, id: String) -> Result<Customer, CustomersError> {
        super::known_id(&id)?;
        let recorder = Arc::clone(&self.recorder);
        let saved = self
            .pool
            .transaction(move |conn| {
                let mut row = match customers::find_for_update(conn, &id)? {
                    Some(row) if !row.is_deleted() => row,
                    _ => return Err(CustomersError::NotFound(id)),
                };
                let now = utc_now();
                row.updated_at = now;
                row.deleted_at = Some(now);
                Ok(SaveLocalWriteTask::run(
                    conn,
                    recorder.as_ref(),
                    row,
                    Write::Update,
                )?)
            })
            .await?;
        // Committed: a dispatcher in this process may deliver it now.
        self.recorder.committed();
        Ok(saved)
    }
}
