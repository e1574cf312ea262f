use std::sync::Arc;

use ship::contracts::ChangeRecorder;
use ship::db::utc_now;
use ship::parents::Action;
use ship::DbPool;

use crate::models::{Customer, CustomerStatus};
use crate::tasks::save_local_write::Write;
use crate::tasks::SaveLocalWriteTask;
use crate::{validation, CustomersError};

/// Create a customer: a new UUID v7, written and recorded in one transaction.
pub struct CreateCustomerAction {
    pool: DbPool,
    recorder: Arc<dyn ChangeRecorder>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateCustomerInput {
    pub tenant_id: String,
    pub name: String,
    pub email: String,
    pub status: CustomerStatus,
}

impl CreateCustomerAction {
    pub fn new(pool: DbPool, recorder: Arc<dyn ChangeRecorder>) -> Self {
        Self { pool, recorder }
    }
}

impl Action for CreateCustomerAction {
    const NAME: &'static str = "customers.create_customer";
    type Input = CreateCustomerInput;
    type Output = Customer;
    type Error = CustomersError;

    #[tracing::instrument(name = "customers.create_customer", skip_all, fields(customer_id))]
    async fn run(&self, input: CreateCustomerInput) -> Result<Customer, CustomersError> {
        super::check(vec![
            validation::tenant_id(&input.tenant_id),
            validation::name(&input.name),
            validation::email(&input.email),
        ])?;
        let id = uuid::Uuid::now_v7().hyphenated().to_string();
        tracing::Span::current().record("customer_id", id.as_str());
        let now = utc_now();
        let row = Customer {
            id,
            tenant_id: input.tenant_id,
            name: input.name,
            email: input.email,
            status: input.status.as_str().to_string(),
            created_at: now,
            updated_at: now,
            sync_version: 0,
            sync_origin: String::new(),
            deleted_at: None,
        };
        let recorder = Arc::clone(&self.recorder);
        let saved = self
            .pool
            .transaction(move |conn| {
                // A fresh UUID v7: the row is known to be new, there is nothing to lock.
                SaveLocalWriteTask::run(conn, recorder.as_ref(), row, Write::Insert)
                    .map_err(CustomersError::from)
            })
            .await?;
        // Committed: a dispatcher in this process may deliver it now.
        self.recorder.committed();
        Ok(saved)
    }
}
