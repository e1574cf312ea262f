use std::sync::Arc;

use ship::contracts::ChangeRecorder;
use ship::db::utc_now;
use ship::parents::Action;
use ship::DbPool;

use crate::data::customers;
use crate::models::{Customer, CustomerStatus};
use crate::tasks::save_local_write::Write;
use crate::tasks::SaveLocalWriteTask;
use crate::{validation, CustomersError};

/// Change some of a live customer's fields: lock, version, write and record in one transaction.
pub struct UpdateCustomerAction {
    pool: DbPool,
    recorder: Arc<dyn ChangeRecorder>,
}

/// A partial update; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateCustomerInput {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub status: Option<CustomerStatus>,
}

impl UpdateCustomerAction {
    pub fn new(pool: DbPool, recorder: Arc<dyn ChangeRecorder>) -> Self {
        Self { pool, recorder }
    }
}

impl Action for UpdateCustomerAction {
    const NAME: &'static str = "customers.update_customer";
    type Input = UpdateCustomerInput;
    type Output = Customer;
    type Error = CustomersError;

    #[tracing::instrument(name = "customers.update_customer", skip_all, fields(customer_id = %ship::errors::clip(&input.id)))]
    async fn run(&self, input: UpdateCustomerInput) -> Result<Customer, CustomersError> {
        super::known_id(&input.id)?;
        super::check(vec![
            input.name.as_deref().map_or(Ok(()), validation::name),
            input.email.as_deref().map_or(Ok(()), validation::email),
        ])?;
        let recorder = Arc::clone(&self.recorder);
        let saved = self
            .pool
            .transaction(move |conn| {
                let mut row = match customers::find_for_update(conn, &input.id)? {
                    Some(row) if !row.is_deleted() => row,
                    _ => return Err(CustomersError::NotFound(input.id)),
                };
                let before = row.clone();
                if let Some(name) = input.name {
                    row.name = name;
                }
                if let Some(email) = input.email {
                    row.email = email;
                }
                if let Some(status) = input.status {
                    row.status = status.as_str().to_string();
                }
                if row == before {
                    // Nothing changes: no new version, no change to replicate.
                    return Ok(before);
                }
                row.updated_at = utc_now();
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
