use std::sync::Arc;

use ship::contracts::{ChangeRecorder, ResourceRegistry};
use ship::db::utc_now;
use ship::parents::Action;
use ship::DbPool;

use crate::data::customers;
use crate::models::Customer;
use crate::tasks::save_local_write::Write;
use crate::tasks::SaveLocalWriteTask;
use crate::CustomersError;

/// Delete a live customer: the row stays as a tombstone (`deleted_at` set) with a new version,
/// recorded as a `delete` change, in one transaction. Deleting a deleted customer is not found;
/// deleting one that live rows of another resource name (an order) is refused, 409
/// `customer_referenced` (ADR 0015): the row is locked first, so an order created for it
/// concurrently (which locks it too) either committed before the count or waits and then sees
/// the tombstone.
pub struct DeleteCustomerAction {
    pool: DbPool,
    recorder: Arc<dyn ChangeRecorder>,
    /// The resources that may name a customer.
    referrers: ResourceRegistry,
}

impl DeleteCustomerAction {
    pub fn new(
        pool: DbPool,
        recorder: Arc<dyn ChangeRecorder>,
        referrers: ResourceRegistry,
    ) -> Self {
        Self {
            pool,
            recorder,
            referrers,
        }
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
        let referrers = self.referrers.clone();
        let saved = self
            .pool
            .transaction(move |conn| {
                let mut row = match customers::find_for_update(conn, &id)? {
                    Some(row) if !row.is_deleted() => row,
                    _ => return Err(CustomersError::NotFound(id)),
                };
                let live = referrers.live_referrers(conn, crate::RESOURCE, &[id.as_str()])?;
                if live > 0 {
                    return Err(CustomersError::Referenced { id, live });
                }
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
