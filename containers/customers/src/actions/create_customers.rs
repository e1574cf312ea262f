use std::sync::Arc;

use ship::contracts::{ChangeRecorder, FieldError};
use ship::db::utc_now;
use ship::parents::Action;
use ship::DbPool;

use super::CreateCustomerInput;
use crate::models::Customer;
use crate::tasks::SaveLocalWriteTask;
use crate::CustomersError;

/// The most customers one bulk create takes (a push batch's op limit: what a peer takes in one
/// request, `sync.max_ops_per_batch`).
pub const MAX_BATCH: usize = 1_000;

/// The most field errors one refusal names (a bulk create of 1,000 broken items is answered with
/// these, not with 4,000).
pub const MAX_ERRORS_NAMED: usize = 100;

/// Create many customers at once (a bulk load of existing data): each a new UUID v7, all
/// written and recorded in one transaction — every one or none — at a constant number of
/// statements per batch (one multi-row insert, one sequence bump, one changelog insert).
pub struct CreateCustomersAction {
    pool: DbPool,
    recorder: Arc<dyn ChangeRecorder>,
}

impl CreateCustomersAction {
    pub fn new(pool: DbPool, recorder: Arc<dyn ChangeRecorder>) -> Self {
        Self { pool, recorder }
    }
}

/// Item `index`'s broken rules, each field named `items[i].<field>` (`items[i]` for the item
/// itself).
pub(crate) fn item_errors(
    index: usize,
    errors: impl IntoIterator<Item = FieldError>,
) -> impl Iterator<Item = FieldError> {
    errors.into_iter().map(move |mut e| {
        e.message = format!("items[{index}]: {}", e.message);
        e.field = if e.field == "body" {
            format!("items[{index}]")
        } else {
            format!("items[{index}].{}", e.field)
        };
        e
    })
}

impl Action for CreateCustomersAction {
    const NAME: &'static str = "customers.create_customers";
    type Input = Vec<CreateCustomerInput>;
    /// The customers, in the order given.
    type Output = Vec<Customer>;
    type Error = CustomersError;

    #[tracing::instrument(name = "customers.create_customers", skip_all, fields(count = inputs.len()))]
    async fn run(&self, inputs: Vec<CreateCustomerInput>) -> Result<Vec<Customer>, CustomersError> {
        if inputs.len() > MAX_BATCH {
            return Err(CustomersError::BatchTooLarge {
                max: MAX_BATCH,
                got: inputs.len(),
            });
        }
        if inputs.is_empty() {
            return Err(CustomersError::Validation(vec![FieldError::new(
                "items",
                "blank",
                "items must hold at least one customer",
            )]));
        }
        let errors: Vec<FieldError> = inputs
            .iter()
            .enumerate()
            .flat_map(|(i, input)| item_errors(i, input.broken()))
            .take(MAX_ERRORS_NAMED)
            .collect();
        if !errors.is_empty() {
            return Err(CustomersError::Validation(errors));
        }
        let now = utc_now();
        let rows: Vec<Customer> = inputs
            .into_iter()
            .map(|input| input.into_row(now))
            .collect();
        let recorder = Arc::clone(&self.recorder);
        let saved = self
            .pool
            .transaction(move |conn| {
                // Fresh UUIDs v7: the rows are known to be new, there is nothing to lock.
                SaveLocalWriteTask::insert_all(conn, recorder.as_ref(), rows)
                    .map_err(CustomersError::from)
            })
            .await?;
        // Committed: a dispatcher in this process may deliver them now.
        self.recorder.committed();
        Ok(saved)
    }
}
