use ship::parents::Action;
use ship::DbPool;

use crate::data::customers;
use crate::models::Customer;
use crate::CustomersError;

/// One live customer by id; a deleted one is not found.
pub struct GetCustomerAction {
    pool: DbPool,
}

impl GetCustomerAction {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }
}

impl Action for GetCustomerAction {
    const NAME: &'static str = "customers.get_customer";
    type Input = String;
    type Output = Customer;
    type Error = CustomersError;

    #[tracing::instrument(name = "customers.get_customer", skip_all, fields(customer_id = %ship::errors::clip(&id)))]
    async fn run(&self, id: String) -> Result<Customer, CustomersError> {
        super::known_id(&id)?;
        self.pool
            .run(move |conn| match customers::find(conn, &id)? {
                Some(row) if !row.is_deleted() => Ok(row),
                _ => Err(CustomersError::NotFound(id)),
            })
            .await
    }
}
