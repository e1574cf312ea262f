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

impl CreateCustomerInput {
    /// The input's broken rules, if any.
    pub(crate) fn broken(&self) -> impl Iterator<Item = ship::contracts::FieldError> {
        [
            validation::tenant_id(&self.tenant_id),
            validation::name(&self.name),
            validation::email(&self.email),
        ]
        .into_iter()
        .filter_map(Result::err)
    }

    /// The new row: a fresh UUID v7, created and updated `now`, not versioned yet.
    pub(crate) fn into_row(self, now: chrono::NaiveDateTime) -> Customer {
        Customer {
            id: uuid::Uuid::now_v7().hyphenated().to_string(),
            tenant_id: self.tenant_id,
            name: self.name,
            email: self.email,
            status: self.status.as_str().to_string(),
            created_at: now,
            updated_at: now,
            sync_version: 0,
            sync_origin: String::new(),
            deleted_at: None,
        }
    }
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
        let broken: Vec<_> = input.broken().collect();
        if !broken.is_empty() {
            return Err(CustomersError::Validation(broken));
        }
        let row = input.into_row(utc_now());
        tracing::Span::current().record("customer_id", row.id.as_str());
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
