//! The use cases of the customers container. Each owns its transaction (`DbPool::transaction`)
//! and knows nothing of HTTP: controllers, CLI commands and jobs call the same actions.

pub mod create_customer;
pub mod create_customers;
pub mod delete_customer;
pub mod get_customer;
pub mod list_customers;
pub mod update_customer;

pub use create_customer::{CreateCustomerAction, CreateCustomerInput};
pub use create_customers::{CreateCustomersAction, MAX_BATCH};
pub use delete_customer::DeleteCustomerAction;
pub use get_customer::GetCustomerAction;
pub use list_customers::{CustomerPage, ListCustomersAction, ListCustomersInput};
pub use update_customer::{UpdateCustomerAction, UpdateCustomerInput};

use ship::contracts::FieldError;

use crate::CustomersError;

/// Collect the failed rules into one validation error.
pub(crate) fn check(results: Vec<Result<(), FieldError>>) -> Result<(), CustomersError> {
    let errors: Vec<FieldError> = results.into_iter().filter_map(Result::err).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CustomersError::Validation(errors))
    }
}

/// Ids are UUIDs: anything else cannot name a customer.
pub(crate) fn known_id(id: &str) -> Result<(), CustomersError> {
    crate::validation::uuid("id", id).map_err(|_| CustomersError::NotFound(id.to_string()))
}
